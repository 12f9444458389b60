/* Shared example helpers (see ex_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "ex_util.h"

#include "ex_args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ex_mkdir_p(const char *dir) {
    char buf[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf) {
        fprintf(stderr, "cannot create directory '%s': bad path\n", dir);
        return -1;
    }
    memcpy(buf, dir, len + 1);
    /* Create each prefix ending at a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "cannot create directory '%s': %s\n", buf, strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "'%s' is not a directory\n", dir);
        return -1;
    }
    return 0;
}

char *ex_path(char *buf, size_t size, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    snprintf(buf, size, "%s%s%s", dir, (dl > 0 && dir[dl - 1] == '/') ? "" : "/", name);
    return buf;
}

int ex_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ex_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ex_check_out_dir(const char *prog, const char *dir) {
    if (ex_mkdir_p(dir) != 0) {
        fprintf(stderr, "%s: cannot write in '%s'\n", prog, dir);
        return -1;
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.write-test.%ld", dir, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write in '%s': %s\n", prog, dir, strerror(errno));
        return -1;
    }
    remove(probe);
    return 0;
}

static void meta_path(char *buf, size_t size, const char *ckpt) {
    snprintf(buf, size, "%s.meta", ckpt);
}

int ex_meta_write(const char *ckpt, const char *const *keys, const char *const *values, int n) {
    char path[4200], tmp[4300];
    meta_path(path, sizeof path, ckpt);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cannot write '%s': %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# how the model in %s was made (written by a dagrad example)\n", ckpt);
    for (int i = 0; i < n; i++) fprintf(f, "%s=%s\n", keys[i], values[i]);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "cannot write '%s': %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int ex_meta_get(const char *ckpt, const char *key, char *buf, size_t size) {
    char path[4200], line[1024];
    meta_path(path, sizeof path, ckpt);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t klen = strlen(key);
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != '=') continue;
        char *v = line + klen + 1;
        v[strcspn(v, "\r\n")] = '\0';
        snprintf(buf, size, "%s", v);
        found = 1;
    }
    fclose(f);
    return found;
}

int ex_fail(const char *prog, dg_graph *g, const char *what) {
    const char *msg = g ? dg_graph_error(g) : "";
    if (!msg || !*msg) msg = dg_last_error();
    fprintf(stderr, "%s: %s: %s\n", prog, what, (msg && *msg) ? msg : "unknown error");
    return EX_EXIT_FAIL;
}

void ex_rng_seed(ex_rng *r, uint64_t seed) {
    /* splitmix64 scrambles the seed so that small seeds (0, 1, 2) give unrelated streams
     * and the state is never zero. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->s = (z ^ (z >> 31)) | 1;
}

uint64_t ex_rng_next(ex_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

uint64_t ex_rng_below(ex_rng *r, uint64_t n) { return n ? ex_rng_next(r) % n : 0; }

double ex_rng_uniform(ex_rng *r) {
    return (double)(ex_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void ex_shuffle(ex_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ex_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

int ex_argmax(const float *v, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (v[c] > v[best]) best = c;
    return best;
}

const char *ex_class_name(const char *dataset, int c) {
    static const char *const DIGITS[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    static const char *const FASHION[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                            "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};
    if (c < 0 || c > 9) return "?";
    return strcmp(dataset, "fashion") == 0 ? FASHION[c] : DIGITS[c];
}

void ex_print_prediction(const char *dataset, const float *probs, int label, const float *img) {
    int best = ex_argmax(probs, 10);
    printf("  probabilities:");
    for (int c = 0; c < 10; c++)
        printf("%s %d: %.4f", c == 5 ? "\n                " : "", c, (double)probs[c]);
    printf("\n  argmax: %d (%s)   true label: %d (%s)   %s\n", best, ex_class_name(dataset, best),
           label, ex_class_name(dataset, label), best == label ? "correct" : "WRONG");
    static const char ramp[] = " .:-=+*#%@";
    for (int r = 0; r < 28; r++) {
        printf("    |");
        for (int c = 0; c < 28; c++) {
            int k = (int)(img[r * 28 + c] * 9.999f);
            k = k < 0 ? 0 : k > 9 ? 9 : k;
            putchar(ramp[k]);
            putchar(ramp[k]); /* two characters per pixel keep the aspect ratio */
        }
        printf("|\n");
    }
}
