/*
 * Unit tests of the COLO comparator's matching (net/colo-matcher.c).
 *
 * Each test feeds frames from the two sides with explicit arrival times
 * and checks which primary frames came out, in which order, and which
 * checkpoint requests were made.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/colo-matcher.h"
#include "colo-test-frames.h"

#define MS  (1000 * 1000LL)
#define TIMEOUT_NS  (3000 * MS)

#define P   COLO_SIDE_PRIMARY
#define S   COLO_SIDE_SECONDARY

typedef struct T {
    ColoMatcher *m;
    GPtrArray *out;                         /* GByteArray *, released */
    unsigned diverged[COLO_DIVERGED__MAX];
} T;

static void t_release(void *opaque, ColoFrame *frame)
{
    T *t = opaque;
    GByteArray *b = g_byte_array_new_take(frame->data, frame->len);

    g_ptr_array_add(t->out, b);
}

static void t_diverged(void *opaque, ColoDivergence why)
{
    T *t = opaque;

    g_assert_cmpint(why, <, COLO_DIVERGED__MAX);
    t->diverged[why]++;
}

static const ColoMatcherOps t_ops = {
    .release = t_release,
    .diverged = t_diverged,
};

static T *t_new_cfg(const ColoMatcherConfig *cfg)
{
    T *t = g_new0(T, 1);

    t->out = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    t->m = colo_matcher_new(cfg, &t_ops, t);
    return t;
}

static T *t_new_with(guint max_conns, guint max_queue)
{
    ColoMatcherConfig cfg = {
        .max_connections = max_conns,
        .max_queue = max_queue,
        .timeout_ns = TIMEOUT_NS,
    };

    return t_new_cfg(&cfg);
}

static T *t_new(void)
{
    return t_new_with(64, 64);
}

static void checkpoint(T *t)
{
    colo_matcher_checkpoint_begin(t->m);
    colo_matcher_checkpoint_done(t->m);
}

/* COLO has started: a first checkpoint made the secondary a replica. */
static void protect(T *t)
{
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 0);
}

static void t_free(T *t)
{
    colo_matcher_free(t->m);
    g_ptr_array_unref(t->out);
    g_free(t);
}

static unsigned t_diverged_total(T *t)
{
    unsigned n = 0;

    for (int i = 0; i < COLO_DIVERGED__MAX; i++) {
        n += t->diverged[i];
    }
    return n;
}

/* Feed @frame (consumed) from @side at @ms milliseconds. */
static void feed_at(T *t, ColoSide side, GByteArray *frame, int64_t ms)
{
    ColoFrame f = {
        .len = frame->len,
        .arrival_ns = ms * MS,
    };

    f.data = g_byte_array_free(frame, false);
    colo_matcher_input(t->m, side, &f);
}

static void feed(T *t, ColoSide side, GByteArray *frame)
{
    feed_at(t, side, frame, 0);
}

/* The @i-th released frame equals @expect (consumed). */
static void assert_out(T *t, guint i, GByteArray *expect)
{
    GByteArray *got;

    g_assert_cmpuint(t->out->len, >, i);
    got = g_ptr_array_index(t->out, i);
    g_assert_cmpmem(got->data, got->len, expect->data, expect->len);
    g_byte_array_unref(expect);
}

static const TfFlow guest_out = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 },
    .sport = 80, .dport = 40000,
};
static const TfFlow guest_out2 = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 },
    .sport = 80, .dport = 40001,
};

#define PISN    1000u       /* the primary's initial sequence number */
#define SISN    77777u      /* the secondary's, before rewriting */
#define CACK    5001u       /* what both acknowledge of the client */

/* The server's SYN-ACK on both sides: different ISNs, still a match. */
static void handshake(T *t, uint32_t pisn)
{
    feed(t, P, tf_tcp(&guest_out, pisn, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out, SISN, CACK, TF_SYN | TF_ACK, NULL));
}

static void test_tcp_identical(void)
{
    T *t = t_new();

    handshake(t, PISN);
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_PSH, "hello "));
    feed(t, P, tf_tcp(&guest_out, PISN + 7, CACK, TF_ACK | TF_PSH, "world"));
    g_assert_cmpuint(t->out->len, ==, 1);   /* nothing from the secondary */
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_PSH, "hello "));
    g_assert_cmpuint(t->out->len, ==, 2);
    feed(t, S, tf_tcp(&guest_out, PISN + 7, CACK, TF_ACK | TF_PSH, "world"));
    g_assert_cmpuint(t->out->len, ==, 3);
    assert_out(t, 0, tf_tcp(&guest_out, PISN, CACK, TF_SYN | TF_ACK, NULL));
    assert_out(t, 1, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_PSH,
                            "hello "));
    assert_out(t, 2, tf_tcp(&guest_out, PISN + 7, CACK, TF_ACK | TF_PSH,
                            "world"));
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    g_assert_cmpuint(colo_matcher_stats(t->m)->matched, ==, 3);
    g_assert_cmpuint(colo_matcher_stats(t->m)->secondary_dropped, ==, 3);
    t_free(t);
}

/* The secondary may be ahead of the primary: its frames wait. */
static void test_tcp_secondary_first(void)
{
    T *t = t_new();

    feed(t, S, tf_tcp(&guest_out, SISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abc"));
    g_assert_cmpuint(t->out->len, ==, 0);
    feed(t, P, tf_tcp(&guest_out, PISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abc"));
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/* The same bytes cut differently on the two sides are no mismatch. */
static void test_tcp_resegmented(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "hello world"));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "hel"));
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, S, tf_tcp(&guest_out, PISN + 4, CACK, TF_ACK, "lo wo"));
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, S, tf_tcp(&guest_out, PISN + 9, CACK, TF_ACK, "rld!!"));
    g_assert_cmpuint(t->out->len, ==, 2);
    /* The secondary's "!!" is ahead; the primary's pair of segments. */
    feed(t, P, tf_tcp(&guest_out, PISN + 12, CACK, TF_ACK, "!"));
    feed(t, P, tf_tcp(&guest_out, PISN + 13, CACK, TF_ACK, "!"));
    g_assert_cmpuint(t->out->len, ==, 4);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/* Bytes sent again, whole or overlapping, are recognised as old. */
static void test_tcp_retransmission(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcdef"));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcdef"));
    g_assert_cmpuint(t->out->len, ==, 2);

    /* The secondary resends all of it: dropped, nothing else happens. */
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcdef"));
    g_assert_cmpuint(colo_matcher_stats(t->m)->retransmits, ==, 1);

    /* The primary resends: already verified, so it goes out at once. */
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcdef"));
    g_assert_cmpuint(t->out->len, ==, 3);

    /* An overlapping resend with new bytes: only the new ones compared. */
    feed(t, P, tf_tcp(&guest_out, PISN + 4, CACK, TF_ACK, "defGHI"));
    feed(t, S, tf_tcp(&guest_out, PISN + 5, CACK, TF_ACK, "efGHI"));
    g_assert_cmpuint(t->out->len, ==, 4);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

static void test_tcp_payload_differs(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcX"));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcY"));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    /* Held until the checkpoint, as are the frames after it. */
    feed(t, P, tf_tcp(&guest_out, PISN + 5, CACK, TF_ACK, "more"));
    feed(t, S, tf_tcp(&guest_out, PISN + 5, CACK, TF_ACK, "more"));
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);

    colo_matcher_checkpoint_begin(t->m);
    g_assert_cmpuint(t->out->len, ==, 1);
    colo_matcher_checkpoint_done(t->m);
    g_assert_cmpuint(t->out->len, ==, 3);
    assert_out(t, 1, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "abcX"));
    assert_out(t, 2, tf_tcp(&guest_out, PISN + 5, CACK, TF_ACK, "more"));
    g_assert_cmpuint(colo_matcher_stats(t->m)->released_checkpoint, ==, 2);

    /* After the checkpoint both sides agree again, mid-stream. */
    feed(t, P, tf_tcp(&guest_out, PISN + 9, CACK, TF_ACK, "next"));
    feed(t, S, tf_tcp(&guest_out, PISN + 9, CACK, TF_ACK, "next"));
    g_assert_cmpuint(t->out->len, ==, 4);
    g_assert_cmpuint(t_diverged_total(t), ==, 1);
    t_free(t);
}

static void test_tcp_syn_differs(void)
{
    T *t = t_new();

    feed(t, P, tf_tcp(&guest_out, PISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out, SISN, CACK + 1, TF_SYN | TF_ACK, NULL));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    g_assert_cmpuint(t->out->len, ==, 0);
    t_free(t);
}

/*
 * A primary frame acknowledging client bytes the secondary has not
 * acknowledged yet waits: after a failover the secondary must have them.
 */
static void test_tcp_waits_for_secondary_ack(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK + 100, TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK + 50, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK + 100, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 2);
    /* A window update acknowledging nothing new goes straight out. */
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK + 100, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 3);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/*
 * A new connection on the same 4-tuple starts from nothing: the secondary
 * acknowledged more in the old one, but not yet this one's bytes.
 */
static void test_tcp_reused_tuple_ack(void)
{
    T *t = t_new();
    const uint32_t cack2 = CACK + 500;

    handshake(t, PISN);
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK + 1000, TF_ACK, NULL));
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK + 1000, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 2);

    feed(t, P, tf_tcp(&guest_out, PISN + 7000, cack2, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out, SISN + 7000, cack2, TF_SYN | TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 3);
    feed(t, P, tf_tcp(&guest_out, PISN + 7001, cack2 + 100, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 3);
    feed(t, S, tf_tcp(&guest_out, PISN + 7001, cack2 + 100, TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 4);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

static void test_tcp_fin(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_FIN, "bye"));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "bye"));
    g_assert_cmpuint(t->out->len, ==, 1);   /* the FIN is not matched */
    feed(t, S, tf_tcp(&guest_out, PISN + 4, CACK, TF_ACK | TF_FIN, NULL));
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);

    /* One side closes where the other sends data: a divergence. */
    feed(t, P, tf_tcp(&guest_out2, PISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out2, SISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, P, tf_tcp(&guest_out2, PISN + 1, CACK, TF_ACK | TF_FIN, NULL));
    feed(t, S, tf_tcp(&guest_out2, PISN + 1, CACK, TF_ACK, "late"));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    t_free(t);
}

/*
 * A connection whose end was matched is forgotten once quiet for a
 * timeout, so that finished connections do not crowd live ones out of the
 * table; an open one stays however quiet.
 */
static void test_tcp_finished_forgotten(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed_at(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_FIN, "bye"),
            10);
    feed_at(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK | TF_FIN, "bye"),
            10);
    feed(t, P, tf_tcp(&guest_out2, PISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out2, SISN, CACK, TF_SYN | TF_ACK, NULL));
    g_assert_cmpuint(t->out->len, ==, 3);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);

    colo_matcher_expire(t->m, TIMEOUT_NS);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);
    colo_matcher_expire(t->m, 10 * MS + TIMEOUT_NS);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 1);
    colo_matcher_expire(t->m, 100 * TIMEOUT_NS);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 1);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

static void test_tcp_rst(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, 0, TF_RST, NULL));
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, S, tf_tcp(&guest_out, PISN + 1, 0, TF_RST, NULL));
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);

    /* The secondary sends data where the primary reset. */
    feed(t, P, tf_tcp(&guest_out2, PISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, S, tf_tcp(&guest_out2, SISN, CACK, TF_SYN | TF_ACK, NULL));
    feed(t, P, tf_tcp(&guest_out2, PISN + 1, 0, TF_RST, NULL));
    feed(t, S, tf_tcp(&guest_out2, PISN + 1, CACK, TF_ACK, "data"));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    t_free(t);
}

/* Sequence numbers wrap at 2^32 in the middle of a segment. */
static void test_tcp_wraparound(void)
{
    T *t = t_new();
    uint32_t isn = 0xfffffffa;

    handshake(t, isn);
    feed(t, P, tf_tcp(&guest_out, isn + 1, CACK, TF_ACK, "0123456789"));
    feed(t, S, tf_tcp(&guest_out, isn + 1, CACK, TF_ACK, "0123"));
    feed(t, S, tf_tcp(&guest_out, isn + 5, CACK, TF_ACK, "456789"));
    g_assert_cmpuint(t->out->len, ==, 2);
    feed(t, P, tf_tcp(&guest_out, isn + 11, CACK, TF_ACK, "x"));
    feed(t, S, tf_tcp(&guest_out, isn + 11, CACK, TF_ACK, "x"));
    g_assert_cmpuint(t->out->len, ==, 3);
    /* An old secondary segment from before the wrap is recognised. */
    feed(t, S, tf_tcp(&guest_out, isn + 1, CACK, TF_ACK, "0123"));
    g_assert_cmpuint(colo_matcher_stats(t->m)->retransmits, ==, 1);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/* TCP options (timestamps differ between two guests) are not compared. */
static void test_tcp_options_ignored(void)
{
    T *t = t_new();
    g_autoptr(GByteArray) pf = NULL;

    handshake(t, PISN);
    feed(t, P, tf_tcp_full(&guest_out, PISN + 1, CACK, TF_ACK, "xy", 2, 12,
                           100));
    feed(t, S, tf_tcp_full(&guest_out, PISN + 1, CACK, TF_ACK, "xy", 2, 0,
                           999));
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

static void test_udp_icmp_arp(void)
{
    T *t = t_new();
    TfFlow dns = { { 10, 0, 0, 2 }, { 10, 0, 0, 1 }, 53, 33333 };

    /* IP identification and TTL differ: still the same output. */
    feed(t, P, tf_udp(&dns, "answer", 6, 11));
    feed(t, S, tf_udp(&dns, "answer", 6, 22));
    feed(t, P, tf_icmp_echo(&dns, 1, "ping"));
    feed(t, S, tf_icmp_echo(&dns, 1, "ping"));
    feed(t, S, tf_arp(9));
    feed(t, P, tf_arp(9));
    g_assert_cmpuint(t->out->len, ==, 3);
    g_assert_cmpuint(colo_matcher_stats(t->m)->non_ip, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);

    feed(t, P, tf_udp(&dns, "answer", 6, 1));
    feed(t, S, tf_udp(&dns, "ANSWER", 6, 1));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    feed(t, P, tf_arp(1));
    feed(t, S, tf_arp(2));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 2);
    g_assert_cmpuint(t->out->len, ==, 3);
    colo_matcher_checkpoint_begin(t->m);
    colo_matcher_checkpoint_done(t->m);
    g_assert_cmpuint(t->out->len, ==, 5);
    t_free(t);
}

/*
 * A matched primary frame waited from its arrival until its partner's;
 * one whose partner was there first did not wait.
 */
static void test_match_wait(void)
{
    T *t = t_new();
    TfFlow dns = { { 10, 0, 0, 2 }, { 10, 0, 0, 1 }, 53, 33333 };
    const ColoMatcherStats *st = colo_matcher_stats(t->m);

    protect(t);
    feed_at(t, P, tf_udp(&dns, "one", 3, 1), 10);
    feed_at(t, S, tf_udp(&dns, "one", 3, 1), 14);
    feed_at(t, S, tf_udp(&dns, "two", 3, 2), 20);
    feed_at(t, P, tf_udp(&dns, "two", 3, 2), 21);
    feed_at(t, P, tf_udp(&dns, "three", 5, 3), 30);
    feed_at(t, S, tf_udp(&dns, "three", 5, 3), 31);
    g_assert_cmpuint(st->matched, ==, 3);
    g_assert_cmpuint(st->match_wait_ns, ==, 5 * MS);
    g_assert_cmpuint(st->match_wait_max_ns, ==, 4 * MS);

    /* A frame released by a checkpoint did not wait for a match. */
    feed_at(t, P, tf_udp(&dns, "four", 4, 4), 40);
    feed_at(t, S, tf_udp(&dns, "FOUR", 4, 4), 90);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 4);
    g_assert_cmpuint(st->match_wait_ns, ==, 5 * MS);
    t_free(t);
}

/* Before COLO's first checkpoint a frame without a partner times out. */
static void test_timeout(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed_at(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "alone"), 100);
    feed_at(t, S, tf_udp(&guest_out2, "x", 1, 1), 200);
    g_assert_cmpint(colo_matcher_expire(t->m, 1000 * MS), ==, 100 * MS);
    g_assert_cmpuint(t->out->len, ==, 1);

    colo_matcher_expire(t->m, 3100 * MS);
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_TIMEOUT], ==, 1);
    g_assert_cmpint(colo_matcher_expire(t->m, 3150 * MS), ==, 200 * MS);
    g_assert_cmpint(colo_matcher_expire(t->m, 3200 * MS), ==, INT64_MAX);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_TIMEOUT], ==, 2);
    g_assert_cmpuint(colo_matcher_stats(t->m)->secondary_expired, ==, 1);

    /* The secondary's late copy of the released bytes is old now. */
    feed_at(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "alone"), 3300);
    feed_at(t, P, tf_tcp(&guest_out, PISN + 6, CACK, TF_ACK, "on"), 3300);
    feed_at(t, S, tf_tcp(&guest_out, PISN + 6, CACK, TF_ACK, "on"), 3300);
    g_assert_cmpuint(t->out->len, ==, 3);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 0);
    t_free(t);
}

/* ... and, with no replica yet, an overflowing queue releases. */
static void test_queue_full(void)
{
    T *t = t_new_with(64, 4);

    handshake(t, PISN);
    for (int i = 0; i < 5; i++) {
        feed(t, P, tf_tcp(&guest_out, PISN + 1 + i, CACK, TF_ACK, "z"));
    }
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_QUEUE_FULL], ==, 1);
    g_assert_cmpuint(t->out->len, ==, 2);
    assert_out(t, 1, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "z"));
    /* The rest still match against the secondary. */
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "zzzzz"));
    g_assert_cmpuint(t->out->len, ==, 6);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 0);
    t_free(t);
}

/*
 * Releases through a full queue move the flow round the whole sequence
 * space to just before its SYN; the SYN then comes again, and the
 * secondary sends a byte at that position.  Nothing there is data to
 * compare (matching it once read 4 GiB past the frame): a divergence.
 */
static void test_tcp_syn_after_wrap(void)
{
    T *t = t_new_with(64, 1);
    const uint32_t jump = 0x7fff0000u;
    uint32_t ends[] = { PISN + 1 + jump, PISN + 1 + 2 * jump, PISN };

    handshake(t, PISN);
    for (int i = 0; i < ARRAY_SIZE(ends); i++) {
        feed(t, P, tf_tcp(&guest_out, ends[i] - 1, CACK, TF_ACK, "j"));
    }
    feed(t, P, tf_tcp(&guest_out, PISN, CACK, TF_SYN | TF_ACK, NULL));
    /* The first two pushed out by the next; the third by the SYN. */
    g_assert_cmpuint(t->out->len, ==, 4);
    feed(t, S, tf_tcp(&guest_out, PISN, CACK, TF_ACK, "q"));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    g_assert_cmpuint(t->out->len, ==, 4);
    t_free(t);
}

/*
 * The secondary's held frames have a byte budget.  Beyond it they are
 * refused and counted, one checkpoint is asked for, and a primary frame
 * whose partner was refused waits for that checkpoint.
 */
#define BUDGET_BYTES 4096
#define BUDGET_FLOWS 32

static TfFlow budget_flow(int i)
{
    TfFlow f = guest_out;

    f.sport = 2000 + i;
    return f;
}

static void test_secondary_byte_budget(void)
{
    ColoMatcherConfig cfg = {
        .max_connections = 64, .max_queue = 64, .timeout_ns = TIMEOUT_NS,
        .max_secondary_bytes = BUDGET_BYTES,
        /* Room for every flow: the bytes, not the count, must bind. */
        .max_secondary_connections = BUDGET_FLOWS,
    };
    T *t = t_new_cfg(&cfg);
    const ColoMatcherStats *st = colo_matcher_stats(t->m);
    static const char payload[200];
    TfFlow last = budget_flow(BUDGET_FLOWS - 1);
    g_autoptr(GByteArray) probe = tf_udp(&last, payload, sizeof(payload), 0);
    guint frame_len = probe->len;
    uint64_t held;

    protect(t);
    for (int i = 0; i < BUDGET_FLOWS; i++) {
        TfFlow f = budget_flow(i);

        feed(t, S, tf_udp(&f, payload, sizeof(payload), i));
    }
    held = BUDGET_FLOWS - st->secondary_refused;
    g_assert_cmpuint(held * frame_len, <=, BUDGET_BYTES);
    g_assert_cmpuint((held + 1) * frame_len, >, BUDGET_BYTES);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_QUEUE_FULL], ==, 1);

    feed(t, P, tf_udp(&last, payload, sizeof(payload), BUDGET_FLOWS - 1));
    colo_matcher_expire(t->m, TIMEOUT_NS + 1);
    g_assert_cmpuint(t->out->len, ==, 0);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 1);

    /* The checkpoint dropped what the secondary held: the budget is back. */
    for (uint64_t i = 0; i < held; i++) {
        TfFlow f = budget_flow(i);

        feed(t, S, tf_udp(&f, payload, sizeof(payload), i));
    }
    g_assert_cmpuint(st->secondary_refused, ==, BUDGET_FLOWS - held);
    t_free(t);
}

/* Between checkpoint begin and done, nothing leaves; then in order. */
static void test_checkpoint_order(void)
{
    T *t = t_new();

    handshake(t, PISN);
    feed(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "held"));
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "secondary"));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    colo_matcher_checkpoint_begin(t->m);
    /* A frame in flight during the checkpoint matches but must wait. */
    feed(t, P, tf_udp(&guest_out2, "u", 1, 1));
    feed(t, S, tf_udp(&guest_out2, "u", 1, 2));
    g_assert_cmpuint(t->out->len, ==, 1);
    colo_matcher_checkpoint_done(t->m);
    g_assert_cmpuint(t->out->len, ==, 3);
    assert_out(t, 1, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "held"));
    assert_out(t, 2, tf_udp(&guest_out2, "u", 1, 1));
    g_assert_cmpuint(colo_matcher_stats(t->m)->checkpoints, ==, 1);
    t_free(t);
}

static void test_flush_bypass(void)
{
    T *t = t_new();

    feed(t, P, tf_udp(&guest_out2, "a", 1, 1));
    colo_matcher_flush(t->m, true);
    g_assert_cmpuint(t->out->len, ==, 1);
    feed(t, P, tf_udp(&guest_out2, "b", 1, 1));
    feed(t, S, tf_udp(&guest_out2, "c", 1, 1));
    g_assert_cmpuint(t->out->len, ==, 2);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

static GByteArray *cut_frame(GByteArray *whole, guint len)
{
    GByteArray *cut = g_byte_array_new();

    g_byte_array_append(cut, whole->data, len);
    return cut;
}

/*
 * Every truncation of a TCP frame: never a crash, and the same malformed
 * frame from both sides is a match, compared whole.
 */
static void test_malformed(void)
{
    T *t = t_new();
    GByteArray *good = tf_tcp(&guest_out, PISN, CACK, TF_SYN | TF_ACK, NULL);

    protect(t);
    for (guint len = 0; len < good->len; len++) {
        feed(t, P, cut_frame(good, len));
        feed(t, S, cut_frame(good, len));
        g_assert_cmpuint(t->out->len, ==, len + 1);
    }
    g_assert_cmpuint(colo_matcher_stats(t->m)->parse[P].malformed, ==,
                     good->len);
    g_assert_cmpuint(colo_matcher_stats(t->m)->parse[S].malformed, ==,
                     good->len);
    g_assert_cmpuint(colo_matcher_stats(t->m)->matched, ==, good->len);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);

    /* Different malformed output is a difference like any other. */
    feed(t, P, cut_frame(good, 20));
    feed(t, S, cut_frame(good, 21));
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_PAYLOAD], ==, 1);
    g_assert_cmpuint(t->out->len, ==, good->len);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, good->len + 1);
    g_byte_array_unref(good);
    t_free(t);
}

/*
 * Before COLO's first checkpoint there is no replica to protect: a
 * connection evicted from a full table releases what it held.
 */
static void test_eviction_releases(void)
{
    T *t = t_new_with(2, 64);

    for (int i = 0; i < 3; i++) {
        TfFlow fl = guest_out;

        fl.dport = 50000 + i;
        feed(t, P, tf_udp(&fl, "q", 1, 1));
    }
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_EVICTED], ==, 1);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);
    t_free(t);
}

/* Freeing the matcher releases every primary frame it still holds. */
static void test_free_releases(void)
{
    T *t = t_new();
    GPtrArray *out = g_ptr_array_ref(t->out);

    feed(t, P, tf_udp(&guest_out2, "a", 1, 1));
    feed(t, P, tf_arp(3));
    colo_matcher_free(t->m);
    t->m = NULL;
    g_assert_cmpuint(out->len, ==, 2);
    g_ptr_array_unref(t->out);
    g_ptr_array_unref(out);
    g_free(t);
}

/*
 * Output commit: once COLO runs, a frame that timed out waits for the
 * checkpoint it asks for, and nothing overtakes it.
 */
static void test_timeout_waits_for_checkpoint(void)
{
    T *t = t_new();
    const ColoMatcherStats *st = colo_matcher_stats(t->m);

    protect(t);
    handshake(t, PISN);
    feed_at(t, P, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "alone"), 100);
    colo_matcher_expire(t->m, 3100 * MS);
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_TIMEOUT], ==, 1);
    g_assert_cmpuint(st->held_for_checkpoint, ==, 1);

    /* A match on another flow queues behind it. */
    feed_at(t, P, tf_udp(&guest_out2, "u", 1, 1), 3200);
    feed_at(t, S, tf_udp(&guest_out2, "u", 1, 2), 3200);
    g_assert_cmpuint(t->out->len, ==, 1);
    /* Nothing leaves on time alone, however long. */
    colo_matcher_expire(t->m, 60000 * MS);
    g_assert_cmpuint(t->out->len, ==, 1);

    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 3);
    assert_out(t, 1, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "alone"));
    assert_out(t, 2, tf_udp(&guest_out2, "u", 1, 1));
    g_assert_cmpuint(st->released_unmatched, ==, 0);
    g_assert_cmpuint(st->released_checkpoint, ==, 2);
    t_free(t);
}

/* However many frames give up, one request per checkpoint. */
static void test_one_request_per_checkpoint(void)
{
    T *t = t_new();

    protect(t);
    for (int i = 0; i < 5; i++) {
        TfFlow fl = guest_out;

        fl.dport = 50000 + i;
        feed_at(t, P, tf_udp(&fl, "q", 1, 1), i * 100);
        feed_at(t, S, tf_udp(&fl, "r", 1, 1), i * 100);
        colo_matcher_expire(t->m, 10000 * MS + i * MS);
    }
    g_assert_cmpuint(colo_matcher_stats(t->m)->diverged[COLO_DIVERGED_PAYLOAD],
                     ==, 5);
    g_assert_cmpuint(t_diverged_total(t), ==, 1);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 5);
    feed(t, P, tf_udp(&guest_out2, "a", 1, 1));
    feed(t, S, tf_udp(&guest_out2, "b", 1, 1));
    g_assert_cmpuint(t_diverged_total(t), ==, 2);
    t_free(t);
}

/* An overflowing queue parks its oldest frame for a checkpoint. */
static void test_queue_full_waits_for_checkpoint(void)
{
    T *t = t_new_with(64, 4);

    protect(t);
    handshake(t, PISN);
    for (int i = 0; i < 5; i++) {
        feed(t, P, tf_tcp(&guest_out, PISN + 1 + i, CACK, TF_ACK, "z"));
    }
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_QUEUE_FULL], ==, 1);
    g_assert_cmpuint(t->out->len, ==, 1);
    /* The rest still match, but may not overtake the parked frame. */
    feed(t, S, tf_tcp(&guest_out, PISN + 1, CACK, TF_ACK, "zzzzz"));
    g_assert_cmpuint(t->out->len, ==, 1);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 6);
    for (int i = 0; i < 5; i++) {
        assert_out(t, 1 + i, tf_tcp(&guest_out, PISN + 1 + i, CACK, TF_ACK,
                                    "z"));
    }
    t_free(t);
}

/* A connection evicted while it holds output asks for a checkpoint. */
static void test_eviction_waits_for_checkpoint(void)
{
    T *t = t_new_with(2, 64);

    protect(t);
    for (int i = 0; i < 3; i++) {
        TfFlow fl = guest_out;

        fl.dport = 50000 + i;
        feed(t, P, tf_udp(&fl, "q", 1, 1));
    }
    g_assert_cmpuint(t->out->len, ==, 0);
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_EVICTED], ==, 1);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);
    checkpoint(t);
    g_assert_cmpuint(t->out->len, ==, 3);
    /* The evicted frame first; connections have no order among them. */
    {
        TfFlow fl = guest_out;

        fl.dport = 50000;
        assert_out(t, 0, tf_udp(&fl, "q", 1, 1));
    }
    t_free(t);
}

/*
 * Flows that only the secondary sends on cannot push the primary's
 * connections out: however many it invents, a held primary frame keeps
 * waiting for its partner, and no eviction asks for a checkpoint.
 */
static void test_secondary_flows_cannot_evict(void)
{
    T *t = t_new_with(4, 64);
    const ColoMatcherStats *st = colo_matcher_stats(t->m);

    protect(t);
    feed(t, P, tf_udp(&guest_out2, "held", 4, 1));
    for (int i = 0; i < 100; i++) {
        TfFlow fl = guest_out;

        fl.dport = 50000 + i;
        feed(t, S, tf_udp(&fl, "junk", 4, 1));
    }
    g_assert_cmpuint(t->out->len, ==, 0);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    /* The primary's connection, and the one slot left to the rest. */
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);
    g_assert_cmpuint(st->secondary_conns_evicted, ==, 99);

    feed(t, S, tf_udp(&guest_out2, "held", 4, 1));
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(st->matched, ==, 1);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/*
 * A secondary frame on a connection the primary has not used yet waits
 * for it, and its connection is forgotten once nothing happened on it for
 * a timeout.
 */
static void test_secondary_only_connection(void)
{
    T *t = t_new();

    protect(t);
    feed_at(t, S, tf_udp(&guest_out2, "early", 5, 1), 0);
    feed_at(t, P, tf_udp(&guest_out2, "early", 5, 1), 10);
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(colo_matcher_stats(t->m)->matched, ==, 1);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 1);

    feed_at(t, S, tf_udp(&guest_out, "lonely", 6, 1), 20);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 2);
    colo_matcher_expire(t->m, 20 * MS + TIMEOUT_NS + 1);
    /* Its frame timed out (the secondary said what the primary did not). */
    g_assert_cmpuint(t->diverged[COLO_DIVERGED_TIMEOUT], ==, 1);
    colo_matcher_expire(t->m, 40 * MS + 2 * TIMEOUT_NS);
    g_assert_cmpuint(colo_matcher_connections(t->m), ==, 1);
    t_free(t);
}

/* A primary frame in flight while both VMs are paused: covered. */
static void test_in_flight_during_checkpoint(void)
{
    T *t = t_new();

    protect(t);
    colo_matcher_checkpoint_begin(t->m);
    feed(t, P, tf_udp(&guest_out2, "late", 4, 1));
    feed(t, S, tf_udp(&guest_out2, "old", 3, 1));
    colo_matcher_expire(t->m, 60000 * MS);
    g_assert_cmpuint(t->out->len, ==, 0);
    colo_matcher_checkpoint_done(t->m);
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

/* The primary goes on alone: what waited for a checkpoint goes out. */
static void test_flush_releases_parked(void)
{
    T *t = t_new();

    protect(t);
    feed_at(t, P, tf_udp(&guest_out2, "a", 1, 1), 0);
    colo_matcher_expire(t->m, 5000 * MS);
    feed_at(t, P, tf_udp(&guest_out, "b", 1, 1), 5000);
    g_assert_cmpuint(t->out->len, ==, 0);
    colo_matcher_flush(t->m, true);
    g_assert_cmpuint(t->out->len, ==, 2);
    assert_out(t, 0, tf_udp(&guest_out2, "a", 1, 1));
    assert_out(t, 1, tf_udp(&guest_out, "b", 1, 1));
    g_assert_cmpuint(colo_matcher_stats(t->m)->released_unmatched, ==, 2);
    t_free(t);
}

/* Freed while COLO runs: what a checkpoint owed is dropped, not sent. */
static void test_free_drops_when_protected(void)
{
    T *t = t_new();
    GPtrArray *out = g_ptr_array_ref(t->out);

    protect(t);
    feed_at(t, P, tf_udp(&guest_out2, "a", 1, 1), 0);
    colo_matcher_expire(t->m, 5000 * MS);
    feed(t, P, tf_arp(3));
    colo_matcher_free(t->m);
    t->m = NULL;
    g_assert_cmpuint(out->len, ==, 0);
    g_ptr_array_unref(t->out);
    g_ptr_array_unref(out);
    g_free(t);
}

/* A vnet header in front of the frame is skipped and kept on release. */
static void test_vnet_header(void)
{
    T *t = t_new();
    GByteArray *frames[2];

    for (int side = 0; side < 2; side++) {
        GByteArray *f = tf_udp(&guest_out2, "v", 1, side);
        uint8_t hdr[12] = { side };

        g_byte_array_prepend(f, hdr, sizeof(hdr));
        frames[side] = f;
    }
    for (int side = 0; side < 2; side++) {
        ColoFrame f = { .len = frames[side]->len, .vnet_hdr_len = 12 };

        f.data = g_byte_array_free(frames[side], false);
        colo_matcher_input(t->m, side, &f);
    }
    g_assert_cmpuint(t->out->len, ==, 1);
    g_assert_cmpuint(((GByteArray *)g_ptr_array_index(t->out, 0))->len, ==,
                     12 + 14 + 20 + 8 + 1);
    g_assert_cmpuint(t_diverged_total(t), ==, 0);
    t_free(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/colo/matcher/tcp/identical", test_tcp_identical);
    g_test_add_func("/colo/matcher/tcp/secondary-first",
                    test_tcp_secondary_first);
    g_test_add_func("/colo/matcher/tcp/resegmented", test_tcp_resegmented);
    g_test_add_func("/colo/matcher/tcp/retransmission",
                    test_tcp_retransmission);
    g_test_add_func("/colo/matcher/tcp/payload-differs",
                    test_tcp_payload_differs);
    g_test_add_func("/colo/matcher/tcp/syn-differs", test_tcp_syn_differs);
    g_test_add_func("/colo/matcher/tcp/waits-for-secondary-ack",
                    test_tcp_waits_for_secondary_ack);
    g_test_add_func("/colo/matcher/tcp/reused-tuple-ack",
                    test_tcp_reused_tuple_ack);
    g_test_add_func("/colo/matcher/tcp/fin", test_tcp_fin);
    g_test_add_func("/colo/matcher/tcp/rst", test_tcp_rst);
    g_test_add_func("/colo/matcher/tcp/finished-forgotten",
                    test_tcp_finished_forgotten);
    g_test_add_func("/colo/matcher/tcp/wraparound", test_tcp_wraparound);
    g_test_add_func("/colo/matcher/tcp/syn-after-wrap",
                    test_tcp_syn_after_wrap);
    g_test_add_func("/colo/matcher/tcp/options-ignored",
                    test_tcp_options_ignored);
    g_test_add_func("/colo/matcher/udp-icmp-arp", test_udp_icmp_arp);
    g_test_add_func("/colo/matcher/match-wait", test_match_wait);
    g_test_add_func("/colo/matcher/timeout", test_timeout);
    g_test_add_func("/colo/matcher/queue-full", test_queue_full);
    g_test_add_func("/colo/matcher/checkpoint-order", test_checkpoint_order);
    g_test_add_func("/colo/matcher/secondary-byte-budget",
                    test_secondary_byte_budget);
    g_test_add_func("/colo/matcher/flush-bypass", test_flush_bypass);
    g_test_add_func("/colo/matcher/malformed", test_malformed);
    g_test_add_func("/colo/matcher/eviction-releases",
                    test_eviction_releases);
    g_test_add_func("/colo/matcher/free-releases", test_free_releases);
    g_test_add_func("/colo/matcher/vnet-header", test_vnet_header);
    g_test_add_func("/colo/matcher/commit/timeout-waits",
                    test_timeout_waits_for_checkpoint);
    g_test_add_func("/colo/matcher/commit/one-request-per-checkpoint",
                    test_one_request_per_checkpoint);
    g_test_add_func("/colo/matcher/commit/queue-full-waits",
                    test_queue_full_waits_for_checkpoint);
    g_test_add_func("/colo/matcher/commit/eviction-waits",
                    test_eviction_waits_for_checkpoint);
    g_test_add_func("/colo/matcher/secondary-flows-cannot-evict",
                    test_secondary_flows_cannot_evict);
    g_test_add_func("/colo/matcher/secondary-only-connection",
                    test_secondary_only_connection);
    g_test_add_func("/colo/matcher/commit/in-flight-during-checkpoint",
                    test_in_flight_during_checkpoint);
    g_test_add_func("/colo/matcher/commit/flush-releases-parked",
                    test_flush_releases_parked);
    g_test_add_func("/colo/matcher/commit/free-drops",
                    test_free_drops_when_protected);
    return g_test_run();
}
