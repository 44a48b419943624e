/* pnd plot: placeholder until its module lands. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int
pnd_cmd_plot(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("Usage: pnd plot [OPTIONS]\n\nNot implemented yet.\n");
        return 0;
    }
    fprintf(stderr, "pnd plot: not implemented yet\n");
    return 2;
}
