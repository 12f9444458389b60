/* Parallel loops with a partition that never changes results, the reproducible parallel
 * sum, the thread pool under them, and the floating-point mode kernels run in.
 *
 * The pool. A parallel loop is cut into chunks that the calling thread and the pool's
 * workers claim, each its own share first and then what the others left; the caller never
 * waits for a worker that has not started, only for chunks a worker has claimed. On a quiet
 * machine the workers spin briefly between loops and pick up work within microseconds; on
 * a machine whose other cores are busy with other processes a worker that is not scheduled
 * simply gets no work, and the caller finishes the loop alone instead of waiting out a
 * time slice at a barrier (OpenMP's fork/join did, costing up to 100 times the work of a
 * small model). Which
 * thread runs a chunk never matters: every index is written by exactly one chunk, and
 * sums combine fixed blocks in a fixed order, so results are bitwise identical for any
 * thread count and any scheduling. Loops started while the pool is busy (another thread
 * running another graph, or a loop nested in a chunk) run on their caller's thread.
 *
 * A worker can still claim a chunk and then lose its core to another process for a time
 * slice (milliseconds), while the caller, done with its own chunks, waits. When the caller
 * waits longer for a loop's claimed chunks than it took to run its own, the next loops run
 * on the caller's thread alone, 1, 2, 4, ... up to 256 of them in a row while it keeps
 * happening; one loop without such a wait starts the count again at 1. On a quiet machine
 * this never triggers; on a crowded one the default thread count then costs about what one
 * thread does, instead of waiting out other processes' time slices. Idle workers spin
 * (about 40 us here) before they sleep, unless the clock shows they lost their core while
 * spinning: then the cores are oversubscribed and a spinning worker would take time from
 * the caller, so it sleeps at once; and while every helper sleeps, loops too small to pay
 * for waking one run on the caller.
 *
 * Denormals: while a run executes (and in every chunk of it, on any thread) the CPU
 * flushes subnormal results to zero and treats subnormal inputs as zero (FTZ/DAZ on x86,
 * FZ on ARM64). Subnormals cost tens to hundreds of cycles each on most CPUs, and
 * optimizer moments of gradients that stay at zero decay into them and stay there; flushing
 * changes no result a float32 network can distinguish. The mode of the caller's thread and
 * of the workers is restored when each run or chunk ends, so the user's own code never
 * sees it. */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define DG_FP_X86 1
#endif

unsigned dg__fp_get(void) {
#if defined(DG_FP_X86)
    return _mm_getcsr();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (unsigned)v;
#else
    return 0;
#endif
}

void dg__fp_set(unsigned mode) {
#if defined(DG_FP_X86)
    _mm_setcsr(mode);
#elif defined(__aarch64__)
    uint64_t v = mode;
    __asm__ volatile("msr fpcr, %0" ::"r"(v));
#else
    (void)mode;
#endif
}

unsigned dg__fp_enter(void) {
    unsigned old = dg__fp_get();
#if defined(DG_FP_X86)
    dg__fp_set(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
#elif defined(__aarch64__)
    dg__fp_set(old | (1u << 24)); /* FZ */
#endif
    return old;
}

static _Thread_local int serial_only;           /* dg__serial: the tuner's choice */
static _Thread_local int64_t parallel_requests; /* loops that asked for threads */

void dg__serial(int on) { serial_only = on != 0; }
int64_t dg__parallel_requests(void) { return parallel_requests; }

/* Below ~32k elementary operations a parallel region costs more than it saves. */
#define MIN_PARALLEL_WORK ((int64_t)32768)

int dg_threads_for(int64_t work) {
    if (work < MIN_PARALLEL_WORK || serial_only) return 1;
    int t = dg_get_num_threads();
    int64_t max_useful = work / 16384;
    return max_useful < t ? (int)max_useful : t;
}

/* ---- the pool ---- */

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_WORKERS = 255, CHUNKS_PER_THREAD = 4, SPIN_BEFORE_SLEEP = 4000, MAX_BACKOFF = 256 };
/* Elementary operations of a loop worth waking sleeping workers for (16 times the size
 * where a parallel loop with spinning workers starts to pay). */
#define WAKE_WORK ((int64_t)1 << 19)

/* A claim counter on its own cache line: the slot's owner bumps it without disturbing
 * anyone else's line unless somebody steals from it. */
typedef struct {
    _Alignas(64) atomic_int_fast64_t next; /* next chunk of the slot to claim */
    int64_t end;                           /* one past the slot's last chunk */
} claim_line;

/* One loop at a time. `generation` is odd while a loop is open: a worker that joins checks it
 * after counting itself in `active`, so once the caller has closed the loop (made the
 * generation even) and seen `active` fall to zero, no worker can touch the fields again.
 * The fields the caller writes per loop share a line with `generation` (a worker reads them
 * together), `active` has its own, and so does each slot's claim counter. */
static struct pool {
    atomic_flag busy; /* a caller owns the pool */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int n_workers; /* threads started so far */
    /* after a loop that waited for a descheduled worker: loops to run alone, and the
     * length of the next such run (only the pool's owner touches these) */
    int alone_left, backoff;
    _Alignas(64) atomic_uint_fast64_t generation;
    /* the open loop */
    dg_range_fn fn;
    void *ctx;
    int64_t n, n_chunks;
    int helpers; /* workers 0 .. helpers-1 may take part */
    unsigned fp_mode;
    _Alignas(64) atomic_int active; /* workers inside the open loop */
    atomic_int sleepers;            /* workers waiting on `wake` */
    /* slot 0 is the caller's, slot i + 1 worker i's: a loop's chunks are dealt to the slots
     * in order, each thread runs its own slot's first and then takes what is left of the
     * others'. On a quiet machine every thread gets the same part of every loop, step after
     * step, so the parameters and optimizer state it updates stay in its core's cache. */
    claim_line slot[MAX_WORKERS + 1];
} pool = {.busy = ATOMIC_FLAG_INIT,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .backoff = 1};

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static _Thread_local int in_chunk; /* loops nested in a chunk run inline */

static void run_slot(claim_line *sl) {
    int64_t c;
    while ((c = atomic_fetch_add_explicit(&sl->next, 1, memory_order_relaxed)) < sl->end) {
        int64_t lo = pool.n * c / pool.n_chunks, hi = pool.n * (c + 1) / pool.n_chunks;
        if (hi > lo) pool.fn(pool.ctx, lo, hi);
    }
}

/* Runs slot `own`'s chunks, then whatever the other slots have left. */
static void run_chunks(int own) {
    int slots = pool.helpers + 1;
    for (int i = 0; i < slots; i++) run_slot(&pool.slot[(own + i) % slots]);
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    uint_fast64_t seen = 0;
    in_chunk = 1;
    for (;;) {
        uint_fast64_t gen;
        double checked = 0;
        for (int spin = 0;; spin++) {
            gen = atomic_load(&pool.generation);
            if (gen != seen && (gen & 1)) break;
            int spinning = spin < SPIN_BEFORE_SLEEP;
            if (spinning && spin % 64 == 0) {
                /* a gap between looks at the clock means this thread lost its core: the
                 * cores are shared with other processes, and spinning on would take time
                 * from the thread that runs the graph; sleep instead */
                double t = seconds_now();
                if (spin > 0 && t - checked > 200e-6) spinning = 0;
                checked = t;
            }
            if (spinning) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.generation) == gen) pthread_cond_wait(&pool.wake, &pool.mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mu);
            spin = 0;
        }
        seen = gen;
        atomic_fetch_add(&pool.active, 1);
        if (atomic_load(&pool.generation) == gen && index < pool.helpers) {
            unsigned old = dg__fp_get();
            dg__fp_set(pool.fp_mode);
            run_chunks(index + 1);
            dg__fp_set(old);
        }
        atomic_fetch_sub(&pool.active, 1);
    }
    return NULL;
}

/* Starts workers up to `want` (not counting the caller); returns how many exist. */
static int ensure_workers(int want) {
    if (want > MAX_WORKERS) want = MAX_WORKERS;
    while (pool.n_workers < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)pool.n_workers);
        pthread_attr_destroy(&attr);
        if (err) break; /* fewer threads, same results */
        pool.n_workers++;
    }
    return pool.n_workers;
}

void dg_parallel_for(int64_t n, int64_t cost, dg_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int64_t work = n * (cost > 0 ? cost : 1);
    if (!in_chunk && n > 1 && work >= MIN_PARALLEL_WORK) parallel_requests++;
    int nt = dg_threads_for(work);
    if (nt > n) nt = (int)n;
    if (nt <= 1 || in_chunk || atomic_flag_test_and_set(&pool.busy)) {
        fn(ctx, 0, n);
        return;
    }
    if (pool.alone_left > 0) { /* a worker was recently descheduled mid-loop */
        pool.alone_left--;
        atomic_flag_clear(&pool.busy);
        fn(ctx, 0, n);
        return;
    }
    int helpers = ensure_workers(nt - 1);
    if (helpers > nt - 1) helpers = nt - 1;
    if (n * (cost > 0 ? cost : 1) < WAKE_WORK && atomic_load(&pool.sleepers) >= helpers) {
        /* every helper sleeps (it lost its core, or nothing ran for a while): waking one
         * takes a system call and tens of microseconds, more than a small loop saves */
        atomic_flag_clear(&pool.busy);
        fn(ctx, 0, n);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.n_chunks = (int64_t)(helpers + 1) * CHUNKS_PER_THREAD < n
                        ? (int64_t)(helpers + 1) * CHUNKS_PER_THREAD
                        : n;
    pool.helpers = helpers;
    pool.fp_mode = dg__fp_get(); /* the caller's mode (flush or not) holds in every chunk */
    for (int t = 0; t <= helpers; t++) {
        int64_t first = pool.n_chunks * t / (helpers + 1);
        atomic_store_explicit(&pool.slot[t].next, first, memory_order_relaxed);
        pool.slot[t].end = pool.n_chunks * (t + 1) / (helpers + 1);
    }
    atomic_fetch_add(&pool.generation, 1); /* open (sequentially consistent with the
                                            * sleepers and active counts) */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    double start = seconds_now();
    in_chunk = 1;
    run_chunks(0);
    in_chunk = 0;
    atomic_fetch_add(&pool.generation, 1); /* closed */
    double own_done = seconds_now();
    /* only workers that joined (and so may hold a chunk) are waited for */
    for (int spin = 0; atomic_load(&pool.active) > 0; spin++)
        if (spin < 64)
            CPU_RELAX();
        else
            sched_yield();
    double waited = seconds_now() - own_done;
    if (waited > own_done - start && waited > 50e-6) {
        pool.alone_left = pool.backoff;
        if (pool.backoff < MAX_BACKOFF) pool.backoff *= 2;
    } else {
        pool.backoff = 1;
    }
    atomic_flag_clear(&pool.busy);
}

#define SUM_MAX_BLOCKS 256

typedef struct {
    dg_sum_fn fn;
    void *ctx;
    int64_t n, block;
    double *partial;
} psum_ctx;

static void psum_range(void *ctx, int64_t lo, int64_t hi) {
    psum_ctx *c = ctx;
    for (int64_t b = lo; b < hi; b++) {
        int64_t s = b * c->block, e = s + c->block < c->n ? s + c->block : c->n;
        c->partial[b] = c->fn(c->ctx, s, e);
    }
}

double dg_parallel_sum(int64_t n, int64_t cost, dg_sum_fn fn, void *ctx) {
    if (n <= 0) return 0.0;
    if (cost < 1) cost = 1;
    /* ~16k elementary operations per block: below dg_threads_for's threshold, so small
     * inputs stay one sequential pass */
    int64_t block = 16384 / cost > 0 ? 16384 / cost : 1;
    if (n <= block) return fn(ctx, 0, n);
    if ((n + block - 1) / block > SUM_MAX_BLOCKS) block = (n + SUM_MAX_BLOCKS - 1) / SUM_MAX_BLOCKS;
    int64_t blocks = (n + block - 1) / block;
    double partial[SUM_MAX_BLOCKS];
    psum_ctx c = {fn, ctx, n, block, partial};
    dg_parallel_for(blocks, block * cost, psum_range, &c);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) acc += partial[b];
    return acc;
}
