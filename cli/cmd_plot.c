/* pnd plot: redraw figures from existing results without recomputing. */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/report.h"

#define PATH_SIZE 4096

static void
print_help(void)
{
    printf("Usage: pnd plot RESULTS [-o DIR] [--svg]\n\n"
           "Redraw the figures of existing results with gnuplot, without\n"
           "recomputing anything. RESULTS is one of:\n"
           "  a simulator TSV (pnd sim -o FILE.tsv)\n"
           "  a trainer run directory, or a directory of runs (pnd train -o DIR)\n"
           "  a report directory (pnd report -o DIR)\n\n"
           "Options:\n"
           "  -o, --output DIR  write the figures here (default: RESULTS/figures for a\n"
           "                    directory, DIR_OF_TSV/figures for a TSV)\n"
           "      --svg         also write SVG files beside the PDF and PNG files\n"
           "  -q, --quiet       print only errors\n"
           "  -v, --verbose     print debugging messages\n"
           "  -h, --help        print this help\n\n"
           "Every figure is written as NAME.pdf and NAME.png, its data as\n"
           "data/NAME.dat. Environment: PND_GNUPLOT names the gnuplot program,\n"
           "PND_DATA_DIR the folder of the gnuplot templates.\n");
}

/* RESULTS/figures for a directory, dirname(RESULTS)/figures for a file. */
static void
default_out_dir(const char *results, char *buf, size_t size)
{
    struct stat st;
    const char *slash = strrchr(results, '/');

    if (stat(results, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(buf, size, "%s/figures", results);
    else if (slash != NULL)
        snprintf(buf, size, "%.*s/figures", (int) (slash - results), results);
    else
        snprintf(buf, size, "figures");
}

int
pnd_cmd_plot(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"svg", no_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};
    const char *out_dir = NULL;
    char default_dir[PATH_SIZE];
    bool svg = false;
    int c, status;

    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qvh", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_dir = optarg;
            break;
        case 's':
            svg = true;
            break;
        case 'q':
        case 'v':
            break;   /* handled by pnd_cli_apply_verbosity */
        case 'h':
            print_help();
            return 0;
        default:
            return pnd_cli_usage_error("plot", "invalid option");
        }
    }
    if (optind != argc - 1)
        return pnd_cli_usage_error("plot", "expected one RESULTS path (a simulator TSV, a run directory or a report directory), got %d",
                                   argc - optind);
    if (out_dir == NULL) {
        default_out_dir(argv[optind], default_dir, sizeof default_dir);
        out_dir = default_dir;
    }

    pnd_plot_options_init(&opt, out_dir);
    if (svg)
        opt.formats |= PND_PLOT_SVG;
    status = pnd_plot_path(&opt, argv[optind], &list);
    if (status != PND_OK) {
        pnd_figure_list_free(&list);
        return pnd_cli_fail("plot", status);
    }
    for (size_t i = 0; i < list.n; i++)
        printf("%s/%s.pdf\n", out_dir, list.items[i].name);
    pnd_log(PND_LOG_INFO, "%zu figures written to %s", list.n, out_dir);
    pnd_figure_list_free(&list);
    return 0;
}
