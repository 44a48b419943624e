/* Report tables: one set of text cells written as TSV (for programs),
 * Markdown pipe tables (for report.md), HTML (for report.html, because
 * CommonMark has no tables) and LaTeX with booktabs rules (for papers). */
#include <config.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "reports/report_internal.h"

#define PATH_SIZE 4096

static size_t
split_count(const char *s)
{
    size_t n = 1;

    for (; *s; s++)
        n += *s == '\t';
    return n;
}

int
report_table_init(struct report_table *t, const char *name,
                  const char *caption, const char *header)
{
    char *copy = strdup(header), *save, *field;
    size_t j = 0;

    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->caption, sizeof t->caption, "%s", caption);
    t->n_cols = split_count(header);
    t->header = calloc(t->n_cols, sizeof *t->header);
    t->numeric = calloc(t->n_cols, sizeof *t->numeric);
    if (copy == NULL || t->header == NULL || t->numeric == NULL)
        goto nomem;
    for (field = strtok_r(copy, "\t", &save); field != NULL && j < t->n_cols;
         field = strtok_r(NULL, "\t", &save), j++) {
        t->numeric[j] = field[0] == '>';
        t->header[j] = strdup(field + t->numeric[j]);
        if (t->header[j] == NULL)
            goto nomem;
    }
    free(copy);
    return PND_OK;

nomem:
    free(copy);
    report_table_free(t);
    PND_ERROR(PND_ENOMEM, "out of memory creating table %s", name);
}

void
report_table_free(struct report_table *t)
{
    for (size_t j = 0; t->header != NULL && j < t->n_cols; j++)
        free(t->header[j]);
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->header);
    free(t->numeric);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int
report_table_add(struct report_table *t, const char *fmt, ...)
{
    char *line = NULL, *save, *field;
    va_list ap;
    size_t j = 0;
    int len;

    va_start(ap, fmt);
    len = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (len < 0)
        PND_ERROR(PND_ENOMEM, "out of memory adding a row to table %s", t->name);
    if (split_count(line) != t->n_cols) {
        size_t got = split_count(line);

        free(line);
        PND_ERROR(PND_EINVAL, "internal error: a row of table %s has %zu cells, the header %zu",
                  t->name, got, t->n_cols);
    }
    if (t->n_rows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        char **grown = realloc(t->cells, cap * t->n_cols * sizeof *grown);

        if (grown == NULL) {
            free(line);
            PND_ERROR(PND_ENOMEM, "out of memory adding a row to table %s", t->name);
        }
        t->cells = grown;
        t->cap = cap;
    }
    /* strsep keeps empty cells, which strtok would merge. */
    save = line;
    while ((field = strsep(&save, "\t")) != NULL && j < t->n_cols) {
        char *cell = strdup(field);

        if (cell == NULL) {
            for (size_t k = 0; k < j; k++)
                free(t->cells[t->n_rows * t->n_cols + k]);
            free(line);
            PND_ERROR(PND_ENOMEM, "out of memory adding a row to table %s", t->name);
        }
        t->cells[t->n_rows * t->n_cols + j++] = cell;
    }
    free(line);
    t->n_rows++;
    return PND_OK;
}

static const char *
cell(const struct report_table *t, size_t i, size_t j)
{
    return t->cells[i * t->n_cols + j];
}

static void
write_tsv(const struct report_table *t, FILE *fp)
{
    for (size_t j = 0; j < t->n_cols; j++)
        fprintf(fp, "%s%s", j ? "\t" : "", t->header[j]);
    fputc('\n', fp);
    for (size_t i = 0; i < t->n_rows; i++) {
        for (size_t j = 0; j < t->n_cols; j++)
            fprintf(fp, "%s%s", j ? "\t" : "", cell(t, i, j));
        fputc('\n', fp);
    }
}

/* Markdown cell text: '|' would end the cell. */
static void
put_markdown(const char *s, FILE *fp)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', fp);
        fputc(*s, fp);
    }
}

void
report_table_markdown(const struct report_table *t, FILE *fp)
{
    fputc('|', fp);
    for (size_t j = 0; j < t->n_cols; j++) {
        fputc(' ', fp);
        put_markdown(t->header[j], fp);
        fputs(" |", fp);
    }
    fputs("\n|", fp);
    for (size_t j = 0; j < t->n_cols; j++)
        fputs(t->numeric[j] ? "---:|" : "---|", fp);
    fputc('\n', fp);
    for (size_t i = 0; i < t->n_rows; i++) {
        fputc('|', fp);
        for (size_t j = 0; j < t->n_cols; j++) {
            fputc(' ', fp);
            put_markdown(cell(t, i, j), fp);
            fputs(" |", fp);
        }
        fputc('\n', fp);
    }
}

static void
put_html(const char *s, FILE *fp)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default: fputc(*s, fp);
        }
    }
}

void
report_table_html(const struct report_table *t, FILE *fp)
{
    fputs("<table>\n<thead><tr>", fp);
    for (size_t j = 0; j < t->n_cols; j++) {
        fputs(t->numeric[j] ? "<th class=\"num\">" : "<th>", fp);
        put_html(t->header[j], fp);
        fputs("</th>", fp);
    }
    fputs("</tr></thead>\n<tbody>\n", fp);
    for (size_t i = 0; i < t->n_rows; i++) {
        fputs("<tr>", fp);
        for (size_t j = 0; j < t->n_cols; j++) {
            const char *c = cell(t, i, j);

            fputs(t->numeric[j] ? "<td class=\"num\">" : "<td>", fp);
            if (strcmp(c, "FAIL") == 0)
                fputs("<strong class=\"fail\">FAIL</strong>", fp);
            else
                put_html(c, fp);
            fputs("</td>", fp);
        }
        fputs("</tr>\n", fp);
    }
    fputs("</tbody>\n</table>\n", fp);
}

/* LaTeX text: escape the characters that TeX treats specially. */
static void
put_latex(const char *s, FILE *fp)
{
    for (; *s; s++) {
        switch (*s) {
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            fputc('\\', fp);
            fputc(*s, fp);
            break;
        case '~': fputs("\\textasciitilde{}", fp); break;
        case '^': fputs("\\textasciicircum{}", fp); break;
        case '\\': fputs("\\textbackslash{}", fp); break;
        case '|': fputs("\\textbar{}", fp); break;
        case '<': fputs("\\textless{}", fp); break;
        case '>': fputs("\\textgreater{}", fp); break;
        default:
            /* The UTF-8 plus-minus sign of interval cells. */
            if ((unsigned char) s[0] == 0xC2 && (unsigned char) s[1] == 0xB1) {
                fputs("$\\pm$", fp);
                s++;
            } else {
                fputc(*s, fp);
            }
        }
    }
}

static void
write_latex(const struct report_table *t, FILE *fp)
{
    fputs("% Generated by pnd report; needs \\usepackage{booktabs}.\n"
          "\\begin{table}[htbp]\n\\centering\n\\small\n\\caption{", fp);
    put_latex(t->caption, fp);
    fprintf(fp, "}\n\\label{tab:%s}\n\\begin{tabular}{", t->name);
    for (size_t j = 0; j < t->n_cols; j++)
        fputc(t->numeric[j] ? 'r' : 'l', fp);
    fputs("}\n\\toprule\n", fp);
    for (size_t j = 0; j < t->n_cols; j++) {
        if (j)
            fputs(" & ", fp);
        put_latex(t->header[j], fp);
    }
    fputs(" \\\\\n\\midrule\n", fp);
    for (size_t i = 0; i < t->n_rows; i++) {
        for (size_t j = 0; j < t->n_cols; j++) {
            if (j)
                fputs(" & ", fp);
            put_latex(cell(t, i, j), fp);
        }
        fputs(" \\\\\n", fp);
    }
    fputs("\\bottomrule\n\\end{tabular}\n\\end{table}\n", fp);
}

static int
write_one(const struct report_table *t, const char *dir, const char *ext,
          void (*writer)(const struct report_table *, FILE *))
{
    char path[PATH_SIZE];
    struct pnd_atomic_file f;
    int len = snprintf(path, sizeof path, "%s/%s.%s", dir, t->name, ext);

    if (len < 0 || (size_t) len >= sizeof path)
        PND_ERROR(PND_EINVAL, "table path %s/%s.%s is too long", dir, t->name, ext);
    PND_TRY(pnd_atomic_open(&f, path));
    writer(t, f.fp);
    return pnd_atomic_commit(&f);
}

static void
write_markdown_file(const struct report_table *t, FILE *fp)
{
    put_markdown(t->caption, fp);
    fputs("\n\n", fp);
    report_table_markdown(t, fp);
}

int
report_table_write(const struct report_table *t, const char *dir)
{
    PND_TRY(pnd_mkdir_p(dir));
    PND_TRY(write_one(t, dir, "tsv", write_tsv));
    PND_TRY(write_one(t, dir, "md", write_markdown_file));
    return write_one(t, dir, "tex", write_latex);
}
