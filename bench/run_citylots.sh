#!/usr/bin/env bash
# Citylots benchmark: every category of citylots-rules.json through
# `ebridge match --count`, trusting and validating mode, counts checked.
#
#   bench/run_citylots.sh            (from anywhere; runs in the repo root)
#
# Environment:
#   EBRIDGE   binary to test            (default build/ebridge; built if missing)
#   RUNS      runs per category and mode (default 5; the table shows the median)
#   BENCH_DIR folder with citylots-rules.json and citylots2-synth.json.gz
#             (default ../shared/bench relative to the repo, i.e. /work/shared/bench)
#   ONLY      space-separated category names to run (default: all)
#
# Exit status: 0 if every count of every run equals expected_matches,
# 1 otherwise (a missed speed target is printed, but is not a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
EBRIDGE=${EBRIDGE:-build/ebridge}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-$(cd .. && pwd)/shared/bench}
RULES=$BENCH_DIR/citylots-rules.json
EVENTS_GZ=$BENCH_DIR/citylots2-synth.json.gz

if [ ! -x "$EBRIDGE" ]; then
    make build
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/citylots.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# benchmark a private copy, so a concurrent rebuild of build/ebridge cannot
# change the binary between runs
EBRIDGE_SRC=$EBRIDGE
cp "$EBRIDGE" "$TMP/ebridge"
EBRIDGE=$TMP/ebridge

# decompress once; ebridge then reads a plain file (no gunzip in the process)
gzip -dc "$EVENTS_GZ" >"$TMP/events.json"
python3 bench/citylots_helper.py prepare "$RULES" "$TMP"
echo "$RUNS" >"$TMP/runs"

mapfile -t CATS < <(cut -d' ' -f1 "$TMP/categories")
if [ -n "${ONLY:-}" ]; then
    read -r -a CATS <<<"$ONLY"
    for c in "${CATS[@]}"; do grep -q "^$c " "$TMP/categories" || { echo "unknown category $c" >&2; exit 2; }; done
    grep -E "^($(echo "${CATS[*]}" | tr ' ' '|')) " "$TMP/categories" >"$TMP/categories.only"
    mv "$TMP/categories.only" "$TMP/categories"
fi

echo "ebridge: $EBRIDGE_SRC (built $(date -u -r "$EBRIDGE_SRC" +%Y-%m-%dT%H:%MZ), tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet -- src include 2>/dev/null || echo ', with uncommitted src changes'))"
echo "events:  $EVENTS_GZ ($(wc -l <"$TMP/events.json") lines, $(stat -c %s "$TMP/events.json") bytes decompressed)"
echo "runs:    $RUNS per category and mode, interleaved (round r runs every category once in each mode)"
echo "host:    $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $(date -u +%Y-%m-%dT%H:%MZ)"
echo

wrong=0
for ((r = 1; r <= RUNS; r++)); do
    printf 'round %d/%d:' "$r" "$RUNS"
    for cat in "${CATS[@]}"; do
        for mode in trusting validating; do
            flag=()
            [ "$mode" = validating ] && flag=(--validate)
            out=$TMP/$cat.$mode.out
            err=$TMP/$cat.$mode.err
            rc=0
            "$EBRIDGE" match --rules "$TMP/$cat.rules.json" --count "${flag[@]}" "$TMP/events.json" >"$out" 2>"$err" || rc=$?
            if [ "$rc" -ne 0 ]; then
                echo
                echo "ERROR: $cat ($mode, run $r): ebridge exited with status $rc:" >&2
                tail -n 5 "$err" >&2
                touch "$TMP/$cat.bad"
                wrong=1
                continue
            fi
            if ! cmp -s "$out" "$TMP/$cat.expected"; then
                echo
                # name<TAB>got vs name<TAB>expected, rule by rule
                paste "$TMP/$cat.expected" "$out" | awk -F'\t' -v c="$cat" -v m="$mode" -v r="$r" '
                    $1 != $3 || $2 != $4 { printf "WRONG COUNT: category %s, mode %s, run %d: rule %s expected %s, got %s (output line: %s)\n", c, m, r, $1, $2, $4, $3 }' | tee -a "$TMP/wrong.log" >&2
                if [ "$(wc -l <"$out")" -ne "$(wc -l <"$TMP/$cat.expected")" ]; then
                    echo "WRONG COUNT: category $cat, mode $mode: $(wc -l <"$out") lines of output, expected $(wc -l <"$TMP/$cat.expected")" | tee -a "$TMP/wrong.log" >&2
                fi
                touch "$TMP/$cat.bad"
                wrong=1
            fi
            tail -n 1 "$err" >>"$TMP/$cat.$mode.stats"
        done
        printf ' %s' "$cat"
    done
    echo
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
status=0
python3 bench/citylots_helper.py report "$TMP" || status=$?
if [ "$wrong" -ne 0 ] || [ "$status" -ne 0 ]; then
    [ -s "$TMP/wrong.log" ] && { echo; echo "wrong counts:"; cat "$TMP/wrong.log"; }
    echo "run_citylots: FAILED (wrong counts or failed runs)" >&2
    exit 1
fi
echo "run_citylots: all counts correct"
