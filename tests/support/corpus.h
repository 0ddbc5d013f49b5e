/* Reading the shared JSONL corpora in unit tests (header-only; the test
 * defines _GNU_SOURCE before any include, for getline). */
#ifndef EB_TEST_CORPUS_H
#define EB_TEST_CORPUS_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* Every line of $EB_SHARED/<rel> as one JSON array (new reference), or NULL
 * with a message when EB_SHARED is unset, the file is missing or a line is
 * not JSON. */
static json_t *load_shared_jsonl(const char *rel)
{
    const char *shared = getenv("EB_SHARED");
    if (!shared) {
        fprintf(stderr, "EB_SHARED is not set\n");
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", shared, rel);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    json_t *all = json_array();
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (all && getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j) {
            fprintf(stderr, "%s:%ld: %s\n", path, lineno, jerr.text);
            json_decref(all);
            all = NULL;
            break;
        }
        json_array_append_new(all, j);
    }
    free(line);
    fclose(f);
    return all;
}

#endif
