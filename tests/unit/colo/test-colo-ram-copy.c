/*
 * Unit tests of the COLO cache-to-RAM copy: every recorded byte lands
 * where it belongs, nothing else is written, whatever the runs and the
 * number of threads.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "migration/colo-ram-copy.h"

#define PAGE 4096
#define AREA (64 * PAGE)

/* Source and destination areas, and what the destination must become. */
typedef struct Areas {
    uint8_t *src;
    uint8_t *dst;
    uint8_t *want;
} Areas;

static void areas_init(Areas *a, size_t len)
{
    uint32_t seed = 12345;

    a->src = g_malloc(len);
    a->dst = g_malloc(len);
    a->want = g_malloc(len);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245 + 12345;
        a->src[i] = seed >> 16;
    }
    memset(a->dst, 0xa5, len);
    memset(a->want, 0xa5, len);
}

static void areas_free(Areas *a)
{
    g_free(a->src);
    g_free(a->dst);
    g_free(a->want);
}

/* Record [@off, @off + @len) for copying, and expect it copied. */
static void expect_copy(ColoRamCopy *c, Areas *a, size_t off, size_t len)
{
    colo_ram_copy_add(a->dst + off, a->src + off, len, c);
    memcpy(a->want + off, a->src + off, len);
}

static void check_areas(const Areas *a, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (a->dst[i] != a->want[i]) {
            g_test_message("byte %zu: 0x%02x, want 0x%02x", i, a->dst[i],
                           a->want[i]);
            g_assert_not_reached();
        }
    }
}

/* Scattered runs of odd lengths, on 1 to 7 threads. */
static void test_scattered_runs(void)
{
    static const struct { size_t off, len; } runs[] = {
        { 0, PAGE }, { 2 * PAGE, 3 * PAGE }, { 6 * PAGE, 1 },
        { 7 * PAGE + 17, 2 * PAGE - 17 }, { 12 * PAGE, 20 * PAGE },
        { 40 * PAGE, PAGE / 2 }, { 63 * PAGE, PAGE },
    };

    for (unsigned threads = 1; threads <= 7; threads++) {
        g_autoptr(ColoRamCopy) c = colo_ram_copy_new();
        Areas a;
        size_t total = 0;

        areas_init(&a, AREA);
        for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
            expect_copy(c, &a, runs[i].off, runs[i].len);
            total += runs[i].len;
        }
        g_assert_cmpuint(colo_ram_copy_pending(c), ==, total);
        colo_ram_copy_run_on(c, threads);
        g_assert_cmpuint(colo_ram_copy_pending(c), ==, 0);
        check_areas(&a, AREA);
        areas_free(&a);
    }
}

/* More threads than pages: the extra threads get nothing to do. */
static void test_more_threads_than_bytes(void)
{
    g_autoptr(ColoRamCopy) c = colo_ram_copy_new();
    Areas a;

    areas_init(&a, AREA);
    expect_copy(c, &a, 5 * PAGE, PAGE);
    colo_ram_copy_run_on(c, COLO_RAM_COPY_MAX_THREADS + 3);
    check_areas(&a, AREA);
    areas_free(&a);
}

/* Nothing recorded: nothing written, on any number of threads. */
static void test_nothing(void)
{
    g_autoptr(ColoRamCopy) c = colo_ram_copy_new();
    Areas a;

    areas_init(&a, AREA);
    colo_ram_copy_add(a.dst, a.src, 0, c);
    colo_ram_copy_run_on(c, 1);
    colo_ram_copy_run_on(c, 4);
    g_assert_cmpuint(colo_ram_copy_run(c), ==, 1);
    check_areas(&a, AREA);
    areas_free(&a);
}

/* The object is reused from one checkpoint to the next. */
static void test_reuse(void)
{
    g_autoptr(ColoRamCopy) c = colo_ram_copy_new();
    Areas a;

    areas_init(&a, AREA);
    for (unsigned round = 0; round < 8; round++) {
        expect_copy(c, &a, round * 8 * PAGE, (round + 1) * PAGE);
        colo_ram_copy_run_on(c, 1 + round % 4);
        check_areas(&a, AREA);
        /* The next round's source differs: copies of stale runs show. */
        for (size_t i = 0; i < AREA; i++) {
            a.src[i] ^= 0x5a;
        }
    }
    areas_free(&a);
}

/*
 * colo_ram_copy_run() decides the thread count: one below the threshold,
 * several above it where the host has CPUs, and the bytes right.
 */
static void test_threshold(void)
{
    size_t big = 2 * COLO_RAM_COPY_PARALLEL_MIN;
    g_autoptr(ColoRamCopy) c = colo_ram_copy_new();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    Areas a;
    unsigned threads;

    areas_init(&a, big);
    expect_copy(c, &a, 0, COLO_RAM_COPY_PARALLEL_MIN - PAGE);
    g_assert_cmpuint(colo_ram_copy_run(c), ==, 1);
    check_areas(&a, big);

    /* Many runs, cut into shares across their boundaries. */
    for (size_t off = 0; off < big; off += 3 * PAGE) {
        expect_copy(c, &a, off, MIN(3 * PAGE, big - off));
    }
    threads = colo_ram_copy_run(c);
    g_assert_cmpuint(threads, ==,
                     cpus > 1 ? MIN(cpus, COLO_RAM_COPY_MAX_THREADS) : 1);
    check_areas(&a, big);
    areas_free(&a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/colo/ram-copy/scattered-runs", test_scattered_runs);
    g_test_add_func("/colo/ram-copy/more-threads-than-bytes",
                    test_more_threads_than_bytes);
    g_test_add_func("/colo/ram-copy/nothing", test_nothing);
    g_test_add_func("/colo/ram-copy/reuse", test_reuse);
    g_test_add_func("/colo/ram-copy/threshold", test_threshold);
    return g_test_run();
}
