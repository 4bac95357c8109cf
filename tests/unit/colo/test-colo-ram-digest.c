/*
 * Unit tests of the COLO RAM digests: the page hash, the comparison and
 * the wire encoding, including every way a peer's encoding can be broken.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "migration/colo-ram-digest.h"

#define PAGE 4096

static uint8_t *pattern_block(size_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = seed >> 16;
    }
    return buf;
}

static void test_zero_page(void)
{
    g_autofree uint8_t *zero = g_malloc0(PAGE);

    g_assert_cmphex(colo_page_hash(zero, PAGE), ==, 0);
    zero[PAGE - 1] = 1;
    g_assert_cmphex(colo_page_hash(zero, PAGE), !=, 0);
}

/* Any one flipped bit, anywhere in the page, changes the hash. */
static void test_every_bit_counts(void)
{
    g_autofree uint8_t *page = pattern_block(PAGE, 7);
    uint64_t h = colo_page_hash(page, PAGE);

    for (size_t byte = 0; byte < PAGE; byte += 61) {
        for (int bit = 0; bit < 8; bit++) {
            page[byte] ^= 1 << bit;
            g_assert_cmphex(colo_page_hash(page, PAGE), !=, h);
            page[byte] ^= 1 << bit;
        }
    }
    g_assert_cmphex(colo_page_hash(page, PAGE), ==, h);
}

/* Swapping two words is a change too (lanes are not summed). */
static void test_word_order_counts(void)
{
    g_autofree uint8_t *page = pattern_block(PAGE, 9);
    uint64_t h = colo_page_hash(page, PAGE);
    uint8_t tmp[8];

    memcpy(tmp, page, 8);
    memcpy(page, page + 32, 8);
    memcpy(page + 32, tmp, 8);
    g_assert_cmphex(colo_page_hash(page, PAGE), !=, h);
}

static ColoRamDigest *two_blocks(uint8_t *a, size_t alen, uint8_t *b,
                                 size_t blen)
{
    ColoRamDigest *d = colo_ram_digest_new(PAGE);

    colo_ram_digest_add_block(d, "pc.ram", a, alen);
    colo_ram_digest_add_block(d, "vga.vram", b, blen);
    return d;
}

static void test_equal(void)
{
    g_autofree uint8_t *a = pattern_block(64 * PAGE, 1);
    g_autofree uint8_t *b = pattern_block(8 * PAGE, 2);
    g_autoptr(ColoRamDigest) x = two_blocks(a, 64 * PAGE, b, 8 * PAGE);
    g_autoptr(ColoRamDigest) y = two_blocks(a, 64 * PAGE, b, 8 * PAGE);
    ColoRamDiff diff;

    g_assert_cmpuint(colo_ram_digest_pages(x), ==, 72);
    g_assert_true(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 0);
    g_assert_null(diff.block);
    colo_ram_diff_clear(&diff);
}

/* The first differing page is named; every differing page is counted. */
static void test_pages_differ(void)
{
    g_autofree uint8_t *a = pattern_block(64 * PAGE, 1);
    g_autofree uint8_t *b = pattern_block(8 * PAGE, 2);
    g_autoptr(ColoRamDigest) x = two_blocks(a, 64 * PAGE, b, 8 * PAGE);
    g_autoptr(ColoRamDigest) y = NULL;
    ColoRamDiff diff;

    b[3 * PAGE + 17] ^= 0x40;
    b[5 * PAGE] ^= 1;
    a[63 * PAGE + PAGE - 1] ^= 0x80;
    y = two_blocks(a, 64 * PAGE, b, 8 * PAGE);

    g_assert_false(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 3);
    g_assert_cmpstr(diff.block, ==, "pc.ram");
    g_assert_cmpuint(diff.offset, ==, 63 * PAGE);
    /* Samples are of the first block only. */
    g_assert_cmpuint(diff.nsample, ==, 1);
    g_assert_cmpuint(diff.sample[0], ==, 63 * PAGE);
    colo_ram_diff_clear(&diff);
}

/* A diff lists at most COLO_RAM_DIFF_SAMPLES pages, in order. */
static void test_samples(void)
{
    g_autofree uint8_t *a = pattern_block(32 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "pc.ram", a, 32 * PAGE);
    for (int i = 2; i < 32; i += 2) {
        a[i * PAGE] ^= 1;
    }
    colo_ram_digest_add_block(y, "pc.ram", a, 32 * PAGE);
    g_assert_false(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 15);
    g_assert_cmpuint(diff.nsample, ==, COLO_RAM_DIFF_SAMPLES);
    for (int i = 0; i < COLO_RAM_DIFF_SAMPLES; i++) {
        g_assert_cmpuint(diff.sample[i], ==, (2 + 2 * i) * PAGE);
    }
    colo_ram_diff_clear(&diff);
}

static void test_lookup(void)
{
    g_autofree uint8_t *a = pattern_block(4 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    uint64_t h = 0;

    colo_ram_digest_add_block(x, "pc.ram", a, 4 * PAGE);
    g_assert_true(colo_ram_digest_lookup(x, "pc.ram", 2 * PAGE + 5, &h));
    g_assert_cmphex(h, ==, colo_page_hash(a + 2 * PAGE, PAGE));
    g_assert_false(colo_ram_digest_lookup(x, "pc.ram", 4 * PAGE, &h));
    g_assert_false(colo_ram_digest_lookup(x, "vga.vram", 0, &h));
}

/* The order blocks come in does not matter; names do. */
static void test_block_order(void)
{
    g_autofree uint8_t *a = pattern_block(4 * PAGE, 1);
    g_autofree uint8_t *b = pattern_block(2 * PAGE, 2);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "one", a, 4 * PAGE);
    colo_ram_digest_add_block(x, "two", b, 2 * PAGE);
    colo_ram_digest_add_block(y, "two", b, 2 * PAGE);
    colo_ram_digest_add_block(y, "one", a, 4 * PAGE);
    g_assert_true(colo_ram_digest_compare(x, y, &diff));
    colo_ram_diff_clear(&diff);
}

static void test_block_missing_or_resized(void)
{
    g_autofree uint8_t *a = pattern_block(4 * PAGE, 1);
    g_autofree uint8_t *b = pattern_block(2 * PAGE, 2);
    g_autoptr(ColoRamDigest) full = two_blocks(a, 4 * PAGE, b, 2 * PAGE);
    g_autoptr(ColoRamDigest) short_b = two_blocks(a, 4 * PAGE, b, PAGE);
    g_autoptr(ColoRamDigest) only_a = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(only_a, "pc.ram", a, 4 * PAGE);

    /* A block the peer lacks differs in all its pages, either way round. */
    g_assert_false(colo_ram_digest_compare(full, only_a, &diff));
    g_assert_cmpuint(diff.pages, ==, 2);
    g_assert_cmpstr(diff.block, ==, "vga.vram");
    g_assert_cmpuint(diff.offset, ==, 0);
    colo_ram_diff_clear(&diff);
    g_assert_false(colo_ram_digest_compare(only_a, full, &diff));
    g_assert_cmpuint(diff.pages, ==, 2);
    g_assert_cmpstr(diff.block, ==, "vga.vram");
    colo_ram_diff_clear(&diff);

    g_assert_false(colo_ram_digest_compare(full, short_b, &diff));
    g_assert_cmpuint(diff.pages, ==, 2);
    g_assert_cmpstr(diff.block, ==, "vga.vram");
    colo_ram_diff_clear(&diff);
}

static void test_page_size_differs(void)
{
    g_autofree uint8_t *a = pattern_block(4 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE * 2);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "pc.ram", a, 4 * PAGE);
    colo_ram_digest_add_block(y, "pc.ram", a, 4 * PAGE);
    g_assert_false(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 4);
    colo_ram_diff_clear(&diff);
}

/* A block whose length is not a whole number of pages. */
static void test_partial_page(void)
{
    g_autofree uint8_t *a = pattern_block(2 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "rom", a, PAGE + 100);
    a[PAGE + 99] ^= 1;
    colo_ram_digest_add_block(y, "rom", a, PAGE + 100);
    g_assert_cmpuint(colo_ram_digest_pages(x), ==, 2);
    g_assert_false(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 1);
    g_assert_cmpuint(diff.offset, ==, PAGE);
    colo_ram_diff_clear(&diff);
}

static void test_round_trip(void)
{
    g_autofree uint8_t *a = pattern_block(16 * PAGE, 1);
    g_autofree uint8_t *b = g_malloc0(3 * PAGE);
    g_autoptr(ColoRamDigest) x = two_blocks(a, 16 * PAGE, b, 3 * PAGE);
    g_autoptr(GByteArray) enc = colo_ram_digest_encode(x);
    g_autoptr(ColoRamDigest) y = NULL;
    ColoRamDiff diff;

    y = colo_ram_digest_decode(enc->data, enc->len, 19, &error_abort);
    g_assert_true(colo_ram_digest_compare(x, y, &diff));
    colo_ram_diff_clear(&diff);
}

static void assert_refused(const uint8_t *buf, size_t len, uint64_t max_pages,
                           const char *why)
{
    Error *err = NULL;
    ColoRamDigest *d = colo_ram_digest_decode(buf, len, max_pages, &err);

    g_assert_null(d);
    g_assert_nonnull(err);
    if (why) {
        g_assert_nonnull(strstr(error_get_pretty(err), why));
    }
    error_free(err);
}

/* Every truncation of a valid encoding is refused, none is read past. */
static void test_truncated(void)
{
    g_autofree uint8_t *a = pattern_block(4 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = two_blocks(a, 4 * PAGE, a, 2 * PAGE);
    g_autoptr(GByteArray) enc = colo_ram_digest_encode(x);

    for (size_t len = 0; len < enc->len; len++) {
        /* A copy of exactly @len bytes, so ASan sees any overread. */
        g_autofree uint8_t *cut = g_memdup2(enc->data, len ? len : 1);

        assert_refused(cut, len, 1000, NULL);
    }
}

static void test_trailing_bytes(void)
{
    g_autofree uint8_t *a = pattern_block(PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(GByteArray) enc = NULL;
    static const uint8_t extra[3] = { 1, 2, 3 };

    colo_ram_digest_add_block(x, "pc.ram", a, PAGE);
    enc = colo_ram_digest_encode(x);
    g_byte_array_append(enc, extra, sizeof(extra));
    assert_refused(enc->data, enc->len, 1000, "after the last block");
}

static void test_bad_page_size(void)
{
    static const uint8_t zero_size[] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    static const uint8_t odd_size[] = { 0, 0, 0x10, 0x01, 0, 0, 0, 0 };
    static const uint8_t huge_size[] = { 0x80, 0, 0, 0, 0, 0, 0, 0 };

    assert_refused(zero_size, sizeof(zero_size), 10, "page size");
    assert_refused(odd_size, sizeof(odd_size), 10, "page size");
    assert_refused(huge_size, sizeof(huge_size), 10, "page size");
}

/* A peer cannot make us allocate more than our own RAM explains. */
static void test_too_many_pages(void)
{
    g_autofree uint8_t *a = g_malloc0(64 * PAGE);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(GByteArray) enc = NULL;
    static const uint8_t huge_block[] = {
        0, 0, 0x10, 0,              /* page size 4096 */
        0, 0, 0, 1,                 /* one block */
        0, 1, 'x',                  /* named "x" */
        0, 0, 0x10, 0, 0, 0, 0, 0,  /* of 16 TiB, with no hashes */
    };

    colo_ram_digest_add_block(x, "pc.ram", a, 64 * PAGE);
    enc = colo_ram_digest_encode(x);
    assert_refused(enc->data, enc->len, 63, "more than");
    assert_refused(huge_block, sizeof(huge_block), UINT64_MAX, "more than");
}

static void test_bad_names(void)
{
    static const uint8_t empty_name[] = {
        0, 0, 0x10, 0, 0, 0, 0, 1,
        0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    static const uint8_t nul_in_name[] = {
        0, 0, 0x10, 0, 0, 0, 0, 1,
        0, 2, 'a', 0,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    /* A name of 256 bytes, then a length: only the name is wrong. */
    uint8_t long_name[8 + 2 + 256 + 8] = {
        0, 0, 0x10, 0, 0, 0, 0, 1,
        0x01, 0x00,
    };

    memset(long_name + 10, 'x', 256);
    memset(long_name + 10 + 256, 0, 8);
    assert_refused(empty_name, sizeof(empty_name), 10, "name");
    assert_refused(nul_in_name, sizeof(nul_in_name), 10, "name");
    assert_refused(long_name, sizeof(long_name), 10, "name");
}

/* A peer cannot name a block twice, nor send a flood of blocks. */
static void test_duplicates_and_block_count(void)
{
    g_autofree uint8_t *a = pattern_block(PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(GByteArray) enc = NULL;
    uint8_t many[8] = { 0, 0, 0x10, 0 };

    colo_ram_digest_add_block(x, "pc.ram", a, PAGE);
    colo_ram_digest_add_block(x, "pc.ram", a, PAGE);
    enc = colo_ram_digest_encode(x);
    assert_refused(enc->data, enc->len, 1000, "twice");

    stl_be_p(many + 4, COLO_RAM_DIGEST_MAX_BLOCKS + 1);
    assert_refused(many, sizeof(many), 1000, "blocks");
}

/* Blocks without pages still count when one side lacks them. */
static void test_empty_blocks(void)
{
    g_autofree uint8_t *a = pattern_block(2 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) z = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "empty", a, 0);
    colo_ram_digest_add_block(x, "pc.ram", a, 2 * PAGE);
    colo_ram_digest_add_block(y, "empty", a, 0);
    colo_ram_digest_add_block(y, "pc.ram", a, 2 * PAGE);
    colo_ram_digest_add_block(z, "pc.ram", a, 2 * PAGE);

    g_assert_true(colo_ram_digest_compare(x, y, &diff));
    colo_ram_diff_clear(&diff);
    g_assert_false(colo_ram_digest_compare(x, z, &diff));
    g_assert_cmpuint(diff.pages, ==, 1);
    g_assert_cmpstr(diff.block, ==, "empty");
    colo_ram_diff_clear(&diff);
    g_assert_false(colo_ram_digest_compare(z, x, &diff));
    g_assert_cmpuint(diff.pages, ==, 1);
    colo_ram_diff_clear(&diff);
}

/* This side's block shorter than the peer's: all the peer's pages count. */
static void test_shorter_block(void)
{
    g_autofree uint8_t *a = pattern_block(8 * PAGE, 1);
    g_autoptr(ColoRamDigest) x = colo_ram_digest_new(PAGE);
    g_autoptr(ColoRamDigest) y = colo_ram_digest_new(PAGE);
    ColoRamDiff diff;

    colo_ram_digest_add_block(x, "pc.ram", a, 2 * PAGE);
    colo_ram_digest_add_block(y, "pc.ram", a, 8 * PAGE);
    g_assert_false(colo_ram_digest_compare(x, y, &diff));
    g_assert_cmpuint(diff.pages, ==, 8);
    colo_ram_diff_clear(&diff);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/colo/ram-digest/hash/zero-page", test_zero_page);
    g_test_add_func("/colo/ram-digest/hash/every-bit", test_every_bit_counts);
    g_test_add_func("/colo/ram-digest/hash/word-order",
                    test_word_order_counts);
    g_test_add_func("/colo/ram-digest/compare/equal", test_equal);
    g_test_add_func("/colo/ram-digest/compare/pages", test_pages_differ);
    g_test_add_func("/colo/ram-digest/compare/block-order", test_block_order);
    g_test_add_func("/colo/ram-digest/compare/samples", test_samples);
    g_test_add_func("/colo/ram-digest/compare/lookup", test_lookup);
    g_test_add_func("/colo/ram-digest/compare/block-missing",
                    test_block_missing_or_resized);
    g_test_add_func("/colo/ram-digest/compare/page-size",
                    test_page_size_differs);
    g_test_add_func("/colo/ram-digest/compare/partial-page",
                    test_partial_page);
    g_test_add_func("/colo/ram-digest/wire/round-trip", test_round_trip);
    g_test_add_func("/colo/ram-digest/wire/truncated", test_truncated);
    g_test_add_func("/colo/ram-digest/wire/trailing", test_trailing_bytes);
    g_test_add_func("/colo/ram-digest/wire/page-size", test_bad_page_size);
    g_test_add_func("/colo/ram-digest/wire/too-many-pages",
                    test_too_many_pages);
    g_test_add_func("/colo/ram-digest/wire/names", test_bad_names);
    g_test_add_func("/colo/ram-digest/wire/duplicates",
                    test_duplicates_and_block_count);
    g_test_add_func("/colo/ram-digest/compare/empty-blocks",
                    test_empty_blocks);
    g_test_add_func("/colo/ram-digest/compare/shorter-block",
                    test_shorter_block);
    return g_test_run();
}
