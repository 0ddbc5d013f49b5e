/* Unicode full case folding of UTF-8 text (CaseFolding.txt statuses C + F,
 * no Turkic T mappings), used by equals-ignore-case, prefix/suffix with
 * equals-ignore-case and anything-but/equals-ignore-case matching.
 *
 * Two strings match case-insensitively iff their foldings are byte-equal,
 * e.g. "straße" and "STRASSE" both fold to "strasse", "ΣΑΣ" and "σας" both fold
 * to "σασ".  Folding does no normalisation: precomposed "é" (U+00E9) and
 * "e" + U+0301 stay different.
 *
 * Output-size bound: the folded text is never longer than
 * EBP_CASEFOLD_MAX_GROWTH (= 3) times the input length.  The bound is tight: it is
 * reached by U+0390 and U+03B0 (2 UTF-8 bytes each, folding to 3 code points /
 * 6 bytes).  casefold.c statically checks the generated table against it.
 * Pure ASCII input folds to exactly its own length.  Folding can also shrink
 * text (U+212A KELVIN SIGN, 3 bytes -> "k"; U+1E9E -> "ss").
 *
 * NB for fast paths: non-ASCII text can fold to pure ASCII (U+212A KELVIN
 * SIGN -> "k", U+017F LONG S -> "s", U+FB00 -> "ff", U+1E9E -> "ss"), so an
 * ASCII pattern may still match a non-ASCII value ("K" ~ "\u212A").  Per-byte
 * tolower() is equivalent to full folding only when BOTH sides are ASCII;
 * otherwise fold both.  ASCII always folds to ASCII (only A-Z change).
 */
#ifndef EBP_CASEFOLD_H
#define EBP_CASEFOLD_H

#include <stddef.h>

/* Folded length <= EBP_CASEFOLD_MAX_GROWTH * input length. */
#define EBP_CASEFOLD_MAX_GROWTH 3

/* Fold UTF-8 text `in[0..n)` into `out` (capacity `cap` bytes). Returns the number of
   bytes the folded text needs (may exceed cap: then nothing beyond cap was written and the
   caller retries with a bigger buffer; out[0..cap) then holds a prefix of the folding).
   The folded text is at most EBP_CASEFOLD_MAX_GROWTH (3) times the input length, so
   cap >= 3*n always suffices (callers must ensure 3*n does not overflow size_t).  Output is not NUL-terminated.  `out` may be NULL when
   cap == 0 (size query); `in` may be NULL when n == 0.  in and out must not overlap.
   Invalid UTF-8 bytes (stray continuation bytes, overlong forms, surrogates, values
   above U+10FFFF, truncated sequences) are copied through unchanged, one byte at a
   time (never crash, never read outside in[0..n)). */
size_t ebp_casefold(const unsigned char *in, size_t n, unsigned char *out, size_t cap);

/* Nonzero if in[0..n) is pure ASCII (fast path callers can use tolower per byte). */
int ebp_is_ascii(const unsigned char *in, size_t n);

#endif /* EBP_CASEFOLD_H */
