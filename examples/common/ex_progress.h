/* A one-line progress bar for training loops: percentage, samples per second, running
 * loss and ETA, redrawn in place with '\r'. It is only drawn when stdout is a terminal,
 * so piped output (logs, CI) gets the plain per-epoch lines alone. */
#ifndef EX_PROGRESS_H
#define EX_PROGRESS_H

#include <stdint.h>

typedef struct ex_progress {
    int enabled;
    int64_t total;
    double t_start, t_last_draw;
    char label[32];
} ex_progress;

/** 1 if stdout is a terminal (isatty). */
int ex_stdout_is_tty(void);
/** Seconds from a monotonic clock. */
double ex_now(void);

void ex_progress_start(ex_progress *p, const char *label, int64_t total, int enabled);
/** `done` of `total` samples processed; `loss` is the running mean loss. Redraws at most
 *  ten times a second (and always at the end). */
void ex_progress_update(ex_progress *p, int64_t done, double loss);
/** Erases the bar so the next line starts clean. */
void ex_progress_finish(ex_progress *p);

#endif
