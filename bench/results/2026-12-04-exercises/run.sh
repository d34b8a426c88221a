#!/bin/bash
# Figures quoted in the exercises of chapters 4b and 6, measured on the answers' builds.
# usage: bench/results/2026-12-04-exercises/run.sh   (after make exercises-check, from the repo root)
set -u
ex=build/exercises/exercises
load=build/default/bench/mjpeg-load
out=bench/results/2026-12-04-exercises
# 4b.2: completions per io_uring_enter, 20 viewers for 1 s and 500 viewers for 4 s (then 5 s idle,
# so the log's rate limit has room again for the line).
for n in 20 500; do
  $ex/mjpeg-exercise-4b.2 --port 0 --width 320 --height 240 > $out/4b.2-$n.log 2>&1 & pid=$!
  sleep 0.5
  url=$(grep -o "http://[0-9.:]*/" $out/4b.2-$n.log | head -1)
  if [ "$n" = 20 ]; then $load ${url}stream -n 20 -d 1 --burst > /dev/null 2>&1; else
    $load ${url}stream -n 500 -d 4 --ramp 1 > /dev/null 2>&1; sleep 5; fi
  kill -TERM $pid; wait $pid
  grep "completions in" $out/4b.2-$n.log > $out/4b.2-$n.txt; rm $out/4b.2-$n.log
done
# 6.2: ten runs of twelve one-frame visitors against --workers 2 of the answer; how many visits
# were refused or reset at the first knock (the check's own visit, counted).
python3 $out/visits.py $ex/mjpeg-exercise-6.2 10 > $out/6.2-refusals.txt
