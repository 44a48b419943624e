/* Helpers shared by the figure builders: series of points written as
 * gnuplot data blocks, and the variables handed to a template. Not part
 * of the public API. */
#ifndef PND_PLOT_INTERNAL_H
#define PND_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "pnd/report.h"

/* 95% normal interval half-width per standard error. */
#define PND_Z95 1.96

/* Maximum series in one data file and maximum variables of one gnuplot run. */
#define PLOT_MAX_SERIES 64
#define PLOT_MAX_VARS 512

/* Line styles of styles.gp that are not schemes. */
#define PLOT_STYLE_REFERENCE 11
#define PLOT_STYLE_GUIDE 12
#define PLOT_STYLE_ZERO 13
#define PLOT_STYLE_SECOND 14

int pnd_figure_list_add(struct pnd_figure_list *list, const char *name,
                        const char *caption);

/* One point of a series: x, y, the 95% half-width of y, and a reference
 * value (the analytic value), NAN when there is none: the data file shows
 * gnuplot's missing-value marker '?' there. */
struct plot_point {
    double x, y, e95, ref;
};

struct plot_series {
    char label[96];            /* key of the series, unique in its set */
    int style;                 /* line style of styles.gp */
    size_t n, cap;
    struct plot_point *points; /* (cap) */
};

/* Series of one data file; zero-initialise, free with plot_set_free. */
struct plot_set {
    size_t n;
    struct plot_series series[PLOT_MAX_SERIES];
};

/* Add a point to the series called label, created with style when new. */
int plot_set_add(struct plot_set *set, const char *label, int style,
                 double x, double y, double e95, double ref);
/* Index of the series called label, or -1. */
int plot_set_find(const struct plot_set *set, const char *label);
/* Sort every series by x and write the set as gnuplot data blocks (one
 * per series, separated by two blank lines) to path, atomically. Every
 * value must be finite, except ref, which may be NAN (missing). */
int plot_set_write(struct plot_set *set, const char *path);
void plot_set_free(struct plot_set *set);

/* Name and value strings for one gnuplot run. */
struct plot_vars {
    size_t n;
    char *pairs[2 * PLOT_MAX_VARS];   /* name, value, name, value, ... (owned) */
};

int plot_vars_set(struct plot_vars *vars, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void plot_vars_free(struct plot_vars *vars);

/* Set the variables of panel `panel` (from 1) of xy.gp: its data file,
 * axis labels, title and logarithmic axes. */
int plot_vars_panel(struct plot_vars *vars, int panel, const char *data_path,
                    const char *xlabel, const char *ylabel, const char *title,
                    bool logx, bool logy);

/* Set the variables of series `serial` (from 1) of a panel of xy.gp: kind
 * ("pe", "le", "l", "lp", "p", "band"), line style, data block (from 0), y
 * column, dash type and key title. The call with the highest serial sets
 * the panel's series count, so call in increasing order. */
int plot_vars_series(struct plot_vars *vars, int panel, int serial,
                     const char *kind, int style, int block, int column,
                     int dash, const char *title);

/* Draw with template and vars, and add the figure to list. */
int plot_draw_vars(const struct pnd_plot_options *opt, const char *template,
                   const char *name, const char *caption,
                   const struct plot_vars *vars, struct pnd_figure_list *list);

/* dir/name into buf; PND_EINVAL when it does not fit. */
int plot_join(char *buf, size_t size, const char *dir, const char *name);

/* opt->out_dir/data/NAME.dat, creating the data folder. */
int plot_data_path(const struct pnd_plot_options *opt, const char *name,
                   char *buf, size_t size);

/* Line style (1-7) of a scheme name; PLOT_STYLE_REFERENCE for an unknown name. */
int plot_scheme_style(const char *scheme);

/* Every figure of a simulator table, file names starting with prefix. */
int plot_sim_table(const struct pnd_plot_options *opt,
                   const struct pnd_table *table, const char *prefix,
                   struct pnd_figure_list *list);

/* "model" or "model-act" (act other than identity) of a simulator row. */
int plot_sim_model_label(const struct pnd_table *table, size_t row, char *buf,
                         size_t size);

/* Ground truth of the case of simulator row r: the analytic value of the
 * case's exact, enumeration or quadrature row, which precedes its order2
 * and order3 rows when the simulator ran with --expansions true. NAN when
 * the case has none. */
int plot_sim_case_truth(const struct pnd_table *table, size_t r, double *truth);

/* Log-log fit of |residual| against p for one model, scheme and order of
 * expansion of a simulator table. The residual is ground truth minus
 * expansion (standard error 0) where the table contains an exact,
 * enumeration or quadrature row beside the expansions (pnd sim
 * --expansions true), else Monte Carlo minus expansion. */
struct plot_residual_fit {
    char model[64], scheme[32], kind[16];   /* kind: "order2" or "order3" */
    size_t n_points;           /* rows of this model, scheme and kind */
    bool exact_truth;          /* residuals against the ground truth */
    double p_max;
    double max_abs_residual;   /* largest |residual| and its standard error */
    double max_residual_se;
    bool fitted;               /* at least two residuals above 2 SE */
    struct pnd_fit fit;        /* valid when fitted */
    double expected_slope;     /* 1 for Bernoulli masks, 2 for Gaussian */
};

/* Fit every (model, scheme, kind) of the table's order2 and order3 rows,
 * except scheme none; at most max_fits are stored. */
int plot_sim_residual_fits(const struct pnd_table *table,
                           struct plot_residual_fit *fits, size_t max_fits,
                           size_t *n_fits);

#endif
