#!/usr/bin/env python3
"""Helper for bench/run_citylots.sh (Python 3 standard library only).

  citylots_helper.py prepare RULES.json OUTDIR
      For every category of citylots-rules.json (union_of categories expanded
      to all rules of the listed categories) write
        OUTDIR/<CAT>.rules.json   {"rule id": pattern, ...} in file order
        OUTDIR/<CAT>.expected     "rule id<TAB>expected_matches" per line,
                                  exactly what `ebridge match --count` prints
      and OUTDIR/categories (one category name per line, file order).

  citylots_helper.py report OUTDIR
      Reads OUTDIR/<CAT>.<mode>.stats (the last stderr line of each run of
      `ebridge match`, mode = trusting | validating) and OUTDIR/<CAT>.bad
      (present if any run printed a wrong count) and prints the result table.
      Exit status 1 if any count was wrong or any run is missing.
"""
import json
import os
import statistics
import sys

# Targets from /work/shared/bench/README.md, "Targets for our engine"
# (events/s, one thread; the higher of 3x event-ruler SerialGC and 2x quamina).
TARGETS = {
    "EXACT": 5_900_000,
    "WILDCARD": 5_300_000,
    "PREFIX": 4_800_000,
    "PREFIX_EQUALS_IGNORE_CASE": 4_800_000,
    "SUFFIX": 3_700_000,
    "SUFFIX_EQUALS_IGNORE_CASE": 2_800_000,
    "EQUALS_IGNORE_CASE": 3_800_000,
    "NUMERIC": 984_000,
    "ANYTHING_BUT": 1_520_000,
    "ANYTHING_BUT_IGNORE_CASE": 980_000,
    "ANYTHING_BUT_PREFIX": 1_160_000,
    "ANYTHING_BUT_SUFFIX": 1_020_000,
    "ANYTHING_BUT_WILDCARD": 1_050_000,
    "COMPLEX_ARRAYS": 250_000,
    "PARTIAL_COMBO": 361_000,
    "COMBO": 146_000,
    "ANYTHING_BUT_PERF": 467_000,
    # NO_COMPILE_R1_R7: the README states no target.
}


def prepare(rules_path, outdir):
    with open(rules_path) as f:
        doc = json.load(f)
    by_name = {c["name"]: c for c in doc["categories"]}
    names = []
    for cat in doc["categories"]:
        if "union_of" in cat:
            rules = [r for sub in cat["union_of"] for r in by_name[sub]["rules"]]
        else:
            rules = cat["rules"]
        ids = [r["id"] for r in rules]
        if len(set(ids)) != len(ids):
            sys.exit("duplicate rule id in category %s" % cat["name"])
        for r in rules:
            if "\t" in r["id"] or "\n" in r["id"]:
                sys.exit("rule id with a tab or newline: %r" % r["id"])
        with open(os.path.join(outdir, cat["name"] + ".rules.json"), "w") as f:
            json.dump({r["id"]: r["pattern"] for r in rules}, f, indent=1)
            f.write("\n")
        with open(os.path.join(outdir, cat["name"] + ".expected"), "w") as f:
            for r in rules:
                f.write("%s\t%d\n" % (r["id"], r["expected_matches"]))
        names.append((cat["name"], len(rules)))
    with open(os.path.join(outdir, "categories"), "w") as f:
        for n, k in names:
            f.write("%s %d\n" % (n, k))


def parse_stats(path):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path):
        kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if "events_per_s" in kv:
            out.append((float(kv["events_per_s"]), float(kv["mb_per_s"]), int(kv["events"])))
    return out


def human(x):
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    return "%.0fk" % (x / 1e3)


def report(outdir):
    cats = [l.split() for l in open(os.path.join(outdir, "categories")) if l.strip()]
    runs = int(open(os.path.join(outdir, "runs")).read())
    ok_all = True
    rows = []
    hdr = ["category", "rules", "counts", "trusting ev/s", "(best)", "MB/s", "validating ev/s", "(best)", "MB/s",
           "target ev/s", "trusting vs target", "validating vs target"]
    summary = {"trusting": [0, 0], "validating": [0, 0]}
    for name, nrules in cats:
        bad = os.path.exists(os.path.join(outdir, name + ".bad"))
        row = [name, nrules, "WRONG" if bad else "ok (%dx2 runs)" % runs]
        med = {}
        for mode in ("trusting", "validating"):
            st = parse_stats(os.path.join(outdir, "%s.%s.stats" % (name, mode)))
            if len(st) != runs or any(ev != 213068 for _, _, ev in st):
                ok_all = False
                row[2] = "MISSING RUNS" if not bad else row[2]
            if st:
                eps = statistics.median(s[0] for s in st)
                mbs = statistics.median(s[1] for s in st)
                med[mode] = eps
                row += ["{:,.0f}".format(eps), "{:,.0f}".format(max(s[0] for s in st)), "%.0f" % mbs]
            else:
                row += ["-", "-", "-"]
        if bad:
            ok_all = False
        tgt = TARGETS.get(name)
        row.append(human(tgt) if tgt else "none")
        for mode in ("trusting", "validating"):
            if tgt and mode in med:
                ratio = med[mode] / tgt
                passed = med[mode] >= tgt
                summary[mode][0 if passed else 1] += 1
                row.append("%s (%.2fx)" % ("PASS" if passed else "MISS", ratio))
            else:
                row.append("n/a")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    right = {1, 3, 4, 5, 6, 7, 8, 9}

    def fmt(r):
        return "| " + " | ".join(
            (str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])) for i, c in enumerate(r)) + " |"

    print(fmt(hdr))
    print("|" + "|".join(("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(fmt(r))
    print()
    print("events/s and MB/s: median of %d runs per mode, (best) = fastest of them; each run is one process "
          "over all %s events, timing parsing+matching with the events in memory (ebridge's own clock). "
          "MB/s counts every byte of every line, also those the trusting reader skips. "
          "Pass/miss compares the median with the target." % (runs, "213,068"))
    for mode in ("trusting", "validating"):
        p, m = summary[mode]
        print("%s mode: %d of %d targets met, %d missed" % (mode, p, p + m, m))
    if not ok_all:
        print("FAILED: wrong or missing counts (see WRONG COUNT lines above)")
    return 0 if ok_all else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2]))
    else:
        sys.exit(__doc__)
