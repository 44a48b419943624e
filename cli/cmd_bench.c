/* pnd bench: placeholder until its module lands. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int
pnd_cmd_bench(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("Usage: pnd bench [OPTIONS]\n\nNot implemented yet.\n");
        return 0;
    }
    fprintf(stderr, "pnd bench: not implemented yet\n");
    return 2;
}
