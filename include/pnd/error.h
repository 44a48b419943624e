/* Status codes and error reporting for libpnd.
 *
 * Every library function that can fail returns an int status: PND_OK (0) on
 * success, one of the codes below otherwise. The function that detects the
 * failure records a message with PND_ERROR, which stores the source file,
 * line and reason in a per-thread record and returns the status; callers
 * pass the status up unchanged. Only the program's main decides to print the
 * message and exit (pnd_status_exit_code maps a status to an exit code).
 */
#ifndef PND_ERROR_H
#define PND_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum pnd_status {
    PND_OK = 0,
    PND_EINVAL,      /* invalid argument, option or configuration value */
    PND_EFORMAT,     /* malformed input file */
    PND_EIO,         /* a file could not be opened, read or written */
    PND_ENOMEM,      /* memory allocation failed */
    PND_ENUMERIC,    /* a computation produced NaN or Inf, or diverged */
    PND_EUNAVAIL,    /* a needed external program or feature is missing */
    PND_EINTERRUPT,  /* stopped by a signal before the result was complete */
    PND_EFAILED      /* any other runtime failure, such as a failed check */
};

/* Record a formatted message with the caller's file and line and return
 * status. Safe to call from several threads: each thread has its record. */
int pnd_error_set(int status, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record the error and return its status from the enclosing function. */
#define PND_ERROR(status, ...) \
    return pnd_error_set((status), __FILE__, __LINE__, __VA_ARGS__)

/* Evaluate expr (an int status); return it from the enclosing function
 * unless it is PND_OK. The callee has already recorded the message. */
#define PND_TRY(expr) \
    do { \
        int pnd_try_status_ = (expr); \
        if (pnd_try_status_ != PND_OK) \
            return pnd_try_status_; \
    } while (0)

/* The message of the last error recorded on this thread, or "" if none.
 * The string belongs to the library and changes at the next error. */
const char *pnd_error_message(void);

/* "file:line" of the last recorded error on this thread, or "". */
const char *pnd_error_location(void);

/* The status of the last recorded error on this thread, PND_OK if none. */
int pnd_error_status(void);

void pnd_error_clear(void);

/* A short English name of a status code, such as "invalid input". */
const char *pnd_status_string(int status);

/* Exit code for a status: 0 for PND_OK, 2 for usage and input errors
 * (PND_EINVAL, PND_EFORMAT), 1 for every runtime failure. */
int pnd_status_exit_code(int status);

/* Install a GSL error handler that records GSL errors with pnd_error_set
 * instead of aborting the process. Call once from main. */
void pnd_error_install_gsl_handler(void);

#ifdef __cplusplus
}
#endif
#endif
