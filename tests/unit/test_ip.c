/* Unit tests for src/pattern/ip.c: which strings are IP addresses, CIDR
 * parsing with AWS's exact error texts, and range containment. */
#include "ip.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Parse s through a heap copy of exactly strlen(s) bytes, so that ASan
 * catches any read past the end (the parser gets no NUL terminator). */
static int ip_of(const char *s, ebp_ip *out)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, s, n);
    int r = ebp_ip_parse(copy, n, out);
    free(copy);
    return r;
}

static int is_ip(const char *s)
{
    ebp_ip ip;
    return ip_of(s, &ip);
}

/* Parse a CIDR; returns 0 or -1, leaves the message (or "") in err. */
static char err[256];
static int cidr_of(const char *s, ebp_cidr *out)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, s, n);
    err[0] = '\0';
    int r = ebp_cidr_parse(copy, n, out, err, sizeof err);
    free(copy);
    return r;
}

/* The error text for cidr s, or "OK" if it parses. */
static const char *cidr_err(const char *s)
{
    ebp_cidr c;
    return cidr_of(s, &c) == 0 ? "OK" : err;
}

/* 1 if address a is inside cidr c (both must parse). */
static int in(const char *c, const char *a)
{
    ebp_cidr cidr;
    ebp_ip ip;
    if (cidr_of(c, &cidr) != 0 || !ip_of(a, &ip))
        return -1;
    return ebp_cidr_contains(&cidr, &ip);
}

static int same(const char *a, const char *b)
{
    ebp_ip x, y;
    if (!ip_of(a, &x) || !ip_of(b, &y))
        return -1;
    return ebp_ip_equal(&x, &y);
}

static void test_ipv4_accepted(void)
{
    ebp_ip ip;
    CHECK(ip_of("10.0.0.1", &ip));
    CHECK(ip.family == 4);
    CHECK(ip.addr[0] == 10 && ip.addr[1] == 0 && ip.addr[2] == 0 && ip.addr[3] == 1);
    for (int i = 4; i < 16; i++)
        CHECK(ip.addr[i] == 0);
    CHECK(is_ip("0.0.0.0"));
    CHECK(is_ip("255.255.255.255"));
    CHECK(is_ip("10.0.0.255"));
    /* leading zeros are decimal, not octal */
    CHECK(ip_of("010.000.000.011", &ip));
    CHECK(ip.addr[0] == 10 && ip.addr[3] == 11);
    CHECK(same("010.0.0.1", "10.0.0.1") == 1);
    CHECK(is_ip("0000.0.0.0001")); /* 13 bytes */
    CHECK(is_ip("000.000.000.000")); /* 15 bytes: the longest accepted */
}

static void test_ipv4_rejected(void)
{
    CHECK(!is_ip(""));
    CHECK(!is_ip("10.0.0.256"));
    CHECK(!is_ip("256.0.0.0"));
    CHECK(!is_ip("999.1.1.1"));
    CHECK(!is_ip("1.2.3"));      /* InetAddress would take it, the shape check does not */
    CHECK(!is_ip("1.2"));
    CHECK(!is_ip("16909060"));   /* nor the single-number form */
    CHECK(!is_ip("1.2.3.4.5"));
    CHECK(!is_ip("1..2.3"));
    CHECK(!is_ip(".1.2.3"));
    CHECK(!is_ip("1.2.3."));
    CHECK(!is_ip("1.2.3.4."));
    CHECK(!is_ip("0000.000.000.000")); /* 16 bytes: too long for Java */
    CHECK(!is_ip("0010.000.000.0001"));
    CHECK(!is_ip("0.0.0.0377"));  /* octal 255 in BSD, over 255 in decimal */
    CHECK(!is_ip("1.2.3.0x1"));
    CHECK(!is_ip("1.2.3.-4"));
    CHECK(!is_ip("+1.2.3.4"));
    CHECK(!is_ip(" 10.0.0.1"));
    CHECK(!is_ip("10.0.0.1 "));
    CHECK(!is_ip("10.0.0.1\n"));
    CHECK(!is_ip("1.2.3.4:80"));
    CHECK(!is_ip("1.2.3.4/32"));
    CHECK(!is_ip("\xd9\xa1.2.3.4")); /* Arabic-Indic one: not [0-9] */
}

static void test_ipv6_accepted(void)
{
    ebp_ip ip;
    static const unsigned char want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                           0,    0,    0,    0,    0, 0, 0, 1};
    CHECK(ip_of("2001:db8::1", &ip));
    CHECK(ip.family == 6);
    CHECK(memcmp(ip.addr, want, 16) == 0);
    CHECK(same("2001:db8::1", "2001:0DB8:0:0:0:0:0:1") == 1);
    CHECK(same("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001") == 1);
    CHECK(same("2001:DB8::1", "2001:db8:0::0:1") == 1);
    CHECK(same("2001:db8:1234:1a00::", "2001:0db8:1234:1a00:0000:0000:0000:0000") == 1);
    CHECK(same("::", "0:0:0:0:0:0:0:0") == 1);
    CHECK(same("::1", "0:0:0:0:0:0:0:1") == 1);
    CHECK(same("1::", "1:0:0:0:0:0:0:0") == 1);
    CHECK(is_ip("1:2:3:4:5:6:7:8"));
    CHECK(same("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0") == 1); /* "::" for one group */
    CHECK(same("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8") == 1);
    /* a group may be longer than 4 digits while its value fits 16 bits */
    CHECK(same("00000001::", "1::") == 1);
    CHECK(same("::0000000000ffff", "::ffff") == 1);
    CHECK(is_ip("ffff::"));
    CHECK(is_ip("FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"));
    CHECK(same("2001:db8::1", "2001:db8::2") == 0);
}

static void test_ipv6_rejected(void)
{
    CHECK(!is_ip("::g"));
    CHECK(!is_ip("1:2:3:4:5:6:7:8:9"));
    CHECK(!is_ip("::1:2:3:4:5:6:7:8")); /* "::" standing for no group */
    CHECK(!is_ip("1:2:3:4:5:6:7:8::"));
    CHECK(!is_ip("1:2:3:4:5:6:7"));
    CHECK(!is_ip("1::2::3"));
    CHECK(!is_ip(":::"));
    CHECK(!is_ip("1:::2"));
    CHECK(!is_ip(":"));
    CHECK(!is_ip(":1"));
    CHECK(!is_ip(":1::"));
    CHECK(!is_ip("1:"));
    CHECK(!is_ip("::1:"));
    CHECK(!is_ip("1:2:3:4:5:6:7:8:"));
    CHECK(!is_ip("10000::"));       /* group over 16 bits */
    CHECK(!is_ip("08:23"));         /* event-ruler's own test: not an IP */
    CHECK(!is_ip("xxxx:db8:1234:1a00::"));
    /* what event-ruler's shape check keeps out */
    CHECK(!is_ip("::ffff:1.2.3.4")); /* embedded dotted IPv4 */
    CHECK(!is_ip("::1.2.3.4"));
    CHECK(!is_ip("1:2:3:4:5:6:1.2.3.4"));
    CHECK(!is_ip("fe80::1%eth0"));   /* zone id */
    CHECK(!is_ip("fe80::1%1"));
    CHECK(!is_ip("[::1]"));
    CHECK(!is_ip(" ::1"));
    CHECK(!is_ip("::1 "));
    CHECK(!is_ip("abc"));            /* hex but no ':' */
    CHECK(!is_ip("deadbeef"));
}

static void test_ipv4_mapped(void)
{
    ebp_ip ip;
    CHECK(ip_of("::ffff:a00:1", &ip));
    CHECK(ip.family == 4);
    CHECK(ip.addr[0] == 10 && ip.addr[3] == 1);
    CHECK(same("::ffff:a00:1", "10.0.0.1") == 1);
    CHECK(same("0:0:0:0:0:FFFF:0A00:0001", "10.0.0.1") == 1);
    CHECK(same("::ffff:0:0", "0.0.0.0") == 1);
    CHECK(same("::ffff:ffff:ffff", "255.255.255.255") == 1);
    /* IPv4-compatible (::a.b.c.d) and other near misses stay IPv6 */
    CHECK(ip_of("::a00:1", &ip) && ip.family == 6);
    CHECK(ip_of("::fffe:a00:1", &ip) && ip.family == 6);
    CHECK(ip_of("1::ffff:a00:1", &ip) && ip.family == 6);
    CHECK(in("10.0.0.0/24", "::ffff:a00:ff") == 1);
    CHECK(in("10.0.0.0/24", "::ffff:a00:100") == 0);
}

static void test_cidr_messages(void)
{
    const char *one = "Malformed CIDR, one '/' required";
    const char *integer = "Malformed CIDR, mask bits must be an integer";
    const char *negative = "Malformed CIDR, mask bits must not be negative";
    const char *v4 = "IPv4 mask bits must be < 32";
    const char *v6 = "IPv6 mask bits must be < 128";

    CHECK_STR(cidr_err("10.0.0.0/24"), "OK");
    CHECK_STR(cidr_err("2001:db8:1234:1a00::/64"), "OK");
    CHECK_STR(cidr_err("bad-filter"), one);
    CHECK_STR(cidr_err("bad-/64filter"), integer);
    CHECK_STR(cidr_err("xx.11.xx/8"), "Nonstandard IP address: xx.11.xx");
    CHECK_STR(cidr_err("xxxx:db8:1234:1a00::/64"),
              "Nonstandard IP address: xxxx:db8:1234:1a00::");

    /* one '/' (Java's split drops trailing empty parts) */
    CHECK_STR(cidr_err(""), one);
    CHECK_STR(cidr_err("/"), one);
    CHECK_STR(cidr_err("//"), one);
    CHECK_STR(cidr_err("10.0.0.0"), one);
    CHECK_STR(cidr_err("10.0.0.0/"), one);
    CHECK_STR(cidr_err("10.0.0.0//"), one);
    CHECK_STR(cidr_err("10.0.0.0//8"), one);
    CHECK_STR(cidr_err("10.0.0.0/8/9"), one);
    CHECK_STR(cidr_err("foo/bar/baz"), one);
    CHECK_STR(cidr_err("10.0.0.0/8/"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/8///"), "OK");
    CHECK_STR(cidr_err("/8"), "Nonstandard IP address: ");

    /* mask bits: Integer.parseInt */
    CHECK_STR(cidr_err("10.0.0.0/+8"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/08"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/0000000000000000000008"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/-0"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/ 8"), integer);
    CHECK_STR(cidr_err("10.0.0.0/8 "), integer);
    CHECK_STR(cidr_err("10.0.0.0/+"), integer);
    CHECK_STR(cidr_err("10.0.0.0/-"), integer);
    CHECK_STR(cidr_err("10.0.0.0/+-8"), integer);
    CHECK_STR(cidr_err("10.0.0.0/8.0"), integer);
    CHECK_STR(cidr_err("10.0.0.0/0x8"), integer);
    CHECK_STR(cidr_err("10.0.0.0/1e1"), integer);
    CHECK_STR(cidr_err("10.0.0.0/2147483648"), integer);
    CHECK_STR(cidr_err("10.0.0.0/-2147483649"), integer);
    CHECK_STR(cidr_err("10.0.0.0/99999999999999999999"), integer);
    CHECK_STR(cidr_err("10.0.0.0/2147483647"), v4);
    CHECK_STR(cidr_err("10.0.0.0/-1"), negative);
    CHECK_STR(cidr_err("10.0.0.0/-2147483648"), negative);
    CHECK_STR(cidr_err("192.168.0.1/-3424"), negative);
    CHECK_STR(cidr_err("192.168.0.1/foo"), integer);
    /* Java digits beyond ASCII: Arabic-Indic 8, fullwidth 8, Arabic-Indic 16 */
    CHECK_STR(cidr_err("10.0.0.0/\xd9\xa8"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/\xef\xbc\x98"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/\xd9\xa1\xd9\xa6"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/\xc2\xb2"), integer);            /* superscript two: No, not Nd */
    CHECK_STR(cidr_err("10.0.0.0/\xf0\x9d\x9f\x8e"), integer);    /* U+1D7CE: outside the BMP */
    CHECK_STR(cidr_err("10.0.0.0/\xe2\x85\xa8"), integer);        /* Roman numeral nine */
    CHECK_STR(cidr_err("10.0.0.0/\xd9"), integer);                /* cut UTF-8 */
    CHECK_STR(cidr_err("10.0.0.0/\xc0\xb8"), integer);            /* overlong '8' */

    /* order: '/' count, then mask integer, then negative, then address, then range */
    CHECK_STR(cidr_err("xx/yy"), integer);
    CHECK_STR(cidr_err("xx/-1"), negative);
    CHECK_STR(cidr_err("xx/99"), "Nonstandard IP address: xx");
    CHECK_STR(cidr_err("10.0.0.256/99"), "Invalid IP address: 10.0.0.256");

    /* shaped like an IP but not one: "Invalid", not "Nonstandard" */
    CHECK_STR(cidr_err("10.0.0.256/8"), "Invalid IP address: 10.0.0.256");
    CHECK_STR(cidr_err("0010.000.000.0001/8"), "Invalid IP address: 0010.000.000.0001");
    CHECK_STR(cidr_err("1:2:3:4:5:6:7:8:9/64"), "Invalid IP address: 1:2:3:4:5:6:7:8:9");
    CHECK_STR(cidr_err("08:23/8"), "Invalid IP address: 08:23");
    CHECK_STR(cidr_err(":/8"), "Invalid IP address: :");
    CHECK_STR(cidr_err("1.2.3/8"), "Nonstandard IP address: 1.2.3");
    CHECK_STR(cidr_err("10.10.10.10.10/3"), "Nonstandard IP address: 10.10.10.10.10");
    CHECK_STR(cidr_err("2.1.0.-1/3"), "Nonstandard IP address: 2.1.0.-1");
    CHECK_STR(cidr_err("::g/64"), "Nonstandard IP address: ::g");
    CHECK_STR(cidr_err("::ffff:10.0.0.0/104"), "Nonstandard IP address: ::ffff:10.0.0.0");
    CHECK_STR(cidr_err("fe80::%eth0/64"), "Nonstandard IP address: fe80::%eth0");
    CHECK_STR(cidr_err(" 10.0.0.0/8"), "Nonstandard IP address:  10.0.0.0");
    CHECK_STR(cidr_err("snorkle/3"), "Nonstandard IP address: snorkle");

    /* mask limits: /32 and /128 are rejected */
    CHECK_STR(cidr_err("0.0.0.0/0"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/31"), "OK");
    CHECK_STR(cidr_err("10.0.0.0/32"), v4);
    CHECK_STR(cidr_err("192.168.0.1/33"), v4);
    CHECK_STR(cidr_err("::/0"), "OK");
    CHECK_STR(cidr_err("2001:db8::/127"), "OK");
    CHECK_STR(cidr_err("2001:db8::/128"), v6);
    CHECK_STR(cidr_err("2400:6500:FF00::36FB:1F80/222"), v6);
    CHECK_STR(cidr_err("2001:db8::/32"), "OK");
    /* an IPv4-mapped base is IPv4, so its mask is checked against 32 */
    CHECK_STR(cidr_err("::ffff:a00:0/8"), "OK");
    CHECK_STR(cidr_err("::ffff:a00:0/104"), v4);
}

static void test_cidr_error_buffer(void)
{
    ebp_cidr c;
    char small[12];
    /* truncated, NUL-terminated */
    CHECK(ebp_cidr_parse("bad-filter", 10, &c, small, sizeof small) == -1);
    CHECK_STR(small, "Malformed C");
    /* never splits a UTF-8 sequence: "Nonstandard IP address: " is 24 bytes */
    char buf[27];
    const char *s = "\xc3\xa9\xc3\xa9/8"; /* "éé/8" */
    CHECK(ebp_cidr_parse(s, strlen(s), &c, buf, sizeof buf) == -1);
    CHECK_STR(buf, "Nonstandard IP address: \xc3\xa9");
    /* NULL / 0 capacity is allowed */
    CHECK(ebp_cidr_parse("bad-filter", 10, &c, NULL, 0) == -1);
    /* s is not NUL-terminated: only s[0..n) counts */
    CHECK(ebp_cidr_parse("10.0.0.0/24garbage", 11, &c, buf, sizeof buf) == 0);
    CHECK(c.family == 4 && c.hi[3] == 0xff);
    /* failure leaves *out alone */
    memset(&c, 0x5a, sizeof c);
    CHECK(ebp_cidr_parse("10.0.0.0/32", 11, &c, buf, sizeof buf) == -1);
    CHECK(c.family == 0x5a);
}

static void test_cidr_ranges_v4(void)
{
    ebp_cidr c;
    CHECK(cidr_of("10.0.0.0/24", &c) == 0);
    CHECK(c.family == 4);
    CHECK(c.lo[0] == 10 && c.lo[1] == 0 && c.lo[2] == 0 && c.lo[3] == 0);
    CHECK(c.hi[0] == 10 && c.hi[1] == 0 && c.hi[2] == 0 && c.hi[3] == 255);
    for (int i = 4; i < 16; i++)
        CHECK(c.lo[i] == 0 && c.hi[i] == 0);

    CHECK(in("10.0.0.0/24", "10.0.0.0") == 1);
    CHECK(in("10.0.0.0/24", "10.0.0.255") == 1);
    CHECK(in("10.0.0.0/24", "10.0.0.128") == 1);
    CHECK(in("10.0.0.0/24", "9.255.255.255") == 0);
    CHECK(in("10.0.0.0/24", "10.0.1.0") == 0);
    CHECK(in("10.0.0.0/24", "010.000.000.255") == 1);
    /* host bits in the base are cleared for the bottom of the range */
    CHECK(in("10.0.0.5/24", "10.0.0.0") == 1);
    CHECK(in("10.0.0.5/24", "10.0.0.4") == 1);
    CHECK(in("10.0.0.5/24", "10.0.0.255") == 1);
    CHECK(in("10.0.0.5/24", "10.0.1.0") == 0);
    CHECK(in("54.240.196.171/24", "54.240.196.0") == 1);
    /* /0 covers everything IPv4, nothing IPv6 */
    CHECK(in("0.0.0.0/0", "0.0.0.0") == 1);
    CHECK(in("0.0.0.0/0", "255.255.255.255") == 1);
    CHECK(in("0.0.0.0/0", "::") == 0);
    CHECK(in("123.4.5.6/0", "1.2.3.4") == 1);
    /* /31 is two addresses */
    CHECK(in("10.0.0.1/31", "10.0.0.0") == 1);
    CHECK(in("10.0.0.1/31", "10.0.0.1") == 1);
    CHECK(in("10.0.0.1/31", "10.0.0.2") == 0);
    CHECK(in("255.255.255.255/31", "255.255.255.254") == 1);
    CHECK(in("255.255.255.255/31", "255.255.255.255") == 1);
    /* odd masks */
    CHECK(in("13.32.0.0/15", "13.33.255.255") == 1);
    CHECK(in("13.32.0.0/15", "13.34.0.0") == 0);
    CHECK(in("13.32.0.0/15", "13.31.255.255") == 0);
    CHECK(in("52.76.128.0/17", "52.76.255.255") == 1);
    CHECK(in("52.76.128.0/17", "52.76.127.255") == 0);
    CHECK(in("128.0.0.0/1", "127.255.255.255") == 0);
    CHECK(in("128.0.0.0/1", "128.0.0.0") == 1);
}

static void test_cidr_ranges_v6(void)
{
    ebp_cidr c;
    CHECK(cidr_of("2001:db8:1234:1a00::/64", &c) == 0);
    CHECK(c.family == 6);
    static const unsigned char lo[16] = {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x1a, 0x00,
                                         0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char hi[16] = {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x1a, 0x00,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(memcmp(c.lo, lo, 16) == 0);
    CHECK(memcmp(c.hi, hi, 16) == 0);

    const char *net = "2001:db8:1234:1a00::/64";
    CHECK(in(net, "2001:0db8:1234:1a00:0000:0000:0000:0000") == 1);
    CHECK(in(net, "2001:db8:1234:1a00::") == 1);
    CHECK(in(net, "2001:DB8:1234:1A00:FFFF:FFFF:FFFF:FFFF") == 1);
    CHECK(in(net, "2001:db8:1234:1a00:1:2:3:4") == 1);
    CHECK(in(net, "2001:db8:1234:1a01::") == 0);
    CHECK(in(net, "2001:db8:1234:19ff:ffff:ffff:ffff:ffff") == 0);
    CHECK(in(net, "10.0.0.1") == 0);
    /* host bits in the base */
    CHECK(in("2001:db8::ff00:42:8329/24", "2001:d00::") == 1);
    CHECK(in("2001:db8::ff00:42:8329/24", "2001:dff:ffff:ffff:ffff:ffff:ffff:ffff") == 1);
    CHECK(in("2001:db8::ff00:42:8329/24", "2001:e00::") == 0);
    /* /127 and /0 */
    CHECK(in("::/127", "::") == 1);
    CHECK(in("::/127", "::1") == 1);
    CHECK(in("::/127", "::2") == 0);
    CHECK(in("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 1);
    CHECK(in("::/0", "10.0.0.1") == 0);
    CHECK(in("::/0", "::ffff:a00:1") == 0); /* mapped address is IPv4 */
    /* a mask that is not a multiple of 4 */
    CHECK(in("2400:6500:FF00::36FB:1F80/122", "2400:6500:ff00::36fb:1fbf") == 1);
    CHECK(in("2400:6500:FF00::36FB:1F80/122", "2400:6500:ff00::36fb:1fc0") == 0);
    CHECK(in("2400:6500:FF00::36FB:1F80/122", "2400:6500:ff00::36fb:1f7f") == 0);
    CHECK(in("2600:1F14::/35", "2600:1f14:1fff:ffff:ffff:ffff:ffff:ffff") == 1);
    CHECK(in("2600:1F14::/35", "2600:1f14:2000::") == 0);
}

static void test_non_nul_terminated(void)
{
    /* The parser must stop at n even when what follows would change things. */
    ebp_ip ip;
    CHECK(ebp_ip_parse("10.0.0.1", 7, &ip) == 0);   /* "10.0.0." */
    CHECK(ebp_ip_parse("10.0.0.19", 8, &ip) == 1);  /* "10.0.0.1" */
    CHECK(ip.addr[3] == 1);
    CHECK(ebp_ip_parse("::1:", 3, &ip) == 1);       /* "::1" */
    CHECK(ebp_ip_parse(":", 1, &ip) == 0);
    CHECK(ebp_ip_parse("", 0, &ip) == 0);
    CHECK(ebp_ip_parse(NULL, 0, &ip) == 0);
}

int main(void)
{
    RUN(test_ipv4_accepted);
    RUN(test_ipv4_rejected);
    RUN(test_ipv6_accepted);
    RUN(test_ipv6_rejected);
    RUN(test_ipv4_mapped);
    RUN(test_cidr_messages);
    RUN(test_cidr_error_buffer);
    RUN(test_cidr_ranges_v4);
    RUN(test_cidr_ranges_v6);
    RUN(test_non_nul_terminated);
    return TEST_REPORT();
}
