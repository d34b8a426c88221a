#!/usr/bin/env python3
"""bench/timeline on a small committed trace: it writes a well-formed SVG with a row per viewer, and a PNG.

Usage: timeline_test.py TIMELINE TRACE OUTDIR
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

timeline, trace, outdir = sys.argv[1:4]
os.makedirs(outdir, exist_ok=True)
out = os.path.join(outdir, "timeline-test")
for ext in ("svg", "png"):
    if os.path.exists(f"{out}.{ext}"):
        os.remove(f"{out}.{ext}")
run = subprocess.run([timeline, trace, "--out", out, "--title", "test"], capture_output=True, text=True, check=True)
assert "3 viewers" in run.stdout, run.stdout  # the committed single_thread trace has three
root = ElementTree.parse(out + ".svg").getroot()
assert root.tag.endswith("svg"), root.tag
text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
for label in ("viewer 1", "viewer 2", "viewer 3", "served", "waiting", "refused (503)"):
    assert label in text, f"{label!r} missing from the SVG's text: {text}"
with open(out + ".png", "rb") as png:
    assert png.read(8) == b"\x89PNG\r\n\x1a\n", "not a PNG"
print("ok")
