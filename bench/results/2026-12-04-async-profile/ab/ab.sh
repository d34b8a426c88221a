#!/bin/bash
# CPU per viewer-frame (mjpeg-load, 10 s, ramp 2 s) of each server in turn, the order reversed every
# other round; server on core 0, mjpeg-load on core 1, 640x480 replay at 30 fps.
# usage: ab.sh OUT "1000 2000" ROUNDS name=binary ...   (BUILD=build/default)
out=$1; loads=$2; rounds=$3; shift 3
mkdir -p $out; ulimit -n 20000
B=${BUILD:-build/default}; F=$B/bench/frames/640x480-q50
names=(); declare -A bin
for kv in "$@"; do names+=("${kv%%=*}"); bin[${kv%%=*}]=${kv#*=}; done
port=18800
for r in $(seq 1 $rounds); do for n in $loads; do
  order=("${names[@]}"); if (( r % 2 == 0 )); then order=($(printf '%s\n' "${names[@]}" | tac)); fi
  for v in "${order[@]}"; do port=$((port+1))
    taskset -c 0 ${bin[$v]} --port $port --source $F --fps 30 --duration 30 --quiet > $out/$v-$n-$r.srv 2>&1 & pid=$!
    sleep 0.7
    taskset -c 1 $B/bench/mjpeg-load http://127.0.0.1:$port/stream -n $n -d 10 --ramp 2 --no-per-viewer --server-pid $pid --json $out/$v-$n-$r.json > /dev/null 2>&1
    kill $pid; wait $pid 2>/dev/null
    python3 -c "import json;r=json.load(open('$out/$v-$n-$r.json'));print('$v $n r$r', round(r['server']['cpu_us_per_viewer_frame'],2),'us', round(r['viewers']['fps']['mean'],1),'fps cpu%',round(r['server']['cpu_percent']), 'age p99', r['viewers']['frame_age_ms']['p99'])"
  done
done; done
