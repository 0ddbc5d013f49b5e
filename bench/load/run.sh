#!/usr/bin/env bash
# Load benchmark of `ebridge serve` on loopback (issue 3, "## Speed").
#
#   bench/load/run.sh [path/to/ebridge]          # default build/ebridge
#   DURATION=10 bench/load/run.sh                # shorter runs (default 60 s)
#
# For every scenario (SCENARIOS, entries per PutEvents call: "10 1") and every
# wrk thread count (WRK_THREADS: "1 2") it starts a fresh server (auth off,
# durable --sync full, fresh data dir under BENCH_TMP), creates 10 rules on the
# default bus -- rule k matches detail.kind = "k<k>", so exactly one rule
# matches each event -- with one target each, and drives PutEvents with wrk
# (CONNS connections, default 64; bench/load/putevents.lua sends pre-built
# bodies of ENTRIES entries of ~1 KB Detail each and counts answers that are
# not 200 with "FailedEntryCount":0).  Printed per run: calls/s, events/s, p50
# and p99 latency (wrk --latency), the server's idle RSS before the load and
# its RSS after; first, the server's start time (exec until GET /health
# answers 200, median of STARTS fresh starts, plus the "start_ms=" of its log
# line).
#
# Two load generators, each run on its own fresh server (GENERATORS, default
# "wrk loadgen"): wrk with the Lua script (WRK_THREADS "1 2"), and
# bench/delivery/loadgen.c in closed loop (--rate 0: every connection keeps one
# call outstanding; one epoll thread, the answers checked in C; --kinds 10 gives
# the same one-rule-per-event match). The machine's 2 cores are shared by the
# generator and the server, so a lighter generator leaves the server more CPU:
# the table shows both, side by side.
# Environment: DURATION, CONNS, WRK_THREADS, GENERATORS, SCENARIOS, STARTS (default 5),
# BENCH_TMP (default /tmp), SERVER_ARGS (extra `serve` flags, e.g.
# "--threads 2"), DETAIL_BYTES (default 1000).
# Exits 1 if any answer was not 200 / had failed entries, or wrk reported
# socket errors.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
src_bin=${1:-${EBRIDGE:-build/ebridge}}
DURATION=${DURATION:-60}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-"1 2"}
GENERATORS=${GENERATORS:-"wrk loadgen"}
SCENARIOS=${SCENARIOS:-"10 1"}
STARTS=${STARTS:-5}
BENCH_TMP=${BENCH_TMP:-/tmp}
SERVER_ARGS=${SERVER_ARGS:-}
export DETAIL_BYTES=${DETAIL_BYTES:-1000}

if [ ! -x "$src_bin" ]; then
    echo "no server binary at $src_bin (build it: make build)" >&2
    exit 2
fi
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 2; }

tmp=$(mktemp -d "$BENCH_TMP/eb-load-XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# A copy, so a concurrent rebuild cannot change the binary mid-run.
cp "$src_bin" "$tmp/ebridge"
bin="$tmp/ebridge"
cc -O2 -Wall -Wextra -o "$tmp/loadgen" "$root/bench/delivery/loadgen.c"

cat >"$tmp/helper.py" <<'PY'
import http.client, json, os, socket, subprocess, sys, time

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def health(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False

def start(binary, data, log, extra):
    """Start the server in the background; print pid, port, ms from exec to /health 200."""
    port = free_port()
    args = [binary, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir", data, "--sync", "full",
            "--log-level", "info"] + extra.split()
    logf = open(log, "ab")
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    while not health(port):
        if p.poll() is not None:
            sys.exit("server exited: see " + log)
        if time.perf_counter() - t0 > 10:
            p.kill()
            sys.exit("server did not answer /health within 10 s")
        time.sleep(0.0002)
    print(p.pid, port, "%.1f" % ((time.perf_counter() - t0) * 1000))

def call(port, op, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/", body=json.dumps(body),
              headers={"X-Amz-Target": "AWSEvents." + op, "Content-Type": "application/x-amz-json-1.1"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        sys.exit("%s failed: %d %s" % (op, r.status, data[:300]))
    return json.loads(data) if data else {}

def setup(port, kinds):
    for k in range(int(kinds)):
        call(port, "PutRule", {"Name": "load-k%d" % k, "EventPattern": json.dumps({"detail": {"kind": ["k%d" % k]}})})
        out = call(port, "PutTargets", {"Rule": "load-k%d" % k, "Targets": [
            {"Id": "t%d" % k, "Arn": "arn:aws:sqs:us-east-1:000000000000:load-q%d" % k}]})
        if out.get("FailedEntryCount"):
            sys.exit("PutTargets failed: %r" % out)
    # one event per rule: each must be accepted
    out = call(port, "PutEvents", {"Entries": [
        {"Source": "bench.load", "DetailType": "load", "Detail": json.dumps({"kind": "k%d" % k})}
        for k in range(min(int(kinds), 10))]})
    if out.get("FailedEntryCount"):
        sys.exit("PutEvents failed: %r" % out)

def rss(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(line.split()[1])
                return

cmd = sys.argv[1]
if cmd == "start":
    start(*sys.argv[2:6])
elif cmd == "setup":
    setup(sys.argv[2], sys.argv[3])
elif cmd == "rss":
    rss(sys.argv[2])
PY

stop_server() {
    kill -TERM "$server_pid"
    local rc=0
    # not our child (started by the helper): wait for it to go away
    for _ in $(seq 1 400); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "server $server_pid did not stop within 20 s" >&2
        kill -KILL "$server_pid" || true
        rc=1
    fi
    server_pid=
    return $rc
}

# start_server DATA LOG: sets server_pid, port, ms (exec -> /health 200)
start_server() {
    local line
    if ! line=$(python3 "$tmp/helper.py" start "$bin" "$1" "$2" "$SERVER_ARGS"); then
        echo "the server did not start; its log:" >&2
        tail -20 "$2" >&2
        exit 1
    fi
    read -r server_pid port ms <<<"$line"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "== ebridge load benchmark: $(nproc) cores, ${DURATION}s per run, $CONNS connections, durable (--sync full)"
echo "   binary: $src_bin; data dirs under $BENCH_TMP ($(df -h "$BENCH_TMP" | awk 'NR==2 {print $1}'))"
echo "   server args: --sync full ${SERVER_ARGS:-(defaults)}"

# ---- start time ----
starts=()
logms=()
for i in $(seq 1 "$STARTS"); do
    d="$tmp/start$i"
    start_server "$d" "$tmp/start$i.log"
    starts+=("$ms")
    logms+=("$(grep -o 'start_ms=[0-9.]*' "$tmp/start$i.log" | head -1 | cut -d= -f2)")
    stop_server
    rm -rf "$d"
done
# restart on an existing data dir (with 10 rules)
d="$tmp/restart"
start_server "$d" "$tmp/restart.log"
python3 "$tmp/helper.py" setup "$port" 10
stop_server
start_server "$d" "$tmp/restart.log"
restart_ms=$ms
restart_logms=$(grep -o 'start_ms=[0-9.]*' "$tmp/restart.log" | tail -1 | cut -d= -f2)
sleep 1
idle_rss=$(python3 "$tmp/helper.py" rss "$server_pid")
stop_server
rm -rf "$d"
start_med=$(printf '%s\n' "${starts[@]}" | median)
logms_med=$(printf '%s\n' "${logms[@]}" | median)
echo "start: exec -> GET /health 200: median ${start_med} ms of ${STARTS} fresh starts (${starts[*]} ms);" \
    "log start_ms median ${logms_med} (${logms[*]})"
echo "start on an existing data dir with 10 rules: ${restart_ms} ms (log start_ms=${restart_logms}); idle RSS ${idle_rss} kB"

# ---- load ----
# run_one ENTRIES GEN: one fresh server, one load run; appends a line to results
run_one() {
    local entries=$1 gen=$2 d log out r rss0 rss1 stats du label
    d="$tmp/data-$entries-$gen"
    log="$tmp/server-$entries-$gen.log"
    start_server "$d" "$log"
    python3 "$tmp/helper.py" setup "$port" 10
    sleep 1
    rss0=$(python3 "$tmp/helper.py" rss "$server_pid")
    echo
    case $gen in
    wrk-t*)
        local t=${gen#wrk-t}
        label="wrk -t$t"
        echo "== PutEvents, $entries entr$([ "$entries" = 1 ] && echo y || echo ies) per call, wrk -t$t -c$CONNS -d${DURATION}s (server pid $server_pid, idle RSS $rss0 kB)"
        out=$(ENTRIES=$entries wrk -t"$t" -c"$CONNS" -d"${DURATION}s" --latency --timeout 10s \
            -s "$root/bench/load/putevents.lua" "http://127.0.0.1:$port/" 2>&1) || true
        ;;
    loadgen)
        label="loadgen"
        echo "== PutEvents, $entries entr$([ "$entries" = 1 ] && echo y || echo ies) per call, loadgen closed loop -c$CONNS ${DURATION}s (server pid $server_pid, idle RSS $rss0 kB)"
        out=$("$tmp/loadgen" --port "$port" --rate 0 --entries "$entries" --duration "$DURATION" --conns "$CONNS" \
            --detail-bytes "$DETAIL_BYTES" --kinds 10 --source bench.load 2>&1) || true
        # the same keys as the wrk script's RESULT line
        r=$(echo "$out" | grep '^RESULT' || true)
        if [ -n "$r" ]; then
            eval "$(echo "$r" | sed 's/^RESULT //' | tr ' ' '\n' | sed 's/^/g_/')"
            out="$out
RESULT calls=$g_calls calls_per_s=$(awk "BEGIN {printf \"%.0f\", $g_calls / $g_seconds}") events_per_s=$(awk "BEGIN {printf \"%.0f\", $g_acked / $g_seconds}") p50_ms=$g_put_p50_ms p99_ms=$g_put_p99_ms max_ms=$g_put_max_ms non200=$g_non200 failed=$g_failed errors=$((g_errors + g_unanswered)) gen_cpu_ms=$g_cpu_ms"
        fi
        ;;
    *) echo "unknown generator $gen" >&2; exit 2 ;;
    esac
    echo "$out" | sed 's/^/   /'
    rss1=$(python3 "$tmp/helper.py" rss "$server_pid")
    stop_server || status=1
    if grep -q 'level=error' "$log"; then
        echo "   server errors:"; grep 'level=error' "$log" | head -5 | sed 's/^/     /'
        status=1
    fi
    du=$(du -sh "$d" | cut -f1)
    rm -rf "$d"
    r=$(echo "$out" | grep '^RESULT' | tail -1 || true)
    if [ -z "$r" ]; then
        echo "   no RESULT line from $label" >&2
        status=1
        return
    fi
    eval "$(echo "$r" | sed 's/^RESULT //' | tr ' ' '\n' | sed 's/^/r_/')"
    if [ "$r_non200" != 0 ] || [ "$r_failed" != 0 ] || [ "$r_errors" != 0 ]; then
        echo "   FAILED ANSWERS: non200=$r_non200 failed=$r_failed socket_errors=$r_errors"
        status=1
    fi
    echo "   server RSS: idle $rss0 kB, after the load $rss1 kB; data dir after the run: $du"
    results+=("$(printf '%-8s %-8s %12s %12s %9s %9s %9s %10s %10s' "$entries" "$label" "$r_calls_per_s" \
        "$r_events_per_s" "$r_p50_ms" "$r_p99_ms" "$r_max_ms" "$rss0" "$rss1")")
}

status=0
results=()
for entries in $SCENARIOS; do
    for gen in $GENERATORS; do
        if [ "$gen" = wrk ]; then
            for t in $WRK_THREADS; do
                run_one "$entries" "wrk-t$t"
            done
        else
            run_one "$entries" "$gen"
        fi
    done
done

echo
echo "== summary (${DURATION}s runs, $CONNS connections, --sync full; start ${start_med} ms, idle RSS ${idle_rss} kB)"
printf '%-8s %-8s %12s %12s %9s %9s %9s %10s %10s\n' entries client calls/s events/s p50_ms p99_ms max_ms rss0_kB rss1_kB
printf '%s\n' "${results[@]}"
exit $status
