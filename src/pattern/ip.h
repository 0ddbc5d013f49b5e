/* IP addresses and CIDR ranges as aws/event-ruler (and so EventBridge) sees
 * them.  The rules, and where they come from, are in docs/notes/ip-semantics.md.
 *
 * In short, a string "is an IP address" when it is one of:
 *   IPv4  exactly four dot-separated runs of ASCII decimal digits, each run
 *         worth at most 255 (leading zeros allowed and read as decimal), the
 *         whole string at most 15 bytes;
 *   IPv6  only ASCII hex digits (either case) and ':', at least one ':', in
 *         the usual colon-hex text form ("::" at most once and standing for
 *         at least one group); a group may have any number of digits as long
 *         as its value fits in 16 bits ("00000001" is a group).  No embedded
 *         dotted IPv4, no "%zone", no brackets, no whitespace.
 * An IPv6 address of the IPv4-mapped form ::ffff:a.b.c.d is the IPv4 address
 * a.b.c.d (family 4): "::ffff:a00:1" equals "10.0.0.1". */
#ifndef EBP_IP_H
#define EBP_IP_H

#include <stddef.h>

/* An address.  family is 4 or 6.  IPv4 uses addr[0..4) and leaves
 * addr[4..16) zero, so two ebp_ip values are equal iff memcmp says so. */
typedef struct {
    unsigned char family;
    unsigned char addr[16];
} ebp_ip;

/* 1 if s[0..n) is an IP address (then *out is filled), else 0 (then *out is
 * left alone).  Reads only s[0..n); s need not be NUL-terminated.  Cheap on
 * ordinary non-IP strings: it stops at the first byte outside [0-9a-fA-F.:]. */
int ebp_ip_parse(const char *s, size_t n, ebp_ip *out);

/* 1 if a and b are the same address (same family, same bytes). */
int ebp_ip_equal(const ebp_ip *a, const ebp_ip *b);

/* An inclusive range of addresses of one family.  lo is the base address
 * with its host bits cleared, hi the base with its host bits set; unused
 * bytes (IPv4: [4..16)) are zero. */
typedef struct {
    unsigned char family;
    unsigned char lo[16], hi[16];
} ebp_cidr;

/* Parse the value of a {"cidr": "..."} pattern.  0 on success (*out filled);
 * else -1, *out untouched, and AWS's reason text (no "Event pattern is not
 * valid. Reason: " prefix) written NUL-terminated into err[0..errcap)
 * (truncated at a UTF-8 character boundary if it does not fit; err may be
 * NULL when errcap is 0).  The texts are:
 *   Malformed CIDR, one '/' required
 *   Malformed CIDR, mask bits must be an integer
 *   Malformed CIDR, mask bits must not be negative
 *   Nonstandard IP address: <address part>   (not even shaped like an IP)
 *   Invalid IP address: <address part>       (shaped like one, but invalid)
 *   IPv4 mask bits must be < 32
 *   IPv6 mask bits must be < 128
 * checked in that order. */
int ebp_cidr_parse(const char *s, size_t n, ebp_cidr *out, char *err, size_t errcap);

/* 1 if ip lies in c (same family and lo <= ip <= hi), else 0. */
int ebp_cidr_contains(const ebp_cidr *c, const ebp_ip *ip);

#endif
