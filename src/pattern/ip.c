/* IP address and CIDR parsing with aws/event-ruler's acceptance rules.
 * See ip.h for the contract and docs/notes/ip-semantics.md for the why. */
#include "ip.h"

#include <string.h>

/* What a candidate string turned out to be. */
enum {
    IP_UNSHAPED = 0, /* matches neither of event-ruler's IPv4/IPv6 shapes */
    IP_INVALID = 1,  /* has the shape but is not an address */
    IP_OK = 2
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Shape test, as event-ruler's two regular expressions: IPv4 is
 * [0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ and IPv6 is [0-9a-fA-F:]*:[0-9a-fA-F:]*,
 * both matched against the whole string.  Returns 4, 6 or 0. */
static int ip_shape(const unsigned char *s, size_t n)
{
    size_t dots = 0, colons = 0;
    int letters = 0;     /* saw a-f / A-F */
    int empty_part = 1;  /* IPv4: the current dot-separated run is empty */
    int v4_ok = 1;       /* no empty run so far */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= '0' && c <= '9') {
            empty_part = 0;
        } else if (c == '.') {
            if (empty_part)
                v4_ok = 0;
            empty_part = 1;
            dots++;
        } else if (c == ':') {
            colons++;
        } else if (hex_value(c) >= 0) {
            letters = 1;
        } else {
            return 0;
        }
    }
    if (dots == 0)
        return colons ? 6 : 0;
    if (colons || letters || dots != 3 || !v4_ok || empty_part)
        return 0;
    return 4;
}

/* IPv4 with the shape above.  java.net.InetAddress takes it only if it is at
 * most 15 characters and every part is at most 255, read in decimal. */
static int ip4_parse(const unsigned char *s, size_t n, unsigned char out[4])
{
    if (n > 15)
        return IP_INVALID;
    unsigned val = 0;
    size_t part = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            out[part++] = (unsigned char)val;
            val = 0;
            continue;
        }
        val = val * 10 + (unsigned)(s[i] - '0');
        if (val > 255)
            return IP_INVALID;
    }
    out[part] = (unsigned char)val;
    return IP_OK;
}

/* IPv6 with the shape above (only hex digits and colons, n >= 1). */
static int ip6_parse(const unsigned char *s, size_t n, unsigned char out[16])
{
    unsigned char buf[16];
    size_t j = 0;        /* bytes written to buf */
    size_t gap = 16;     /* where "::" stands in buf; 16 = none yet */
    int have_gap = 0;
    unsigned val = 0;
    int have_digits = 0; /* the group being read has at least one digit */
    size_t i = 0;

    if (n < 2)
        return IP_INVALID;
    if (s[0] == ':') {
        if (s[1] != ':')
            return IP_INVALID; /* a lone leading ':' */
        i = 1;                 /* the second ':' below opens the gap */
    }
    for (; i < n; i++) {
        int d = hex_value(s[i]);
        if (d >= 0) {
            /* any number of digits as long as the value fits 16 bits */
            val = (val << 4) | (unsigned)d;
            if (val > 0xffff)
                return IP_INVALID;
            have_digits = 1;
            continue;
        }
        /* s[i] == ':' */
        if (!have_digits) {
            /* the second ':' of a "::" */
            if (have_gap)
                return IP_INVALID;
            have_gap = 1;
            gap = j;
            continue;
        }
        if (i + 1 == n)
            return IP_INVALID; /* a lone trailing ':' */
        if (j + 2 > 16)
            return IP_INVALID;
        buf[j++] = (unsigned char)(val >> 8);
        buf[j++] = (unsigned char)val;
        val = 0;
        have_digits = 0;
    }
    if (have_digits) {
        if (j + 2 > 16)
            return IP_INVALID;
        buf[j++] = (unsigned char)(val >> 8);
        buf[j++] = (unsigned char)val;
    }
    if (have_gap) {
        if (j == 16)
            return IP_INVALID; /* "::" must stand for at least one group */
        size_t tail = j - gap;
        memset(out, 0, 16);
        memcpy(out, buf, gap);
        memcpy(out + 16 - tail, buf + gap, tail);
    } else {
        if (j != 16)
            return IP_INVALID;
        memcpy(out, buf, 16);
    }
    return IP_OK;
}

static int ip_scan(const char *str, size_t n, ebp_ip *out)
{
    const unsigned char *s = (const unsigned char *)str;
    ebp_ip ip;
    int r;

    memset(&ip, 0, sizeof ip);
    switch (ip_shape(s, n)) {
    case 4:
        r = ip4_parse(s, n, ip.addr);
        ip.family = 4;
        break;
    case 6:
        r = ip6_parse(s, n, ip.addr);
        ip.family = 6;
        if (r == IP_OK) {
            static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (memcmp(ip.addr, mapped, 12) == 0) {
                /* ::ffff:a.b.c.d is the IPv4 address a.b.c.d */
                memmove(ip.addr, ip.addr + 12, 4);
                memset(ip.addr + 4, 0, 12);
                ip.family = 4;
            }
        }
        break;
    default:
        return IP_UNSHAPED;
    }
    if (r == IP_OK)
        *out = ip;
    return r;
}

int ebp_ip_parse(const char *s, size_t n, ebp_ip *out)
{
    /* Quick exit for the common case: every IP starts with a hex digit or ':'. */
    if (n == 0 || (hex_value((unsigned char)s[0]) < 0 && s[0] != ':'))
        return 0;
    return ip_scan(s, n, out) == IP_OK;
}

int ebp_ip_equal(const ebp_ip *a, const ebp_ip *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, 16) == 0;
}

int ebp_cidr_contains(const ebp_cidr *c, const ebp_ip *ip)
{
    size_t len = c->family == 4 ? 4 : 16;
    return c->family == ip->family && memcmp(c->lo, ip->addr, len) <= 0 &&
           memcmp(ip->addr, c->hi, len) <= 0;
}

/* ---- mask bits: java.lang.Integer.parseInt ---------------------------- */

/* The code points with Unicode general category Nd and digit value 0 in the
 * Basic Multilingual Plane; each starts a run of ten (0..9).  Java's
 * Character.digit(ch, 10), which Integer.parseInt uses on each UTF-16 unit,
 * accepts exactly these runs (Unicode 8 and later; Java 9+).  Digits outside
 * the BMP are surrogate pairs in Java and so never digits. */
static const unsigned short nd_zeros[] = {
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6,
    0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0,
    0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
};

/* Decimal value of the UTF-8 character at s[*i] (advancing *i past it), or
 * -1 if it is not a decimal digit in Java's sense. */
static int java_digit(const unsigned char *s, size_t n, size_t *i)
{
    unsigned c = s[*i];
    unsigned cp;
    if (c < 0x80) {
        *i += 1;
        return (c >= '0' && c <= '9') ? (int)(c - '0') : -1;
    }
    if (c >= 0xC2 && c <= 0xDF && *i + 1 < n && (s[*i + 1] & 0xC0) == 0x80) {
        cp = ((c & 0x1Fu) << 6) | (s[*i + 1] & 0x3Fu);
        *i += 2;
    } else if (c >= 0xE0 && c <= 0xEF && *i + 2 < n && (s[*i + 1] & 0xC0) == 0x80 &&
               (s[*i + 2] & 0xC0) == 0x80) {
        cp = ((c & 0x0Fu) << 12) | ((s[*i + 1] & 0x3Fu) << 6) | (s[*i + 2] & 0x3Fu);
        if (cp < 0x800)
            return -1; /* overlong */
        *i += 3;
    } else {
        return -1; /* 4-byte (non-BMP) or malformed */
    }
    for (size_t k = 0; k < sizeof nd_zeros / sizeof nd_zeros[0]; k++)
        if (cp >= nd_zeros[k] && cp <= nd_zeros[k] + 9u)
            return (int)(cp - nd_zeros[k]);
    return -1;
}

/* Integer.parseInt(s): optional '+' or '-', then one or more digits, value
 * within [-2^31, 2^31-1].  Returns 1 and sets *out, or 0. */
static int java_parse_int(const unsigned char *s, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    long long v = 0;
    const long long limit = 2147483648LL; /* magnitude of INT_MIN */

    if (n == 0)
        return 0;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
        if (n == 1)
            return 0;
    }
    while (i < n) {
        int d = java_digit(s, n, &i);
        if (d < 0)
            return 0;
        v = v * 10 + d;
        if (v > limit)
            return 0;
    }
    if (!neg && v == limit)
        return 0;
    *out = neg ? -v : v;
    return 1;
}

/* ---- CIDR ------------------------------------------------------------- */

/* err = prefix + extra[0..extra_len), NUL-terminated, cut to fit errcap
 * without splitting a UTF-8 sequence. */
static void set_err(char *err, size_t errcap, const char *prefix, const char *extra,
                    size_t extra_len)
{
    if (err == NULL || errcap == 0)
        return;
    size_t plen = strlen(prefix);
    size_t total = plen + extra_len;
    size_t keep = total < errcap ? total : errcap - 1;
    if (keep < total) {
        /* back off while the first byte left out continues a sequence */
        while (keep > plen && ((unsigned char)extra[keep - plen] & 0xC0) == 0x80)
            keep--;
    }
    size_t from_prefix = keep < plen ? keep : plen;
    memcpy(err, prefix, from_prefix);
    if (keep > plen)
        memcpy(err + plen, extra, keep - plen);
    err[keep] = '\0';
}

int ebp_cidr_parse(const char *str, size_t n, ebp_cidr *out, char *err, size_t errcap)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t t = n, slash = 0, slashes = 0;
    long long bits;

    /* Java's cidr.split("/") must give exactly two parts.  split drops
     * trailing empty parts, so trailing slashes do not count. */
    while (t > 0 && s[t - 1] == '/')
        t--;
    for (size_t i = 0; i < t; i++) {
        if (s[i] == '/') {
            slashes++;
            slash = i;
        }
    }
    if (slashes != 1) {
        set_err(err, errcap, "Malformed CIDR, one '/' required", "", 0);
        return -1;
    }
    if (!java_parse_int(s + slash + 1, t - slash - 1, &bits)) {
        set_err(err, errcap, "Malformed CIDR, mask bits must be an integer", "", 0);
        return -1;
    }
    if (bits < 0) {
        set_err(err, errcap, "Malformed CIDR, mask bits must not be negative", "", 0);
        return -1;
    }

    ebp_ip base;
    switch (ip_scan(str, slash, &base)) {
    case IP_UNSHAPED:
        set_err(err, errcap, "Nonstandard IP address: ", str, slash);
        return -1;
    case IP_INVALID:
        set_err(err, errcap, "Invalid IP address: ", str, slash);
        return -1;
    default:
        break;
    }
    if (base.family == 4 && bits > 31) {
        set_err(err, errcap, "IPv4 mask bits must be < 32", "", 0);
        return -1;
    }
    if (base.family == 6 && bits > 127) {
        set_err(err, errcap, "IPv6 mask bits must be < 128", "", 0);
        return -1;
    }

    size_t len = base.family == 4 ? 4 : 16;
    memset(out, 0, sizeof *out);
    out->family = base.family;
    for (size_t i = 0; i < len; i++) {
        long long fixed = bits - (long long)(8 * i); /* network bits in this byte */
        unsigned mask;
        if (fixed >= 8)
            mask = 0xFF;
        else if (fixed <= 0)
            mask = 0;
        else
            mask = (0xFFu << (8 - fixed)) & 0xFFu;
        out->lo[i] = (unsigned char)(base.addr[i] & mask);
        out->hi[i] = (unsigned char)(base.addr[i] | (~mask & 0xFFu));
    }
    return 0;
}
