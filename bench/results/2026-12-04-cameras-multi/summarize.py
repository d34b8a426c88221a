#!/usr/bin/env python3
"""Tables for run.sh's runs: CPU per viewer-frame, fps and frame age p99 for 1 camera x 400 viewers,
4 x 100 and 8 x 50, per server, each round and the median; the ratio to 1 camera in the same round.
usage: summarize.py RUNS_DIR"""
import glob, json, os, statistics as st, sys

rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    v, shape, i = os.path.basename(f)[:-5].rsplit("-", 2)
    j = json.load(open(f))
    rows.setdefault((v, int(i)), {})[shape] = {
        "cpu": j["server"]["cpu_us_per_viewer_frame"], "fps": j["viewers"]["fps"]["mean"],
        "p99": j["viewers"]["frame_age_ms"]["p99"], "load": j["load_cpu_percent"]}
SHAPES = ["1x400", "4x100", "8x50"]
print("## Per round: CPU µs per viewer-frame (server pinned to core 0), fps, frame age p99 ms\n")
print("| server | round | cameras x viewers | µs/viewer-frame | vs 1 camera | fps | age p99 ms | load CPU % |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for (v, i), r in sorted(rows.items()):
    for s in SHAPES:
        if s not in r:
            continue
        x = r[s]
        ratio = x["cpu"] / r["1x400"]["cpu"] if "1x400" in r else float("nan")
        print(f"| {v} | {i} | {s} | {x['cpu']:.2f} | {ratio:.3f} | {x['fps']:.1f} | {x['p99']:.1f} | {x['load']:.0f} |")
        med.setdefault((v, s), []).append((x, ratio))
print("\n## Medians over the rounds\n")
print("| server | cameras x viewers | µs/viewer-frame | vs 1 camera | fps | age p99 ms |")
print("|---|---|---|---|---|---|")
for (v, s), l in sorted(med.items(), key=lambda kv: (kv[0][0], SHAPES.index(kv[0][1]))):
    print(f"| {v} | {s} | {st.median(x['cpu'] for x, _ in l):.2f} | {st.median(r for _, r in l):.3f} | "
          f"{st.median(x['fps'] for x, _ in l):.1f} | {st.median(x['p99'] for x, _ in l):.1f} |")
