/* Option-table parser for the examples (see ex_args.h). Values are validated completely
 * ("12abc" or "nan" are rejected) so that a typo never silently trains something else. */
#include "ex_args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void ex_print_usage(const char *prog, const char *about, const ex_arg *args, int n, FILE *f) {
    fprintf(f, "usage: %s [options]\n", base_name(prog));
    if (about) fprintf(f, "%s\n", about);
    fprintf(f, "options:\n");
    for (int i = 0; i < n; i++) {
        char head[64];
        if (args[i].kind == EX_ARG_FLAG)
            snprintf(head, sizeof head, "%s", args[i].name);
        else
            snprintf(head, sizeof head, "%s %s", args[i].name,
                     args[i].meta ? args[i].meta : "VALUE");
        fprintf(f, "  %-24s %s", head, args[i].help ? args[i].help : "");
        if (args[i].kind == EX_ARG_CHOICE) fprintf(f, " (%s)", args[i].choices);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "show this help");
}

/* 1 if `v` is one of the '|'-separated words of `choices`. */
static int in_choices(const char *v, const char *choices) {
    size_t len = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t wl = bar ? (size_t)(bar - p) : strlen(p);
        if (wl == len && strncmp(p, v, len) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int set_value(const char *prog, const ex_arg *a, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (a->kind) {
    case EX_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end != '\0' || errno == ERANGE || x < INT_MIN || x > INT_MAX) {
            fprintf(stderr, "%s: %s expects an integer, got '%s'\n", prog, a->name, v);
            return -1;
        }
        if (a->min < a->max && (x < a->min || x > a->max)) {
            fprintf(stderr, "%s: %s must be in [%g, %g], got %ld\n", prog, a->name, a->min, a->max,
                    x);
            return -1;
        }
        *(int *)a->dest = (int)x;
        return 0;
    }
    case EX_ARG_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end != '\0' || errno == ERANGE || !isfinite(x)) {
            fprintf(stderr, "%s: %s expects a finite number, got '%s'\n", prog, a->name, v);
            return -1;
        }
        if (a->min < a->max && (x < a->min || x > a->max)) {
            fprintf(stderr, "%s: %s must be in [%g, %g], got %g\n", prog, a->name, a->min, a->max,
                    x);
            return -1;
        }
        *(double *)a->dest = x;
        return 0;
    }
    case EX_ARG_CHOICE:
        if (!in_choices(v, a->choices)) {
            fprintf(stderr, "%s: %s must be one of %s, got '%s'\n", prog, a->name, a->choices, v);
            return -1;
        }
        *(const char **)a->dest = v;
        return 0;
    case EX_ARG_STRING:
        if (*v == '\0') {
            fprintf(stderr, "%s: %s expects a non-empty value\n", prog, a->name);
            return -1;
        }
        *(const char **)a->dest = v;
        return 0;
    case EX_ARG_FLAG: break;
    }
    return -1;
}

int ex_parse_args(int argc, char **argv, const char *about, const ex_arg *args, int n) {
    const char *prog = base_name(argc > 0 ? argv[0] : "example");
    for (int i = 1; i < argc; i++) {
        const char *tok = argv[i];
        if (strcmp(tok, "-h") == 0 || strcmp(tok, "--help") == 0) {
            ex_print_usage(prog, about, args, n, stdout);
            return 1;
        }
        const char *eq = strchr(tok, '=');
        size_t name_len = eq ? (size_t)(eq - tok) : strlen(tok);
        const ex_arg *a = NULL;
        for (int k = 0; k < n && !a; k++)
            if (strlen(args[k].name) == name_len && strncmp(args[k].name, tok, name_len) == 0)
                a = &args[k];
        if (!a) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, tok);
            return -1;
        }
        if (a->kind == EX_ARG_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: %s takes no value\n", prog, a->name);
                return -1;
            }
            *(int *)a->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value (try --help)\n", prog, a->name);
                return -1;
            }
            v = argv[++i];
        }
        if (set_value(prog, a, v) != 0) return -1;
    }
    return 0;
}

int ex_parse_int_list(const char *s, int *out, int cap) {
    int count = 0;
    const char *p = s;
    if (!s || !*s) return -1;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno == ERANGE || x < 1 || x > INT_MAX || count >= cap) return -1;
        out[count++] = (int)x;
        if (*end == '\0') return count;
        if (*end != ',') return -1;
        p = end + 1;
    }
}
