#!/bin/bash
# A/B: old (main at 1976228) and new (branch core) mjpeg-async, alternated; one mjpeg-load for both.
# usage: LOAD=/path/to/mjpeg-load ab.sh PAIRS OUTDIR   (run in a folder holding mjpeg-async-old,
# mjpeg-async-new and frames/)
set -u
pairs=$1; out=$2; mkdir -p "$out"
load=${LOAD:?set LOAD to an mjpeg-load binary}
here=$(pwd)
run() { # bin tag viewers ramp
  taskset -c 1 "$load" -n "$3" -d 10 --ramp "$4" --no-per-viewer --json "$out/$2.json" \
    --launch "taskset -c 0 $1 --port 0 --source $here/frames --fps 30 --duration 60" >"$out/$2.log" 2>&1
}
for i in $(seq 1 "$pairs"); do
  for n in ${LOADS:-1000 100}; do
    ramp=$([ $n = 1000 ] && echo 2 || echo 1)
    if [ $((i % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for v in $order; do run "$here/mjpeg-async-$v" "$v-$n-$i" $n $ramp; done
  done
done
