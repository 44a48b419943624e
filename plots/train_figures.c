/* Figures of trainer run directories (docs/train.md): learning curves,
 * co-adaptation statistics against epoch, hidden-unit correlation
 * heatmaps and the generalisation gap against p.
 *
 * Runs with the same scheme and p are seeds of one configuration: every
 * curve shows their mean with a shaded 95% t-interval (pnd_train_mean_ci),
 * which is wider than 1.96 standard errors when there are few seeds.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/train.h"
#include "plots/plot_internal.h"

#define PATH_SIZE 4096
#define MAX_GROUPS 32

/* One run directory: its configuration and per-epoch log. */
struct run {
    const char *dir;
    char scheme[32];
    double p;
    struct pnd_table *log;
    int group;               /* index into the groups */
};

/* Runs with the same scheme and p. The learning curves, co-adaptation
 * statistics and heatmaps show only the main group of each scheme, which
 * is the p of its first run in the list. The generalisation gap shows
 * every group. */
struct group {
    char label[64];          /* "scheme p=P", or "none" */
    char scheme[32];
    double p;
    int style;
    bool main;
    bool swept;              /* the scheme has runs at several p */
};

/* Scheme and p of the first hidden layer from a finished run's
 * summary.json. */
static int
read_summary(const char *path, struct run *run)
{
    struct json_object *root = json_object_from_file(path), *layers, *layer;
    struct json_object *scheme, *p;
    int status = PND_OK;

    if (root == NULL)
        PND_ERROR(PND_EFORMAT, "cannot parse %s: %s", path, json_util_get_last_err());
    if (!json_object_object_get_ex(root, "layers", &layers)
        || (layer = json_object_array_get_idx(layers, 0)) == NULL
        || !json_object_object_get_ex(layer, "scheme", &scheme)
        || !json_object_object_get_ex(layer, "p", &p))
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s lacks layers[0].scheme or layers[0].p", path);
    if (status == PND_OK) {
        snprintf(run->scheme, sizeof run->scheme, "%s", json_object_get_string(scheme));
        run->p = strcmp(run->scheme, "none") == 0 ? 0.0 : json_object_get_double(p);
    }
    json_object_put(root);
    return status;
}

/* Scheme and p of a run still going: its config.ini. */
static int
read_config(const char *path, struct run *run)
{
    struct pnd_train_config cfg;
    int status;

    PND_TRY(pnd_train_config_init(&cfg));
    status = pnd_train_config_read(&cfg, path);
    if (status == PND_OK) {
        snprintf(run->scheme, sizeof run->scheme, "%s", pnd_scheme_name(cfg.scheme));
        run->p = cfg.scheme == PND_SCHEME_NONE ? 0.0 : cfg.p;
    }
    pnd_train_config_free(&cfg);
    return status;
}

static int
read_run(const char *dir, struct run *run)
{
    char path[PATH_SIZE];

    run->dir = dir;
    run->log = NULL;
    PND_TRY(plot_join(path, sizeof path, dir, "summary.json"));
    if (access(path, R_OK) == 0) {
        PND_TRY(read_summary(path, run));
    } else {
        PND_TRY(plot_join(path, sizeof path, dir, "config.ini"));
        PND_TRY(read_config(path, run));
    }
    PND_TRY(plot_join(path, sizeof path, dir, "log.tsv"));
    return pnd_table_read(path, &run->log);
}

/* Position of a scheme name in the order of enum pnd_scheme (none first,
 * fixed-mask last); unknown names go after them. */
static int
scheme_rank(const char *name)
{
    enum pnd_scheme scheme;

    return pnd_scheme_parse(name, &scheme) == PND_OK ? (int) scheme
                                                     : PND_SCHEME_COUNT;
}

/* Orders the groups by scheme, as the report lists them, keeping the order
 * of first appearance within a scheme, and renumbers the runs' groups. So
 * pnd plot, which finds runs in the order of their folder names, draws the
 * legend of the report. */
static void
sort_groups(struct run *runs, size_t n_runs, struct group *groups, size_t n)
{
    struct group sorted[MAX_GROUPS];
    int rank[MAX_GROUPS], new_index[MAX_GROUPS];
    size_t k = 0;

    for (size_t g = 0; g < n; g++)
        rank[g] = scheme_rank(groups[g].scheme);
    for (int r = 0; r <= PND_SCHEME_COUNT; r++)
        for (size_t g = 0; g < n; g++)
            if (rank[g] == r) {
                new_index[g] = (int) k;
                sorted[k++] = groups[g];
            }
    memcpy(groups, sorted, n * sizeof *groups);
    for (size_t i = 0; i < n_runs; i++)
        runs[i].group = new_index[runs[i].group];
}

static int
group_runs(struct run *runs, size_t n_runs, struct group *groups,
           size_t *n_groups)
{
    size_t n = 0;

    for (size_t i = 0; i < n_runs; i++) {
        size_t g;

        for (g = 0; g < n; g++)
            if (strcmp(groups[g].scheme, runs[i].scheme) == 0 && groups[g].p == runs[i].p)
                break;
        if (g == n) {
            if (n == MAX_GROUPS)
                PND_ERROR(PND_EINVAL, "more than %d scheme and p combinations among the runs",
                          MAX_GROUPS);
            snprintf(groups[n].scheme, sizeof groups[n].scheme, "%s", runs[i].scheme);
            groups[n].p = runs[i].p;
            groups[n].style = plot_scheme_style(runs[i].scheme);
            n++;
        }
        runs[i].group = (int) g;
    }
    sort_groups(runs, n_runs, groups, n);

    for (size_t g = 0; g < n; g++) {
        groups[g].main = true;
        groups[g].swept = false;
        for (size_t h = 0; h < n; h++) {
            if (h == g || strcmp(groups[h].scheme, groups[g].scheme) != 0)
                continue;
            groups[g].swept = true;
            if (h < g)
                groups[g].main = false;
        }
        if (strcmp(groups[g].scheme, "none") == 0)
            snprintf(groups[g].label, sizeof groups[g].label, "none");
        else
            snprintf(groups[g].label, sizeof groups[g].label, "%s p=%g",
                     groups[g].scheme, groups[g].p);
    }
    *n_groups = n;
    return PND_OK;
}

/* Row of run's log for epoch e (from 1), or -1. */
static long
epoch_row(const struct run *run, long e)
{
    int col = pnd_table_column(run->log, "epoch");

    for (size_t r = 0; col >= 0 && r < run->log->n_rows; r++)
        if (atol(pnd_table_cell(run->log, r, col)) == e)
            return (long) r;
    return -1;
}

/* Add to set, per group, the mean over seeds of column against epoch with
 * its 95% t-interval, multiplied by factor. Series are named
 * "LABEL suffix". Returns PND_OK without points when the column is absent. */
static int
add_epoch_series(struct plot_set *set, struct run *runs, size_t n_runs,
                 const struct group *groups, size_t n_groups,
                 const char *column, const char *suffix, double factor)
{
    double values[64];   /* (seeds) of one group at one epoch */

    for (size_t g = 0; g < n_groups; g++) {
        char label[96];

        if (!groups[g].main)
            continue;
        snprintf(label, sizeof label, "%s%s%s", groups[g].label,
                 suffix[0] ? " " : "", suffix);
        for (long e = 1;; e++) {
            size_t m = 0;
            double mean, half;

            for (size_t i = 0; i < n_runs && m < 64; i++) {
                long r;

                if (runs[i].group != (int) g || pnd_table_column(runs[i].log, column) < 0)
                    continue;
                r = epoch_row(&runs[i], e);
                if (r < 0)
                    continue;
                PND_TRY(pnd_table_value_named(runs[i].log, (size_t) r, column, &values[m]));
                values[m++] *= factor;
            }
            if (m == 0)
                break;
            pnd_train_mean_ci(values, m, &mean, &half);
            PND_TRY(plot_set_add(set, label, groups[g].style, (double) e, mean, half, NAN));
        }
    }
    return PND_OK;
}

/* Set the series of panel `panel` for set: a band per series, dashed for
 * series whose label ends in "train". Only the other series get a key
 * entry, named by the scheme alone (the panel title explains the dashes),
 * so that the key has one entry per scheme. */
static int
band_series(struct plot_vars *vars, int panel, const struct plot_set *set)
{
    static const char validation[] = " validation";

    for (size_t i = 0; i < set->n; i++) {
        const char *label = set->series[i].label;
        size_t len = strlen(label), tail = sizeof validation - 1;
        bool train = len >= 5 && strcmp(label + len - 5, "train") == 0;
        char title[96];

        if (len >= tail && strcmp(label + len - tail, validation) == 0)
            len -= tail;
        snprintf(title, sizeof title, "%.*s", (int) len, label);
        PND_TRY(plot_vars_series(vars, panel, (int) i + 1, "band", set->series[i].style,
                                 (int) i, 2, train ? 2 : 1, train ? "" : title));
    }
    return PND_OK;
}

/* Key of the panel (a gnuplot key position, or "off" for a panel whose
 * series a neighbouring panel's key already names), and integer epoch
 * tics, about ten per axis. */
static int
epoch_panel_style(struct plot_vars *vars, int panel, const struct plot_set *set,
                  const char *key)
{
    char name[32];
    double max_epoch = 1;
    long step;

    for (size_t i = 0; i < set->n; i++)
        for (size_t j = 0; j < set->series[i].n; j++)
            if (set->series[i].points[j].x > max_epoch)
                max_epoch = set->series[i].points[j].x;
    step = (long) ceil(max_epoch / 10.0);
    snprintf(name, sizeof name, "p%d_key", panel);
    PND_TRY(plot_vars_set(vars, name, "%s", key));
    snprintf(name, sizeof name, "p%d_xstep", panel);
    return plot_vars_set(vars, name, "%ld", step < 1 ? 1 : step);
}

static int
write_set(const struct pnd_plot_options *opt, struct plot_set *set,
          const char *data_name, char *path, size_t size)
{
    PND_TRY(plot_data_path(opt, data_name, path, size));
    return plot_set_write(set, path);
}

static int
figure_curves(const struct pnd_plot_options *opt, struct run *runs,
              size_t n_runs, const struct group *groups, size_t n_groups,
              struct pnd_figure_list *list)
{
    struct plot_set loss = {0}, acc = {0};
    struct plot_vars vars = {0};
    char path[PATH_SIZE];
    int status;

    status = add_epoch_series(&loss, runs, n_runs, groups, n_groups, "train_loss", "train", 1.0);
    if (status == PND_OK)
        status = add_epoch_series(&loss, runs, n_runs, groups, n_groups, "val_loss", "validation", 1.0);
    if (status == PND_OK)
        status = add_epoch_series(&acc, runs, n_runs, groups, n_groups, "train_acc", "train", 100.0);
    if (status == PND_OK)
        status = add_epoch_series(&acc, runs, n_runs, groups, n_groups, "val_acc", "validation", 100.0);
    if (status != PND_OK || loss.n == 0 || acc.n == 0)
        goto done;

    status = write_set(opt, &loss, "train_curves_loss", path, sizeof path);
    if (status == PND_OK)
        status = plot_vars_panel(&vars, 1, path, "epoch", "cross-entropy loss (nats)",
                                 "loss (dashed: train, solid: validation)", false, false);
    if (status == PND_OK)
        status = band_series(&vars, 1, &loss);
    if (status == PND_OK)
        status = write_set(opt, &acc, "train_curves_accuracy", path, sizeof path);
    if (status == PND_OK)
        status = plot_vars_panel(&vars, 2, path, "epoch", "accuracy (%)",
                                 "accuracy (dashed: train, solid: validation)", false, false);
    if (status == PND_OK)
        status = band_series(&vars, 2, &acc);
    if (status == PND_OK)
        status = plot_vars_set(&vars, "np", "2");
    if (status == PND_OK)
        status = epoch_panel_style(&vars, 1, &loss, "off");
    if (status == PND_OK)
        status = epoch_panel_style(&vars, 2, &acc, "outside right top");
    /* Accuracy is a percentage: the axis and the t-intervals, which are
     * wide over few seeds, stay inside [0, 100]. */
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p2_ylo", "0");
    if (status == PND_OK)
        status = plot_vars_set(&vars, "p2_yhi", "100");
    if (status == PND_OK)
        status = plot_vars_set(&vars, "fig_w", "2.0");
    if (status == PND_OK)
        status = plot_draw_vars(opt, "xy.gp", "train_curves",
                                "Training curves per scheme: clean loss and accuracy on the training split (dashed) and the validation split (solid), mean over seeds with a shaded 95% t-interval, clipped to [0, 100] for the accuracy.",
                                &vars, list);

done:
    plot_set_free(&loss);
    plot_set_free(&acc);
    plot_vars_free(&vars);
    return status;
}

static int
figure_coadapt(const struct pnd_plot_options *opt, struct run *runs,
               size_t n_runs, const struct group *groups, size_t n_groups,
               struct pnd_figure_list *list)
{
    static const struct {
        const char *column, *ylabel, *title;
        const char *ylo, *yhi;   /* limits of the axis and the bands, or NULL */
    } panels[] = {
        {"L1_mean_abs_corr", "mean |C_{uv}|", "mean absolute correlation", "0", "1"},
        {"L1_decov", "DeCov (squared activation units)", "DeCov", "0", NULL},
        {"L1_pr", "participation ratio (units)", "participation ratio", "1", NULL},
        {"L1_R_cross", "R_{cross} (nats)", "Dropout-view cross term R_{cross}", NULL, NULL},
    };
    struct plot_vars vars = {0};
    int status = PND_OK, np = 0;

    for (size_t k = 0; k < sizeof panels / sizeof panels[0] && status == PND_OK; k++) {
        struct plot_set set = {0};
        char path[PATH_SIZE], data_name[64];

        status = add_epoch_series(&set, runs, n_runs, groups, n_groups,
                                  panels[k].column, "", 1.0);
        if (status == PND_OK && set.n > 0) {
            np++;
            snprintf(data_name, sizeof data_name, "train_coadapt_%s", panels[k].column);
            status = write_set(opt, &set, data_name, path, sizeof path);
            if (status == PND_OK)
                status = plot_vars_panel(&vars, np, path, "epoch", panels[k].ylabel,
                                         panels[k].title, false, false);
            if (status == PND_OK)
                status = band_series(&vars, np, &set);
            if (status == PND_OK)
                status = epoch_panel_style(&vars, np, &set,
                                           np == 2 ? "outside right top" : "off");
            if (status == PND_OK && panels[k].ylo != NULL) {
                snprintf(data_name, sizeof data_name, "p%d_ylo", np);
                status = plot_vars_set(&vars, data_name, "%s", panels[k].ylo);
            }
            if (status == PND_OK && panels[k].yhi != NULL) {
                snprintf(data_name, sizeof data_name, "p%d_yhi", np);
                status = plot_vars_set(&vars, data_name, "%s", panels[k].yhi);
            }
        }
        plot_set_free(&set);
    }
    if (status == PND_OK && np > 0) {
        status = plot_vars_set(&vars, "np", "%d", np);
        if (status == PND_OK && np > 2)
            status = plot_vars_set(&vars, "nrows", "2");
        if (status == PND_OK)
            status = plot_vars_set(&vars, "fig_w", "2.0");
        if (status == PND_OK)
            status = plot_draw_vars(opt, "xy.gp", "train_coadapt",
                                    "Co-adaptation statistics of the first hidden layer against epoch, on a fixed validation subset: mean absolute correlation, DeCov, participation ratio and the cross-node term R_cross as Dropout would see it (mean over seeds, 95% t-interval).",
                                    &vars, list);
    }
    plot_vars_free(&vars);
    return status;
}

/* Read a square correlation matrix (rows of tab-separated numbers; a
 * header line or '#' lines are skipped) and write it for gnuplot's
 * "matrix" format. Returns the matrix order in *h. */
static int
copy_matrix(const char *in_path, const char *out_path, size_t *h)
{
    struct pnd_atomic_file f;
    char *text, *line, *next;
    size_t rows = 0, cols = 0, line_no = 0;
    int status;

    *h = 0;
    PND_TRY(pnd_read_file(in_path, &text, NULL));
    status = pnd_atomic_open(&f, out_path);
    if (status != PND_OK) {
        free(text);
        return status;
    }
    for (line = text; line != NULL && status == PND_OK; line = next) {
        size_t n = 0;
        char *cell, *save;

        line_no++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        for (cell = strtok_r(line, "\t ", &save); cell != NULL && status == PND_OK;
             cell = strtok_r(NULL, "\t ", &save)) {
            char *end;
            double v = strtod(cell, &end);

            if (end == cell || *end != '\0') {
                /* A header line of unit names: skip it. */
                if (rows == 0 && n == 0)
                    break;
                status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                       "%s:%zu: '%s' is not a number", in_path, line_no, cell);
            } else if (!isfinite(v)) {
                status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                       "%s:%zu: correlation %s is not finite, so the heatmap was not drawn",
                                       in_path, line_no, cell);
            } else {
                fprintf(f.fp, "%s%.6g", n ? " " : "", v);
                n++;
            }
        }
        if (status != PND_OK || n == 0)
            continue;
        fputc('\n', f.fp);
        if (rows == 0)
            cols = n;
        else if (n != cols)
            status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                   "%s:%zu: %zu values, but the first row has %zu",
                                   in_path, line_no, n, cols);
        rows++;
    }
    free(text);
    if (status == PND_OK && (rows == 0 || rows != cols))
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s contains a %zu x %zu matrix, but a correlation matrix is square and not empty",
                               in_path, rows, cols);
    if (status != PND_OK) {
        pnd_atomic_abort(&f);
        return status;
    }
    *h = rows;
    return pnd_atomic_commit(&f);
}

static int
figure_heatmaps(const struct pnd_plot_options *opt, struct run *runs,
                size_t n_runs, const struct group *groups, size_t n_groups,
                struct pnd_figure_list *list)
{
    struct plot_vars vars = {0};
    int status = PND_OK, n = 0;
    size_t h = 0;

    for (size_t g = 0; g < n_groups && status == PND_OK; g++) {
        char in_path[PATH_SIZE], out_path[PATH_SIZE], data_name[96], name[16];

        /* The first seed of the group stands for it. */
        for (size_t i = 0; i < n_runs && groups[g].main; i++) {
            if (runs[i].group != (int) g)
                continue;
            snprintf(in_path, sizeof in_path, "%s/corr_L1.tsv", runs[i].dir);
            if (access(in_path, R_OK) != 0)
                break;
            snprintf(data_name, sizeof data_name, "train_corr_%.60s", groups[g].label);
            for (char *c = data_name; *c; c++)
                if (*c == ' ' || *c == '=')
                    *c = '_';
            status = plot_data_path(opt, data_name, out_path, sizeof out_path);
            if (status == PND_OK)
                status = copy_matrix(in_path, out_path, &h);
            n++;
            snprintf(name, sizeof name, "d%d", n);
            if (status == PND_OK)
                status = plot_vars_set(&vars, name, "%s", out_path);
            snprintf(name, sizeof name, "t%d", n);
            if (status == PND_OK)
                status = plot_vars_set(&vars, name, "%s", groups[g].label);
            break;
        }
    }
    if (status == PND_OK && n > 0) {
        char caption[320];

        snprintf(caption, sizeof caption,
                 "Pearson correlation of the %zu units of the first hidden layer at the end of training, on the validation statistics subset, one panel per scheme (first seed).",
                 h);
        status = plot_vars_set(&vars, "n", "%d", n);
        if (status == PND_OK)
            status = plot_draw_vars(opt, "heatmap.gp", "train_corr", caption, &vars, list);
    }
    plot_vars_free(&vars);
    return status;
}

/* Final value of column in run: the last row of its log. */
static int
final_value(const struct run *run, const char *column, double *value)
{
    if (run->log->n_rows == 0)
        PND_ERROR(PND_EFORMAT, "%s/log.tsv has no epochs", run->dir);
    return pnd_table_value_named(run->log, run->log->n_rows - 1, column, value);
}

static int
figure_gap(const struct pnd_plot_options *opt, struct run *runs, size_t n_runs,
           const struct group *groups, size_t n_groups,
           struct pnd_figure_list *list)
{
    struct plot_set set = {0};
    struct plot_vars vars = {0};
    char path[PATH_SIZE];
    int status = PND_OK;
    bool sweep = false;

    for (size_t g = 0; g < n_groups; g++)
        sweep |= groups[g].swept;
    if (!sweep)
        return PND_OK;

    for (size_t g = 0; g < n_groups && status == PND_OK; g++) {
        double values[64], mean, half;   /* (seeds) */
        size_t m = 0;

        /* A scheme trained at one p only is a single point: left out. */
        if (strcmp(groups[g].scheme, "none") == 0 || !groups[g].swept)
            continue;
        for (size_t i = 0; i < n_runs && m < 64 && status == PND_OK; i++)
            if (runs[i].group == (int) g && (status = final_value(&runs[i], "gap_acc", &values[m])) == PND_OK)
                values[m++] *= 100.0;
        if (status != PND_OK || m == 0)
            continue;
        pnd_train_mean_ci(values, m, &mean, &half);
        status = plot_set_add(&set, groups[g].scheme, groups[g].style, groups[g].p,
                              mean, half, NAN);
    }
    if (status == PND_OK && set.n > 0) {
        status = write_set(opt, &set, "train_gap", path, sizeof path);
        if (status == PND_OK)
            status = plot_vars_panel(&vars, 1, path, "drop probability p",
                                     "train - validation accuracy (percentage points)",
                                     "generalisation gap at the last epoch", false, false);
        for (size_t i = 0; i < set.n && status == PND_OK; i++)
            status = plot_vars_series(&vars, 1, (int) i + 1, "le", set.series[i].style,
                                      (int) i, 2, 1, set.series[i].label);
        if (status == PND_OK)
            status = plot_vars_set(&vars, "p1_key", "top right");
        if (status == PND_OK)
            status = plot_draw_vars(opt, "xy.gp", "train_gap",
                                    "Generalisation gap (training minus validation accuracy at the last epoch) against p, mean over seeds with 95% t-intervals.",
                                    &vars, list);
    }
    plot_set_free(&set);
    plot_vars_free(&vars);
    return status;
}

int
pnd_plot_train(const struct pnd_plot_options *opt, const char *const *run_dirs,
               size_t n_runs, struct pnd_figure_list *list)
{
    struct run *runs = calloc(n_runs ? n_runs : 1, sizeof *runs);
    struct group groups[MAX_GROUPS];
    size_t n_groups = 0;
    int status = PND_OK;

    if (runs == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %zu runs", n_runs);
    status = pnd_plot_check_gnuplot(opt);
    for (size_t i = 0; i < n_runs && status == PND_OK; i++)
        status = read_run(run_dirs[i], &runs[i]);
    if (status == PND_OK)
        status = group_runs(runs, n_runs, groups, &n_groups);
    if (status == PND_OK && n_runs > 0)
        status = figure_curves(opt, runs, n_runs, groups, n_groups, list);
    if (status == PND_OK && n_runs > 0)
        status = figure_coadapt(opt, runs, n_runs, groups, n_groups, list);
    if (status == PND_OK && n_runs > 0)
        status = figure_heatmaps(opt, runs, n_runs, groups, n_groups, list);
    if (status == PND_OK && n_runs > 0)
        status = figure_gap(opt, runs, n_runs, groups, n_groups, list);

    for (size_t i = 0; i < n_runs; i++)
        pnd_table_free(runs[i].log);
    free(runs);
    return status;
}
