/*
 * Unit tests of the COLO packet parser and connection table (net/colo.c).
 *
 * Frames are built byte by byte here, independently of the parser's own
 * view of the headers, and parsed from heap buffers of exactly their
 * length so that valgrind or ASan catch any read past the end.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "net/colo.h"

/* Wire constants, spelled out so the tests do not share the parser's. */
enum {
    T_ETH_IP4 = 0x0800,
    T_ETH_ARP = 0x0806,
    T_ETH_IP6 = 0x86dd,
    T_TPID_8021Q = 0x8100,
    T_TPID_8021AD = 0x88a8,

    T_PROTO_HOPOPTS = 0,
    T_PROTO_ICMP = 1,
    T_PROTO_TCP = 6,
    T_PROTO_UDP = 17,
    T_PROTO_ROUTING = 43,
    T_PROTO_FRAGMENT = 44,
    T_PROTO_GRE = 47,
    T_PROTO_AH = 51,
    T_PROTO_ICMPV6 = 58,
    T_PROTO_NONE = 59,
    T_PROTO_DSTOPTS = 60,

    T_TCP_FIN = 0x01,
    T_TCP_SYN = 0x02,
    T_TCP_PSH = 0x08,
    T_TCP_ACK = 0x10,

    T_ETH_LEN = 14,
    T_IP4_LEN = 20,
    T_IP6_LEN = 40,
    T_TCP_LEN = 20,
    T_UDP_LEN = 8,
    T_ICMP_LEN = 4,
};

static const uint8_t ip4_client[4] = { 10, 0, 0, 1 };
static const uint8_t ip4_server[4] = { 10, 0, 0, 2 };
static const uint8_t ip4_high[4] = { 192, 168, 7, 9 };
static const uint8_t ip6_client[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01
};
static const uint8_t ip6_server[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02
};

/* ---- Byte-level frame builders ---- */

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

static void put_bytes(GByteArray *b, const void *p, size_t n)
{
    g_byte_array_append(b, p, n);
}

static void put_fill(GByteArray *b, uint8_t v, size_t n)
{
    while (n--) {
        put8(b, v);
    }
}

/* Append @inner to @outer, free @inner, return @outer. */
static GByteArray *join(GByteArray *outer, GByteArray *inner)
{
    put_bytes(outer, inner->data, inner->len);
    g_byte_array_unref(inner);
    return outer;
}

static GByteArray *seg_tcp(uint16_t sport, uint16_t dport, uint32_t seq,
                           uint32_t ack, uint8_t flags, size_t opt_len,
                           const char *payload)
{
    GByteArray *b = g_byte_array_new();

    g_assert(opt_len % 4 == 0);
    put16(b, sport);
    put16(b, dport);
    put32(b, seq);
    put32(b, ack);
    put8(b, ((T_TCP_LEN + opt_len) / 4) << 4);
    put8(b, flags);
    put16(b, 29200);                /* window */
    put16(b, 0);                    /* checksum: not the parser's job */
    put16(b, 0);                    /* urgent pointer */
    put_fill(b, 0x01, opt_len);     /* NOP options */
    put_bytes(b, payload, strlen(payload));
    return b;
}

static GByteArray *seg_udp(uint16_t sport, uint16_t dport, const char *payload)
{
    GByteArray *b = g_byte_array_new();

    put16(b, sport);
    put16(b, dport);
    put16(b, T_UDP_LEN + strlen(payload));
    put16(b, 0);
    put_bytes(b, payload, strlen(payload));
    return b;
}

/* Echo-style message: type, code, checksum, identifier, sequence. */
static GByteArray *seg_icmp_id(uint8_t type, uint8_t code, uint16_t id,
                               const char *payload)
{
    GByteArray *b = g_byte_array_new();

    put8(b, type);
    put8(b, code);
    put16(b, 0);
    put16(b, id);
    put16(b, 1);
    put_bytes(b, payload, strlen(payload));
    return b;
}

static GByteArray *seg_icmp(uint8_t type, uint8_t code, const char *payload)
{
    return seg_icmp_id(type, code, 0x4242, payload);
}

static GByteArray *raw_bytes(const char *payload)
{
    GByteArray *b = g_byte_array_new();

    put_bytes(b, payload, strlen(payload));
    return b;
}

static GByteArray *ip4_wrap(GByteArray *l4, uint8_t proto,
                            const uint8_t *src, const uint8_t *dst,
                            uint16_t frag_field, size_t opt_len)
{
    GByteArray *b = g_byte_array_new();

    g_assert(opt_len % 4 == 0);
    put8(b, 0x40 | (T_IP4_LEN + opt_len) / 4);
    put8(b, 0);                         /* TOS */
    put16(b, T_IP4_LEN + opt_len + l4->len);
    put16(b, 0x1234);                   /* identification */
    put16(b, frag_field);
    put8(b, 64);                        /* TTL */
    put8(b, proto);
    put16(b, 0);                        /* checksum */
    put_bytes(b, src, 4);
    put_bytes(b, dst, 4);
    put_fill(b, 0x01, opt_len);         /* NOP options */
    return join(b, l4);
}

static GByteArray *ip6_wrap(GByteArray *rest, uint8_t nxt,
                            const uint8_t *src, const uint8_t *dst)
{
    GByteArray *b = g_byte_array_new();

    put32(b, 0x60000000);
    put16(b, rest->len);
    put8(b, nxt);
    put8(b, 64);                        /* hop limit */
    put_bytes(b, src, 16);
    put_bytes(b, dst, 16);
    return join(b, rest);
}

/* Hop-by-hop, routing or destination options: (units + 1) * 8 bytes. */
static GByteArray *ext6_wrap(GByteArray *rest, uint8_t rest_nxt, uint8_t units)
{
    GByteArray *b = g_byte_array_new();

    put8(b, rest_nxt);
    put8(b, units);
    put_fill(b, 0, 6 + 8 * units);
    return join(b, rest);
}

static GByteArray *frag6_wrap(GByteArray *rest, uint8_t rest_nxt,
                              uint16_t offset_units, bool more)
{
    GByteArray *b = g_byte_array_new();

    put8(b, rest_nxt);
    put8(b, 0);
    put16(b, offset_units << 3 | more);
    put32(b, 0xcafe);
    return join(b, rest);
}

static GByteArray *eth_wrap(GByteArray *l3, uint16_t ethertype,
                            const uint16_t *tpids, int ntags)
{
    static const uint8_t dst_mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
    static const uint8_t src_mac[6] = { 0x52, 0x54, 0, 0x65, 0x43, 0x21 };
    GByteArray *b = g_byte_array_new();
    int i;

    put_bytes(b, dst_mac, 6);
    put_bytes(b, src_mac, 6);
    for (i = 0; i < ntags; i++) {
        put16(b, tpids[i]);
        put16(b, 0x2000 | (100 + i));   /* PCP 1, VID 100 + i */
    }
    put16(b, ethertype);
    return join(b, l3);
}

static GByteArray *vnet_wrap(GByteArray *frame, size_t vnet_len)
{
    GByteArray *b = g_byte_array_new();

    put_fill(b, 0xaa, vnet_len);
    return join(b, frame);
}

/* Pad to the Ethernet minimum, as a NIC would. */
static GByteArray *pad_to(GByteArray *frame, size_t len)
{
    if (frame->len < len) {
        put_fill(frame, 0, len - frame->len);
    }
    return frame;
}

/* A frame on the heap in a buffer of exactly its length. */
typedef struct TestFrame {
    uint8_t *data;
    size_t len;
    size_t vnet;
} TestFrame;

static TestFrame finish(GByteArray *b, size_t vnet)
{
    TestFrame f = { g_memdup2(b->data, b->len), b->len, vnet };

    g_byte_array_unref(b);
    return f;
}

static void patch8(TestFrame *f, size_t off, uint8_t v)
{
    g_assert_cmpuint(off, <, f->len);
    f->data[off] = v;
}

static void patch16(TestFrame *f, size_t off, uint16_t v)
{
    patch8(f, off, v >> 8);
    patch8(f, off + 1, v & 0xff);
}

/* ---- Common frames ---- */

static GByteArray *ip4_tcp_l3(const uint8_t *src, const uint8_t *dst,
                              uint16_t sport, uint16_t dport)
{
    return ip4_wrap(seg_tcp(sport, dport, 1000, 2000, T_TCP_ACK | T_TCP_PSH,
                            0, "hello"),
                    T_PROTO_TCP, src, dst, 0, 0);
}

static TestFrame frame_ip4_tcp(void)
{
    return finish(eth_wrap(ip4_tcp_l3(ip4_client, ip4_server, 40000, 80),
                           T_ETH_IP4, NULL, 0), 0);
}

static TestFrame frame_ip4_udp(void)
{
    return finish(eth_wrap(ip4_wrap(seg_udp(5353, 53, "query"), T_PROTO_UDP,
                                    ip4_client, ip4_server, 0, 0),
                           T_ETH_IP4, NULL, 0), 0);
}

static TestFrame frame_ip4_icmp(void)
{
    return finish(eth_wrap(ip4_wrap(seg_icmp(8, 0, "ping"), T_PROTO_ICMP,
                                    ip4_client, ip4_server, 0, 0),
                           T_ETH_IP4, NULL, 0), 0);
}

/* IPv6 + hop-by-hop + routing + destination options + TCP. */
static GByteArray *ip6_ext_tcp_l3(void)
{
    GByteArray *l3 = seg_tcp(40000, 443, 7, 9, T_TCP_SYN, 4, "");

    l3 = ext6_wrap(l3, T_PROTO_TCP, 0);             /* dest opts, 8 */
    l3 = ext6_wrap(l3, T_PROTO_DSTOPTS, 2);         /* routing, 24 */
    l3 = ext6_wrap(l3, T_PROTO_ROUTING, 1);         /* hop-by-hop, 16 */
    return ip6_wrap(l3, T_PROTO_HOPOPTS, ip6_client, ip6_server);
}

/* ---- Invariants every parsed frame must satisfy ---- */

static void check_invariants(const ColoPacket *p)
{
    g_assert_cmpuint(p->l2_off, <=, p->l3_off);
    g_assert_cmpuint(p->l3_off, <=, p->l4_off);
    g_assert_cmpuint(p->l4_off, <=, p->payload_off);
    g_assert_cmpuint(p->payload_off, <=, p->l3_end);
    g_assert_cmpuint(p->l3_end, <=, p->len);
    g_assert_cmpuint(p->payload_len, ==, p->l3_end - p->payload_off);
    g_assert_cmpuint(p->vlan_count, <=, COLO_MAX_VLAN_TAGS);
    if (p->ip_version == 0) {
        g_assert_false(p->has_l4);
        g_assert_cmpuint(p->l3_end, ==, p->len);
        g_assert_cmpuint(p->payload_off, ==, p->l3_off);
    } else {
        g_assert_true(p->ip_version == 4 || p->ip_version == 6);
    }
    if (p->frag == COLO_FRAG_LATER) {
        g_assert_false(p->has_l4);
    }
}

static ColoParseResult parse(const TestFrame *f, ColoPacket *p)
{
    ColoParseResult res = colo_packet_parse(p, f->data, f->len, f->vnet);

    g_assert_cmpint(res, >=, 0);
    g_assert_cmpint(res, <, COLO_PARSE__MAX);
    if (res == COLO_PARSE_OK) {
        check_invariants(p);
    }
    return res;
}

/* Parse the first @len bytes of @f from a buffer of exactly that size. */
static ColoParseResult parse_prefix(const TestFrame *f, size_t len,
                                    ColoPacket *p)
{
    TestFrame cut = { g_memdup2(f->data, len), len, f->vnet };
    ColoParseResult res = parse(&cut, p);

    g_free(cut.data);
    p->buf = NULL;      /* it pointed into the freed copy */
    return res;
}

static void expect(const TestFrame *f, ColoParseResult want)
{
    ColoPacket p;

    g_assert_cmpstr(colo_parse_result_str(parse(f, &p)), ==,
                    colo_parse_result_str(want));
}

/* ---- Well-formed frames ---- */

static void test_ip4_tcp(void)
{
    GByteArray *l4 = seg_tcp(40000, 80, 0x11223344, 0xaabbccdd,
                             T_TCP_ACK | T_TCP_PSH, 12, "GET /");
    TestFrame f = finish(eth_wrap(ip4_wrap(l4, T_PROTO_TCP, ip4_client,
                                           ip4_server, 0x4000, 0),
                                  T_ETH_IP4, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_true(p.buf == f.data);
    g_assert_cmpuint(p.len, ==, f.len);
    g_assert_cmpuint(p.l2_off, ==, 0);
    g_assert_cmpuint(p.l3_off, ==, 14);
    g_assert_cmpuint(p.l4_off, ==, 34);
    g_assert_cmpuint(p.payload_off, ==, 34 + 32);
    g_assert_cmpuint(p.l3_end, ==, f.len);
    g_assert_cmpuint(p.payload_len, ==, 5);
    g_assert_cmpmem(colo_packet_payload(&p), 5, "GET /", 5);
    g_assert_cmphex(p.ethertype, ==, T_ETH_IP4);
    g_assert_cmpuint(p.vlan_count, ==, 0);
    g_assert_cmpuint(p.ip_version, ==, 4);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_TCP);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_NONE);   /* DF is not a fragment */
    g_assert_cmpmem(p.src_addr, 4, ip4_client, 4);
    g_assert_cmpmem(p.dst_addr, 4, ip4_server, 4);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.src_port, ==, 40000);
    g_assert_cmpuint(p.dst_port, ==, 80);
    g_assert_cmphex(p.tcp.seq, ==, 0x11223344);
    g_assert_cmphex(p.tcp.ack, ==, 0xaabbccdd);
    g_assert_cmphex(p.tcp.flags, ==, T_TCP_ACK | T_TCP_PSH);
    g_assert_cmpuint(p.tcp.hdr_len, ==, 32);
    g_assert_cmpuint(p.tcp.window, ==, 29200);
    g_free(f.data);
}

static void test_ip4_options_udp(void)
{
    TestFrame f = finish(eth_wrap(ip4_wrap(seg_udp(5353, 53, "query"),
                                           T_PROTO_UDP, ip4_client,
                                           ip4_server, 0, 8),
                                  T_ETH_IP4, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_off, ==, 14 + 28);
    g_assert_cmpuint(p.payload_off, ==, 14 + 28 + 8);
    g_assert_cmpuint(p.payload_len, ==, 5);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_UDP);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.src_port, ==, 5353);
    g_assert_cmpuint(p.dst_port, ==, 53);
    g_assert_cmpmem(colo_packet_payload(&p), 5, "query", 5);
    g_free(f.data);
}

static void test_ip4_icmp(void)
{
    TestFrame f = frame_ip4_icmp();
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_ICMP);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.icmp.type, ==, 8);
    g_assert_cmpuint(p.icmp.code, ==, 0);
    /* An echo's identifier stands for both ports. */
    g_assert_cmpuint(p.src_port, ==, 0x4242);
    g_assert_cmpuint(p.dst_port, ==, 0x4242);
    /* The 4-byte common header; identifier and sequence are payload. */
    g_assert_cmpuint(p.payload_off, ==, 34 + 4);
    g_assert_cmpuint(p.payload_len, ==, 4 + 4);
    g_free(f.data);
}

static void test_ip4_other_proto(void)
{
    TestFrame f = finish(eth_wrap(ip4_wrap(raw_bytes("gre-inner"),
                                           T_PROTO_GRE, ip4_client,
                                           ip4_server, 0, 0),
                                  T_ETH_IP4, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_GRE);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.l4_off, ==, 34);
    g_assert_cmpuint(p.payload_off, ==, 34);
    g_assert_cmpuint(p.payload_len, ==, 9);
    g_free(f.data);
}

/* Bytes after the IP datagram are link padding, not payload. */
static void test_ethernet_padding(void)
{
    GByteArray *b = eth_wrap(ip4_wrap(seg_tcp(1, 2, 0, 0, T_TCP_ACK, 0, ""),
                                      T_PROTO_TCP, ip4_client, ip4_server,
                                      0, 0),
                             T_ETH_IP4, NULL, 0);
    TestFrame f = finish(pad_to(b, 60), 0);
    ColoPacket p;

    g_assert_cmpuint(f.len, ==, 60);
    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l3_end, ==, 54);
    g_assert_cmpuint(p.payload_off, ==, 54);
    g_assert_cmpuint(p.payload_len, ==, 0);
    g_free(f.data);
}

static void test_vnet_header(void)
{
    static const size_t vnet_lens[] = { 10, 12, 20 };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(vnet_lens); i++) {
        size_t v = vnet_lens[i];
        GByteArray *b = eth_wrap(ip4_tcp_l3(ip4_client, ip4_server, 1, 2),
                                 T_ETH_IP4, NULL, 0);
        TestFrame f = finish(vnet_wrap(b, v), v);
        ColoPacket p;

        g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
        g_assert_cmpuint(p.l2_off, ==, v);
        g_assert_cmpuint(p.l3_off, ==, v + 14);
        g_assert_cmpuint(p.l4_off, ==, v + 34);
        g_assert_cmpuint(p.payload_off, ==, v + 54);
        g_assert_cmpuint(p.payload_len, ==, 5);
        g_assert_cmpuint(p.src_port, ==, 1);
        g_free(f.data);
    }
}

/* Without the vnet length, the vnet bytes are read as the MAC header. */
static void test_vnet_header_mismatch(void)
{
    GByteArray *b = eth_wrap(ip4_tcp_l3(ip4_client, ip4_server, 1, 2),
                             T_ETH_IP4, NULL, 0);
    TestFrame f = finish(vnet_wrap(b, 12), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmphex(p.ethertype, ==, 0x5254);   /* first MAC bytes */
    g_assert_cmpuint(p.ip_version, ==, 0);
    g_free(f.data);
}

static void test_vlan_single(void)
{
    static const uint16_t tags[] = { T_TPID_8021Q };
    TestFrame f = finish(eth_wrap(ip4_tcp_l3(ip4_client, ip4_server, 1, 2),
                                  T_ETH_IP4, tags, 1), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.vlan_count, ==, 1);
    g_assert_cmphex(p.vlan_tpid[0], ==, T_TPID_8021Q);
    g_assert_cmphex(p.vlan_tci[0], ==, 0x2000 | 100);
    g_assert_cmphex(p.ethertype, ==, T_ETH_IP4);
    g_assert_cmpuint(p.l3_off, ==, 18);
    g_assert_cmpuint(p.l4_off, ==, 38);
    g_assert_true(p.has_l4);
    g_free(f.data);
}

static void test_vlan_double(void)
{
    static const uint16_t tags[] = { T_TPID_8021AD, T_TPID_8021Q };
    GByteArray *b = eth_wrap(ip6_wrap(seg_udp(1000, 2000, "x"), T_PROTO_UDP,
                                      ip6_client, ip6_server),
                             T_ETH_IP6, tags, 2);
    TestFrame f = finish(vnet_wrap(b, 12), 12);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.vlan_count, ==, 2);
    g_assert_cmphex(p.vlan_tpid[0], ==, T_TPID_8021AD);
    g_assert_cmphex(p.vlan_tpid[1], ==, T_TPID_8021Q);
    g_assert_cmphex(p.vlan_tci[0], ==, 0x2000 | 100);
    g_assert_cmphex(p.vlan_tci[1], ==, 0x2000 | 101);
    g_assert_cmphex(p.ethertype, ==, T_ETH_IP6);
    g_assert_cmpuint(p.l3_off, ==, 12 + 22);
    g_assert_cmpuint(p.l4_off, ==, 12 + 22 + 40);
    g_assert_cmpuint(p.payload_len, ==, 1);
    g_free(f.data);
}

static void test_vlan_too_deep(void)
{
    static const uint16_t tags[] = {
        T_TPID_8021AD, T_TPID_8021Q, T_TPID_8021Q
    };
    TestFrame f = finish(eth_wrap(ip4_tcp_l3(ip4_client, ip4_server, 1, 2),
                                  T_ETH_IP4, tags, 3), 0);

    expect(&f, COLO_PARSE_ERR_VLAN_DEPTH);
    g_free(f.data);
}

static void test_non_ip(void)
{
    static const char arp[] = "twenty-eight bytes of an ARP";
    TestFrame f = finish(eth_wrap(raw_bytes(arp), T_ETH_ARP, NULL, 0), 0);
    ColoPacket p;
    ColoConnKey key;
    ColoConnDir dir;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmphex(p.ethertype, ==, T_ETH_ARP);
    g_assert_cmpuint(p.ip_version, ==, 0);
    g_assert_cmpuint(p.payload_off, ==, 14);
    g_assert_cmpuint(p.payload_len, ==, strlen(arp));
    g_assert_false(colo_conn_key_from_packet(&p, &key, &dir));
    g_free(f.data);
}

static void test_ip6_tcp(void)
{
    TestFrame f = finish(eth_wrap(ip6_wrap(seg_tcp(40000, 443, 5, 6,
                                                   T_TCP_SYN, 0, "abc"),
                                           T_PROTO_TCP, ip6_client,
                                           ip6_server),
                                  T_ETH_IP6, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.ip_version, ==, 6);
    g_assert_cmpuint(p.l3_off, ==, 14);
    g_assert_cmpuint(p.l4_off, ==, 54);
    g_assert_cmpuint(p.payload_off, ==, 74);
    g_assert_cmpuint(p.payload_len, ==, 3);
    g_assert_cmpmem(p.src_addr, 16, ip6_client, 16);
    g_assert_cmpmem(p.dst_addr, 16, ip6_server, 16);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_TCP);
    g_assert_cmphex(p.tcp.flags, ==, T_TCP_SYN);
    g_assert_cmpuint(p.tcp.seq, ==, 5);
    g_assert_cmpuint(p.tcp.ack, ==, 6);
    g_free(f.data);
}

static void test_ip6_icmpv6(void)
{
    TestFrame f = finish(eth_wrap(ip6_wrap(seg_icmp(128, 0, "ping6"),
                                           T_PROTO_ICMPV6, ip6_client,
                                           ip6_server),
                                  T_ETH_IP6, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.icmp.type, ==, 128);
    g_assert_cmpuint(p.payload_off, ==, 54 + 4);
    g_free(f.data);
}

/* Protocol 1 is ICMP only under IPv4; under IPv6 it is just "other". */
static void test_ip6_proto1_is_other(void)
{
    TestFrame f = finish(eth_wrap(ip6_wrap(raw_bytes("zz"), T_PROTO_ICMP,
                                           ip6_client, ip6_server),
                                  T_ETH_IP6, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.payload_len, ==, 2);
    g_free(f.data);
}

static void test_ip6_ext_headers(void)
{
    TestFrame f = finish(eth_wrap(ip6_ext_tcp_l3(), T_ETH_IP6, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_off, ==, 54 + 16 + 24 + 8);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_TCP);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.tcp.hdr_len, ==, 24);
    g_assert_cmpuint(p.payload_off, ==, p.l4_off + 24);
    g_assert_cmpuint(p.payload_len, ==, 0);
    g_assert_cmpuint(p.src_port, ==, 40000);
    g_assert_cmpuint(p.dst_port, ==, 443);
    g_free(f.data);
}

/* An unknown extension header (here AH) ends the walk: it is payload. */
static void test_ip6_unknown_ext(void)
{
    GByteArray *l3 = ext6_wrap(seg_udp(1, 2, ""), T_PROTO_UDP, 1);
    TestFrame f;
    ColoPacket p;

    l3 = ext6_wrap(l3, T_PROTO_AH, 0);      /* hop-by-hop -> AH */
    f = finish(eth_wrap(ip6_wrap(l3, T_PROTO_HOPOPTS, ip6_client, ip6_server),
                        T_ETH_IP6, NULL, 0), 0);
    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_AH);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.l4_off, ==, 54 + 8);
    g_assert_cmpuint(p.payload_len, ==, 16 + 8);
    g_free(f.data);
}

static void test_ip6_no_next_header(void)
{
    GByteArray *l3 = ext6_wrap(g_byte_array_new(), T_PROTO_NONE, 0);
    TestFrame f = finish(eth_wrap(ip6_wrap(l3, T_PROTO_DSTOPTS, ip6_client,
                                           ip6_server),
                                  T_ETH_IP6, NULL, 0), 0);
    ColoPacket p;

    g_assert_cmpint(parse(&f, &p), ==, COLO_PARSE_OK);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_NONE);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.payload_len, ==, 0);
    g_free(f.data);
}

static void test_ip6_fragments(void)
{
    GByteArray *first = frag6_wrap(seg_udp(1000, 2000, "12345678"),
                                   T_PROTO_UDP, 0, true);
    GByteArray *later = frag6_wrap(raw_bytes("tail-data"), T_PROTO_UDP,
                                   2, false);
    GByteArray *atomic = frag6_wrap(seg_udp(1000, 2000, "x"), T_PROTO_UDP,
                                    0, false);
    TestFrame f1, f2, f3;
    ColoPacket p;

    /* The first fragment's UDP length counts the whole datagram. */
    first->data[8 + 4] = 0x10;
    f1 = finish(eth_wrap(ip6_wrap(first, T_PROTO_FRAGMENT, ip6_client,
                                  ip6_server), T_ETH_IP6, NULL, 0), 0);
    g_assert_cmpint(parse(&f1, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_FIRST);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_UDP);
    g_assert_cmpuint(p.l4_off, ==, 54 + 8);
    g_assert_cmpuint(p.src_port, ==, 1000);
    g_assert_cmpuint(p.payload_len, ==, 8);

    f2 = finish(eth_wrap(ip6_wrap(later, T_PROTO_FRAGMENT, ip6_client,
                                  ip6_server), T_ETH_IP6, NULL, 0), 0);
    g_assert_cmpint(parse(&f2, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_LATER);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_UDP);
    g_assert_cmpuint(p.l4_off, ==, 54 + 8);
    g_assert_cmpuint(p.payload_off, ==, 54 + 8);
    g_assert_cmpuint(p.payload_len, ==, 9);
    g_assert_cmpuint(p.src_port, ==, 0);

    /* The smallest non-zero offset, 8 bytes, is a later fragment too. */
    f2.data[54 + 3] = 1 << 3;
    g_assert_cmpint(parse(&f2, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_LATER);

    /* Offset 0 and no more fragments: a whole datagram. */
    f3 = finish(eth_wrap(ip6_wrap(atomic, T_PROTO_FRAGMENT, ip6_client,
                                  ip6_server), T_ETH_IP6, NULL, 0), 0);
    g_assert_cmpint(parse(&f3, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_NONE);
    g_assert_true(p.has_l4);
    g_free(f1.data);
    g_free(f2.data);
    g_free(f3.data);
}

static void test_ip4_fragments(void)
{
    GByteArray *udp = seg_udp(1000, 2000, "12345678");
    TestFrame first, later;
    ColoPacket p;

    udp->data[4] = 0x05;    /* UDP length: the reassembled 1400 bytes */
    udp->data[5] = 0x78;
    first = finish(eth_wrap(ip4_wrap(udp, T_PROTO_UDP, ip4_client,
                                     ip4_server, 0x2000, 0),
                            T_ETH_IP4, NULL, 0), 0);
    g_assert_cmpint(parse(&first, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_FIRST);
    g_assert_true(p.has_l4);
    g_assert_cmpuint(p.src_port, ==, 1000);
    g_assert_cmpuint(p.payload_off, ==, 42);
    g_assert_cmpuint(p.payload_len, ==, 8);

    /* Offset 185 * 8: no UDP header, even though it looks like one. */
    later = finish(eth_wrap(ip4_wrap(seg_udp(7, 7, "more"), T_PROTO_UDP,
                                     ip4_client, ip4_server, 185, 0),
                            T_ETH_IP4, NULL, 0), 0);
    g_assert_cmpint(parse(&later, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_LATER);
    g_assert_false(p.has_l4);
    g_assert_cmpuint(p.l4_proto, ==, T_PROTO_UDP);
    g_assert_cmpuint(p.src_port, ==, 0);
    g_assert_cmpuint(p.l4_off, ==, 34);
    g_assert_cmpuint(p.payload_off, ==, 34);
    g_assert_cmpuint(p.payload_len, ==, 12);

    /* A later fragment too short for any L4 header is still fine. */
    g_free(later.data);
    later = finish(eth_wrap(ip4_wrap(raw_bytes("z"), T_PROTO_TCP,
                                     ip4_client, ip4_server, 0x2001, 0),
                            T_ETH_IP4, NULL, 0), 0);
    g_assert_cmpint(parse(&later, &p), ==, COLO_PARSE_OK);
    g_assert_cmpint(p.frag, ==, COLO_FRAG_LATER);
    g_assert_cmpuint(p.payload_len, ==, 1);
    g_free(first.data);
    g_free(later.data);
}

/* ---- Malformed frames: one reason each ---- */

static void test_bad_l2(void)
{
    TestFrame f = frame_ip4_tcp();
    static const uint16_t tags[] = { T_TPID_8021Q };
    TestFrame tagged = finish(eth_wrap(raw_bytes(""), T_ETH_ARP, tags, 1), 0);
    ColoPacket p;

    g_assert_cmpint(parse_prefix(&f, 13, &p), ==, COLO_PARSE_ERR_ETH_SHORT);
    g_assert_cmpint(parse_prefix(&f, 0, &p), ==, COLO_PARSE_ERR_ETH_SHORT);
    /* The tag's TPID is there but the tag itself is cut. */
    g_assert_cmpint(parse_prefix(&tagged, 16, &p), ==,
                    COLO_PARSE_ERR_ETH_SHORT);
    g_assert_cmpint(parse_prefix(&tagged, 18, &p), ==, COLO_PARSE_OK);

    f.vnet = f.len + 1;
    expect(&f, COLO_PARSE_ERR_VNET_HDR);
    f.vnet = SIZE_MAX;
    expect(&f, COLO_PARSE_ERR_VNET_HDR);
    f.vnet = f.len;
    expect(&f, COLO_PARSE_ERR_ETH_SHORT);
    g_free(f.data);
    g_free(tagged.data);
}

static void test_bad_ip4(void)
{
    TestFrame f = frame_ip4_tcp();
    ColoPacket p;

    g_assert_cmpint(parse_prefix(&f, 14 + 19, &p), ==,
                    COLO_PARSE_ERR_IP4_SHORT);
    g_assert_cmpuint(p.l3_off, ==, 14);     /* layers before stay filled */

    patch8(&f, 14, 0x65);                   /* version 6 */
    expect(&f, COLO_PARSE_ERR_IP4_VERSION);
    patch8(&f, 14, 0x44);                   /* IHL 4 */
    expect(&f, COLO_PARSE_ERR_IP4_IHL);
    patch8(&f, 14, 0x40);                   /* IHL 0 */
    expect(&f, COLO_PARSE_ERR_IP4_IHL);
    patch8(&f, 14, 0x4f);                   /* 60 bytes, 45 in buffer */
    expect(&f, COLO_PARSE_ERR_IP4_IHL);
    patch8(&f, 14, 0x46);                   /* IHL 24 > total length 20 */
    patch16(&f, 16, 20);
    expect(&f, COLO_PARSE_ERR_IP4_TOTAL_LEN);
    patch8(&f, 14, 0x45);
    patch16(&f, 16, 19);
    expect(&f, COLO_PARSE_ERR_IP4_TOTAL_LEN);
    patch16(&f, 16, f.len - 14 + 1);        /* one past the buffer */
    expect(&f, COLO_PARSE_ERR_IP4_TOTAL_LEN);
    patch16(&f, 16, 0xffff);
    expect(&f, COLO_PARSE_ERR_IP4_TOTAL_LEN);
    patch16(&f, 16, f.len - 14);
    expect(&f, COLO_PARSE_OK);
    g_free(f.data);
}

static void test_bad_ip6(void)
{
    TestFrame f = finish(eth_wrap(ip6_ext_tcp_l3(), T_ETH_IP6, NULL, 0), 0);
    size_t plen = f.len - 54;
    ColoPacket p;

    g_assert_cmpint(parse_prefix(&f, 14 + 39, &p), ==,
                    COLO_PARSE_ERR_IP6_SHORT);
    patch8(&f, 14, 0x40);
    expect(&f, COLO_PARSE_ERR_IP6_VERSION);
    patch8(&f, 14, 0x60);
    patch16(&f, 18, plen + 1);
    expect(&f, COLO_PARSE_ERR_IP6_PAYLOAD_LEN);
    patch16(&f, 18, 0xffff);
    expect(&f, COLO_PARSE_ERR_IP6_PAYLOAD_LEN);

    /* Payload length ends inside the second extension header. */
    patch16(&f, 18, 16 + 10);
    expect(&f, COLO_PARSE_ERR_IP6_EXT_HDR);
    /* ... or after one byte of it. */
    patch16(&f, 18, 16 + 1);
    expect(&f, COLO_PARSE_ERR_IP6_EXT_HDR);
    patch16(&f, 18, plen);
    expect(&f, COLO_PARSE_OK);
    /* The hop-by-hop header claims 2048 bytes. */
    patch8(&f, 54 + 1, 255);
    expect(&f, COLO_PARSE_ERR_IP6_EXT_HDR);
    g_free(f.data);
}

static void test_bad_ip6_fragment_header(void)
{
    GByteArray *l3 = frag6_wrap(raw_bytes(""), T_PROTO_UDP, 0, true);
    TestFrame f;

    g_byte_array_set_size(l3, 6);           /* 6 of its 8 bytes */
    f = finish(eth_wrap(ip6_wrap(l3, T_PROTO_FRAGMENT, ip6_client,
                                 ip6_server), T_ETH_IP6, NULL, 0), 0);
    expect(&f, COLO_PARSE_ERR_IP6_EXT_HDR);
    g_free(f.data);
}

static void test_bad_tcp(void)
{
    TestFrame f = frame_ip4_tcp();

    /* The datagram holds 10 bytes of TCP; the buffer has more after it. */
    patch16(&f, 16, 20 + 10);
    expect(&f, COLO_PARSE_ERR_TCP_SHORT);
    patch16(&f, 16, f.len - 14);

    patch8(&f, 34 + 12, 4 << 4);
    expect(&f, COLO_PARSE_ERR_TCP_DATA_OFFSET);
    patch8(&f, 34 + 12, 0);
    expect(&f, COLO_PARSE_ERR_TCP_DATA_OFFSET);
    patch8(&f, 34 + 12, 15 << 4);           /* 60 bytes, 25 there */
    expect(&f, COLO_PARSE_ERR_TCP_DATA_OFFSET);
    patch8(&f, 34 + 12, 6 << 4);            /* 24 bytes: fits, 1 payload */
    expect(&f, COLO_PARSE_OK);
    g_free(f.data);
}

static void test_bad_udp(void)
{
    TestFrame f = frame_ip4_udp();

    patch16(&f, 16, 20 + 7);
    expect(&f, COLO_PARSE_ERR_UDP_SHORT);
    patch16(&f, 16, f.len - 14);
    patch16(&f, 34 + 4, 7);
    expect(&f, COLO_PARSE_ERR_UDP_LEN);
    patch16(&f, 34 + 4, f.len - 34 + 1);
    expect(&f, COLO_PARSE_ERR_UDP_LEN);
    /* Shorter than the datagram is allowed: the rest is trailer. */
    patch16(&f, 34 + 4, 8);
    expect(&f, COLO_PARSE_OK);
    g_free(f.data);
}

static void test_bad_icmp(void)
{
    TestFrame f = frame_ip4_icmp();
    TestFrame f6 = finish(eth_wrap(ip6_wrap(raw_bytes("abc"), T_PROTO_ICMPV6,
                                            ip6_client, ip6_server),
                                   T_ETH_IP6, NULL, 0), 0);

    patch16(&f, 16, 20 + 3);
    expect(&f, COLO_PARSE_ERR_ICMP_SHORT);
    expect(&f6, COLO_PARSE_ERR_ICMP_SHORT);
    g_free(f.data);
    g_free(f6.data);
}

/* ---- Every truncation of valid frames ---- */

/* What cutting @full's frame at @n bytes must give. */
static ColoParseResult expected_for_cut(const ColoPacket *full, size_t n)
{
    size_t ip_fixed = full->ip_version == 4 ? T_IP4_LEN : T_IP6_LEN;

    if (n < full->l2_off) {
        return COLO_PARSE_ERR_VNET_HDR;
    }
    if (n < full->l3_off) {
        return COLO_PARSE_ERR_ETH_SHORT;
    }
    if (full->ip_version == 0 || n >= full->l3_end) {
        return COLO_PARSE_OK;
    }
    if (n < full->l3_off + ip_fixed) {
        return full->ip_version == 4 ? COLO_PARSE_ERR_IP4_SHORT :
                                       COLO_PARSE_ERR_IP6_SHORT;
    }
    if (full->ip_version == 6) {
        return COLO_PARSE_ERR_IP6_PAYLOAD_LEN;
    }
    /* Cut inside the IPv4 options, or anywhere after them. */
    return n < full->l4_off ? COLO_PARSE_ERR_IP4_IHL :
                              COLO_PARSE_ERR_IP4_TOTAL_LEN;
}

static void check_all_cuts(TestFrame *f)
{
    ColoPacket full, p;
    size_t n;

    g_assert_cmpint(parse(f, &full), ==, COLO_PARSE_OK);
    for (n = 0; n <= f->len; n++) {
        ColoParseResult want = expected_for_cut(&full, n);
        ColoParseResult got = parse_prefix(f, n, &p);

        if (got != want) {
            g_test_message("cut at %zu of %zu: got %s, want %s", n, f->len,
                           colo_parse_result_str(got),
                           colo_parse_result_str(want));
        }
        g_assert_cmpint(got, ==, want);
        if (got == COLO_PARSE_OK && full.ip_version) {
            g_assert_cmpuint(p.payload_off, ==, full.payload_off);
            g_assert_cmpuint(p.payload_len, ==, full.payload_len);
            g_assert_cmpuint(p.l4_proto, ==, full.l4_proto);
        }
    }
    g_free(f->data);
}

static void test_truncate_every_length(void)
{
    static const uint16_t qinq[] = { T_TPID_8021AD, T_TPID_8021Q };
    GByteArray *pad = eth_wrap(ip4_wrap(seg_icmp(0, 0, ""), T_PROTO_ICMP,
                                        ip4_client, ip4_server, 0, 0),
                               T_ETH_IP4, NULL, 0);
    TestFrame frames[] = {
        frame_ip4_tcp(),
        frame_ip4_udp(),
        frame_ip4_icmp(),
        finish(eth_wrap(ip4_wrap(seg_tcp(1, 2, 3, 4, T_TCP_FIN, 8, "opt"),
                                 T_PROTO_TCP, ip4_client, ip4_server, 0, 12),
                        T_ETH_IP4, qinq, 2), 0),
        finish(vnet_wrap(eth_wrap(ip6_ext_tcp_l3(), T_ETH_IP6, NULL, 0), 12),
               12),
        finish(eth_wrap(ip6_wrap(frag6_wrap(raw_bytes("later-fragment"),
                                            T_PROTO_TCP, 9, true),
                                 T_PROTO_FRAGMENT, ip6_client, ip6_server),
                        T_ETH_IP6, qinq, 1), 0),
        finish(eth_wrap(ip4_wrap(raw_bytes("frag"), T_PROTO_UDP, ip4_client,
                                 ip4_server, 0x2003, 4),
                        T_ETH_IP4, NULL, 0), 0),
        finish(vnet_wrap(eth_wrap(raw_bytes("arp"), T_ETH_ARP, NULL, 0), 10),
               10),
        finish(pad_to(pad, 60), 0),
    };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(frames); i++) {
        check_all_cuts(&frames[i]);
    }
}

/*
 * Shrink the IP datagram (length field and buffer together) a byte at a
 * time, so every L4 and extension-header bound is crossed exactly.
 */
static void check_all_datagram_sizes(TestFrame *f, size_t len_field_off,
                                     size_t ip_hdr_counted, size_t hdr_end,
                                     ColoParseResult (*want)(size_t k))
{
    size_t k;

    for (k = 0; hdr_end + k <= f->len; k++) {
        TestFrame cut = { g_memdup2(f->data, hdr_end + k), hdr_end + k,
                          f->vnet };
        ColoPacket p;
        ColoParseResult got;

        patch16(&cut, len_field_off, ip_hdr_counted + k);
        got = parse(&cut, &p);
        if (got != want(k)) {
            g_test_message("datagram of %zu: got %s, want %s", k,
                           colo_parse_result_str(got),
                           colo_parse_result_str(want(k)));
        }
        g_assert_cmpint(got, ==, want(k));
        g_free(cut.data);
    }
    g_free(f->data);
}

static ColoParseResult want_tcp(size_t k)
{
    return k < 20 ? COLO_PARSE_ERR_TCP_SHORT :
           k < 32 ? COLO_PARSE_ERR_TCP_DATA_OFFSET : COLO_PARSE_OK;
}

static ColoParseResult want_udp(size_t k)
{
    return k < 8 ? COLO_PARSE_ERR_UDP_SHORT :
           k < 8 + 5 ? COLO_PARSE_ERR_UDP_LEN : COLO_PARSE_OK;
}

static ColoParseResult want_icmp(size_t k)
{
    return k < 4 ? COLO_PARSE_ERR_ICMP_SHORT : COLO_PARSE_OK;
}

/* 16 + 24 + 8 bytes of extension headers, then TCP with 4 option bytes. */
static ColoParseResult want_ip6_ext_tcp(size_t k)
{
    return k < 48 ? COLO_PARSE_ERR_IP6_EXT_HDR :
           k < 48 + 20 ? COLO_PARSE_ERR_TCP_SHORT :
           k < 48 + 24 ? COLO_PARSE_ERR_TCP_DATA_OFFSET : COLO_PARSE_OK;
}

static void test_shrink_datagram(void)
{
    TestFrame tcp = finish(eth_wrap(ip4_wrap(seg_tcp(1, 2, 3, 4, T_TCP_ACK,
                                                     12, "data"),
                                             T_PROTO_TCP, ip4_client,
                                             ip4_server, 0, 0),
                                    T_ETH_IP4, NULL, 0), 0);
    TestFrame udp = frame_ip4_udp();
    TestFrame icmp = frame_ip4_icmp();
    TestFrame ip6 = finish(eth_wrap(ip6_ext_tcp_l3(), T_ETH_IP6, NULL, 0), 0);

    /* IPv4 total length counts the header, IPv6 payload length does not. */
    check_all_datagram_sizes(&tcp, 16, T_IP4_LEN, 34, want_tcp);
    check_all_datagram_sizes(&udp, 16, T_IP4_LEN, 34, want_udp);
    check_all_datagram_sizes(&icmp, 16, T_IP4_LEN, 34, want_icmp);
    check_all_datagram_sizes(&ip6, 18, 0, 54, want_ip6_ext_tcp);
}

/* Random bytes flipped in valid frames, random lengths: never a crash. */
static void test_mutations(void)
{
    TestFrame base[] = {
        frame_ip4_tcp(),
        frame_ip4_udp(),
        finish(eth_wrap(ip6_ext_tcp_l3(), T_ETH_IP6, NULL, 0), 0),
    };
    GRand *rng = g_rand_new_with_seed(20251122);
    ColoPacketStats stats = { 0 };
    size_t i;
    int j;

    for (i = 0; i < 20000; i++) {
        TestFrame *b = &base[i % G_N_ELEMENTS(base)];
        size_t len = g_rand_int_range(rng, 0, b->len + 1);
        TestFrame m = { g_memdup2(b->data, len), len, 0 };
        ColoPacket p;
        ColoConnKey key;
        ColoConnDir dir;
        ColoParseResult res;

        for (j = 0; len && j < 4; j++) {
            m.data[g_rand_int_range(rng, 0, MIN(len, 80))] = g_rand_int(rng);
        }
        if (g_rand_boolean(rng)) {
            m.vnet = g_rand_int_range(rng, 0, 16);
        }
        res = parse(&m, &p);
        colo_packet_stats_account(&stats, res);
        if (res == COLO_PARSE_OK && colo_conn_key_from_packet(&p, &key,
                                                              &dir)) {
            g_assert_true(dir == COLO_DIR_A_TO_B || dir == COLO_DIR_B_TO_A);
        }
        g_free(m.data);
    }
    g_assert_cmpuint(stats.parsed + stats.malformed, ==, 20000);
    g_assert_cmpuint(stats.parsed, >, 0);
    g_assert_cmpuint(stats.malformed, >, 0);
    g_rand_free(rng);
    for (i = 0; i < G_N_ELEMENTS(base); i++) {
        g_free(base[i].data);
    }
}

/* ---- Results and counters ---- */

static void test_result_names(void)
{
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    int r;

    for (r = 0; r < COLO_PARSE__MAX; r++) {
        const char *name = colo_parse_result_str(r);

        g_assert_nonnull(name);
        g_assert_false(g_hash_table_contains(seen, name));
        g_hash_table_add(seen, (gpointer)name);
    }
    g_assert_cmpstr(colo_parse_result_str(COLO_PARSE__MAX), ==, "invalid");
    g_assert_cmpstr(colo_parse_result_str(-1), ==, "invalid");
    g_hash_table_destroy(seen);
}

static void test_packet_stats(void)
{
    ColoPacketStats stats = { 0 };

    colo_packet_stats_account(&stats, COLO_PARSE_OK);
    colo_packet_stats_account(&stats, COLO_PARSE_OK);
    colo_packet_stats_account(&stats, COLO_PARSE_ERR_TCP_DATA_OFFSET);
    colo_packet_stats_account(&stats, COLO_PARSE_ERR_IP4_IHL);
    colo_packet_stats_account(&stats, COLO_PARSE_ERR_IP4_IHL);
    g_assert_cmpuint(stats.parsed, ==, 2);
    g_assert_cmpuint(stats.malformed, ==, 3);
    g_assert_cmpuint(stats.by_result[COLO_PARSE_OK], ==, 2);
    g_assert_cmpuint(stats.by_result[COLO_PARSE_ERR_IP4_IHL], ==, 2);
    g_assert_cmpuint(stats.by_result[COLO_PARSE_ERR_TCP_DATA_OFFSET], ==, 1);
    g_assert_cmpuint(stats.by_result[COLO_PARSE_ERR_UDP_LEN], ==, 0);
}

/* ---- Connection keys ---- */

static void key_of(const TestFrame *f, ColoConnKey *key, ColoConnDir *dir)
{
    ColoPacket p;

    g_assert_cmpint(parse(f, &p), ==, COLO_PARSE_OK);
    g_assert_true(colo_conn_key_from_packet(&p, key, dir));
}

static TestFrame tcp4(const uint8_t *src, const uint8_t *dst,
                      uint16_t sport, uint16_t dport)
{
    return finish(eth_wrap(ip4_tcp_l3(src, dst, sport, dport), T_ETH_IP4,
                           NULL, 0), 0);
}

static void check_key_pair(TestFrame fwd, TestFrame rev, ColoConnDir fwd_dir)
{
    ColoConnKey k1, k2;
    ColoConnDir d1, d2;

    key_of(&fwd, &k1, &d1);
    key_of(&rev, &k2, &d2);
    g_assert_true(colo_conn_key_equal(&k1, &k2));
    g_assert_cmpuint(colo_conn_key_hash(&k1), ==, colo_conn_key_hash(&k2));
    g_assert_cmpint(d1, ==, fwd_dir);
    g_assert_cmpint(d2, ==, !fwd_dir);
    g_free(fwd.data);
    g_free(rev.data);
}

static void test_key_directions(void)
{
    static const uint8_t zeros[12];
    ColoConnKey k;
    ColoConnDir d;
    TestFrame f = tcp4(ip4_client, ip4_server, 40000, 80);

    key_of(&f, &k, &d);
    g_assert_cmpuint(k.family, ==, 4);
    g_assert_cmpuint(k.proto, ==, T_PROTO_TCP);
    g_assert_cmpmem(k.addr_a, 4, ip4_client, 4);
    g_assert_cmpmem(k.addr_b, 4, ip4_server, 4);
    g_assert_cmpuint(k.port_a, ==, 40000);
    g_assert_cmpuint(k.port_b, ==, 80);
    /* Bytes an IPv4 address does not use are zero, for hashing. */
    g_assert_cmpmem(k.addr_a + 4, 12, zeros, 12);
    g_assert_cmpmem(k.addr_b + 4, 12, zeros, 12);
    g_free(f.data);

    check_key_pair(tcp4(ip4_client, ip4_server, 40000, 80),
                   tcp4(ip4_server, ip4_client, 80, 40000), COLO_DIR_A_TO_B);
    /* The client has the higher address: its packets go b to a. */
    check_key_pair(tcp4(ip4_high, ip4_server, 40000, 80),
                   tcp4(ip4_server, ip4_high, 80, 40000), COLO_DIR_B_TO_A);
    /* Same address both ends: the lower port is endpoint a. */
    check_key_pair(tcp4(ip4_client, ip4_client, 5000, 80),
                   tcp4(ip4_client, ip4_client, 80, 5000), COLO_DIR_B_TO_A);
    /* A flow to its own endpoint cannot tell directions apart. */
    f = tcp4(ip4_client, ip4_client, 7, 7);
    key_of(&f, &k, &d);
    g_assert_cmpint(d, ==, COLO_DIR_A_TO_B);
    g_free(f.data);
    check_key_pair(
        finish(eth_wrap(ip6_wrap(seg_udp(9, 10, ""), T_PROTO_UDP, ip6_server,
                                 ip6_client), T_ETH_IP6, NULL, 0), 0),
        finish(eth_wrap(ip6_wrap(seg_udp(10, 9, ""), T_PROTO_UDP, ip6_client,
                                 ip6_server), T_ETH_IP6, NULL, 0), 0),
        COLO_DIR_B_TO_A);
    /*
     * An echo's identifier stands for the ports: request and reply
     * share a key.
     */
    check_key_pair(
        finish(eth_wrap(ip4_wrap(seg_icmp(8, 0, ""), T_PROTO_ICMP, ip4_client,
                                 ip4_server, 0, 0), T_ETH_IP4, NULL, 0), 0),
        finish(eth_wrap(ip4_wrap(seg_icmp(0, 0, ""), T_PROTO_ICMP, ip4_server,
                                 ip4_client, 0, 0), T_ETH_IP4, NULL, 0), 0),
        COLO_DIR_A_TO_B);
}

static void test_key_distinct(void)
{
    static const uint8_t ip6_v4_client[16] = { 10, 0, 0, 1 };
    static const uint8_t ip6_v4_server[16] = { 10, 0, 0, 2 };
    TestFrame f[] = {
        tcp4(ip4_client, ip4_server, 40000, 80),
        tcp4(ip4_client, ip4_server, 40001, 80),
        tcp4(ip4_client, ip4_high, 40000, 80),
        finish(eth_wrap(ip4_wrap(seg_udp(40000, 80, ""), T_PROTO_UDP,
                                 ip4_client, ip4_server, 0, 0),
                        T_ETH_IP4, NULL, 0), 0),
        /* Two pingers between the same hosts. */
        finish(eth_wrap(ip4_wrap(seg_icmp_id(8, 0, 1, ""), T_PROTO_ICMP,
                                 ip4_client, ip4_server, 0, 0),
                        T_ETH_IP4, NULL, 0), 0),
        finish(eth_wrap(ip4_wrap(seg_icmp_id(8, 0, 2, ""), T_PROTO_ICMP,
                                 ip4_client, ip4_server, 0, 0),
                        T_ETH_IP4, NULL, 0), 0),
        /* IPv4 addresses padded with zeros, but family 6. */
        finish(eth_wrap(ip6_wrap(seg_tcp(40000, 80, 0, 0, 0, 0, ""),
                                 T_PROTO_TCP, ip6_v4_client, ip6_v4_server),
                        T_ETH_IP6, NULL, 0), 0),
    };
    ColoConnKey keys[G_N_ELEMENTS(f)];
    ColoConnDir d;
    size_t i, j;

    for (i = 0; i < G_N_ELEMENTS(f); i++) {
        key_of(&f[i], &keys[i], &d);
        g_free(f[i].data);
    }
    for (i = 0; i < G_N_ELEMENTS(f); i++) {
        for (j = 0; j < G_N_ELEMENTS(f); j++) {
            g_assert_cmpint(colo_conn_key_equal(&keys[i], &keys[j]), ==,
                            i == j);
        }
    }
}

/* Every fragment of a datagram, first or later, keys without ports. */
static void test_key_fragments(void)
{
    TestFrame first = finish(eth_wrap(ip4_wrap(seg_udp(1000, 2000, "abcd"),
                                               T_PROTO_UDP, ip4_client,
                                               ip4_server, 0x2000, 0),
                                      T_ETH_IP4, NULL, 0), 0);
    TestFrame later = finish(eth_wrap(ip4_wrap(raw_bytes("efgh"),
                                               T_PROTO_UDP, ip4_client,
                                               ip4_server, 1, 0),
                                      T_ETH_IP4, NULL, 0), 0);
    TestFrame whole = finish(eth_wrap(ip4_wrap(seg_udp(1000, 2000, "abcd"),
                                               T_PROTO_UDP, ip4_client,
                                               ip4_server, 0, 0),
                                      T_ETH_IP4, NULL, 0), 0);
    ColoConnKey k1, k2, k3;
    ColoConnDir d;

    key_of(&first, &k1, &d);
    key_of(&later, &k2, &d);
    key_of(&whole, &k3, &d);
    g_assert_true(colo_conn_key_equal(&k1, &k2));
    g_assert_cmpuint(k1.port_a, ==, 0);
    g_assert_cmpuint(k1.port_b, ==, 0);
    g_assert_false(colo_conn_key_equal(&k1, &k3));
    g_assert_cmpuint(k3.port_a, ==, 1000);
    g_free(first.data);
    g_free(later.data);
    g_free(whole.data);
}

/* The key works as a plain GHashTable key, found from either direction. */
static void test_key_in_ghashtable(void)
{
    GHashTable *h = g_hash_table_new_full(colo_conn_key_hash,
                                          colo_conn_key_equal, g_free, NULL);
    TestFrame fwd = tcp4(ip4_client, ip4_server, 40000, 80);
    TestFrame rev = tcp4(ip4_server, ip4_client, 80, 40000);
    ColoConnKey k, *stored = g_new(ColoConnKey, 1);
    ColoConnDir d;

    key_of(&fwd, stored, &d);
    g_hash_table_insert(h, stored, GINT_TO_POINTER(7));
    key_of(&rev, &k, &d);
    g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(h, &k)), ==, 7);
    g_hash_table_destroy(h);
    g_free(fwd.data);
    g_free(rev.data);
}

/* ---- Connection table ---- */

/* User data that records its own destruction in a shared log. */
typedef struct Tracked {
    int id;
    GArray *freed;
} Tracked;

static Tracked *tracked_new(int id, GArray *freed)
{
    Tracked *t = g_new(Tracked, 1);

    t->id = id;
    t->freed = freed;
    return t;
}

static void tracked_free(gpointer p)
{
    Tracked *t = p;

    g_array_append_val(t->freed, t->id);
    g_free(t);
}

static ColoConnKey make_key(uint16_t port)
{
    ColoConnKey k;

    memset(&k, 0, sizeof(k));
    k.family = 4;
    k.proto = T_PROTO_TCP;
    memcpy(k.addr_a, ip4_client, 4);
    memcpy(k.addr_b, ip4_server, 4);
    k.port_a = port;
    k.port_b = 80;
    return k;
}

static ColoConn *add(ColoConnTable *t, uint16_t port, GArray *freed)
{
    ColoConnKey k = make_key(port);
    bool created;
    ColoConn *c = colo_conn_table_get(t, &k, COLO_DIR_A_TO_B, &created);

    g_assert_true(created);
    colo_conn_set_user_data(c, tracked_new(port, freed));
    return c;
}

static bool has(ColoConnTable *t, uint16_t port)
{
    ColoConnKey k = make_key(port);

    return colo_conn_table_lookup(t, &k) != NULL;
}

static void test_table_get_and_lookup(void)
{
    g_autoptr(ColoConnTable) t = colo_conn_table_new(8, NULL);
    ColoConnKey k = make_key(1), other = make_key(2);
    bool created;
    ColoConn *c1, *c2;

    g_assert_cmpuint(colo_conn_table_capacity(t), ==, 8);
    g_assert_null(colo_conn_table_lookup(t, &k));
    c1 = colo_conn_table_get(t, &k, COLO_DIR_B_TO_A, &created);
    g_assert_true(created);
    g_assert_nonnull(c1);
    c2 = colo_conn_table_get(t, &k, COLO_DIR_A_TO_B, &created);
    g_assert_false(created);
    g_assert_true(c1 == c2);
    g_assert_true(colo_conn_table_lookup(t, &k) == c1);
    g_assert_null(colo_conn_table_lookup(t, &other));
    g_assert_true(colo_conn_key_equal(colo_conn_key(c1), &k));
    /* The origin is the direction of the packet that created it. */
    g_assert_cmpint(colo_conn_origin(c1), ==, COLO_DIR_B_TO_A);
    g_assert_null(colo_conn_get_user_data(c1));
    g_assert_cmpuint(colo_conn_table_count(t), ==, 1);
    g_assert_nonnull(colo_conn_table_get(t, &other, COLO_DIR_A_TO_B, NULL));
    g_assert_cmpuint(colo_conn_table_count(t), ==, 2);
    g_assert_cmpuint(colo_conn_table_stats(t)->created, ==, 2);
    g_assert_cmpuint(colo_conn_table_stats(t)->evicted, ==, 0);
}

static void test_table_lru_eviction(void)
{
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(int));
    ColoConnTable *t = colo_conn_table_new(3, tracked_free);
    ColoConnKey k;

    add(t, 1, freed);
    add(t, 2, freed);
    add(t, 3, freed);
    g_assert_true(has(t, 1));           /* 1 is now the most recent */
    add(t, 4, freed);                   /* evicts 2, the oldest */
    g_assert_cmpuint(freed->len, ==, 1);
    g_assert_cmpint(g_array_index(freed, int, 0), ==, 2);
    g_assert_cmpuint(colo_conn_table_count(t), ==, 3);
    g_assert_false(has(t, 2));
    g_assert_true(has(t, 3));
    g_assert_true(has(t, 1));
    g_assert_true(has(t, 4));

    /* get() on an existing connection refreshes it too. */
    k = make_key(3);
    colo_conn_table_get(t, &k, COLO_DIR_A_TO_B, NULL);
    add(t, 5, freed);                   /* evicts 1 */
    g_assert_cmpint(g_array_index(freed, int, 1), ==, 1);
    g_assert_cmpuint(colo_conn_table_stats(t)->evicted, ==, 2);
    g_assert_cmpuint(colo_conn_table_stats(t)->created, ==, 5);
    g_assert_cmpuint(colo_conn_table_stats(t)->removed, ==, 0);
    g_assert_cmpuint(colo_conn_table_count(t), ==, 3);

    colo_conn_table_free(t);
    g_assert_cmpuint(freed->len, ==, 5);
}

/* A capacity of one keeps only the newest connection. */
static void test_table_capacity_one(void)
{
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(int));
    g_autoptr(ColoConnTable) t = colo_conn_table_new(1, tracked_free);
    int i;

    for (i = 1; i <= 100; i++) {
        add(t, i, freed);
        g_assert_cmpuint(colo_conn_table_count(t), ==, 1);
        g_assert_true(has(t, i));
    }
    g_assert_cmpuint(colo_conn_table_stats(t)->evicted, ==, 99);
    g_assert_cmpuint(freed->len, ==, 99);
}

static void test_table_remove(void)
{
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(int));
    g_autoptr(ColoConnTable) t = colo_conn_table_new(4, tracked_free);
    ColoConnKey k = make_key(2);

    add(t, 1, freed);
    add(t, 2, freed);
    g_assert_true(colo_conn_table_remove(t, &k));
    g_assert_cmpuint(freed->len, ==, 1);
    g_assert_cmpint(g_array_index(freed, int, 0), ==, 2);
    g_assert_false(colo_conn_table_remove(t, &k));
    g_assert_false(has(t, 2));
    g_assert_cmpuint(colo_conn_table_count(t), ==, 1);
    g_assert_cmpuint(colo_conn_table_stats(t)->removed, ==, 1);
    /* The key can come back as a new connection. */
    add(t, 2, freed);
    g_assert_cmpuint(colo_conn_table_stats(t)->created, ==, 3);
}

static void test_table_user_data(void)
{
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(int));
    ColoConnTable *t = colo_conn_table_new(4, tracked_free);
    ColoConn *c = add(t, 1, freed);
    Tracked *same;

    g_assert_cmpint(((Tracked *)colo_conn_get_user_data(c))->id, ==, 1);
    /* Replacing destroys the old data... */
    colo_conn_set_user_data(c, tracked_new(10, freed));
    g_assert_cmpuint(freed->len, ==, 1);
    g_assert_cmpint(g_array_index(freed, int, 0), ==, 1);
    /* ...setting the same pointer again does not... */
    same = colo_conn_get_user_data(c);
    colo_conn_set_user_data(c, same);
    g_assert_cmpuint(freed->len, ==, 1);
    /* ...and clearing to NULL does. */
    colo_conn_set_user_data(c, NULL);
    g_assert_cmpuint(freed->len, ==, 2);
    g_assert_cmpint(g_array_index(freed, int, 1), ==, 10);

    /* Connections without data are freed without calling user_free. */
    add(t, 2, freed);
    colo_conn_table_free(t);
    g_assert_cmpuint(freed->len, ==, 3);
    g_assert_cmpint(g_array_index(freed, int, 2), ==, 2);
}

/* Without user_free the caller keeps ownership of its data. */
static void test_table_no_user_free(void)
{
    ColoConnTable *t = colo_conn_table_new(1, NULL);
    ColoConnKey k1 = make_key(1), k2 = make_key(2);
    int mine = 5;

    colo_conn_set_user_data(colo_conn_table_get(t, &k1, COLO_DIR_A_TO_B, NULL),
                            &mine);
    /* Evicts k1 and leaves &mine alone. */
    colo_conn_table_get(t, &k2, COLO_DIR_A_TO_B, NULL);
    g_assert_cmpint(mine, ==, 5);
    colo_conn_table_free(t);
    colo_conn_table_free(NULL);
}

static void collect_port(ColoConn *c, void *opaque)
{
    GArray *ports = opaque;
    int port = colo_conn_key(c)->port_a;

    g_array_append_val(ports, port);
}

static bool is_even(ColoConn *c, void *opaque)
{
    return colo_conn_key(c)->port_a % 2 == 0;
}

static void test_table_iteration(void)
{
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(int));
    g_autoptr(GArray) ports = g_array_new(false, false, sizeof(int));
    g_autoptr(ColoConnTable) t = colo_conn_table_new(10, tracked_free);
    int i;

    for (i = 1; i <= 6; i++) {
        add(t, i, freed);
    }
    g_assert_true(has(t, 3));
    colo_conn_table_foreach(t, collect_port, ports);
    g_assert_cmpuint(ports->len, ==, 6);
    g_assert_cmpint(g_array_index(ports, int, 0), ==, 3);
    g_assert_cmpint(g_array_index(ports, int, 1), ==, 6);
    g_assert_cmpint(g_array_index(ports, int, 5), ==, 1);

    g_assert_cmpuint(colo_conn_table_remove_if(t, is_even, NULL), ==, 3);
    g_assert_cmpuint(freed->len, ==, 3);
    g_assert_cmpuint(colo_conn_table_count(t), ==, 3);
    g_assert_cmpuint(colo_conn_table_stats(t)->removed, ==, 3);
    g_array_set_size(ports, 0);
    colo_conn_table_foreach(t, collect_port, ports);
    g_assert_cmpuint(ports->len, ==, 3);
    for (i = 0; i < ports->len; i++) {
        g_assert_cmpint(g_array_index(ports, int, i) % 2, ==, 1);
    }
    g_assert_cmpuint(colo_conn_table_remove_if(t, is_even, NULL), ==, 0);
}

/* Parsing, keying and tracking together, the way a filter will use them. */
static void test_table_with_packets(void)
{
    g_autoptr(ColoConnTable) t = colo_conn_table_new(16, NULL);
    TestFrame syn = tcp4(ip4_high, ip4_server, 40000, 80);
    TestFrame reply = tcp4(ip4_server, ip4_high, 80, 40000);
    ColoConnKey k;
    ColoConnDir d;
    ColoConn *c1, *c2;
    bool created;

    key_of(&syn, &k, &d);
    c1 = colo_conn_table_get(t, &k, d, &created);
    g_assert_true(created);
    key_of(&reply, &k, &d);
    c2 = colo_conn_table_get(t, &k, d, &created);
    g_assert_false(created);
    g_assert_true(c1 == c2);
    g_assert_cmpint(colo_conn_origin(c1), ==, COLO_DIR_B_TO_A);
    g_assert_cmpint(d, !=, colo_conn_origin(c1));
    g_free(syn.data);
    g_free(reply.data);
}

/* Sequence numbers compare modulo 2^32, across the wrap. */
static void test_seq_arithmetic(void)
{
    g_assert_true(colo_seq_lt(1, 2));
    g_assert_false(colo_seq_lt(2, 2));
    g_assert_true(colo_seq_le(2, 2));
    g_assert_true(colo_seq_lt(0xfffffff0, 0x10));
    g_assert_false(colo_seq_lt(0x10, 0xfffffff0));
    g_assert_true(colo_seq_le(0xffffffff, 0));
    /* Half the space ahead is after; one more is before again. */
    g_assert_true(colo_seq_lt(0, 0x7fffffff));
    g_assert_false(colo_seq_lt(0, 0x80000001));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/colo/packet/seq-arithmetic", test_seq_arithmetic);
    g_test_add_func("/colo/packet/ipv4-tcp", test_ip4_tcp);
    g_test_add_func("/colo/packet/ipv4-options-udp", test_ip4_options_udp);
    g_test_add_func("/colo/packet/ipv4-icmp", test_ip4_icmp);
    g_test_add_func("/colo/packet/ipv4-other", test_ip4_other_proto);
    g_test_add_func("/colo/packet/ipv4-fragments", test_ip4_fragments);
    g_test_add_func("/colo/packet/ethernet-padding", test_ethernet_padding);
    g_test_add_func("/colo/packet/vnet-header", test_vnet_header);
    g_test_add_func("/colo/packet/vnet-header-mismatch",
                    test_vnet_header_mismatch);
    g_test_add_func("/colo/packet/vlan-single", test_vlan_single);
    g_test_add_func("/colo/packet/vlan-double", test_vlan_double);
    g_test_add_func("/colo/packet/vlan-too-deep", test_vlan_too_deep);
    g_test_add_func("/colo/packet/non-ip", test_non_ip);
    g_test_add_func("/colo/packet/ipv6-tcp", test_ip6_tcp);
    g_test_add_func("/colo/packet/ipv6-icmpv6", test_ip6_icmpv6);
    g_test_add_func("/colo/packet/ipv6-proto1-is-other",
                    test_ip6_proto1_is_other);
    g_test_add_func("/colo/packet/ipv6-ext-headers", test_ip6_ext_headers);
    g_test_add_func("/colo/packet/ipv6-unknown-ext", test_ip6_unknown_ext);
    g_test_add_func("/colo/packet/ipv6-no-next-header",
                    test_ip6_no_next_header);
    g_test_add_func("/colo/packet/ipv6-fragments", test_ip6_fragments);

    g_test_add_func("/colo/malformed/l2", test_bad_l2);
    g_test_add_func("/colo/malformed/ipv4", test_bad_ip4);
    g_test_add_func("/colo/malformed/ipv6", test_bad_ip6);
    g_test_add_func("/colo/malformed/ipv6-fragment-header",
                    test_bad_ip6_fragment_header);
    g_test_add_func("/colo/malformed/tcp", test_bad_tcp);
    g_test_add_func("/colo/malformed/udp", test_bad_udp);
    g_test_add_func("/colo/malformed/icmp", test_bad_icmp);
    g_test_add_func("/colo/malformed/truncate-every-length",
                    test_truncate_every_length);
    g_test_add_func("/colo/malformed/shrink-datagram", test_shrink_datagram);
    g_test_add_func("/colo/malformed/mutations", test_mutations);
    g_test_add_func("/colo/malformed/result-names", test_result_names);
    g_test_add_func("/colo/malformed/stats", test_packet_stats);

    g_test_add_func("/colo/key/directions", test_key_directions);
    g_test_add_func("/colo/key/distinct", test_key_distinct);
    g_test_add_func("/colo/key/fragments", test_key_fragments);
    g_test_add_func("/colo/key/ghashtable", test_key_in_ghashtable);

    g_test_add_func("/colo/table/get-lookup", test_table_get_and_lookup);
    g_test_add_func("/colo/table/lru-eviction", test_table_lru_eviction);
    g_test_add_func("/colo/table/capacity-one", test_table_capacity_one);
    g_test_add_func("/colo/table/remove", test_table_remove);
    g_test_add_func("/colo/table/user-data", test_table_user_data);
    g_test_add_func("/colo/table/no-user-free", test_table_no_user_free);
    g_test_add_func("/colo/table/iteration", test_table_iteration);
    g_test_add_func("/colo/table/with-packets", test_table_with_packets);

    return g_test_run();
}
