/* pnd sim: Monte Carlo estimates of the masked loss beside the analytic
 * values, for one case or a sweep (docs/sim.md). */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/sim.h"

static void
print_help(void)
{
    printf(
        "Usage: pnd sim [OPTIONS]\n\n"
        "Estimate the expected loss of a masked network and its second moments by\n"
        "Monte Carlo, beside the exact value, enumeration, quadrature or the\n"
        "second- and third-order expansions. Lists (comma-separated) sweep every\n"
        "combination.\n\n"
        "Network:\n"
        "  --model NAME        linear, readout, softmax or mlp (default readout)\n"
        "  --net FILE          read the network and data from an INI file instead\n"
        "  --d LIST            input dimensions (default 8)\n"
        "  --h LIST            widths of the masked layers (default 4)\n"
        "  --c N               readout rows, targets or classes (default 2)\n"
        "  --layers N          masked layers of the mlp model (default 1)\n"
        "  --act NAME          mlp activation: identity, tanh, sigmoid, softplus, relu\n"
        "  --loss NAME         mlp loss: squared or softmax-xent (default squared)\n"
        "  --scale LIST        weight scales, W ~ N(0, scale^2 / d_in) (default 1)\n"
        "  --noise X           teacher target noise sd or label flip probability\n"
        "  --data-seed N       seed of the synthetic network and data (default 1)\n"
        "  --n LIST            batch sizes (default 1)\n\n"
        "Masks and draws:\n"
        "  --scheme LIST       schemes, comma-separated, or all (default pernodedrop)\n"
        "  --p LIST            drop probabilities in [0, 1) (default 0.1)\n"
        "  --draws LIST        Monte Carlo draws (default 100000)\n"
        "  --seed N            seed of the masks (default 1)\n"
        "  --grad-draws N      draws of the gradient moments, 0 to skip (default 10000)\n"
        "  --cov BOOL          estimate the pre-activation covariance (default true)\n"
        "  --expansions BOOL   add the order2 and order3 rows beside an exact value\n"
        "                      (default false)\n"
        "  --quad-nodes N      Gauss-Hermite nodes per dimension (default 10)\n"
        "  --chunk N           draws per chunk; changes only rounding (default %d)\n"
        "  --threads N         OpenMP threads, 0 for the OpenMP default\n\n"
        "Output:\n"
        "  -o, --output FILE   TSV table, one row per case and analytic value\n"
        "                      (default: stdout)\n"
        "  --json FILE         JSON summary of the same rows\n"
        "  --check             exit status 1 when an exact comparison has |z| > 4\n"
        "  --config FILE       read options from the [sim] section of an INI file;\n"
        "                      flags override it\n"
        "  -q, --quiet         print only errors\n"
        "  -v, --verbose       print debugging detail\n"
        "  -h, --help          print this help\n\n"
        "Exit status: 0 success, 1 runtime failure or failed --check, 2 invalid\n"
        "option or input file.\n",
        PND_MC_CHUNK_DEFAULT);
}

/* Options that take no value. */
static bool
is_switch(const char *name)
{
    return strcmp(name, "check") == 0 || strcmp(name, "quiet") == 0
           || strcmp(name, "verbose") == 0;
}

/* Split "--name=value" or "--name value"; returns 0 or an exit code. */
static int
option_value(int argc, char **argv, int *i, char *name, size_t name_size,
             const char **value)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');

    if (eq != NULL) {
        snprintf(name, name_size, "%.*s", (int) (eq - arg), arg);
        *value = eq + 1;
        return 0;
    }
    snprintf(name, name_size, "%s", arg);
    if (is_switch(name)) {
        *value = NULL;
        return 0;
    }
    if (*i + 1 >= argc)
        return pnd_cli_usage_error("sim", "option --%s needs a value", name);
    *value = argv[++*i];
    return 0;
}

int
pnd_cmd_sim(int argc, char **argv)
{
    struct pnd_sim_config cfg;
    struct pnd_sim_summary summary;
    const char *tsv_path = NULL, *json_path = NULL, *config_path = NULL;
    int status, code = 0;

    pnd_sim_config_init(&cfg);

    /* Help and --config first, so that every flag overrides the file. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    if (config_path != NULL) {
        status = pnd_sim_config_read(&cfg, config_path);
        if (status != PND_OK) {
            code = pnd_cli_fail("sim", status);
            goto done;
        }
    }

    for (int i = 1; i < argc; i++) {
        char name[64], origin[80];
        const char *value;

        if (strcmp(argv[i], "-o") == 0) {
            if (i + 1 >= argc) {
                code = pnd_cli_usage_error("sim", "option -o needs a file name");
                goto done;
            }
            tsv_path = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "-v") == 0)
            continue;
        if (strncmp(argv[i], "--", 2) != 0) {
            code = pnd_cli_usage_error("sim", "unexpected argument '%s'", argv[i]);
            goto done;
        }
        code = option_value(argc, argv, &i, name, sizeof name, &value);
        if (code != 0)
            goto done;

        if (strcmp(name, "quiet") == 0 || strcmp(name, "verbose") == 0
            || strcmp(name, "config") == 0)
            continue;
        if (strcmp(name, "output") == 0) {
            tsv_path = value;
            continue;
        }
        if (strcmp(name, "json") == 0) {
            json_path = value;
            continue;
        }
        if (strcmp(name, "check") == 0)
            value = value != NULL ? value : "true";
        snprintf(origin, sizeof origin, "--%s", name);
        status = pnd_sim_config_set(&cfg, name, value, origin);
        if (status != PND_OK) {
            code = pnd_cli_fail("sim", status);
            goto done;
        }
    }

    status = pnd_sim_run(&cfg, tsv_path, json_path, &summary);
    if (status != PND_OK)
        code = pnd_cli_fail("sim", status);

done:
    pnd_sim_config_free(&cfg);
    return code;
}
