#!/usr/bin/env python3
"""Rule-scaling benchmark for the ebridge pattern engine (Python 3 stdlib only).

  python3 bench/rule_scaling.py [--seed N] [--runs N] [--ops N] [--sizes 1,100,10000,100000]
                                [--events FILE.json.gz] [--ebridge PATH] [--keep DIR] [--json OUT]

What it does (all from the repo root):

1. Reads the citylots events (default /work/shared/bench/citylots2-synth.json.gz,
   decompressed once to a temp file that ebridge then reads as plain text).
2. Generates, with a fixed seed, two rule lists from values present in the data:
   - "mixed": exact, two/three-field exact, prefix, suffix, wildcard,
     equals-ignore-case, prefix+equals-ignore-case and numeric-range rules over
     properties.* and geometry.* paths (templates T1..T10 below), each built
     from one randomly chosen event, so it matches at least that event;
   - "exact": single-field exact rules on distinct properties.MAPBLKLOT values.
   Rules are accepted greedily only if no event would then match more than 10
   accepted rules (computed here with an independent model of the matcher),
   so every prefix of the list -- the size-N rule set is the first N rules --
   also has at most 10 matches per event.  Rule 1 of "mixed" is a numeric box on
   geometry.firstCoordinates, so that even the 1-rule set makes the reader go
   through the whole event (firstCoordinates comes after the coordinates).
3. For each size, writes RULES.json and runs `ebridge match --count` (trusting
   and --validate, --runs times each, median reported), checks every per-rule
   count against the model's prediction, and runs `ebridge match` once more
   without --count to measure matches per event (mean, max) from the engine's
   own output.
4. Builds bench/addremove.c against build/libebpattern.a and uses it for
   memory (eb_snapshot_memory() and resident-set growth over the adds; per
   rule = (size N - size 1) / (N - 1)) and for add/remove latency at 10,000
   rules (--ops operations; eb_pattern_compile outside the timing,
   eb_machine_add / eb_machine_remove inside).

Targets: events/s at 100,000 rules within 2x of 1 rule; <= 1 KB per exact-match
rule; add/remove at 10,000 rules <= 1 ms median.
Exit status 1 if a count differs from the model, an event matches more than
10 rules, or a run fails; missed targets are printed but do not fail.
"""
import argparse
import bisect
import gzip
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MAX_PER_EVENT = 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------- data
class Data:
    FIELDS = ("MAPBLKLOT", "BLKLOT", "BLOCK_NUM", "LOT_NUM", "FROM_ST", "TO_ST", "STREET", "ODD_EVEN")

    def __init__(self, path):
        cols = {f: [] for f in self.FIELDS}
        gtype, fx, fy = [], [], []
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                e = json.loads(line)
                p = e["properties"]
                for k in self.FIELDS:
                    cols[k].append(p[k])
                g = e["geometry"]
                gtype.append(g["type"])
                fx.append(g["firstCoordinates"]["x"])
                fy.append(g["firstCoordinates"]["y"])
        self.n = len(fx)
        self.c = cols
        self.gtype, self.fx, self.fy = gtype, fx, fy
        for k in self.FIELDS:
            assert all(isinstance(v, str) for v in cols[k]), k
        # indexes
        def index(keyf):
            d = {}
            for i in range(self.n):
                d.setdefault(keyf(i), []).append(i)
            return d
        c = cols
        self.by_mapblklot = index(lambda i: c["MAPBLKLOT"][i])
        self.by_blklot = index(lambda i: c["BLKLOT"][i])
        self.by_blklot6 = index(lambda i: c["BLKLOT"][i][:6])
        self.by_mbl4 = index(lambda i: c["MAPBLKLOT"][i][:4])
        self.by_block = index(lambda i: c["BLOCK_NUM"][i])
        self.by_street_ft = index(lambda i: (c["STREET"][i].lower(), c["FROM_ST"][i], c["TO_ST"][i]))
        self.by_ft = index(lambda i: (c["FROM_ST"][i], c["TO_ST"][i]))
        order = sorted(range(self.n), key=lambda i: fx[i])
        self.x_sorted = [fx[i] for i in order]
        self.x_order = order


def randcase(rng, s):
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in s)


def wildcard_re(w):
    return re.compile(".*".join(re.escape(part) for part in w.split("*")), re.S)


# ----------------------------------------------------------------- templates
# Each returns (pattern, list of matching event ids) or None; built from event i.
def t_exact(d, rng, i):
    v = d.c["MAPBLKLOT"][i]
    return {"properties": {"MAPBLKLOT": [v]}}, d.by_mapblklot[v]


def t_exact2(d, rng, i):
    v, oe = d.c["BLKLOT"][i], d.c["ODD_EVEN"][i]
    ids = [j for j in d.by_blklot[v] if d.c["ODD_EVEN"][j] == oe]
    return {"properties": {"BLKLOT": [v], "ODD_EVEN": [oe]}}, ids


def t_prefix(d, rng, i):
    v = d.c["BLKLOT"][i]
    if len(v) < 7:
        return None
    return {"properties": {"BLKLOT": [{"prefix": v[:6]}]}}, d.by_blklot6[v[:6]]


def t_suffix(d, rng, i):
    b, m = d.c["BLOCK_NUM"][i], d.c["MAPBLKLOT"][i]
    if len(m) < 3:
        return None
    suf = m[-3:]
    ids = [j for j in d.by_block[b] if d.c["MAPBLKLOT"][j].endswith(suf)]
    return {"properties": {"BLOCK_NUM": [b], "MAPBLKLOT": [{"suffix": suf}]}}, ids


def t_wildcard(d, rng, i):
    m = d.c["MAPBLKLOT"][i]
    if len(m) < 6 or "*" in m or "\\" in m:
        return None
    w = m[:4] + "*" + m[-2:]
    rx = wildcard_re(w)
    ids = [j for j in d.by_mbl4[m[:4]] if rx.fullmatch(d.c["MAPBLKLOT"][j])]
    return {"properties": {"MAPBLKLOT": [{"wildcard": w}]}}, ids


def t_eic(d, rng, i):
    s, f, t = d.c["STREET"][i], d.c["FROM_ST"][i], d.c["TO_ST"][i]
    ids = d.by_street_ft[(s.lower(), f, t)]
    return {"properties": {"STREET": [{"equals-ignore-case": randcase(rng, s)}], "FROM_ST": [f], "TO_ST": [t]}}, ids


def t_numeric(d, rng, i):
    x, y = d.fx[i], d.fy[i]
    dx = round(rng.uniform(2e-5, 2e-4), 6)
    lo, hi = round(x - dx, 7), round(x + dx, 7)
    ylo, yhi = round(y - dx, 7), round(y + dx, 7)
    if not (lo < x < hi and ylo < y < yhi):
        return None
    a = bisect.bisect_right(d.x_sorted, lo)
    b = bisect.bisect_left(d.x_sorted, hi)
    ids = sorted(j for j in d.x_order[a:b] if lo < d.fx[j] < hi and ylo < d.fy[j] < yhi)
    return {"geometry": {"firstCoordinates": {"x": [{"numeric": [">", lo, "<", hi]}],
                                              "y": [{"numeric": [">", ylo, "<", yhi]}]}}}, ids


def t_type_block_lot(d, rng, i):
    g, b, l = d.gtype[i], d.c["BLOCK_NUM"][i], d.c["LOT_NUM"][i]
    ids = [j for j in d.by_block[b] if d.c["LOT_NUM"][j] == l and d.gtype[j] == g]
    return {"geometry": {"type": [g]}, "properties": {"BLOCK_NUM": [b], "LOT_NUM": [l]}}, ids


def t_prefix_eic(d, rng, i):
    b, s, l = d.c["BLOCK_NUM"][i], d.c["STREET"][i], d.c["LOT_NUM"][i]
    pre = s[:3]
    ids = [j for j in d.by_block[b]
           if d.c["STREET"][j].lower().startswith(pre.lower()) and d.c["LOT_NUM"][j] == l]
    return {"properties": {"BLOCK_NUM": [b], "LOT_NUM": [l],
                           "STREET": [{"prefix": {"equals-ignore-case": randcase(rng, pre)}}]}}, ids


def t_suffix_street(d, rng, i):
    f, t, s = d.c["FROM_ST"][i], d.c["TO_ST"][i], d.c["STREET"][i]
    suf = s[-3:]
    ids = [j for j in d.by_ft[(f, t)] if d.c["STREET"][j].endswith(suf)]
    return {"properties": {"FROM_ST": [f], "TO_ST": [t], "STREET": [{"suffix": suf}]}}, ids


TEMPLATES = [  # (name, weight, function)
    ("T1 exact MAPBLKLOT", 15, t_exact),
    ("T2 exact BLKLOT+ODD_EVEN", 10, t_exact2),
    ("T3 prefix BLKLOT", 10, t_prefix),
    ("T4 exact BLOCK_NUM + suffix MAPBLKLOT", 10, t_suffix),
    ("T5 wildcard MAPBLKLOT", 10, t_wildcard),
    ("T6 equals-ignore-case STREET + exact FROM_ST,TO_ST", 10, t_eic),
    ("T7 numeric box firstCoordinates.x/y", 15, t_numeric),
    ("T8 exact geometry.type+BLOCK_NUM+LOT_NUM", 10, t_type_block_lot),
    ("T9 prefix-equals-ignore-case STREET + exact BLOCK_NUM,LOT_NUM", 5, t_prefix_eic),
    ("T10 suffix STREET + exact FROM_ST,TO_ST", 5, t_suffix_street),
]


def generate(d, rng, n, kind):
    """n rules (list of (template name, pattern, ids)) with <= MAX_PER_EVENT per event."""
    cnt = bytearray(d.n)
    seen = set()
    out = []
    rejected = 0
    names = [t[0] for t in TEMPLATES]
    weights = [t[1] for t in TEMPLATES]
    funcs = dict((t[0], t[2]) for t in TEMPLATES)
    if kind == "exact":
        values = sorted(d.by_mapblklot)
        rng.shuffle(values)
        if len(values) < n:
            sys.exit("only %d distinct MAPBLKLOT values" % len(values))
        for v in values[:n]:
            ids = d.by_mapblklot[v]
            for j in ids:
                cnt[j] += 1
            out.append(("T1 exact MAPBLKLOT", {"properties": {"MAPBLKLOT": [v]}}, ids))
        return out, 0
    while len(out) < n:
        if not out:
            name = "T7 numeric box firstCoordinates.x/y"  # see docstring: 1-rule baseline
        else:
            name = rng.choices(names, weights)[0]
        i = rng.randrange(d.n)
        r = funcs[name](d, rng, i)
        if r is None:
            rejected += 1
            continue
        pat, ids = r
        assert i in ids, (name, pat)  # the model must match the seed event
        key = json.dumps(pat, sort_keys=True)
        if key in seen or any(cnt[j] >= MAX_PER_EVENT for j in ids):
            rejected += 1
            continue
        seen.add(key)
        for j in ids:
            cnt[j] += 1
        out.append((name, pat, ids))
    return out, rejected


# ------------------------------------------------------------------ running
def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def last_stats(stderr):
    line = stderr.strip().splitlines()[-1]
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def human(x):
    return "{:,.0f}".format(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20250611)
    ap.add_argument("--runs", type=int, default=5, help="runs per size and mode below 10,000 rules (median reported)")
    ap.add_argument("--runs-large", type=int, default=2, help="runs per size and mode from 10,000 rules up")
    ap.add_argument("--max-load-s", type=float, default=600,
                    help="skip a size if adding its rules is projected (quadratically from the previous size's "
                         "add-all time) to take longer than this many seconds")
    ap.add_argument("--ops", type=int, default=1000, help="add/remove operations at 10,000 rules")
    ap.add_argument("--sizes", default="1,100,1000,10000,100000")
    ap.add_argument("--events", default=os.path.join(os.path.dirname(ROOT), "shared", "bench",
                                                      "citylots2-synth.json.gz"))
    ap.add_argument("--ebridge", default=os.path.join(ROOT, "build", "ebridge"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libebpattern.a"))
    ap.add_argument("--keep", help="write the generated rule files into this folder and keep them")
    ap.add_argument("--json", help="also write all results as JSON here")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    nmax = max(sizes)
    ok = True

    os.chdir(ROOT)
    if not os.path.exists(a.ebridge) or not os.path.exists(a.lib):
        subprocess.run(["make", "build"], check=True)
    tmp = tempfile.mkdtemp(prefix="rule_scaling.")
    try:
        # private copies: a concurrent rebuild must not change what we measure
        ebridge = os.path.join(tmp, "ebridge")
        shutil.copy2(a.ebridge, ebridge)
        addremove = os.path.join(tmp, "addremove")
        cc = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-Iinclude", "bench/addremove.c", a.lib,
              "-lpthread", "-lm", "-o", addremove]
        print("building:", " ".join(cc))
        subprocess.run(cc, check=True)

        t0 = time.time()
        events = os.path.join(tmp, "events.json")
        with gzip.open(a.events, "rb") as fi, open(events, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
        d = Data(events)
        print("events: %s, %d events (loaded in %.1fs)" % (a.events, d.n, time.time() - t0))

        results = {"seed": a.seed, "sizes": sizes, "sets": {}, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                   "cores": os.cpu_count()}
        rulesets = {}
        for kind in ("mixed", "exact"):
            t0 = time.time()
            rng = random.Random("%d-%s" % (a.seed, kind))
            need = max(nmax, 10000 + a.ops if 10000 in sizes else nmax)
            rules, rejected = generate(d, rng, need, kind)
            rulesets[kind] = rules
            mix = {}
            for name, _, _ in rules[:nmax]:
                mix[name] = mix.get(name, 0) + 1
            print("generated %d %s rules in %.1fs (%d candidates rejected: over %d matches/event, duplicate, "
                  "or unusable value); mix of the %d-rule set:" % (len(rules), kind, time.time() - t0, rejected,
                                                                MAX_PER_EVENT, nmax))
            for name, k in sorted(mix.items(), key=lambda kv: int(kv[0].split()[0][1:])):
                print("   %6d  %s" % (k, name))
            # the full pattern list, one per line, for addremove
            with open(os.path.join(tmp, kind + ".jsonl"), "w") as f:
                for _, pat, _ in rules:
                    f.write(json.dumps(pat, separators=(",", ":")) + "\n")
            if a.keep:
                os.makedirs(a.keep, exist_ok=True)
                shutil.copy2(os.path.join(tmp, kind + ".jsonl"), a.keep)

        for kind in ("mixed", "exact"):
            rules = rulesets[kind]
            res = results["sets"][kind] = {}
            print("\n== %s rules ==" % kind)
            prev = None
            for n in sizes:
                if prev and prev.get("load_s", 0) > 0 and n > prev["rules"]:
                    proj = prev["load_s"] * (n / prev["rules"]) ** 2
                    if proj > a.max_load_s:
                        res[n] = {"rules": n, "skipped": "adding %d rules projected to take %.0f s per process "
                                  "(%.2f s for %d, quadratic)" % (n, proj, prev["load_s"], prev["rules"])}
                        print("  %6d rules: SKIPPED: %s" % (n, res[n]["skipped"]))
                        continue
                rfile = os.path.join(tmp, "%s-%d.rules.json" % (kind, n))
                with open(rfile, "w") as f:
                    json.dump({"r%06d" % k: pat for k, (_, pat, _) in enumerate(rules[:n])}, f,
                              separators=(",", ":"))
                if a.keep:
                    shutil.copy2(rfile, a.keep)
                expect = [0] * n
                model_per_event = bytearray(d.n)
                for k, (_, _, ids) in enumerate(rules[:n]):
                    expect[k] = len(ids)
                    for j in ids:
                        model_per_event[j] += 1
                r = res[n] = {"rules": n}
                prev = r
                nruns = a.runs if n < 10000 else a.runs_large
                # engine's own per-event matches (no --count): mean and max
                p = run([ebridge, "match", "--rules", rfile, events])
                if p.returncode != 0:
                    print("ERROR: ebridge match (%s, %d rules) failed: %s" % (kind, n, p.stderr[-2000:]))
                    ok = False
                    continue
                per_event = [len(l.split()) for l in p.stdout.split("\n")[:-1]]
                r["matches_mean"] = sum(per_event) / len(per_event)
                r["matches_max"] = max(per_event)
                r["model_max"] = max(model_per_event)
                if len(per_event) != d.n:
                    print("ERROR: %d output lines for %d events" % (len(per_event), d.n))
                    ok = False
                elif r["matches_max"] > MAX_PER_EVENT:
                    print("ERROR: an event matched %d rules (> %d)" % (r["matches_max"], MAX_PER_EVENT))
                    ok = False
                diff_ev = sum(1 for j in range(d.n) if per_event[j] != model_per_event[j]) if len(per_event) == d.n else -1
                if diff_ev:
                    print("MISMATCH: %d events where the engine's number of matches differs from the model" % diff_ev)
                    ok = False
                for mode in ("trusting", "validating"):
                    eps, mbs, load = [], [], []
                    for _ in range(nruns):
                        cmd = [ebridge, "match", "--rules", rfile, "--count", events]
                        if mode == "validating":
                            cmd.insert(-1, "--validate")
                        t_start = time.time()
                        p = run(cmd)
                        wall = time.time() - t_start
                        if p.returncode != 0:
                            print("ERROR: %s failed: %s" % (" ".join(cmd), p.stderr[-2000:]))
                            ok = False
                            break
                        got = [int(l.rsplit("\t", 1)[1]) for l in p.stdout.splitlines()]
                        if got != expect:
                            bad = [k for k in range(n) if k >= len(got) or got[k] != expect[k]]
                            for k in bad[:10]:
                                print("WRONG COUNT: %s set, %d rules, %s: rule r%06d %s expected %d (model), got %s"
                                      % (kind, n, mode, k, json.dumps(rules[k][1]), expect[k],
                                         got[k] if k < len(got) else "nothing"))
                            print("  (%d rules differ)" % len(bad))
                            ok = False
                        st = last_stats(p.stderr)
                        eps.append(float(st["events_per_s"]))
                        mbs.append(float(st["mb_per_s"]))
                        load.append(wall - float(st["seconds"]))
                    if eps:
                        r[mode] = {"events_per_s": statistics.median(eps), "mb_per_s": statistics.median(mbs),
                                   "best": max(eps),
                                   "runs": eps, "untimed_wall_s": statistics.median(load)}
                # memory through the public API
                p = run([addremove, os.path.join(tmp, kind + ".jsonl"), str(n)])
                if p.returncode != 0:
                    print("ERROR: addremove failed: %s" % p.stderr[-2000:])
                    ok = False
                else:
                    st = dict(tok.split("=", 1) for tok in p.stdout.split())
                    r["snapshot_bytes"] = int(st["snapshot_bytes"])
                    r["rss_delta_bytes"] = int(st["rss_delta_bytes"])
                    r["load_s"] = float(st["load_s"])
                print("  %6d rules: trusting %s ev/s, validating %s ev/s, matches/event mean %.3f max %d, "
                      "snapshot %s B, add-all %.2fs" % (n, human(r.get("trusting", {}).get("events_per_s", 0)),
                                                        human(r.get("validating", {}).get("events_per_s", 0)),
                                                        r["matches_mean"], r["matches_max"],
                                                        human(r.get("snapshot_bytes", 0)), r.get("load_s", 0)))
                sys.stdout.flush()
            base = res.get(sizes[0])
            for n in sizes:
                r = res.get(n)
                if r and base and n > sizes[0] and "snapshot_bytes" in r:
                    r["bytes_per_rule"] = (r["snapshot_bytes"] - base["snapshot_bytes"]) / (n - sizes[0])
                    r["rss_per_rule"] = (r["rss_delta_bytes"] - base["rss_delta_bytes"]) / (n - sizes[0])

        # add/remove latency at 10,000 rules
        results["addremove"] = {}
        if 10000 in sizes and a.ops:
            for kind in ("mixed", "exact"):
                p = run([addremove, os.path.join(tmp, kind + ".jsonl"), "10000", str(a.ops)])
                if p.returncode != 0:
                    print("ERROR: addremove failed: %s" % p.stderr[-2000:])
                    ok = False
                    continue
                rows = []
                for line in p.stdout.splitlines():
                    if line.startswith("phase="):
                        rows.append(dict(tok.split("=", 1) for tok in line.split()))
                results["addremove"][kind] = rows

        # ------------------------------------------------------------ report
        print("\n## Results (seed %d; events/s = median of the runs, (best) = fastest; %s)\n"
              % (a.seed, results["date"]))
        for kind in ("mixed", "exact"):
            res = results["sets"][kind]
            print("### %s rule set\n" % kind)
            print("| rules | runs | trusting ev/s | (best) | MB/s | validating ev/s | (best) | MB/s "
                  "| matches/event mean | max | snapshot memory | bytes/rule (snapshot) | bytes/rule (RSS) "
                  "| add all rules |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for n in sizes:
                r = res.get(n)
                if r and "skipped" in r:
                    print("| %s | - | not measured: %s |||||||||||" % (human(n), r["skipped"]))
                if not r or "trusting" not in r:
                    continue
                print("| %s | %d | %s | %s | %.0f | %s | %s | %.0f | %.4f | %d | %s | %s | %s | %.2f s |" % (
                    human(n), len(r["trusting"]["runs"]), human(r["trusting"]["events_per_s"]),
                    human(r["trusting"]["best"]), r["trusting"]["mb_per_s"],
                    human(r["validating"]["events_per_s"]), human(r["validating"]["best"]),
                    r["validating"]["mb_per_s"],
                    r["matches_mean"], r["matches_max"], human(r.get("snapshot_bytes", 0)),
                    human(r["bytes_per_rule"]) if "bytes_per_rule" in r else "-",
                    human(r["rss_per_rule"]) if "rss_per_rule" in r else "-", r.get("load_s", 0)))
            print()
        if results["addremove"]:
            print("### add/remove at 10,000 rules (%d ops each; microseconds)\n" % a.ops)
            print("| rule set | phase | op | median | p99 | mean | max |")
            print("|---|---|---|---:|---:|---:|---:|")
            for kind, rows in results["addremove"].items():
                for row in rows:
                    print("| %s | %s | %s | %s | %s | %s | %s |" % (kind, row["phase"], row["op"], row["median_us"],
                                                                row["p99_us"], row["mean_us"], row["max_us"]))
            print("\nphase fresh = add a rule not in the set, then remove it; "
                  "phase existing = remove a random rule of the set, then add it back.\n")

        print("### Targets\n")
        for kind in ("mixed", "exact"):
            res = results["sets"][kind]
            measured = [n for n in sizes if "trusting" in res.get(n, {})]
            if len(measured) >= 2:
                top = measured[-1]
                for mode in ("trusting", "validating"):
                    r1 = res[measured[0]][mode]["events_per_s"]
                    rn = res[top][mode]["events_per_s"]
                    print("- events/s at %s rules within 2x of %s rule (%s, %s): %s / %s = %.2fx slower -> %s%s" % (
                        human(top), human(measured[0]), kind, mode, human(r1), human(rn), r1 / rn,
                        "HOLDS" if r1 / rn <= 2 else "MISSED",
                        "" if top == nmax else " (largest size measured: %s rules; %s rules not measured)"
                        % (human(top), human(nmax))))
        exm = [n for n in sizes if "bytes_per_rule" in results["sets"]["exact"].get(n, {})]
        ex = results["sets"]["exact"][exm[-1]] if exm else {}
        if "bytes_per_rule" in ex:
            print("- <= 1 KB per exact-match rule (%s exact rules): %.0f B/rule by eb_snapshot_memory, "
                  "%.0f B/rule by RSS -> %s" % (human(exm[-1]), ex["bytes_per_rule"], ex["rss_per_rule"],
                                               "HOLDS" if max(ex["bytes_per_rule"], ex["rss_per_rule"]) <= 1024
                                               else "MISSED"))
        for kind, rows in results["addremove"].items():
            worst = max(float(row["median_us"]) for row in rows)
            print("- add/remove at 10,000 rules <= 1 ms median (%s): worst median %.1f us -> %s" % (
                kind, worst, "HOLDS" if worst <= 1000 else "MISSED"))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1, default=str)
        print("\nrule_scaling: %s" % ("all counts agree with the model" if ok else "FAILED (see above)"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
