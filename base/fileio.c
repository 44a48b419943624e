/* Atomic output files, directory creation and whole-file reads. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pnd/error.h"
#include "pnd/fileio.h"

/* Temporary names still open, so that a signal handler can remove them.
 * Slots are claimed and released by the thread that opens the file. */
#define MAX_OPEN_ATOMIC 64
static char *volatile open_tmp_paths[MAX_OPEN_ATOMIC];

static void
track_tmp(char *tmp_path)
{
    for (int i = 0; i < MAX_OPEN_ATOMIC; i++) {
        if (open_tmp_paths[i] == NULL) {
            open_tmp_paths[i] = tmp_path;
            return;
        }
    }
}

static void
untrack_tmp(const char *tmp_path)
{
    for (int i = 0; i < MAX_OPEN_ATOMIC; i++)
        if (open_tmp_paths[i] == tmp_path)
            open_tmp_paths[i] = NULL;
}

void
pnd_atomic_watch(char *path)
{
    track_tmp(path);
}

void
pnd_atomic_forget(const char *path)
{
    untrack_tmp(path);
}

int
pnd_input_open_status(int err)
{
    if (err == ENOENT || err == ENOTDIR || err == EACCES || err == EISDIR)
        return PND_EINVAL;
    return PND_EIO;
}

void
pnd_atomic_cleanup_all(void)
{
    for (int i = 0; i < MAX_OPEN_ATOMIC; i++)
        if (open_tmp_paths[i] != NULL)
            unlink(open_tmp_paths[i]);
}

int
pnd_atomic_open(struct pnd_atomic_file *f, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t) (slash - path + 1) : 0;
    size_t tmp_size = strlen(path) + 32;
    int fd;

    f->fp = NULL;
    f->path = strdup(path);
    f->tmp_path = malloc(tmp_size);
    if (f->path == NULL || f->tmp_path == NULL) {
        free(f->path);
        free(f->tmp_path);
        f->path = f->tmp_path = NULL;
        PND_ERROR(PND_ENOMEM, "out of memory opening %s", path);
    }
    /* ".name.tmp.XXXXXX" beside the target, so rename stays on one file system. */
    snprintf(f->tmp_path, tmp_size, "%.*s.%s.tmp.XXXXXX", (int) dir_len, path,
             path + dir_len);
    fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        int saved = errno;

        free(f->path);
        free(f->tmp_path);
        f->path = f->tmp_path = NULL;
        PND_ERROR(PND_EIO, "cannot create %s: %s", path, strerror(saved));
    }
    fchmod(fd, 0644);
    f->fp = fdopen(fd, "w");
    if (f->fp == NULL) {
        close(fd);
        unlink(f->tmp_path);
        free(f->path);
        free(f->tmp_path);
        f->path = f->tmp_path = NULL;
        PND_ERROR(PND_EIO, "cannot open %s for writing", path);
    }
    track_tmp(f->tmp_path);
    return PND_OK;
}

int
pnd_atomic_commit(struct pnd_atomic_file *f)
{
    int failed;

    if (f->fp == NULL)
        PND_ERROR(PND_EIO, "internal error: commit of a file that is not open");
    failed = ferror(f->fp) != 0;
    if (fclose(f->fp) != 0)
        failed = 1;
    f->fp = NULL;
    if (failed) {
        char path[512];

        snprintf(path, sizeof path, "%s", f->path);
        pnd_atomic_abort(f);
        PND_ERROR(PND_EIO, "writing %s failed (disk full?)", path);
    }
    if (rename(f->tmp_path, f->path) != 0) {
        int saved = errno;
        char path[512];

        snprintf(path, sizeof path, "%s", f->path);
        pnd_atomic_abort(f);
        PND_ERROR(PND_EIO, "cannot rename the temporary file to %s: %s", path,
                  strerror(saved));
    }
    untrack_tmp(f->tmp_path);
    free(f->tmp_path);
    free(f->path);
    f->tmp_path = f->path = NULL;
    return PND_OK;
}

void
pnd_atomic_abort(struct pnd_atomic_file *f)
{
    if (f->fp != NULL) {
        fclose(f->fp);
        f->fp = NULL;
    }
    if (f->tmp_path != NULL) {
        untrack_tmp(f->tmp_path);
        unlink(f->tmp_path);
    }
    free(f->tmp_path);
    free(f->path);
    f->tmp_path = f->path = NULL;
}

int
pnd_atomic_write(const char *path, const void *data, size_t len)
{
    struct pnd_atomic_file f;

    PND_TRY(pnd_atomic_open(&f, path));
    if (len > 0 && fwrite(data, 1, len, f.fp) != len) {
        pnd_atomic_abort(&f);
        PND_ERROR(PND_EIO, "writing %s failed", path);
    }
    return pnd_atomic_commit(&f);
}

int
pnd_mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof buf)
        PND_ERROR(PND_EINVAL, "invalid directory name '%s'", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];

        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            PND_ERROR(PND_EIO, "cannot create directory %s: %s", buf,
                      strerror(errno));
        buf[i] = saved;
    }
    struct stat st;

    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        PND_ERROR(PND_EIO, "%s exists and is not a directory", path);
    return PND_OK;
}

int
pnd_read_file(const char *path, char **data, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    *data = NULL;
    if (fp == NULL)
        PND_ERROR(pnd_input_open_status(errno), "cannot open %s: %s", path,
                  strerror(errno));
    for (;;) {
        if (n + 4096 + 1 > cap) {
            size_t new_cap = cap ? 2 * cap : 65536;
            char *grown = realloc(buf, new_cap);

            if (grown == NULL) {
                free(buf);
                fclose(fp);
                PND_ERROR(PND_ENOMEM, "out of memory reading %s", path);
            }
            buf = grown;
            cap = new_cap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);

        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        free(buf);
        fclose(fp);
        PND_ERROR(PND_EIO, "reading %s failed", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return PND_OK;
}
