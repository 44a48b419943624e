/* Series of points written as gnuplot data blocks, and template variables. */
#include <config.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/mask.h"
#include "plots/plot_internal.h"

int
plot_set_find(const struct plot_set *set, const char *label)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->series[i].label, label) == 0)
            return (int) i;
    return -1;
}

int
plot_set_add(struct plot_set *set, const char *label, int style, double x,
             double y, double e95, double ref)
{
    int i = plot_set_find(set, label);
    struct plot_series *s;

    if (i < 0) {
        if (set->n == PLOT_MAX_SERIES)
            PND_ERROR(PND_EINVAL, "a figure has at most %d series; series '%s' is one too many",
                      PLOT_MAX_SERIES, label);
        i = (int) set->n++;
        s = &set->series[i];
        memset(s, 0, sizeof *s);
        snprintf(s->label, sizeof s->label, "%s", label);
        s->style = style;
    }
    s = &set->series[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct plot_point *grown = realloc(s->points, cap * sizeof *grown);

        if (grown == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory adding a point to series %s", label);
        s->points = grown;
        s->cap = cap;
    }
    s->points[s->n++] = (struct plot_point) {x, y, e95, ref};
    return PND_OK;
}

void
plot_set_free(struct plot_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->series[i].points);
    set->n = 0;
}

static int
compare_x(const void *a, const void *b)
{
    double xa = ((const struct plot_point *) a)->x;
    double xb = ((const struct plot_point *) b)->x;

    return (xa > xb) - (xa < xb);
}

int
plot_set_write(struct plot_set *set, const char *path)
{
    struct pnd_atomic_file f;

    for (size_t i = 0; i < set->n; i++) {
        struct plot_series *s = &set->series[i];

        for (size_t j = 0; j < s->n; j++) {
            const struct plot_point *pt = &s->points[j];

            if (!isfinite(pt->x) || !isfinite(pt->y) || !isfinite(pt->e95)
                || isinf(pt->ref))
                PND_ERROR(PND_ENUMERIC, "series '%s' of %s has a point that is not finite (x %g, y %g, interval %g, reference %g), so it was not plotted",
                          s->label, path, pt->x, pt->y, pt->e95, pt->ref);
        }
        qsort(s->points, s->n, sizeof *s->points, compare_x);
    }

    PND_TRY(pnd_atomic_open(&f, path));
    for (size_t i = 0; i < set->n; i++) {
        const struct plot_series *s = &set->series[i];

        fprintf(f.fp, "%s# %s\n# x\ty\thalf_width_95\treference\n",
                i > 0 ? "\n\n" : "", s->label);
        for (size_t j = 0; j < s->n; j++) {
            const struct plot_point *pt = &s->points[j];

            fprintf(f.fp, "%.10g\t%.10g\t%.10g\t", pt->x, pt->y, pt->e95);
            if (isnan(pt->ref))
                fputs("?\n", f.fp);
            else
                fprintf(f.fp, "%.10g\n", pt->ref);
        }
    }
    return pnd_atomic_commit(&f);
}

int
plot_vars_set(struct plot_vars *vars, const char *name, const char *fmt, ...)
{
    char *value = NULL;
    va_list ap;
    int len;

    if (vars->n == PLOT_MAX_VARS)
        PND_ERROR(PND_EINVAL, "more than %d gnuplot variables (at %s)",
                  PLOT_MAX_VARS, name);
    va_start(ap, fmt);
    len = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (len < 0)
        PND_ERROR(PND_ENOMEM, "out of memory setting gnuplot variable %s", name);
    vars->pairs[2 * vars->n] = strdup(name);
    vars->pairs[2 * vars->n + 1] = value;
    if (vars->pairs[2 * vars->n] == NULL) {
        free(value);
        PND_ERROR(PND_ENOMEM, "out of memory setting gnuplot variable %s", name);
    }
    vars->n++;
    return PND_OK;
}

void
plot_vars_free(struct plot_vars *vars)
{
    for (size_t i = 0; i < 2 * vars->n; i++)
        free(vars->pairs[i]);
    vars->n = 0;
}

int
plot_vars_panel(struct plot_vars *vars, int panel, const char *data_path,
                const char *xlabel, const char *ylabel, const char *title,
                bool logx, bool logy)
{
    char name[32];

    snprintf(name, sizeof name, "p%d_data", panel);
    PND_TRY(plot_vars_set(vars, name, "%s", data_path));
    snprintf(name, sizeof name, "p%d_xlabel", panel);
    PND_TRY(plot_vars_set(vars, name, "%s", xlabel));
    snprintf(name, sizeof name, "p%d_ylabel", panel);
    PND_TRY(plot_vars_set(vars, name, "%s", ylabel));
    snprintf(name, sizeof name, "p%d_title", panel);
    PND_TRY(plot_vars_set(vars, name, "%s", title));
    snprintf(name, sizeof name, "p%d_logx", panel);
    PND_TRY(plot_vars_set(vars, name, "%d", logx));
    snprintf(name, sizeof name, "p%d_logy", panel);
    PND_TRY(plot_vars_set(vars, name, "%d", logy));
    return PND_OK;
}

int
plot_vars_series(struct plot_vars *vars, int panel, int serial,
                 const char *kind, int style, int block, int column, int dash,
                 const char *title)
{
    char name[32];

    snprintf(name, sizeof name, "p%d_n", panel);
    PND_TRY(plot_vars_set(vars, name, "%d", serial));
    snprintf(name, sizeof name, "p%d_k%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%s", kind));
    snprintf(name, sizeof name, "p%d_ls%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%d", style));
    snprintf(name, sizeof name, "p%d_ix%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%d", block));
    snprintf(name, sizeof name, "p%d_c%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%d", column));
    snprintf(name, sizeof name, "p%d_dt%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%d", dash));
    snprintf(name, sizeof name, "p%d_t%d", panel, serial);
    PND_TRY(plot_vars_set(vars, name, "%s", title));
    return PND_OK;
}

int
plot_draw_vars(const struct pnd_plot_options *opt, const char *template,
               const char *name, const char *caption,
               const struct plot_vars *vars, struct pnd_figure_list *list)
{
    PND_TRY(pnd_plot_draw(opt, template, name, (const char *const *) vars->pairs,
                          vars->n));
    return pnd_figure_list_add(list, name, caption);
}

int
plot_join(char *buf, size_t size, const char *dir, const char *name)
{
    int len = snprintf(buf, size, "%s/%s", dir, name);

    if (len < 0 || (size_t) len >= size)
        PND_ERROR(PND_EINVAL, "path %s/%s is longer than %zu bytes", dir, name, size - 1);
    return PND_OK;
}

int
plot_data_path(const struct pnd_plot_options *opt, const char *name, char *buf,
               size_t size)
{
    int len = snprintf(buf, size, "%s/data", opt->out_dir);

    if (len < 0 || (size_t) len >= size)
        PND_ERROR(PND_EINVAL, "output directory name %s is too long", opt->out_dir);
    PND_TRY(pnd_mkdir_p(buf));
    len = snprintf(buf, size, "%s/data/%s.dat", opt->out_dir, name);
    if (len < 0 || (size_t) len >= size)
        PND_ERROR(PND_EINVAL, "output directory name %s is too long", opt->out_dir);
    return PND_OK;
}

int
plot_scheme_style(const char *scheme)
{
    enum pnd_scheme s;

    for (s = 0; s < PND_SCHEME_COUNT; s++)
        if (strcmp(pnd_scheme_name(s), scheme) == 0)
            return 1 + (int) s;
    return PLOT_STYLE_REFERENCE;
}
