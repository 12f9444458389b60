/* Terminal progress bar (see ex_progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "ex_progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ex_stdout_is_tty(void) { return isatty(STDOUT_FILENO); }

double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ex_progress_start(ex_progress *p, const char *label, int64_t total, int enabled) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->total = total > 0 ? total : 1;
    p->t_start = ex_now();
    p->t_last_draw = -1;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

void ex_progress_update(ex_progress *p, int64_t done, double loss) {
    if (!p->enabled) return;
    double now = ex_now();
    if (done < p->total && now - p->t_last_draw < 0.1) return;
    p->t_last_draw = now;
    double frac = (double)done / (double)p->total;
    if (frac > 1) frac = 1;
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int filled = (int)(frac * WIDTH + 0.5);
    for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[WIDTH] = '\0';
    printf("\r%s [%s] %3.0f%% %7.0f samples/s  loss %.4f  ETA %3.0fs ", p->label, bar, 100 * frac,
           rate, loss, eta);
    fflush(stdout);
}

void ex_progress_finish(ex_progress *p) {
    if (!p->enabled) return;
    printf("\r%*s\r", 100, "");
    fflush(stdout);
}
