/*
 * libFuzzer target: the COLO packet parser and comparator.
 *
 * The input is a script of operations on one matcher: frames from either
 * side (or the same frame from both, which reaches the matching paths
 * quickly), the clock moving on, checkpoints, a failover.  Besides the
 * sanitizers' checks, it verifies the comparator's promises: every primary
 * frame leaves exactly once, unchanged, and no secondary frame ever
 * leaves; once a checkpoint has begun, no primary frame leaves unmatched
 * except at a checkpoint's end or a failover (output commit).
 *
 * Operation byte: low 3 bits select the operation, bit 3 asks for a
 * 12-byte vnet header in front of the frame.  Frames are a 16-bit
 * little-endian length and that many bytes (cut at the end of input).
 *
 * Bit 4 on a frame operation asks for a TCP segment built from a short
 * description instead (fuzz-tcp-desc.h): 8 connections where the matcher
 * keeps 4, so that evictions happen too.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/colo-matcher.h"
#include "fuzz-tcp-desc.h"
#include "fuzz-entry.h"

enum {
    OP_PRIMARY,
    OP_SECONDARY,
    OP_BOTH,
    OP_TIME,
    OP_CHECKPOINT_BEGIN,
    OP_CHECKPOINT_DONE,
    OP_EXPIRE,
    OP_FAILOVER,
};

#define OP_VNET 0x08
#define OP_TCP 0x10
#define VNET_LEN 12

typedef struct Fuzz {
    ColoMatcher *m;
    GHashTable *pending;    /* primary frame data pointer -> its copy */
    uint64_t released;
    uint64_t primary_in;
} Fuzz;

static void fuzz_release(void *opaque, ColoFrame *frame)
{
    Fuzz *fz = opaque;
    GByteArray *orig = g_hash_table_lookup(fz->pending, frame->data);

    /* A primary frame, released once, with its bytes untouched. */
    if (!orig || orig->len != frame->len ||
        (frame->len && memcmp(orig->data, frame->data, frame->len))) {
        abort();
    }
    g_hash_table_remove(fz->pending, frame->data);
    g_free(frame->data);
    fz->released++;
}

static void fuzz_diverged(void *opaque, ColoDivergence why)
{
    if (why >= COLO_DIVERGED__MAX) {
        abort();
    }
}

static const ColoMatcherOps fuzz_ops = {
    .release = fuzz_release,
    .diverged = fuzz_diverged,
};

static void feed(Fuzz *fz, ColoSide side, const uint8_t *p, size_t len,
                 bool vnet, int64_t now)
{
    ColoFrame f = {
        .len = len + (vnet ? VNET_LEN : 0),
        .vnet_hdr_len = vnet ? VNET_LEN : 0,
        .arrival_ns = now,
    };

    f.data = g_malloc0(f.len ? f.len : 1);
    memcpy(f.data + f.vnet_hdr_len, p, len);
    if (side == COLO_SIDE_PRIMARY) {
        GByteArray *copy = g_byte_array_new();

        g_byte_array_append(copy, f.data, f.len);
        g_hash_table_insert(fz->pending, f.data, copy);
        fz->primary_in++;
    }
    colo_matcher_input(fz->m, side, &f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ColoMatcherConfig cfg = {
        .max_connections = 4,
        .max_queue = 8,
        .timeout_ns = 1000,
        /* Small enough that a script can run into it. */
        .max_secondary_bytes = 16 * 1024,
    };
    Fuzz fz = { 0 };
    int64_t now = 0;
    size_t i = 0;
    bool protected = false;     /* a checkpoint began since the failover */

    fz.pending = g_hash_table_new_full(NULL, NULL, NULL,
                                       (GDestroyNotify)g_byte_array_unref);
    fz.m = colo_matcher_new(&cfg, &fuzz_ops, &fz);

    while (i < size) {
        uint8_t op = data[i++];
        bool vnet = op & OP_VNET;
        uint64_t unmatched = colo_matcher_stats(fz.m)->released_unmatched;
        size_t len;

        switch (op & 7) {
        case OP_PRIMARY:
        case OP_SECONDARY:
        case OP_BOTH:
            if (op & OP_TCP) {
                g_autoptr(GByteArray) seg = NULL;

                if (size - i < FUZZ_TCP_DESC_LEN) {
                    i = size;
                    break;
                }
                seg = fuzz_tcp_from_desc(data + i,
                                         data[i] & FUZZ_TCP_FROM_CLIENT);
                i += FUZZ_TCP_DESC_LEN;
                if ((op & 7) != OP_SECONDARY) {
                    feed(&fz, COLO_SIDE_PRIMARY, seg->data, seg->len, vnet,
                         now);
                }
                if ((op & 7) != OP_PRIMARY) {
                    feed(&fz, COLO_SIDE_SECONDARY, seg->data, seg->len, vnet,
                         now);
                }
                break;
            }
            if (size - i < 2) {
                i = size;
                break;
            }
            len = data[i] | (data[i + 1] << 8);
            i += 2;
            len = MIN(len, size - i);
            if ((op & 7) != OP_SECONDARY) {
                feed(&fz, COLO_SIDE_PRIMARY, data + i, len, vnet, now);
            }
            if ((op & 7) != OP_PRIMARY) {
                feed(&fz, COLO_SIDE_SECONDARY, data + i, len, vnet, now);
            }
            i += len;
            break;
        case OP_TIME:
            now += i < size ? data[i++] * 20 : 0;
            break;
        case OP_CHECKPOINT_BEGIN:
            colo_matcher_checkpoint_begin(fz.m);
            protected = true;
            break;
        case OP_CHECKPOINT_DONE:
            colo_matcher_checkpoint_done(fz.m);
            break;
        case OP_EXPIRE:
            colo_matcher_expire(fz.m, now);
            break;
        case OP_FAILOVER:
            colo_matcher_flush(fz.m, true);
            protected = false;
            continue;
        }
        if (protected &&
            colo_matcher_stats(fz.m)->released_unmatched != unmatched) {
            abort();
        }
    }
    /* A failover releases whatever was still held: nothing may be left. */
    colo_matcher_flush(fz.m, true);
    colo_matcher_free(fz.m);
    if (fz.released != fz.primary_in ||
        g_hash_table_size(fz.pending) != 0) {
        abort();
    }
    g_hash_table_unref(fz.pending);
    return 0;
}
