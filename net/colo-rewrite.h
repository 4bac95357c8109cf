/*
 * COLO TCP rewriting for the secondary: pure logic over frame buffers.
 *
 * The secondary VM's TCP stacks pick their own initial sequence numbers.
 * For colo-compare to see the same streams from both VMs, every tracked
 * connection keeps offset = PVM seq - SVM seq, learned from the handshake:
 * frames leaving the SVM get seq += offset, frames entering it get
 * ack -= offset (SACK edges too).  TCP timestamps get the same treatment
 * with their own offset: TSval out, TSecr in.  Nothing here depends on
 * QOM, netdevs or clocks; the caller passes the time in, so every rule is
 * unit-testable.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_REWRITE_H
#define NET_COLO_REWRITE_H

#include "net/colo.h"

/* Which way a frame travels through the secondary's netdev. */
typedef enum ColoRewriteDir {
    COLO_REWRITE_FROM_GUEST,    /* SVM output: seq += offset */
    COLO_REWRITE_TO_GUEST,      /* client input mirrored by the PVM: ack -= */
} ColoRewriteDir;

/*
 * A closed connection (FIN both ways acked, or RST) stays in the table this
 * long, so that retransmissions of the last FIN or ACK are still rewritten.
 * It covers a few retransmissions at Linux's minimum RTO of 200 ms.
 */
#define COLO_REWRITE_CLOSE_GRACE_MS 3000

/* Default table size of the filter; LRU eviction beyond it is counted. */
#define COLO_REWRITE_DEFAULT_CAPACITY 4096

typedef struct ColoRewriteStats {
    ColoPacketStats parse;      /* every frame: parsed or malformed */
    uint64_t non_tcp;           /* parsed, but not an unfragmented TCP seg. */
    uint64_t untracked;         /* TCP frames ignored after failover */
    uint64_t rewritten;         /* frames whose bytes were changed */
    uint64_t offsets_learned;   /* handshakes that gave an offset */
    uint64_t closed;            /* connections ended by FIN or RST */
    uint64_t expired;           /* closed connections removed after grace */
} ColoRewriteStats;

typedef struct ColoRewriter ColoRewriter;

/* A rewriter tracking at most @capacity (> 0) connections. */
ColoRewriter *colo_rewriter_new(guint capacity);
void colo_rewriter_free(ColoRewriter *rw);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoRewriter, colo_rewriter_free)

/*
 * Look at one frame of @len bytes, the first @vnet_hdr_len of which are a
 * virtio-net header, and rewrite its TCP seq or ack, and its timestamp
 * option, in place when its connection has non-zero offsets.  @now_ms is
 * a monotonic time in ms, used only to expire closed connections.
 * Returns true when @buf was changed.  Any byte sequence is accepted:
 * frames that do not parse, or are not TCP, are counted and left
 * unchanged.
 *
 * The TCP checksum is updated incrementally (RFC 1624), except when the
 * vnet header says VIRTIO_NET_HDR_F_NEEDS_CSUM: the field then holds only
 * the pseudo-header sum, which seq and ack are not part of, and whoever
 * completes the checksum later sums the rewritten bytes.
 */
bool colo_rewriter_process(ColoRewriter *rw, uint8_t *buf, size_t len,
                           size_t vnet_hdr_len, ColoRewriteDir dir,
                           int64_t now_ms);

/*
 * The SVM now holds the PVM's state, TCP stacks included: every offset
 * (sequence and timestamp) becomes 0 (known), connections stay tracked.
 */
void colo_rewriter_checkpoint(ColoRewriter *rw);

/*
 * The SVM now serves clients alone.  Connections with a non-zero offset
 * (sequence or timestamp), or still in their handshake with the SVM's ISN
 * known, keep being rewritten until they close; the others are dropped,
 * and no new connection is tracked from now on.  There is no way back: a
 * new COLO run needs a new filter.
 */
void colo_rewriter_failover(ColoRewriter *rw);

/* True after colo_rewriter_failover(). */
bool colo_rewriter_in_failover(const ColoRewriter *rw);

/*
 * True when some frame may still need rewriting: always before failover,
 * afterwards only while a kept connection lives.
 */
bool colo_rewriter_active(const ColoRewriter *rw);

/* Remove closed connections whose grace ran out by @now_ms. */
void colo_rewriter_expire(ColoRewriter *rw, int64_t now_ms);

guint colo_rewriter_conn_count(const ColoRewriter *rw);
const ColoRewriteStats *colo_rewriter_stats(const ColoRewriter *rw);
const ColoConnTableStats *colo_rewriter_table_stats(const ColoRewriter *rw);

/*
 * The offset of the connection of the frame in @buf (parsed as for
 * colo_rewriter_process).  Returns false when the frame does not parse,
 * its connection is not tracked, or its offset is not known yet.  Marks
 * the connection used, like any lookup.  For tests and traces.
 */
bool colo_rewriter_offset_of(ColoRewriter *rw, const uint8_t *buf,
                             size_t len, size_t vnet_hdr_len,
                             uint32_t *offset);

#endif /* NET_COLO_REWRITE_H */
