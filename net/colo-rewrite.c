/*
 * COLO TCP rewriting for the secondary: pure logic over frame buffers.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "net/colo-rewrite.h"

/* Byte offsets inside the TCP header. */
#define TCP_OFF_SEQ         4
#define TCP_OFF_ACK         8
#define TCP_OFF_CSUM        16
#define TCP_FIXED_LEN       20

#define TCP_OPT_EOL         0
#define TCP_OPT_NOP         1
#define TCP_OPT_SACK        5
#define TCP_SACK_EDGE_LEN   4
#define TCP_OPT_TS          8
#define TCP_OPT_TS_LEN      10
#define TCP_TS_VAL          2       /* offsets inside the option */
#define TCP_TS_ECR          6

/*
 * Per-connection state.  Sequence numbers are kept as they appear on the
 * wire between the PVM's world and the filter, i.e. in the PVM's space,
 * so that they stay valid when a checkpoint sets the offset to 0.
 */
typedef struct ColoRewriteConn {
    ColoRewriter *rw;           /* to keep rw->closed_count exact */
    uint32_t svm_isn;           /* seq of the SVM's SYN or SYN-ACK */
    uint32_t offset;            /* PVM seq - SVM seq */
    uint32_t early_ack;         /* peer's ack seen before the SVM's ISN */
    uint32_t syn_seq;           /* seq of the first SYN without ACK */
    bool isn_known;
    bool offset_known;
    bool early_ack_known;
    bool syn_seen;

    /*
     * TCP timestamps (RFC 7323) differ between the guests as sequence
     * numbers do: after a failover the peer would drop every SVM segment
     * whose TSval is below the PVM's last one (PAWS).  The offset is
     * learned with the sequence offset, from the same two frames.
     */
    uint32_t svm_tsval;         /* TSval of the SVM's SYN or SYN-ACK */
    uint32_t early_tsecr;       /* TSecr of the early ack */
    uint32_t ts_offset;         /* PVM TSval - SVM TSval */
    bool svm_tsval_known;
    bool early_tsecr_known;

    bool guest_fin;             /* FIN seen from the SVM */
    bool peer_fin;              /* FIN seen towards the SVM */
    bool guest_fin_acked;
    bool peer_fin_acked;
    uint32_t guest_fin_end;     /* seq after the SVM's FIN, PVM space */
    uint32_t peer_fin_end;      /* seq after the peer's FIN */

    bool closed;
    int64_t closed_at_ms;
} ColoRewriteConn;

struct ColoRewriter {
    ColoConnTable *table;
    ColoRewriteStats stats;
    bool failover;
    guint closed_count;         /* closed connections still in the table */
    int64_t next_sweep_ms;
};

/* One TCP frame being looked at; tcp points into the caller's buffer. */
typedef struct ColoRewriteFrame {
    ColoPacket pkt;
    uint8_t *tcp;
    bool csum_partial;
} ColoRewriteFrame;

/* ---- Checksums (sequence arithmetic: colo_seq_le() in colo.h) ---- */

static uint32_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

/* RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m'), for a 32-bit field. */
static void csum_replace32(uint8_t *csum, uint32_t old, uint32_t new)
{
    uint32_t sum = (uint16_t)~lduw_be_p(csum);

    sum += (uint16_t)~(old >> 16);
    sum += (uint16_t)~(old & 0xffff);
    sum += new >> 16;
    sum += new & 0xffff;
    stw_be_p(csum, (uint16_t)~csum_fold(sum));
}

/* Write a 32-bit field of the TCP header and keep the checksum right. */
static void frame_set32(ColoRewriteFrame *f, size_t off, uint32_t new)
{
    uint32_t old = ldl_be_p(f->tcp + off);

    stl_be_p(f->tcp + off, new);
    if (!f->csum_partial) {
        csum_replace32(f->tcp + TCP_OFF_CSUM, old, new);
    }
}

/*
 * Call @fn for each option of the TCP header, with its offset in the
 * header and its length.  The walk stops at an option that does not add
 * up: such options are left alone, the guest's stack will judge them.
 */
typedef void FrameOptionFunc(ColoRewriteFrame *f, uint8_t kind, size_t off,
                             size_t len, void *opaque);

static void frame_walk_options(ColoRewriteFrame *f, FrameOptionFunc *fn,
                               void *opaque)
{
    size_t off = TCP_FIXED_LEN;
    size_t end = f->pkt.tcp.hdr_len;

    while (off < end && f->tcp[off] != TCP_OPT_EOL) {
        uint8_t kind = f->tcp[off];
        size_t olen;

        if (kind == TCP_OPT_NOP) {
            off++;
            continue;
        }
        olen = end - off >= 2 ? f->tcp[off + 1] : 0;
        if (olen < 2 || olen > end - off) {
            return;
        }
        fn(f, kind, off, olen, opaque);
        off += olen;
    }
}

/*
 * SACK blocks in frames towards the SVM acknowledge SVM data in the PVM's
 * space, like the ack field.
 */
static void sack_shift(ColoRewriteFrame *f, uint8_t kind, size_t off,
                       size_t len, void *opaque)
{
    uint32_t offset = *(uint32_t *)opaque;

    for (size_t e = off + 2; kind == TCP_OPT_SACK &&
         e + TCP_SACK_EDGE_LEN <= off + len; e += TCP_SACK_EDGE_LEN) {
        frame_set32(f, e, ldl_be_p(f->tcp + e) - offset);
    }
}

static void frame_rewrite_sack(ColoRewriteFrame *f, uint32_t offset)
{
    frame_walk_options(f, sack_shift, &offset);
}

static void ts_find(ColoRewriteFrame *f, uint8_t kind, size_t off,
                    size_t len, void *opaque)
{
    if (kind == TCP_OPT_TS && len == TCP_OPT_TS_LEN) {
        *(size_t *)opaque = off;
    }
}

/* Offset of the timestamp option in the TCP header, or 0 if none. */
static size_t frame_ts_option(ColoRewriteFrame *f)
{
    size_t off = 0;

    frame_walk_options(f, ts_find, &off);
    return off;
}

/* ---- Connection state ---- */

static void conn_free(gpointer data)
{
    ColoRewriteConn *c = data;

    if (c->closed) {
        c->rw->closed_count--;
    }
    g_free(c);
}

static bool frame_is_fresh_syn(const ColoRewriteFrame *f)
{
    return (f->pkt.tcp.flags & (TH_SYN | TH_ACK)) == TH_SYN;
}

/*
 * A SYN that opens a new connection on the ports of a tracked one: after
 * it closed, or once the offset is known and the SYN is not a repeat of
 * the one that opened it (no FIN or RST was seen, or it was evicted and
 * adopted again).
 */
static bool conn_reopened(const ColoRewriteConn *c, const ColoRewriteFrame *f)
{
    if (!frame_is_fresh_syn(f)) {
        return false;
    }
    return c->closed || (c->offset_known &&
                         (!c->syn_seen || f->pkt.tcp.seq != c->syn_seq));
}

static void conn_note_syn(ColoRewriteConn *c, const ColoRewriteFrame *f)
{
    if (frame_is_fresh_syn(f) && !c->syn_seen) {
        c->syn_seen = true;
        c->syn_seq = f->pkt.tcp.seq;
    }
}

/*
 * A connection first seen without a SYN started before we looked (the
 * filter was added late, or its state was evicted): the best guess is
 * that a checkpoint made both VMs agree, i.e. offset 0.
 */
static ColoRewriteConn *conn_new(ColoRewriter *rw, const ColoRewriteFrame *f)
{
    ColoRewriteConn *c = g_new0(ColoRewriteConn, 1);

    c->rw = rw;
    c->offset_known = !(f->pkt.tcp.flags & TH_SYN);
    return c;
}

/*
 * The peer acks PVM_ISN + 1, and echoes the PVM's TSval in its TSecr
 * (0 when it has no timestamp to echo).
 */
static void conn_learn(ColoRewriter *rw, ColoRewriteConn *c, uint32_t ack,
                       uint32_t tsecr)
{
    c->offset = ack - 1 - c->svm_isn;
    c->ts_offset = c->svm_tsval_known && tsecr ? tsecr - c->svm_tsval : 0;
    c->offset_known = true;
    rw->stats.offsets_learned++;
}

static uint32_t frame_tsecr(ColoRewriteFrame *f)
{
    size_t ts = frame_ts_option(f);

    return ts ? ldl_be_p(f->tcp + ts + TCP_TS_ECR) : 0;
}

static uint32_t conn_offset(const ColoRewriteConn *c)
{
    return c->offset_known ? c->offset : 0;
}

static uint32_t conn_ts_offset(const ColoRewriteConn *c)
{
    return c->offset_known ? c->ts_offset : 0;
}

/* Shift a 32-bit field of the timestamp option, if the frame has one. */
static bool frame_shift_ts(ColoRewriteFrame *f, size_t field, uint32_t by)
{
    size_t ts = frame_ts_option(f);
    uint32_t old;

    if (!ts || !by) {
        return false;
    }
    old = ldl_be_p(f->tcp + ts + field);
    if (field == TCP_TS_ECR && !old) {
        return false;   /* nothing echoed */
    }
    frame_set32(f, ts + field, old + by);
    return true;
}

static void conn_close(ColoRewriter *rw, ColoRewriteConn *c, int64_t now_ms)
{
    c->closed = true;
    c->closed_at_ms = now_ms;
    rw->closed_count++;
    rw->stats.closed++;
}

/* ---- Rewriting ---- */

static bool rewrite_from_guest(ColoRewriter *rw, ColoRewriteConn *c,
                               ColoRewriteFrame *f)
{
    bool changed = false;

    if ((f->pkt.tcp.flags & TH_SYN) && !c->offset_known) {
        size_t ts = frame_ts_option(f);

        c->svm_isn = f->pkt.tcp.seq;
        c->isn_known = true;
        c->svm_tsval_known = ts;
        c->svm_tsval = ts ? ldl_be_p(f->tcp + ts + TCP_TS_VAL) : 0;
        if (c->early_ack_known) {
            conn_learn(rw, c, c->early_ack, c->early_tsecr);
        }
    }
    if (conn_offset(c)) {
        frame_set32(f, TCP_OFF_SEQ, f->pkt.tcp.seq + c->offset);
        changed = true;
    }
    changed |= frame_shift_ts(f, TCP_TS_VAL, conn_ts_offset(c));
    return changed;
}

static bool rewrite_to_guest(ColoRewriter *rw, ColoRewriteConn *c,
                             ColoRewriteFrame *f)
{
    if (!(f->pkt.tcp.flags & TH_ACK)) {
        return false;
    }
    bool changed = false;

    if (!c->offset_known && c->isn_known) {
        conn_learn(rw, c, f->pkt.tcp.ack, frame_tsecr(f));
    } else if (!c->offset_known && !c->early_ack_known) {
        /* The PVM answered before the SVM did: keep its ISN for later. */
        c->early_ack = f->pkt.tcp.ack;
        c->early_tsecr = frame_tsecr(f);
        c->early_ack_known = true;
    }
    if (conn_offset(c)) {
        frame_set32(f, TCP_OFF_ACK, f->pkt.tcp.ack - c->offset);
        frame_rewrite_sack(f, c->offset);
        changed = true;
    }
    changed |= frame_shift_ts(f, TCP_TS_ECR, -conn_ts_offset(c));
    return changed;
}

/* Sequence space a segment occupies: payload plus one for SYN and FIN. */
static uint32_t frame_seq_len(const ColoRewriteFrame *f)
{
    return f->pkt.payload_len + !!(f->pkt.tcp.flags & TH_SYN) +
           !!(f->pkt.tcp.flags & TH_FIN);
}

/*
 * Follow the close: FIN each way, each one acked, or RST.  Values from
 * the SVM are taken in the PVM's space (seq + offset), values towards it
 * as they come from the peer, so both compare directly.
 */
static void track_close(ColoRewriter *rw, ColoRewriteConn *c,
                        const ColoRewriteFrame *f, ColoRewriteDir dir,
                        int64_t now_ms)
{
    uint8_t flags = f->pkt.tcp.flags;
    uint32_t end = f->pkt.tcp.seq + frame_seq_len(f);
    bool acks = flags & TH_ACK;

    if (c->closed) {
        return;
    }
    if (flags & TH_RST) {
        conn_close(rw, c, now_ms);
        return;
    }
    if (dir == COLO_REWRITE_FROM_GUEST) {
        c->peer_fin_acked |= acks && c->peer_fin &&
                             colo_seq_le(c->peer_fin_end, f->pkt.tcp.ack);
        if (flags & TH_FIN) {
            c->guest_fin = true;
            c->guest_fin_end = end + conn_offset(c);
        }
    } else {
        c->guest_fin_acked |= acks && c->guest_fin &&
                              colo_seq_le(c->guest_fin_end, f->pkt.tcp.ack);
        if (flags & TH_FIN) {
            c->peer_fin = true;
            c->peer_fin_end = end;
        }
    }
    if (c->guest_fin_acked && c->peer_fin_acked) {
        conn_close(rw, c, now_ms);
    }
}

/* ---- Frames to connections ---- */

static bool frame_parse(ColoRewriter *rw, ColoRewriteFrame *f, uint8_t *buf,
                        size_t len, size_t vnet_hdr_len)
{
    ColoParseResult res = colo_packet_parse(&f->pkt, buf, len, vnet_hdr_len);

    colo_packet_stats_account(&rw->stats.parse, res);
    if (res != COLO_PARSE_OK) {
        return false;
    }
    if (!f->pkt.has_l4 || f->pkt.l4_proto != IP_PROTO_TCP ||
        f->pkt.frag != COLO_FRAG_NONE) {
        /* TCP fragments are rare (DF) and their ports are not at hand. */
        rw->stats.non_tcp++;
        return false;
    }
    f->tcp = buf + f->pkt.l4_off;
    f->csum_partial = vnet_hdr_len > 0 &&
                      (buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM);
    return true;
}

/* After failover: only connections we already track, never new ones. */
static ColoRewriteConn *conn_find_failover(ColoRewriter *rw,
                                           const ColoConnKey *key,
                                           const ColoRewriteFrame *f)
{
    ColoConn *conn = colo_conn_table_lookup(rw->table, key);
    ColoRewriteConn *c = conn ? colo_conn_get_user_data(conn) : NULL;

    if (c && conn_reopened(c, f)) {
        colo_conn_table_remove(rw->table, key);
        c = NULL;
    }
    if (!c) {
        rw->stats.untracked++;
    }
    return c;
}

static ColoRewriteConn *conn_for_frame(ColoRewriter *rw,
                                       const ColoRewriteFrame *f)
{
    ColoConnKey key;
    ColoConnDir kdir;
    ColoConn *conn;
    ColoRewriteConn *c;
    bool created;

    if (!colo_conn_key_from_packet(&f->pkt, &key, &kdir)) {
        return NULL;    /* not reached: TCP frames are IP */
    }
    if (rw->failover) {
        return conn_find_failover(rw, &key, f);
    }
    conn = colo_conn_table_get(rw->table, &key, kdir, &created);
    c = colo_conn_get_user_data(conn);
    if (created || conn_reopened(c, f)) {
        c = conn_new(rw, f);
        colo_conn_set_user_data(conn, c);
    }
    conn_note_syn(c, f);
    return c;
}

/* ---- Public interface ---- */

ColoRewriter *colo_rewriter_new(guint capacity)
{
    ColoRewriter *rw = g_new0(ColoRewriter, 1);

    rw->table = colo_conn_table_new(capacity, conn_free);
    return rw;
}

void colo_rewriter_free(ColoRewriter *rw)
{
    if (rw) {
        colo_conn_table_free(rw->table);
        g_free(rw);
    }
}

static bool conn_expired(ColoConn *conn, void *opaque)
{
    ColoRewriteConn *c = colo_conn_get_user_data(conn);
    int64_t now_ms = *(int64_t *)opaque;

    return c->closed && now_ms - c->closed_at_ms >= COLO_REWRITE_CLOSE_GRACE_MS;
}

void colo_rewriter_expire(ColoRewriter *rw, int64_t now_ms)
{
    rw->stats.expired += colo_conn_table_remove_if(rw->table, conn_expired,
                                                   &now_ms);
    rw->next_sweep_ms = now_ms + COLO_REWRITE_CLOSE_GRACE_MS / 2;
}

bool colo_rewriter_process(ColoRewriter *rw, uint8_t *buf, size_t len,
                           size_t vnet_hdr_len, ColoRewriteDir dir,
                           int64_t now_ms)
{
    ColoRewriteFrame f;
    ColoRewriteConn *c;
    bool changed;

    /* A whole-table walk, so only now and then and only when useful. */
    if (rw->closed_count && now_ms >= rw->next_sweep_ms) {
        colo_rewriter_expire(rw, now_ms);
    }
    if (!frame_parse(rw, &f, buf, len, vnet_hdr_len)) {
        return false;
    }
    c = conn_for_frame(rw, &f);
    if (!c) {
        return false;
    }
    changed = dir == COLO_REWRITE_FROM_GUEST ? rewrite_from_guest(rw, c, &f)
                                             : rewrite_to_guest(rw, c, &f);
    track_close(rw, c, &f, dir, now_ms);
    rw->stats.rewritten += changed;
    return changed;
}

static void conn_checkpoint(ColoConn *conn, void *opaque)
{
    ColoRewriteConn *c = colo_conn_get_user_data(conn);

    c->offset = 0;
    c->ts_offset = 0;
    c->offset_known = true;
}

void colo_rewriter_checkpoint(ColoRewriter *rw)
{
    colo_conn_table_foreach(rw->table, conn_checkpoint, NULL);
}

/* Offset 0 needs no rewriting; an unknown one may still be learned. */
static bool conn_not_needed(ColoConn *conn, void *opaque)
{
    ColoRewriteConn *c = colo_conn_get_user_data(conn);

    return c->offset_known && !c->offset && !c->ts_offset;
}

void colo_rewriter_failover(ColoRewriter *rw)
{
    rw->failover = true;
    colo_conn_table_remove_if(rw->table, conn_not_needed, NULL);
}

bool colo_rewriter_in_failover(const ColoRewriter *rw)
{
    return rw->failover;
}

bool colo_rewriter_active(const ColoRewriter *rw)
{
    return !rw->failover || colo_conn_table_count(rw->table) > 0;
}

guint colo_rewriter_conn_count(const ColoRewriter *rw)
{
    return colo_conn_table_count(rw->table);
}

const ColoRewriteStats *colo_rewriter_stats(const ColoRewriter *rw)
{
    return &rw->stats;
}

const ColoConnTableStats *colo_rewriter_table_stats(const ColoRewriter *rw)
{
    return colo_conn_table_stats(rw->table);
}

bool colo_rewriter_offset_of(ColoRewriter *rw, const uint8_t *buf,
                             size_t len, size_t vnet_hdr_len,
                             uint32_t *offset)
{
    ColoPacket pkt;
    ColoConnKey key;
    ColoConnDir kdir;
    ColoConn *conn;
    ColoRewriteConn *c;

    if (colo_packet_parse(&pkt, buf, len, vnet_hdr_len) != COLO_PARSE_OK ||
        !colo_conn_key_from_packet(&pkt, &key, &kdir)) {
        return false;
    }
    conn = colo_conn_table_lookup(rw->table, &key);
    c = conn ? colo_conn_get_user_data(conn) : NULL;
    if (!c || !c->offset_known) {
        return false;
    }
    *offset = c->offset;
    return true;
}
