/* pnd: the command-line front end of the pernodedrop toolkit. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"sim", pnd_cmd_sim, "Monte Carlo expected loss beside the analytic value"},
    {"train", pnd_cmd_train, "train an MLP on Fashion-MNIST with a masking scheme"},
    {"plot", pnd_cmd_plot, "redraw figures from existing results"},
    {"report", pnd_cmd_report, "run the sweeps and training, write the report"},
    {"bench", pnd_cmd_bench, "measure speed beside the NumPy and PyTorch peers"},
    {"rng", pnd_cmd_rng, "print raw outputs of a PCG generator"},
};

static void
print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pnd [--quiet|--verbose] COMMAND [OPTIONS]\n"
            "       pnd --version | --help\n\n"
            "Check the expected-loss theory of PerNodeDrop and measure its effect\n"
            "on neural networks.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nRun 'pnd COMMAND --help' for the options of a command.\n"
            "Exit status: 0 success, 1 runtime failure, 2 usage or input error.\n");
}

/* On Ctrl-C, remove the temporary files of outputs not yet complete, so
 * that no half-written file is left, then exit as a signal would. */
static void
on_interrupt(int sig)
{
    static const char message[] = "\npnd: interrupted; incomplete outputs were removed\n";

    pnd_atomic_cleanup_all();
    if (write(STDERR_FILENO, message, sizeof message - 1) < 0) {
        /* Nothing more can be done inside a signal handler. */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* OpenBLAS starts its threads when the program loads, and an idle one
 * spins on another core while pnd bench times this one, although pnd's
 * BLAS calls run on one thread. So pnd bench runs itself again with
 * OPENBLAS_NUM_THREADS=1, the setting its peers get, unless the variable
 * is set. If that fails, it goes on as it is. */
static void
bench_without_blas_threads(char **argv)
{
#ifdef PND_HAVE_OPENBLAS
    if (getenv("OPENBLAS_NUM_THREADS") != NULL
        || setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_NUM_THREADS");
#else
    (void) argv;
#endif
}

int
main(int argc, char **argv)
{
    int first = 1;

    pnd_error_install_gsl_handler();
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    pnd_cli_apply_verbosity(argc, argv);

    while (first < argc && (strcmp(argv[first], "--quiet") == 0
                            || strcmp(argv[first], "-q") == 0
                            || strcmp(argv[first], "--verbose") == 0
                            || strcmp(argv[first], "-v") == 0))
        first++;
    if (first >= argc) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[first], "--version") == 0) {
        printf("pnd (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[first], "bench") == 0)
        bench_without_blas_threads(argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[first], commands[i].name) == 0)
            return commands[i].run(argc - first, argv + first);

    fprintf(stderr, "pnd: unknown command '%s'\n", argv[first]);
    print_usage(stderr);
    return 2;
}
