/*
 * COLO packet comparator: the matching of primary and secondary output.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/eth.h"
#include "net/colo-matcher.h"

#define SIDE_P  COLO_SIDE_PRIMARY
#define SIDE_S  COLO_SIDE_SECONDARY

/* A frame waiting in a flow, parsed once on arrival. */
typedef struct ColoHeld {
    ColoFrame f;
    ColoPacket pkt;             /* points into f.data */
    bool raw;                   /* did not parse: compared byte for byte */
    bool budgeted;              /* a secondary frame counted in the budget */
    /*
     * TCP only: [seq_start, seq_end) in sequence space; SYN and FIN
     * count one each, data is [data_start, data_end).
     */
    uint32_t seq_start;
    uint32_t data_start;
    uint32_t data_end;
    uint32_t seq_end;
} ColoHeld;

/*
 * What one VM sends on one direction of a connection.  Non-TCP flows pair
 * frames in order; TCP flows match a byte stream.
 */
typedef struct ColoFlow {
    GQueue held[2];             /* ColoHeld *, by ColoSide */
    /*
     * The outputs differed: primary frames wait for the checkpoint (or
     * the timeout), secondary frames are useless until then.
     */
    bool diverged;

    /* TCP: first sequence number that is not yet matched. */
    bool synced;
    uint32_t next;
    /* TCP: the highest acknowledgement the secondary has sent. */
    bool sec_acked;
    uint32_t sec_ack;
    /* TCP: end of the SYN matched last, to know its retransmissions. */
    bool has_syn;
    uint32_t syn_end;
    /* TCP: a FIN or RST of this direction was matched: the end is near. */
    bool ended;
    int64_t last_ns;            /* arrival of its latest frame */
} ColoFlow;

typedef struct ColoConnState {
    ColoMatcher *m;
    ColoFlow flow[2];           /* by ColoConnDir */
} ColoConnState;

struct ColoMatcher {
    ColoMatcherConfig cfg;
    const ColoMatcherOps *ops;
    void *opaque;

    /*
     * Connections the primary has sent on.  Only its frames add to this
     * table: a secondary inventing flows by the thousand must not push
     * out a connection whose output is held.
     */
    ColoConnTable *conns;
    /*
     * Connections only the secondary has sent on so far (its guest was
     * quicker, or it is making flows up), in a small table of their own.
     * The primary's first frame moves such a connection to @conns.
     */
    ColoConnTable *secondary_conns;
    ColoFlow non_ip;            /* frames without a connection key */
    ColoFlow raw;               /* frames that did not parse */
    /*
     * Primary frames that leave when the next checkpoint commits, oldest
     * first.  While it is not empty every release queues behind it, so
     * that the wire sees the primary's output in order.
     */
    GQueue parked;
    bool in_checkpoint;
    /*
     * A checkpoint has committed, so the secondary is a replica whose
     * output a primary frame may be held to.  Before the first one and
     * after a failover there is none: a frame without a partner then
     * leaves when it times out.
     */
    bool protected;
    bool checkpoint_asked;      /* since the last checkpoint began */
    bool bypass;
    size_t secondary_bytes;     /* held, against cfg.max_secondary_bytes */
    int64_t input_ns;           /* arrival of the frame being handled */
    ColoMatcherStats stats;
};

static const char *const divergence_names[COLO_DIVERGED__MAX] = {
    [COLO_DIVERGED_PAYLOAD] = "payload",
    [COLO_DIVERGED_TIMEOUT] = "timeout",
    [COLO_DIVERGED_QUEUE_FULL] = "queue-full",
    [COLO_DIVERGED_EVICTED] = "evicted",
};

const char *colo_divergence_str(ColoDivergence why)
{
    return why < COLO_DIVERGED__MAX ? divergence_names[why] : "unknown";
}

/* ---- Sequence arithmetic: colo_seq_lt() and colo_seq_le() ---- */

static uint32_t seq_min(uint32_t a, uint32_t b)
{
    return colo_seq_lt(a, b) ? a : b;
}

/* ---- Frames ---- */

static void held_free(ColoHeld *h)
{
    g_free(h->f.data);
    g_free(h);
}

static bool held_is_tcp(const ColoHeld *h)
{
    return !h->raw && h->pkt.l4_proto == IP_PROTO_TCP && h->pkt.has_l4 &&
           h->pkt.frag == COLO_FRAG_NONE;
}

static bool held_flag(const ColoHeld *h, uint8_t flag)
{
    return h->pkt.tcp.flags & flag;
}

/* Nothing in sequence space and no RST: a bare acknowledgement. */
static bool held_is_bare_ack(const ColoHeld *h)
{
    return h->seq_start == h->seq_end && !held_flag(h, TH_RST);
}

static void held_set_tcp_range(ColoHeld *h)
{
    h->seq_start = h->pkt.tcp.seq;
    h->data_start = h->seq_start + (held_flag(h, TH_SYN) ? 1 : 0);
    h->data_end = h->data_start + (uint32_t)h->pkt.payload_len;
    h->seq_end = h->data_end + (held_flag(h, TH_FIN) ? 1 : 0);
}

/* The bytes two frames of a non-TCP flow must agree on. */
static void held_compared_bytes(const ColoHeld *h, const uint8_t **p,
                                size_t *len)
{
    size_t from, to;

    if (h->pkt.ip_version) {
        from = h->pkt.l4_off;
        to = h->pkt.l3_end;
    } else {
        from = h->pkt.l3_off;
        to = h->pkt.len;
    }
    *p = h->pkt.buf + from;
    *len = to - from;
}

/* ---- Release and drop ---- */

typedef enum ReleaseWhy {
    RELEASE_MATCHED,
    RELEASE_UNMATCHED,
    RELEASE_CHECKPOINT,
    RELEASE_FLUSH,
} ReleaseWhy;

static void release(ColoMatcher *m, ColoHeld *h, ReleaseWhy why)
{
    if ((why == RELEASE_MATCHED || why == RELEASE_UNMATCHED) &&
        (m->in_checkpoint || !g_queue_is_empty(&m->parked))) {
        /* Nothing overtakes what waits for a checkpoint. */
        g_queue_push_tail(&m->parked, h);
        return;
    }
    m->stats.released++;
    switch (why) {
    case RELEASE_MATCHED:
        m->stats.matched++;
        if (m->input_ns > h->f.arrival_ns) {
            uint64_t wait = m->input_ns - h->f.arrival_ns;

            m->stats.match_wait_ns += wait;
            m->stats.match_wait_max_ns = MAX(m->stats.match_wait_max_ns,
                                             wait);
        }
        break;
    case RELEASE_UNMATCHED:
    case RELEASE_FLUSH:
        m->stats.released_unmatched++;
        break;
    case RELEASE_CHECKPOINT:
        m->stats.released_checkpoint++;
        break;
    }
    m->ops->release(m->opaque, &h->f);
    g_free(h);
}

/* Frees a secondary frame, giving its bytes back if they were counted. */
static void secondary_free(ColoMatcher *m, ColoHeld *h)
{
    if (h->budgeted) {
        m->secondary_bytes -= h->f.len;
    }
    held_free(h);
}

static void drop_secondary(ColoMatcher *m, ColoHeld *h)
{
    m->stats.secondary_dropped++;
    secondary_free(m, h);
}

static void drop_all_secondary(ColoMatcher *m, ColoFlow *fl)
{
    ColoHeld *h;

    while ((h = g_queue_pop_head(&fl->held[SIDE_S]))) {
        drop_secondary(m, h);
    }
}

static void flow_reset_tcp(ColoFlow *fl)
{
    fl->diverged = false;
    fl->synced = false;
    fl->sec_acked = false;
    fl->has_syn = false;
}

/*
 * A primary frame gives up on its partner.  With a replica to protect it
 * waits for the next checkpoint, which the caller asks for; without one
 * it leaves now.  Either way the comparison goes on behind it, so that
 * the secondary's copy of these bytes counts as old.
 */
static void release_unmatched(ColoMatcher *m, ColoFlow *fl, ColoHeld *h)
{
    if (held_is_tcp(h)) {
        if (!fl->synced || colo_seq_lt(fl->next, h->seq_end)) {
            fl->synced = true;
            fl->next = h->seq_end;
        }
    }
    if (m->protected && !m->bypass) {
        m->stats.held_for_checkpoint++;
        g_queue_push_tail(&m->parked, h);
        return;
    }
    release(m, h, RELEASE_UNMATCHED);
}

/*
 * Asks for a checkpoint.  Once COLO runs, one request per checkpoint is
 * enough; before that nobody answers, so every input or scan that finds
 * a divergence asks again (a Xen toolstack counts on it).
 */
static void ask_checkpoint(ColoMatcher *m, ColoDivergence why)
{
    if (m->checkpoint_asked) {
        return;
    }
    m->checkpoint_asked = true;
    m->ops->diverged(m->opaque, why);
}

/* After one input or one scan: unanswered requests may be made again. */
static void end_of_step(ColoMatcher *m)
{
    if (!m->protected) {
        m->checkpoint_asked = false;
    }
}

static void diverge(ColoMatcher *m, ColoFlow *fl, ColoDivergence why)
{
    m->stats.diverged[why]++;
    if (why == COLO_DIVERGED_PAYLOAD) {
        fl->diverged = true;
        drop_all_secondary(m, fl);
    }
    ask_checkpoint(m, why);
}

/* ---- TCP ---- */

static bool tcp_acked(const ColoFlow *fl, const ColoHeld *p)
{
    if (!held_flag(p, TH_ACK)) {
        return true;
    }
    return fl->sec_acked && colo_seq_le(p->pkt.tcp.ack, fl->sec_ack);
}

static void tcp_note_secondary_ack(ColoFlow *fl, const ColoHeld *s)
{
    if (!held_flag(s, TH_ACK)) {
        return;
    }
    if (!fl->sec_acked || colo_seq_lt(fl->sec_ack, s->pkt.tcp.ack)) {
        fl->sec_acked = true;
        fl->sec_ack = s->pkt.tcp.ack;
    }
}

static void tcp_note_queued_ack(gpointer data, gpointer opaque)
{
    tcp_note_secondary_ack(opaque, data);
}

/* A secondary segment whose sequence space was all matched already. */
static bool tcp_is_old(const ColoFlow *fl, const ColoHeld *s)
{
    return fl->synced && !held_flag(s, TH_RST) &&
           colo_seq_le(s->seq_end, fl->next);
}

static bool tcp_syn_equal(const ColoHeld *p, const ColoHeld *s)
{
    const uint8_t mask = TH_SYN | TH_ACK | TH_FIN | TH_RST;

    if ((p->pkt.tcp.flags & mask) != (s->pkt.tcp.flags & mask)) {
        return false;
    }
    if (held_flag(p, TH_ACK) && p->pkt.tcp.ack != s->pkt.tcp.ack) {
        return false;
    }
    return p->pkt.payload_len == s->pkt.payload_len &&
           !memcmp(colo_packet_payload(&p->pkt), colo_packet_payload(&s->pkt),
                   p->pkt.payload_len);
}

/*
 * Both heads cover fl->next: match what they share from there.  Returns
 * false when they disagree.
 */
static bool tcp_match_step(ColoFlow *fl, const ColoHeld *p, const ColoHeld *s)
{
    uint32_t pos = fl->next;

    /*
     * Only data bytes are compared.  A position before either's data (the
     * sequence number of a SYN, or one that came round the whole sequence
     * space) has nothing to compare: the streams disagree.
     */
    if (colo_seq_lt(pos, p->data_start) || colo_seq_lt(pos, s->data_start)) {
        return false;
    }
    if (colo_seq_lt(pos, p->data_end) && colo_seq_lt(pos, s->data_end)) {
        uint32_t end = seq_min(p->data_end, s->data_end);
        const uint8_t *pb = colo_packet_payload(&p->pkt) +
                            (pos - p->data_start);
        const uint8_t *sb = colo_packet_payload(&s->pkt) +
                            (pos - s->data_start);

        if (memcmp(pb, sb, end - pos)) {
            return false;
        }
        fl->next = end;
        return true;
    }
    /* One of them has no data left at pos: it must be a FIN on both. */
    if (pos == p->data_end && held_flag(p, TH_FIN) &&
        pos == s->data_end && held_flag(s, TH_FIN)) {
        fl->next = pos + 1;
        fl->ended = true;
        return true;
    }
    return false;
}

/* The primary head opens the connection: pair it with the secondary's. */
static bool tcp_handshake(ColoMatcher *m, ColoFlow *fl, ColoHeld *p)
{
    ColoHeld *s = g_queue_peek_head(&fl->held[SIDE_S]);

    if (!s) {
        return false;
    }
    if (!held_flag(s, TH_SYN)) {
        if (tcp_is_old(fl, s)) {
            g_queue_pop_head(&fl->held[SIDE_S]);
            m->stats.retransmits++;
            drop_secondary(m, s);
            return true;
        }
        diverge(m, fl, COLO_DIVERGED_PAYLOAD);
        return false;
    }
    if (!tcp_syn_equal(p, s)) {
        diverge(m, fl, COLO_DIVERGED_PAYLOAD);
        return false;
    }
    /*
     * A new connection, maybe on a 4-tuple used before: nothing of the old
     * one counts, least of all what the secondary acknowledged there.
     * What it acknowledged in this one is in its queue.
     */
    flow_reset_tcp(fl);
    fl->ended = false;
    g_queue_foreach(&fl->held[SIDE_S], tcp_note_queued_ack, fl);
    fl->synced = true;
    fl->next = p->seq_end;
    fl->has_syn = true;
    fl->syn_end = p->seq_end;
    drop_secondary(m, g_queue_pop_head(&fl->held[SIDE_S]));
    release(m, g_queue_pop_head(&fl->held[SIDE_P]), RELEASE_MATCHED);
    return true;
}

/*
 * A RST at the head of the primary queue is matched by one from the
 * secondary; anything else the secondary still says means it did not.
 */
static bool tcp_reset(ColoMatcher *m, ColoFlow *fl)
{
    ColoHeld *s = g_queue_peek_head(&fl->held[SIDE_S]);

    if (!s) {
        return false;
    }
    if (held_flag(s, TH_RST)) {
        fl->ended = true;
        drop_secondary(m, g_queue_pop_head(&fl->held[SIDE_S]));
        release(m, g_queue_pop_head(&fl->held[SIDE_P]), RELEASE_MATCHED);
        return true;
    }
    if (tcp_is_old(fl, s)) {
        g_queue_pop_head(&fl->held[SIDE_S]);
        m->stats.retransmits++;
        drop_secondary(m, s);
        return true;
    }
    diverge(m, fl, COLO_DIVERGED_PAYLOAD);
    return false;
}

/*
 * A primary SYN that is not a retransmission of the one matched last: a
 * retransmission ends where that one did, and the flow has gone past it
 * (the same number further on means the sequence space came round).
 */
static bool tcp_primary_opens(const ColoFlow *fl, const ColoHeld *p)
{
    return held_flag(p, TH_SYN) &&
           !(fl->synced && fl->has_syn && p->seq_end == fl->syn_end &&
             colo_seq_le(p->seq_end, fl->next));
}

/* One step of a TCP flow; false when it must wait for more input. */
static bool tcp_step(ColoMatcher *m, ColoFlow *fl)
{
    ColoHeld *p = g_queue_peek_head(&fl->held[SIDE_P]);
    ColoHeld *s = g_queue_peek_head(&fl->held[SIDE_S]);

    if (p && tcp_primary_opens(fl, p)) {
        return tcp_handshake(m, fl, p);
    }
    /*
     * A secondary SYN with no primary SYN to pair with is a retransmission
     * once the primary has gone past it; before that it waits, as the
     * secondary may simply be ahead.
     */
    if (s && (held_flag(s, TH_SYN) ? p != NULL : tcp_is_old(fl, s))) {
        g_queue_pop_head(&fl->held[SIDE_S]);
        m->stats.retransmits++;
        drop_secondary(m, s);
        return true;
    }
    if (!p) {
        return false;
    }
    if (!fl->synced) {
        /* Joined mid-stream (after a checkpoint): start at the primary. */
        fl->synced = true;
        fl->next = p->seq_start;
    }
    if (held_flag(p, TH_RST) && colo_seq_le(p->seq_start, fl->next)) {
        return tcp_reset(m, fl);
    }
    if (colo_seq_le(p->seq_end, fl->next)) {
        if (!tcp_acked(fl, p)) {
            return false;
        }
        if (s && held_flag(s, TH_RST)) {
            /* The secondary reset a connection the primary goes on with. */
            diverge(m, fl, COLO_DIVERGED_PAYLOAD);
            return false;
        }
        release(m, g_queue_pop_head(&fl->held[SIDE_P]), RELEASE_MATCHED);
        return true;
    }
    if (colo_seq_lt(fl->next, p->seq_start) || !s ||
        colo_seq_lt(fl->next, s->seq_start)) {
        /* A gap on either side: wait for it to fill or time out. */
        return false;
    }
    if (held_flag(s, TH_RST) || !tcp_match_step(fl, p, s)) {
        diverge(m, fl, COLO_DIVERGED_PAYLOAD);
        return false;
    }
    if (colo_seq_le(s->seq_end, fl->next)) {
        /* Used up; not a retransmission. */
        drop_secondary(m, g_queue_pop_head(&fl->held[SIDE_S]));
    }
    return true;
}

/* ---- Other protocols: frame against frame, in order ---- */

/* A frame that did not parse, from the Ethernet header on. */
static void held_raw_bytes(const ColoHeld *h, const uint8_t **p, size_t *len)
{
    size_t skip = MIN(h->f.vnet_hdr_len, h->f.len);

    *p = h->f.data + skip;
    *len = h->f.len - skip;
}

static bool frames_equal(const ColoHeld *p, const ColoHeld *s)
{
    const uint8_t *pb, *sb;
    size_t plen, slen;

    if (p->raw || s->raw) {
        if (!p->raw || !s->raw) {
            return false;
        }
        held_raw_bytes(p, &pb, &plen);
        held_raw_bytes(s, &sb, &slen);
        return plen == slen && !memcmp(pb, sb, plen);
    }
    if (p->pkt.ethertype != s->pkt.ethertype ||
        p->pkt.l4_proto != s->pkt.l4_proto) {
        return false;
    }
    held_compared_bytes(p, &pb, &plen);
    held_compared_bytes(s, &sb, &slen);
    return plen == slen && !memcmp(pb, sb, plen);
}

static bool frame_step(ColoMatcher *m, ColoFlow *fl)
{
    ColoHeld *p = g_queue_peek_head(&fl->held[SIDE_P]);
    ColoHeld *s = g_queue_peek_head(&fl->held[SIDE_S]);

    if (!p || !s) {
        return false;
    }
    if (!frames_equal(p, s)) {
        diverge(m, fl, COLO_DIVERGED_PAYLOAD);
        return false;
    }
    drop_secondary(m, g_queue_pop_head(&fl->held[SIDE_S]));
    release(m, g_queue_pop_head(&fl->held[SIDE_P]), RELEASE_MATCHED);
    return true;
}

static void flow_advance(ColoMatcher *m, ColoFlow *fl)
{
    for (;;) {
        ColoHeld *head;

        if (fl->diverged) {
            drop_all_secondary(m, fl);
            return;
        }
        head = g_queue_peek_head(&fl->held[SIDE_P]);
        if (!head) {
            head = g_queue_peek_head(&fl->held[SIDE_S]);
        }
        if (!head) {
            return;
        }
        if (!(held_is_tcp(head) ? tcp_step(m, fl) : frame_step(m, fl))) {
            return;
        }
    }
}

/* ---- Connections ---- */

/* Gives up on every partner the flow waits for; true if any was held. */
static bool flow_release_all(ColoMatcher *m, ColoFlow *fl)
{
    ColoHeld *h;
    bool held = !g_queue_is_empty(&fl->held[SIDE_P]);

    while ((h = g_queue_pop_head(&fl->held[SIDE_P]))) {
        release_unmatched(m, fl, h);
    }
    drop_all_secondary(m, fl);
    return held;
}

/*
 * The connection table's destroy function, on eviction and when the
 * matcher is freed.  Everything that could be compared has been; what is
 * left of the primary's output must not be lost, nor leave unchecked.
 */
static void conn_state_free(gpointer data)
{
    ColoConnState *cs = data;
    ColoMatcher *m = cs->m;
    bool held = false;

    for (int i = 0; i < 2; i++) {
        held |= flow_release_all(m, &cs->flow[i]);
    }
    if (held) {
        m->stats.diverged[COLO_DIVERGED_EVICTED]++;
        ask_checkpoint(m, COLO_DIVERGED_EVICTED);
    }
    g_free(cs);
}

static ColoConnState *conn_state(ColoMatcher *m, ColoConn *conn)
{
    ColoConnState *cs = colo_conn_get_user_data(conn);

    if (!cs) {
        cs = g_new0(ColoConnState, 1);
        cs->m = m;
        colo_conn_set_user_data(conn, cs);
    }
    return cs;
}

/* A secondary frame on a connection the primary has not used yet. */
static ColoConnState *secondary_conn_state(ColoMatcher *m,
                                           const ColoConnKey *key,
                                           ColoConnDir dir)
{
    bool full = colo_conn_table_count(m->secondary_conns) >=
                colo_conn_table_capacity(m->secondary_conns);
    bool created;
    ColoConn *conn = colo_conn_table_get(m->secondary_conns, key, dir,
                                         &created);

    /* A new entry in a full table took the place of the oldest. */
    m->stats.secondary_conns_evicted += full && created;
    return conn_state(m, conn);
}

static ColoFlow *flow_for(ColoMatcher *m, ColoSide side,
                          const ColoPacket *pkt)
{
    ColoConnKey key;
    ColoConnDir dir;
    ColoConn *conn;

    if (!colo_conn_key_from_packet(pkt, &key, &dir)) {
        m->stats.non_ip++;
        return &m->non_ip;
    }
    conn = colo_conn_table_lookup(m->conns, &key);
    if (!conn && side == SIDE_S) {
        return &secondary_conn_state(m, &key, dir)->flow[dir];
    }
    if (!conn) {
        ColoConn *early = colo_conn_table_lookup(m->secondary_conns, &key);

        conn = colo_conn_table_get(m->conns, &key, dir, NULL);
        if (early) {
            /* What the secondary sent first waits for this frame. */
            colo_conn_set_user_data(conn, colo_conn_steal_user_data(early));
            colo_conn_table_remove(m->secondary_conns, &key);
        }
    }
    return &conn_state(m, conn)->flow[dir];
}

/* Every flow: those of the tracked connections, then the non-IP one. */
typedef void FlowFunc(ColoMatcher *m, ColoFlow *fl, void *opaque);

typedef struct FlowWalk {
    ColoMatcher *m;
    FlowFunc *fn;
    void *opaque;
} FlowWalk;

static void conn_walk(ColoConn *conn, void *opaque)
{
    FlowWalk *w = opaque;
    ColoConnState *cs = colo_conn_get_user_data(conn);

    if (cs) {
        w->fn(w->m, &cs->flow[0], w->opaque);
        w->fn(w->m, &cs->flow[1], w->opaque);
    }
}

static void for_each_flow(ColoMatcher *m, FlowFunc *fn, void *opaque)
{
    FlowWalk w = { .m = m, .fn = fn, .opaque = opaque };

    colo_conn_table_foreach(m->conns, conn_walk, &w);
    colo_conn_table_foreach(m->secondary_conns, conn_walk, &w);
    fn(m, &m->non_ip, opaque);
    fn(m, &m->raw, opaque);
}

static void flow_release_all_cb(ColoMatcher *m, ColoFlow *fl, void *opaque)
{
    flow_release_all(m, fl);
}

/* ---- Public ---- */

ColoMatcher *colo_matcher_new(const ColoMatcherConfig *config,
                              const ColoMatcherOps *ops, void *opaque)
{
    ColoMatcher *m = g_new0(ColoMatcher, 1);

    assert(config->max_connections > 0 && config->max_queue > 0);
    m->cfg = *config;
    if (!m->cfg.max_secondary_bytes) {
        m->cfg.max_secondary_bytes = COLO_MATCHER_SECONDARY_BYTES;
    }
    if (!m->cfg.max_secondary_connections) {
        m->cfg.max_secondary_connections =
            MAX(1, m->cfg.max_connections / 16);
    }
    m->ops = ops;
    m->opaque = opaque;
    m->conns = colo_conn_table_new(config->max_connections, conn_state_free);
    m->secondary_conns =
        colo_conn_table_new(m->cfg.max_secondary_connections,
                            conn_state_free);
    return m;
}

static void drop_parked(ColoMatcher *m)
{
    ColoHeld *h;

    while ((h = g_queue_pop_head(&m->parked))) {
        m->stats.primary_dropped++;
        held_free(h);
    }
}

static void flow_drop_all(ColoMatcher *m, ColoFlow *fl, void *opaque)
{
    ColoHeld *h;

    while ((h = g_queue_pop_head(&fl->held[SIDE_P]))) {
        m->stats.primary_dropped++;
        held_free(h);
    }
    drop_all_secondary(m, fl);
}

void colo_matcher_free(ColoMatcher *m)
{
    if (!m) {
        return;
    }
    if (m->protected && !m->bypass) {
        /*
         * No checkpoint will cover them now: lost on the wire is the
         * one fate that cannot contradict a secondary taking over.
         */
        drop_parked(m);
        for_each_flow(m, flow_drop_all, NULL);
    } else {
        colo_matcher_flush(m, true);
    }
    colo_conn_table_free(m->conns);
    colo_conn_table_free(m->secondary_conns);
    g_free(m);
}

static void enqueue(ColoMatcher *m, ColoFlow *fl, ColoSide side, ColoHeld *h)
{
    GQueue *q = &fl->held[side];

    fl->last_ns = MAX(fl->last_ns, h->f.arrival_ns);
    if (side == SIDE_S) {
        if (m->secondary_bytes + h->f.len > m->cfg.max_secondary_bytes) {
            /*
             * The primary frame it would have matched waits for the
             * checkpoint this asks for; nothing leaves unchecked.
             */
            m->stats.secondary_refused++;
            held_free(h);
            diverge(m, fl, COLO_DIVERGED_QUEUE_FULL);
            return;
        }
        h->budgeted = true;
        m->secondary_bytes += h->f.len;
    }
    if (q->length >= m->cfg.max_queue) {
        ColoHeld *old = g_queue_pop_head(q);

        if (side == SIDE_P) {
            release_unmatched(m, fl, old);
        } else {
            drop_secondary(m, old);
        }
        diverge(m, fl, COLO_DIVERGED_QUEUE_FULL);
    }
    g_queue_push_tail(q, h);
}

/* A parsed frame from @side while comparison runs. */
static void match_frame(ColoMatcher *m, ColoSide side, ColoHeld *h,
                        ColoParseResult res)
{
    ColoFlow *fl;

    if (m->in_checkpoint) {
        /*
         * Both VMs are stopped: a primary frame still in flight was sent
         * before the stop, so the checkpoint covers it; a secondary one
         * belongs to the state the checkpoint replaces.
         */
        if (side == SIDE_P) {
            g_queue_push_tail(&m->parked, h);
        } else {
            drop_secondary(m, h);
        }
        return;
    }
    if (res != COLO_PARSE_OK) {
        /* The same malformed frame from both sides is still a match. */
        h->raw = true;
        enqueue(m, &m->raw, side, h);
        flow_advance(m, &m->raw);
        return;
    }

    fl = flow_for(m, side, &h->pkt);
    if (held_is_tcp(h)) {
        held_set_tcp_range(h);
        if (side == SIDE_S) {
            tcp_note_secondary_ack(fl, h);
            if (held_is_bare_ack(h)) {
                /* Its acknowledgement is all it says. */
                drop_secondary(m, h);
                flow_advance(m, fl);
                return;
            }
        }
    }
    enqueue(m, fl, side, h);
    flow_advance(m, fl);
}

void colo_matcher_input(ColoMatcher *m, ColoSide side, const ColoFrame *frame)
{
    ColoHeld *h = g_new0(ColoHeld, 1);
    ColoParseResult res;

    h->f = *frame;
    m->input_ns = frame->arrival_ns;
    m->stats.frames[side]++;
    res = colo_packet_parse(&h->pkt, h->f.data, h->f.len, h->f.vnet_hdr_len);
    colo_packet_stats_account(&m->stats.parse[side], res);

    if (m->bypass) {
        /* Nothing to compare it with. */
        if (side == SIDE_P) {
            release(m, h, RELEASE_UNMATCHED);
        } else {
            drop_secondary(m, h);
        }
        return;
    }
    match_frame(m, side, h, res);
    end_of_step(m);
}

typedef struct ExpireScan {
    int64_t now;
    int64_t oldest;
} ExpireScan;

static void flow_expire(ColoMatcher *m, ColoFlow *fl, void *opaque)
{
    ExpireScan *scan = opaque;
    int64_t limit = scan->now - m->cfg.timeout_ns;
    ColoHeld *h;
    bool changed = false;

    while ((h = g_queue_peek_head(&fl->held[SIDE_P])) &&
           h->f.arrival_ns <= limit) {
        g_queue_pop_head(&fl->held[SIDE_P]);
        release_unmatched(m, fl, h);
        if (!fl->diverged) {
            /* A diverged flow has asked for its checkpoint already. */
            diverge(m, fl, COLO_DIVERGED_TIMEOUT);
        }
        changed = true;
    }
    while ((h = g_queue_peek_head(&fl->held[SIDE_S])) &&
           h->f.arrival_ns <= limit) {
        g_queue_pop_head(&fl->held[SIDE_S]);
        m->stats.secondary_expired++;
        secondary_free(m, h);
        diverge(m, fl, COLO_DIVERGED_TIMEOUT);
        changed = true;
    }
    if (changed) {
        flow_advance(m, fl);
    }
    for (int side = 0; side < 2; side++) {
        h = g_queue_peek_head(&fl->held[side]);
        if (h && h->f.arrival_ns < scan->oldest) {
            scan->oldest = h->f.arrival_ns;
        }
    }
}

static bool flow_idle(const ColoFlow *fl, int64_t since)
{
    /* GQueue's accessors take no const pointer: read its length. */
    return !fl->held[SIDE_P].length && !fl->held[SIDE_S].length &&
           fl->last_ns <= since;
}

/*
 * A TCP connection whose end was matched, with nothing held and nothing
 * heard for a timeout: forget it, so that finished connections do not
 * push live ones out of the table.  A late segment starts a new entry.
 */
static bool conn_finished(ColoConn *conn, void *opaque)
{
    ColoConnState *cs = colo_conn_get_user_data(conn);
    int64_t since = *(int64_t *)opaque;

    return (cs->flow[0].ended || cs->flow[1].ended) &&
           flow_idle(&cs->flow[0], since) && flow_idle(&cs->flow[1], since);
}

/* A secondary-only connection with nothing held for a timeout. */
static bool conn_quiet(ColoConn *conn, void *opaque)
{
    ColoConnState *cs = colo_conn_get_user_data(conn);
    int64_t since = *(int64_t *)opaque;

    return flow_idle(&cs->flow[0], since) && flow_idle(&cs->flow[1], since);
}

int64_t colo_matcher_expire(ColoMatcher *m, int64_t now_ns)
{
    ExpireScan scan = { .now = now_ns, .oldest = INT64_MAX };
    int64_t since = now_ns - m->cfg.timeout_ns;

    m->input_ns = now_ns;
    for_each_flow(m, flow_expire, &scan);
    colo_conn_table_remove_if(m->conns, conn_finished, &since);
    colo_conn_table_remove_if(m->secondary_conns, conn_quiet, &since);
    end_of_step(m);
    return scan.oldest;
}

/* Checkpoint begin: primary frames to the parked list, the rest forgotten. */
static void flow_park(ColoMatcher *m, ColoFlow *fl, void *opaque)
{
    ColoHeld *h;

    while ((h = g_queue_pop_head(&fl->held[SIDE_P]))) {
        g_queue_push_tail(&m->parked, h);
    }
    drop_all_secondary(m, fl);
    flow_reset_tcp(fl);
}

void colo_matcher_checkpoint_begin(ColoMatcher *m)
{
    m->stats.checkpoints++;
    for_each_flow(m, flow_park, NULL);
    m->in_checkpoint = true;
    m->protected = true;
    m->checkpoint_asked = false;
    /* A new COLO session after a failover compares again. */
    m->bypass = false;
}

static void release_parked(ColoMatcher *m, ReleaseWhy why)
{
    ColoHeld *h;

    m->in_checkpoint = false;
    while ((h = g_queue_pop_head(&m->parked))) {
        release(m, h, why);
    }
}

void colo_matcher_checkpoint_done(ColoMatcher *m)
{
    release_parked(m, RELEASE_CHECKPOINT);
}

void colo_matcher_flush(ColoMatcher *m, bool bypass)
{
    /* No replica is left to hold the output to. */
    m->protected = false;
    m->checkpoint_asked = false;
    release_parked(m, RELEASE_FLUSH);
    for_each_flow(m, flow_release_all_cb, NULL);
    m->bypass = bypass;
}

const ColoMatcherStats *colo_matcher_stats(const ColoMatcher *m)
{
    return &m->stats;
}

guint colo_matcher_connections(const ColoMatcher *m)
{
    return colo_conn_table_count(m->conns) +
           colo_conn_table_count(m->secondary_conns);
}
