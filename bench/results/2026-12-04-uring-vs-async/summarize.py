#!/usr/bin/env python3
"""Tables for ab.sh's runs: CPU and system calls per viewer-frame, ratios per round, medians;
each model against the floor (../2026-12-04-floor/floor.json, sendmsg at the same viewer count).
usage: summarize.py RUNS_DIR"""
import glob, json, os, statistics as st, sys

d = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
floor = {r["viewers"]: r["cpu_us_per_send"] for r in json.load(open(os.path.join(here, "..", "2026-12-04-floor", "floor.json")))["results"]
         if r["method"] == "sendmsg"}
KINDS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_getsockopt", "syscalls:sys_enter_poll",
         "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_write", "syscalls:sys_enter_futex"]
SHORT = ["all", "sendmsg", "getsockopt", "poll", "epoll_wait", "io_uring_enter", "write", "futex"]
VARIANTS = ["before", "async", "io_uring"]


def perf(path, frames):
    counts = {}
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[2] in KINDS and parts[0].isdigit():
            counts[parts[2]] = int(parts[0])
    return {s: counts.get(k, 0) / frames for k, s in zip(KINDS, SHORT)} if frames else None


rows = {}
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    v, n, i = os.path.basename(f)[:-5].rsplit("-", 2)
    j = json.load(open(f))
    frames = int(open(f[:-5] + ".frames").read().strip() or 0)
    rows.setdefault((int(n), int(i)), {})[v] = {
        "cpu": j["server"]["cpu_us_per_viewer_frame"], "fps": j["viewers"]["fps"]["mean"],
        "p99": j["viewers"]["frame_age_ms"]["p99"], "load": j["load_cpu_percent"], "calls": perf(f[:-5] + ".perf", frames)}

print("## CPU µs per viewer-frame (server pinned to core 0), per round\n")
print("| viewers | round | before | async | io_uring | async/before | io_uring/async | fps before / async / io_uring | load CPU % (max) |")
print("|---|---|---|---|---|---|---|---|---|")
agg = {}
for (n, i), r in sorted(rows.items()):
    if not all(v in r for v in VARIANTS):
        continue
    b, a, u = (r[v] for v in VARIANTS)
    print(f"| {n} | {i} | {b['cpu']:.2f} | {a['cpu']:.2f} | {u['cpu']:.2f} | {a['cpu']/b['cpu']:.3f} | {u['cpu']/a['cpu']:.3f} | "
          f"{b['fps']:.1f} / {a['fps']:.1f} / {u['fps']:.1f} | {max(x['load'] for x in (b, a, u)):.0f} |")
    agg.setdefault(n, []).append(r)

print("\n## Medians over the rounds, and against the floor (mjpeg-floor, sendmsg, same viewer count)\n")
print("| viewers | before µs | async µs | io_uring µs | async/before | io_uring/async | floor µs | before/floor | async/floor | io_uring/floor |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n, l in sorted(agg.items()):
    med = {v: st.median(r[v]["cpu"] for r in l) for v in VARIANTS}
    ab = st.median(r["async"]["cpu"] / r["before"]["cpu"] for r in l)
    ua = st.median(r["io_uring"]["cpu"] / r["async"]["cpu"] for r in l)
    fl = floor.get(n)
    tail = " | ".join(f"{med[v]/fl:.2f}" for v in VARIANTS) if fl else "– | – | –"
    print(f"| {n} | {med['before']:.2f} | {med['async']:.2f} | {med['io_uring']:.2f} | {ab:.3f} | {ua:.3f} | "
          f"{fl if fl else '–'} | {tail} |")

print("\n## System calls per viewer-frame (perf stat on the server, 5 s mid-run; medians over the rounds)\n")
print("Only runs at full rate (every server at 29 fps or more) count: where the server fell behind, the")
print("/stats reads that bound perf's window were late or failed, and the frames in it are unknown.\n")
print("| viewers | server | " + " | ".join(SHORT) + " |")
print("|---|---|" + "---|" * len(SHORT))
for n, l in sorted(agg.items()):
    for v in VARIANTS:
        calls = [r[v]["calls"] for r in l if r[v]["calls"] and min(r[x]["fps"] for x in VARIANTS) >= 29]
        if calls:
            print(f"| {n} | {v} | " + " | ".join(f"{st.median(c[s] for c in calls):.3f}" for s in SHORT) + " |")
