/*
 * COLO packet comparator: the matching of primary and secondary output.
 *
 * colo-compare receives every frame each VM sends and may let a primary
 * frame out only once the secondary has produced the same output, because
 * then a failover to the secondary cannot contradict what clients saw.
 * This file is that decision, without I/O: frames go in with the time they
 * arrived, and the owner is called back to release a primary frame or to
 * ask for a checkpoint.  It is single-threaded; colo-compare runs it in its
 * iothread.  Unit tests and the fuzzer drive it directly.
 *
 * TCP is compared as a byte stream in sequence space, so the two guests may
 * cut the same bytes into different segments, and bytes that were already
 * matched may be sent again.  A primary segment is released when every
 * byte (and SYN/FIN) it carries has been matched and the secondary has
 * acknowledged at least as far as it does.  Sequence numbers of the
 * secondary must already be in the primary's space (filter-rewriter on the
 * secondary does that); SYN segments are matched on flags and
 * acknowledgement alone because initial sequence numbers differ.
 * Other protocols are compared frame by frame, in order, from the layer 4
 * header on (layer 3 payload for non-IP frames); IP header fields such as
 * TTL or the IPv4 identification are not compared.  Frames that do not
 * parse are compared whole, in order, among themselves.
 *
 * Output commit: once a checkpoint has committed, a primary frame leaves
 * only when the secondary produced the same output or when a checkpoint
 * taken after the frame was sent commits.  A frame that finds no partner
 * (it timed out, its queue overflowed, its connection was evicted) waits
 * for that checkpoint, which the matcher asks for; everything released
 * after it waits too, so that the primary's output keeps its order.  Before
 * the first checkpoint and after a flush there is no replica to hold the
 * output to, and such a frame leaves at once.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_MATCHER_H
#define NET_COLO_MATCHER_H

#include "net/colo.h"

typedef enum ColoSide {
    COLO_SIDE_PRIMARY,
    COLO_SIDE_SECONDARY,
} ColoSide;

/* Why the matcher asks for a checkpoint. */
typedef enum ColoDivergence {
    COLO_DIVERGED_PAYLOAD,      /* the two outputs differ */
    COLO_DIVERGED_TIMEOUT,      /* a frame found no partner in time */
    COLO_DIVERGED_QUEUE_FULL,   /* a connection held too many frames */
    COLO_DIVERGED_EVICTED,      /* a full table dropped a waiting flow */
    COLO_DIVERGED__MAX,
} ColoDivergence;

const char *colo_divergence_str(ColoDivergence why);

/* A frame as received; owned by the matcher until released or dropped. */
typedef struct ColoFrame {
    uint8_t *data;              /* g_malloc'd, vnet header first */
    size_t len;
    uint32_t vnet_hdr_len;
    int64_t arrival_ns;
} ColoFrame;

typedef struct ColoMatcherOps {
    /*
     * Send a primary frame to the outside.  Ownership of @frame->data
     * passes to the callee; @frame itself is freed after the call.
     */
    void (*release)(void *opaque, ColoFrame *frame);
    /*
     * The outputs diverged; the owner asks for a checkpoint.  Once a
     * checkpoint has committed this is called at most once until the next
     * one begins; before that, at most once per input or expiry scan.
     * ColoMatcherStats.diverged counts every divergence.
     */
    void (*diverged)(void *opaque, ColoDivergence why);
} ColoMatcherOps;

/*
 * What the secondary's held frames may take in all, by default: the
 * secondary is fed by the guest, and per-queue limits times connections
 * would allow gigabytes.
 */
#define COLO_MATCHER_SECONDARY_BYTES (64 * 1024 * 1024)

typedef struct ColoMatcherConfig {
    guint max_connections;      /* tracked at once; LRU eviction beyond */
    guint max_queue;            /* frames held per connection and side */
    int64_t timeout_ns;         /* how long a frame may wait for a partner */
    /* Bytes of secondary frames held at once; 0 for the default. */
    size_t max_secondary_bytes;
    /*
     * Connections that only the secondary has sent on so far, tracked
     * apart from the others; 0 for max_connections / 16 (at least 1).
     */
    guint max_secondary_connections;
} ColoMatcherConfig;

typedef struct ColoMatcherStats {
    uint64_t frames[2];         /* received, by ColoSide */
    uint64_t released;          /* primary frames sent out, any reason */
    uint64_t matched;           /* primary frames released as matched */
    /*
     * How long matched primary frames waited for their partner, in all
     * and at most: the secondary's lag as the primary's clients feel it.
     */
    uint64_t match_wait_ns;
    uint64_t match_wait_max_ns;
    uint64_t secondary_dropped; /* secondary frames discarded after use */
    uint64_t diverged[COLO_DIVERGED__MAX];
    /* released without a partner or a checkpoint (no replica, a flush) */
    uint64_t released_unmatched;
    uint64_t released_checkpoint; /* held until a checkpoint committed */
    uint64_t held_for_checkpoint; /* gave up on a partner, waited for one */
    uint64_t primary_dropped;   /* freed while a checkpoint owed them */
    uint64_t secondary_expired; /* secondary frames dropped unmatched */
    uint64_t secondary_refused; /* not held: over max_secondary_bytes */
    /* secondary-only connections forgotten to make room */
    uint64_t secondary_conns_evicted;
    uint64_t retransmits;       /* frames carrying only matched bytes */
    uint64_t non_ip;            /* frames compared as opaque payload */
    uint64_t checkpoints;       /* checkpoint_begin calls */
    ColoPacketStats parse[2];   /* by ColoSide */
} ColoMatcherStats;

typedef struct ColoMatcher ColoMatcher;

ColoMatcher *colo_matcher_new(const ColoMatcherConfig *config,
                              const ColoMatcherOps *ops, void *opaque);

/*
 * Frees everything.  Primary frames still held are released if no
 * checkpoint has committed since the last flush, dropped otherwise.
 */
void colo_matcher_free(ColoMatcher *m);

/*
 * A frame from @side arrived at @frame->arrival_ns.  The matcher takes
 * @frame->data; @frame itself stays the caller's.  Callbacks run before
 * this returns.
 */
void colo_matcher_input(ColoMatcher *m, ColoSide side, const ColoFrame *frame);

/*
 * Give up on the partners of frames that waited longer than the timeout
 * at @now_ns: primary frames wait for a checkpoint (or leave, with no
 * replica to protect), secondary ones are dropped.  Returns the arrival
 * time of the oldest frame still held, or INT64_MAX if none, so the owner
 * knows when to call again.
 */
int64_t colo_matcher_expire(ColoMatcher *m, int64_t now_ns);

/*
 * Both VMs are stopped for a checkpoint.  Secondary frames, held or
 * arriving until it is done, are dropped; primary ones are set aside until
 * the checkpoint commits, because until then a failover would resume the
 * secondary from the previous one.
 */
void colo_matcher_checkpoint_begin(ColoMatcher *m);

/*
 * The secondary holds the primary's state: release what was set aside,
 * and what arrived from the primary since the checkpoint began.
 */
void colo_matcher_checkpoint_done(ColoMatcher *m);

/*
 * There is no replica any more (the primary goes on alone): release
 * everything held.  With @bypass, later primary frames go straight out
 * and secondary ones are dropped.
 */
void colo_matcher_flush(ColoMatcher *m, bool bypass);

const ColoMatcherStats *colo_matcher_stats(const ColoMatcher *m);
guint colo_matcher_connections(const ColoMatcher *m);

#endif /* NET_COLO_MATCHER_H */
