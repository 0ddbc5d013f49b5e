#!/usr/bin/env python3
"""Generate src/pattern/casefold_table.h from the Unicode CaseFolding.txt file.

Usage:
    python3 tools/gen_casefold.py [CaseFolding.txt] [output.h]

Defaults: /usr/share/unicode/CaseFolding.txt (Debian package `unicode-data`)
and src/pattern/casefold_table.h (relative to the repository root).

Only statuses C (common) and F (full) are used, i.e. Unicode *full* case
folding without the Turkic (T) special cases; S (simple) entries are ignored.

Table layout (all lookups are O(1), two array reads plus one small-table read):

    v = ebp_cf_stage2[(ebp_cf_stage1[cp >> SHIFT] << SHIFT) | (cp & MASK)]
        (only for cp < EBP_CF_LIMIT; every code point >= EBP_CF_LIMIT folds to itself)

    v == 0                    -> cp folds to itself
    1 <= v < EBP_CF_FULL_BASE -> cp folds to the single code point cp + ebp_cf_delta[v]
    v >= EBP_CF_FULL_BASE     -> cp folds to the UTF-8 bytes ebp_cf_full[v - FULL_BASE][1..len],
                                 len = ebp_cf_full[...][0]

Stage-2 blocks are deduplicated; block 0 is the all-identity block.  The block
size is chosen to minimise the total table size.  The generator verifies that
the tables reproduce the mapping exactly, that folding is idempotent, and
derives the maximum UTF-8 growth factor (EBP_CF_MAX_GROWTH).
"""

import os
import re
import sys


def parse(path):
    version = None
    mapping = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if version is None:
                m = re.match(r"#\s*CaseFolding-(\d+\.\d+\.\d+)\.txt", line)
                if m:
                    version = m.group(1)
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            fields = [x.strip() for x in data.split(";")]
            if len(fields) < 3:
                raise SystemExit("%s:%d: malformed line" % (path, lineno))
            code, status, target = fields[0], fields[1], fields[2]
            if status not in ("C", "F"):
                continue
            cp = int(code, 16)
            if cp in mapping:
                raise SystemExit("%s:%d: duplicate C/F entry for U+%04X" % (path, lineno, cp))
            mapping[cp] = [int(x, 16) for x in target.split()]
    if version is None:
        raise SystemExit("%s: cannot find Unicode version in header" % path)
    if not mapping:
        raise SystemExit("%s: no C/F entries found" % path)
    return version, mapping


def utf8(cps):
    return "".join(chr(c) for c in cps).encode("utf-8")


def fold_cp(mapping, cp):
    return mapping.get(cp, [cp])


def build(mapping, shift):
    limit_cp = max(mapping) + 1
    block = 1 << shift
    nblocks_needed = (limit_cp + block - 1) >> shift
    limit = nblocks_needed << shift

    deltas = sorted({v[0] - k for k, v in mapping.items() if len(v) == 1})
    delta_index = {d: i + 1 for i, d in enumerate(deltas)}  # 0 = identity
    full_base = len(deltas) + 1
    full_cps = sorted(k for k, v in mapping.items() if len(v) > 1)
    full_seqs = []
    full_index = {}
    for k in full_cps:
        b = utf8(mapping[k])
        if b not in full_index:
            full_index[b] = full_base + len(full_seqs)
            full_seqs.append(b)
    nactions = full_base + len(full_seqs)

    def action(cp):
        v = mapping.get(cp)
        if v is None:
            return 0
        if len(v) == 1:
            return delta_index[v[0] - cp]
        return full_index[utf8(v)]

    stage1 = []
    blocks = [tuple([0] * block)]
    block_ids = {blocks[0]: 0}
    for b in range(nblocks_needed):
        content = tuple(action(cp) for cp in range(b << shift, (b + 1) << shift))
        if content not in block_ids:
            block_ids[content] = len(blocks)
            blocks.append(content)
        stage1.append(block_ids[content])
    stage2 = [x for blk in blocks for x in blk]

    s1_type = "uint8_t" if len(blocks) <= 256 else "uint16_t"
    s2_type = "uint8_t" if nactions <= 256 else "uint16_t"
    s1_bytes = len(stage1) * (1 if s1_type == "uint8_t" else 2)
    s2_bytes = len(stage2) * (1 if s2_type == "uint8_t" else 2)
    full_width = 1 + max(len(s) for s in full_seqs)
    delta_bytes = (len(deltas) + 1) * 4
    full_bytes = len(full_seqs) * full_width
    total = s1_bytes + s2_bytes + delta_bytes + full_bytes
    return {
        "shift": shift,
        "limit": limit,
        "stage1": stage1,
        "stage2": stage2,
        "s1_type": s1_type,
        "s2_type": s2_type,
        "deltas": [0] + deltas,
        "full_base": full_base,
        "full_seqs": full_seqs,
        "full_width": full_width,
        "nblocks": len(blocks),
        "sizes": (s1_bytes, s2_bytes, delta_bytes, full_bytes),
        "total": total,
    }


def lookup(t, cp):
    """Python model of the C lookup, used for self-checking."""
    if cp >= t["limit"]:
        return utf8([cp])
    shift = t["shift"]
    v = t["stage2"][(t["stage1"][cp >> shift] << shift) | (cp & ((1 << shift) - 1))]
    if v == 0:
        return utf8([cp])
    if v < t["full_base"]:
        return utf8([cp + t["deltas"][v]])
    return t["full_seqs"][v - t["full_base"]]


def verify(mapping, t):
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        want = utf8(fold_cp(mapping, cp))
        got = lookup(t, cp)
        if got != want:
            raise SystemExit("self-check failed at U+%04X" % cp)
    # Idempotence: every code point produced by folding must fold to itself.
    for k, v in mapping.items():
        for c in v:
            if fold_cp(mapping, c) != [c]:
                raise SystemExit("folding not idempotent: U+%04X -> U+%04X -> %r"
                                 % (k, c, fold_cp(mapping, c)))
            if 0xD800 <= c <= 0xDFFF or c > 0x10FFFF:
                raise SystemExit("bad target code point U+%04X" % c)


def c_array(name, ctype, values, per_line, fmt):
    out = ["static const %s %s[%d] = {" % (ctype, name, len(values))]
    for i in range(0, len(values), per_line):
        out.append("    " + ", ".join(fmt(v) for v in values[i:i + per_line]) + ",")
    out.append("};")
    return "\n".join(out)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    src = argv[1] if len(argv) > 1 else "/usr/share/unicode/CaseFolding.txt"
    dst = argv[2] if len(argv) > 2 else os.path.join(here, "..", "src", "pattern",
                                                        "casefold_table.h")
    version, mapping = parse(src)

    best = None
    for shift in range(3, 10):
        t = build(mapping, shift)
        if best is None or t["total"] < best["total"]:
            best = t
    t = best
    verify(mapping, t)

    # Growth bound: UTF-8 bytes out / UTF-8 bytes in, per code point.  Unmapped
    # code points and invalid bytes are copied 1:1, so the per-code-point maximum
    # bounds the whole string.
    growth_num, growth_den, growth_cp = 1, 1, None
    max_out = 1
    for k, v in mapping.items():
        o, i = len(utf8(v)), len(utf8([k]))
        max_out = max(max_out, o)
        if o * growth_den > growth_num * i:
            growth_num, growth_den, growth_cp = o, i, k
    growth_ceil = -(-growth_num // growth_den)
    ascii_to_nonascii = sorted(k for k, v in mapping.items()
                               if k < 0x80 and any(c >= 0x80 for c in v))
    if ascii_to_nonascii:
        raise SystemExit("ASCII code point folds to non-ASCII; fast path invalid")
    ascii_bad = [k for k, v in mapping.items()
                 if k < 0x80 and not (0x41 <= k <= 0x5A and v == [k + 0x20])]
    if ascii_bad:
        raise SystemExit("unexpected ASCII folding entries: %r" % ascii_bad)

    s1b, s2b, db, fb = t["sizes"]
    shift = t["shift"]
    lines = []
    lines.append("/* GENERATED FILE - DO NOT EDIT.")
    lines.append(" *")
    lines.append(" * Unicode %s full case folding (CaseFolding.txt statuses C and F;" % version)
    lines.append(" * S and T entries are not used)." )
    lines.append(" * Generated by:  python3 tools/gen_casefold.py %s src/pattern/casefold_table.h"
                 % src)
    lines.append(" *")
    lines.append(" * Lookup for a code point cp (see tools/gen_casefold.py for details):")
    lines.append(" *   cp >= EBP_CF_LIMIT -> folds to itself, otherwise")
    lines.append(" *   v = ebp_cf_stage2[(ebp_cf_stage1[cp >> EBP_CF_SHIFT] << EBP_CF_SHIFT)")
    lines.append(" *                     | (cp & EBP_CF_MASK)]")
    lines.append(" *   v == 0                    -> folds to itself")
    lines.append(" *   v <  EBP_CF_FULL_BASE     -> folds to cp + ebp_cf_delta[v]")
    lines.append(" *   v >= EBP_CF_FULL_BASE     -> folds to UTF-8 bytes")
    lines.append(" *                                ebp_cf_full[v - EBP_CF_FULL_BASE][1 .. len],")
    lines.append(" *                                len = ebp_cf_full[v - EBP_CF_FULL_BASE][0]")
    lines.append(" *")
    lines.append(" * %d mappings (%d single code point, %d multi code point)."
                 % (len(mapping), sum(len(v) == 1 for v in mapping.values()),
                    sum(len(v) > 1 for v in mapping.values())))
    lines.append(" * Table size: stage1 %d + stage2 %d + delta %d + full %d = %d bytes."
                 % (s1b, s2b, db, fb, t["total"]))
    lines.append(" * Max growth: U+%04X, %d UTF-8 bytes -> %d bytes (factor %d/%d, ceil %d)."
                 % (growth_cp, growth_den, growth_num, growth_num, growth_den, growth_ceil))
    lines.append(" */")
    lines.append("#ifndef EBP_CASEFOLD_TABLE_H")
    lines.append("#define EBP_CASEFOLD_TABLE_H")
    lines.append("")
    lines.append("#include <stdint.h>")
    lines.append("")
    lines.append('#define EBP_CF_UNICODE_VERSION "%s"' % version)
    lines.append("#define EBP_CF_SHIFT %d" % shift)
    lines.append("#define EBP_CF_MASK 0x%Xu" % ((1 << shift) - 1))
    lines.append("#define EBP_CF_LIMIT 0x%05Xu" % t["limit"])
    lines.append("#define EBP_CF_FULL_BASE %du" % t["full_base"])
    lines.append("#define EBP_CF_FULL_WIDTH %d" % t["full_width"])
    lines.append("/* Longest folding of a single code point, in UTF-8 bytes. */")
    lines.append("#define EBP_CF_MAX_CP_OUT %d" % max_out)
    lines.append("/* Folded UTF-8 length <= EBP_CF_MAX_GROWTH * input length (ceil of the exact")
    lines.append("   per-code-point maximum ratio %d/%d). */" % (growth_num, growth_den))
    lines.append("#define EBP_CF_MAX_GROWTH %d" % growth_ceil)
    lines.append("#define EBP_CF_TABLE_BYTES %d" % t["total"])
    lines.append("")
    lines.append(c_array("ebp_cf_stage1", t["s1_type"], t["stage1"], 16, lambda v: "%3d" % v))
    lines.append("")
    lines.append(c_array("ebp_cf_stage2", t["s2_type"], t["stage2"], 16, lambda v: "%3d" % v))
    lines.append("")
    lines.append(c_array("ebp_cf_delta", "int32_t", t["deltas"], 8, lambda v: "%d" % v))
    lines.append("")
    rows = []
    for s in t["full_seqs"]:
        cps = s.decode("utf-8")
        body = ", ".join(["%d" % len(s)] + ["0x%02X" % b for b in s])
        rows.append("    {%s}, /* %s */" % (body, " ".join("U+%04X" % ord(c) for c in cps)))
    lines.append("static const uint8_t ebp_cf_full[%d][EBP_CF_FULL_WIDTH] = {"
                 % len(t["full_seqs"]))
    lines.extend(rows)
    lines.append("};")
    lines.append("")
    lines.append("#endif /* EBP_CASEFOLD_TABLE_H */")
    lines.append("")
    with open(dst, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))
    sys.stderr.write("wrote %s: Unicode %s, shift %d, %d blocks, %d bytes, growth %d\n"
                     % (dst, version, shift, t["nblocks"], t["total"], growth_ceil))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
