/*
 * libFuzzer target: the secondary's TCP rewriter (net/colo-rewrite.c).
 *
 * The input is a script: frames in either direction, checkpoints, the
 * failover, time passing.  Besides the sanitizers' checks it verifies what
 * the rewriter promises: a frame it says it left alone is unchanged, and a
 * frame it changed differs only inside its TCP header.
 *
 * Operation byte: low 3 bits select the operation; frames are a 16-bit
 * little-endian length and that many bytes (cut at the end of input);
 * bit 3 of a frame operation says the frame starts with a 12-byte vnet
 * header (taken from the input like the rest).  Bit 4 asks for a TCP
 * segment built from a short description instead (fuzz-tcp-desc.h; the
 * operation gives the direction), timestamps included when asked: the
 * rewriter's connection states, sequence and clock offsets are reached
 * that way, where random bytes rarely parse.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/colo-rewrite.h"
#include "fuzz-tcp-desc.h"
#include "fuzz-entry.h"

enum {
    OP_FROM_GUEST,
    OP_TO_GUEST,
    OP_CHECKPOINT,
    OP_FAILOVER,
    OP_TIME,
};

#define OP_VNET 0x08
#define OP_TCP 0x10
#define VNET_LEN 12

static void check_frame(const uint8_t *before, const uint8_t *after,
                        size_t len, size_t vnet, bool changed)
{
    ColoPacket pkt;

    if (!changed) {
        if (len && memcmp(before, after, len)) {
            abort();
        }
        return;
    }
    /* Rewritten frames parsed as TCP; only the TCP header may differ. */
    if (colo_packet_parse(&pkt, before, len, vnet) != COLO_PARSE_OK ||
        !pkt.has_l4) {
        abort();
    }
    if (memcmp(before, after, pkt.l4_off) ||
        memcmp(before + pkt.payload_off, after + pkt.payload_off,
               len - pkt.payload_off)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(4);
    int64_t now = 0;
    size_t i = 0;

    while (i < size) {
        uint8_t op = data[i++];
        GByteArray *seg = NULL;
        const uint8_t *frame;
        size_t len, vnet;
        uint8_t *buf;
        bool changed;

        switch (op & 7) {
        case OP_FROM_GUEST:
        case OP_TO_GUEST:
            if (op & OP_TCP) {
                if (size - i < FUZZ_TCP_DESC_LEN) {
                    return 0;
                }
                seg = fuzz_tcp_from_desc(data + i, (op & 7) == OP_TO_GUEST);
                i += FUZZ_TCP_DESC_LEN;
                frame = seg->data;
                len = seg->len;
                vnet = 0;
            } else {
                if (size - i < 2) {
                    return 0;
                }
                len = data[i] | (data[i + 1] << 8);
                i += 2;
                len = MIN(len, size - i);
                frame = data + i;
                i += len;
                vnet = (op & OP_VNET) && len >= VNET_LEN ? VNET_LEN : 0;
            }
            /* Exactly @len bytes, so ASan sees any read past the end. */
            buf = g_malloc(len ? len : 1);
            memcpy(buf, frame, len);
            changed = colo_rewriter_process(rw, buf, len, vnet,
                                            (op & 7) == OP_FROM_GUEST ?
                                            COLO_REWRITE_FROM_GUEST :
                                            COLO_REWRITE_TO_GUEST, now);
            check_frame(frame, buf, len, vnet, changed);
            g_free(buf);
            if (seg) {
                g_byte_array_unref(seg);
                seg = NULL;
            }
            break;
        case OP_CHECKPOINT:
            colo_rewriter_checkpoint(rw);
            break;
        case OP_FAILOVER:
            colo_rewriter_failover(rw);
            break;
        case OP_TIME:
            now += i < size ? data[i++] * 100 : 0;
            colo_rewriter_expire(rw, now);
            break;
        }
    }
    return 0;
}
