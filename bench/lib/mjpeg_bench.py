"""bench/lib: what the Python bench scripts (compare, network, cluster) share, once.

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
  from mjpeg_bench import Server, frame_set, http_get, pin, sample

Server     one launcher: our servers (--port 0, ready at their URL line) and peers (ready when a
           probe answers), pinned to a core, optionally inside a network namespace; stop() is
           SIGTERM, then SIGKILL after 5 s.
sample     one /proc sampler: CPU seconds (schedstat, nanoseconds; and ticks, which keep exited
           threads) and RSS of a process and its children (worker processes), threads;
           cpu_between the CPU between two samples.
http_get   one HTTP GET on loopback, bounded in time.
frame_set  one fixed JPEG frame set per size, made once by mjpeg-frames: identical bytes every run.
"""

import glob
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUALITY = 50


def log(msg):
    print(msg, flush=True)


def pin(core):
    """taskset prefix for one core, when there are at least two and taskset exists; [] otherwise."""
    if core is not None and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def free_port():
    """A loopback port free just now (for peers that take no --port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0, limit=None):
    """(status, body bytes, at most `limit`), or (0, b"") when nothing answers within `timeout`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read() if limit is None else r.read(limit)
    except (OSError, ValueError):
        return 0, b""


def frame_set(build, size="640x480", quality=QUALITY, count=60):
    """The fixed frame set of one size (made once, under build/bench/frames/): the same bytes for
    every server, camera and run."""
    w, h = size.split("x")
    folder = os.path.join(build, "bench", "frames", f"{size}-q{quality}")
    if not glob.glob(os.path.join(folder, "*.jpg")):
        subprocess.run([os.path.join(build, "bench", "mjpeg-frames"), folder, "--width", w, "--height", h,
                        "--quality", str(quality), "--count", str(count)],
                       check=True, timeout=120, stdout=subprocess.DEVNULL)
    return folder


def _tree(pid):
    pids = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def sample(pid):
    """{cpu_s, ticks_s, rss_mb, threads} of `pid` and its children, now: CPU from every live
    thread's schedstat (nanoseconds, unlike the 10 ms ticks of /proc/PID/stat), and the processes'
    utime + stime in ticks (which keep the time of threads that have exited)."""
    cpu, ticks, rss, threads = 0.0, 0.0, 0.0, 0
    tree = _tree(pid)
    for p in tree:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            tasks = []
        for t in tasks:
            try:  # a thread may exit while we look
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    cpu += int(f.read().split()[0]) / 1e9
                threads += 1
            except OSError:
                pass
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        except OSError:
            pass
    return {"cpu_s": cpu, "ticks_s": ticks, "rss_mb": rss, "threads": threads, "processes": len(tree)}


def cpu_between(before, after):
    """CPU seconds between two samples: schedstat's, unless threads exited in between (their time
    is gone from the sum, and the ticks, which keep it, exceed it by more than two ticks a process)."""
    sched = after["cpu_s"] - before["cpu_s"]
    ticks = after["ticks_s"] - before["ticks_s"]
    return ticks if ticks > sched + 0.02 * max(1, after.get("processes", 1)) else sched


def idle_sample(pid, seconds=5.0):
    """CPU % (all threads), RSS and threads of an idle server over `seconds`."""
    t0, s0 = time.monotonic(), sample(pid)
    time.sleep(seconds)
    s1, t1 = sample(pid), time.monotonic()
    return {"cpu_percent": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / (t1 - t0), "rss_mb_max": s1["rss_mb"],
            "threads_max": s1["threads"]}


class Server:
    """A server started for one run, its stderr (and a peer's stdout) in `log_path`.

    Ours (ready=None): "--port 0" is added unless `cmd` names a port, and it is ready at its URL
    line ("… listening on http://host:port/"), within `ready_s`. A peer: ready once `ready()` is
    true, at `url`. `core` pins it (None: not pinned); `prefix` goes in front of everything (e.g.
    ["ip", "netns", "exec", NAME])."""

    def __init__(self, cmd, log_path, core=0, prefix=(), ready=None, url=None, ready_s=30):
        ours = ready is None
        cmd = list(cmd) + (["--port", "0"] if ours and "--port" not in cmd else [])
        self.cmd = list(prefix) + pin(core) + cmd
        self.err = open(log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE if ours else self.err,
                                     stderr=self.err if ours else subprocess.STDOUT, text=True)
        self.url = url
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if ours:
                readable, _, _ = select.select([self.proc.stdout], [], [], 0.2)
                if not readable:
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    break
                m = re.search(r"listening on (http://\S+/)", line)
                if m:
                    self.url = m.group(1)
                    break
            elif ready():
                break
            else:
                time.sleep(0.2)
        else:
            self.url = None
        if not self.url or (not ours and not self.alive()):
            self.stop()
            raise RuntimeError(f"did not start serving: {' '.join(self.cmd)}; see {log_path}")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        return int(re.search(r":(\d+)/", self.url).group(1))

    def alive(self):
        return self.proc.poll() is None

    def stats(self):
        """Its /stats, parsed."""
        status, body = http_get(self.url + "stats")
        if status != 200:
            raise RuntimeError(f"/stats answered {status}")
        return json.loads(body)

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s. Returns (exit code, seconds to stop)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return self.proc.returncode, time.monotonic() - start


class Lan:
    """Hosts on one switch, each in its own network namespace (addresses 10.77.0.1, .2, … in the
    order given), downlinks shaped with tc: the tests' own implementation (tests/support/netns.hpp)
    through build/<preset>/tests/mjpeg-lan, so tests and benchmarks build the same networks. Root
    only. `hosts`: (name, downlink rate in bit/s or None, bottleneck queue in ms)."""

    def __init__(self, build, prefix, congestion, hosts, ready_s=60):
        args = [name if rate is None else f"{name}={int(rate)}/{int(queue_ms)}" for name, rate, queue_ms in hosts]
        self.proc = subprocess.Popen([os.path.join(build, "tests", "mjpeg-lan"), prefix, congestion, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.hosts = {}
        # Its lines come at once, when the network is built; past `ready_s` it is killed, which
        # ends the reading.
        watchdog = threading.Timer(ready_s, self.proc.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                if line.strip() == "ready":
                    break
                name, netns, address = line.split()
                self.hosts[name] = (netns, address)
        finally:
            watchdog.cancel()
        if len(self.hosts) != len(hosts):
            self.close()
            raise RuntimeError(f"mjpeg-lan did not build the network: {self.proc.stderr.read().strip()[:300]}")

    def address(self, name):
        return self.hosts[name][1]

    def exec_prefix(self, name):
        """What runs a command inside host `name`."""
        return ["ip", "netns", "exec", self.hosts[name][0]]

    def close(self):
        """Removes every namespace (mjpeg-lan does, when its input closes)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=30)
