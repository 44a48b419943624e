/* Diagnostic messages, progress lines and the wall clock. */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "pnd/log.h"

/* Set once by main before any thread starts; read-only afterwards. */
static enum pnd_log_level current_level = PND_LOG_INFO;

/* Progress state: only the main thread reports progress. */
static double last_plain_progress_s = -1.0;
static int progress_line_open;

#define PLAIN_PROGRESS_INTERVAL_S 5.0
#define PROGRESS_BAR_WIDTH 24

void
pnd_log_set_level(enum pnd_log_level level)
{
    current_level = level;
}

enum pnd_log_level
pnd_log_get_level(void)
{
    return current_level;
}

void
pnd_log(enum pnd_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level > current_level)
        return;
    if (progress_line_open) {
        fputc('\n', stderr);
        progress_line_open = 0;
    }
    fputs("pnd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool
pnd_log_stderr_is_tty(void)
{
    return isatty(STDERR_FILENO) != 0;
}

double
pnd_wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void
format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds < 0 ? 0 : (long) (seconds + 0.5);

    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
}

void
pnd_log_progress(const char *label, double done, double total,
                 double elapsed_s)
{
    char eta[32] = "?";
    double fraction = total > 0 ? done / total : 0.0;
    double now = pnd_wall_seconds();

    if (current_level < PND_LOG_INFO)
        return;
    if (fraction > 0)
        format_duration(eta, sizeof eta, elapsed_s * (1.0 - fraction) / fraction);

    if (pnd_log_stderr_is_tty()) {
        char bar[PROGRESS_BAR_WIDTH + 1];
        int filled = (int) (fraction * PROGRESS_BAR_WIDTH);

        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[PROGRESS_BAR_WIDTH] = '\0';
        fprintf(stderr, "\r%-40.40s %6.0f/%-6.0f [%s] ETA %s ", label, done,
                total, bar, eta);
        fflush(stderr);
        progress_line_open = 1;
        return;
    }
    if (last_plain_progress_s >= 0 && done < total
        && now - last_plain_progress_s < PLAIN_PROGRESS_INTERVAL_S)
        return;
    last_plain_progress_s = now;
    fprintf(stderr, "pnd: %s %.0f/%.0f (%.0f%%), ETA %s\n", label, done, total,
            100.0 * fraction, eta);
}

void
pnd_log_progress_end(void)
{
    if (progress_line_open) {
        fputc('\n', stderr);
        progress_line_open = 0;
    }
    last_plain_progress_s = -1.0;
}
