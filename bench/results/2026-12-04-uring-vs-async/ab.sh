#!/bin/bash
# Readiness against completion, alternated: mjpeg-async as main had it ("before": a writability
# poll before every frame), mjpeg-async of this branch ("async": the poll skipped when the gate
# finds nothing queued) and mjpeg-io-uring, at each viewer count, the order rotated every round.
# Server pinned to core 0, mjpeg-load to core 1, 640x480 replayed frames at 30 fps, 12 s runs.
# CPU per viewer-frame is mjpeg-load's (server utime+stime over the frames delivered after ramp and
# warm-up); system calls per viewer-frame are counted by perf stat on the server for 5 s in the
# middle of the run, divided by the growth of /stats frames_sent read at the start and end of
# perf's window.
# usage: ab.sh ROUNDS OUTDIR   (BUILD=build/default, BEFORE=path of main's mjpeg-async, LOADS="100 1000 2000")
set -u
rounds=$1; out=$2; mkdir -p "$out"
build=${BUILD:-build/default}
load=$build/bench/mjpeg-load
frames=$build/bench/frames/640x480-q50
[ -d "$frames" ] || "$build/bench/mjpeg-frames" "$frames" --width 640 --height 480 --quality 50 --count 60
declare -A bin=([before]=${BEFORE:?BEFORE=path of main\'s mjpeg-async} [async]=$build/variants/async/mjpeg-async
                [io_uring]=$build/variants/io_uring/mjpeg-io-uring)
events=raw_syscalls:sys_enter,syscalls:sys_enter_sendmsg,syscalls:sys_enter_getsockopt,syscalls:sys_enter_poll,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,syscalls:sys_enter_futex
sent() { curl -s "http://127.0.0.1:$1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["frames_sent"])'; }
run() { # variant tag viewers port
  ulimit -n 20000
  taskset -c 0 "${bin[$1]}" --port "$4" --source "$frames" --fps 30 --duration 40 --quiet >"$out/$2.server.log" 2>&1 &
  local pid=$!
  sleep 1
  local ramp=$([ "$3" -le 100 ] && echo 1 || echo 2)
  taskset -c 1 "$load" "http://127.0.0.1:$4/stream" -n "$3" -d 12 --ramp "$ramp" --no-per-viewer \
    --server-pid "$pid" --json "$out/$2.json" >"$out/$2.log" 2>&1 &
  local lpid=$!
  sleep 5
  # The frames counted inside perf's window: read at its start and at its end.
  perf stat -x, -e "$events" -p "$pid" -o "$out/$2.perf" -- \
    bash -c "$(declare -f sent); a=\$(sent $4); sleep 5; b=\$(sent $4); echo \$((b - a)) >'$out/$2.frames'"
  wait "$lpid"
  kill -TERM "$pid"; wait "$pid"
}
port=18700
orders=("before async io_uring" "async io_uring before" "io_uring before async")
for i in $(seq 1 "$rounds"); do
  for n in ${LOADS:-100 1000 2000}; do
    for v in ${orders[$(( (i - 1) % 3 ))]}; do
      port=$((port + 1))
      run "$v" "$v-$n-$i" "$n" "$port"
    done
  done
done
