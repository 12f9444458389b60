/* Command-line options for the example programs: a table of options, parsed in one call.
 * Bad arguments never crash an example: the parser prints what was wrong and a hint, and
 * the example exits with EX_EXIT_USAGE. */
#ifndef EX_ARGS_H
#define EX_ARGS_H

#include <stdio.h>

/** Exit codes shared by the examples. */
enum {
    EX_EXIT_OK = 0,
    EX_EXIT_FAIL = 1,  /**< a run-time failure: missing data, a library error */
    EX_EXIT_USAGE = 2, /**< bad command-line arguments */
};

typedef enum ex_arg_kind {
    EX_ARG_INT,    /**< dest: int *; checked against [min, max] when min < max */
    EX_ARG_FLOAT,  /**< dest: double *; finite, checked against [min, max] when min < max */
    EX_ARG_STRING, /**< dest: const char ** (points into argv) */
    EX_ARG_FLAG,   /**< dest: int *, set to 1; takes no value */
    EX_ARG_CHOICE, /**< dest: const char **; must be one of `choices` ("a|b|c") */
} ex_arg_kind;

typedef struct ex_arg {
    const char *name; /**< "--lr" */
    ex_arg_kind kind;
    void *dest;
    const char *meta; /**< value placeholder in the help ("LR"), NULL for flags */
    const char *help;
    const char *choices;
    double min, max;
} ex_arg;

/** Parses "--name value" and "--name=value" (plus -h/--help). Returns 0 on success,
 *  1 when help was printed (exit 0), -1 after printing an error to stderr. */
int ex_parse_args(int argc, char **argv, const char *about, const ex_arg *args, int n);

/** Prints the option table to `f` (stdout or stderr). */
void ex_print_usage(const char *prog, const char *about, const ex_arg *args, int n, FILE *f);

/** Parses a comma-separated list of positive ints ("512,256") into out (capacity cap).
 *  Returns the count, or -1 if malformed or longer than cap. */
int ex_parse_int_list(const char *s, int *out, int cap);

#endif
