/* Diagnostic output on stderr. Results never go through this module: they
 * go to files or stdout. main sets the level once from --quiet/--verbose. */
#ifndef PND_LOG_H
#define PND_LOG_H

#include <stdbool.h>

enum pnd_log_level {
    PND_LOG_ERROR = 0,   /* printed even with --quiet */
    PND_LOG_INFO = 1,    /* default: progress and verdicts */
    PND_LOG_DEBUG = 2    /* --verbose */
};

void pnd_log_set_level(enum pnd_log_level level);
enum pnd_log_level pnd_log_get_level(void);

/* Print "pnd: message\n" to stderr when level <= the current level. */
void pnd_log(enum pnd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when stderr is a terminal and progress bars may redraw a line. */
bool pnd_log_stderr_is_tty(void);

/* Progress line for long jobs: "label  done/total  [bar]  ETA 1m02s".
 * On a terminal it redraws one line; elsewhere it prints a plain line at
 * most every few seconds. elapsed_s is the wall time since the job began. */
void pnd_log_progress(const char *label, double done, double total,
                      double elapsed_s);

/* Finish a progress line (prints the newline on a terminal). */
void pnd_log_progress_end(void);

/* Monotonic wall clock in seconds. */
double pnd_wall_seconds(void);

#endif
