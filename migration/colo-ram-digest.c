/*
 * COLO RAM digests: one 64-bit hash per guest page.
 *
 * The hash is not cryptographic: it guards against bugs, not against a
 * peer that wants to hide a difference (that peer could lie about the
 * verdict anyway).  It has to be fast, because a verified checkpoint hashes
 * all of guest RAM on both sides while the VMs are stopped.  Four lanes of
 * multiply-xorshift steps keep a core's multipliers busy; each step is a
 * bijection of the lane for a fixed input word and of the word for a fixed
 * lane, so two pages that differ in one word always differ in that lane.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/host-utils.h"
#include "qemu/units.h"
#include "colo-ram-digest.h"

#define LANE_MUL    0x9e3779b97f4a7c15ULL
#define FINAL_MUL_A 0xbf58476d1ce4e5b9ULL
#define FINAL_MUL_B 0x94d049bb133111ebULL

typedef struct ColoBlockDigest {
    char *name;
    uint64_t length;        /* bytes, as the RAMBlock's used length */
    uint64_t npages;
    uint64_t *hash;         /* one per page */
} ColoBlockDigest;

struct ColoRamDigest {
    uint32_t page_size;
    GPtrArray *blocks;      /* of ColoBlockDigest, in the order added */
};

static inline uint64_t lane_step(uint64_t lane, uint64_t word)
{
    lane = (lane ^ word) * LANE_MUL;
    return lane ^ (lane >> 32);
}

static inline uint64_t final_mix(uint64_t h)
{
    h = (h ^ (h >> 30)) * FINAL_MUL_A;
    h = (h ^ (h >> 27)) * FINAL_MUL_B;
    return h ^ (h >> 31);
}

uint64_t colo_page_hash(const void *page, size_t size)
{
    const uint8_t *p = page;
    uint64_t lane[4] = { 1, 2, 3, 4 };
    uint64_t h;

    assert(size % 32 == 0);
    if (buffer_is_zero(page, size)) {
        return 0;
    }
    for (size_t i = 0; i < size; i += 32) {
        lane[0] = lane_step(lane[0], ldq_le_p(p + i));
        lane[1] = lane_step(lane[1], ldq_le_p(p + i + 8));
        lane[2] = lane_step(lane[2], ldq_le_p(p + i + 16));
        lane[3] = lane_step(lane[3], ldq_le_p(p + i + 24));
    }
    h = final_mix(lane[0]);
    h = final_mix(h ^ lane[1]);
    h = final_mix(h ^ lane[2]);
    h = final_mix(h ^ lane[3]);
    /* 0 stands for a page of zeroes only. */
    return h ? h : 1;
}

static void block_digest_free(gpointer data)
{
    ColoBlockDigest *b = data;

    g_free(b->name);
    g_free(b->hash);
    g_free(b);
}

ColoRamDigest *colo_ram_digest_new(uint32_t page_size)
{
    ColoRamDigest *d = g_new0(ColoRamDigest, 1);

    assert(is_power_of_2(page_size) && page_size >= 32);
    d->page_size = page_size;
    d->blocks = g_ptr_array_new_with_free_func(block_digest_free);
    return d;
}

void colo_ram_digest_free(ColoRamDigest *d)
{
    if (d) {
        g_ptr_array_free(d->blocks, true);
        g_free(d);
    }
}

/* Pages in @length bytes, a partial last one included; cannot overflow. */
static uint64_t pages_of(uint64_t length, uint32_t page_size)
{
    return length / page_size + !!(length % page_size);
}

static ColoBlockDigest *block_digest_new(const char *name, uint64_t length,
                                         uint32_t page_size)
{
    ColoBlockDigest *b = g_new0(ColoBlockDigest, 1);

    b->name = g_strdup(name);
    b->length = length;
    b->npages = pages_of(length, page_size);
    b->hash = g_new(uint64_t, b->npages);
    return b;
}

void colo_ram_digest_add_block(ColoRamDigest *d, const char *name,
                               const uint8_t *host, uint64_t length)
{
    ColoBlockDigest *b = block_digest_new(name, length, d->page_size);
    uint64_t whole = length / d->page_size;

    assert(strlen(name) < COLO_RAM_DIGEST_NAME_MAX);
    for (uint64_t i = 0; i < whole; i++) {
        b->hash[i] = colo_page_hash(host + i * d->page_size, d->page_size);
    }
    if (whole < b->npages) {
        g_autofree uint8_t *last = g_malloc0(d->page_size);

        memcpy(last, host + whole * d->page_size, length % d->page_size);
        b->hash[whole] = colo_page_hash(last, d->page_size);
    }
    g_ptr_array_add(d->blocks, b);
}

uint64_t colo_ram_digest_pages(const ColoRamDigest *d)
{
    uint64_t pages = 0;

    for (guint i = 0; i < d->blocks->len; i++) {
        pages += ((ColoBlockDigest *)g_ptr_array_index(d->blocks, i))->npages;
    }
    return pages;
}

static const ColoBlockDigest *block_by_name(const ColoRamDigest *d,
                                            const char *name)
{
    for (guint i = 0; i < d->blocks->len; i++) {
        const ColoBlockDigest *b = g_ptr_array_index(d->blocks, i);

        if (g_str_equal(b->name, name)) {
            return b;
        }
    }
    return NULL;
}

bool colo_ram_digest_lookup(const ColoRamDigest *d, const char *block,
                            uint64_t offset, uint64_t *hash)
{
    const ColoBlockDigest *b = block_by_name(d, block);
    uint64_t page = offset / d->page_size;

    if (!b || page >= b->npages) {
        return false;
    }
    *hash = b->hash[page];
    return true;
}

static void diff_note(ColoRamDiff *diff, const char *block, uint64_t offset,
                      uint64_t pages)
{
    assert(pages);
    if (!diff->pages) {
        diff->block = g_strdup(block);
        diff->offset = offset;
    }
    if (g_str_equal(diff->block, block) &&
        diff->nsample < COLO_RAM_DIFF_SAMPLES) {
        diff->sample[diff->nsample++] = offset;
    }
    diff->pages += pages;
}

/* The pages of @b that differ from @other, which has @b's name. */
static void block_compare(const ColoBlockDigest *b,
                          const ColoBlockDigest *other, uint32_t page_size,
                          ColoRamDiff *diff)
{
    if (!other || other->length != b->length) {
        diff_note(diff, b->name, 0,
                  MAX(MAX(b->npages, other ? other->npages : 0), 1));
        return;
    }
    for (uint64_t i = 0; i < b->npages; i++) {
        if (b->hash[i] != other->hash[i]) {
            diff_note(diff, b->name, i * page_size, 1);
        }
    }
}

bool colo_ram_digest_compare(const ColoRamDigest *mine,
                             const ColoRamDigest *theirs, ColoRamDiff *diff)
{
    memset(diff, 0, sizeof(*diff));
    if (mine->page_size != theirs->page_size) {
        /* Nothing lines up: count every page of the larger side. */
        const ColoRamDigest *big =
            colo_ram_digest_pages(mine) >= colo_ram_digest_pages(theirs) ?
            mine : theirs;
        const ColoBlockDigest *first = big->blocks->len ?
            g_ptr_array_index(big->blocks, 0) : NULL;

        diff_note(diff, first ? first->name : "", 0,
                  MAX(colo_ram_digest_pages(big), 1));
        return false;
    }
    for (guint i = 0; i < mine->blocks->len; i++) {
        const ColoBlockDigest *b = g_ptr_array_index(mine->blocks, i);

        block_compare(b, block_by_name(theirs, b->name), mine->page_size,
                      diff);
    }
    for (guint i = 0; i < theirs->blocks->len; i++) {
        const ColoBlockDigest *b = g_ptr_array_index(theirs->blocks, i);

        if (!block_by_name(mine, b->name)) {
            diff_note(diff, b->name, 0, MAX(b->npages, 1));
        }
    }
    return diff->pages == 0;
}

void colo_ram_diff_clear(ColoRamDiff *diff)
{
    g_free(diff->block);
    memset(diff, 0, sizeof(*diff));
}

/*
 * Encoding:
 *   be32 page size, be32 number of blocks, then per block:
 *   be16 name length, the name (no NUL), be64 length in bytes,
 *   be64 hash of each page.
 */
static void put_be16(GByteArray *out, uint16_t v)
{
    uint8_t b[2];

    stw_be_p(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

static void put_be32(GByteArray *out, uint32_t v)
{
    uint8_t b[4];

    stl_be_p(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

static void put_be64(GByteArray *out, uint64_t v)
{
    uint8_t b[8];

    stq_be_p(b, v);
    g_byte_array_append(out, b, sizeof(b));
}

GByteArray *colo_ram_digest_encode(const ColoRamDigest *d)
{
    GByteArray *out = g_byte_array_sized_new(8 + colo_ram_digest_pages(d) * 8);

    put_be32(out, d->page_size);
    put_be32(out, d->blocks->len);
    for (guint i = 0; i < d->blocks->len; i++) {
        const ColoBlockDigest *b = g_ptr_array_index(d->blocks, i);
        size_t name_len = strlen(b->name);

        put_be16(out, name_len);
        g_byte_array_append(out, (const uint8_t *)b->name, name_len);
        put_be64(out, b->length);
        for (uint64_t p = 0; p < b->npages; p++) {
            put_be64(out, b->hash[p]);
        }
    }
    return out;
}

/* A cursor over an encoding that refuses to read past its end. */
typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} Reader;

static bool take(Reader *r, size_t n, const uint8_t **at)
{
    if (r->len - r->pos < n) {
        return false;
    }
    *at = r->buf + r->pos;
    r->pos += n;
    return true;
}

static bool take_be16(Reader *r, uint16_t *v)
{
    const uint8_t *at;

    if (!take(r, 2, &at)) {
        return false;
    }
    *v = lduw_be_p(at);
    return true;
}

static bool take_be32(Reader *r, uint32_t *v)
{
    const uint8_t *at;

    if (!take(r, 4, &at)) {
        return false;
    }
    *v = ldl_be_p(at);
    return true;
}

static bool take_be64(Reader *r, uint64_t *v)
{
    const uint8_t *at;

    if (!take(r, 8, &at)) {
        return false;
    }
    *v = ldq_be_p(at);
    return true;
}

static ColoBlockDigest *decode_block(Reader *r, uint32_t page_size,
                                     uint64_t pages_left, Error **errp)
{
    ColoBlockDigest *b;
    g_autofree char *name = NULL;
    const uint8_t *at;
    uint16_t name_len;
    uint64_t length, npages;

    if (!take_be16(r, &name_len) || name_len == 0 ||
        name_len >= COLO_RAM_DIGEST_NAME_MAX || !take(r, name_len, &at)) {
        error_setg(errp, "bad RAMBlock name");
        return NULL;
    }
    name = g_strndup((const char *)at, name_len);
    if (strlen(name) != name_len) {
        error_setg(errp, "bad RAMBlock name");
        return NULL;
    }
    if (!take_be64(r, &length)) {
        error_setg(errp, "block %s: length cut short", name);
        return NULL;
    }
    npages = pages_of(length, page_size);
    if (npages > pages_left || (r->len - r->pos) / 8 < npages) {
        error_setg(errp, "block %s: %" PRIu64 " bytes is more than the "
                   "digest holds or may hold", name, length);
        return NULL;
    }
    b = block_digest_new(name, length, page_size);
    for (uint64_t p = 0; p < npages; p++) {
        take_be64(r, &b->hash[p]);
    }
    return b;
}

ColoRamDigest *colo_ram_digest_decode(const uint8_t *buf, size_t len,
                                      uint64_t max_pages, Error **errp)
{
    Reader r = { .buf = buf, .len = len };
    g_autoptr(ColoRamDigest) d = NULL;
    uint32_t page_size, nblocks;
    uint64_t pages_left = max_pages;

    if (!take_be32(&r, &page_size) || !take_be32(&r, &nblocks)) {
        error_setg(errp, "COLO RAM digest: header cut short");
        return NULL;
    }
    if (!is_power_of_2(page_size) || page_size < 32 ||
        page_size > 1 * MiB) {
        error_setg(errp, "COLO RAM digest: bad page size %" PRIu32,
                   page_size);
        return NULL;
    }
    if (nblocks > COLO_RAM_DIGEST_MAX_BLOCKS) {
        error_setg(errp, "COLO RAM digest: %" PRIu32 " blocks (at most %d)",
                   nblocks, COLO_RAM_DIGEST_MAX_BLOCKS);
        return NULL;
    }
    d = colo_ram_digest_new(page_size);
    for (uint32_t i = 0; i < nblocks; i++) {
        Error *err = NULL;
        ColoBlockDigest *b = decode_block(&r, page_size, pages_left, &err);

        if (!b) {
            error_propagate_prepend(errp, err, "COLO RAM digest: ");
            return NULL;
        }
        if (block_by_name(d, b->name)) {
            error_setg(errp, "COLO RAM digest: block %s comes twice",
                       b->name);
            block_digest_free(b);
            return NULL;
        }
        pages_left -= b->npages;
        g_ptr_array_add(d->blocks, b);
    }
    if (r.pos != len) {
        error_setg(errp, "COLO RAM digest: %zu bytes after the last block",
                   len - r.pos);
        return NULL;
    }
    return g_steal_pointer(&d);
}
