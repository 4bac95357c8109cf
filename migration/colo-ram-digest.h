/*
 * COLO RAM digests: one 64-bit hash per guest page, so that two VMs can
 * prove that their RAM is equal and, when it is not, say where it differs.
 *
 * Pure data handling, no QEMU state: the caller hands in each RAMBlock's
 * bytes.  The encoding is what crosses the wire; decoding checks every
 * length against the buffer and against the caller's limit.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_RAM_DIGEST_H
#define MIGRATION_COLO_RAM_DIGEST_H

/* RAMBlock names are shorter than this (RAMBlock::idstr). */
#define COLO_RAM_DIGEST_NAME_MAX 256
/* A digest decoded from a peer has at most this many blocks. */
#define COLO_RAM_DIGEST_MAX_BLOCKS 4096

typedef struct ColoRamDigest ColoRamDigest;

/* How many differing pages of the first block a diff lists. */
#define COLO_RAM_DIFF_SAMPLES 8

/* Where two digests first differ, and by how much. */
typedef struct ColoRamDiff {
    uint64_t pages;     /* pages that differ, 0 when the digests are equal */
    char *block;        /* the block of the first differing page */
    uint64_t offset;    /* that page's byte offset in @block */
    /* The first differing pages of @block (byte offsets), for diagnosis. */
    uint64_t sample[COLO_RAM_DIFF_SAMPLES];
    unsigned nsample;
} ColoRamDiff;

/*
 * Hash of one page of @size bytes (a multiple of 32).  A page of zeroes
 * hashes to 0, and no other page does.
 */
uint64_t colo_page_hash(const void *page, size_t size);

ColoRamDigest *colo_ram_digest_new(uint32_t page_size);
void colo_ram_digest_free(ColoRamDigest *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoRamDigest, colo_ram_digest_free)

/*
 * Hash the @length bytes at @host as block @name.  A partial last page is
 * hashed as if padded with zeroes.
 */
void colo_ram_digest_add_block(ColoRamDigest *d, const char *name,
                               const uint8_t *host, uint64_t length);

uint64_t colo_ram_digest_pages(const ColoRamDigest *d);

/* The hash of the page at byte @offset of @block, if @d has that page. */
bool colo_ram_digest_lookup(const ColoRamDigest *d, const char *block,
                            uint64_t offset, uint64_t *hash);

/*
 * Compare @mine with @theirs, block by block and page by page.  A block
 * that only one side has, or has with another length, differs in all its
 * pages (at least one).  Returns true when they are equal; fills @diff
 * either way.
 */
bool colo_ram_digest_compare(const ColoRamDigest *mine,
                             const ColoRamDigest *theirs, ColoRamDiff *diff);
void colo_ram_diff_clear(ColoRamDiff *diff);

/* The wire form, big-endian throughout. */
GByteArray *colo_ram_digest_encode(const ColoRamDigest *d);
/*
 * Parse @len bytes at @buf.  A malformed encoding, one with more than
 * @max_pages pages or COLO_RAM_DIGEST_MAX_BLOCKS blocks in all, or one
 * that names a block twice, is refused.
 */
ColoRamDigest *colo_ram_digest_decode(const uint8_t *buf, size_t len,
                                      uint64_t max_pages, Error **errp);

#endif /* MIGRATION_COLO_RAM_DIGEST_H */
