/* Figures and the report.
 *
 * Figures: the toolkit's results are TSV files with a header line of column
 * names and one row per case or epoch. The plot functions read them
 * (pnd_table) and check that every value they use is finite. They write the
 * data of each figure to DIR/data/NAME.dat and run gnuplot on a template
 * from the data directory (pnd_plot_data_dir) to draw DIR/NAME.pdf and
 * DIR/NAME.png, and DIR/NAME.svg on request. Every figure file is written under a temporary
 * name and renamed when gnuplot succeeded, so an interrupted run leaves no
 * half-drawn figure.
 *
 * Report: pnd_report_run runs the simulator sweeps and the trainer of a
 * preset, reuses finished run directories whose stored resolved
 * configuration matches, and writes DIR/report.md, DIR/report.html, the
 * figures and the tables (TSV, Markdown and LaTeX). docs/report.md
 * describes every figure and table.
 */
#ifndef PND_REPORT_H
#define PND_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- TSV tables ---- */

/* A TSV file in memory. Lines starting with '#' and blank lines are
 * skipped, and the first other line contains the column names. */
struct pnd_table {
    char *path;            /* file name, for messages (owned) */
    size_t n_rows, n_cols;
    char **names;          /* (n_cols) column names */
    char **cells;          /* (n_rows, n_cols) cell text, row-major */
    size_t *lines;         /* (n_rows) line number of each row in the file */
    char *text;            /* file contents that names and cells point into */
};

/* Read path into a new table (caller frees with pnd_table_free). A row
 * whose number of cells differs from the header is PND_EFORMAT. */
int pnd_table_read(const char *path, struct pnd_table **result);
void pnd_table_free(struct pnd_table *table);   /* NULL is a no-op */

/* Index of the column called name, or -1 when there is none. */
int pnd_table_column(const struct pnd_table *table, const char *name);

/* Cell text of (row, col); col must be a valid index. */
const char *pnd_table_cell(const struct pnd_table *table, size_t row, int col);

/* True for a cell that contains no value: empty, "-" or "NA". */
bool pnd_table_missing(const struct pnd_table *table, size_t row, int col);

/* Parse cell (row, col) as a number. PND_ENUMERIC for NaN or Inf and
 * PND_EFORMAT for text that is not a number; both messages name the file,
 * line and column. */
int pnd_table_value(const struct pnd_table *table, size_t row, int col,
                    double *value);

/* Like pnd_table_value for the column called name; PND_EFORMAT, naming
 * the column, when the table has no such column. */
int pnd_table_value_named(const struct pnd_table *table, size_t row,
                          const char *name, double *value);

/* ---- Straight-line fits ---- */

/* Least-squares line through (log x, log y): y ~ C x^slope. The standard
 * errors come from the scatter of the points about the line (GSL's
 * gsl_fit_linear); they are zero for n == 2. */
struct pnd_fit {
    double slope, slope_se;
    double intercept, intercept_se;   /* of log y at log x = 0 (natural log) */
    size_t n;                         /* points used */
};

/* Fit n points with x > 0 and y > 0; PND_EINVAL for fewer than two points
 * or a point that is not positive. */
int pnd_fit_loglog(const double *x, const double *y, size_t n,
                   struct pnd_fit *result);

/* ---- Figures ---- */

enum pnd_plot_format {
    PND_PLOT_PDF = 1,      /* pdfcairo, for papers */
    PND_PLOT_PNG = 2,      /* pngcairo, for the report */
    PND_PLOT_SVG = 4       /* svg, on request */
};

struct pnd_plot_options {
    const char *out_dir;   /* figures go here, their data to out_dir/data */
    unsigned formats;      /* bitwise or of enum pnd_plot_format */
    const char *gnuplot;   /* NULL: $PND_GNUPLOT, else the configured program */
    const char *data_dir;  /* NULL: found by pnd_plot_data_dir */
};

/* PDF and PNG into out_dir, gnuplot and templates found at run time. */
void pnd_plot_options_init(struct pnd_plot_options *opt, const char *out_dir);

/* One figure drawn: the base name of its files and a caption. */
struct pnd_figure {
    char name[96];         /* NAME of NAME.pdf, NAME.png (and NAME.svg) */
    char caption[320];
};

/* A growing list of figures; zero-initialise, free with pnd_figure_list_free. */
struct pnd_figure_list {
    size_t n, cap;
    struct pnd_figure *items;   /* (cap) */
};

void pnd_figure_list_free(struct pnd_figure_list *list);

/* Directory of the gnuplot templates: $PND_DATA_DIR when set, else the
 * installed $(pkgdatadir) when it contains them, else plots/ in the source
 * tree (running uninstalled). PND_EUNAVAIL, naming every place searched,
 * when none contains styles.gp. */
int pnd_plot_data_dir(char *buf, size_t size);

/* PND_EUNAVAIL, naming the program and its Debian package, unless the
 * gnuplot program of opt (or PND_GNUPLOT) can be executed. */
int pnd_plot_check_gnuplot(const struct pnd_plot_options *opt);

/* Draw one figure: run gnuplot on template (a file name in the data
 * directory) once per format, with the variables n_vars pairs
 * vars[2j] = vars[2j + 1] set as gnuplot strings, plus term, out and
 * pnd_data_dir. Checks gnuplot's exit status and that each output file is
 * non-empty. PND_EUNAVAIL when gnuplot cannot be run. */
int pnd_plot_draw(const struct pnd_plot_options *opt, const char *template,
                  const char *name, const char *const *vars, size_t n_vars);

/* Draw every figure that a simulator TSV supports: expected loss against p,
 * expansion residuals with fitted slopes (against the ground truth, and
 * against MC in a second figure, when the TSV was written with
 * --expansions true), MC convergence, mini-batch variance, R_diag and
 * R_cross. A figure whose columns are absent is
 * skipped. Appends the figures drawn to list. */
int pnd_plot_sim(const struct pnd_plot_options *opt, const char *tsv_path,
                 const char *prefix, struct pnd_figure_list *list);

/* Draw the training figures of n_runs trainer run directories: learning
 * curves, co-adaptation statistics, correlation heatmaps and the
 * generalisation gap. Runs of the same scheme and p are seeds, summarised
 * by their mean and 95% t-interval. */
int pnd_plot_train(const struct pnd_plot_options *opt,
                   const char *const *run_dirs, size_t n_runs,
                   struct pnd_figure_list *list);

/* Redraw from existing results: path is a simulator TSV, a trainer run
 * directory or a report directory (its simulator TSV files and trainer runs). */
int pnd_plot_path(const struct pnd_plot_options *opt, const char *path,
                  struct pnd_figure_list *list);

/* ---- The report ---- */

enum pnd_report_preset {
    PND_PRESET_QUICK = 0,  /* about a minute: small subset, few draws */
    PND_PRESET_DEFAULT,    /* about ten minutes on two cores */
    PND_PRESET_PAPER       /* more seeds, epochs and draws */
};

extern const char *const pnd_report_preset_names[];   /* NULL-terminated */

struct pnd_report_config {
    enum pnd_report_preset preset;
    const char *out_dir;       /* report directory, created when missing */
    int threads;               /* OpenMP threads for the runs; 0: default */
    uint64_t seed;             /* base seed of every sweep and run */
    unsigned formats;          /* figure formats, PDF and PNG by default */
    const char *command_line;  /* recorded under provenance, or NULL */
};

void pnd_report_config_init(struct pnd_report_config *cfg);

struct pnd_report_result {
    size_t n_exact;            /* exact checks in the verification table */
    size_t n_exact_failed;     /* of those, with |z| > 4 */
    size_t n_approx;           /* approximate checks (residuals) */
    size_t n_figures;
    double wall_s;             /* wall time of the whole job */
};

/* Run the preset and write the report. Returns PND_OK when the report was
 * written, even when exact checks failed. result->n_exact_failed counts them. */
int pnd_report_run(const struct pnd_report_config *cfg,
                   struct pnd_report_result *result);

#ifdef __cplusplus
}
#endif
#endif
