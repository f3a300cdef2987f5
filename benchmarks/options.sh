#!/usr/bin/env bash
# OPTIONS answered per second by `sipactors serve` under SIPp, beside a SIPp UAS answering the same
# scenario (the harness ceiling), and their ratio.
#
#   benchmarks/options.sh [-n reps=1]          (make bench-options; REPS=3 make bench-options)
#
# The search is the shared bench's (../shared/bench, see its README): maxrate.sh doubles the rate from
# START until a fixed-rate run fails, then bisects; a run passes with <= 0.1 % failed and ok_cps >= 95 %
# of the rate; anchors.sh alternates the two targets (A B, B A, ...) and prints the medians and the ratio
# within the same repetition. Those scripts know register/call/message only, so they are called
# unchanged through a directory of links in which their "register" scenario is this OPTIONS pair:
#   scenarios/register.xml -> sipp/uac_options.xml   (the load: OPTIONS, expect 200; a 100 is allowed)
#   scenarios/reg_stub.xml -> sipp/uas_options.xml   ("direct": SIPp answers 200 itself, the ceiling)
#
# Everything runs on core 1 (core 0 is left to other work on this machine): the server, the SIPp UAC and
# the SIPp UAS. So the ceiling is what SIPp alone turns around on that core, and the server shares its
# core with the load generator (cpu1= near 100 on every run is expected; read the ratio, not cpu1).
# Traffic stays on 127.0.0.1; the server runs with its normal entry point, no trace, and is stopped by PID.
#
# env: BENCH=<shared bench dir>  PORT=5075 (server)  CPU=1  START=250  STEP_SECS=5  BUDGET=60
#      MAX_RUNS=10 (per search)  UAC_PORT=5180 STUB_PORT=5191 (not the shared bench's defaults, so a
#      bench run by another session does not collide)  QUIET_PCT=60 QUIET_TRIES=10 (run.sh waits, bounded,
#      for a second with at most this % of both cores busy: core 0 may be busy with other work all along)
# Caveats: a non-INVITE server transaction lives Timer J = 32 s after its 200 (UDP), so the transactions
# of a 5-s step end during later steps, and a step after an overloaded one inherits its backlog (the
# bisection's later steps then fail lower); STEP_SECS=40 approaches the steady state (~10 min a search).
# Bounded: 2 searches per repetition, each <= MAX_RUNS runs of STEP_SECS s and no new run after BUDGET s
# (about 3-4 min per repetition with the defaults, including run.sh's bounded waits for a quiet core).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BENCH=${BENCH:-$REPO/../shared/bench}
reps=1
while getopts "n:" o; do case $o in n) reps=$OPTARG ;; *) sed -n '2,30p' "$0"; exit 2 ;; esac; done

CPU=${CPU:-1}; PORT=${PORT:-5075}
export UAC_CPU=$CPU UAS_CPU=$CPU STUB_CPU=$CPU
export UAC_PORT=${UAC_PORT:-5180} STUB_PORT=${STUB_PORT:-5191} UAS_PORT=${UAS_PORT:-5190}
export START=${START:-250} STEP_SECS=${STEP_SECS:-5} BUDGET=${BUDGET:-60} MAX_RUNS=${MAX_RUNS:-10}
export QUIET_PCT=${QUIET_PCT:-60} QUIET_TRIES=${QUIET_TRIES:-10}
for tool in sipp taskset ss python3; do
  command -v "$tool" >/dev/null || { echo "options.sh: $tool is needed" >&2; exit 2; }
done
[ -x "$BENCH/anchors.sh" ] || { echo "options.sh: no shared bench at $BENCH (set BENCH=)" >&2; exit 2; }
[ -x "$REPO/.venv/bin/sipactors" ] || { echo "options.sh: no venv: make .venv/bin/.installed" >&2; exit 2; }
for p in "$PORT" "$UAC_PORT" "$STUB_PORT"; do
  if ss -lntu | grep -q "127.0.0.1:$p "; then echo "options.sh: port $p is busy" >&2; exit 2; fi
done

W=$(mktemp -d -t optionsbench.XXXXXX)
server=""
cleanup() {  # the server this script started, by PID: SIGINT is its clean stop
  if [ -n "$server" ]; then
    kill -INT "$server" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# the shared scripts, unchanged, with this benchmark's scenarios in their "register" slot
mkdir -p "$W/bench/scenarios"
for script in run.sh maxrate.sh anchors.sh; do ln -s "$BENCH/$script" "$W/bench/$script"; done
ln -s "$HERE/sipp/uac_options.xml" "$W/bench/scenarios/register.xml"
ln -s "$HERE/sipp/uas_options.xml" "$W/bench/scenarios/reg_stub.xml"

taskset -c "$CPU" "$REPO/.venv/bin/sipactors" serve --host 127.0.0.1 --port "$PORT" >"$W/server.out" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on udp" "$W/server.out" && break
                        kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
grep -q "listening on udp" "$W/server.out" || { echo "options.sh: the server did not start:" >&2
                                                cat "$W/server.out" >&2; exit 1; }

echo "# OPTIONS/s, sipactors serve (127.0.0.1:$PORT, UDP, no trace) vs SIPp UAS (ceiling);" \
     "server, SIPp UAC and SIPp UAS all pinned to core $CPU (taskset -c $CPU);" \
     "$reps repetition(s), ${STEP_SECS}-s steps from $START/s, <= 0.1 % failed"
echo "# $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ,-]*' | head -1);" \
     "$("$REPO/.venv/bin/python" -c 'import sipactors; print("sipactors", sipactors.__version__)');" \
     "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# every run line goes to stderr as it comes (anchors.sh appends them to OUT; its own "rep=" lines,
# which it also appends there, go to stdout only); scenario=register in them means this OPTIONS pair
OUT=/dev/stderr "$W/bench/anchors.sh" -n "$reps" -s register direct "sipactors=127.0.0.1:$PORT" \
    2> >(sed -u '/^rep=/d; s/scenario=register/scenario=options/' >&2) | sed -u 's/scenario=register/scenario=options/; s/^register /options  /' |
  tee "$W/summary"
kill -0 "$server" 2>/dev/null || { echo "options.sh: the server died during the run:" >&2; cat "$W/server.out" >&2; exit 1; }

# the summary table's rows: scenario target median [min..max] p50 p99 x<first target>
awk '$1 == "options" && $2 == "direct" { ceiling = $3 } $1 == "options" && $2 == "sipactors" { rate = $3; ratio = $7 }
     END { if (rate == "" || ceiling == "") exit 1
           printf "\nOPTIONS/s (median): sipactors %s, SIPp UAS ceiling %s, ratio %s (core 1 shared by all)\n", rate, ceiling, ratio }' \
    "$W/summary"
