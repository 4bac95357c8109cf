/*
 * Copying a checkpoint's pages from the COLO RAM cache into guest RAM,
 * spread over threads.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "block/thread-pool.h"
#include "migration/colo-ram-copy.h"

/* One contiguous range: the COLO cache's pages at @src go to @dst. */
typedef struct ColoCopyRun {
    uint8_t *dst;
    const uint8_t *src;
    size_t len;
} ColoCopyRun;

struct ColoRamCopy {
    GArray *runs;           /* of ColoCopyRun, in the order added */
    size_t bytes;           /* their total length */
    /* Made on first use and kept: starting threads per checkpoint costs. */
    ThreadPool *pool;
    /* Threads worth using, from the host's CPUs (read once, not per copy). */
    unsigned max_threads;
};

/* One thread's part: @bytes from byte @skip of run @first onwards. */
typedef struct ColoCopyShare {
    const ColoCopyRun *runs;
    size_t first;
    size_t skip;
    size_t bytes;
} ColoCopyShare;

ColoRamCopy *colo_ram_copy_new(void)
{
    ColoRamCopy *c = g_new0(ColoRamCopy, 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    c->runs = g_array_new(false, false, sizeof(ColoCopyRun));
    c->max_threads = cpus > 1 ? MIN(COLO_RAM_COPY_MAX_THREADS, cpus) : 1;
    return c;
}

void colo_ram_copy_free(ColoRamCopy *c)
{
    if (c) {
        if (c->pool) {
            thread_pool_free(c->pool);
        }
        g_array_unref(c->runs);
        g_free(c);
    }
}

void colo_ram_copy_add(void *dst, const void *src, size_t len, void *opaque)
{
    ColoRamCopy *c = opaque;

    if (len) {
        c->bytes += len;
        g_array_append_val(c->runs, ((ColoCopyRun){ dst, src, len }));
    }
}

size_t colo_ram_copy_pending(const ColoRamCopy *c)
{
    return c->bytes;
}

static int colo_copy_share(void *opaque)
{
    const ColoCopyShare *s = opaque;
    size_t left = s->bytes;
    size_t skip = s->skip;

    for (size_t i = s->first; left; i++) {
        const ColoCopyRun *r = &s->runs[i];
        size_t n = MIN(r->len - skip, left);

        memcpy(r->dst + skip, r->src + skip, n);
        left -= n;
        skip = 0;
    }
    return 0;
}

/*
 * Cut the runs into @threads shares of nearly equal bytes, each a multiple
 * of 4 KiB long: with runs of whole pages, no two threads write one page.
 */
static void colo_copy_split(const ColoRamCopy *c, ColoCopyShare *shares,
                            unsigned threads)
{
    size_t per = ROUND_UP(DIV_ROUND_UP(c->bytes, threads), 4 * KiB);
    size_t run = 0;
    size_t skip = 0;
    size_t left = c->bytes;

    for (unsigned t = 0; t < threads; t++) {
        size_t want = MIN(per, left);

        shares[t] = (ColoCopyShare) {
            .runs = (const ColoCopyRun *)c->runs->data,
            .first = run, .skip = skip, .bytes = want,
        };
        left -= want;
        /* Advance the cursor past this share. */
        while (want) {
            const ColoCopyRun *r = &g_array_index(c->runs, ColoCopyRun, run);
            size_t n = MIN(r->len - skip, want);

            want -= n;
            skip += n;
            if (skip == r->len) {
                run++;
                skip = 0;
            }
        }
    }
}

static void colo_ram_copy_forget(ColoRamCopy *c)
{
    g_array_set_size(c->runs, 0);
    c->bytes = 0;
}

void colo_ram_copy_run_on(ColoRamCopy *c, unsigned threads)
{
    g_autofree ColoCopyShare *shares = NULL;

    assert(threads >= 1);
    if (threads == 1 || !c->bytes) {
        ColoCopyShare all = {
            .runs = (const ColoCopyRun *)c->runs->data,
            .bytes = c->bytes,
        };

        colo_copy_share(&all);
        colo_ram_copy_forget(c);
        return;
    }

    shares = g_new(ColoCopyShare, threads);
    colo_copy_split(c, shares, threads);
    if (!c->pool) {
        c->pool = thread_pool_new();
    }
    /*
     * Not thread_pool_submit_immediate(): it sizes the pool from the work
     * still pending, which is none when a share has already been copied.
     */
    thread_pool_set_max_threads(c->pool, threads - 1);
    for (unsigned t = 1; t < threads; t++) {
        thread_pool_submit(c->pool, colo_copy_share, &shares[t], NULL);
    }
    colo_copy_share(&shares[0]);
    thread_pool_wait(c->pool);
    colo_ram_copy_forget(c);
}

unsigned colo_ram_copy_run(ColoRamCopy *c)
{
    unsigned threads = 1;

    if (c->bytes >= COLO_RAM_COPY_PARALLEL_MIN) {
        /* Each thread gets at least half the threshold's worth. */
        threads = MIN(c->max_threads,
                      c->bytes / (COLO_RAM_COPY_PARALLEL_MIN / 2));
    }
    colo_ram_copy_run_on(c, threads);
    return threads;
}
