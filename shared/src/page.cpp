#include "mjpeg/page.hpp"

#include <cstdio>

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
  h1 { font-size: 1.1em; font-weight: 600; margin: 0 0 .6em; }
  img { display: block; width: 100%; height: auto; background: #000; aspect-ratio: @WIDTH@ / @HEIGHT@; }
  #status { margin-top: .6em; font-variant-numeric: tabular-nums; }
  #status b { color: #fff; }
  a { color: #8cf; }
</style>
</head>
<body>
<main>
<h1>mjpeg-concurrency &middot; <span id="variant">@VARIANT@</span></h1>
<img id="stream" src="stream" width="@WIDTH@" height="@HEIGHT@" alt="live stream">
<div id="status">variant <b>@VARIANT@</b> &middot; <b id="fps">&ndash;</b> fps (target @FPS@) &middot;
<b id="viewers">&ndash;</b> viewers &middot; image <b id="size">not yet decoded</b> &middot;
<span id="note">waiting for /stats</span><span id="camera"></span></div>
<p><a href="stream">stream</a> &middot; <a href="snapshot">snapshot</a> &middot; <a href="stats">stats</a></p>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const img = $("stream");
// Opened as http://user:pass@host/, a relative URL would carry the credentials along, and fetch()
// refuses such URLs. location.origin never holds them; the browser still sends the credentials it
// was given for this origin (credentials: "same-origin").
const stats_url = location.origin + location.pathname.replace(/[^/]*$/, "") + "stats";
async function refresh() {
  // The decoded size proves the stream reached the browser as a JPEG it could decode.
  if (img.naturalWidth > 0) $("size").textContent = img.naturalWidth + "\u00d7" + img.naturalHeight;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2000);
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
  } catch (e) {
    // Say what happened: only a request that got no answer in time means a busy server.
    $("note").textContent = e.name === "AbortError"
        ? "stats did not answer within 2 s (the server is busy with the stream)"
        : "stats unavailable: " + e.message;
  } finally {
    clearTimeout(timer);
  }
}
setTimeout(refresh, 300);
setInterval(refresh, 1000);
</script>
</body>
</html>
)html";

void replace_all(std::string& text, std::string_view key, std::string_view value) {
  for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
}

}  // namespace

std::string viewer_page(std::string_view variant, int width, int height, double fps) {
  std::string page{page_template};
  char fps_text[32];
  std::snprintf(fps_text, sizeof fps_text, "%.1f", fps);
  replace_all(page, "@VARIANT@", variant);
  replace_all(page, "@WIDTH@", std::to_string(width));
  replace_all(page, "@HEIGHT@", std::to_string(height));
  replace_all(page, "@FPS@", fps_text);
  return page;
}

}  // namespace mjpeg
