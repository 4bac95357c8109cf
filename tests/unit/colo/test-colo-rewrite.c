/*
 * Unit tests of the COLO TCP rewriter (net/colo-rewrite.c).
 *
 * Frames are built byte by byte with correct checksums computed here from
 * scratch; after the rewriter ran, the tests read the fields back at their
 * known offsets and recompute the checksum to compare.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/colo-rewrite.h"

enum {
    T_ETH_IP4 = 0x0800,
    T_ETH_IP6 = 0x86dd,
    T_ETH_ARP = 0x0806,
    T_TPID_8021Q = 0x8100,
    T_TPID_8021AD = 0x88a8,
    T_PROTO_TCP = 6,
    T_PROTO_UDP = 17,

    T_FIN = 0x01,
    T_SYN = 0x02,
    T_RST = 0x04,
    T_PSH = 0x08,
    T_ACK = 0x10,

    T_ETH_LEN = 14,
    T_VLAN_LEN = 4,
    T_IP4_LEN = 20,
    T_IP6_LEN = 40,
    T_TCP_LEN = 20,

    T_VNET_NEEDS_CSUM = 1,
};

#define T_NOW 1000000   /* any start time, ms */

static const uint8_t ip4_guest[4] = { 192, 168, 1, 2 };
static const uint8_t ip4_peer[4] = { 10, 0, 0, 7 };
static const uint8_t ip6_guest[16] = {
    0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02
};
static const uint8_t ip6_peer[16] = {
    0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07
};

/* A TCP connection between the guest and a peer, and how it is framed. */
typedef struct Flow {
    int family;             /* 4 or 6 */
    int vlans;              /* 0..2 tags */
    size_t vnet_len;        /* 0, 10 or 12 */
    uint8_t vnet_flags;
    uint16_t guest_port;
    uint16_t peer_port;
} Flow;

/* One segment of a Flow. */
typedef struct Seg {
    bool from_guest;
    uint8_t flags;
    uint32_t seq;
    uint32_t ack;
    const uint8_t *opts;    /* multiple of 4 bytes */
    size_t opts_len;
    size_t payload_len;
} Seg;

/* ---- Byte-level builders and readers ---- */

static void put8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put16(GByteArray *b, uint16_t v)
{
    put8(b, v >> 8);
    put8(b, v & 0xff);
}

static void put32(GByteArray *b, uint32_t v)
{
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}

static uint16_t get16(const uint8_t *p)
{
    return (p[0] << 8) | p[1];
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)get16(p) << 16) | get16(p + 2);
}

static size_t flow_ip_off(const Flow *fl)
{
    return fl->vnet_len + T_ETH_LEN + T_VLAN_LEN * fl->vlans;
}

static size_t flow_tcp_off(const Flow *fl)
{
    return flow_ip_off(fl) + (fl->family == 4 ? T_IP4_LEN : T_IP6_LEN);
}

static size_t addr_len(const Flow *fl)
{
    return fl->family == 4 ? 4 : 16;
}

static const uint8_t *src_addr(const Flow *fl, bool from_guest)
{
    if (fl->family == 4) {
        return from_guest ? ip4_guest : ip4_peer;
    }
    return from_guest ? ip6_guest : ip6_peer;
}

static const uint8_t *dst_addr(const Flow *fl, bool from_guest)
{
    return src_addr(fl, !from_guest);
}

/* Ones' complement sum of big-endian 16-bit words, odd byte padded. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        sum += get16(p + i);
    }
    if (n & 1) {
        sum += p[n - 1] << 8;
    }
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

/*
 * The TCP checksum of the segment at @tcp_off, computed from scratch with
 * the checksum field taken as zero.
 */
static uint16_t tcp_csum(const Flow *fl, const uint8_t *frame, size_t tcp_len,
                         bool from_guest)
{
    const uint8_t *tcp = frame + flow_tcp_off(fl);
    uint32_t sum = 0;

    sum = sum16(sum, src_addr(fl, from_guest), addr_len(fl));
    sum = sum16(sum, dst_addr(fl, from_guest), addr_len(fl));
    sum += T_PROTO_TCP;
    sum += tcp_len >> 16;
    sum += tcp_len & 0xffff;
    sum = sum16(sum, tcp, 16);
    sum = sum16(sum, tcp + 18, tcp_len - 18);
    return ~fold(sum) & 0xffff;
}

static void put_l2(GByteArray *b, const Flow *fl)
{
    static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 1 };
    static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 2 };
    static const uint16_t tpids[2] = { T_TPID_8021AD, T_TPID_8021Q };

    for (size_t i = 0; i < fl->vnet_len; i++) {
        put8(b, i == 0 ? fl->vnet_flags : 0);
    }
    g_byte_array_append(b, mac_a, 6);
    g_byte_array_append(b, mac_b, 6);
    for (int i = 0; i < fl->vlans; i++) {
        put16(b, tpids[2 - fl->vlans + i]);
        put16(b, 100 + i);
    }
    put16(b, fl->family == 4 ? T_ETH_IP4 : T_ETH_IP6);
}

static void put_ip(GByteArray *b, const Flow *fl, bool from_guest,
                   size_t tcp_len)
{
    if (fl->family == 4) {
        put8(b, 0x45);
        put8(b, 0);
        put16(b, T_IP4_LEN + tcp_len);
        put32(b, 0x12344000);   /* id, DF */
        put8(b, 64);
        put8(b, T_PROTO_TCP);
        put16(b, 0);            /* IP checksum: the rewriter ignores it */
    } else {
        put32(b, 0x60000000);
        put16(b, tcp_len);
        put8(b, T_PROTO_TCP);
        put8(b, 64);
    }
    g_byte_array_append(b, src_addr(fl, from_guest), addr_len(fl));
    g_byte_array_append(b, dst_addr(fl, from_guest), addr_len(fl));
}

/*
 * The frame for @s on @fl with a valid checksum, or with only the
 * pseudo-header sum in it when the vnet header asks for a partial one.
 */
static GByteArray *build(const Flow *fl, const Seg *s)
{
    GByteArray *b = g_byte_array_new();
    size_t tcp_len = T_TCP_LEN + s->opts_len + s->payload_len;
    uint16_t csum;

    put_l2(b, fl);
    put_ip(b, fl, s->from_guest, tcp_len);
    put16(b, s->from_guest ? fl->guest_port : fl->peer_port);
    put16(b, s->from_guest ? fl->peer_port : fl->guest_port);
    put32(b, s->seq);
    put32(b, s->ack);
    put8(b, (T_TCP_LEN + s->opts_len) / 4 << 4);
    put8(b, s->flags);
    put16(b, 29200);
    put16(b, 0);
    put16(b, 0);
    g_byte_array_append(b, s->opts, s->opts_len);
    for (size_t i = 0; i < s->payload_len; i++) {
        put8(b, 'a' + i % 26);
    }
    if (fl->vnet_flags & T_VNET_NEEDS_CSUM) {
        csum = 0x5a5a;          /* stands for the pseudo-header sum */
    } else {
        csum = tcp_csum(fl, b->data, tcp_len, s->from_guest);
    }
    b->data[flow_tcp_off(fl) + 16] = csum >> 8;
    b->data[flow_tcp_off(fl) + 17] = csum & 0xff;
    return b;
}

static uint32_t frame_seq(const Flow *fl, const GByteArray *b)
{
    return get32(b->data + flow_tcp_off(fl) + 4);
}

static uint32_t frame_ack(const Flow *fl, const GByteArray *b)
{
    return get32(b->data + flow_tcp_off(fl) + 8);
}

static uint16_t frame_csum(const Flow *fl, const GByteArray *b)
{
    return get16(b->data + flow_tcp_off(fl) + 16);
}

static ColoRewriteDir seg_dir(const Seg *s)
{
    return s->from_guest ? COLO_REWRITE_FROM_GUEST : COLO_REWRITE_TO_GUEST;
}

/*
 * Run @s through @rw at time @now; check its checksum is still right (or,
 * for a partial one, untouched) and its seq/ack are @want_seq/@want_ack.
 */
static void pass_at(ColoRewriter *rw, const Flow *fl, const Seg *s,
                    uint32_t want_seq, uint32_t want_ack, int64_t now)
{
    g_autoptr(GByteArray) b = build(fl, s);
    size_t tcp_len = b->len - flow_tcp_off(fl);
    bool same = want_seq == s->seq && want_ack == s->ack;
    bool changed = colo_rewriter_process(rw, b->data, b->len, fl->vnet_len,
                                         seg_dir(s), now);

    g_assert_cmphex(frame_seq(fl, b), ==, want_seq);
    g_assert_cmphex(frame_ack(fl, b), ==, want_ack);
    if (!s->opts_len) {
        g_assert_cmpint(changed, ==, !same);
    }
    if (fl->vnet_flags & T_VNET_NEEDS_CSUM) {
        g_assert_cmphex(frame_csum(fl, b), ==, 0x5a5a);
    } else {
        g_assert_cmphex(frame_csum(fl, b), ==,
                        tcp_csum(fl, b->data, tcp_len, s->from_guest));
    }
}

static void pass(ColoRewriter *rw, const Flow *fl, const Seg *s,
                 uint32_t want_seq, uint32_t want_ack)
{
    pass_at(rw, fl, s, want_seq, want_ack, T_NOW);
}

/* The offset @rw holds for @fl, asserting there is one. */
static uint32_t offset_of(ColoRewriter *rw, const Flow *fl)
{
    Seg s = { .from_guest = true, .flags = T_ACK };
    g_autoptr(GByteArray) b = build(fl, &s);
    uint32_t off = 0xdeadbeef;

    g_assert_true(colo_rewriter_offset_of(rw, b->data, b->len, fl->vnet_len,
                                          &off));
    return off;
}

static bool has_offset(ColoRewriter *rw, const Flow *fl)
{
    Seg s = { .from_guest = true, .flags = T_ACK };
    g_autoptr(GByteArray) b = build(fl, &s);
    uint32_t off;

    return colo_rewriter_offset_of(rw, b->data, b->len, fl->vnet_len, &off);
}

static const Flow flow_plain = {
    .family = 4, .guest_port = 80, .peer_port = 40000,
};

/* ---- Handshakes ---- */

/*
 * The peer (client) opens: SYN in, the SVM's SYN-ACK out with its ISN
 * @svm, the client's ACK in acking the PVM's @pvm + 1.  Then a data
 * exchange each way.  @cli is the client's ISN.
 */
static void client_opens(ColoRewriter *rw, const Flow *fl, uint32_t cli,
                         uint32_t svm, uint32_t pvm)
{
    uint32_t off = pvm - svm;

    pass(rw, fl, &(Seg){ false, T_SYN, cli, 0 }, cli, 0);
    pass(rw, fl, &(Seg){ true, T_SYN | T_ACK, svm, cli + 1 }, svm, cli + 1);
    pass(rw, fl, &(Seg){ false, T_ACK, cli + 1, pvm + 1 }, cli + 1, svm + 1);
    g_assert_cmphex(offset_of(rw, fl), ==, off);

    /* Request in, response out, its ACK in. */
    pass(rw, fl, &(Seg){ false, T_ACK | T_PSH, cli + 1, pvm + 1,
                         .payload_len = 100 }, cli + 1, svm + 1);
    pass(rw, fl, &(Seg){ true, T_ACK | T_PSH, svm + 1, cli + 101,
                         .payload_len = 333 }, pvm + 1, cli + 101);
    pass(rw, fl, &(Seg){ false, T_ACK, cli + 101, pvm + 334 },
         cli + 101, svm + 334);
}

/* The guest opens: SYN out, the server's SYN-ACK in, ACK and data out. */
static void guest_opens(ColoRewriter *rw, const Flow *fl, uint32_t srv,
                        uint32_t svm, uint32_t pvm)
{
    pass(rw, fl, &(Seg){ true, T_SYN, svm, 0 }, svm, 0);
    pass(rw, fl, &(Seg){ false, T_SYN | T_ACK, srv, pvm + 1 }, srv, svm + 1);
    g_assert_cmphex(offset_of(rw, fl), ==, pvm - svm);
    pass(rw, fl, &(Seg){ true, T_ACK, svm + 1, srv + 1 }, pvm + 1, srv + 1);
    pass(rw, fl, &(Seg){ true, T_ACK | T_PSH, svm + 1, srv + 1,
                         .payload_len = 7 }, pvm + 1, srv + 1);
    pass(rw, fl, &(Seg){ false, T_ACK | T_PSH, srv + 1, pvm + 8,
                         .payload_len = 1400 }, srv + 1, svm + 8);
}

static void test_handshake_client_opens(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);

    client_opens(rw, &flow_plain, 7000, 1000, 5000);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 1);
    g_assert_cmpuint(colo_rewriter_stats(rw)->offsets_learned, ==, 1);
}

static void test_handshake_guest_opens(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow fl = flow_plain;

    fl.guest_port = 51000;
    fl.peer_port = 443;
    guest_opens(rw, &fl, 90000, 123456, 42);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 1);
}

/*
 * The PVM was quicker than the SVM: the client's ACK of the PVM's SYN-ACK
 * reaches the SVM before the SVM's own SYN-ACK left.  That ACK cannot be
 * fixed any more, but the offset it carries is kept for what follows.
 */
static void test_handshake_pvm_first(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    pass(rw, fl, &(Seg){ false, T_SYN, 10, 0 }, 10, 0);
    pass(rw, fl, &(Seg){ false, T_ACK, 11, 801 }, 11, 801);
    g_assert_false(has_offset(rw, fl));
    pass(rw, fl, &(Seg){ true, T_SYN | T_ACK, 300, 11 }, 800, 11);
    g_assert_cmphex(offset_of(rw, fl), ==, 500);
    pass(rw, fl, &(Seg){ false, T_ACK, 11, 801, .payload_len = 5 }, 11, 301);
}

/* Same when the guest opened and the server's SYN-ACK beat the SVM's SYN. */
static void test_handshake_svm_syn_late(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    pass(rw, fl, &(Seg){ false, T_SYN | T_ACK, 77, 1001 }, 77, 1001);
    pass(rw, fl, &(Seg){ true, T_SYN, 3000, 0 }, 1000, 0);
    g_assert_cmphex(offset_of(rw, fl), ==, 1000u - 3000u);
    pass(rw, fl, &(Seg){ true, T_ACK, 3001, 78 }, 1001, 78);
}

static void test_handshake_retransmitted_synack(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    pass(rw, fl, &(Seg){ false, T_SYN, 7, 0 }, 7, 0);
    /* Before the offset is known, retransmissions pass unchanged... */
    pass(rw, fl, &(Seg){ true, T_SYN | T_ACK, 100, 8 }, 100, 8);
    pass(rw, fl, &(Seg){ false, T_SYN, 7, 0 }, 7, 0);
    pass(rw, fl, &(Seg){ true, T_SYN | T_ACK, 100, 8 }, 100, 8);
    pass(rw, fl, &(Seg){ false, T_ACK, 8, 201 }, 8, 101);
    g_assert_cmphex(offset_of(rw, fl), ==, 100);
    /* ...and afterwards they carry the PVM's ISN, learning nothing new. */
    pass(rw, fl, &(Seg){ true, T_SYN | T_ACK, 100, 8 }, 200, 8);
    pass(rw, fl, &(Seg){ false, T_ACK, 8, 201 }, 8, 101);
    g_assert_cmphex(offset_of(rw, fl), ==, 100);
    g_assert_cmpuint(colo_rewriter_stats(rw)->offsets_learned, ==, 1);
}

/* A connection seen first mid-stream is taken to agree (offset 0). */
static void test_midstream_adopted(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    pass(rw, fl, &(Seg){ false, T_ACK, 5, 6 }, 5, 6);
    g_assert_cmphex(offset_of(rw, fl), ==, 0);
    pass(rw, fl, &(Seg){ true, T_ACK, 6, 5, .payload_len = 9 }, 6, 5);
    g_assert_cmpuint(colo_rewriter_stats(rw)->rewritten, ==, 0);
}

/* ---- Sequence wraparound ---- */

static void test_wraparound(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow fl = flow_plain;

    /* SVM near the top, PVM near zero: the data crosses 2^32. */
    client_opens(rw, &fl, 0xfffffff0, 0xffffff00, 0x10);
    pass(rw, &fl, &(Seg){ true, T_ACK, 0xffffff01 + 333, 0x100,
                          .payload_len = 1000 },
         0x10 + 1 + 333, 0x100);
    pass(rw, &fl, &(Seg){ false, T_ACK, 0x100, 0x10 + 1 + 1333 },
         0x100, 0xffffff01 + 1333);

    /* And the other way round, on a second connection. */
    fl.peer_port++;
    client_opens(rw, &fl, 1, 0x20, 0xfffffff0);
    g_assert_cmphex(offset_of(rw, &fl), ==, 0xffffffd0);
    pass(rw, &fl, &(Seg){ true, T_ACK, 0x21 + 333, 101 },
         0xfffffff1 + 333, 101);
}

/* ---- Checksums on every framing ---- */

static void test_csum_framings(void)
{
    static const size_t vnet_lens[] = { 0, 10, 12 };

    for (int family = 4; family <= 6; family += 2) {
        for (int vlans = 0; vlans <= 2; vlans++) {
            for (int v = 0; v < ARRAY_SIZE(vnet_lens); v++) {
                g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
                Flow fl = {
                    .family = family, .vlans = vlans,
                    .vnet_len = vnet_lens[v],
                    .guest_port = 22, .peer_port = 1024 + vlans,
                };

                /* Many offsets, so that carries happen in the sums. */
                client_opens(rw, &fl, 0x1234 * v, 0xfedc0000 + vlans,
                             0x0123ffff * family);
                fl.peer_port += 100;
                guest_opens(rw, &fl, 0xabcdef, 0xffff0000, 0xffff);
            }
        }
    }
}

/*
 * With VIRTIO_NET_HDR_F_NEEDS_CSUM the field holds the pseudo-header sum
 * only, which seq and ack are not part of: it must stay as it is.
 */
static void test_csum_partial(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow fl = flow_plain;

    fl.vnet_len = 12;
    fl.vnet_flags = T_VNET_NEEDS_CSUM;
    client_opens(rw, &fl, 1, 2, 3000);
    fl.family = 6;
    client_opens(rw, &fl, 1, 2, 3000);
}

/* SACK edges towards the guest are in the PVM's space too. */
static void test_sack(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;
    uint32_t pvm = 0x80000000, svm = 0x1000, off = pvm - svm;
    uint8_t opts[28] = {
        1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2,       /* NOP NOP timestamp */
        1, 1, 5, 10,                                /* NOP NOP SACK 1 */
    };
    g_autoptr(GByteArray) b = NULL;
    Seg s = { false, T_ACK, 50, pvm + 1, opts, sizeof(opts) };

    /* Block 1 as the client sends it; 2 more bytes: EOL padding. */
    opts[16] = (pvm + 1001) >> 24;
    opts[17] = (pvm + 1001) >> 16;
    opts[18] = (pvm + 1001) >> 8;
    opts[19] = pvm + 1001;
    opts[20] = (pvm + 2001) >> 24;
    opts[21] = (pvm + 2001) >> 16;
    opts[22] = (pvm + 2001) >> 8;
    opts[23] = pvm + 2001;

    client_opens(rw, fl, 49, svm, pvm);
    b = build(fl, &s);
    g_assert_true(colo_rewriter_process(rw, b->data, b->len, 0,
                                        COLO_REWRITE_TO_GUEST, T_NOW));
    g_assert_cmphex(frame_ack(fl, b), ==, svm + 1);
    g_assert_cmphex(get32(b->data + flow_tcp_off(fl) + 20 + 16), ==,
                    pvm + 1001 - off);
    g_assert_cmphex(get32(b->data + flow_tcp_off(fl) + 20 + 20), ==,
                    pvm + 2001 - off);
    /* The timestamp is not a sequence number. */
    g_assert_cmphex(get32(b->data + flow_tcp_off(fl) + 20 + 4), ==, 1);
    g_assert_cmphex(frame_csum(fl, b), ==,
                    tcp_csum(fl, b->data, b->len - flow_tcp_off(fl), false));
}

/* An option whose length runs past the header stops the walk safely. */
static void test_sack_bad_options(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;
    uint8_t opts[8] = { 5, 40, 0, 0, 0, 9, 0, 0 };

    client_opens(rw, fl, 49, 100, 900);
    pass(rw, fl, &(Seg){ false, T_ACK, 50, 901, opts, sizeof(opts) },
         50, 101);
    opts[1] = 1;
    pass(rw, fl, &(Seg){ false, T_ACK, 50, 901, opts, sizeof(opts) },
         50, 101);
    opts[0] = 1;
    opts[1] = 5;
    opts[2] = 0;
    pass(rw, fl, &(Seg){ false, T_ACK, 50, 901, opts, sizeof(opts) },
         50, 101);
}

/* ---- Checkpoint and failover ---- */

static void test_checkpoint_resets_offsets(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow a = flow_plain, b = flow_plain;

    b.peer_port++;
    client_opens(rw, &a, 1, 100, 5000);
    /* b is mid-handshake: the SVM's ISN is known, the offset not yet. */
    pass(rw, &b, &(Seg){ false, T_SYN, 1, 0 }, 1, 0);
    pass(rw, &b, &(Seg){ true, T_SYN | T_ACK, 100, 2 }, 100, 2);

    colo_rewriter_checkpoint(rw);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 2);
    g_assert_cmphex(offset_of(rw, &a), ==, 0);
    g_assert_cmphex(offset_of(rw, &b), ==, 0);

    /* The SVM now uses the PVM's numbers: nothing to rewrite. */
    pass(rw, &a, &(Seg){ true, T_ACK, 5334, 101, .payload_len = 1 },
         5334, 101);
    pass(rw, &a, &(Seg){ false, T_ACK, 101, 5335 }, 101, 5335);
    /* b's late ACK must not teach an offset from the old ISN. */
    pass(rw, &b, &(Seg){ false, T_ACK, 2, 5001 }, 2, 5001);
    g_assert_cmphex(offset_of(rw, &b), ==, 0);
}

static void test_failover(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow kept = flow_plain, agreed = flow_plain, fresh = flow_plain;
    Flow opening = flow_plain;

    agreed.peer_port = 40001;
    fresh.peer_port = 40002;
    opening.peer_port = 40003;
    client_opens(rw, &kept, 1, 100, 5000);
    pass(rw, &agreed, &(Seg){ false, T_ACK, 9, 9 }, 9, 9);
    pass(rw, &opening, &(Seg){ false, T_SYN, 1, 0 }, 1, 0);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 3);

    colo_rewriter_failover(rw);
    g_assert_true(colo_rewriter_in_failover(rw));
    g_assert_true(colo_rewriter_active(rw));
    /* The agreeing connection needs nothing; the others stay. */
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 2);
    g_assert_false(has_offset(rw, &agreed));

    pass(rw, &kept, &(Seg){ true, T_ACK, 434, 101, .payload_len = 10 },
         5334, 101);
    pass(rw, &kept, &(Seg){ false, T_ACK, 101, 5344 }, 101, 444);

    /* A connection opened after failover is not tracked. */
    pass(rw, &fresh, &(Seg){ false, T_SYN, 1, 0 }, 1, 0);
    pass(rw, &fresh, &(Seg){ true, T_SYN | T_ACK, 70, 2 }, 70, 2);
    pass(rw, &fresh, &(Seg){ false, T_ACK, 2, 71 }, 2, 71);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 2);
    g_assert_cmpuint(colo_rewriter_stats(rw)->untracked, ==, 3);

    /* The handshake in flight still learns its offset. */
    pass(rw, &opening, &(Seg){ true, T_SYN | T_ACK, 30, 2 }, 30, 2);
    pass(rw, &opening, &(Seg){ false, T_ACK, 2, 1001 }, 2, 31);
    pass(rw, &opening, &(Seg){ true, T_ACK, 31, 2 }, 1001, 2);

    /* Once the kept connections end, the rewriter has nothing to do. */
    pass(rw, &kept, &(Seg){ false, T_RST, 101, 0 }, 101, 0);
    pass(rw, &opening, &(Seg){ true, T_RST | T_ACK, 31, 2 }, 1001, 2);
    /* Reusing a closed connection's ports is a new, untracked one. */
    pass(rw, &kept, &(Seg){ false, T_SYN, 900, 0 }, 900, 0);
    pass(rw, &kept, &(Seg){ true, T_SYN | T_ACK, 60, 901 }, 60, 901);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 1);
    colo_rewriter_expire(rw, T_NOW + COLO_REWRITE_CLOSE_GRACE_MS);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 0);
    g_assert_false(colo_rewriter_active(rw));
}

static void test_failover_empty(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);

    g_assert_true(colo_rewriter_active(rw));
    client_opens(rw, &flow_plain, 1, 100, 5000);
    colo_rewriter_checkpoint(rw);
    colo_rewriter_failover(rw);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 0);
    g_assert_false(colo_rewriter_active(rw));
}

/* ---- Connection end ---- */

/* The guest closes first; the last ACK comes from the peer. */
static void test_fin_guest_first(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;
    int64_t t = T_NOW;

    client_opens(rw, fl, 1, 100, 5000);     /* guest at 434, peer at 102 */
    pass(rw, fl, &(Seg){ true, T_FIN | T_ACK, 434, 102 }, 5334, 102);
    pass(rw, fl, &(Seg){ false, T_ACK, 102, 5335 }, 102, 435);
    pass(rw, fl, &(Seg){ false, T_FIN | T_ACK, 102, 5335 }, 102, 435);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 0);
    pass_at(rw, fl, &(Seg){ true, T_ACK, 435, 103 }, 5335, 103, t);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 1);

    /* Within the grace, a retransmitted FIN is still rewritten. */
    pass_at(rw, fl, &(Seg){ true, T_FIN | T_ACK, 434, 103 }, 5334, 103,
            t + COLO_REWRITE_CLOSE_GRACE_MS - 1);
    colo_rewriter_expire(rw, t + COLO_REWRITE_CLOSE_GRACE_MS - 1);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 1);
    colo_rewriter_expire(rw, t + COLO_REWRITE_CLOSE_GRACE_MS);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 0);
    g_assert_cmpuint(colo_rewriter_stats(rw)->expired, ==, 1);
}

/* The peer closes first, both FINs and ACKs in separate segments. */
static void test_fin_peer_first(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    client_opens(rw, fl, 1, 100, 5000);
    pass(rw, fl, &(Seg){ false, T_FIN | T_ACK, 102, 5334 }, 102, 434);
    pass(rw, fl, &(Seg){ true, T_ACK, 434, 103 }, 5334, 103);
    pass(rw, fl, &(Seg){ true, T_FIN | T_ACK, 434, 103 }, 5334, 103);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 0);
    /* An old ACK that does not cover the guest's FIN closes nothing. */
    pass(rw, fl, &(Seg){ false, T_ACK, 103, 5334 }, 103, 434);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 0);
    pass(rw, fl, &(Seg){ false, T_ACK, 103, 5335 }, 103, 435);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 1);

    /* Expiry also happens on its own as frames keep coming. */
    pass_at(rw, fl, &(Seg){ false, T_ACK, 1, 1, .payload_len = 0 }, 1, 1,
            T_NOW + 2 * COLO_REWRITE_CLOSE_GRACE_MS);
    g_assert_cmpuint(colo_rewriter_stats(rw)->expired, ==, 1);
}

/* The guest's FIN is the last byte before 2^32 in the PVM's space. */
static void test_fin_wraparound(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    client_opens(rw, fl, 1, 100, 0xfffffeb1);   /* guest at PVM 2^32 - 1 */
    pass(rw, fl, &(Seg){ false, T_FIN | T_ACK, 102, 0xffffffff }, 102, 434);
    pass(rw, fl, &(Seg){ true, T_ACK, 434, 103 }, 0xffffffff, 103);
    pass(rw, fl, &(Seg){ true, T_FIN | T_ACK, 434, 103 }, 0xffffffff, 103);
    pass(rw, fl, &(Seg){ false, T_ACK, 103, 0xffffffff }, 103, 434);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 0);
    pass(rw, fl, &(Seg){ false, T_ACK, 103, 0 }, 103, 435);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 1);
}

static void test_rst(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow fl = flow_plain;

    client_opens(rw, &fl, 1, 100, 5000);
    pass(rw, &fl, &(Seg){ false, T_RST, 101, 0 }, 101, 0);
    fl.peer_port++;
    guest_opens(rw, &fl, 1, 100, 5000);
    pass(rw, &fl, &(Seg){ true, T_RST | T_ACK, 108, 1402 }, 5008, 1402);
    g_assert_cmpuint(colo_rewriter_stats(rw)->closed, ==, 2);
    colo_rewriter_expire(rw, T_NOW + COLO_REWRITE_CLOSE_GRACE_MS);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 0);
}

/* A closed connection's ports used again: a new handshake, a new offset. */
static void test_port_reuse(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;

    client_opens(rw, fl, 1, 100, 5000);
    pass(rw, fl, &(Seg){ false, T_RST, 101, 0 }, 101, 0);
    client_opens(rw, fl, 9000, 7, 77777);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 1);
    g_assert_cmpuint(colo_rewriter_stats(rw)->offsets_learned, ==, 2);
}

/* A new SYN on ports still tracked, without a FIN or RST seen before. */
static void test_reopen_unseen_close(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    Flow fl = flow_plain;

    /* Adopted mid-stream, then a handshake on the same ports. */
    pass(rw, &fl, &(Seg){ false, T_ACK, 5, 6 }, 5, 6);
    client_opens(rw, &fl, 9, 20, 900);
    /* A repeat of the opening SYN changes nothing... */
    pass(rw, &fl, &(Seg){ false, T_SYN, 9, 0 }, 9, 0);
    g_assert_cmphex(offset_of(rw, &fl), ==, 880);
    /* ...a different one starts over. */
    client_opens(rw, &fl, 4000, 7, 77);
    g_assert_cmpuint(colo_rewriter_stats(rw)->offsets_learned, ==, 2);

    /* The same when the guest opens twice. */
    fl.peer_port++;
    guest_opens(rw, &fl, 1, 100, 5000);
    guest_opens(rw, &fl, 1, 200, 7000);
    g_assert_cmphex(offset_of(rw, &fl), ==, 6800);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 2);
}

/* ---- Table bound ---- */

static void test_eviction(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(4);
    Flow fl[6];

    for (int i = 0; i < 6; i++) {
        fl[i] = flow_plain;
        fl[i].peer_port = 30000 + i;
        client_opens(rw, &fl[i], i, 100 * i, 5000 * i + 1);
    }
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 4);
    g_assert_cmpuint(colo_rewriter_table_stats(rw)->evicted, ==, 2);
    g_assert_false(has_offset(rw, &fl[0]));
    g_assert_false(has_offset(rw, &fl[1]));
    g_assert_cmphex(offset_of(rw, &fl[5]), ==, 5000 * 5 + 1 - 500);

    /* The least recently used goes, not the oldest. */
    pass(rw, &fl[2], &(Seg){ true, T_ACK, 201, 3 }, 10002, 3);
    client_opens(rw, &fl[0], 0, 0, 1);
    g_assert_true(has_offset(rw, &fl[2]));
    g_assert_false(has_offset(rw, &fl[3]));
}

/* ---- What is not TCP, and what does not parse ---- */

static void test_non_tcp(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autoptr(GByteArray) copy = NULL;
    Flow fl = flow_plain;

    /* An ARP request and a UDP datagram. */
    put_l2(b, &fl);
    b->data[13] = T_ETH_ARP & 0xff;
    b->data[12] = T_ETH_ARP >> 8;
    for (int i = 0; i < 28; i++) {
        put8(b, i);
    }
    copy = g_byte_array_new();
    g_byte_array_append(copy, b->data, b->len);
    g_assert_false(colo_rewriter_process(rw, b->data, b->len, 0,
                                         COLO_REWRITE_FROM_GUEST, T_NOW));
    g_assert_cmpmem(b->data, b->len, copy->data, copy->len);

    g_byte_array_set_size(b, 0);
    put_l2(b, &fl);
    put8(b, 0x45);
    put8(b, 0);
    put16(b, 28);
    put32(b, 0);
    put8(b, 64);
    put8(b, T_PROTO_UDP);
    put16(b, 0);
    g_byte_array_append(b, ip4_guest, 4);
    g_byte_array_append(b, ip4_peer, 4);
    put32(b, (53 << 16) | 53);
    put32(b, 8 << 16);
    g_assert_false(colo_rewriter_process(rw, b->data, b->len, 0,
                                         COLO_REWRITE_TO_GUEST, T_NOW));
    g_assert_cmpuint(colo_rewriter_stats(rw)->non_tcp, ==, 2);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), ==, 0);
}

/*
 * Every prefix of a frame that would be rewritten, each in a heap buffer
 * of exactly its length: none is changed, each is counted as malformed.
 */
static void test_truncated(void)
{
    static const Flow flows[] = {
        { .family = 4, .guest_port = 80, .peer_port = 40000 },
        { .family = 6, .vlans = 2, .vnet_len = 12,
          .guest_port = 80, .peer_port = 40000 },
    };

    for (int f = 0; f < ARRAY_SIZE(flows); f++) {
        g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
        const Flow *fl = &flows[f];
        Seg s = { true, T_ACK | T_PSH, 101, 2, .payload_len = 3 };
        g_autoptr(GByteArray) full = build(fl, &s);
        uint64_t malformed0;

        client_opens(rw, fl, 1, 100, 5000);
        malformed0 = colo_rewriter_stats(rw)->parse.malformed;
        for (size_t len = 0; len < full->len; len++) {
            g_autofree uint8_t *buf = g_malloc(MAX(len, 1));

            memcpy(buf, full->data, len);

            g_assert_false(colo_rewriter_process(rw, buf, len, fl->vnet_len,
                                                 COLO_REWRITE_FROM_GUEST,
                                                 T_NOW));
            g_assert_cmpmem(buf, len, full->data, len);
        }
        g_assert_cmpuint(colo_rewriter_stats(rw)->parse.malformed - malformed0,
                         ==, full->len);
        /* The whole frame still is rewritten. */
        pass(rw, fl, &s, 5001, 2);
    }
}

/* Corrupted and random frames: whatever happens, nothing breaks. */
static void test_garbage(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(8);
    g_autoptr(GRand) rand = g_rand_new_with_seed(20261122);
    Seg s = { false, T_ACK, 101, 5001, .payload_len = 10 };
    g_autoptr(GByteArray) good = build(&flow_plain, &s);
    uint64_t frames = 0;

    client_opens(rw, &flow_plain, 1, 100, 5000);
    for (int i = 0; i < 20000; i++) {
        size_t len = g_rand_int_range(rand, 0, good->len + 1);
        g_autofree uint8_t *buf = g_memdup2(good->data, good->len);

        for (int n = g_rand_int_range(rand, 1, 4); n > 0; n--) {
            buf[g_rand_int_range(rand, 0, good->len)] = g_rand_int(rand);
        }
        if (i % 4 == 0) {
            for (size_t j = 0; j < len; j++) {
                buf[j] = g_rand_int(rand);
            }
        }
        buf = g_realloc(buf, MAX(len, 1));
        colo_rewriter_process(rw, buf, len, i % 3 ? 0 : 10,
                              i & 1 ? COLO_REWRITE_TO_GUEST
                                    : COLO_REWRITE_FROM_GUEST,
                              T_NOW + i);
        frames++;
    }
    g_assert_cmpuint(colo_rewriter_stats(rw)->parse.parsed +
                     colo_rewriter_stats(rw)->parse.malformed, >=, frames);
    g_assert_cmpuint(colo_rewriter_conn_count(rw), <=, 8);
}

/* ---- Timestamps ---- */

/* NOP NOP TS(val, ecr): the option layout Linux sends. */
static void ts_opts(uint8_t *o, uint32_t val, uint32_t ecr)
{
    static const uint8_t head[4] = { 1, 1, 8, 10 };

    memcpy(o, head, 4);
    for (int i = 0; i < 4; i++) {
        o[4 + i] = val >> (24 - 8 * i);
        o[8 + i] = ecr >> (24 - 8 * i);
    }
}

static uint32_t frame_tsval(const Flow *fl, const GByteArray *b)
{
    return get32(b->data + flow_tcp_off(fl) + T_TCP_LEN + 4);
}

static uint32_t frame_tsecr(const Flow *fl, const GByteArray *b)
{
    return get32(b->data + flow_tcp_off(fl) + T_TCP_LEN + 8);
}

/* Run a segment with a timestamp option; return the frame for checks. */
static GByteArray *pass_ts(ColoRewriter *rw, const Flow *fl, bool from_guest,
                           uint8_t flags, uint32_t seq, uint32_t ack,
                           uint32_t val, uint32_t ecr)
{
    uint8_t o[12];
    Seg s = { from_guest, flags, seq, ack, o, sizeof(o) };
    GByteArray *b;

    ts_opts(o, val, ecr);
    b = build(fl, &s);
    colo_rewriter_process(rw, b->data, b->len, fl->vnet_len, seg_dir(&s),
                          T_NOW);
    g_assert_cmphex(frame_csum(fl, b), ==,
                    tcp_csum(fl, b->data, b->len - flow_tcp_off(fl),
                             from_guest));
    return b;
}

/*
 * The SVM's timestamps are shifted into the PVM's clock and back, or a
 * peer would drop the SVM's segments after a failover (PAWS).
 */
static void test_timestamps(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;
    uint32_t cli = 5000, svm = 100, pvm = 90000;
    uint32_t cts = 777, sts = 0xfffff000, pts = 0x20;   /* wraps */
    uint32_t ts_off = pts - sts;
    GByteArray *b;

    g_byte_array_unref(pass_ts(rw, fl, false, T_SYN, cli, 0, cts, 0));
    b = pass_ts(rw, fl, true, T_SYN | T_ACK, svm, cli + 1, sts, cts);
    /* Not known yet: the SYN-ACK goes as it is. */
    g_assert_cmphex(frame_tsval(fl, b), ==, sts);
    g_byte_array_unref(b);
    b = pass_ts(rw, fl, false, T_ACK, cli + 1, pvm + 1, cts + 1, pts);
    g_assert_cmphex(frame_ack(fl, b), ==, svm + 1);
    g_assert_cmphex(frame_tsecr(fl, b), ==, sts);
    g_assert_cmphex(frame_tsval(fl, b), ==, cts + 1);
    g_byte_array_unref(b);

    b = pass_ts(rw, fl, true, T_ACK | T_PSH, svm + 1, cli + 1, sts + 40,
                cts + 1);
    g_assert_cmphex(frame_seq(fl, b), ==, pvm + 1);
    g_assert_cmphex(frame_tsval(fl, b), ==, sts + 40 + ts_off);
    g_assert_cmphex(frame_tsecr(fl, b), ==, cts + 1);
    g_byte_array_unref(b);

    /* A zero TSecr echoes nothing and stays zero. */
    b = pass_ts(rw, fl, false, T_ACK, cli + 1, pvm + 1, cts + 2, 0);
    g_assert_cmphex(frame_tsecr(fl, b), ==, 0);
    g_byte_array_unref(b);

    /* Only the timestamps differ: failover keeps the connection. */
    colo_rewriter_checkpoint(rw);
    b = pass_ts(rw, fl, true, T_ACK, svm + 1, cli + 1, sts + 50, cts + 2);
    g_assert_cmphex(frame_tsval(fl, b), ==, sts + 50);
    g_byte_array_unref(b);
}

static void test_timestamps_only_keep_failover(void)
{
    g_autoptr(ColoRewriter) rw = colo_rewriter_new(16);
    const Flow *fl = &flow_plain;
    GByteArray *b;

    /* Same ISN on both sides, different clocks. */
    g_byte_array_unref(pass_ts(rw, fl, false, T_SYN, 1, 0, 10, 0));
    g_byte_array_unref(pass_ts(rw, fl, true, T_SYN | T_ACK, 500, 2, 3000,
                               10));
    g_byte_array_unref(pass_ts(rw, fl, false, T_ACK, 2, 501, 11, 9000));
    colo_rewriter_failover(rw);
    g_assert_true(colo_rewriter_active(rw));
    b = pass_ts(rw, fl, true, T_ACK, 501, 2, 3100, 11);
    g_assert_cmphex(frame_seq(fl, b), ==, 501);
    g_assert_cmphex(frame_tsval(fl, b), ==, 9100);
    g_byte_array_unref(b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/colo-rewrite/handshake/client-opens",
                    test_handshake_client_opens);
    g_test_add_func("/colo-rewrite/handshake/guest-opens",
                    test_handshake_guest_opens);
    g_test_add_func("/colo-rewrite/handshake/pvm-first",
                    test_handshake_pvm_first);
    g_test_add_func("/colo-rewrite/handshake/svm-syn-late",
                    test_handshake_svm_syn_late);
    g_test_add_func("/colo-rewrite/handshake/retransmitted-synack",
                    test_handshake_retransmitted_synack);
    g_test_add_func("/colo-rewrite/handshake/midstream",
                    test_midstream_adopted);
    g_test_add_func("/colo-rewrite/seq/wraparound", test_wraparound);
    g_test_add_func("/colo-rewrite/csum/framings", test_csum_framings);
    g_test_add_func("/colo-rewrite/csum/partial", test_csum_partial);
    g_test_add_func("/colo-rewrite/sack/edges", test_sack);
    g_test_add_func("/colo-rewrite/sack/bad-options", test_sack_bad_options);
    g_test_add_func("/colo-rewrite/timestamps/offset", test_timestamps);
    g_test_add_func("/colo-rewrite/timestamps/failover",
                    test_timestamps_only_keep_failover);
    g_test_add_func("/colo-rewrite/event/checkpoint",
                    test_checkpoint_resets_offsets);
    g_test_add_func("/colo-rewrite/event/failover", test_failover);
    g_test_add_func("/colo-rewrite/event/failover-empty",
                    test_failover_empty);
    g_test_add_func("/colo-rewrite/close/fin-guest-first",
                    test_fin_guest_first);
    g_test_add_func("/colo-rewrite/close/fin-peer-first",
                    test_fin_peer_first);
    g_test_add_func("/colo-rewrite/close/fin-wraparound",
                    test_fin_wraparound);
    g_test_add_func("/colo-rewrite/close/rst", test_rst);
    g_test_add_func("/colo-rewrite/close/port-reuse", test_port_reuse);
    g_test_add_func("/colo-rewrite/close/reopen", test_reopen_unseen_close);
    g_test_add_func("/colo-rewrite/table/eviction", test_eviction);
    g_test_add_func("/colo-rewrite/malformed/non-tcp", test_non_tcp);
    g_test_add_func("/colo-rewrite/malformed/truncated", test_truncated);
    g_test_add_func("/colo-rewrite/malformed/garbage", test_garbage);
    return g_test_run();
}
