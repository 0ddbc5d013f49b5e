/* ebridge command line: test-pattern, match, serve, help. */
#define _POSIX_C_SOURCE 200809L
#include <ebridge/pattern.h>

#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("usage: ebridge <command> [options]\n"
          "\n"
          "commands:\n"
          "  test-pattern PATTERN EVENT   does the event match the pattern? (JSON text or @file each)\n"
          "                               prints true/false; exit 0 match, 1 no match, 2 invalid input\n"
          "  match --rules RULES.json [--count] [--validate] [--max-depth N] [EVENTS]\n"
          "                               match NDJSON events (file, .gz, or stdin) against named rules\n"
          "  serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE] [...]\n"
          "                               the EventBridge API server (AWS JSON 1.1 on POST /;\n"
          "                               `ebridge serve --help` lists every option)\n"
          "  dead-letters [--data-dir DIR] list|redrive|delete [--queue QUEUE] [--id N]...\n"
          "                               the dead letters of failed deliveries\n"
          "  help                         this text\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "test-pattern"))
        return cmd_test_pattern(argc - 1, argv + 1);
    if (!strcmp(cmd, "match"))
        return cmd_match(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "dead-letters"))
        return cmd_dead_letters(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ebridge: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
