#!/usr/bin/env bash
# End-to-end delivery benchmark (issue 4, "## Speed"): PutEvents -> one rule -> function targets
# over HTTP (`--function NAME=http://127.0.0.1:PORT/`), load generator, server and receivers on
# the same machine.
#
#   bench/delivery/run.sh [path/to/ebridge]        # default build/ebridge; ~6 minutes
#   DURATION=15 RAMP_SECONDS=8 bench/delivery/run.sh
#   SCENARIOS="latency isolation" bench/delivery/run.sh
#
# Pieces (built here with cc -O2 into a temp dir):
#   bench/delivery/receiver.c  epoll HTTP/1.1 keep-alive receiver: answers 200 and records per
#                              event its receive time (CLOCK_REALTIME, µs), the event's put time
#                              (the "ts" the generator wrote into Detail) and its id; "hold"
#                              mode accepts and never answers, "refuse" mode binds a port
#                              without listening (connections refused)
#   bench/delivery/loadgen.c   open-loop paced PutEvents generator (timerfd; a due call goes out
#                              on the next idle keep-alive connection whatever earlier answers
#                              did); Detail = {"ts": send time in µs, "seq": n, "pad": ...}
#   bench/delivery/analyze.py  latency percentiles, delivered/s, backlog slope, duplicates
#
# Every run: a fresh server (auth off, durable --sync full, fresh data dir), one rule on the
# default bus matching source "bench.delivery", targets = functions (matched-event input, the
# engine's defaults: 64 attempts in flight per function, 30 s function timeout, RetryPolicy
# defaults). Backlog = events acknowledged by PutEvents - events received by the (healthy)
# receiver, sampled every second; its slope is fitted over the run after WARMUP seconds.
#
# Scenarios (SCENARIOS, default "latency isolation throughput"):
#   latency     LAT_RATE (1,000) events/s, 1 entry per call, DURATION s: put->target p50/p99
#   isolation   the same load, the rule has three targets: the healthy receiver, one that
#               accepts connections and never answers, one whose port refuses connections;
#               the healthy target's latency and backlog
#   throughput  paced 10-entry calls at each rate of RATES for RAMP_SECONDS s, up to the first
#               rate whose backlog is not flat (growing by more than 1% of the rate per second,
#               or more than one second of events behind at the end); then the highest flat
#               rate again for DURATION s: the sustained figure (offered = acknowledged rate;
#               PASS needs it flat, >= 10,000/s and delivered/s within 2% of it)
# Floors (binding): sustained >= 10,000 delivered events/s with a flat backlog; at 1,000
# events/s p50 < 5 ms and p99 < 25 ms; isolation: healthy p99 within 2x of the latency run's,
# backlog flat. Stretch: 50,000 events/s; p50 < 1 ms.
#
# Environment: DURATION (60), LAT_RATE (1000), RATES ("10000 20000 30000 40000 50000"),
# RAMP_SECONDS (15), WARMUP (5), DETAIL_BYTES (1000), CONNS (64, throughput), LAT_CONNS (64),
# DRAIN (30: seconds to wait for the backlog after the load), BENCH_TMP (/tmp), SERVER_ARGS
# (extra `serve` flags), KEEP=1 (keep the temp dir with records and logs).
# Exit status 1 if a PutEvents call failed, an acknowledged event never arrived, or a server
# did not start/stop; a missed floor is reported (MISS), not an error.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
src_bin=${1:-${EBRIDGE:-build/ebridge}}
DURATION=${DURATION:-60}
LAT_RATE=${LAT_RATE:-1000}
RATES=${RATES:-"10000 20000 30000 40000 50000"}
RAMP_SECONDS=${RAMP_SECONDS:-15}
WARMUP=${WARMUP:-5}
DETAIL_BYTES=${DETAIL_BYTES:-1000}
CONNS=${CONNS:-64}
LAT_CONNS=${LAT_CONNS:-64}
DRAIN=${DRAIN:-30}
BENCH_TMP=${BENCH_TMP:-/tmp}
SERVER_ARGS=${SERVER_ARGS:-}
SCENARIOS=${SCENARIOS:-"latency isolation throughput"}

if [ ! -x "$src_bin" ]; then
    echo "no server binary at $src_bin (build it: make build)" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 2; }

tmp=$(mktemp -d "$BENCH_TMP/eb-dbench-XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept: $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
cp "$src_bin" "$tmp/ebridge" # a concurrent rebuild cannot change it mid-run
cc -O2 -Wall -Wextra -o "$tmp/receiver" bench/delivery/receiver.c
cc -O2 -Wall -Wextra -o "$tmp/loadgen" bench/delivery/loadgen.c
status=0

# start_receiver MODE DIR -> sets rpid, rport
start_receiver() {
    local mode=$1 dir=$2
    mkdir -p "$dir"
    if [ "$mode" = serve ]; then
        "$tmp/receiver" serve 0 "$dir/records.txt" "$dir/recv-timeline.txt" >"$dir/recv.out" 2>&1 &
    else
        "$tmp/receiver" "$mode" 0 >"$dir/$mode.out" 2>&1 &
    fi
    rpid=$!
    pids+=("$rpid")
    local f="$dir/recv.out"
    [ "$mode" = serve ] || f="$dir/$mode.out"
    for _ in $(seq 1 200); do
        rport=$(awk '/^ready/ {print $2}' "$f")
        [ -n "$rport" ] && return 0
        sleep 0.01
    done
    echo "receiver ($mode) did not start: $(cat "$f")" >&2
    exit 1
}

stop_pid() { # PID: SIGTERM and wait (our child)
    kill -TERM "$1" 2>/dev/null || true
    local rc=0
    wait "$1" || rc=$?
    local keep=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
    return $rc
}

snap_threads() { # PID: "tid ticks comm" per thread (utime + stime, clock ticks)
    local t
    for t in /proc/"$1"/task/*; do
        echo "${t##*/} $(awk '{print $14+$15}' "$t/stat") $(cat "$t/comm")"
    done
}

api() { # PORT OP JSON
    curl -sS --fail-with-body -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: AWSEvents.$2" \
        -d "$3" "http://127.0.0.1:$1/"
}

# Cores this machine gives us right now (other tenants share them): NPROC processes spin for
# 0.5 s each; the sum of their CPU time / wall time.
cpu_avail() {
    python3 - <<'PY'
import os, time, multiprocessing as mp
def spin(q):
    t0, c0 = time.monotonic(), time.process_time()
    while time.monotonic() - t0 < 0.5:
        pass
    q.put(time.process_time() - c0)
q = mp.Queue()
ps = [mp.Process(target=spin, args=(q,)) for _ in range(os.cpu_count())]
for p in ps: p.start()
tot = sum(q.get() for _ in ps)
for p in ps: p.join()
print("%.2f" % (tot / 0.5))
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server DIR FUNCTION_ARGS... -> sets spid, sport
start_server() {
    local dir=$1
    shift
    sport=$(free_port)
    # shellcheck disable=SC2086
    "$tmp/ebridge" serve --listen "127.0.0.1:$sport" --data-dir "$dir/data" --sync full --log-level info \
        "$@" $SERVER_ARGS >"$dir/server.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 1 500); do
        curl -sf "http://127.0.0.1:$sport/health" >/dev/null 2>&1 && return 0
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.02
    done
    echo "the server did not start; its log:" >&2
    tail -20 "$dir/server.log" >&2
    exit 1
}

metric() { # PORT NAME: the rule's series
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n "{event_bus=\"default\",rule=\"bench\"}" {print $2}'
}

results=()
declare -A R # scenario -> analysis line

# run_case NAME RATE ENTRIES SECONDS NTARGETS(1|3) CONNS
run_case() {
    local name=$1 rate=$2 entries=$3 secs=$4 ntargets=$5 conns=$6
    local dir="$tmp/$name"
    mkdir -p "$dir"
    start_receiver serve "$dir"
    local recv_pid=$rpid recv_port=$rport
    local funcs=(--function "recv=http://127.0.0.1:$recv_port/")
    local targets='{"Id":"recv","Arn":"arn:aws:lambda:us-east-1:000000000000:function:recv"}'
    local hold_pid= refuse_pid=
    if [ "$ntargets" = 3 ]; then
        start_receiver hold "$dir"
        hold_pid=$rpid
        funcs+=(--function "hang=http://127.0.0.1:$rport/")
        start_receiver refuse "$dir"
        refuse_pid=$rpid
        funcs+=(--function "refused=http://127.0.0.1:$rport/")
        targets="$targets"',{"Id":"hang","Arn":"arn:aws:lambda:us-east-1:000000000000:function:hang"}'
        targets="$targets"',{"Id":"refused","Arn":"arn:aws:lambda:us-east-1:000000000000:function:refused"}'
    fi
    start_server "$dir" "${funcs[@]}"
    api "$sport" PutRule '{"Name":"bench","EventPattern":"{\"source\":[\"bench.delivery\"]}"}' >/dev/null
    out=$(api "$sport" PutTargets "{\"Rule\":\"bench\",\"Targets\":[$targets]}")
    case "$out" in *'"FailedEntryCount":0'*) ;; *) echo "PutTargets failed: $out" >&2; exit 1 ;; esac
    local load0 load1 avail
    load0=$(cut -d' ' -f1 /proc/loadavg)
    avail=$(cpu_avail)
    echo "== $name: $rate events/s, $entries entr$([ "$entries" = 1 ] && echo y || echo ies) per call, ${secs}s," \
        "$ntargets target(s), $conns connections (load average $load0; idle CPU probe: $avail of $(nproc) cores)"
    snap_threads "$spid" >"$dir/threads0.txt"
    local rcpu0 rline
    rcpu0=$(awk '{print $14+$15}' "/proc/$recv_pid/stat")
    rline=$("$tmp/loadgen" --port "$sport" --rate "$rate" --entries "$entries" --duration "$secs" --conns "$conns" \
        --detail-bytes "$DETAIL_BYTES" --timeline "$dir/gen-timeline.txt") || status=1
    echo "   $rline"
    local acked
    acked=$(echo "$rline" | grep -o 'acked=[0-9]*' | cut -d= -f2)
    # drain: wait until the healthy receiver has as many events as were acknowledged
    for _ in $(seq 1 $((DRAIN * 10))); do
        local got
        got=$(tail -1 "$dir/recv-timeline.txt" | cut -d' ' -f2)
        [ "${got:-0}" -ge "${acked:-0}" ] && break
        sleep 0.1
    done
    sleep 1 # late duplicates
    snap_threads "$spid" >"$dir/threads1.txt"
    local rcpu=$(( ($(awk '{print $14+$15}' "/proc/$recv_pid/stat") - rcpu0) * 10 ))
    local retries
    retries=$(metric "$sport" ebridge_retry_invocation_attempts_total)
    load1=$(cut -d' ' -f1 /proc/loadavg)
    stop_pid "$spid" || { echo "   the server did not exit 0" >&2; status=1; }
    if grep -q 'level=error' "$dir/server.log"; then
        echo "   server errors:"; grep 'level=error' "$dir/server.log" | head -5 | sed 's/^/     /'
        status=1
    fi
    stop_pid "$recv_pid" >/dev/null || true
    local extra=""
    if [ -n "$hold_pid" ]; then
        stop_pid "$hold_pid" || true
        stop_pid "$refuse_pid" || true
        extra=" hang_requests=$(awk '/^received/ {print $2}' "$dir/hold.out") retries=${retries:-0}"
    fi
    local a
    a=$(python3 bench/delivery/analyze.py "$dir/records.txt" "$dir/recv-timeline.txt" "$dir/gen-timeline.txt" \
        "$rline" "$rate" "$WARMUP")
    a="$a$extra put_p99_ms=$(echo "$rline" | grep -o 'put_p99_ms=[0-9.]*' | cut -d= -f2)"
    a="$a lag_p99_ms=$(echo "$rline" | grep -o 'lag_p99_ms=[0-9.]*' | cut -d= -f2) load=$load0-$load1 cpu=$avail"
    echo "   $a"
    local tc
    tc=$(python3 bench/delivery/analyze.py threads "$dir/threads0.txt" "$dir/threads1.txt" "${acked:-0}")
    echo "   $tc; receiver ${rcpu}ms; loadgen $(echo "$rline" | grep -o 'cpu_ms=[0-9]*' | cut -d= -f2)ms"
    case "$a" in *" missing=0 "*) ;; *) echo "   ACKNOWLEDGED EVENTS NOT DELIVERED within ${DRAIN}s" >&2; status=1 ;; esac
    R[$name]="$a rate=$rate entries=$entries secs=$secs"
}

get() { # LINE KEY
    echo " $1 " | grep -o " $2=[^ ]*" | head -1 | cut -d= -f2
}

echo "== ebridge delivery benchmark: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"\
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   binary: $src_bin ($(git rev-parse --short HEAD 2>/dev/null || echo '?')); --sync full; Detail ~${DETAIL_BYTES} B;" \
    "data under $BENCH_TMP"

for sc in $SCENARIOS; do
    case $sc in
    latency) run_case latency "$LAT_RATE" 1 "$DURATION" 1 "$LAT_CONNS" ;;
    isolation) run_case isolation "$LAT_RATE" 1 "$DURATION" 3 "$LAT_CONNS" ;;
    throughput)
        best=
        for r in $RATES; do
            run_case "ramp-$r" "$r" 10 "$RAMP_SECONDS" 1 "$CONNS"
            if [ "$(get "${R[ramp-$r]}" flat)" = 1 ]; then best=$r; else break; fi
        done
        run_case sustained "${best:-${RATES%% *}}" 10 "$DURATION" 1 "$CONNS"
        ;;
    *) echo "unknown scenario $sc" >&2; exit 2 ;;
    esac
done

echo
echo "== results (Detail ~${DETAIL_BYTES} B, --sync full; latency = receiver's receive time - the generator's send time;"
echo "   load = load average before-after; cpu = cores a spin probe got just before the run, of $(nproc))"
printf '%-12s %7s %3s %4s %9s %9s %5s %8s %9s %8s %8s %8s %8s %9s %8s %8s %-11s %s\n' run rate ent secs acked delivered \
    dups 'dlv/s' 'slope/s' bl_end p50_ms p90_ms p99_ms max_ms put_p99 lag_p99 load cpu
for name in latency isolation $(for r in $RATES; do echo "ramp-$r"; done) sustained; do
    [ -n "${R[$name]:-}" ] || continue
    l=${R[$name]}
    printf '%-12s %7s %3s %4s %9s %9s %5s %8s %9s %8s %8s %8s %8s %9s %8s %8s %-11s %s\n' "$name" "$(get "$l" rate)" \
        "$(get "$l" entries)" "$(get "$l" secs)" "$(get "$l" acked)" "$(get "$l" delivered)" "$(get "$l" dups)" \
        "$(get "$l" dlv_per_s)" "$(get "$l" backlog_slope)" "$(get "$l" backlog_end)" "$(get "$l" lat_p50_ms)" \
        "$(get "$l" lat_p90_ms)" "$(get "$l" lat_p99_ms)" "$(get "$l" lat_max_ms)" "$(get "$l" put_p99_ms)" \
        "$(get "$l" lag_p99_ms)" "$(get "$l" load)" "$(get "$l" cpu)"
done

echo
echo "== floors"
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
fcmp() { python3 -c "import sys; print(1 if $1 else 0)"; }
if [ -n "${R[sustained]:-}" ]; then
    l=${R[sustained]}
    ok=$(fcmp "$(get "$l" flat) == 1 and $(get "$l" rate) >= 10000 and $(get "$l" dlv_per_s) >= 0.98 * $(get "$l" rate)")
    echo "sustained delivered events/s with a flat backlog >= 10,000: offered $(get "$l" rate)/s, delivered" \
        "$(get "$l" dlv_per_s)/s, backlog slope $(get "$l" backlog_slope)/s, $(get "$l" backlog_end) behind at the end" \
        "-> $(verdict "$ok")"
    top=
    for r in $RATES; do [ "$(get "${R[ramp-$r]:-}" flat)" = 1 ] && top=$r; done
    ok=$(fcmp "${top:-0} >= 50000")
    echo "  stretch 50,000 events/s: highest flat rate of the ramp ${top:-none} -> $(verdict "$ok")"
fi
if [ -n "${R[latency]:-}" ]; then
    l=${R[latency]}
    ok=$(fcmp "$(get "$l" lat_p50_ms) < 5 and $(get "$l" lat_p99_ms) < 25")
    echo "put->target at $(get "$l" rate)/s: p50 $(get "$l" lat_p50_ms) ms (< 5), p99 $(get "$l" lat_p99_ms) ms (< 25)" \
        "-> $(verdict "$ok")"
    ok=$(fcmp "$(get "$l" lat_p50_ms) < 1")
    echo "  stretch p50 < 1 ms: $(get "$l" lat_p50_ms) ms -> $(verdict "$ok")"
fi
if [ -n "${R[isolation]:-}" ]; then
    l=${R[isolation]}
    base=$(get "${R[latency]:-}" lat_p99_ms)
    if [ -n "$base" ]; then
        ok=$(fcmp "$(get "$l" lat_p99_ms) <= 2 * $base and $(get "$l" flat) == 1")
        echo "isolation: healthy p99 $(get "$l" lat_p99_ms) ms vs baseline $base ms (<= 2x)," \
            "backlog slope $(get "$l" backlog_slope)/s, end $(get "$l" backlog_end) (flat: $(get "$l" flat));" \
            "hanging target got $(get "$l" hang_requests) requests, rule retries $(get "$l" retries) -> $(verdict "$ok")"
    else
        echo "isolation: healthy p99 $(get "$l" lat_p99_ms) ms, flat $(get "$l" flat) (no latency run to compare)"
    fi
fi
exit $status
