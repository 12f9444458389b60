/* The progress line fits every terminal width: at most cols - 1 characters, so it never
 * wraps (a wrapped line cannot be redrawn with '\r' and leaves stale copies behind), and
 * at 80 columns it still shows the running loss and accuracy and both ETAs. */
#include "ex_progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char *what, int cols, const char *line) {
    if (ok) return;
    failures++;
    fprintf(stderr, "FAIL at %d columns: %s\n  line (%zu chars): '%s'\n", cols, what, strlen(line),
            line);
}

int main(void) {
    /* the widest values the MNIST example can produce, and ordinary ones */
    const ex_progress_fields cases[] = {
        {"epoch 3/10", 0.45, 0.1234, 0.9650, 3.2, 41.0, 162000},
        {"epoch 100000/100000", 1.0, 123456789.0, 1.0, 359999, 359999, 9.9e9},
        {"epoch 1/1", 0.0, 2.302585, -1, -1, -1, 0},
        {"", 1e9, -1e30, 0.5, 1e30, NAN, -5},
    };
    char line[512];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int cols = 0; cols <= 300; cols++) {
            int n = ex_progress_format(line, sizeof line, cols, &cases[k]);
            int limit = cols > 1 ? cols - 1 : 1;
            check(n == (int)strlen(line), "returned length differs from strlen", cols, line);
            check(n <= limit, "longer than the terminal allows", cols, line);
            check(strpbrk(line, "\r\n\t") == NULL, "control character in the line", cols, line);
        }

    /* 80 columns, the usual terminal: everything but the speed, with a bar */
    ex_progress_fields f = {"epoch 10/10", 0.62, 0.0570, 0.9832, 2.0, 61.0, 124000};
    ex_progress_format(line, sizeof line, 80, &f);
    printf("80 columns:  '%s'\n", line);
    const char *at80[] = {"epoch 10/10 [", "=>",     " 62%",       "loss 0.0570",
                          "acc 0.9832",    "ETA 2s", "(run 1m01s)"};
    for (size_t i = 0; i < sizeof at80 / sizeof at80[0]; i++)
        check(strstr(line, at80[i]) != NULL, at80[i], 80, line);

    /* wide: the speed too, and the bar at its full 30 characters */
    ex_progress_format(line, sizeof line, 160, &f);
    printf("160 columns: '%s'\n", line);
    check(strstr(line, "124k samples/s") != NULL, "samples/s at 160 columns", 160, line);
    const char *open = strchr(line, '['), *close = strchr(line, ']');
    check(open && close && close - open == 31, "a 30-character bar", 160, line);

    /* narrow: the speed, the run's ETA and the loss go first; the accuracy, the epoch's
     * percentage and its ETA stay */
    ex_progress_format(line, sizeof line, 50, &f);
    printf("50 columns:  '%s'\n", line);
    check(strstr(line, " 62%") && strstr(line, "acc 0.9832") && strstr(line, "ETA 2s") &&
              !strstr(line, "loss"),
          "accuracy, percentage and ETA", 50, line);
    ex_progress_format(line, sizeof line, 30, &f);
    printf("30 columns:  '%s'\n", line);
    check(strstr(line, " 62%") && strstr(line, "ETA 2s") && !strchr(line, '['),
          "percentage and ETA without a bar", 30, line);

    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
