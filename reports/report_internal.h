/* Parts of the report shared by the files of reports/. Not public API. */
#ifndef PND_REPORT_INTERNAL_H
#define PND_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pnd/report.h"

/* A table of text cells written as TSV, Markdown and LaTeX (booktabs). */
struct report_table {
    char name[64];          /* file stem: tables/NAME.tsv, .md, .tex */
    char caption[256];
    size_t n_cols;
    char **header;          /* (n_cols) owned */
    bool *numeric;          /* (n_cols) right-aligned in Markdown and LaTeX */
    size_t n_rows, cap;
    char **cells;           /* (cap, n_cols) owned */
};

/* header is a tab-separated list of column names; a name starting with '>'
 * marks a numeric column (the '>' is dropped). */
int report_table_init(struct report_table *t, const char *name,
                      const char *caption, const char *header);
void report_table_free(struct report_table *t);

/* Append a row of n_cols cells given as one tab-separated string. */
int report_table_add(struct report_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write dir/NAME.tsv, dir/NAME.md and dir/NAME.tex atomically. */
int report_table_write(const struct report_table *t, const char *dir);

/* Print the table as a Markdown pipe table, or as an HTML table. */
void report_table_markdown(const struct report_table *t, FILE *fp);
void report_table_html(const struct report_table *t, FILE *fp);

/* Provenance: versions, machine and times, as Markdown list items. */
struct report_provenance {
    char start_utc[32];     /* ISO 8601 */
    char machine[256];      /* uname: system, release, machine */
    char cpu[256];          /* model name from /proc/cpuinfo */
    long cores;             /* online processors */
    int threads;            /* OpenMP threads used */
    char libraries[1024];   /* library versions, "name version; ..." */
};

void report_provenance_init(struct report_provenance *prov, int threads);

#define REPORT_PATH_SIZE 4096
#define REPORT_MAX_SWEEPS 16

/* One simulator sweep of the report: DIR/sim/NAME.tsv. */
struct report_sweep {
    char name[64];
    char title[160];           /* section heading */
    char text[512];            /* what the sweep shows, for the report */
    char tsv[REPORT_PATH_SIZE];
    bool trained;              /* a network trained on Fashion-MNIST */
    bool reused;               /* its stored configuration matched */
    double elapsed_s;
    struct pnd_figure_list figures;
};

/* One training run: DIR/train/<scheme>[-p<P>]/seed<S>. */
struct report_run {
    char dir[REPORT_PATH_SIZE];
    char scheme[32];
    double p;
    unsigned long long seed;
    bool main;                 /* the scheme's comparison run (not the p sweep) */
    bool reused;
};

/* Everything the document needs. */
struct report_context {
    const struct pnd_report_config *cfg;
    const char *preset_name;
    char preset_text[1024];    /* sizes of the preset, for the report */
    char dir[REPORT_PATH_SIZE];
    char figures_dir[REPORT_PATH_SIZE];
    char tables_dir[REPORT_PATH_SIZE];
    struct report_sweep sweeps[REPORT_MAX_SWEEPS];
    size_t n_sweeps;
    struct report_run *runs;   /* (n_runs) */
    size_t n_runs;
    struct pnd_figure_list train_figures;
    struct report_provenance prov;
    double start_s;
    double train_s;            /* wall time of the training stage */
    size_t n_exact, n_exact_failed, n_approx;
    char expansion_text[4096]; /* what the exact residuals show, for the report */
};

/* Write the tables (tables/) and DIR/report.md and DIR/report.html;
 * counts the checks into ctx. */
int report_write_document(struct report_context *ctx);

#endif
