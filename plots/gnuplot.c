/* Running gnuplot on a template to draw one figure in each format.
 *
 * gnuplot runs as a child process (posix_spawnp) with the template's
 * variables given on its command line as gnuplot strings, its standard
 * output discarded and its standard error captured for the error message.
 * It writes to the temporary name of a pnd_atomic_file, which is renamed
 * over the final name only after gnuplot exited with status 0 and left a
 * non-empty file.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/report.h"
#include "plots/plot_internal.h"

extern char **environ;

/* gnuplot's standard error kept for the message of a failed run. */
#define GNUPLOT_STDERR_MAX 2048
#define SCRIPT_MAX 16384
#define PATH_SIZE 4096

/* Debian package that provides a gnuplot with the cairo terminals. */
#define GNUPLOT_PACKAGE "gnuplot-nox"

void
pnd_plot_options_init(struct pnd_plot_options *opt, const char *out_dir)
{
    opt->out_dir = out_dir;
    opt->formats = PND_PLOT_PDF | PND_PLOT_PNG;
    opt->gnuplot = NULL;
    opt->data_dir = NULL;
}

void
pnd_figure_list_free(struct pnd_figure_list *list)
{
    free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}

int
pnd_figure_list_add(struct pnd_figure_list *list, const char *name,
                    const char *caption)
{
    if (list == NULL)
        return PND_OK;
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        struct pnd_figure *grown = realloc(list->items, cap * sizeof *grown);

        if (grown == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory listing figure %s", name);
        list->items = grown;
        list->cap = cap;
    }
    snprintf(list->items[list->n].name, sizeof list->items[0].name, "%s", name);
    snprintf(list->items[list->n].caption, sizeof list->items[0].caption, "%s",
             caption);
    list->n++;
    return PND_OK;
}

static bool
dir_has_templates(const char *dir)
{
    char path[PATH_SIZE];

    snprintf(path, sizeof path, "%s/styles.gp", dir);
    return access(path, R_OK) == 0;
}

int
pnd_plot_data_dir(char *buf, size_t size)
{
    const char *env = getenv("PND_DATA_DIR");
    const char *found = NULL;

    if (env != NULL && env[0] != '\0') {
        if (!dir_has_templates(env))
            PND_ERROR(PND_EUNAVAIL, "PND_DATA_DIR=%s contains no gnuplot templates (styles.gp not found): point it at the plots folder of the source tree or at the installed data directory",
                      env);
        found = env;
    } else if (dir_has_templates(PND_PKGDATADIR)) {
        found = PND_PKGDATADIR;
    } else if (dir_has_templates(PND_SOURCE_DATADIR)) {
        found = PND_SOURCE_DATADIR;
    } else {
        PND_ERROR(PND_EUNAVAIL, "gnuplot templates not found in %s (installed) nor %s (source tree): run 'make install' or set PND_DATA_DIR to the folder holding styles.gp",
                  PND_PKGDATADIR, PND_SOURCE_DATADIR);
    }
    if (strlen(found) + 1 > size)
        PND_ERROR(PND_EINVAL, "template directory name %s is too long", found);
    memcpy(buf, found, strlen(found) + 1);
    return PND_OK;
}

static const char *
gnuplot_program(const struct pnd_plot_options *opt)
{
    const char *env = getenv("PND_GNUPLOT");

    if (opt->gnuplot != NULL)
        return opt->gnuplot;
    if (env != NULL && env[0] != '\0')
        return env;
    return PND_GNUPLOT;
}

int
pnd_plot_check_gnuplot(const struct pnd_plot_options *opt)
{
    const char *program = gnuplot_program(opt);
    const char *path = getenv("PATH");
    char candidate[4096];

    if (strchr(program, '/') != NULL) {
        if (access(program, X_OK) == 0)
            return PND_OK;
    } else {
        /* Search PATH as posix_spawnp will, so that a missing gnuplot is
         * reported before any data file is written. */
        for (const char *dir = path ? path : ""; *dir != '\0';) {
            size_t len = strcspn(dir, ":");

            snprintf(candidate, sizeof candidate, "%.*s/%s", (int) len, dir, program);
            if (len > 0 && access(candidate, X_OK) == 0)
                return PND_OK;
            dir += len;
            if (*dir == ':')
                dir++;
        }
    }
    PND_ERROR(PND_EUNAVAIL, "cannot run gnuplot '%s': not found or not executable. Install the Debian package %s or set PND_GNUPLOT to the gnuplot program",
              program, GNUPLOT_PACKAGE);
}

/* Append "name='value'; " to script, doubling single quotes as gnuplot's
 * single-quoted strings require. */
static int
append_var(char *script, size_t size, size_t *len, const char *name,
           const char *value)
{
    int n = snprintf(script + *len, size - *len, "%s='", name);

    if (n < 0 || (size_t) n >= size - *len)
        goto too_long;
    *len += (size_t) n;
    for (const char *c = value; *c; c++) {
        size_t need = *c == '\'' ? 2 : 1;

        if (*len + need + 4 >= size)
            goto too_long;
        script[(*len)++] = *c;
        if (*c == '\'')
            script[(*len)++] = '\'';
    }
    memcpy(script + *len, "'; ", 4);
    *len += 3;
    return PND_OK;

too_long:
    PND_ERROR(PND_EINVAL, "gnuplot variables are longer than %d bytes (variable %s)",
              SCRIPT_MAX, name);
}

/* The line of gnuplot's standard error that states the error (it names
 * the script line, '"file" line N: ...'), else its last non-empty line. */
static void
summarise_stderr(const char *text, char *out, size_t size)
{
    const char *line = text, *last = NULL;
    size_t last_len = 0;

    out[0] = '\0';
    while (*line) {
        size_t len = strcspn(line, "\n");

        if (len > 0) {
            if (memmem(line, len, "\" line ", 7) != NULL
                || memmem(line, len, "rror", 4) != NULL) {
                snprintf(out, size, "%.*s", (int) len, line);
                return;
            }
            last = line;
            last_len = len;
        }
        line += len + (line[len] == '\n');
    }
    if (last != NULL)
        snprintf(out, size, "%.*s", (int) last_len, last);
}

/* Run program -e script template; store its exit status and up to
 * err_size - 1 bytes of its standard error. */
static int
run_gnuplot(const char *program, const char *script, const char *template,
            int *exit_status, char *err, size_t err_size)
{
    char *argv[] = {(char *) program, "-e", (char *) script, (char *) template,
                    NULL};
    posix_spawn_file_actions_t actions;
    int pipe_fd[2];
    size_t got = 0;
    pid_t pid;
    int rc, wstatus;

    if (pipe(pipe_fd) != 0)
        PND_ERROR(PND_EIO, "cannot create a pipe for gnuplot: %s", strerror(errno));
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fd[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fd[0]);
    posix_spawn_file_actions_addclose(&actions, pipe_fd[1]);
    rc = posix_spawnp(&pid, program, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fd[1]);
    if (rc != 0) {
        close(pipe_fd[0]);
        PND_ERROR(PND_EUNAVAIL, "cannot run gnuplot '%s': %s. Install the Debian package %s or set PND_GNUPLOT to the gnuplot program",
                  program, strerror(rc), GNUPLOT_PACKAGE);
    }

    /* Drain the pipe to the end, keeping the first err_size - 1 bytes. */
    for (;;) {
        char chunk[512];
        ssize_t n = read(pipe_fd[0], chunk, sizeof chunk);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t keep = got + (size_t) n < err_size - 1 ? (size_t) n : err_size - 1 - got;

        memcpy(err + got, chunk, keep);
        got += keep;
    }
    err[got] = '\0';
    close(pipe_fd[0]);

    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR)
            PND_ERROR(PND_EIO, "waiting for gnuplot failed: %s", strerror(errno));
    }
    if (WIFSIGNALED(wstatus))
        PND_ERROR(WTERMSIG(wstatus) == SIGINT ? PND_EINTERRUPT : PND_EFAILED,
                  "gnuplot was killed by signal %d", WTERMSIG(wstatus));
    *exit_status = WEXITSTATUS(wstatus);
    return PND_OK;
}

static const struct {
    unsigned format;
    const char *term;      /* the template's terminal selector */
    const char *ext;
} formats[] = {
    {PND_PLOT_PDF, "pdf", "pdf"},
    {PND_PLOT_PNG, "png", "png"},
    {PND_PLOT_SVG, "svg", "svg"},
};

static int
draw_format(const struct pnd_plot_options *opt, const char *program,
            const char *data_dir, const char *template_path, const char *name,
            const char *term, const char *ext, const char *const *vars,
            size_t n_vars)
{
    char out_path[PATH_SIZE], err[GNUPLOT_STDERR_MAX], summary[512];
    char *script = NULL;
    size_t len = 0;
    struct pnd_atomic_file f;
    struct stat st;
    int exit_status = 0, status;

    snprintf(out_path, sizeof out_path, "%s/%s.%s", opt->out_dir, name, ext);
    script = malloc(SCRIPT_MAX);
    if (script == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory drawing %s", out_path);
    status = pnd_atomic_open(&f, out_path);
    if (status != PND_OK) {
        free(script);
        return status;
    }

    status = append_var(script, SCRIPT_MAX, &len, "term", term);
    if (status == PND_OK)
        status = append_var(script, SCRIPT_MAX, &len, "out", f.tmp_path);
    if (status == PND_OK)
        status = append_var(script, SCRIPT_MAX, &len, "pnd_data_dir", data_dir);
    for (size_t j = 0; j < n_vars && status == PND_OK; j++)
        status = append_var(script, SCRIPT_MAX, &len, vars[2 * j], vars[2 * j + 1]);
    if (status == PND_OK)
        status = run_gnuplot(program, script, template_path, &exit_status, err,
                             sizeof err);
    free(script);
    if (status != PND_OK)
        goto fail;

    summarise_stderr(err, summary, sizeof summary);
    if (exit_status != 0) {
        status = pnd_error_set(PND_EFAILED, __FILE__, __LINE__,
                               "gnuplot failed (exit status %d) drawing %s from %s: %s",
                               exit_status, out_path, template_path,
                               summary[0] ? summary : "no message");
        goto fail;
    }
    if (stat(f.tmp_path, &st) != 0 || st.st_size == 0) {
        status = pnd_error_set(PND_EFAILED, __FILE__, __LINE__,
                               "gnuplot exited normally but wrote nothing for %s (template %s): %s",
                               out_path, template_path,
                               summary[0] ? summary : "no message");
        goto fail;
    }
    if (summary[0] != '\0')
        pnd_log(PND_LOG_DEBUG, "gnuplot on %s: %s", out_path, summary);
    return pnd_atomic_commit(&f);

fail:
    pnd_atomic_abort(&f);
    return status;
}

int
pnd_plot_draw(const struct pnd_plot_options *opt, const char *template,
              const char *name, const char *const *vars, size_t n_vars)
{
    char data_dir[PATH_SIZE], template_path[PATH_SIZE];
    const char *program = gnuplot_program(opt);

    if (opt->data_dir != NULL)
        snprintf(data_dir, sizeof data_dir, "%s", opt->data_dir);
    else
        PND_TRY(pnd_plot_data_dir(data_dir, sizeof data_dir));
    PND_TRY(plot_join(template_path, sizeof template_path, data_dir, template));
    if (access(template_path, R_OK) != 0)
        PND_ERROR(PND_EUNAVAIL, "gnuplot template %s not found: %s",
                  template_path, strerror(errno));

    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if ((opt->formats & formats[i].format) == 0)
            continue;
        PND_TRY(draw_format(opt, program, data_dir, template_path, name,
                            formats[i].term, formats[i].ext, vars, n_vars));
    }
    return PND_OK;
}
