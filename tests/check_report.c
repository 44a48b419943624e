/* Figures and the report: TSV tables, log-log fits, gnuplot runs from
 * fixture tables written here, the guards (missing gnuplot, NaN data,
 * failing templates) and the quick preset end to end. */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/report.h"
#include "plots/plot_internal.h"
#include "reports/report_internal.h"
#include "tests/suites.h"

/* Exact arithmetic on exact power laws: only rounding of log and the
 * least-squares sums, a few ulps of values of order 1. */
#define FIT_TOL 1e-9

/* Figure files hold at least a header and one drawn page; a smaller file
 * is a failed or empty plot. */
#define MIN_FIGURE_BYTES 200

/* The quick preset runs the simulator and trains seven networks. */
#define QUICK_TIMEOUT_S 300

static const char sim_header[] =
    "case\tscheme\tmodel\tact\tp\tscale\td\th\tc\tn\tdraws\tseed\tanalytic\t"
    "analytic_kind\tmc_mean\tmc_se\tz\tresidual\tresidual_se\tR_diag\tR_cross\t"
    "mc_var\tmc_var_se\tvar_analytic\tvar_z\tbatch_var_per_sample_mc\t"
    "batch_var_per_sample_se\tbatch_var_per_sample_exact\tbatch_var_shared_mc\t"
    "batch_var_shared_se\tbatch_var_shared_exact\tmax_abs_z\tverdict\telapsed_s\n";

/* Every test directory lives under one root made per suite run by an
 * unchecked fixture, which runs in the parent process: its teardown
 * removes the root even when a test fails or times out in its child
 * process, so no run leaves a directory behind in /tmp. */
static char test_root[64];

static void
remove_tree(const char *dir);

static void
root_setup(void)
{
    snprintf(test_root, sizeof test_root, "/tmp/pnd-report-test-XXXXXX");
    if (mkdtemp(test_root) == NULL)
        test_root[0] = '\0';
    ck_assert_msg(test_root[0] != '\0', "cannot create a temporary directory in /tmp");
}

static void
root_teardown(void)
{
    if (test_root[0] != '\0')
        remove_tree(test_root);
    test_root[0] = '\0';
}

static void
make_temp_dir(char *buf, size_t size)
{
    ck_assert_msg(test_root[0] != '\0', "the test root directory is missing");
    int len = snprintf(buf, size, "%s/t-XXXXXX", test_root);

    ck_assert(len > 0 && (size_t) len < size);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void
write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fputs(text, fp) >= 0, 1);
    ck_assert_int_eq(fclose(fp), 0);
}

/* A simulator table in the documented columns: a readout model with exact
 * rows and an mlp model with order2/order3 rows whose residuals follow
 * exact power laws (slope 1 for Bernoulli, 2 for Gaussian schemes). With
 * nan_mean set, one exact row contains mc_mean = nan. */
static void
write_sim_fixture(const char *path, bool nan_mean)
{
    static const char *const schemes[] = {"dropout", "pernodedrop", "pernodedrop-gaussian"};
    static const double ps[] = {0.05, 0.1, 0.2, 0.3};
    FILE *fp = fopen(path, "w");
    int index = 0;

    ck_assert_ptr_nonnull(fp);
    fputs(sim_header, fp);
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < 4; i++, index++) {
            double p = ps[i], s2 = p / (1 - p), exact = 1 + 0.5 * s2, se = 1e-3;
            double mc = exact + 0.5 * se;

            if (nan_mean && index == 5)
                fprintf(fp, "%d\t%s\treadout\tidentity\t%g\t1\t8\t4\t2\t1\t10000\t1\t%.9g\texact\tnan\t%g\t0.5\tnan\tnan\t%g\t0\t%g\t1e-4\t%g\t0.3\t%g\t1e-4\t%g\t%g\t1e-4\t%g\t0.5\tpass\t0.01\n",
                        index, schemes[s], p, exact, se, 0.5 * s2, s2, s2, s2, s2, s2, s2);
            else
                fprintf(fp, "%d\t%s\treadout\tidentity\t%g\t1\t8\t4\t2\t1\t10000\t1\t%.9g\texact\t%.9g\t%g\t0.5\tnan\tnan\t%g\t0\t%g\t1e-4\t%g\t0.3\t%g\t1e-4\t%g\t%g\t1e-4\t%g\t0.5\tpass\t0.01\n",
                        index, schemes[s], p, exact, mc, se, 0.5 * s2, s2, s2, s2, s2, s2, s2);
        }
    }
    for (size_t s = 0; s < 3; s++) {
        double slope = strstr(schemes[s], "gaussian") ? 2.0 : 1.0;

        for (size_t i = 0; i < 4; i++, index++) {
            double p = ps[i], mc = 1 + p;
            double r2 = 0.01 * pow(p, slope), r3 = 0.002 * pow(p, slope);

            for (int order = 2; order <= 3; order++) {
                double res = order == 2 ? r2 : r3;

                fprintf(fp, "%d\t%s\tmlp\ttanh\t%g\t1\t8\t4\t3\t1\t10000\t1\t%.12g\torder%d\t%.12g\t1e-7\tnan\t%.12g\t1e-7\t%g\t%g\t0.1\t1e-3\tnan\tnan\t0.1\t1e-3\tnan\t0.1\t1e-3\tnan\tnan\t-\t0.01\n",
                        index, schemes[s], p, mc - res, order, mc, res, 0.5 * p,
                        s == 0 ? 0.1 * p : 0.0);
            }
        }
    }
    ck_assert_int_eq(fclose(fp), 0);
}

/* A finished trainer run: summary.json, a log of three epochs and a 3 x 3
 * correlation matrix. */
static void
write_run_fixture(const char *dir, const char *scheme, double p, int seed)
{
    char path[4096];
    FILE *fp;

    ck_assert_int_eq(pnd_mkdir_p(dir), PND_OK);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "{\"seed\":%d,\"layers\":[{\"layer\":1,\"scheme\":\"%s\",\"p\":%g},{\"layer\":2,\"scheme\":\"none\",\"p\":0}]}\n",
            seed, scheme, p);
    ck_assert_int_eq(fclose(fp), 0);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    write_text(path, "[train]\nepochs = 3\n");

    snprintf(path, sizeof path, "%s/log.tsv", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("epoch\tstep\tlr\ttrain_batch_loss\ttrain_loss\ttrain_acc\tval_loss\tval_acc\t"
          "test_loss\ttest_acc\tgap_loss\tgap_acc\ttest_gap_loss\ttest_gap_acc\t"
          "time_train_s\ttime_eval_s\tL1_mean_abs_corr\tL1_corr_fro\tL1_decov\tL1_pr\t"
          "L1_dead\tL1_R_diag\tL1_R_cross\n", fp);
    for (int e = 1; e <= 3; e++) {
        double loss = 1.0 / e + 0.01 * seed + p, acc = 0.6 + 0.05 * e - 0.1 * p;

        fprintf(fp, "%d\t%d\t0.001\t%g\t%g\t%g\t%g\t%g\t%g\t%g\t%g\t%g\t%g\t%g\t0.5\t0.1\t%g\t0.3\t2.0\t%g\t0\t0.2\t%g\n",
                e, 10 * e, loss, loss, acc + 0.02, loss + 0.05, acc, loss + 0.06, acc - 0.01,
                0.05, 0.02, 0.06, 0.03, 0.3 - 0.02 * e, 5.0 + e, 0.01 * e);
    }
    ck_assert_int_eq(fclose(fp), 0);
    snprintf(path, sizeof path, "%s/corr_L1.tsv", dir);
    write_text(path, "1\t0.5\t-0.2\n0.5\t1\t0.1\n-0.2\t0.1\t1\n");
}

/* True when path starts with the len bytes of magic and has at least
 * MIN_FIGURE_BYTES bytes. */
static bool
file_starts_with(const char *path, const void *magic, size_t len)
{
    unsigned char head[16];
    struct stat st;
    FILE *fp = fopen(path, "rb");
    bool ok;

    if (fp == NULL)
        return false;
    ok = fread(head, 1, len, fp) == len && memcmp(head, magic, len) == 0;
    fclose(fp);
    return ok && stat(path, &st) == 0 && st.st_size >= MIN_FIGURE_BYTES;
}

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Every figure of list exists in dir as a PDF and a PNG file. */
static void
assert_figures(const char *dir, const struct pnd_figure_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        char path[4096];

        snprintf(path, sizeof path, "%s/%s.pdf", dir, list->items[i].name);
        ck_assert_msg(file_starts_with(path, "%PDF", 4), "%s is not a PDF file", path);
        snprintf(path, sizeof path, "%s/%s.png", dir, list->items[i].name);
        ck_assert_msg(file_starts_with(path, png_magic, sizeof png_magic),
                      "%s is not a PNG file", path);
    }
}

static bool
has_figure(const struct pnd_figure_list *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].name, name) == 0)
            return true;
    return false;
}

/* Number of files in dir whose name ends in suffix. */
static size_t
count_files(const char *dir, const char *suffix)
{
    char command[4200], line[64];
    FILE *pipe;
    size_t n = 0;

    snprintf(command, sizeof command, "ls -a '%s' 2>/dev/null | grep -c -- '%s$'", dir, suffix);
    pipe = popen(command, "r");
    if (pipe == NULL)
        return 0;
    if (fgets(line, sizeof line, pipe) != NULL)
        n = (size_t) atol(line);
    pclose(pipe);
    return n;
}

static void
remove_tree(const char *dir)
{
    char command[4200];

    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}

/* ---- Core ---- */

START_TEST(test_table_reads_columns)
{
    char dir[64], path[128];
    struct pnd_table *t;
    double v;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.tsv", dir);
    write_text(path, "# a comment\nx\tname\ty\n1.5\ta\t-\n2\tb\t3e-2\n");
    ck_assert_int_eq(pnd_table_read(path, &t), PND_OK);
    ck_assert_uint_eq(t->n_rows, 2);
    ck_assert_uint_eq(t->n_cols, 3);
    ck_assert_int_eq(pnd_table_column(t, "y"), 2);
    ck_assert_int_eq(pnd_table_column(t, "absent"), -1);
    ck_assert_int_eq(pnd_table_value_named(t, 1, "y", &v), PND_OK);
    ck_assert_double_eq_tol(v, 0.03, 1e-15);
    ck_assert_str_eq(pnd_table_cell(t, 0, 1), "a");
    ck_assert(pnd_table_missing(t, 0, 2));
    ck_assert_uint_eq(t->lines[1], 4);
    ck_assert_int_eq(pnd_table_value(t, 0, 1, &v), PND_EFORMAT);
    pnd_table_free(t);
    remove_tree(dir);
}
END_TEST

START_TEST(test_fit_recovers_power_law)
{
    double x[] = {0.01, 0.03, 0.1, 0.3}, y[4];
    struct pnd_fit fit;

    for (int i = 0; i < 4; i++)
        y[i] = 3.0 * pow(x[i], 1.5);
    ck_assert_int_eq(pnd_fit_loglog(x, y, 4, &fit), PND_OK);
    ck_assert_double_eq_tol(fit.slope, 1.5, FIT_TOL);
    ck_assert_double_eq_tol(fit.intercept, log(3.0), FIT_TOL);
    ck_assert_double_le(fit.slope_se, FIT_TOL);
    ck_assert_uint_eq(fit.n, 4);
}
END_TEST

START_TEST(test_fit_slope_se_from_scatter)
{
    /* Points alternately 10% above and below y = x: the slope stays near 1
     * and its standard error is positive. */
    double x[] = {1, 2, 4, 8, 16, 32}, y[6];
    struct pnd_fit fit;

    for (int i = 0; i < 6; i++)
        y[i] = x[i] * (i % 2 ? 1.1 : 0.9);
    ck_assert_int_eq(pnd_fit_loglog(x, y, 6, &fit), PND_OK);
    ck_assert_double_eq_tol(fit.slope, 1.0, 0.05);
    ck_assert_double_gt(fit.slope_se, 0.0);
}
END_TEST

START_TEST(test_residual_fits_expected_slopes)
{
    char dir[64], path[128];
    struct pnd_table *t;
    struct plot_residual_fit fits[16];
    size_t n_fits;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sim.tsv", dir);
    write_sim_fixture(path, false);
    ck_assert_int_eq(pnd_table_read(path, &t), PND_OK);
    ck_assert_int_eq(plot_sim_residual_fits(t, fits, 16, &n_fits), PND_OK);
    ck_assert_uint_eq(n_fits, 6);
    for (size_t i = 0; i < n_fits; i++) {
        ck_assert_str_eq(fits[i].model, "mlp-tanh");
        ck_assert(fits[i].fitted);
        ck_assert_double_eq_tol(fits[i].fit.slope, fits[i].expected_slope, FIT_TOL);
        ck_assert_double_eq(fits[i].expected_slope,
                            strstr(fits[i].scheme, "gaussian") ? 2.0 : 1.0);
    }
    pnd_table_free(t);
    remove_tree(dir);
}
END_TEST

/* A sweep run with --expansions true: each case has an enumeration or
 * quadrature row (the ground truth) followed by its order2 and order3
 * rows. The exact residuals follow c p^slope; the Monte Carlo means carry
 * noise of +-2e-3, far above them, which the exact fits must ignore. */
static void
write_expansions_fixture(const char *path)
{
    static const char *const schemes[] = {"dropout", "pernodedrop-gaussian"};
    static const double ps[] = {0.01, 0.02, 0.05, 0.1, 0.2};
    FILE *fp = fopen(path, "w");
    int index = 0;

    ck_assert_ptr_nonnull(fp);
    fputs(sim_header, fp);
    for (size_t s = 0; s < 2; s++) {
        bool gaussian = strstr(schemes[s], "gaussian") != NULL;
        double slope = gaussian ? 2.0 : 1.0;

        for (size_t i = 0; i < 5; i++, index++) {
            double p = ps[i], truth = 1 + p, se = 1e-3;
            double mc = truth + (i % 2 ? 2.0 : -2.0) * se;
            double r2 = 0.01 * pow(p, slope), r3 = gaussian ? r2 : 0.003 * pow(p, slope);

            fprintf(fp, "%d\t%s\tmlp\ttanh\t%g\t0.5\t4\t3\t3\t1\t10000\t1\t%.12g\t%s\t%.12g\t%g\t%g\tnan\tnan\t%g\t0\t0.1\t1e-3\t0.1\t0\tnan\tnan\tnan\tnan\tnan\tnan\t2\tpass\t0.01\n",
                    index, schemes[s], p, truth, gaussian ? "quadrature" : "enumeration",
                    mc, se, (mc - truth) / se, 0.5 * p);
            for (int order = 2; order <= 3; order++) {
                double a = truth - (order == 2 ? r2 : r3);

                fprintf(fp, "%d\t%s\tmlp\ttanh\t%g\t0.5\t4\t3\t3\t1\t10000\t1\t%.12g\torder%d\t%.12g\t%g\tnan\t%.12g\t%g\t%g\t0\t0.1\t1e-3\tnan\tnan\tnan\tnan\tnan\tnan\tnan\tnan\tnan\t-\t0.01\n",
                        index, schemes[s], p, a, order, mc, se, mc - a, se, 0.5 * p);
            }
        }
    }
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_exact_residual_fits)
{
    char dir[64], path[256], out[128];
    struct pnd_table *t;
    struct plot_residual_fit fits[16];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};
    size_t n_fits;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sim.tsv", dir);
    write_expansions_fixture(path);
    ck_assert_int_eq(pnd_table_read(path, &t), PND_OK);
    ck_assert_int_eq(plot_sim_residual_fits(t, fits, 16, &n_fits), PND_OK);
    ck_assert_uint_eq(n_fits, 4);
    for (size_t i = 0; i < n_fits; i++) {
        /* Exact power laws: the fit must recover the slope to rounding,
         * which the Monte Carlo noise (2 SE, larger than every residual)
         * would spoil if it were used. */
        ck_assert(fits[i].exact_truth);
        ck_assert(fits[i].fitted);
        ck_assert_uint_eq(fits[i].fit.n, 5);
        ck_assert_double_eq_tol(fits[i].fit.slope, fits[i].expected_slope, FIT_TOL);
        ck_assert_double_eq(fits[i].max_residual_se, 0.0);
    }
    pnd_table_free(t);

    snprintf(out, sizeof out, "%s/figures", dir);
    ck_assert_int_eq(pnd_mkdir_p(out), PND_OK);
    pnd_plot_options_init(&opt, out);
    ck_assert_int_eq(pnd_plot_sim(&opt, path, "e_", &list), PND_OK);
    ck_assert(has_figure(&list, "e_residual_mlp-tanh"));
    ck_assert(has_figure(&list, "e_residual_mc_mlp-tanh"));
    assert_figures(out, &list);
    /* The exact figure's data: ground truth - expansion, no noise band. */
    snprintf(path, sizeof path, "%s/data/e_residual_mlp-tanh.dat", out);
    {
        char *text;

        ck_assert_int_eq(pnd_read_file(path, &text, NULL), PND_OK);
        ck_assert_ptr_nonnull(strstr(text, "0.0001"));
        free(text);
    }
    pnd_figure_list_free(&list);
    remove_tree(dir);
}
END_TEST

START_TEST(test_plot_sim_draws_figures)
{
    char dir[64], path[256], out[128];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sim.tsv", dir);
    snprintf(out, sizeof out, "%s/figures", dir);
    write_sim_fixture(path, false);
    ck_assert_int_eq(pnd_mkdir_p(out), PND_OK);
    pnd_plot_options_init(&opt, out);
    opt.formats |= PND_PLOT_SVG;
    ck_assert_int_eq(pnd_plot_sim(&opt, path, "s_", &list), PND_OK);
    ck_assert(has_figure(&list, "s_loss_readout"));
    ck_assert(has_figure(&list, "s_penalty_readout"));
    ck_assert(has_figure(&list, "s_loss_mlp-tanh"));
    ck_assert(has_figure(&list, "s_residual_mlp-tanh"));
    assert_figures(out, &list);
    snprintf(path, sizeof path, "%s/s_residual_mlp-tanh.svg", out);
    ck_assert(file_starts_with(path, "<?xml", 5));
    /* No temporary file is left behind. */
    ck_assert_uint_eq(count_files(out, ".tmp\\..*"), 0);
    pnd_figure_list_free(&list);
    remove_tree(dir);
}
END_TEST

START_TEST(test_plot_train_draws_figures)
{
    char dir[64], run[256], out[128];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};

    make_temp_dir(dir, sizeof dir);
    for (int seed = 1; seed <= 2; seed++) {
        snprintf(run, sizeof run, "%s/train/none/seed%d", dir, seed);
        write_run_fixture(run, "none", 0, seed);
        snprintf(run, sizeof run, "%s/train/pernodedrop/seed%d", dir, seed);
        write_run_fixture(run, "pernodedrop", 0.3, seed);
        snprintf(run, sizeof run, "%s/train/pernodedrop-p0.1/seed%d", dir, seed);
        write_run_fixture(run, "pernodedrop", 0.1, seed);
    }
    snprintf(out, sizeof out, "%s/figures", dir);
    pnd_plot_options_init(&opt, out);
    ck_assert_int_eq(pnd_plot_path(&opt, dir, &list), PND_OK);
    ck_assert(has_figure(&list, "train_curves"));
    ck_assert(has_figure(&list, "train_coadapt"));
    ck_assert(has_figure(&list, "train_corr"));
    ck_assert(has_figure(&list, "train_gap"));
    assert_figures(out, &list);
    pnd_figure_list_free(&list);
    remove_tree(dir);
}
END_TEST

START_TEST(test_report_table_formats)
{
    char dir[64], path[128], *text;
    struct report_table t;

    make_temp_dir(dir, sizeof dir);
    ck_assert_int_eq(report_table_init(&t, "demo", "R_cross at 95%", "scheme\t>value"),
                     PND_OK);
    ck_assert_int_eq(report_table_add(&t, "%s\t%s", "pernode_drop", "1.5 ± 0.2"), PND_OK);
    ck_assert_int_eq(report_table_add(&t, "%s\t%s", "a|b", ""), PND_OK);
    ck_assert_int_eq(report_table_add(&t, "%s", "one cell only"), PND_EINVAL);
    ck_assert_uint_eq(t.n_rows, 2);
    ck_assert_int_eq(report_table_write(&t, dir), PND_OK);

    snprintf(path, sizeof path, "%s/demo.tex", dir);
    ck_assert_int_eq(pnd_read_file(path, &text, NULL), PND_OK);
    ck_assert_ptr_nonnull(strstr(text, "\\toprule"));
    ck_assert_ptr_nonnull(strstr(text, "pernode\\_drop & 1.5 $\\pm$ 0.2 \\\\"));
    ck_assert_ptr_nonnull(strstr(text, "R\\_cross at 95\\%"));
    ck_assert_ptr_nonnull(strstr(text, "{lr}"));
    free(text);
    snprintf(path, sizeof path, "%s/demo.md", dir);
    ck_assert_int_eq(pnd_read_file(path, &text, NULL), PND_OK);
    ck_assert_ptr_nonnull(strstr(text, "| a\\|b |  |"));
    ck_assert_ptr_nonnull(strstr(text, "|---|---:|"));
    free(text);
    snprintf(path, sizeof path, "%s/demo.tsv", dir);
    ck_assert_int_eq(pnd_read_file(path, &text, NULL), PND_OK);
    ck_assert_str_eq(text, "scheme\tvalue\npernode_drop\t1.5 ± 0.2\na|b\t\n");
    free(text);
    report_table_free(&t);
    remove_tree(dir);
}
END_TEST

/* Every href and src of report.html names a file or folder that exists. */
static void
assert_links_resolve(const char *dir)
{
    char path[4096], *html;
    size_t n_links = 0;

    snprintf(path, sizeof path, "%s/report.html", dir);
    ck_assert_int_eq(pnd_read_file(path, &html, NULL), PND_OK);
    for (const char *p = html; (p = strpbrk(p, "hs")) != NULL; p++) {
        const char *start, *end;
        char link[1024];

        if (strncmp(p, "href=\"", 6) == 0)
            start = p + 6;
        else if (strncmp(p, "src=\"", 5) == 0)
            start = p + 5;
        else
            continue;
        end = strchr(start, '"');
        ck_assert_ptr_nonnull(end);
        snprintf(link, sizeof link, "%.*s", (int) (end - start), start);
        if (strncmp(link, "http", 4) == 0 || link[0] == '#')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, link);
        ck_assert_msg(access(path, R_OK) == 0, "report.html links to %s, which does not exist",
                      link);
        n_links++;
    }
    ck_assert_uint_gt(n_links, 10);
    free(html);
}

START_TEST(test_report_quick_preset)
{
    char dir[64], out[128], path[4096];
    struct pnd_report_config cfg;
    struct pnd_report_result result;
    static const char *const tables[] = {"verification", "approximations", "training",
                                         "exact_summary", "expansion_slopes"};
    static const char *const figures[] = {"readout_p_loss_readout", "mlp_p_residual_mlp-tanh",
                                          "mlp_p_residual_mc_mlp-tanh",
                                          "draws_convergence_readout", "batch_batchvar_readout",
                                          "readout_p_penalty_readout", "train_curves",
                                          "train_coadapt", "train_corr", "train_gap"};

    make_temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/report", dir);
    pnd_report_config_init(&cfg);
    cfg.preset = PND_PRESET_QUICK;
    cfg.out_dir = out;
    cfg.command_line = "check_report";
    ck_assert_msg(pnd_report_run(&cfg, &result) == PND_OK, "pnd_report_run: %s",
                  pnd_error_message());

    ck_assert_uint_gt(result.n_exact, 100);
    ck_assert_uint_eq(result.n_exact_failed, 0);
    ck_assert_uint_gt(result.n_approx, 0);
    ck_assert_uint_ge(result.n_figures, 10);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        static const char *const ext[] = {"tsv", "md", "tex"};

        for (int e = 0; e < 3; e++) {
            snprintf(path, sizeof path, "%s/tables/%s.%s", out, tables[i], ext[e]);
            ck_assert_msg(access(path, R_OK) == 0, "%s is missing", path);
        }
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        snprintf(path, sizeof path, "%s/figures/%s.pdf", out, figures[i]);
        ck_assert_msg(file_starts_with(path, "%PDF", 4), "%s is not a PDF file", path);
        snprintf(path, sizeof path, "%s/figures/%s.png", out, figures[i]);
        ck_assert_msg(file_starts_with(path, png_magic, sizeof png_magic),
                      "%s is not a PNG file", path);
    }
    snprintf(path, sizeof path, "%s/report.md", out);
    ck_assert(access(path, R_OK) == 0);
    /* The exact residuals of mlp_p follow the theory: slopes within 0.25
     * of 1 (Bernoulli) and 2 (Gaussian), order 3 closer than order 2. */
    {
        char *text;

        ck_assert_int_eq(pnd_read_file(path, &text, NULL), PND_OK);
        ck_assert_ptr_nonnull(strstr(text, "every slope is near the theory"));
        ck_assert_ptr_nonnull(strstr(text, "For pernodedrop the third-order residual is below the second-order one at 5 of 5 p."));
        free(text);
    }
    assert_links_resolve(out);
    /* The verification table contains no failed exact check. */
    snprintf(path, sizeof path, "%s/tables", out);
    {
        char file[4200], *text;

        snprintf(file, sizeof file, "%s/verification.tsv", path);
        ck_assert_int_eq(pnd_read_file(file, &text, NULL), PND_OK);
        ck_assert_ptr_null(strstr(text, "\tFAIL"));
        free(text);
    }
    remove_tree(dir);
}
END_TEST

/* ---- Limits ---- */

START_TEST(test_missing_gnuplot_unavailable)
{
    char dir[64], path[128];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};
    int status;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sim.tsv", dir);
    write_sim_fixture(path, false);
    setenv("PND_GNUPLOT", "/nonexistent/gnuplot", 1);
    pnd_plot_options_init(&opt, dir);
    status = pnd_plot_sim(&opt, path, "", &list);
    ck_assert_int_eq(status, PND_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "/nonexistent/gnuplot"));
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "gnuplot-nox"));
    ck_assert_uint_eq(list.n, 0);
    ck_assert_uint_eq(count_files(dir, ".pdf"), 0);
    ck_assert_uint_eq(count_files(dir, ".tmp\\..*"), 0);
    unsetenv("PND_GNUPLOT");
    pnd_figure_list_free(&list);
    remove_tree(dir);
}
END_TEST

START_TEST(test_nan_data_rejected)
{
    char dir[64], path[128];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sim.tsv", dir);
    write_sim_fixture(path, true);
    pnd_plot_options_init(&opt, dir);
    ck_assert_int_eq(pnd_plot_sim(&opt, path, "", &list), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "mc_mean"));
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "sim.tsv:7"));
    ck_assert_uint_eq(count_files(dir, ".pdf"), 0);
    pnd_figure_list_free(&list);
    remove_tree(dir);
}
END_TEST

START_TEST(test_inf_in_table_rejected)
{
    char dir[64], path[128];
    struct pnd_table *t;
    double v;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.tsv", dir);
    write_text(path, "x\ty\n1\tinf\n");
    ck_assert_int_eq(pnd_table_read(path, &t), PND_OK);
    ck_assert_int_eq(pnd_table_value_named(t, 0, "y", &v), PND_EFORMAT);
    ck_assert_int_eq(pnd_table_value_named(t, 0, "z", &v), PND_EFORMAT);
    pnd_table_free(t);
    remove_tree(dir);
}
END_TEST

START_TEST(test_ragged_table_rejected)
{
    char dir[64], path[128];
    struct pnd_table *t = NULL;

    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.tsv", dir);
    write_text(path, "x\ty\n1\t2\n3\n");
    ck_assert_int_eq(pnd_table_read(path, &t), PND_EFORMAT);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "t.tsv:3"));
    snprintf(path, sizeof path, "%s/empty.tsv", dir);
    write_text(path, "# only a comment\n");
    ck_assert_int_eq(pnd_table_read(path, &t), PND_EFORMAT);
    remove_tree(dir);
}
END_TEST

START_TEST(test_fit_rejects_bad_points)
{
    double x[] = {1, 2}, y[] = {1, -2};
    struct pnd_fit fit;

    ck_assert_int_eq(pnd_fit_loglog(x, y, 1, &fit), PND_EINVAL);
    ck_assert_int_eq(pnd_fit_loglog(x, y, 2, &fit), PND_EINVAL);
}
END_TEST

START_TEST(test_failing_template_leaves_no_file)
{
    char dir[64], data_dir[128], path[256];
    struct pnd_plot_options opt;
    const char *vars[] = {"title", "it's quoted"};

    make_temp_dir(dir, sizeof dir);
    snprintf(data_dir, sizeof data_dir, "%s/templates", dir);
    ck_assert_int_eq(pnd_mkdir_p(data_dir), PND_OK);
    snprintf(path, sizeof path, "%s/styles.gp", data_dir);
    write_text(path, "set terminal pngcairo\nset output out\n");
    snprintf(path, sizeof path, "%s/broken.gp", data_dir);
    write_text(path, "load pnd_data_dir.'/styles.gp'\nset title title\nplot undefined_variable_x\n");

    setenv("PND_DATA_DIR", data_dir, 1);
    pnd_plot_options_init(&opt, dir);
    opt.formats = PND_PLOT_PNG;
    ck_assert_int_eq(pnd_plot_draw(&opt, "broken.gp", "fig", vars, 1), PND_EFAILED);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "gnuplot failed"));
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "undefined"));
    snprintf(path, sizeof path, "%s/fig.png", dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_uint_eq(count_files(dir, ".tmp\\..*"), 0);

    setenv("PND_DATA_DIR", "/nonexistent", 1);
    ck_assert_int_eq(pnd_plot_draw(&opt, "broken.gp", "fig", vars, 1), PND_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "PND_DATA_DIR"));
    unsetenv("PND_DATA_DIR");
    remove_tree(dir);
}
END_TEST

START_TEST(test_plot_path_rejects_unknown)
{
    char dir[64], out[128];
    struct pnd_plot_options opt;
    struct pnd_figure_list list = {0};

    make_temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/figures", dir);
    pnd_plot_options_init(&opt, out);
    ck_assert_int_eq(pnd_plot_path(&opt, dir, &list), PND_EINVAL);
    ck_assert_int_eq(pnd_plot_path(&opt, "/nonexistent/results.tsv", &list), PND_EIO);
    remove_tree(dir);
}
END_TEST

Suite *
pnd_report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");

    tcase_set_timeout(core, QUICK_TIMEOUT_S);
    tcase_add_test(core, test_table_reads_columns);
    tcase_add_test(core, test_fit_recovers_power_law);
    tcase_add_test(core, test_fit_slope_se_from_scatter);
    tcase_add_test(core, test_residual_fits_expected_slopes);
    tcase_add_test(core, test_exact_residual_fits);
    tcase_add_test(core, test_plot_sim_draws_figures);
    tcase_add_test(core, test_plot_train_draws_figures);
    tcase_add_test(core, test_report_table_formats);
    tcase_add_test(core, test_report_quick_preset);
    tcase_add_unchecked_fixture(core, root_setup, root_teardown);
    suite_add_tcase(s, core);

    tcase_add_test(limits, test_missing_gnuplot_unavailable);
    tcase_add_test(limits, test_nan_data_rejected);
    tcase_add_test(limits, test_inf_in_table_rejected);
    tcase_add_test(limits, test_ragged_table_rejected);
    tcase_add_test(limits, test_fit_rejects_bad_points);
    tcase_add_test(limits, test_failing_template_leaves_no_file);
    tcase_add_test(limits, test_plot_path_rejects_unknown);
    tcase_add_unchecked_fixture(limits, root_setup, root_teardown);
    suite_add_tcase(s, limits);
    return s;
}
