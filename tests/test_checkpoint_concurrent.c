/* Saves are atomic also when they race (POSIX threads): several threads save checkpoints
 * of their own graphs to one path while another thread loads it. Every save must succeed,
 * every load must find one complete save (never a torn or half-written file), the final
 * file must be one whole save, and no temporary file may be left in the directory. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAVERS      3
#define SAVES       60        /* per saver */
#define BIG         (1 << 15) /* floats in the large parameter: a 128 KiB checkpoint */
#define SECONDS_MAX 8.0       /* savers stop early on a very slow disk */

static char dir[64], path[128];
static atomic_int savers_done, saves_failed, loads_failed, loads_torn, loads_ok;
static char first_error[2][512]; /* the first failed save and load, for the report */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every element holds t * 1000 + k: saver t's k-th save (k >= 1; 0 is the initial file). */
static dg_graph *model(dg_node **big, dg_node **small) {
    dg_graph *g = dg_graph_new(1);
    *big = dg_param(g, "big", dg_shape2(BIG / 256, 256));
    *small = dg_param(g, "small", dg_shape1(3));
    return g;
}

static void set_all(dg_node *big, dg_node *small, float v) {
    float *d = dg_node_data(big);
    for (int64_t i = 0; i < BIG; i++) d[i] = v;
    for (int i = 0; i < 3; i++) dg_node_data(small)[i] = v;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void remember(int which, const char *msg) {
    pthread_mutex_lock(&report_lock);
    if (!first_error[which][0]) snprintf(first_error[which], sizeof first_error[which], "%s", msg);
    pthread_mutex_unlock(&report_lock);
}

static double start_time;

static void *saver(void *arg) {
    int t = (int)(intptr_t)arg;
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    for (int k = 1; k <= SAVES && now() - start_time < SECONDS_MAX; k++) {
        set_all(big, small, (float)(t * 1000 + k));
        if (dg_checkpoint_save(g, path, 0) != DG_OK) {
            atomic_fetch_add(&saves_failed, 1);
            remember(0, dg_graph_error(g));
        }
    }
    dg_graph_free(g);
    atomic_fetch_add(&savers_done, 1);
    return NULL;
}

/* Loads `path` into g; 1 if it holds one complete save, 0 if torn, -1 if the load failed. */
static int load_once(dg_graph *g, dg_node *big, dg_node *small, char *err, size_t err_size) {
    set_all(big, small, -1);
    if (dg_checkpoint_load(g, path, 0) != DG_OK) {
        snprintf(err, err_size, "%s", dg_graph_error(g));
        return -1;
    }
    float v = dg_node_data(small)[0];
    const float *d = dg_node_data(big);
    int whole = v >= 0 && (int)v % 1000 <= SAVES && (int)v / 1000 < SAVERS;
    for (int64_t i = 0; i < BIG && whole; i++) whole = d[i] == v;
    for (int i = 0; i < 3 && whole; i++) whole = dg_node_data(small)[i] == v;
    if (!whole) snprintf(err, err_size, "torn file: first value %g, element 0 %g", v, d[0]);
    return whole;
}

static void *loader(void *arg) {
    (void)arg;
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    char err[512];
    while (atomic_load(&savers_done) < SAVERS) {
        int r = load_once(g, big, small, err, sizeof err);
        if (r == 1) {
            atomic_fetch_add(&loads_ok, 1);
        } else {
            atomic_fetch_add(r == 0 ? &loads_torn : &loads_failed, 1);
            remember(1, err);
        }
    }
    dg_graph_free(g);
    return NULL;
}

/* Files in dir other than the checkpoint itself (leftover temporaries). */
static int strays(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "model.ckpt"))
            n++;
    if (d) closedir(d);
    return n;
}

int main(void) {
    strcpy(dir, "/tmp/dg_concurrent_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    dg_set_num_threads(1);
    {
        dg_node *big, *small;
        dg_graph *g = model(&big, &small);
        set_all(big, small, 0);
        CHECK_OK(dg_checkpoint_save(g, path, 0));
        dg_graph_free(g);
    }
    start_time = now();
    pthread_t th[SAVERS + 1];
    for (int t = 0; t < SAVERS; t++) pthread_create(&th[t], NULL, saver, (void *)(intptr_t)t);
    pthread_create(&th[SAVERS], NULL, loader, NULL);
    for (int t = 0; t <= SAVERS; t++) pthread_join(th[t], NULL);
    double secs = now() - start_time;

    printf("%d saver threads, %.2f s: %d saves failed; %d loads whole, %d torn, %d failed\n",
           SAVERS, secs, atomic_load(&saves_failed), atomic_load(&loads_ok),
           atomic_load(&loads_torn), atomic_load(&loads_failed));
    CHECK_MSG(atomic_load(&saves_failed) == 0, "%d saves failed, first: %s",
              atomic_load(&saves_failed), first_error[0]);
    CHECK_MSG(atomic_load(&loads_torn) + atomic_load(&loads_failed) == 0,
              "%d loads torn, %d failed, first: %s", atomic_load(&loads_torn),
              atomic_load(&loads_failed), first_error[1]);
    CHECK(atomic_load(&loads_ok) > 0);
    /* After the last save returned, the file is one whole save. */
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    char err[512] = "";
    CHECK_MSG(load_once(g, big, small, err, sizeof err) == 1, "final file: %s", err);
    dg_graph_free(g);
    int n = strays();
    CHECK_MSG(n == 0, "%d temporary files left in %s", n, dir);

    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    if (d) closedir(d);
    rmdir(dir);
    return test_summary("test_checkpoint_concurrent");
}
