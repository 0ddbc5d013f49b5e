#!/usr/bin/env bash
# Build and run the libFuzzer targets in fuzz/ (clang + libFuzzer, ASan+UBSan).
#
#   tools/fuzz.sh replay         build, replay each target's committed corpus
#                                (fuzz/corpus/<target>/), then fuzz each for
#                                FUZZ_SECONDS (default 20).  Part of `make test`.
#   tools/fuzz.sh long [SECONDS] fuzz each target for SECONDS (default 600);
#                                new inputs go to build-fuzz/corpus/<target>/
#                                (seeded from the committed corpus, which is
#                                never written), crashes to fuzz/artifacts/.
#
# Environment: FUZZ_SECONDS (replay), FUZZ_JOBS (targets run at once, default
# 2), FUZZ_TARGETS (space-separated subset), FUZZ_MAX_LEN (default 4096).
# Exits non-zero if any target crashes, leaks, hits UB, times out or fails an
# assertion; each target's log is build-fuzz/logs/<target>.log.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-replay}
case "$mode" in
    replay) seconds=${FUZZ_SECONDS:-20} ;;
    long) seconds=${2:-600} ;;
    *)
        echo "usage: tools/fuzz.sh replay | long [SECONDS]" >&2
        exit 2
        ;;
esac
jobs=${FUZZ_JOBS:-2}
max_len=${FUZZ_MAX_LEN:-4096}
all_targets=$(cd fuzz && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')
targets=${FUZZ_TARGETS:-$all_targets}

build=build-fuzz
echo "fuzz: building $targets" >&2
cmake -S . -B "$build" -DEB_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $targets >/dev/null

artifacts="$root/fuzz/artifacts"
logs="$root/$build/logs"
mkdir -p "$artifacts" "$logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_one TARGET: replay its corpus (replay mode), then fuzz for $seconds.
run_one() {
    local t=$1 bin="$root/$build/$1" seeds="$root/fuzz/corpus/$1" log="$logs/$1.log"
    local work="$root/$build/corpus/$t"
    mkdir -p "$seeds" "$work"
    : >"$log"
    local common=(-artifact_prefix="$artifacts/$t-" -timeout=25 -rss_limit_mb=2048 -max_len="$max_len"
        -print_final_stats=1)
    if [ "$mode" = replay ]; then
        # Every committed input once, whatever its size (-runs=0 stops after
        # the initial corpus has been executed).
        echo "== $t: replaying $(find "$seeds" -type f | wc -l) committed inputs" >>"$log"
        if ! "$bin" "${common[@]}" -max_len=1048576 -runs=0 "$seeds" >>"$log" 2>&1; then
            echo "== $t: FAILED while replaying the committed corpus" >>"$log"
            return 1
        fi
        # Fuzz into a throw-away directory so the run starts from the seeds.
        rm -rf "$work"
        mkdir -p "$work"
    fi
    echo "== $t: fuzzing for ${seconds}s" >>"$log"
    local start=$SECONDS rc=0 extra=()
    if [ "$mode" = long ]; then
        # Keep going after a crash (each one is saved to fuzz/artifacts/) so
        # the run lasts the full time; fail at the end if anything was found.
        extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    local marker="$root/$build/.fuzz-start-$t"
    touch "$marker"
    "$bin" "${common[@]}" "${extra[@]}" -max_total_time="$seconds" "$work" "$seeds" >>"$log" 2>&1 || rc=$?
    local found
    found=$(find "$artifacts" -maxdepth 1 -type f -name "$t-*" -newer "$marker" | wc -l)
    echo "== $t: exit $rc after $((SECONDS - start))s, $found new artifact(s)" >>"$log"
    if [ "$found" -gt 0 ] && [ "$rc" -eq 0 ]; then
        rc=1
    fi
    return $rc
}

failed=""
declare -A pid_of=()
summary() { # TARGET: one line with exec/s, coverage and corpus size from the log
    local log="$logs/$1.log"
    local stats
    stats=$(grep -E '^#[0-9]+(.*(DONE|INITED)|: cov:)' "$log" | tail -1 || true)
    echo "fuzz: $1: ${stats:-no stats}" >&2
}
wait_one() {
    local t=$1
    if wait "${pid_of[$t]}"; then
        summary "$t"
    else
        failed="$failed $t"
        echo "fuzz: $t FAILED; end of $logs/$t.log:" >&2
        tail -n 60 "$logs/$t.log" >&2
    fi
    unset "pid_of[$t]"
}

running=()
for t in $targets; do
    if [ ! -x "$build/$t" ]; then
        echo "fuzz: $build/$t was not built" >&2
        failed="$failed $t"
        continue
    fi
    run_one "$t" &
    pid_of[$t]=$!
    running+=("$t")
    if [ "${#running[@]}" -ge "$jobs" ]; then
        wait_one "${running[0]}"
        running=("${running[@]:1}")
    fi
done
for t in "${running[@]}"; do
    wait_one "$t"
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (reproducers in fuzz/artifacts/, logs in $logs/)" >&2
    exit 1
fi
echo "fuzz: all targets passed ($mode, ${seconds}s each)" >&2
