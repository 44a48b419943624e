/* TSV tables in memory and the log-log line fits printed in figure keys. */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_fit.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/report.h"

void
pnd_table_free(struct pnd_table *table)
{
    if (table == NULL)
        return;
    free(table->path);
    free(table->names);
    free(table->cells);
    free(table->lines);
    free(table->text);
    free(table);
}

/* Split line at tabs in place; store at most max cell pointers in cells
 * and return the number of cells found (which may exceed max). */
static size_t
split_tabs(char *line, char **cells, size_t max)
{
    size_t n = 0;
    char *p = line;

    for (;;) {
        char *tab = strchr(p, '\t');

        if (n < max)
            cells[n] = p;
        n++;
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static size_t
count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

int
pnd_table_read(const char *path, struct pnd_table **result)
{
    struct pnd_table *t = calloc(1, sizeof *t);
    size_t len, max_rows, line_no = 0;
    char *line, *next;
    int status;

    *result = NULL;
    if (t == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %s", path);
    t->path = strdup(path);
    if (t->path == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory reading %s", path);
        goto fail;
    }
    status = pnd_read_file(path, &t->text, &len);
    if (status != PND_OK)
        goto fail;
    if (strlen(t->text) != len) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s contains a NUL byte: not a TSV text file", path);
        goto fail;
    }

    /* Rows are at most the number of lines; cells at most rows * columns. */
    max_rows = count_char(t->text, '\n') + 1;
    for (line = t->text; line != NULL; line = next) {
        size_t n;

        line_no++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (line[0] != '\0' && line[strlen(line) - 1] == '\r')
            line[strlen(line) - 1] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;

        if (t->names == NULL) {
            t->n_cols = count_char(line, '\t') + 1;
            t->names = malloc(t->n_cols * sizeof *t->names);
            t->cells = malloc(max_rows * t->n_cols * sizeof *t->cells);
            t->lines = malloc(max_rows * sizeof *t->lines);
            if (t->names == NULL || t->cells == NULL || t->lines == NULL) {
                status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                       "out of memory reading %s", path);
                goto fail;
            }
            split_tabs(line, t->names, t->n_cols);
            continue;
        }

        n = split_tabs(line, t->cells + t->n_rows * t->n_cols, t->n_cols);
        if (n != t->n_cols) {
            status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                   "%s:%zu: %zu tab-separated fields, but the header has %zu columns",
                                   path, line_no, n, t->n_cols);
            goto fail;
        }
        t->lines[t->n_rows++] = line_no;
    }
    if (t->names == NULL) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s has no header line of column names", path);
        goto fail;
    }
    *result = t;
    return PND_OK;

fail:
    pnd_table_free(t);
    return status;
}

int
pnd_table_column(const struct pnd_table *table, const char *name)
{
    for (size_t j = 0; j < table->n_cols; j++)
        if (strcmp(table->names[j], name) == 0)
            return (int) j;
    return -1;
}

const char *
pnd_table_cell(const struct pnd_table *table, size_t row, int col)
{
    return table->cells[row * table->n_cols + (size_t) col];
}

bool
pnd_table_missing(const struct pnd_table *table, size_t row, int col)
{
    const char *s = pnd_table_cell(table, row, col);

    return s[0] == '\0' || strcmp(s, "-") == 0 || strcmp(s, "NA") == 0;
}

int
pnd_table_value(const struct pnd_table *table, size_t row, int col,
                double *value)
{
    const char *s = pnd_table_cell(table, row, col);
    char *end;

    errno = 0;
    *value = strtod(s, &end);
    if (end == s || *end != '\0')
        PND_ERROR(PND_EFORMAT, "%s:%zu: column %s contains '%s', which is not a number",
                  table->path, table->lines[row], table->names[col], s);
    if (!isfinite(*value))
        PND_ERROR(PND_EFORMAT, "%s:%zu: column %s contains %s, which is not finite, so it is not plotted (rerun the computation that wrote it)",
                  table->path, table->lines[row], table->names[col], s);
    return PND_OK;
}

int
pnd_table_value_named(const struct pnd_table *table, size_t row,
                      const char *name, double *value)
{
    int col = pnd_table_column(table, name);

    if (col < 0)
        PND_ERROR(PND_EFORMAT, "%s has no column '%s'", table->path, name);
    return pnd_table_value(table, row, col, value);
}

int
pnd_fit_loglog(const double *x, const double *y, size_t n,
               struct pnd_fit *result)
{
    double *lx = NULL, *ly = NULL;  /* (n) natural logarithms */
    double c0, c1, cov00, cov01, cov11, sumsq;

    if (n < 2)
        PND_ERROR(PND_EINVAL, "a log-log fit needs at least two points, got %zu", n);
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0) || !(y[i] > 0) || !isfinite(x[i]) || !isfinite(y[i]))
            PND_ERROR(PND_EINVAL, "log-log fit: point %zu is (%g, %g); both must be positive and finite",
                      i, x[i], y[i]);
    lx = malloc(n * sizeof *lx);
    ly = malloc(n * sizeof *ly);
    if (lx == NULL || ly == NULL) {
        free(lx);
        free(ly);
        PND_ERROR(PND_ENOMEM, "out of memory in a log-log fit of %zu points", n);
    }

    for (size_t i = 0; i < n; i++) {
        lx[i] = log(x[i]);
        ly[i] = log(y[i]);
    }
    gsl_fit_linear(lx, 1, ly, 1, n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    free(lx);
    free(ly);

    /* With two points the line is exact and GSL divides by n - 2 = 0. */
    result->slope = c1;
    result->intercept = c0;
    result->slope_se = n > 2 ? sqrt(cov11) : 0.0;
    result->intercept_se = n > 2 ? sqrt(cov00) : 0.0;
    result->n = n;
    if (!isfinite(result->slope) || !isfinite(result->slope_se))
        PND_ERROR(PND_ENUMERIC, "log-log fit of %zu points gave slope %g (SE %g): are all x equal?",
                  n, result->slope, result->slope_se);
    return PND_OK;
}
