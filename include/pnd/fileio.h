/* Output files that appear whole or not at all.
 *
 * pnd_atomic_open writes to a temporary name in the target's directory.
 * pnd_atomic_commit flushes, closes and renames it over the target, so an
 * interrupted run never leaves a half-written table or figure under the
 * final name. pnd_atomic_abort removes the temporary file.
 */
#ifndef PND_FILEIO_H
#define PND_FILEIO_H

#include <stdio.h>

struct pnd_atomic_file {
    FILE *fp;            /* write here between open and commit */
    char *path;          /* final name (owned) */
    char *tmp_path;      /* temporary name (owned) */
};

int pnd_atomic_open(struct pnd_atomic_file *f, const char *path);
int pnd_atomic_commit(struct pnd_atomic_file *f);
/* Safe on a file that was never opened or was already committed. */
void pnd_atomic_abort(struct pnd_atomic_file *f);

/* Write the len bytes of data to path atomically. */
int pnd_atomic_write(const char *path, const void *data, size_t len);

/* Create a directory and its missing parents (like mkdir -p). */
int pnd_mkdir_p(const char *path);

/* Read a whole file into a new NUL-terminated buffer (caller frees *data). */
int pnd_read_file(const char *path, char **data, size_t *len);

/* Remove every temporary file that this process has opened and not yet
 * committed or aborted, and every watched file. Async-signal-safe: the
 * SIGINT handler calls it. */
void pnd_atomic_cleanup_all(void);

/* Watch a file that stays incomplete until a later step finishes, such as
 * a marker written before a long computation: an interrupt removes it.
 * path must stay valid until pnd_atomic_forget(path). */
void pnd_atomic_watch(char *path);
void pnd_atomic_forget(const char *path);

/* Status for a failed open of an input file with errno err: PND_EINVAL
 * (an input error, exit 2) when the file is missing or not readable,
 * PND_EIO otherwise. */
int pnd_input_open_status(int err);

#endif
