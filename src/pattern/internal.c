#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

void ebp_arena_init(ebp_arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void ebp_arena_free(ebp_arena *a)
{
    ebp_arena_chunk *c = a->head;
    while (c) {
        ebp_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

void *ebp_arena_alloc(ebp_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    ebp_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : 256;
        if (cap > (size_t)1 << 22)
            cap = (size_t)1 << 22;
        if (cap < n)
            cap = n;
        ebp_arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        nc->next = c;
        a->head = nc;
        a->total += sizeof *nc + cap;
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void *ebp_arena_memdup(ebp_arena *a, const void *p, size_t n)
{
    char *d = ebp_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, p, n);
    d[n] = 0;
    return d;
}

int ebp_vec_reserve(ebp_vec *v, size_t n)
{
    if (n <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap : 8;
    while (cap < n)
        cap *= 2;
    void *p = realloc(v->items, cap * v->isz);
    if (!p)
        return -1;
    v->items = p;
    v->cap = cap;
    return 0;
}

void *ebp_vec_push(ebp_vec *v)
{
    if (v->len == v->cap && ebp_vec_reserve(v, v->len + 1))
        return NULL;
    return (char *)v->items + v->isz * v->len++;
}

void ebp_errf(char *buf, size_t cap, const char *fmt, ...)
{
    if (!cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}
