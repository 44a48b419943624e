/* The report document: the verification, approximation and training
 * tables (tables/ as TSV, Markdown and LaTeX), DIR/report.md, and
 * DIR/report.html converted from the same Markdown by cmark. CommonMark has
 * no tables, so the HTML variant embeds the tables as raw HTML. */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmark.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/sim.h"
#include "pnd/train.h"
#include "plots/plot_internal.h"
#include "reports/report_internal.h"

#define MAX_FITS 64

/* The tables of one report. */
struct tables {
    struct report_table summary;       /* exact checks per sweep */
    struct report_table verification;  /* every exact check */
    struct report_table fits;          /* slope fits of the residuals */
    struct report_table approx;        /* every approximate check */
    struct report_table training;      /* final numbers per scheme and p */
};

static void
tables_free(struct tables *t)
{
    report_table_free(&t->summary);
    report_table_free(&t->verification);
    report_table_free(&t->fits);
    report_table_free(&t->approx);
    report_table_free(&t->training);
}

/* Cell text of column name, or "" when absent. */
static const char *
text_of(const struct pnd_table *t, size_t row, const char *name)
{
    int col = pnd_table_column(t, name);

    return col < 0 ? "" : pnd_table_cell(t, row, col);
}

/* Value of a column that may hold nan (not applicable): NAN then. */
static int
optional_value(const struct pnd_table *t, size_t row, const char *name,
               double *value)
{
    int col = pnd_table_column(t, name);

    *value = NAN;
    if (col < 0 || pnd_table_missing(t, row, col)
        || strcmp(pnd_table_cell(t, row, col), "nan") == 0)
        return PND_OK;
    return pnd_table_value(t, row, col, value);
}

static bool
exact_kind(const char *kind)
{
    return strcmp(kind, "exact") == 0 || strcmp(kind, "enumeration") == 0
           || strcmp(kind, "quadrature") == 0;
}

/* One exact comparison of a row: columns of the Monte Carlo value, its
 * standard error and the exact value. */
static const struct {
    const char *quantity, *mc, *se, *exact;
    const char *z;   /* the simulator's z column, or NULL: computed here */
    bool batch;      /* skipped for n = 1, where it repeats Var[L] */
    bool first_moment;
} exact_checks[] = {
    {"E[L]", "mc_mean", "mc_se", "analytic", "z", false, true},
    {"Var[L]", "mc_var", "mc_var_se", "var_analytic", "var_z", false, false},
    {"Var[L] per-sample masks", "batch_var_per_sample_mc", "batch_var_per_sample_se",
     "batch_var_per_sample_exact", NULL, true, false},
    {"Var[L] shared mask", "batch_var_shared_mc", "batch_var_shared_se",
     "batch_var_shared_exact", NULL, true, false},
    {"tr Cov(z)", "cov_trace_mc", "cov_trace_se", "cov_trace_exact", NULL, false, false},
    {"sum off-diagonal Cov(z)", "cov_offdiag_mc", "cov_offdiag_se", "cov_offdiag_exact",
     NULL, false, false},
};

/* The simulator's z of a check: +-inf is a valid z (a deterministic
 * quantity that differs from its exact value), NAN when absent. */
static int
z_value(const struct pnd_table *t, size_t row, const char *name, double *z)
{
    int col = name != NULL ? pnd_table_column(t, name) : -1;
    const char *text;
    char *end;

    *z = NAN;
    if (col < 0 || pnd_table_missing(t, row, col))
        return PND_OK;
    text = pnd_table_cell(t, row, col);
    *z = strtod(text, &end);
    if (end == text || *end != '\0')
        PND_ERROR(PND_EFORMAT, "%s:%zu: column %s contains '%s', which is not a number",
                  t->path, t->lines[row], name, text);
    return PND_OK;
}

static int
add_exact_rows(struct report_context *ctx, struct tables *tb,
               const struct report_sweep *sw, const struct pnd_table *t,
               size_t *n_checks, size_t *n_failed, double *max_z)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        const char *kind = text_of(t, r, "analytic_kind");
        const char *case_verdict = text_of(t, r, "verdict");
        size_t failed_before = *n_failed;
        double n, mean;

        if (!exact_kind(kind))
            continue;
        PND_TRY(pnd_table_value_named(t, r, "n", &n));
        PND_TRY(pnd_table_value_named(t, r, "mc_mean", &mean));
        for (size_t c = 0; c < sizeof exact_checks / sizeof exact_checks[0]; c++) {
            double mc, se, exact, z;
            bool pass;

            if (exact_checks[c].batch && n == 1)
                continue;
            PND_TRY(optional_value(t, r, exact_checks[c].exact, &exact));
            PND_TRY(optional_value(t, r, exact_checks[c].mc, &mc));
            PND_TRY(optional_value(t, r, exact_checks[c].se, &se));
            if (isnan(exact) || isnan(mc))
                continue;
            if (isnan(se))
                PND_ERROR(PND_ENUMERIC, "%s:%zu: %s has no standard error (column %s)",
                          t->path, t->lines[r], exact_checks[c].mc, exact_checks[c].se);
            PND_TRY(z_value(t, r, exact_checks[c].z, &z));
            /* A deterministic quantity (SE 0) passes when it agrees up to
             * rounding relative to mean^2, as the simulator judges
             * variances. NOTE: for the covariance checks the simulator
             * scales by |mu|^2, which its TSV does not hold; the case
             * verdict column shows its own judgement. */
            if (isnan(z) && exact_checks[c].first_moment)
                z = pnd_sim_z(mc, exact, se);
            else if (isnan(z))
                z = pnd_sim_z_scaled(mc, exact, se, mean * mean);
            pass = fabs(z) <= PND_SIM_Z_MAX;
            (*n_checks)++;
            *n_failed += !pass;
            if (fabs(z) > *max_z)
                *max_z = fabs(z);
            PND_TRY(report_table_add(&tb->verification,
                                     "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.8g\t%.8g\t%.3g\t%+.2f\t%s\t%s",
                                     sw->name, text_of(t, r, "case"), text_of(t, r, "model"),
                                     text_of(t, r, "scheme"), text_of(t, r, "p"),
                                     text_of(t, r, "n"), text_of(t, r, "draws"),
                                     exact_checks[c].quantity, kind, exact, mc, se, z,
                                     pass ? "pass" : "FAIL", case_verdict));
        }
        /* A case the simulator judged failed counts even when every check
         * listed here passed: it may have failed on a check not listed. */
        if (strcmp(case_verdict, "FAIL") == 0 && *n_failed == failed_before)
            (*n_failed)++;
    }
    ctx->n_exact += *n_checks;
    ctx->n_exact_failed += *n_failed;
    return PND_OK;
}

static const struct plot_residual_fit *
find_fit(const struct plot_residual_fit *fits, size_t n_fits, const char *model,
         const char *scheme, const char *kind)
{
    for (size_t i = 0; i < n_fits; i++)
        if (strcmp(fits[i].model, model) == 0 && strcmp(fits[i].scheme, scheme) == 0
            && strcmp(fits[i].kind, kind) == 0)
            return &fits[i];
    return NULL;
}

static void
format_fit(const struct plot_residual_fit *f, char *buf, size_t size)
{
    if (f == NULL || !f->fitted)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.2f ± %.2f", f->fit.slope, f->fit.slope_se);
}

/* Order 3 against order 2 of one scheme over the cases with a ground truth. */
struct order_count {
    char scheme[32];
    size_t cases, order3_smaller;
};

/* Append to ctx->expansion_text what the exact residuals of sweep sw show:
 * the fitted slopes per scheme and, for Bernoulli masks, at how many p the
 * third-order expansion is the closer one. */
static void
describe_exact_fits(struct report_context *ctx, const struct report_sweep *sw,
                    const struct plot_residual_fit *fits, size_t n_fits,
                    const struct order_count *counts, size_t n_counts)
{
    char *text = ctx->expansion_text;
    size_t size = sizeof ctx->expansion_text, len = strlen(text);
    bool any = false, slopes_ok = true;

    for (size_t i = 0; i < n_fits; i++)
        any |= fits[i].exact_truth && fits[i].fitted;
    if (!any)
        return;
    len += (size_t) snprintf(text + len, len < size ? size - len : 0,
                             "Against the exact ground truths of sweep %s, the fitted log-log slopes of |ground truth - expansion| are:",
                             sw->name);
    for (size_t i = 0; i < n_fits && len < size; i++) {
        const struct plot_residual_fit *f = &fits[i];

        if (!f->exact_truth || !f->fitted)
            continue;
        /* "Near" the theory: within 0.25 of it, a quarter of the gap
         * between the Bernoulli and the Gaussian slope. */
        slopes_ok &= fabs(f->fit.slope - f->expected_slope) <= 0.25;
        len += (size_t) snprintf(text + len, size - len, " %s %s %.2f ± %.2f (theory %.0f);",
                                 f->scheme, f->kind, f->fit.slope, f->fit.slope_se,
                                 f->expected_slope);
    }
    if (len < size)
        len += (size_t) snprintf(text + len, size - len,
                                 " every slope is %s the theory (within 0.25).",
                                 slopes_ok ? "near" : "NOT near");
    for (size_t i = 0; i < n_counts && len < size; i++)
        len += (size_t) snprintf(text + len, size - len,
                                 " For %s the third-order residual is below the second-order one at %zu of %zu p.",
                                 counts[i].scheme, counts[i].order3_smaller, counts[i].cases);
    if (len < size)
        snprintf(text + len, size - len,
                 " For Gaussian masks the third-order term is zero, so both orders give the same value.\n\n");
}

static int
add_approx_rows(struct report_context *ctx, struct tables *tb,
                const struct report_sweep *sw, const struct pnd_table *t)
{
    struct plot_residual_fit fits[MAX_FITS];
    struct order_count counts[16];
    size_t n_fits, n_counts = 0;
    double order2_residual = NAN;    /* exact residual of the last order2 row */

    PND_TRY(plot_sim_residual_fits(t, fits, MAX_FITS, &n_fits));
    for (size_t i = 0; i < n_fits; i++) {
        char slope[64];

        format_fit(&fits[i], slope, sizeof slope);
        PND_TRY(report_table_add(&tb->fits, "%s\t%s\t%s\t%s\t%s\t%zu\t%zu\t%.3g\t%.3g\t%s\t%.0f",
                                 sw->name, fits[i].model, fits[i].scheme, fits[i].kind,
                                 fits[i].exact_truth ? "ground truth - expansion"
                                                     : "MC - expansion",
                                 fits[i].n_points, fits[i].fitted ? fits[i].fit.n : 0,
                                 fits[i].max_abs_residual, fits[i].max_residual_se,
                                 slope, fits[i].expected_slope));
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        const char *kind = text_of(t, r, "analytic_kind");
        const char *scheme = text_of(t, r, "scheme");
        char model[64], slope[64], truth_text[32], exact_res_text[32];
        double analytic, mc, res, se, truth;

        if (strcmp(kind, "order2") != 0 && strcmp(kind, "order3") != 0)
            continue;
        PND_TRY(plot_sim_model_label(t, r, model, sizeof model));
        PND_TRY(pnd_table_value_named(t, r, "analytic", &analytic));
        PND_TRY(pnd_table_value_named(t, r, "mc_mean", &mc));
        PND_TRY(pnd_table_value_named(t, r, "residual", &res));
        PND_TRY(pnd_table_value_named(t, r, "residual_se", &se));
        PND_TRY(plot_sim_case_truth(t, r, &truth));
        const struct plot_residual_fit *f = find_fit(fits, n_fits, model, scheme, kind);

        snprintf(truth_text, sizeof truth_text, "-");
        snprintf(exact_res_text, sizeof exact_res_text, "-");
        if (!isnan(truth)) {
            snprintf(truth_text, sizeof truth_text, "%.8g", truth);
            snprintf(exact_res_text, sizeof exact_res_text, "%+.3e", truth - analytic);
            if (strcmp(kind, "order2") == 0) {
                order2_residual = truth - analytic;
            } else if (!isnan(order2_residual) && strstr(scheme, "gaussian") == NULL) {
                size_t c;

                for (c = 0; c < n_counts && strcmp(counts[c].scheme, scheme) != 0; c++)
                    continue;
                if (c == n_counts && n_counts < sizeof counts / sizeof counts[0]) {
                    memset(&counts[c], 0, sizeof counts[c]);
                    snprintf(counts[c].scheme, sizeof counts[c].scheme, "%s", scheme);
                    n_counts++;
                }
                if (c < n_counts) {
                    counts[c].cases++;
                    counts[c].order3_smaller += fabs(truth - analytic) < fabs(order2_residual);
                }
            }
        }
        format_fit(f, slope, sizeof slope);

        const char *expected_slope = "-";

        if (f != NULL)
            expected_slope = f->expected_slope == 2 ? "2" : "1";
        PND_TRY(report_table_add(&tb->approx, "%s\t%s\t%s\t%s\t%s\t%.8g\t%s\t%s\t%.8g\t%+.3e\t%.2e\t%+.1f\t%s\t%s",
                                 sw->name, model, scheme, text_of(t, r, "p"), kind, analytic,
                                 truth_text, exact_res_text, mc, res, se,
                                 se > 0 ? res / se : 0.0, slope, expected_slope));
        ctx->n_approx++;
    }
    describe_exact_fits(ctx, sw, fits, n_fits, counts, n_counts);
    return PND_OK;
}

/* ---- training table ---- */

/* Final value of column in a run's log, NAN when the column is absent. */
static int
final_value(const struct pnd_table *log, const char *column, double *value)
{
    *value = NAN;
    if (log->n_rows == 0)
        PND_ERROR(PND_EFORMAT, "%s has no epochs", log->path);
    if (pnd_table_column(log, column) < 0)
        return PND_OK;
    return pnd_table_value_named(log, log->n_rows - 1, column, value);
}

/* Sum of a column over the epochs of a log (the times). */
static int
column_sum(const struct pnd_table *log, const char *column, double *sum)
{
    *sum = 0;
    for (size_t r = 0; r < log->n_rows && pnd_table_column(log, column) >= 0; r++) {
        double v;

        PND_TRY(pnd_table_value_named(log, r, column, &v));
        *sum += v;
    }
    return PND_OK;
}

#define N_TRAIN_STATS 7
#define MAX_SEEDS 64

/* "mean ± half-width" of factor * x with `digits` decimals, or with
 * `digits` significant digits when digits is negative. */
static void
format_ci(const double *x, size_t n, double factor, int digits, char *buf,
          size_t size)
{
    double mean, half;
    char m[32], h[32];

    if (n == 0 || isnan(x[0])) {
        snprintf(buf, size, "-");
        return;
    }
    pnd_train_mean_ci(x, n, &mean, &half);
    if (digits >= 0) {
        snprintf(m, sizeof m, "%.*f", digits, factor * mean);
        snprintf(h, sizeof h, "%.*f", digits, factor * half);
    } else {
        snprintf(m, sizeof m, "%.*g", -digits, factor * mean);
        snprintf(h, sizeof h, "%.*g", -digits, factor * half);
    }
    if (n < 2)
        snprintf(buf, size, "%s", m);
    else
        snprintf(buf, size, "%s ± %s", m, h);
}

static int
add_training_rows(struct report_context *ctx, struct tables *tb)
{
    static const char *const columns[N_TRAIN_STATS] = {
        "val_acc", "test_acc", "gap_acc", "L1_mean_abs_corr", "L1_pr", "L1_R_cross", "time"
    };
    int status = PND_OK;

    for (size_t i = 0; i < ctx->n_runs && status == PND_OK; i++) {
        double values[N_TRAIN_STATS][MAX_SEEDS];
        char cells[N_TRAIN_STATS][96];
        size_t m = 0;
        bool first = true;

        /* Rows in the order of the first run of each scheme and p. */
        for (size_t j = 0; j < i && first; j++)
            first = !(strcmp(ctx->runs[j].scheme, ctx->runs[i].scheme) == 0
                      && ctx->runs[j].p == ctx->runs[i].p);
        if (!first)
            continue;
        for (size_t j = i; j < ctx->n_runs && status == PND_OK && m < MAX_SEEDS; j++) {
            struct pnd_table *log;
            char path[REPORT_PATH_SIZE];

            if (strcmp(ctx->runs[j].scheme, ctx->runs[i].scheme) != 0
                || ctx->runs[j].p != ctx->runs[i].p)
                continue;
            if ((status = plot_join(path, sizeof path, ctx->runs[j].dir, "log.tsv")) != PND_OK
                || (status = pnd_table_read(path, &log)) != PND_OK)
                break;
            for (size_t k = 0; k < N_TRAIN_STATS - 1 && status == PND_OK; k++)
                status = final_value(log, columns[k], &values[k][m]);
            if (status == PND_OK) {
                double train_s, eval_s;

                status = column_sum(log, "time_train_s", &train_s);
                if (status == PND_OK)
                    status = column_sum(log, "time_eval_s", &eval_s);
                values[N_TRAIN_STATS - 1][m] = train_s + eval_s;
            }
            pnd_table_free(log);
            m++;
        }
        if (status != PND_OK)
            break;
        format_ci(values[0], m, 100, 2, cells[0], sizeof cells[0]);
        format_ci(values[1], m, 100, 2, cells[1], sizeof cells[1]);
        format_ci(values[2], m, 100, 2, cells[2], sizeof cells[2]);
        format_ci(values[3], m, 1, 4, cells[3], sizeof cells[3]);
        format_ci(values[4], m, 1, 1, cells[4], sizeof cells[4]);
        format_ci(values[5], m, 1, -3, cells[5], sizeof cells[5]);
        format_ci(values[6], m, 1, 1, cells[6], sizeof cells[6]);
        status = report_table_add(&tb->training, "%s\t%g\t%zu\t%s\t%s\t%s\t%s\t%s\t%s\t%s",
                                  ctx->runs[i].scheme, ctx->runs[i].p, m, cells[0], cells[1],
                                  cells[2], cells[3], cells[4], cells[5], cells[6]);
    }
    return status;
}

/* ---- building the tables ---- */

static int
build_tables(struct report_context *ctx, struct tables *tb)
{
    PND_TRY(report_table_init(&tb->summary, "exact_summary",
                              "Exact checks per simulator sweep: a check passes when |z| <= 4.",
                              "sweep\t>checks\t>failed\t>max |z|\tverdict"));
    PND_TRY(report_table_init(&tb->verification, "verification",
                              "Every exact check: Monte Carlo estimate (MC) with its standard error (SE) against the exact value; z = (MC - exact) / SE, pass when |z| <= 4.",
                              "sweep\t>case\tmodel\tscheme\t>p\t>n\t>draws\tquantity\tground truth\t>exact\t>MC\t>SE\t>z\tverdict\tcase verdict (simulator)"));
    PND_TRY(report_table_init(&tb->fits, "expansion_slopes",
                              "Log-log slope of the residual of each expansion against p, fitted by least squares at p <= 0.3, beside the slope the theory expects as p goes to 0. Where the sweep has a ground truth (enumeration or quadrature) the residual is ground truth - expansion, exact, and every nonzero residual is fitted; otherwise it is MC - expansion, and only residuals above 2 standard errors are fitted.",
                              "sweep\tmodel\tscheme\texpansion\tresidual\t>rows\t>fitted points\t>max |residual|\t>its SE\t>fitted slope\t>expected slope"));
    PND_TRY(report_table_init(&tb->approx, "approximations",
                              "Every approximate check: the expansion of E[L] against the ground truth, where the sweep has one, and against Monte Carlo. A residual is not a pass or fail; its slope against p is what the theory predicts.",
                              "sweep\tmodel\tscheme\t>p\texpansion\t>expansion value\t>ground truth\t>ground truth - expansion\t>MC\t>MC - expansion\t>SE\t>residual / SE\t>fitted slope\t>expected slope"));
    PND_TRY(report_table_init(&tb->training, "training",
                              "Training on Fashion-MNIST: final accuracies and co-adaptation statistics of the first hidden layer, mean ± 95% t-interval over seeds.",
                              "scheme\t>p\t>seeds\t>validation accuracy (%)\t>test accuracy (%)\t>gap: train - validation (points)\t>mean |C_uv|\t>participation ratio\t>R_cross (Dropout view)\t>time per run (s)"));

    for (size_t i = 0; i < ctx->n_sweeps; i++) {
        struct report_sweep *sw = &ctx->sweeps[i];
        struct pnd_table *t;
        size_t checks = 0, failed = 0;
        double max_z = 0;
        int status;

        PND_TRY(pnd_table_read(sw->tsv, &t));
        status = add_exact_rows(ctx, tb, sw, t, &checks, &failed, &max_z);
        if (status == PND_OK)
            status = add_approx_rows(ctx, tb, sw, t);
        pnd_table_free(t);
        PND_TRY(status);
        if (checks > 0)
            PND_TRY(report_table_add(&tb->summary, "%s\t%zu\t%zu\t%.2f\t%s", sw->name,
                                     checks, failed, max_z, failed ? "FAIL" : "pass"));
    }
    PND_TRY(add_training_rows(ctx, tb));

    PND_TRY(report_table_write(&tb->summary, ctx->tables_dir));
    PND_TRY(report_table_write(&tb->verification, ctx->tables_dir));
    PND_TRY(report_table_write(&tb->fits, ctx->tables_dir));
    PND_TRY(report_table_write(&tb->approx, ctx->tables_dir));
    return report_table_write(&tb->training, ctx->tables_dir);
}

/* ---- the document ---- */

static void
put_table(const struct report_table *t, FILE *fp, bool html)
{
    if (html)
        report_table_html(t, fp);
    else
        report_table_markdown(t, fp);
    fprintf(fp, "\nAs files: [TSV](tables/%s.tsv), [Markdown](tables/%s.md), [LaTeX](tables/%s.tex).\n\n",
            t->name, t->name, t->name);
}

/* A table folded away under a summary line (raw HTML in both variants). */
static void
put_folded_table(const struct report_table *t, const char *summary, FILE *fp,
                 bool html)
{
    fprintf(fp, "<details>\n<summary>%s</summary>\n\n", summary);
    if (html)
        report_table_html(t, fp);
    else
        report_table_markdown(t, fp);
    fputs("\n</details>\n\n", fp);
    fprintf(fp, "As files: [TSV](tables/%s.tsv), [Markdown](tables/%s.md), [LaTeX](tables/%s.tex).\n\n",
            t->name, t->name, t->name);
}

static void
put_figures(const struct pnd_figure_list *list, unsigned formats, FILE *fp)
{
    for (size_t i = 0; i < list->n; i++) {
        const struct pnd_figure *f = &list->items[i];

        if (formats & PND_PLOT_PNG)
            fprintf(fp, "![%s](figures/%s.png)\n\n", f->name, f->name);
        fprintf(fp, "*Figure %s.* %s", f->name, f->caption);
        if (formats & PND_PLOT_PDF)
            fprintf(fp, " [PDF](figures/%s.pdf)", f->name);
        if (formats & PND_PLOT_SVG)
            fprintf(fp, " [SVG](figures/%s.svg)", f->name);
        fprintf(fp, " [data](figures/data/)\n\n");
    }
}

static void
put_sweep(const struct report_context *ctx, const struct report_sweep *sw,
          FILE *fp)
{
    fprintf(fp, "### %s\n\n%s Results: [sim/%s.tsv](sim/%s.tsv)%s.\n\n", sw->title,
            sw->text, sw->name, sw->name,
            sw->reused ? " (reused from an earlier run with the same configuration)" : "");
    if (sw->figures.n == 0)
        fputs("No figure: this sweep has no series to draw.\n\n", fp);
    put_figures(&sw->figures, ctx->cfg->formats, fp);
}

static void
write_body(const struct report_context *ctx, const struct tables *tb,
           double wall_s, FILE *fp, bool html)
{
    size_t reused = 0;

    fprintf(fp, "# PerNodeDrop: expected-loss theory and training report\n\n");
    fprintf(fp, "Preset **%s**, started %s, written by pnd %s.\n\n", ctx->preset_name,
            ctx->prov.start_utc, PACKAGE_VERSION);
    if (ctx->n_exact_failed == 0)
        fprintf(fp, "**Verdict: all %zu exact checks pass** (|z| <= 4). ", ctx->n_exact);
    else
        fprintf(fp, "**Verdict: %zu of %zu exact checks FAIL** (|z| > 4). ",
                ctx->n_exact_failed, ctx->n_exact);
    fprintf(fp, "%zu approximate checks compare the second- and third-order expansions with exact ground truths, where a sweep has them, and with Monte Carlo.\n\n",
            ctx->n_approx);

    fputs("## What is checked\n\n"
          "Masks are inverted (mean 1) and p is the drop probability. For every scheme the masked "
          "pre-activations have mean mu = W x + b; their covariance S is diagonal for the "
          "per-connection schemes (dropconnect, pernodedrop, pernodedrop-gaussian) and full for "
          "input dropout. For quadratic losses the expected loss and its variance are known exactly, "
          "and for small networks exact enumeration of the Bernoulli masks or Gauss-Hermite "
          "quadrature gives E[L]; Monte Carlo must agree with them within 4 standard errors. For "
          "smooth losses the second-order expansion E[l] ~ l(mu) + R_diag + R_cross holds, with "
          "R_cross = 0 for the per-connection schemes; its residual shrinks like p for Bernoulli masks "
          "and like p^2 for Gaussian masks. Intervals are 95% intervals: 1.96 standard errors for "
          "Monte Carlo, t-intervals over seeds for training.\n\n", fp);

    fputs("## Exact checks\n\n", fp);
    put_table(&tb->summary, fp, html);
    put_folded_table(&tb->verification, "Every exact check", fp, html);

    fputs("## Expansions\n\n", fp);
    if (tb->fits.n_rows > 0)
        put_table(&tb->fits, fp, html);
    if (ctx->expansion_text[0] != '\0')
        fputs(ctx->expansion_text, fp);
    else
        fputs("No sweep of this report was checked against expansions only.\n\n", fp);
    if (tb->approx.n_rows > 0)
        put_folded_table(&tb->approx, "Every approximate check", fp, html);

    fputs("## Simulator sweeps on synthetic networks\n\n", fp);
    for (size_t i = 0; i < ctx->n_sweeps; i++)
        if (!ctx->sweeps[i].trained)
            put_sweep(ctx, &ctx->sweeps[i], fp);

    fputs("## Training on Fashion-MNIST\n\n", fp);
    for (size_t i = 0; i < ctx->n_runs; i++)
        reused += ctx->runs[i].reused;
    fprintf(fp, "%zu runs in [train/](train/) (%zu reused from earlier runs with the same configuration), %.0f s of wall time for the training stage. "
            "The networks are sized so that every scheme trains within the preset's time budget: a subset of the training images and few epochs, "
            "so the accuracies are below those of full-length training.\n\n",
            ctx->n_runs, reused, ctx->train_s);
    put_table(&tb->training, fp, html);
    put_figures(&ctx->train_figures, ctx->cfg->formats, fp);

    fputs("## Expected loss of the trained networks\n\n", fp);
    for (size_t i = 0; i < ctx->n_sweeps; i++)
        if (ctx->sweeps[i].trained)
            put_sweep(ctx, &ctx->sweeps[i], fp);

    fputs("## Preset\n\n", fp);
    fprintf(fp, "%s\n\n", ctx->preset_text);

    fputs("## Provenance\n\n", fp);
    fprintf(fp, "- Command: `%s`\n", ctx->cfg->command_line ? ctx->cfg->command_line : "(library call)");
    fprintf(fp, "- Toolkit: %s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
    unsigned long long last_seed = ctx->cfg->seed;

    for (size_t i = 0; i < ctx->n_runs; i++)
        if (ctx->runs[i].seed > last_seed)
            last_seed = ctx->runs[i].seed;
    fprintf(fp, "- Seeds: simulator mask and data seed %llu; training seeds %llu to %llu\n",
            (unsigned long long) ctx->cfg->seed, (unsigned long long) ctx->cfg->seed,
            last_seed);
    fprintf(fp, "- Libraries: %s\n", ctx->prov.libraries);
    fprintf(fp, "- Machine: %s; CPU %s; %ld cores online; %d OpenMP threads\n",
            ctx->prov.machine, ctx->prov.cpu, ctx->prov.cores, ctx->prov.threads);
    fprintf(fp, "- Started: %s; wall time %.1f s\n\n", ctx->prov.start_utc, wall_s);

    fputs("## Rerun\n\n", fp);
    fprintf(fp, "`pnd report --preset %s -o DIR --seed %llu` reruns this report; finished sweeps and runs in DIR whose stored configuration matches are reused. "
            "`pnd plot DIR` redraws the figures from the results without recomputing.\n",
            ctx->preset_name, (unsigned long long) ctx->cfg->seed);
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>PerNodeDrop report</title>\n<style>\n"
    "body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }\n"
    "img { max-width: 100%; }\n"
    "table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }\n"
    "th, td { border-bottom: 1px solid #ccc; padding: 0.2em 0.6em; }\n"
    "th { border-bottom: 2px solid #444; text-align: left; }\n"
    ".num { text-align: right; font-variant-numeric: tabular-nums; }\n"
    ".fail { color: #b2182b; }\n"
    "code { background: #f4f4f4; }\n"
    "</style>\n</head>\n<body>\n";

static int
write_markdown(const struct report_context *ctx, const struct tables *tb,
               double wall_s)
{
    struct pnd_atomic_file f;
    char path[REPORT_PATH_SIZE];

    PND_TRY(plot_join(path, sizeof path, ctx->dir, "report.md"));
    PND_TRY(pnd_atomic_open(&f, path));
    write_body(ctx, tb, wall_s, f.fp, false);
    return pnd_atomic_commit(&f);
}

static int
write_html(const struct report_context *ctx, const struct tables *tb,
           double wall_s)
{
    struct pnd_atomic_file f;
    char path[REPORT_PATH_SIZE], *markdown = NULL, *html;
    size_t len = 0;
    FILE *mem = open_memstream(&markdown, &len);

    if (mem == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory writing the HTML report");
    write_body(ctx, tb, wall_s, mem, true);
    if (fclose(mem) != 0) {
        free(markdown);
        PND_ERROR(PND_ENOMEM, "out of memory writing the HTML report");
    }
    /* UNSAFE keeps the raw HTML tables, which this program wrote itself. */
    html = cmark_markdown_to_html(markdown, len, CMARK_OPT_UNSAFE | CMARK_OPT_SMART);
    free(markdown);
    if (html == NULL)
        PND_ERROR(PND_ENOMEM, "cmark could not convert the report to HTML");

    if (plot_join(path, sizeof path, ctx->dir, "report.html") != PND_OK
        || pnd_atomic_open(&f, path) != PND_OK) {
        free(html);
        return pnd_error_status();
    }
    fputs(html_head, f.fp);
    fputs(html, f.fp);
    fputs("</body>\n</html>\n", f.fp);
    free(html);
    return pnd_atomic_commit(&f);
}

int
report_write_document(struct report_context *ctx)
{
    struct tables tb;
    int status;

    memset(&tb, 0, sizeof tb);
    ctx->n_exact = ctx->n_exact_failed = ctx->n_approx = 0;
    ctx->expansion_text[0] = '\0';
    status = build_tables(ctx, &tb);
    if (status == PND_OK) {
        double wall_s = pnd_wall_seconds() - ctx->start_s;

        status = write_markdown(ctx, &tb, wall_s);
        if (status == PND_OK)
            status = write_html(ctx, &tb, wall_s);
    }
    tables_free(&tb);
    return status;
}
