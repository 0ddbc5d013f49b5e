#ifndef EB_CLI_H
#define EB_CLI_H

#include <stddef.h>

int cmd_test_pattern(int argc, char **argv);
int cmd_match(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_dead_letters(int argc, char **argv);

/* Read a whole file ("-" = stdin) into a malloc'd buffer (NUL-terminated);
 * gzip input is decompressed.  NULL with a message on stderr on failure. */
char *cli_read_file(const char *path, size_t *len, int gunzip);
/* An argument that is "@file" is read from the file, else used as is. */
char *cli_arg_text(const char *arg, size_t *len);

#endif
