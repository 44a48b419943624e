/* pnd_plot_path: redraw every figure of existing results, found by what
 * the path is: a simulator TSV, a trainer run directory (config.ini and
 * log.tsv), a training sweep (run directories below it) or a report
 * directory (sim/ TSV files and train/ runs). */
#include <config.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "plots/plot_internal.h"

#define PATH_SIZE 4096
/* Run directories sit at most this deep below the given directory:
 * report/train/<scheme>/seed<S>. */
#define MAX_RUN_DEPTH 4

struct path_list {
    size_t n, cap;
    char **items;   /* (cap) owned paths */
};

static int
path_list_add(struct path_list *list, const char *path)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        char **grown = realloc(list->items, cap * sizeof *grown);

        if (grown == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory listing %s", path);
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->n] = strdup(path);
    if (list->items[list->n] == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory listing %s", path);
    list->n++;
    return PND_OK;
}

static void
path_list_free(struct path_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}

static bool
is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
has_file(const char *dir, const char *name)
{
    char path[PATH_SIZE];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

static bool
is_run_dir(const char *dir)
{
    return has_file(dir, "config.ini") && has_file(dir, "log.tsv");
}

static int
skip_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

/* Add every run directory at or below dir, in name order. */
static int
find_runs(const char *dir, int depth, struct path_list *runs)
{
    struct dirent **entries;
    int n, status = PND_OK;

    if (is_run_dir(dir))
        return path_list_add(runs, dir);
    if (depth == 0)
        return PND_OK;
    n = scandir(dir, &entries, skip_hidden, alphasort);
    if (n < 0)
        return PND_OK;
    for (int i = 0; i < n; i++) {
        char path[PATH_SIZE];

        if (status == PND_OK)
            status = plot_join(path, sizeof path, dir, entries[i]->d_name);
        if (status == PND_OK && is_dir(path) && strcmp(entries[i]->d_name, "figures") != 0)
            status = find_runs(path, depth - 1, runs);
        free(entries[i]);
    }
    free(entries);
    return status;
}

static int
is_tsv(const struct dirent *entry)
{
    size_t len = strlen(entry->d_name);

    return entry->d_name[0] != '.' && len > 4
           && strcmp(entry->d_name + len - 4, ".tsv") == 0;
}

/* "stem_" of path's base name without ".tsv". */
static void
tsv_prefix(const char *path, char *buf, size_t size)
{
    const char *base = strrchr(path, '/');
    size_t len;

    base = base ? base + 1 : path;
    len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".tsv") == 0)
        len -= 4;
    snprintf(buf, size, "%.*s_", (int) len, base);
}

static int
plot_sim_dir(const struct pnd_plot_options *opt, const char *dir,
             struct pnd_figure_list *list)
{
    struct dirent **entries;
    int n, status = PND_OK;

    n = scandir(dir, &entries, is_tsv, alphasort);
    if (n < 0)
        PND_ERROR(PND_EIO, "cannot list %s", dir);
    for (int i = 0; i < n; i++) {
        char path[PATH_SIZE], prefix[256];

        if (status == PND_OK)
            status = plot_join(path, sizeof path, dir, entries[i]->d_name);
        tsv_prefix(path, prefix, sizeof prefix);
        if (status == PND_OK)
            status = pnd_plot_sim(opt, path, prefix, list);
        free(entries[i]);
    }
    free(entries);
    return status;
}

int
pnd_plot_path(const struct pnd_plot_options *opt, const char *path,
              struct pnd_figure_list *list)
{
    struct path_list runs = {0};
    char sim_dir[PATH_SIZE], prefix[256];
    int status = PND_OK;

    PND_TRY(pnd_mkdir_p(opt->out_dir));
    if (!is_dir(path)) {
        if (access(path, R_OK) != 0)
            PND_ERROR(PND_EIO, "%s not found: give a simulator TSV, a trainer run directory or a report directory",
                      path);
        tsv_prefix(path, prefix, sizeof prefix);
        return pnd_plot_sim(opt, path, prefix, list);
    }

    snprintf(sim_dir, sizeof sim_dir, "%s/sim", path);
    if (is_dir(sim_dir))
        status = plot_sim_dir(opt, sim_dir, list);
    if (status == PND_OK)
        status = find_runs(path, MAX_RUN_DEPTH, &runs);
    if (status == PND_OK && runs.n > 0)
        status = pnd_plot_train(opt, (const char *const *) runs.items, runs.n, list);
    if (status == PND_OK && runs.n == 0 && !is_dir(sim_dir))
        status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                               "%s contains no simulator TSV (sim/*.tsv) and no trainer run directory (config.ini with log.tsv)",
                               path);
    path_list_free(&runs);
    return status;
}
