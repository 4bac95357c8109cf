/*
 * Write load for bench/block-replication-overhead.py: 4 KiB writes at
 * uniformly random aligned offsets, DEPTH requests in flight at all times,
 * against a block graph opened in this process, and the latency of each.
 *
 *   colo-block-write-bench [-d DEPTH] [-t SECONDS] [-r] FILENAME
 *
 * FILENAME is anything the block layer opens, typically "json:{...}".  With
 * -r the replication nodes in the graph are started as a primary, as COLO
 * would do, before the load begins.  Prints one line of key=value figures.
 *
 * It runs the I/O in coroutines on the main AioContext, like a guest
 * device without an iothread.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/coroutine.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "block/block.h"
#include "block/replication.h"
#include "system/block-backend.h"

#define BENCH_BLOCK 4096

typedef struct Bench {
    BlockBackend *blk;
    int64_t blocks;         /* disk size in BENCH_BLOCK units */
    int64_t deadline_ns;    /* no request starts after this */
    GRand *rng;
    void *buf;
    GArray *lat_ns;         /* one int64_t per completed request */
    int running;            /* workers not yet finished */
    int error;              /* first failed request */
} Bench;

static void coroutine_fn bench_worker(void *opaque)
{
    Bench *b = opaque;

    while (!b->error && get_clock() < b->deadline_ns) {
        int64_t off = g_rand_int_range(b->rng, 0, b->blocks) *
                      (int64_t)BENCH_BLOCK;
        int64_t start = get_clock();
        int ret = blk_co_pwrite(b->blk, off, BENCH_BLOCK, b->buf, 0);
        int64_t lat = get_clock() - start;

        if (ret < 0) {
            b->error = ret;
            break;
        }
        g_array_append_val(b->lat_ns, lat);
    }
    b->running--;
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static void bench_report(Bench *b, int depth, int64_t elapsed_ns)
{
    int64_t *lat = (int64_t *)b->lat_ns->data;
    guint n = b->lat_ns->len;
    double secs = elapsed_ns / 1e9;
    double sum = 0;
    guint i;

    for (i = 0; i < n; i++) {
        sum += lat[i];
    }
    qsort(lat, n, sizeof(*lat), cmp_int64);
    printf("depth=%d requests=%u seconds=%.3f iops=%.0f mbps=%.2f "
           "mean_us=%.1f p99_us=%.1f\n", depth, n, secs, n / secs,
           n * (double)BENCH_BLOCK / secs / 1e6,
           n ? sum / n / 1e3 : 0.0,
           n ? lat[MIN(n - 1, (guint)(n * 0.99))] / 1e3 : 0.0);
}

static void usage(const char *argv0)
{
    error_report("usage: %s [-d DEPTH] [-t SECONDS] [-r] FILENAME", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    Bench b = { 0 };
    int depth = 1, seconds = 5, opt, i;
    bool replicate = false;
    int64_t len, begin;

    while ((opt = getopt(argc, argv, "d:t:r")) != -1) {
        switch (opt) {
        case 'd':
            depth = atoi(optarg);
            break;
        case 't':
            seconds = atoi(optarg);
            break;
        case 'r':
            replicate = true;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (optind != argc - 1 || depth < 1 || seconds < 1) {
        usage(argv[0]);
    }

    error_init(argv[0]);
    module_call_init(MODULE_INIT_QOM);
    qemu_init_main_loop(&error_fatal);
    bdrv_init();

    b.blk = blk_new_open(argv[optind], NULL, NULL, BDRV_O_RDWR,
                         &error_fatal);
    len = blk_getlength(b.blk);
    if (len < BENCH_BLOCK || len / BENCH_BLOCK > G_MAXINT32) {
        error_report("unusable disk length %" PRId64, len);
        return 1;
    }
    if (replicate) {
        /*
         * The replication manager wants the BQL, which this program's main
         * thread stands for.  The tools' BQL stub can only be told "held"
         * for every thread at once, which would mislead the NBD client's
         * connection thread: so only once the graph is open.
         */
        rust_bql_mock_lock();
        replication_start_all(REPLICATION_MODE_PRIMARY, &error_fatal);
    }

    b.blocks = len / BENCH_BLOCK;
    b.rng = g_rand_new_with_seed(1);
    b.buf = blk_blockalign(b.blk, BENCH_BLOCK);
    memset(b.buf, 0xa5, BENCH_BLOCK);
    b.lat_ns = g_array_new(false, false, sizeof(int64_t));

    begin = get_clock();
    b.deadline_ns = begin + seconds * NANOSECONDS_PER_SECOND;
    b.running = depth;
    for (i = 0; i < depth; i++) {
        aio_co_enter(qemu_get_aio_context(),
                     qemu_coroutine_create(bench_worker, &b));
    }
    while (b.running) {
        main_loop_wait(false);
    }
    if (b.error) {
        error_report("a write failed: %s", strerror(-b.error));
        return 1;
    }
    bench_report(&b, depth, get_clock() - begin);

    if (replicate) {
        replication_stop_all(false, &error_fatal);
    }
    blk_unref(b.blk);
    qemu_vfree(b.buf);
    g_rand_free(b.rng);
    g_array_free(b.lat_ns, true);
    return 0;
}
