/* pnd report: run the simulator sweeps and the trainer, write the report. */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/report.h"

#define COMMAND_LINE_MAX 4096

static void
print_help(void)
{
    printf("Usage: pnd report [--preset quick|default|paper] [-o DIR] [--threads N]\n"
           "                  [--seed S] [--svg]\n\n"
           "Run the simulator sweeps and the Fashion-MNIST training runs of a preset and\n"
           "write DIR/report.md and DIR/report.html with the figures (DIR/figures) and\n"
           "the tables as TSV, Markdown and LaTeX (DIR/tables). Finished sweeps and runs\n"
           "in DIR whose stored configuration matches are reused.\n\n"
           "Options:\n"
           "  -p, --preset NAME  quick (about a minute), default (about ten minutes on two\n"
           "                     cores) or paper (more seeds, epochs and draws); default:\n"
           "                     default\n"
           "  -o, --output DIR   report directory (default: report)\n"
           "  -j, --threads N    OpenMP threads of the simulator (default: 0, the OpenMP\n"
           "                     default)\n"
           "  -s, --seed S       base seed of every sweep and run (default: 1)\n"
           "      --svg          also write every figure as SVG\n"
           "  -q, --quiet        print only errors\n"
           "  -v, --verbose      print debugging messages\n"
           "  -h, --help         print this help\n\n"
           "Exit status: 0 when every exact check passes, 1 when one fails or the job\n"
           "fails, 2 for a usage error. docs/report.md describes the report.\n");
}

/* The command line as typed, with a word that contains a space quoted. */
static void
join_command_line(int argc, char **argv, char *buf, size_t size)
{
    size_t len = (size_t) snprintf(buf, size, "pnd");

    for (int i = 0; i < argc && len < size; i++) {
        const char *quote = strpbrk(argv[i], " \t'\"") ? "'" : "";
        int n = snprintf(buf + len, size - len, " %s%s%s", quote, argv[i], quote);

        if (n < 0)
            break;
        len += (size_t) n;
    }
}

int
pnd_cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"preset", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 'j'},
        {"seed", required_argument, NULL, 's'},
        {"svg", no_argument, NULL, 'S'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pnd_report_config cfg;
    struct pnd_report_result result;
    char command_line[COMMAND_LINE_MAX];
    unsigned long long value;
    int c, status, preset;

    pnd_report_config_init(&cfg);
    join_command_line(argc, argv, command_line, sizeof command_line);
    cfg.command_line = command_line;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:o:j:s:qvh", options, NULL)) != -1) {
        switch (c) {
        case 'p':
            for (preset = 0; pnd_report_preset_names[preset] != NULL; preset++)
                if (strcmp(optarg, pnd_report_preset_names[preset]) == 0)
                    break;
            if (pnd_report_preset_names[preset] == NULL)
                return pnd_cli_usage_error("report", "invalid preset '%s': use quick, default or paper",
                                           optarg);
            cfg.preset = (enum pnd_report_preset) preset;
            break;
        case 'o':
            cfg.out_dir = optarg;
            break;
        case 'j':
            if (pnd_cli_parse_u64("report", "--threads", optarg, &value) != 0)
                return 2;
            if (value > 4096)
                return pnd_cli_usage_error("report", "invalid value '%s' for --threads: use 0 to 4096",
                                           optarg);
            cfg.threads = (int) value;
            break;
        case 's':
            if (pnd_cli_parse_u64("report", "--seed", optarg, &value) != 0)
                return 2;
            cfg.seed = value;
            break;
        case 'S':
            cfg.formats |= PND_PLOT_SVG;
            break;
        case 'q':
        case 'v':
            break;   /* handled by pnd_cli_apply_verbosity */
        case 'h':
            print_help();
            return 0;
        default:
            return pnd_cli_usage_error("report", "invalid option");
        }
    }
    if (optind != argc)
        return pnd_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);

    status = pnd_report_run(&cfg, &result);
    if (status != PND_OK)
        return pnd_cli_fail("report", status);
    printf("%s/report.html\n%s/report.md\n", cfg.out_dir, cfg.out_dir);
    pnd_log(PND_LOG_INFO, "report written to %s in %.1f s: %zu figures, %zu exact checks (%zu failed), %zu approximate checks",
            cfg.out_dir, result.wall_s, result.n_figures, result.n_exact,
            result.n_exact_failed, result.n_approx);
    if (result.n_exact_failed > 0) {
        fprintf(stderr, "pnd report: %zu of %zu exact checks failed (|z| > 4); see the verification table in %s/report.md\n",
                result.n_exact_failed, result.n_exact, cfg.out_dir);
        return 1;
    }
    return 0;
}
