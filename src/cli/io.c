#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char *read_stream(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static char *gunzip_buf(const char *in, size_t inlen, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return NULL;
    size_t cap = inlen * 6 + 1024, n = 0;
    char *out = malloc(cap + 1);
    if (!out) {
        inflateEnd(&zs);
        return NULL;
    }
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)0;
    size_t fed = 0;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (zs.avail_in == 0 && fed < inlen) {
            size_t chunk = inlen - fed > (1u << 30) ? (1u << 30) : inlen - fed;
            zs.next_in = (unsigned char *)(uintptr_t)(in + fed);
            zs.avail_in = (uInt)chunk;
            fed += chunk;
        }
        if (n == cap) {
            cap *= 2;
            char *no = realloc(out, cap + 1);
            if (!no) {
                free(out);
                inflateEnd(&zs);
                return NULL;
            }
            out = no;
        }
        size_t room = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        zs.next_out = (unsigned char *)out + n;
        zs.avail_out = (uInt)room;
        rc = inflate(&zs, Z_NO_FLUSH);
        n += room - zs.avail_out;
        if (rc == Z_STREAM_END && fed < inlen && zs.avail_in == 0) {
            /* concatenated gzip members */
            inflateReset(&zs);
            rc = Z_OK;
        }
        if (rc != Z_OK && rc != Z_STREAM_END) {
            if (rc == Z_BUF_ERROR && zs.avail_in == 0 && fed >= inlen)
                break; /* truncated input: keep what we have */
            free(out);
            inflateEnd(&zs);
            return NULL;
        }
    }
    inflateEnd(&zs);
    out[n] = 0;
    *outlen = n;
    return out;
}

char *cli_read_file(const char *path, size_t *len, int gunzip)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "ebridge: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = read_stream(f, len);
    if (f != stdin)
        fclose(f);
    if (!buf) {
        fprintf(stderr, "ebridge: cannot read %s\n", path);
        return NULL;
    }
    if (gunzip && *len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b) {
        size_t ol;
        char *out = gunzip_buf(buf, *len, &ol);
        free(buf);
        if (!out) {
            fprintf(stderr, "ebridge: %s: bad gzip data\n", path);
            return NULL;
        }
        *len = ol;
        return out;
    }
    return buf;
}

char *cli_arg_text(const char *arg, size_t *len)
{
    if (arg[0] == '@')
        return cli_read_file(arg + 1, len, 0);
    size_t n = strlen(arg);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, arg, n + 1);
    *len = n;
    return s;
}
