#include "mjpeg/page.hpp"

#include <cstdio>

#include "mjpeg/json.hpp"

namespace mjpeg {
namespace {

// The status line is filled in by the server first, so it says something useful even where
// /stats cannot answer while the stream is open (the single-threaded server serves one request
// at a time: that is its lesson, and the page says so instead of hanging).
constexpr std::string_view page_template = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mjpeg-concurrency: @VARIANT@</title>
<style>
  body { margin: 0; background: #111; color: #ddd; font: 15px/1.4 system-ui, sans-serif; }
  main { max-width: @WIDTH@px; margin: 1.5em auto; padding: 0 1em; }
  main.wall { max-width: none; }
  h1 { font-size: 1.1em; font-weight: 600; margin: 0 0 .6em; }
  #grid { display: grid; gap: .5em; grid-template-columns: repeat(auto-fill, minmax(min(100%, 300px), 1fr)); }
  #grid.one { grid-template-columns: 1fr; }
  figure { margin: 0; position: relative; }
  figcaption { font-size: .9em; padding: .2em 0; }
  img { display: block; width: 100%; height: auto; background: #000; aspect-ratio: @WIDTH@ / @HEIGHT@; }
  .state { position: absolute; left: 0; right: 0; top: 0; padding: .3em .6em; background: #a33; color: #fff; }
  .state:empty { display: none; }
  #status { margin-top: .6em; font-variant-numeric: tabular-nums; }
  #status b { color: #fff; }
  a { color: #8cf; }
</style>
</head>
<body>
<main>
<h1>mjpeg-concurrency &middot; <span id="variant">@VARIANT@</span></h1>
<div id="grid"></div>
<noscript><img src="stream" width="@WIDTH@" height="@HEIGHT@" alt="live stream"></noscript>
<div id="status">variant <b>@VARIANT@</b> &middot; <b id="fps">&ndash;</b> fps (target @FPS@) &middot;
<b id="viewers">&ndash;</b> viewers &middot; image <b id="size">not yet decoded</b> &middot;
<span id="note">waiting for /stats</span><span id="camera"></span><br><span id="mode"></span></div>
<p><a href="?mode=stream">live</a> &middot; <a href="?mode=snapshot">snapshots</a> &middot;
<a href="stream">stream</a> &middot; <a href="snapshot">snapshot</a> &middot; <a href="stats">stats</a></p>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
// The tiles: one per camera, as the server lists them.
const cameras = @CAMERAS@;
const query = new URLSearchParams(location.search);
const snapshot_mode = query.get("mode") === "snapshot";
// ?fps=N: live, the stream's cap for this viewer (the server skips frames for us); with
// ?mode=snapshot, how many snapshots a second each tile fetches (2 unless asked).
const fps = Number(query.get("fps")) || 0;
const snapshot_period = 1000 / (fps || 2);
// Opened as http://user:pass@host/, a relative URL would carry the credentials along, and fetch()
// refuses such URLs. location.origin never holds them; the browser still sends the credentials it
// was given for this origin (credentials: "same-origin").
const stats_url = location.origin + location.pathname.replace(/[^/]*$/, "") + "stats";
// Backoff after a failure: 1 s doubling to 10 s, each wait jittered by +-25 %, so the viewers
// of a restarted server do not all come back in the same instant.
const backoff = (attempt) => Math.min(10000, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
const two = (n) => String(n).padStart(2, "0");
// An empty GIF: what a dropped stream's element is pointed at before it goes.
const blank = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
const clock = (t) => two(t.getHours()) + ":" + two(t.getMinutes()) + ":" + two(t.getSeconds());

// How the live picture is read. Where the browser lets a script read a response as it arrives
// (fetch() with a streaming body), the page reads the stream itself, splits it into JPEGs by each
// part's Content-Length and shows each through a Blob URL in the same <img>. Aborting that fetch
// closes the TCP connection, where dropping a multipart <img>'s src closes it in Chromium only
// (Firefox ESR keeps streaming to a hidden tab, WebKitGTK 2.50 even after the element leaves the
// page); and each part's X-Frame-Seq tells a new frame from the old one, so a frozen stream is
// noticed. Chromium and Firefox ESR read multipart/x-mixed-replace this way. WebKit (WebKitGTK,
// Safari) fails a fetch() of it ("Load failed": it takes multipart only for images), and the
// failed request's connection stays open, unread, even after the page navigates away, so the page
// does not find out by trying the stream: it fetches one part from a Blob of that type, which
// WebKit refuses the same way without any connection. Where refused, the tile asks for
// /stream?type=octet-stream: the same parts under a type fetch() streams. Should a stream be
// refused all the same (ok, then a TypeError before its first byte), later connections ask for
// octet-stream too. Only a browser without streaming fetch() falls back to the multipart <img>,
// and with it to /stats's frame count for noticing a freeze and to a stream that outlives a
// hidden tab.
const can_fetch_stream = typeof ReadableStream === "function" && typeof AbortController === "function" &&
    typeof Response === "function" && "body" in Response.prototype;
// How streams are read: "multipart" or "octet-stream" by fetch(), null by <img>; known once the
// probe below has answered (before any stream starts).
let stream_type = null;
async function fetch_takes(type) {
  const part = "--b\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok\r\n--b\r\n";
  const url = URL.createObjectURL(new Blob([part], { type: type }));
  try {
    const r = await fetch(url);
    return (await r.arrayBuffer()).byteLength === part.length;  // WebKit refuses here, at the body
  } catch (e) {
    return false;
  } finally {
    URL.revokeObjectURL(url);
  }
}
async function probe_stream_type() {
  if (!can_fetch_stream) return null;
  if (await fetch_takes("multipart/x-mixed-replace;boundary=b")) return "multipart";
  return await fetch_takes("application/octet-stream") ? "octet-stream" : null;
}
// A visible picture that has not changed for this long is stale: reconnect (with the backoff).
// Three frame periods of the camera at the least, for a slow one.
const stale_after = Math.max(4000, 3000 / Math.max(@FPS@, 0.1));

// One camera's viewer: an <img> in `container`, fed from `stream_url` (or polled from
// `snapshot_url`); options: { id, name, snapshot, fps, snapshot_period, width, height }. It
// connects on its own, notices on its own when its picture breaks or freezes, and reconnects on
// its own with backoff, so one dead camera never stalls the others. start() and stop() follow
// the tab's visibility.
class tile {
  constructor(container, stream_url, snapshot_url, options) {
    this.stream_url = stream_url;
    this.snapshot_url = snapshot_url;
    this.options = options;
    this.id = options.id;
    this.name = options.name || "";
    this.snapshot = !!options.snapshot;
    this.fetching = false;  // set by begin(), once the page knows how streams are read
    this.state = document.createElement("div");
    this.state.className = "state";
    const figure = document.createElement("figure");
    this.img = null;
    this.fresh_img();
    figure.append(this.img, this.state);
    if (this.name) {
      const caption = document.createElement("figcaption");
      caption.textContent = this.name;
      figure.append(caption);
    }
    container.append(figure);
    this.running = false;  // false while the tab is hidden
    this.timer = 0;        // the next connect or poll
    this.pending = false;  // a reconnect is scheduled
    this.attempt = 0;      // failures in a row
    this.since = null;     // when the picture broke
    this.taken = 0;        // snapshots loaded
    this.reader = null;    // the running fetch: { abort }
    this.seq = null;       // the last part's X-Frame-Seq
    this.changed_at = 0;   // when the picture last changed (performance.now())
    this.frames = 0;       // new frames received
    this.shown_url = "";   // the Blob URL on screen
    this.next_jpeg = null; // the newest part, waiting for the <img> to finish the one before
    this.decoding = false;
    this.watchdog = setInterval(() => this.check_stale(), 1000);
  }
  // A new, empty <img> in place of the old one, whose multipart stream (the fallback's) is dropped
  // on the way: Chromium closes it when the src changes, WebKitGTK 2.50 not even when the element
  // leaves the page (above). Events of an element already replaced are ignored.
  fresh_img() {
    const img = document.createElement("img");
    img.id = this.id;
    img.width = this.options.width;
    img.height = this.options.height;
    img.style.aspectRatio = this.options.width + " / " + this.options.height;  // its own camera's shape
    img.alt = this.name ? "camera " + this.name : "live stream";
    img.addEventListener("load", () => {
      if (img !== this.img) return;
      if (this.fetching) return this.decoded();
      // Counts connections more than frames: WebKit's multipart <img> fires "load" once.
      if (!this.snapshot) img.dataset.frames = ++this.frames;
      this.loaded();
    });
    img.addEventListener("error", () => {
      if (img !== this.img) return;
      if (this.fetching) this.decoded(); else this.failed("the stream broke");
    });
    if (this.img) {
      this.img.src = blank;
      this.img.replaceWith(img);
    }
    this.img = img;
  }
  // Connects now (or fetches the next snapshot): a new URL each time, so no engine hands back a
  // cached or half-dead response.
  start() {
    clearTimeout(this.timer);
    this.running = true;
    this.pending = false;
    this.started = performance.now();
    let url = this.snapshot ? this.snapshot_url : this.stream_url;
    const fps = this.options.fps;
    url += (url.includes("?") ? "&" : "?") + (!this.snapshot && fps ? "fps=" + fps + "&" : "") +
        (this.fetching && stream_type === "octet-stream" ? "type=octet-stream&" : "") + "_=" + Date.now();
    if (this.fetching) {
      this.img.dataset.reading = "fetch " + stream_type;  // for people and tests to read
      this.abort();
      // Against location.origin, not the page's URL: fetch() refuses URLs with credentials in them.
      this.read(new URL(url, stats_url).href);
      return;
    }
    if (!this.snapshot) this.fresh_img();  // the old stream, if any, goes with the old element
    this.img.src = url;
  }
  // Hidden tab: drop the connection (the server sees the viewer leave and frees its slot).
  stop() {
    this.running = false;
    this.pending = false;
    clearTimeout(this.timer);
    if (this.fetching) this.abort(); else this.fresh_img();
  }
  abort() {
    if (this.reader) this.reader.abort();
    this.reader = null;
  }
  // Reads the multipart stream at `url` until it ends, fails or is aborted.
  async read(url) {
    const ctl = new AbortController();
    const me = { abort: () => ctl.abort() };
    this.reader = me;
    // No answer within 5 s is a failure too; the stream itself may then take as long as it runs.
    const connect_timer = setTimeout(() => ctl.abort(), 5000);
    let why = "the stream ended";
    let answered = false, received = 0;
    try {
      const r = await fetch(url, { cache: "no-store", credentials: "same-origin", signal: ctl.signal });
      clearTimeout(connect_timer);
      if (!r.ok) throw new Error("HTTP " + r.status + " " + r.statusText);
      answered = true;
      const body = r.body.getReader();
      let buf = new Uint8Array(0);
      for (;;) {
        const { value, done } = await body.read();
        if (done) break;
        received += value.length;
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf);
        joined.set(value, buf.length);
        buf = this.parts(joined);
      }
    } catch (e) {
      why = e.name === "AbortError" ? "no answer within 5 s" : "the stream broke (" + e.message + ")";
      // Answered, then refused before the first byte: this engine will not stream multipart.
      if (e instanceof TypeError && answered && received === 0 && stream_type === "multipart")
        stream_type = "octet-stream";
    } finally {
      clearTimeout(connect_timer);
    }
    // An abort of ours (stop, reconnect) is not a failure; the end of the stream we still read is.
    if (this.reader === me) {
      this.reader = null;
      this.failed(why);
    }
  }
  // Takes the whole parts off the front of `buf` and returns what is left: the start of the next.
  // A part is its header lines (the boundary line before them), an empty line, then exactly
  // Content-Length bytes of JPEG.
  parts(buf) {
    let at = 0;
    for (;;) {
      let end = -1;
      for (let i = at; i + 3 < buf.length; ++i)
        if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) { end = i; break; }
      if (end < 0) break;
      let head = "";
      for (let i = at; i < end; ++i) head += String.fromCharCode(buf[i]);
      const length = /content-length:\s*(\d+)/i.exec(head);
      if (!length) throw new Error("a part without Content-Length");
      const size = Number(length[1]);
      if (buf.length < end + 4 + size) break;
      const seq = /x-frame-seq:\s*(\d+)/i.exec(head);
      this.part(buf.slice(end + 4, end + 4 + size), seq ? seq[1] : null);
      at = end + 4 + size;
    }
    return buf.slice(at);
  }
  // One JPEG from the stream. The <img> shows the newest: parts that arrive while it decodes the
  // one before replace each other.
  part(jpeg, seq) {
    // A new connection begins with the frame we may have seen already: only a new seq is news.
    if (seq === null || seq !== this.seq) {
      this.seq = seq;
      this.changed_at = performance.now();
      this.img.dataset.frames = ++this.frames;  // for people and tests to read
      this.loaded();
    }
    this.next_jpeg = jpeg;
    if (!this.decoding) this.show_next();
  }
  show_next() {
    const jpeg = this.next_jpeg;
    this.next_jpeg = null;
    this.decoding = true;
    this.img.src = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  }
  // The <img> is done with a Blob: the one before it goes, and the newest waiting is next.
  decoded() {
    if (this.shown_url) URL.revokeObjectURL(this.shown_url);
    this.shown_url = this.img.src;
    this.decoding = false;
    if (this.next_jpeg) this.show_next();
  }
  // The server's frame count from /stats (the <img> path's only sign of new frames).
  server_frame(seq) {
    this.stats_at = performance.now();
    if (this.fetching || seq === this.server_seq) return;
    this.server_seq = seq;
    this.changed_at = this.stats_at;
  }
  // The picture froze while we watch: say since when, and connect again. The <img> path judges by
  // /stats, and only while /stats answers (the single-threaded server's does not while it streams).
  check_stale() {
    if (this.snapshot || !this.running || this.pending || document.hidden) return;
    if (!this.fetching && !(performance.now() - (this.stats_at || -1e9) < 2500)) return;
    const last = Math.max(this.changed_at, this.started);
    if (performance.now() - last < stale_after) return;
    if (!this.since) this.since = new Date(Date.now() - (performance.now() - last));
    this.abort();
    this.failed("no new frame for " + Math.round((performance.now() - last) / 1000) + " s");
  }
  loaded() {
    if (!this.running) return;
    // A picture arrived: whatever broke is over.
    this.attempt = 0;
    this.since = null;
    this.state.textContent = "";
    if (!this.snapshot) return;
    // One snapshot request at a time: the next one starts when this one is done, at the rate asked.
    this.img.dataset.taken = ++this.taken;  // for people and tests to read
    this.timer = setTimeout(() => this.start(),
        Math.max(0, this.options.snapshot_period - (performance.now() - this.started)));
  }
  failed(why) {
    if (!this.running || this.pending) return;
    this.pending = true;
    clearTimeout(this.timer);
    if (!this.since) this.since = new Date();
    const wait = backoff(this.attempt++);
    this.state.textContent = "reconnecting since " + clock(this.since) + ": " + why + "; next try in " +
        Math.round(wait / 1000) + " s";
    this.timer = setTimeout(() => this.start(), wait);
  }
}

const tiles = cameras.map((camera, index) => new tile($("grid"), camera.stream, camera.snapshot, {
  id: index === 0 ? "stream" : "stream-" + index, name: camera.name, snapshot: snapshot_mode, fps: fps,
  snapshot_period: snapshot_period, width: camera.width || @WIDTH@, height: camera.height || @HEIGHT@ }));
if (tiles.length === 1) $("grid").className = "one"; else document.querySelector("main").className = "wall";
$("mode").textContent = snapshot_mode ? "snapshots, " + (1000 / snapshot_period) + " a second per camera" :
    "live" + (fps ? ", at most " + fps + " frames a second" : "");

// /stats: one request at a time, the next a second after the last answer (longer after errors),
// none while the tab is hidden.
let stats_timer = 0, stats_busy = false, stats_attempt = 0, last_seq = -1, server_gone = false;
async function refresh() {
  stats_timer = 0;
  if (document.hidden || stats_busy) return;
  stats_busy = true;
  const first = tiles[0].img;
  // The decoded size proves the stream reached the browser as a JPEG it could decode.
  if (first.naturalWidth > 1) $("size").textContent = first.naturalWidth + "\u00d7" + first.naturalHeight;
  if (snapshot_mode) $("mode").textContent = "snapshots, " + (1000 / snapshot_period) + " a second per camera, " +
      tiles.reduce((n, t) => n + t.taken, 0) + " taken";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2000);
  let wait = 1000;
  try {
    const r = await fetch(stats_url, { cache: "no-store", credentials: "same-origin", signal: ctl.signal });
    if (!r.ok) throw new Error("HTTP " + r.status + " " + r.statusText);
    const s = await r.json();
    $("fps").textContent = s.fps_capture.toFixed(1);
    $("viewers").textContent = s.viewers_now;
    $("note").textContent = s.source_up ? "source " + s.source : "source " + s.source_state + ", retrying";
    // A camera: what it agreed to deliver, and whether its JPEGs pass through untouched.
    const c = s.camera;
    $("camera").textContent = c ? " \u00b7 " + c.pixel_format + " " + c.width + "\u00d7" + c.height + " @ " +
        (typeof c.fps === "number" ? c.fps.toFixed(1) : c.fps) + " fps, " + c.mode + (c.why_encode ? " (" + c.why_encode + ")" : "") + ", " +
        c.bad_frames + " bad frames dropped" : "";
    // Back after being unreachable, or restarted in between (its frame count began again): our
    // streams went with the old server, so connect again now.
    // Each tile by its own camera's frame count: its row in the grid's /stats, else the one camera's.
    for (const t of tiles) t.server_frame(((s.cameras || []).find((c) => c.name === t.options.name) || s).frame_seq);
    const restarted = s.frame_seq < last_seq;
    if (server_gone || restarted) for (const t of tiles) t.start();
    last_seq = s.frame_seq;
    server_gone = false;
    stats_attempt = 0;
  } catch (e) {
    // Say what happened: only a request that got no answer in time means a busy server.
    if (e.name === "AbortError") {
      $("note").textContent = "stats did not answer within 2 s (the server is busy with the stream)";
    } else {
      $("note").textContent = "stats unavailable: " + e.message;
      // Unreachable (not merely busy): the streams are gone too.
      if (e instanceof TypeError) {
        server_gone = true;
        for (const t of tiles) t.failed("the server is unreachable");
      }
    }
    wait = backoff(stats_attempt++);
  } finally {
    clearTimeout(timer);
    stats_busy = false;
    if (!document.hidden) stats_timer = setTimeout(refresh, wait);
  }
}

// Nobody looks: drop every stream and stop asking for stats. Back in front: resume at once.
function visibility() {
  if (document.hidden) {
    for (const t of tiles) t.stop();
    clearTimeout(stats_timer);
    stats_timer = 0;
  } else {
    for (const t of tiles) t.start();
    if (!stats_timer) stats_timer = setTimeout(refresh, 300);
  }
}
// The streams start once the page itself has loaded, so the page's own connection is free again:
// the single-threaded server answers one connection at a time, and a stream fetch() started
// earlier takes a second connection that it never serves. How this browser reads a stream is
// asked now (the probe opens no connection), so the answer is usually in by then.
const probed = probe_stream_type();
async function begin() {
  stream_type = await probed;
  for (const t of tiles) t.fetching = !t.snapshot && stream_type !== null;
  document.addEventListener("visibilitychange", visibility);
  visibility();
}
if (document.readyState === "complete") begin(); else window.addEventListener("load", begin);
</script>
</body>
</html>
)html";

void replace_all(std::string& text, std::string_view key, std::string_view value) {
  for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
}

}  // namespace

std::string viewer_page(std::string_view variant, int width, int height, double fps,
                        const std::vector<page_camera>& cameras) {
  json_writer list;
  list.begin_array();
  for (const page_camera& c : cameras) {
    list.begin_object().string("name", c.name).string("stream", c.stream).string("snapshot", c.snapshot);
    if (c.width > 0 && c.height > 0) list.number("width", c.width).number("height", c.height);
    list.end_object();
  }
  list.end_array();
  // Inside <script>, "</" could end the script early: JSON allows "<\/" for it.
  std::string camera_list = list.str();
  replace_all(camera_list, "</", "<\\/");
  std::string page{page_template};
  char fps_text[32];
  std::snprintf(fps_text, sizeof fps_text, "%.1f", fps);
  replace_all(page, "@VARIANT@", variant);
  replace_all(page, "@WIDTH@", std::to_string(width));
  replace_all(page, "@HEIGHT@", std::to_string(height));
  replace_all(page, "@FPS@", fps_text);
  replace_all(page, "@CAMERAS@", camera_list);
  return page;
}

}  // namespace mjpeg
