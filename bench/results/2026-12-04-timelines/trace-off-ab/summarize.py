"""Ratios of the A/B/C runs: new/old and on/old, per round and as medians."""
import glob
import json
import statistics
import sys

rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/*.json")):
    tag, n, i = f.split("/")[-1][:-5].split("-")
    j = json.load(open(f))
    rows.setdefault(int(i), {})[tag] = (j["server"]["cpu_us_per_viewer_frame"], j["viewers"]["frame_age_ms"]["p99"],
                                        j["viewers"]["fps"]["mean"])
print("| round | old µs/viewer-frame | new (trace off) | on (--trace) | new/old | on/old | fps old / new / on |")
print("|---|---|---|---|---|---|---|")
ratios = {"new": [], "on": []}
for i, r in sorted(rows.items()):
    if not all(k in r for k in ("old", "new", "on")):
        continue
    o, n, t = r["old"], r["new"], r["on"]
    ratios["new"].append(n[0] / o[0])
    ratios["on"].append(t[0] / o[0])
    print(f"| {i} | {o[0]:.2f} | {n[0]:.2f} | {t[0]:.2f} | {n[0] / o[0]:.3f} | {t[0] / o[0]:.3f} | "
          f"{o[2]:.1f} / {n[2]:.1f} / {t[2]:.1f} |")
for k, v in ratios.items():
    if v:
        print(f"{k}/old CPU per viewer-frame: median {statistics.median(v):.3f}, min {min(v):.3f}, max {max(v):.3f} ({len(v)} rounds)")
