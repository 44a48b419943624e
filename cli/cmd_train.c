/* pnd train: train MLPs on Fashion-MNIST with one or several masking
 * schemes and seeds, or export a trained network for pnd sim.
 *
 * Every configuration key (docs/train.md) is also a flag: --epochs 10 or
 * --train.epochs=10. Flags are applied after --config FILE, so they
 * override it.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "pnd/config.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/train.h"

#define CMD "train"
/* Training images of the --quick preset, and its epochs. */
#define QUICK_MAX_TRAIN 5000
#define QUICK_EPOCHS 3
/* Test images written beside an exported network. */
#define EXPORT_INPUTS_DEFAULT 16

struct train_options {
    const char *config_path;
    const char *run_dir;
    const char *export_dir;
    const char *checkpoint;
    const char *data_dir;
    const char *schemes;
    unsigned long long n_seeds;
    unsigned long long n_export;
    int quick;
};

static void
print_help(struct pnd_train_config *cfg)
{
    struct pnd_config_key keys[PND_TRAIN_CONFIG_MAX_KEYS];
    size_t n = pnd_train_config_keys(cfg, keys);
    const char *section = "";

    printf("Usage: pnd train [OPTIONS] [-o DIR]\n"
           "       pnd train --export DIR [--checkpoint FILE] [OPTIONS]\n\n"
           "Train an MLP on Fashion-MNIST with a masking scheme on its hidden layers,\n"
           "recording losses, accuracies and co-adaptation statistics every epoch.\n\n"
           "Options:\n"
           "  -o, --output DIR      run directory: config.ini, log.tsv, summary.json,\n"
           "                        corr_L<l>.tsv, checkpoint.pnd (see docs/train.md)\n"
           "  --config FILE         read an INI configuration; flags override it\n"
           "  --scheme LIST         masking scheme of the hidden layers; several\n"
           "                        (comma-separated) are compared side by side\n"
           "  --seeds N             repeat with seeds seed .. seed+N-1 and report the mean\n"
           "                        and 95%% t-interval (default 1)\n"
           "  --data DIR            read {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz\n"
           "                        from DIR\n"
           "  --quick               a short run: %d training images, %d epochs\n"
           "  --export DIR          write the trained network (or --checkpoint FILE) as\n"
           "                        the INI network description that pnd sim --net reads\n"
           "  --checkpoint FILE     with --export: export this checkpoint, do not train\n"
           "  --export-inputs N     test images written with the export (default %d)\n"
           "  -q, --quiet, -v, --verbose\n"
           "  -h, --help\n\n"
           "Configuration keys, each also a flag --NAME VALUE or --SECTION.NAME=VALUE\n"
           "(a run writes every resolved value to DIR/config.ini; docs/train.md lists\n"
           "the defaults):\n",
           QUICK_MAX_TRAIN, QUICK_EPOCHS, EXPORT_INPUTS_DEFAULT);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(section, keys[i].section) != 0) {
            section = keys[i].section;
            printf("  [%s]\n", section);
        }
        printf("    %-18s %s\n", keys[i].name, keys[i].help);
    }
    printf("\nExit status: 0 success, 1 runtime failure (such as a diverging run),\n"
           "2 usage or input error.\n");
}

/* The key named by a flag: "--lr", "--train.lr" or "--batch-size". */
static const struct pnd_config_key *
find_key(const struct pnd_config_key *keys, size_t n, const char *flag)
{
    char name[128];
    const char *dot;

    snprintf(name, sizeof name, "%s", flag);
    for (char *c = name; *c; c++)
        if (*c == '-')
            *c = '_';
    dot = strchr(name, '.');
    for (size_t i = 0; i < n; i++) {
        if (dot == NULL && strcmp(keys[i].name, name) == 0)
            return &keys[i];
        if (dot != NULL && strncmp(keys[i].section, name, (size_t) (dot - name)) == 0
            && keys[i].section[dot - name] == '\0' && strcmp(keys[i].name, dot + 1) == 0)
            return &keys[i];
    }
    return NULL;
}

/* Split "--name=value" or take the next argument as the value. */
static int
flag_value(int argc, char **argv, int *i, char *name, size_t name_size,
           const char **value, int bool_flag)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');

    if (eq != NULL) {
        snprintf(name, name_size, "%.*s", (int) (eq - arg), arg);
        *value = eq + 1;
        return 0;
    }
    snprintf(name, name_size, "%s", arg);
    if (*i + 1 < argc && !(bool_flag && argv[*i + 1][0] == '-')) {
        *value = argv[++*i];
        return 0;
    }
    if (bool_flag) {
        *value = "true";
        return 0;
    }
    return pnd_cli_usage_error(CMD, "option --%s needs a value", name);
}

static int
set_data_dir(struct pnd_train_config *cfg, const struct pnd_config_key *keys,
             size_t n, const char *dir)
{
    static const char *const files[4][2] = {
        {"train_images", "train-images-idx3-ubyte.gz"},
        {"train_labels", "train-labels-idx1-ubyte.gz"},
        {"test_images", "t10k-images-idx3-ubyte.gz"},
        {"test_labels", "t10k-labels-idx1-ubyte.gz"},
    };
    char path[4096];

    for (size_t f = 0; f < 4; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f][1]);
        PND_TRY(pnd_config_set(keys, n, "data", files[f][0], path, "--data", 0));
    }
    (void) cfg;
    return PND_OK;
}

/* Pass 1: the options that are not configuration keys, and --config. */
static int
parse_own_options(int argc, char **argv, struct train_options *opt)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_next = i + 1 < argc;

        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!has_next)
                return pnd_cli_usage_error(CMD, "%s needs a directory", a);
            opt->run_dir = argv[++i];
        } else if (strcmp(a, "--config") == 0 && has_next) {
            opt->config_path = argv[++i];
        } else if (strcmp(a, "--export") == 0 && has_next) {
            opt->export_dir = argv[++i];
        } else if (strcmp(a, "--checkpoint") == 0 && has_next) {
            opt->checkpoint = argv[++i];
        } else if (strcmp(a, "--data") == 0 && has_next) {
            opt->data_dir = argv[++i];
        } else if (strcmp(a, "--scheme") == 0 && has_next) {
            opt->schemes = argv[++i];
        } else if (strcmp(a, "--seeds") == 0 && has_next) {
            if (pnd_cli_parse_u64(CMD, "--seeds", argv[++i], &opt->n_seeds) != 0)
                return 2;
            if (opt->n_seeds < 1 || opt->n_seeds > 1000)
                return pnd_cli_usage_error(CMD, "--seeds %llu: use 1 to 1000", opt->n_seeds);
        } else if (strcmp(a, "--export-inputs") == 0 && has_next) {
            if (pnd_cli_parse_u64(CMD, "--export-inputs", argv[++i], &opt->n_export) != 0)
                return 2;
        } else if (strcmp(a, "--quick") == 0) {
            opt->quick = 1;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "--export") == 0
                   || strcmp(a, "--checkpoint") == 0 || strcmp(a, "--data") == 0
                   || strcmp(a, "--scheme") == 0 || strcmp(a, "--seeds") == 0
                   || strcmp(a, "--export-inputs") == 0) {
            return pnd_cli_usage_error(CMD, "%s needs a value", a);
        }
    }
    return 0;
}

static int
is_own_option(const char *a)
{
    static const char *const with_value[] = {
        "-o", "--output", "--config", "--export", "--checkpoint", "--data",
        "--scheme", "--seeds", "--export-inputs", NULL};

    for (size_t i = 0; with_value[i]; i++)
        if (strcmp(a, with_value[i]) == 0)
            return 2;
    if (strcmp(a, "--quick") == 0 || strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0
        || strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
        return 1;
    return 0;
}

/* Pass 2: every other flag sets a configuration key. */
static int
apply_key_flags(int argc, char **argv, const struct pnd_config_key *keys, size_t n)
{
    for (int i = 1; i < argc; i++) {
        char name[128];
        const char *value = NULL;
        const struct pnd_config_key *key;
        int own = is_own_option(argv[i]);

        if (own) {
            i += own - 1;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0)
            return pnd_cli_usage_error(CMD, "unexpected argument '%s': options start with --", argv[i]);
        {
            const char *eq = strchr(argv[i] + 2, '=');

            snprintf(name, sizeof name, "%.*s",
                     eq ? (int) (eq - argv[i] - 2) : (int) strlen(argv[i] + 2), argv[i] + 2);
        }
        key = find_key(keys, n, name);
        if (key == NULL)
            return pnd_cli_usage_error(CMD, "unknown option --%s", name);
        if (flag_value(argc, argv, &i, name, sizeof name, &value,
                       key->type == PND_CONFIG_BOOL) != 0)
            return 2;
        {
            char flag[160];

            snprintf(flag, sizeof flag, "--%s", name);
            if (pnd_config_set(keys, n, key->section, key->name, value, flag, 0) != PND_OK)
                return pnd_cli_fail(CMD, pnd_error_status());
        }
    }
    return 0;
}

/* Parse --scheme a,b,c. */
static int
parse_schemes(const char *text, enum pnd_scheme *schemes, size_t *n_schemes)
{
    char buf[512], *save = NULL, *item;

    *n_schemes = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (*n_schemes == PND_TRAIN_MAX_SCHEMES)
            return pnd_cli_usage_error(CMD, "--scheme lists more than %d schemes",
                                       PND_TRAIN_MAX_SCHEMES);
        if (pnd_scheme_parse(item, &schemes[*n_schemes]) != PND_OK)
            return pnd_cli_fail(CMD, pnd_error_status());
        (*n_schemes)++;
    }
    if (*n_schemes == 0)
        return pnd_cli_usage_error(CMD, "--scheme needs at least one scheme name");
    return 0;
}

/* Export a checkpoint with the first test images of cfg's data. */
static int
export_checkpoint(const struct pnd_train_config *cfg, const struct train_options *opt)
{
    struct pnd_mlp *mlp = NULL;
    struct pnd_train_data data;
    uint64_t epoch, step;
    int status;

    status = pnd_mlp_checkpoint_read(opt->checkpoint, &mlp, &epoch, &step);
    if (status != PND_OK)
        return pnd_cli_fail(CMD, status);
    status = pnd_train_data_read(cfg, &data);
    if (status == PND_OK) {
        status = pnd_mlp_export(mlp, data.test, (size_t) opt->n_export, opt->export_dir);
        pnd_train_data_free(&data);
    }
    pnd_mlp_free(mlp);
    if (status != PND_OK)
        return pnd_cli_fail(CMD, status);
    pnd_log(PND_LOG_INFO, "exported %s (epoch %llu) to %s/net.ini", opt->checkpoint,
            (unsigned long long) epoch, opt->export_dir);
    return 0;
}

/* After a single run, export the checkpoint it wrote. */
static int
export_run(struct pnd_train_config *cfg, struct train_options *opt, const char *run_dir)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/checkpoint.pnd", run_dir);
    opt->checkpoint = path;
    return export_checkpoint(cfg, opt);
}

static void
print_result(const char *label, const struct pnd_train_result *r)
{
    printf("%s\ttest_acc %.4f\ttest_loss %.4f\tval_acc %.4f\ttrain_acc %.4f\tepochs %zu\ttime_epoch_s %.2f",
           label, r->test_acc, r->test_loss, r->val_acc, r->train_acc, r->epochs_run,
           r->time_epoch_s);
    for (size_t l = 0; l < r->n_hidden; l++)
        printf("\tL%zu_mean_abs_corr %.4f\tL%zu_R_cross %.4g", l + 1,
               r->coadapt[l].mean_abs_corr, l + 1, r->coadapt[l].R_cross);
    printf("\n");
}

static int
run_sweep(struct pnd_train_config *cfg, struct train_options *opt,
          const enum pnd_scheme *schemes, size_t n_schemes)
{
    size_t n_seeds = (size_t) opt->n_seeds;
    struct pnd_train_result *results = calloc(n_schemes * n_seeds, sizeof *results);
    double *x = calloc(n_seeds, sizeof *x);
    int status;

    if (results == NULL || x == NULL) {
        free(results);
        free(x);
        fprintf(stderr, "pnd train: out of memory\n");
        return 1;
    }
    status = pnd_train_sweep(cfg, schemes, n_schemes, n_seeds, opt->run_dir, results);
    if (status == PND_OK) {
        printf("scheme\tn_seeds\ttest_acc_mean\ttest_acc_ci95\ttest_loss_mean\ttest_loss_ci95\ttime_epoch_s\n");
        for (size_t s = 0; s < n_schemes; s++) {
            double acc, acc_ci, loss, loss_ci, t, t_ci;

            for (size_t k = 0; k < n_seeds; k++)
                x[k] = results[s * n_seeds + k].test_acc;
            pnd_train_mean_ci(x, n_seeds, &acc, &acc_ci);
            for (size_t k = 0; k < n_seeds; k++)
                x[k] = results[s * n_seeds + k].test_loss;
            pnd_train_mean_ci(x, n_seeds, &loss, &loss_ci);
            for (size_t k = 0; k < n_seeds; k++)
                x[k] = results[s * n_seeds + k].time_epoch_s;
            pnd_train_mean_ci(x, n_seeds, &t, &t_ci);
            printf("%s\t%zu\t%.4f\t%.4f\t%.4f\t%.4f\t%.2f\n", pnd_scheme_name(schemes[s]),
                   n_seeds, acc, acc_ci, loss, loss_ci, t);
        }
    }
    free(results);
    free(x);
    return status == PND_OK ? 0 : pnd_cli_fail(CMD, status);
}

int
pnd_cmd_train(int argc, char **argv)
{
    struct pnd_train_config cfg;
    struct pnd_config_key keys[PND_TRAIN_CONFIG_MAX_KEYS];
    struct train_options opt = {.n_seeds = 1, .n_export = EXPORT_INPUTS_DEFAULT};
    enum pnd_scheme schemes[PND_TRAIN_MAX_SCHEMES];
    size_t n_keys, n_schemes = 0;
    int rc;

    if (pnd_train_config_init(&cfg) != PND_OK)
        return pnd_cli_fail(CMD, PND_ENOMEM);
    n_keys = pnd_train_config_keys(&cfg, keys);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(&cfg);
            pnd_train_config_free(&cfg);
            return 0;
        }

    /* Options: the file first, then the flags over it. */
    rc = parse_own_options(argc, argv, &opt);
    if (rc != 0)
        goto done;
    if (opt.quick)
        pnd_train_config_quick(&cfg, QUICK_MAX_TRAIN, QUICK_EPOCHS);
    if (opt.config_path != NULL && pnd_train_config_read(&cfg, opt.config_path) != PND_OK) {
        rc = pnd_cli_fail(CMD, pnd_error_status());
        goto done;
    }
    if (opt.data_dir != NULL && set_data_dir(&cfg, keys, n_keys, opt.data_dir) != PND_OK) {
        rc = pnd_cli_fail(CMD, pnd_error_status());
        goto done;
    }
    rc = apply_key_flags(argc, argv, keys, n_keys);
    if (rc != 0)
        goto done;
    if (opt.schemes != NULL) {
        rc = parse_schemes(opt.schemes, schemes, &n_schemes);
        if (rc != 0)
            goto done;
        cfg.scheme = schemes[0];
    }

    /* Export only, single run, or a sweep. */
    if (opt.export_dir != NULL && opt.checkpoint != NULL) {
        rc = export_checkpoint(&cfg, &opt);
    } else if (n_schemes > 1 || opt.n_seeds > 1) {
        if (opt.export_dir != NULL) {
            rc = pnd_cli_usage_error(CMD, "--export exports one run: use it without several --scheme values or --seeds");
            goto done;
        }
        if (n_schemes == 0) {
            schemes[0] = (enum pnd_scheme) cfg.scheme;
            n_schemes = 1;
        }
        rc = run_sweep(&cfg, &opt, schemes, n_schemes);
    } else {
        struct pnd_train_result result;
        const char *run_dir = opt.run_dir;
        int status;

        if (run_dir == NULL && opt.export_dir != NULL)
            run_dir = opt.export_dir;
        status = pnd_train_run(&cfg, run_dir, &result);
        if (status != PND_OK) {
            rc = pnd_cli_fail(CMD, status);
            goto done;
        }
        print_result(pnd_scheme_name((enum pnd_scheme) cfg.scheme), &result);
        rc = opt.export_dir != NULL ? export_run(&cfg, &opt, run_dir) : 0;
    }

done:
    pnd_train_config_free(&cfg);
    return rc;
}
