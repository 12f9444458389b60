/* Terminal progress bar (see ex_progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "ex_progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum { BAR_MIN = 10, BAR_MAX = 30 };

int ex_stdout_is_tty(void) { return isatty(STDOUT_FILENO); }

double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ex_terminal_columns(void) {
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *env = getenv("COLUMNS");
    int cols = env ? atoi(env) : 0;
    return cols > 0 ? cols : 80;
}

/* "7s", "4m05s", "2h13m": short enough for a narrow line. */
static void format_seconds(char *buf, size_t size, double s) {
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60)
        snprintf(buf, size, "%lds", t);
    else if (t < 3600)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, size, "%ldh%02ldm", t / 3600, t % 3600 / 60);
}

int ex_progress_format(char *buf, size_t size, int cols, const ex_progress_fields *f) {
    if (!buf || size == 0) return 0;
    buf[0] = '\0';
    if (!f) return 0;
    size_t limit = cols > 1 ? (size_t)cols - 1 : 1;
    if (limit > size - 1) limit = size - 1;
    double frac = f->frac > 1 ? 1 : f->frac > 0 ? f->frac : 0;
    char t1[24], t2[24], pct[16], loss[40], acc[32], eta[40], run[40], rate[48];
    snprintf(pct, sizeof pct, " %3.0f%%", 100 * frac);
    snprintf(loss, sizeof loss, fabs(f->loss) < 1e6 ? " loss %.4f" : " loss %.3g", f->loss);
    acc[0] = run[0] = '\0';
    if (f->acc >= 0) snprintf(acc, sizeof acc, " acc %.4f", f->acc);
    format_seconds(t1, sizeof t1, f->eta);
    snprintf(eta, sizeof eta, " ETA %s", t1);
    if (f->eta_run >= 0) {
        format_seconds(t2, sizeof t2, f->eta_run);
        snprintf(run, sizeof run, " (run %s)", t2);
    }
    if (f->rate >= 1e4)
        snprintf(rate, sizeof rate, " %.0fk samples/s", f->rate / 1000);
    else
        snprintf(rate, sizeof rate, " %.0f samples/s", f->rate > 0 ? f->rate : 0);
    const char *label = f->label ? f->label : "";
    /* Fields from the least to the most useful; `level` of them are dropped, and at the
     * last level the bar goes too. */
    char *optional[] = {rate, run, loss, acc};
    enum { N_OPTIONAL = 4 };
    for (int level = 0; level <= N_OPTIONAL + 1; level++) {
        size_t text = strlen(label) + strlen(pct) + strlen(eta);
        for (int i = level < N_OPTIONAL ? level : N_OPTIONAL; i < N_OPTIONAL; i++)
            text += strlen(optional[i]);
        int bar = 0; /* characters between the brackets; 0: no bar */
        if (level <= N_OPTIONAL) {
            if (text + 3 + BAR_MIN > limit) continue; /* " [" and "]" around the bar */
            size_t room = limit - text - 3;
            bar = room > BAR_MAX ? BAR_MAX : (int)room;
        }
        char bar_text[BAR_MAX + 4] = "";
        if (bar > 0) {
            int filled = (int)(frac * bar + 0.5);
            bar_text[0] = ' ';
            bar_text[1] = '[';
            for (int i = 0; i < bar; i++)
                bar_text[2 + i] = i < filled ? '=' : (i == filled ? '>' : ' ');
            bar_text[2 + bar] = ']';
            bar_text[3 + bar] = '\0';
        }
        int keep = level < N_OPTIONAL ? level : N_OPTIONAL; /* first kept optional field */
        /* snprintf into limit + 1 bytes: at the last level the line is cut to fit */
        snprintf(buf, limit + 1, "%s%s%s%s%s%s%s%s", label, bar_text, pct,
                 keep <= 2 ? optional[2] : "", keep <= 3 ? optional[3] : "", eta,
                 keep <= 1 ? optional[1] : "", keep <= 0 ? optional[0] : "");
        break;
    }
    return (int)strlen(buf);
}

void ex_progress_begin(ex_progress *p, int64_t run_total, int enabled) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->run_total = run_total > 0 ? run_total : 1;
    p->t_run_start = ex_now();
}

void ex_progress_epoch(ex_progress *p, const char *label, int64_t total) {
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->t_start = ex_now();
    p->t_last_draw = -1;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

/* Clear from the cursor to the end of the line: the ANSI sequence, or spaces where the
 * terminal does not understand it. */
static void clear_to_end(int cols, int written) {
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        printf("%*s", cols - 1 > written ? cols - 1 - written : 0, "");
    else
        fputs("\033[K", stdout);
}

void ex_progress_update(ex_progress *p, int64_t done, double loss, double acc) {
    p->done = done;
    if (!p->enabled) return;
    double now = ex_now();
    if (done < p->total && now - p->t_last_draw < 0.1) return;
    p->t_last_draw = now;
    ex_progress_fields f = {.label = p->label, .loss = loss, .acc = acc};
    f.frac = (double)done / (double)p->total;
    double elapsed = now - p->t_start, run_elapsed = now - p->t_run_start;
    f.rate = elapsed > 0 ? (double)done / elapsed : 0;
    f.eta = f.rate > 0 ? (double)(p->total - done) / f.rate : -1;
    /* The rest of this epoch, then the epochs after it at the run's rate so far, which
     * includes whatever happens between epochs (evaluation): never less than f.eta. */
    int64_t run_done = p->run_done + done, later = p->run_total - p->run_done - p->total;
    double run_rate = run_elapsed > 0 ? (double)run_done / run_elapsed : 0;
    f.eta_run =
        run_rate > 0 && f.eta >= 0 ? f.eta + (double)(later > 0 ? later : 0) / run_rate : -1;
    if (p->run_total <= p->total) f.eta_run = -1; /* a single epoch: the same as f.eta */
    char line[512];
    int cols = ex_terminal_columns();
    int n = ex_progress_format(line, sizeof line, cols, &f);
    printf("\r%s", line);
    clear_to_end(cols, n);
    fflush(stdout);
}

void ex_progress_finish(ex_progress *p) {
    p->run_done += p->done;
    p->done = 0;
    if (!p->enabled) return;
    printf("\r");
    clear_to_end(ex_terminal_columns(), 0);
    printf("\r");
    fflush(stdout);
}
