#!/usr/bin/env python3
"""Tables from profile.sh's folder: CPU per viewer-frame, and where the sampled cycles go (perf
report on each run's perf.data).
usage: summarize.py DIR > summary.md"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys

d = sys.argv[1]
runs = {}
for path in sorted(glob.glob(os.path.join(d, "*.json"))):
    tag = os.path.basename(path)[:-5]
    name, n, rnd = tag.rsplit("-", 2)
    with open(path) as f:
        rep = json.load(f)
    r = {"name": name, "n": int(n), "round": int(rnd), "cpu": rep["server"]["cpu_us_per_viewer_frame"],
         "fps": rep["viewers"]["fps"]["mean"]}
    data = os.path.join(d, tag + ".data")
    if os.path.exists(data):
        out = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym", "--stdio", "-g", "none"],
                             capture_output=True, text=True).stdout
        children, selfs, user = {}, {}, 0.0
        for line in out.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
            if not m:
                continue
            c, s, kind, sym = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).strip()
            children.setdefault(sym, c)
            selfs.setdefault(sym, s)
            if kind == ".":
                user += s
        pick = lambda *names: max((children.get(x, 0.0) for x in names), default=0.0)
        w = {"sendmsg": pick("__libc_sendmsg"), "getsockopt": pick("__getsockopt"),
             "epoll_wait": pick("epoll_wait"), "futex": pick("__x64_sys_futex"),
             # user space outside the two system calls' own wrappers (counted in theirs)
             "user": user - selfs.get("__libc_sendmsg", 0.0) - selfs.get("__getsockopt", 0.0)}
        w["rest"] = 100.0 - sum(w.values())
        r["where"] = w
    runs[tag] = r

names = list(dict.fromkeys(r["name"] for r in runs.values()))
loads = sorted({r["n"] for r in runs.values()})
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("## CPU µs per viewer-frame (mjpeg-load, whole window), per round\n")
print("| viewers | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
for n in loads:
    for rnd in sorted({r["round"] for r in runs.values()}):
        cells = [next((f"{r['cpu']:.2f} ({r['fps']:.1f} fps)" for r in runs.values()
                       if r["name"] == x and r["n"] == n and r["round"] == rnd), "–") for x in names]
        print(f"| {n} r{rnd} | " + " | ".join(cells) + " |")
    print(f"| {n} median | " + " | ".join(f"{med([r['cpu'] for r in runs.values() if r['name'] == x and r['n'] == n]):.2f}"
                                         for x in names) + " |")
print("\n## Where the sampled CPU goes (perf record -g, 5 s; % of the server's samples, medians)\n")
print("sendmsg and getsockopt count everything under the call, its user-space wrapper and the loopback "
      "receive path included; user = the rest of user space (our code, Asio, libc); rest = the rest of the "
      "kernel (timers, interrupts, scheduling).\n")
wk = ["sendmsg", "getsockopt", "epoll_wait", "futex", "user", "rest"]
print("| viewers | server | " + " | ".join(wk) + " |\n|---|---|" + "---|" * len(wk))
for n in loads:
    for x in names:
        rs = [r for r in runs.values() if r["name"] == x and r["n"] == n and r.get("where")]
        print(f"| {n} | {x} | " + " | ".join(f"{med([r['where'][k] for r in rs]):.1f} %" for k in wk) + " |")
