#!/bin/bash
# Where async's CPU goes at N viewers, before and after a change: for each server (and round, the
# order reversed every other round), 640x480 replayed frames at 30 fps, the server pinned to core 0
# and mjpeg-load (N viewers, 12 s, ramp 2 s) to core 1; from second 5, `perf record -g` samples the
# server at 2 kHz for 5 s. CPU per viewer-frame is mjpeg-load's over its whole window (perf's own
# cost included, alike for both). Keeps TAG.json (mjpeg-load) and TAG.data (perf) in OUTDIR.
# usage: profile.sh OUTDIR ROUNDS "2000" NAME=BINARY ...   (BUILD=build/default)
set -u
out=$1; rounds=$2; loads=$3; shift 3
mkdir -p "$out"; ulimit -n 20000
build=${BUILD:-build/default}
frames=$build/bench/frames/640x480-q50
[ -d "$frames" ] || "$build/bench/mjpeg-frames" "$frames" --width 640 --height 480 --quality 50 --count 60
names=(); declare -A bin
for kv in "$@"; do names+=("${kv%%=*}"); bin[${kv%%=*}]=${kv#*=}; done
port=18900
for r in $(seq 1 "$rounds"); do for n in $loads; do
  order=("${names[@]}"); (( r % 2 == 0 )) && order=($(printf '%s\n' "${names[@]}" | tac))
  for v in "${order[@]}"; do
    port=$((port + 1)); tag=$v-$n-$r
    taskset -c 0 "${bin[$v]}" --port $port --source "$frames" --fps 30 --duration 30 --quiet >/dev/null 2>&1 &
    pid=$!; sleep 0.7
    taskset -c 1 "$build/bench/mjpeg-load" "http://127.0.0.1:$port/stream" -n "$n" -d 12 --ramp 2 --no-per-viewer \
      --server-pid $pid --json "$out/$tag.json" >/dev/null 2>&1 &
    lpid=$!; sleep 5
    perf record -q -F 2000 -g -p $pid -o "$out/$tag.data" -- sleep 5 >/dev/null 2>&1
    wait $lpid; kill -TERM $pid; wait $pid
  done
done; done
