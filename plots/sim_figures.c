/* Figures of a simulator TSV (columns of docs/sim.md, "Output columns").
 *
 * The table is split by model (model and activation, such as "mlp-tanh").
 * Every figure has one series per scheme, in the style that styles.gp
 * gives the scheme. What the sweep varied decides the figures:
 *   p      expected loss against p, MC beside the analytic value; residual
 *          of the second- and third-order expansions on log-log axes with
 *          fitted slopes, against the exact value when the table has one
 *          beside the expansions (pnd sim --expansions true), and against
 *          Monte Carlo; R_diag and R_cross against p;
 *   draws  |MC - exact| and the standard error against the number of draws,
 *          with a 1/sqrt(N) guide;
 *   n      mini-batch loss variance with per-sample and shared masks
 *          against the batch size, exact curves and MC points.
 * Intervals are 95% normal intervals, 1.96 standard errors.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pnd/error.h"
#include "pnd/log.h"
#include "plots/plot_internal.h"

#define PATH_SIZE 4096
#define MAX_MODELS 16

/* A residual counts in the slope fit only when it exceeds this many
 * standard errors: below that it is Monte Carlo noise, whose size does not
 * follow the power law and would bias the slope towards zero. */
#define FIT_MIN_Z 2.0

/* The power law is a small-p property: at larger p the higher cumulants
 * of the mask noise take over, so the fit uses p up to this value. */
#define FIT_MAX_P 0.3

/* Value of column name in row, NAN when the cell is "nan", empty, "-" or
 * "NA" (the simulator writes nan for a value that does not apply). Inf or
 * text that is not a number is an error; so is a missing column. */
static int
value_or_missing(const struct pnd_table *t, size_t row, const char *name,
                 double *value)
{
    int col = pnd_table_column(t, name);

    if (col < 0)
        PND_ERROR(PND_EFORMAT, "%s has no column '%s' (see docs/sim.md for the simulator's columns)",
                  t->path, name);
    if (pnd_table_missing(t, row, col)
        || strcasecmp(pnd_table_cell(t, row, col), "nan") == 0) {
        *value = NAN;
        return PND_OK;
    }
    return pnd_table_value(t, row, col, value);
}

/* Text of column name in row, or "" when the table has no such column. */
static const char *
text_of(const struct pnd_table *t, size_t row, const char *name)
{
    int col = pnd_table_column(t, name);

    return col < 0 ? "" : pnd_table_cell(t, row, col);
}

static bool
kind_is_exact(const char *kind)
{
    return strcmp(kind, "exact") == 0 || strcmp(kind, "enumeration") == 0
           || strcmp(kind, "quadrature") == 0;
}

int
plot_sim_case_truth(const struct pnd_table *t, size_t r, double *truth)
{
    const char *id = text_of(t, r, "case");

    *truth = NAN;
    for (size_t s = r + 1; s-- > 0 && strcmp(text_of(t, s, "case"), id) == 0;)
        if (kind_is_exact(text_of(t, s, "analytic_kind")))
            return pnd_table_value_named(t, s, "analytic", truth);
    return PND_OK;
}

/* Residual of the order2 or order3 row r and its standard error: ground
 * truth minus expansion, with standard error 0, when the case has a ground
 * truth and use_truth is set, else Monte Carlo minus expansion. *exact
 * is set to true in the first case. */
static int
row_residual(const struct pnd_table *t, size_t r, bool use_truth, double *res,
             double *se, bool *exact)
{
    double truth = NAN, analytic;

    if (use_truth)
        PND_TRY(plot_sim_case_truth(t, r, &truth));
    *exact = !isnan(truth);
    if (*exact) {
        PND_TRY(pnd_table_value_named(t, r, "analytic", &analytic));
        *res = truth - analytic;
        *se = 0;
        return PND_OK;
    }
    PND_TRY(pnd_table_value_named(t, r, "residual", res));
    return pnd_table_value_named(t, r, "residual_se", se);
}

/* True when the order3 row r repeats the order2 value of its case, as for
 * Gaussian masks, whose third cumulant is zero. */
static bool
order3_repeats_order2(const struct pnd_table *t, size_t r)
{
    return r > 0 && strcmp(text_of(t, r, "analytic_kind"), "order3") == 0
           && strcmp(text_of(t, r - 1, "analytic_kind"), "order2") == 0
           && strcmp(text_of(t, r - 1, "case"), text_of(t, r, "case")) == 0
           && strcmp(text_of(t, r - 1, "analytic"), text_of(t, r, "analytic")) == 0;
}

int
plot_sim_model_label(const struct pnd_table *t, size_t row, char *buf,
                     size_t size)
{
    const char *model = text_of(t, row, "model");
    const char *act = text_of(t, row, "act");

    if (model[0] == '\0')
        PND_ERROR(PND_EFORMAT, "%s has no column 'model': is it a simulator TSV?", t->path);
    if (act[0] == '\0' || strcmp(act, "identity") == 0)
        snprintf(buf, size, "%s", model);
    else
        snprintf(buf, size, "%s-%s", model, act);
    return PND_OK;
}

/* Number of distinct values of a numeric column (at most cap counted). */
static int
count_distinct(const struct pnd_table *t, const char *name, size_t *result)
{
    double seen[64];
    size_t n = 0;

    *result = 0;
    if (pnd_table_column(t, name) < 0)
        return PND_OK;
    for (size_t r = 0; r < t->n_rows; r++) {
        double v;
        size_t j;

        PND_TRY(pnd_table_value_named(t, r, name, &v));
        for (j = 0; j < n && seen[j] != v; j++)
            continue;
        if (j == n && n < sizeof seen / sizeof seen[0])
            seen[n++] = v;
    }
    *result = n;
    return PND_OK;
}

static const char *
loss_unit(const char *model)
{
    if (strcmp(model, "linear") == 0 || strcmp(model, "readout") == 0)
        return "squared error";
    if (strcmp(model, "softmax") == 0)
        return "nats";
    return "loss units";
}

/* Write set to data/NAME.dat and set panel `panel` of vars to it. */
static int
write_panel(const struct pnd_plot_options *opt, struct plot_set *set,
            const char *name, struct plot_vars *vars, int panel,
            const char *xlabel, const char *ylabel, const char *title,
            bool logx, bool logy)
{
    char path[PATH_SIZE];

    PND_TRY(plot_data_path(opt, name, path, sizeof path));
    PND_TRY(plot_set_write(set, path));
    return plot_vars_panel(vars, panel, path, xlabel, ylabel, title, logx, logy);
}

/* ---- expected loss against p ---- */

static int
figure_loss(const struct pnd_plot_options *opt, const struct pnd_table *t,
            const char *prefix, const char *model, struct pnd_figure_list *list)
{
    struct plot_set set = {0};
    struct plot_vars vars = {0};
    char name[128], ylabel[128], caption[320], label[64];
    int status = PND_OK, serial = 0;
    bool any_approx = false;

    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        const char *kind = text_of(t, r, "analytic_kind");
        double p, mean, se, analytic;

        if ((status = plot_sim_model_label(t, r, label, sizeof label)) != PND_OK)
            break;
        /* One point per case: its exact row, or its order2 row. */
        if (strcmp(label, model) != 0
            || !(kind_is_exact(kind) || strcmp(kind, "order2") == 0))
            continue;
        if (strcmp(kind, "order2") == 0) {
            double truth;

            /* With --expansions true the case's exact row gave its point. */
            if ((status = plot_sim_case_truth(t, r, &truth)) != PND_OK)
                break;
            if (!isnan(truth))
                continue;
            any_approx = true;
        }
        if ((status = pnd_table_value_named(t, r, "p", &p)) != PND_OK
            || (status = pnd_table_value_named(t, r, "mc_mean", &mean)) != PND_OK
            || (status = pnd_table_value_named(t, r, "mc_se", &se)) != PND_OK
            || (status = pnd_table_value_named(t, r, "analytic", &analytic)) != PND_OK)
            break;
        status = plot_set_add(&set, text_of(t, r, "scheme"),
                              plot_scheme_style(text_of(t, r, "scheme")), p,
                              mean, PND_Z95 * se, analytic);
    }
    if (status != PND_OK || set.n == 0)
        goto done;

    snprintf(name, sizeof name, "%sloss_%s", prefix, model);
    snprintf(ylabel, sizeof ylabel, "expected loss E[L] (%s)", loss_unit(model));
    status = write_panel(opt, &set, name, &vars, 1, "drop probability p",
                         ylabel, model, false, false);
    for (size_t i = 0; i < set.n && status == PND_OK; i++) {
        status = plot_vars_series(&vars, 1, ++serial, "pe", set.series[i].style,
                                  (int) i, 2, 1, set.series[i].label);
        if (status == PND_OK)
            status = plot_vars_series(&vars, 1, ++serial, "l",
                                      set.series[i].style, (int) i, 4, 0, "");
    }
    snprintf(caption, sizeof caption,
             "Expected loss against the drop probability p, model %s: Monte Carlo means (points, 95%% intervals) and the %s (lines).",
             model, any_approx ? "second-order expansion" : "exact value");
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", name, caption, &vars, list);

done:
    plot_set_free(&set);
    plot_vars_free(&vars);
    return status;
}

/* ---- residuals of the expansions ---- */

/* Put the distinct x values of set (at most 16) as the x tics of panel 1,
 * formatted with %g: a log axis over less than a decade has no labelled
 * tic of its own. */
static int
set_xtics_at_points(struct plot_vars *vars, const struct plot_set *set)
{
    double seen[16];
    char list[16 * 24] = "";
    size_t n = 0, len = 0;

    for (size_t i = 0; i < set->n; i++)
        for (size_t j = 0; j < set->series[i].n; j++) {
            double x = set->series[i].points[j].x;
            size_t k;

            for (k = 0; k < n && seen[k] != x; k++)
                continue;
            if (k < n || n == sizeof seen / sizeof seen[0])
                continue;
            seen[n++] = x;
            len += (size_t) snprintf(list + len, sizeof list - len, "%s%g",
                                     len > 0 ? ", " : "", x);
        }
    if (n == 0)
        return PND_OK;
    PND_TRY(plot_vars_set(vars, "p1_xtics", "%s", list));
    return plot_vars_set(vars, "p1_xformat", "%%g");
}

static double
expected_slope(const char *scheme)
{
    /* Bernoulli masks: every cumulant of eta is of order p, so neither
     * expansion can do better than slope 1. Gaussian masks: the third
     * cumulant vanishes and the fourth is of order p^2. */
    return strstr(scheme, "gaussian") != NULL ? 2.0 : 1.0;
}

int
plot_sim_residual_fits(const struct pnd_table *t, struct plot_residual_fit *fits,
                       size_t max_fits, size_t *n_fits)
{
    size_t n = 0;
    int status = PND_OK;
    double *x = NULL, *y = NULL;  /* (t->n_rows) points of one fit */

    *n_fits = 0;
    if (pnd_table_column(t, "analytic_kind") < 0 || t->n_rows == 0)
        return PND_OK;
    x = malloc(t->n_rows * sizeof *x);
    y = malloc(t->n_rows * sizeof *y);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        PND_ERROR(PND_ENOMEM, "out of memory fitting residual slopes of %s", t->path);
    }

    /* Each (model, scheme, order) seen first at row r starts one fit. */
    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        struct plot_residual_fit f = {0};
        const char *kind = text_of(t, r, "analytic_kind");
        size_t m = 0;
        bool seen = false;

        if (strcmp(kind, "order2") != 0 && strcmp(kind, "order3") != 0)
            continue;
        if ((status = plot_sim_model_label(t, r, f.model, sizeof f.model)) != PND_OK)
            break;
        snprintf(f.scheme, sizeof f.scheme, "%s", text_of(t, r, "scheme"));
        snprintf(f.kind, sizeof f.kind, "%s", kind);
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(fits[j].model, f.model) == 0
                   && strcmp(fits[j].scheme, f.scheme) == 0
                   && strcmp(fits[j].kind, f.kind) == 0;
        if (seen || strcmp(f.scheme, "none") == 0)
            continue;

        for (size_t s = r; s < t->n_rows && status == PND_OK; s++) {
            char label[64];
            double p, res, se;
            bool exact;

            if ((status = plot_sim_model_label(t, s, label, sizeof label)) != PND_OK)
                break;
            if (strcmp(label, f.model) != 0 || strcmp(text_of(t, s, "scheme"), f.scheme) != 0
                || strcmp(text_of(t, s, "analytic_kind"), f.kind) != 0)
                continue;
            if ((status = pnd_table_value_named(t, s, "p", &p)) != PND_OK
                || (status = row_residual(t, s, true, &res, &se, &exact)) != PND_OK)
                break;
            /* A series is against the ground truth when all its rows are. */
            f.exact_truth = f.n_points == 0 ? exact : f.exact_truth && exact;
            f.n_points++;
            if (p > f.p_max)
                f.p_max = p;
            if (fabs(res) > f.max_abs_residual) {
                f.max_abs_residual = fabs(res);
                f.max_residual_se = se;
            }
            /* An exact residual has no noise: every nonzero one counts. */
            if (p > 0 && p <= FIT_MAX_P && fabs(res) > FIT_MIN_Z * se && res != 0) {
                x[m] = p;
                y[m] = fabs(res);
                m++;
            }
        }
        if (status != PND_OK)
            break;
        f.expected_slope = expected_slope(f.scheme);
        f.fitted = m >= 2;
        if (f.fitted)
            status = pnd_fit_loglog(x, y, m, &f.fit);
        if (status == PND_OK && n < max_fits)
            fits[n++] = f;
    }
    free(x);
    free(y);
    *n_fits = n;
    return status;
}

/* Residuals of the expansions on log-log axes. With use_truth the
 * residual is ground truth minus expansion, exact, and the key gives the
 * fitted slopes; without it, Monte Carlo minus expansion with its noise
 * level, and the slopes only when no ground truth exists (the fits then
 * use the same residuals). */
static int
figure_residual(const struct pnd_plot_options *opt, const struct pnd_table *t,
                const char *prefix, const char *model, bool use_truth,
                bool has_truth, struct pnd_figure_list *list)
{
    struct plot_set set = {0};
    struct plot_vars vars = {0};
    struct plot_residual_fit fits[PLOT_MAX_SERIES];
    size_t n_fits;
    char name[128], caption[640], label[96], model_label[64], title[160];
    int status, serial = 0;

    status = plot_sim_residual_fits(t, fits, PLOT_MAX_SERIES, &n_fits);
    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        const char *kind = text_of(t, r, "analytic_kind");
        const char *scheme = text_of(t, r, "scheme");
        double p, res, se;
        bool exact;

        if ((status = plot_sim_model_label(t, r, model_label, sizeof model_label)) != PND_OK)
            break;
        if (strcmp(model_label, model) != 0 || strcmp(scheme, "none") == 0
            || (strcmp(kind, "order2") != 0 && strcmp(kind, "order3") != 0))
            continue;
        if ((status = pnd_table_value_named(t, r, "p", &p)) != PND_OK
            || (status = row_residual(t, r, use_truth, &res, &se, &exact)) != PND_OK)
            break;
        /* A zero residual has no place on a log axis; a case without a
         * ground truth has no place in the exact figure. */
        if (p <= 0 || res == 0 || (use_truth && !exact))
            continue;
        /* Gaussian masks: order 3 equals order 2, one line shows both. */
        if (use_truth && order3_repeats_order2(t, r))
            continue;
        snprintf(label, sizeof label, "%s %s", scheme, kind);
        status = plot_set_add(&set, label, plot_scheme_style(scheme), p,
                              fabs(res), PND_Z95 * se, NAN);
    }
    if (status != PND_OK || set.n == 0)
        goto done;

    snprintf(name, sizeof name, "%sresidual%s_%s", prefix,
             has_truth && !use_truth ? "_mc" : "", model);
    snprintf(title, sizeof title, "%s, model %s",
             use_truth ? "exact residual (enumeration or quadrature minus expansion)"
                       : (has_truth ? "Monte Carlo residual (noisy, see the exact figure)"
                                    : "Monte Carlo residual"),
             model);
    status = write_panel(opt, &set, name, &vars, 1, "drop probability p",
                         use_truth ? "|ground truth - expansion| (loss units)"
                                   : "|MC - expansion| (loss units)",
                         title, true, true);
    if (status == PND_OK)
        status = set_xtics_at_points(&vars, &set);
    for (size_t i = 0; i < set.n && status == PND_OK; i++) {
        const struct plot_series *s = &set.series[i];
        bool third = strstr(s->label, "order3") != NULL;

        snprintf(title, sizeof title, "%s", s->label);
        for (size_t j = 0; j < n_fits; j++) {
            char fit_label[96];

            snprintf(fit_label, sizeof fit_label, "%s %s", fits[j].scheme, fits[j].kind);
            if (strcmp(fits[j].model, model) == 0 && strcmp(fit_label, s->label) == 0
                && fits[j].fitted && fits[j].exact_truth == use_truth)
                snprintf(title, sizeof title, "%s%s: slope %.2f ± %.2f (theory %.0f)",
                         s->label,
                         use_truth && fits[j].expected_slope == 2 ? " = order3" : "",
                         fits[j].fit.slope, fits[j].fit.slope_se,
                         fits[j].expected_slope);
        }
        status = plot_vars_series(&vars, 1, ++serial, "lp", s->style, (int) i,
                                  2, third ? 2 : 1, title);
        /* The noise level 1.96 SE; the exact residuals have none. */
        if (status == PND_OK && !use_truth)
            status = plot_vars_series(&vars, 1, ++serial, "l", s->style, (int) i,
                                      3, 3, "");
    }
    /* Exact residuals rise from the bottom left: the key fits below right. */
    if (status == PND_OK && use_truth)
        status = plot_vars_set(&vars, "p1_key", "bottom right");
    if (use_truth)
        snprintf(caption, sizeof caption,
                 "Exact residual |ground truth - expansion| of the second-order (solid) and third-order (dashed) expansions against p, model %s, log-log. The ground truth is the enumeration of every Bernoulli mask or Gauss-Hermite quadrature, so there is no Monte Carlo noise. For Gaussian masks the third-order term vanishes and order 3 equals order 2. Slopes: least-squares fits to the points with p <= 0.3.",
                 model);
    else
        snprintf(caption, sizeof caption,
                 "Residual |MC - expansion| of the second-order (solid) and third-order (dashed) expansions against p, model %s, log-log; dotted lines: 1.96 standard errors.%s",
                 model,
                 has_truth ? " Monte Carlo version of the exact figure: below the dotted noise level the points are noise."
                           : " Slopes: least-squares fits to the points with p <= 0.3 above 2 standard errors; a series with fewer than two such points shows no slope.");
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", name, caption, &vars, list);

done:
    plot_set_free(&set);
    plot_vars_free(&vars);
    return status;
}

/* ---- R_diag and R_cross against p ---- */

static int
figure_penalty(const struct pnd_plot_options *opt, const struct pnd_table *t,
               const char *prefix, const char *model,
               struct pnd_figure_list *list)
{
    struct plot_set diag = {0}, cross = {0};
    struct plot_vars vars = {0};
    char name[128], data_name[160], caption[320], label[64], last_case[32] = "";
    int status = PND_OK, serial = 0;

    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        const char *scheme = text_of(t, r, "scheme");
        double p, rd, rc;

        if ((status = plot_sim_model_label(t, r, label, sizeof label)) != PND_OK)
            break;
        /* The order2 and order3 rows of a case repeat its R terms. */
        if (strcmp(label, model) != 0 || strcmp(text_of(t, r, "case"), last_case) == 0)
            continue;
        snprintf(last_case, sizeof last_case, "%s", text_of(t, r, "case"));
        if ((status = pnd_table_value_named(t, r, "p", &p)) != PND_OK
            || (status = value_or_missing(t, r, "R_diag", &rd)) != PND_OK
            || (status = value_or_missing(t, r, "R_cross", &rc)) != PND_OK)
            break;
        if (isnan(rd) || isnan(rc))
            continue;
        status = plot_set_add(&diag, scheme, plot_scheme_style(scheme), p, rd, 0, NAN);
        if (status == PND_OK)
            status = plot_set_add(&cross, scheme, plot_scheme_style(scheme), p, rc, 0, NAN);
    }
    if (status != PND_OK || diag.n == 0)
        goto done;

    snprintf(name, sizeof name, "%spenalty_%s", prefix, model);
    snprintf(data_name, sizeof data_name, "%s_diag", name);
    status = write_panel(opt, &diag, data_name, &vars, 1, "drop probability p",
                         "R_{diag} (loss units)", "diagonal term R_{diag}", false, false);
    snprintf(data_name, sizeof data_name, "%s_cross", name);
    if (status == PND_OK)
        status = write_panel(opt, &cross, data_name, &vars, 2, "drop probability p",
                             "R_{cross} (loss units)", "cross-node term R_{cross}",
                             false, false);
    for (size_t i = 0; i < diag.n && status == PND_OK; i++) {
        status = plot_vars_series(&vars, 1, ++serial, "lp", diag.series[i].style,
                                  (int) i, 2, 0, diag.series[i].label);
        if (status == PND_OK)
            status = plot_vars_series(&vars, 2, serial, "lp", cross.series[i].style,
                                      (int) i, 2, 0, cross.series[i].label);
    }
    if (status == PND_OK)
        status = plot_vars_set(&vars, "np", "2");
    /* One key for both panels: R_diag rises from the bottom left, so the
     * top left of the left panel is free, while R_cross may lie anywhere. */
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p2_key", "off");
    snprintf(caption, sizeof caption,
             "Second-order penalty terms against p, model %s: R_diag (left), the same for every scheme, and the cross-node term R_cross (right), zero for the per-connection schemes.",
             model);
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", name, caption, &vars, list);

done:
    plot_set_free(&diag);
    plot_set_free(&cross);
    plot_vars_free(&vars);
    return status;
}

/* ---- Monte Carlo convergence ---- */

static int
figure_convergence(const struct pnd_plot_options *opt, const struct pnd_table *t,
                   const char *prefix, const char *model,
                   struct pnd_figure_list *list)
{
    struct plot_set set = {0};
    struct plot_vars vars = {0};
    char name[128], caption[320], label[96], model_label[64];
    double guide_n = 0, guide_se = 0, n_max = 0;
    int status = PND_OK, serial = 0;

    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        const char *scheme = text_of(t, r, "scheme");
        double draws, mean, se, analytic;

        if ((status = plot_sim_model_label(t, r, model_label, sizeof model_label)) != PND_OK)
            break;
        if (strcmp(model_label, model) != 0
            || !kind_is_exact(text_of(t, r, "analytic_kind")))
            continue;
        if ((status = pnd_table_value_named(t, r, "draws", &draws)) != PND_OK
            || (status = pnd_table_value_named(t, r, "mc_mean", &mean)) != PND_OK
            || (status = pnd_table_value_named(t, r, "mc_se", &se)) != PND_OK
            || (status = pnd_table_value_named(t, r, "analytic", &analytic)) != PND_OK)
            break;
        /* The unmasked network has no noise: nothing to show on log axes. */
        if (se <= 0)
            continue;
        if (guide_n == 0 || draws < guide_n) {
            guide_n = draws;
            guide_se = se;
        }
        if (draws > n_max)
            n_max = draws;
        snprintf(label, sizeof label, "%s |MC - exact|", scheme);
        if (fabs(mean - analytic) > 0)
            status = plot_set_add(&set, label, plot_scheme_style(scheme), draws,
                                  fabs(mean - analytic), 0, NAN);
        snprintf(label, sizeof label, "%s SE", scheme);
        if (status == PND_OK)
            status = plot_set_add(&set, label, plot_scheme_style(scheme), draws,
                                  se, 0, NAN);
    }
    if (status != PND_OK || set.n == 0 || n_max <= guide_n)
        goto done;

    /* The guide C / sqrt(N) passes through the first standard error. */
    for (double n = guide_n; n <= n_max * 1.0001; n *= 2)
        if ((status = plot_set_add(&set, "1/sqrt(N)", PLOT_STYLE_GUIDE, n,
                                   guide_se * sqrt(guide_n / n), 0, NAN)) != PND_OK)
            goto done;

    snprintf(name, sizeof name, "%sconvergence_%s", prefix, model);
    status = write_panel(opt, &set, name, &vars, 1, "Monte Carlo draws N",
                         "error and standard error (loss units)", model, true, true);
    for (size_t i = 0; i < set.n && status == PND_OK; i++) {
        const struct plot_series *s = &set.series[i];
        bool is_se = strstr(s->label, " SE") != NULL;
        bool guide = s->style == PLOT_STYLE_GUIDE;

        status = plot_vars_series(&vars, 1, ++serial, guide ? "l" : (is_se ? "l" : "lp"),
                                  s->style, (int) i, 2, guide ? 2 : (is_se ? 4 : 1),
                                  s->label);
    }
    snprintf(caption, sizeof caption,
             "Monte Carlo convergence, model %s: |MC - exact| (points) and the standard error (dashed) against the number of draws N, with a 1/sqrt(N) guide.",
             model);
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p1_key", "bottom left");
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", name, caption, &vars, list);

done:
    plot_set_free(&set);
    plot_vars_free(&vars);
    return status;
}

/* ---- mini-batch loss variance ---- */

static int
add_batch_point(struct plot_set *set, const struct pnd_table *t, size_t r,
                const char *scheme, double n, const char *mc, const char *se,
                const char *exact)
{
    double v, v_se, v_exact;

    PND_TRY(value_or_missing(t, r, mc, &v));
    PND_TRY(value_or_missing(t, r, se, &v_se));
    PND_TRY(value_or_missing(t, r, exact, &v_exact));
    if (isnan(v) || isnan(v_se))
        return PND_OK;
    return plot_set_add(set, scheme, plot_scheme_style(scheme), n, v,
                        PND_Z95 * v_se, v_exact);
}

static int
figure_batch(const struct pnd_plot_options *opt, const struct pnd_table *t,
             const char *prefix, const char *model, struct pnd_figure_list *list)
{
    struct plot_set per_sample = {0}, shared = {0};
    struct plot_vars vars = {0};
    char name[128], data_name[160], caption[320], label[64], last_case[32] = "";
    int status = PND_OK, serial = 0;

    for (size_t r = 0; r < t->n_rows && status == PND_OK; r++) {
        const char *scheme = text_of(t, r, "scheme");
        double n;

        if ((status = plot_sim_model_label(t, r, label, sizeof label)) != PND_OK)
            break;
        if (strcmp(label, model) != 0 || strcmp(scheme, "none") == 0
            || strcmp(text_of(t, r, "case"), last_case) == 0)
            continue;
        snprintf(last_case, sizeof last_case, "%s", text_of(t, r, "case"));
        if ((status = pnd_table_value_named(t, r, "n", &n)) != PND_OK)
            break;
        status = add_batch_point(&per_sample, t, r, scheme, n,
                                 "batch_var_per_sample_mc", "batch_var_per_sample_se",
                                 "batch_var_per_sample_exact");
        if (status == PND_OK)
            status = add_batch_point(&shared, t, r, scheme, n, "batch_var_shared_mc",
                                     "batch_var_shared_se", "batch_var_shared_exact");
    }
    if (status != PND_OK || per_sample.n == 0 || shared.n == 0)
        goto done;

    snprintf(name, sizeof name, "%sbatchvar_%s", prefix, model);
    snprintf(data_name, sizeof data_name, "%s_per_sample", name);
    status = write_panel(opt, &per_sample, data_name, &vars, 1, "batch size n (samples)",
                         "Var[L] (squared loss units)", "a fresh mask per sample (lines: exact, points: Monte Carlo)",
                         true, true);
    snprintf(data_name, sizeof data_name, "%s_shared", name);
    if (status == PND_OK)
        status = write_panel(opt, &shared, data_name, &vars, 2, "batch size n (samples)",
                             "Var[L] (squared loss units)", "one mask shared by the batch (lines: exact, points: Monte Carlo)",
                             true, true);
    for (int panel = 1; panel <= 2 && status == PND_OK; panel++) {
        const struct plot_set *set = panel == 1 ? &per_sample : &shared;

        serial = 0;
        for (size_t i = 0; i < set->n && status == PND_OK; i++) {
            status = plot_vars_series(&vars, panel, ++serial, "pe", set->series[i].style,
                                      (int) i, 2, 1, set->series[i].label);
            if (status == PND_OK)
                status = plot_vars_series(&vars, panel, ++serial, "l",
                                          set->series[i].style, (int) i, 4, 0, "");
        }
    }
    if (status == PND_OK)
        status = plot_vars_set(&vars, "np", "2");
    /* Both panels have the same schemes: one key, beside the right panel.
     * Batch sizes are powers of two: tics at each doubling. */
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p1_key", "off");
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p2_key", "outside right top");
    for (int panel = 1; panel <= 2 && status == PND_OK; panel++) {
        char var[32];

        snprintf(var, sizeof var, "p%d_xstep", panel);
        status = plot_vars_set(&vars, var, "2");
        snprintf(var, sizeof var, "p%d_xformat", panel);
        if (status == PND_OK)
            status = plot_vars_set(&vars, var, "%%g");
    }
    snprintf(caption, sizeof caption,
             "Variance of the mini-batch loss against the batch size n, model %s: a fresh mask per sample (left) and one mask shared by the batch (right); exact values (lines) and Monte Carlo estimates (points, 95%% intervals).",
             model);
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", name, caption, &vars, list);

done:
    plot_set_free(&per_sample);
    plot_set_free(&shared);
    plot_vars_free(&vars);
    return status;
}

/* ---- every figure of a table ---- */

int
plot_sim_table(const struct pnd_plot_options *opt, const struct pnd_table *t,
               const char *prefix, struct pnd_figure_list *list)
{
    char models[MAX_MODELS][64];
    size_t n_models = 0, n_p, n_draws, n_batch;
    bool has_truth = false;

    if (pnd_table_column(t, "analytic_kind") < 0 || pnd_table_column(t, "mc_mean") < 0)
        PND_ERROR(PND_EFORMAT, "%s is not a simulator TSV: it lacks the columns analytic_kind and mc_mean",
                  t->path);
    for (size_t r = 0; r < t->n_rows; r++) {
        char label[64];
        size_t j;

        PND_TRY(plot_sim_model_label(t, r, label, sizeof label));
        /* An exact row right before an order2 row of the same case:
         * the simulator ran with --expansions true. */
        has_truth |= r > 0 && strcmp(text_of(t, r, "analytic_kind"), "order2") == 0
                     && kind_is_exact(text_of(t, r - 1, "analytic_kind"))
                     && strcmp(text_of(t, r, "case"), text_of(t, r - 1, "case")) == 0;
        for (j = 0; j < n_models && strcmp(models[j], label) != 0; j++)
            continue;
        if (j == n_models && n_models < MAX_MODELS)
            snprintf(models[n_models++], sizeof models[0], "%s", label);
    }
    PND_TRY(count_distinct(t, "p", &n_p));
    PND_TRY(count_distinct(t, "draws", &n_draws));
    PND_TRY(count_distinct(t, "n", &n_batch));

    for (size_t m = 0; m < n_models; m++) {
        if (n_p >= 2) {
            PND_TRY(figure_loss(opt, t, prefix, models[m], list));
            if (has_truth)
                PND_TRY(figure_residual(opt, t, prefix, models[m], true, true, list));
            PND_TRY(figure_residual(opt, t, prefix, models[m], false, has_truth, list));
            PND_TRY(figure_penalty(opt, t, prefix, models[m], list));
        }
        if (n_draws >= 3)
            PND_TRY(figure_convergence(opt, t, prefix, models[m], list));
        if (n_batch >= 2)
            PND_TRY(figure_batch(opt, t, prefix, models[m], list));
    }
    if (n_p < 2 && n_draws < 3 && n_batch < 2)
        pnd_log(PND_LOG_INFO, "%s: no sweep over p, draws or n, so no figure", t->path);
    return PND_OK;
}

int
pnd_plot_sim(const struct pnd_plot_options *opt, const char *tsv_path,
             const char *prefix, struct pnd_figure_list *list)
{
    struct pnd_table *t;
    int status;

    PND_TRY(pnd_plot_check_gnuplot(opt));
    PND_TRY(pnd_table_read(tsv_path, &t));
    status = plot_sim_table(opt, t, prefix ? prefix : "", list);
    pnd_table_free(t);
    return status;
}
