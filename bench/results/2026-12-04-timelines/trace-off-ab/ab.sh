#!/bin/bash
# A/B/C: mjpeg-async from main at 1d5fdcc (old), from branch trace without --trace (new) and with
# --trace (on), alternated (the order rotates each round); one mjpeg-load for all. 500 viewers,
# 10 s runs, ramp 2 s, the synthetic test card at 640x480, 30 fps; server on core 0, load on core 1.
# usage: OLD=… NEW=… LOAD=… ab.sh ROUNDS OUTDIR
set -u
rounds=$1; out=$2; mkdir -p "$out"
: "${OLD:?mjpeg-async from main}" "${NEW:?mjpeg-async from this branch}" "${LOAD:?mjpeg-load}"
run() { # tag round server-command
  taskset -c 1 "$LOAD" -n 500 -d 10 --ramp 2 --no-per-viewer --json "$out/$1-500-$2.json" \
    --launch "taskset -c 0 $3 --port 0 --fps 30 --duration 60 --quiet" >"$out/$1-500-$2.log" 2>&1
}
for i in $(seq 1 "$rounds"); do
  case $((i % 3)) in 1) order="old new on";; 2) order="new on old";; 0) order="on old new";; esac
  for v in $order; do
    case $v in
      old) run old "$i" "$OLD";;
      new) run new "$i" "$NEW";;
      on) run on "$i" "$NEW --trace $out/trace-$i.txt";;
    esac
  done
  rm -f "$out"/trace-*.txt
done
