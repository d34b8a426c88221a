#!/bin/bash
# Several cameras against one: the same 400 viewers on 1 camera, spread over 4 cameras (100 each)
# and over 8 cameras (50 each), on mjpeg-async and mjpeg-io-uring, the order rotated every round.
# Every camera replays the same 640x480 frames (mjpeg-frames … --quality 50 --count 60) at 30 fps,
# so only the number of cameras (capture threads, hubs) changes. Server pinned to core 0,
# mjpeg-load to core 1 (its --path spreads the viewers over the cameras in turn), 12 s runs.
# CPU per viewer-frame, fps and frame age p99 are mjpeg-load's.
# usage: run.sh ROUNDS OUTDIR   (BUILD=build/default, VARIANTS="async io_uring")
set -u
rounds=$1; out=$2; mkdir -p "$out"
build=${BUILD:-build/default}
load=$build/bench/mjpeg-load
frames=$build/bench/frames/640x480-q50
[ -d "$frames" ] || "$build/bench/mjpeg-frames" "$frames" --width 640 --height 480 --quality 50 --count 60
declare -A bin=([async]=$build/variants/async/mjpeg-async [io_uring]=$build/variants/io_uring/mjpeg-io-uring)
run() { # variant cameras viewers-per-camera port tag
  ulimit -n 20000
  local cams=() paths=()
  if [ "$2" -eq 1 ]; then
    cams=(--source "$frames"); paths=(--path /stream)
  else
    for c in $(seq 1 "$2"); do cams+=(--camera "cam$c=$frames"); paths+=(--path "/cam$c/stream"); done
  fi
  taskset -c 0 "${bin[$1]}" --port "$4" "${cams[@]}" --fps 30 --duration 30 --quiet >"$out/$5.server.log" 2>&1 &
  local pid=$!
  # Ready when it prints its URL line (every camera has its first frame by then).
  for _ in $(seq 100); do grep -q listening "$out/$5.server.log" && break; sleep 0.1; done
  taskset -c 1 "$load" "http://127.0.0.1:$4/stream" "${paths[@]}" -n $(( $2 * $3 )) -d 12 --ramp 2 --no-per-viewer \
    --server-pid "$pid" --json "$out/$5.json" >"$out/$5.log" 2>&1
  kill -TERM "$pid"; wait "$pid"
}
port=18900
configs=("1 400" "4 100" "8 50")
for i in $(seq 1 "$rounds"); do
  for c in "${configs[@]}"; do
    set -- $c
    for v in ${VARIANTS:-async io_uring}; do
      port=$((port + 1))
      run "$v" "$1" "$2" "$port" "$v-$1x$2-$i"
    done
  done
done
