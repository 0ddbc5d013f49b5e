/* JSONTestSuite at the syntax layer: every y_ file accepted, every n_ file
 * rejected, every i_ file answered (either way) without crash or hang, by
 * both eb_json_check and the matcher's validating reader (for objects). */
#define _DEFAULT_SOURCE
#include <ebridge/pattern.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        *len = (size_t)n;
    return b;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    char *names[1024];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 1024)
        if (de->d_name[0] != '.' && strstr(de->d_name, ".json"))
            names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, nn, sizeof *names, cmp);
    int passed = 0, failed = 0, ny = 0, nn_ = 0, ni = 0, i_acc = 0;
    eb_machine *m = eb_machine_new();
    eb_pattern *p;
    eb_error err;
    const char *pat = "{\"a\": [{\"exists\": true}]}";
    eb_pattern_compile(pat, strlen(pat), &p, &err);
    eb_machine_add(m, 1, p);
    eb_pattern_free(p);
    eb_snapshot *s = eb_machine_snapshot(m);
    eb_matcher *mt = eb_matcher_new();
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        size_t len;
        char *b = slurp(path, &len);
        if (!b) {
            fprintf(stderr, "cannot read %s\n", path);
            failed++;
            continue;
        }
        eb_status st = eb_json_check(b, len, EB_DEFAULT_MAX_DEPTH, &err);
        /* the matcher's validating reader must agree on objects */
        const uint64_t *keys;
        size_t nk;
        size_t k = 0;
        while (k < len && (b[k] == ' ' || b[k] == '\n' || b[k] == '\r' || b[k] == '\t'))
            k++;
        if (k < len && b[k] == '{') {
            eb_status ms = eb_match(mt, s, b, len, 0, &keys, &nk, &err);
            if ((ms == EB_OK) != (st == EB_OK)) {
                fprintf(stderr, "FAIL %s: eb_json_check and the validating reader disagree\n", names[i]);
                failed++;
                free(b);
                continue;
            }
            /* trusting mode must not crash either */
            eb_match(mt, s, b, len, EB_MATCH_TRUSTED, &keys, &nk, &err);
        }
        int ok = 1;
        if (names[i][0] == 'y') {
            ny++;
            ok = st == EB_OK;
        } else if (names[i][0] == 'n') {
            nn_++;
            ok = st != EB_OK;
        } else {
            ni++;
            i_acc += st == EB_OK;
        }
        if (!ok)
            fprintf(stderr, "FAIL %s: %s\n", names[i], st == EB_OK ? "accepted" : err.message);
        if (ok)
            passed++;
        else
            failed++;
        free(b);
        free(names[i]);
    }
    eb_snapshot_release(s);
    eb_matcher_free(mt);
    eb_machine_free(m);
    printf("jsontestsuite: %d y_ (must accept), %d n_ (must reject), %d i_ (%d accepted)\n", ny, nn_, ni, i_acc);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
