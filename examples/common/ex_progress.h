/* A one-line progress bar for training loops: epoch, bar, percentage, running loss and
 * accuracy, the time left in the epoch and in the whole run, and samples per second,
 * redrawn in place with '\r'. The line always fits the terminal's width (fields are
 * dropped, least useful first, when it is narrow), so it never wraps and leaves no stale
 * copies behind. It is only drawn when stdout is a terminal, so piped output (logs, CI)
 * gets the plain per-epoch lines alone.
 *
 * Use: ex_progress_begin once per run, then for each epoch ex_progress_epoch,
 * ex_progress_update after every step and ex_progress_finish before printing the epoch's
 * summary line. */
#ifndef EX_PROGRESS_H
#define EX_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ex_progress {
    int enabled;
    int64_t total;     /* samples in the current epoch */
    int64_t done;      /* samples of the current epoch processed so far */
    int64_t run_total; /* samples in the whole run (every epoch) */
    int64_t run_done;  /* samples of the epochs finished before the current one */
    double t_start, t_run_start, t_last_draw;
    char label[32];
} ex_progress;

/** What one progress line shows (see ex_progress_format). */
typedef struct ex_progress_fields {
    const char *label; /**< "epoch 3/10" */
    double frac;       /**< fraction of the epoch done, 0..1 */
    double loss;       /**< running mean loss of the epoch */
    double acc;        /**< running accuracy, 0..1; negative: not shown */
    double eta;        /**< seconds left in the epoch */
    double eta_run;    /**< seconds left in the whole run; negative: not shown */
    double rate;       /**< samples per second */
} ex_progress_fields;

/** 1 if stdout is a terminal (isatty). */
int ex_stdout_is_tty(void);
/** Seconds from a monotonic clock. */
double ex_now(void);
/** The terminal's width in columns: the window size of stdout if it is a terminal, else
 *  $COLUMNS, else 80. */
int ex_terminal_columns(void);

/** Starts a run of `run_total` samples (all epochs); `enabled` is usually
 *  ex_stdout_is_tty(). */
void ex_progress_begin(ex_progress *p, int64_t run_total, int enabled);
/** Starts an epoch of `total` samples, shown as `label` ("epoch 3/10"). */
void ex_progress_epoch(ex_progress *p, const char *label, int64_t total);
/** `done` of the epoch's samples processed, with the running mean loss and running
 *  accuracy (negative: none). Redraws at most ten times a second (and always at the end). */
void ex_progress_update(ex_progress *p, int64_t done, double loss, double acc);
/** Erases the bar so the next line starts clean, and counts the epoch as done. */
void ex_progress_finish(ex_progress *p);

/** Formats one progress line of at most cols - 1 characters (a line filling the last
 *  column wraps on some terminals) into buf, which holds `size` bytes. When the line
 *  would be longer, the bar shrinks and fields are dropped: samples per second first,
 *  then the run's ETA, the loss, the accuracy and the bar; the label, percentage and
 *  epoch's ETA stay (cut at the end if even they do not fit). Returns the line's length. */
int ex_progress_format(char *buf, size_t size, int cols, const ex_progress_fields *f);

#endif
