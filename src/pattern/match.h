/* Matcher state shared by match.c and the reader template (reader_impl.h). */
#ifndef EBP_MATCH_H
#define EBP_MATCH_H

#include "machine.h"

typedef struct {
    uint32_t epoch;
    uint16_t count; /* distinct FK_POS fields with a value */
    uint16_t flags;
    uint32_t bits;  /* offset of this sub-rule's 4 bitsets in mt->words */
    uint32_t hit_head; /* recorded hits (pass 2): index+1, 0 = none */
} sr_state;

enum { SRF_MATCH = 1, SRF_DEAD = 2, SRF_CAND = 4 };

typedef struct {
    uint32_t field;
    uint32_t trail_off;
    uint32_t trail_len; /* in (array id, index) pairs */
    uint32_t presence;
    uint32_t next;      /* index+1 of the next hit of the same sub-rule */
} hit;

struct eb_matcher {
    const eb_snapshot *snap;
    uint32_t epoch;
    sr_state *srs;
    size_t srs_cap;
    uint32_t *rule_epoch;
    size_t rules_cap;
    uint64_t *words;
    size_t nwords, words_cap;
    hit *hits;
    size_t nhits, hits_cap;
    uint32_t *trails;
    size_t ntrails, trails_cap;
    uint32_t *cands;
    size_t ncands, cands_cap;
    uint32_t *dp;
    size_t ndp, dp_cap;
    uint64_t *out;
    size_t nout, out_cap;
    /* reader */
    uint32_t *tstack; /* (array id, index) pairs */
    size_t tdepth, tstack_cap;
    uint32_t next_array;
    uint32_t cur_trail_off;
    int trail_valid;
    int record;       /* pass 2: record hits for the array-consistency check */
    unsigned char *sbuf;
    size_t sbuf_cap;
    unsigned char *fbuf;
    size_t fbuf_cap;
    uint64_t *vstack; /* validating skipper: container kinds, one bit per level */
    size_t vstack_words;
    unsigned max_depth;
    int oom;
    /* error */
    const char *err;
    size_t err_off;
    char errbuf[160];
};

#endif
