/*
 * Frames for the COLO comparator's tests, fuzz seeds and benchmark:
 * Ethernet + IPv4 carrying TCP, UDP or ICMP, built byte by byte.
 * Checksums are left zero; nothing that reads these frames checks them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef COLO_TEST_FRAMES_H
#define COLO_TEST_FRAMES_H

enum {
    TF_PROTO_ICMP = 1,
    TF_PROTO_TCP = 6,
    TF_PROTO_UDP = 17,

    TF_FIN = 0x01,
    TF_SYN = 0x02,
    TF_RST = 0x04,
    TF_PSH = 0x08,
    TF_ACK = 0x10,
};

/* One direction of a conversation, as seen on the wire. */
typedef struct TfFlow {
    uint8_t src[4];
    uint8_t dst[4];
    uint16_t sport;
    uint16_t dport;
} TfFlow;

static inline void tf_put16(GByteArray *b, uint16_t v)
{
    uint8_t x[2] = { v >> 8, v };

    g_byte_array_append(b, x, 2);
}

static inline void tf_put32(GByteArray *b, uint32_t v)
{
    tf_put16(b, v >> 16);
    tf_put16(b, v);
}

static inline void tf_put8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

/*
 * Ethernet + IPv4 around @l4.  @ip_id and @ttl let tests show that IP
 * header fields are not compared.
 */
static inline GByteArray *tf_ip4(const TfFlow *fl, uint8_t proto,
                                 const GByteArray *l4, uint16_t ip_id,
                                 uint8_t ttl)
{
    static const uint8_t dmac[6] = { 0x52, 0x54, 0, 0, 0, 1 };
    static const uint8_t smac[6] = { 0x52, 0x54, 0, 0, 0, 2 };
    GByteArray *b = g_byte_array_new();

    g_byte_array_append(b, dmac, 6);
    g_byte_array_append(b, smac, 6);
    tf_put16(b, 0x0800);
    tf_put8(b, 0x45);
    tf_put8(b, 0);
    tf_put16(b, 20 + l4->len);
    tf_put16(b, ip_id);
    tf_put16(b, 0x4000);        /* DF, not a fragment */
    tf_put8(b, ttl);
    tf_put8(b, proto);
    tf_put16(b, 0);
    g_byte_array_append(b, fl->src, 4);
    g_byte_array_append(b, fl->dst, 4);
    g_byte_array_append(b, l4->data, l4->len);
    return b;
}

/* A TCP segment; @opt_fill adds that many bytes of NOP options. */
static inline GByteArray *tf_tcp_full(const TfFlow *fl, uint32_t seq,
                                      uint32_t ack, uint8_t flags,
                                      const void *payload, size_t len,
                                      size_t opt_fill, uint16_t ip_id)
{
    g_autoptr(GByteArray) l4 = g_byte_array_new();
    size_t hdr = 20 + ((opt_fill + 3) & ~(size_t)3);

    tf_put16(l4, fl->sport);
    tf_put16(l4, fl->dport);
    tf_put32(l4, seq);
    tf_put32(l4, ack);
    tf_put8(l4, (hdr / 4) << 4);
    tf_put8(l4, flags);
    tf_put16(l4, 64240);
    tf_put16(l4, 0);
    tf_put16(l4, 0);
    while (l4->len < hdr) {
        tf_put8(l4, 1);         /* NOP */
    }
    g_byte_array_append(l4, payload, len);
    return tf_ip4(fl, TF_PROTO_TCP, l4, ip_id, 64);
}

/* A TCP segment carrying NOP NOP TIMESTAMP(@tsval, @tsecr), as Linux does. */
static inline GByteArray *tf_tcp_ts(const TfFlow *fl, uint32_t seq,
                                    uint32_t ack, uint8_t flags,
                                    const char *payload, uint32_t tsval,
                                    uint32_t tsecr)
{
    g_autoptr(GByteArray) l4 = g_byte_array_new();
    size_t len = payload ? strlen(payload) : 0;

    tf_put16(l4, fl->sport);
    tf_put16(l4, fl->dport);
    tf_put32(l4, seq);
    tf_put32(l4, ack);
    tf_put8(l4, (32 / 4) << 4);
    tf_put8(l4, flags);
    tf_put16(l4, 64240);
    tf_put16(l4, 0);
    tf_put16(l4, 0);
    tf_put16(l4, 0x0101);       /* NOP NOP */
    tf_put8(l4, 8);
    tf_put8(l4, 10);
    tf_put32(l4, tsval);
    tf_put32(l4, tsecr);
    g_byte_array_append(l4, (const uint8_t *)payload, len);
    return tf_ip4(fl, TF_PROTO_TCP, l4, 1, 64);
}

static inline GByteArray *tf_tcp(const TfFlow *fl, uint32_t seq, uint32_t ack,
                                 uint8_t flags, const char *payload)
{
    return tf_tcp_full(fl, seq, ack, flags, payload,
                       payload ? strlen(payload) : 0, 0, 1);
}

static inline GByteArray *tf_udp(const TfFlow *fl, const void *payload,
                                 size_t len, uint16_t ip_id)
{
    g_autoptr(GByteArray) l4 = g_byte_array_new();

    tf_put16(l4, fl->sport);
    tf_put16(l4, fl->dport);
    tf_put16(l4, 8 + len);
    tf_put16(l4, 0);
    g_byte_array_append(l4, payload, len);
    return tf_ip4(fl, TF_PROTO_UDP, l4, ip_id, 64);
}

static inline GByteArray *tf_icmp_echo(const TfFlow *fl, uint16_t seq,
                                       const char *payload)
{
    g_autoptr(GByteArray) l4 = g_byte_array_new();

    tf_put8(l4, 8);
    tf_put8(l4, 0);
    tf_put16(l4, 0);
    tf_put16(l4, 0x1234);
    tf_put16(l4, seq);
    g_byte_array_append(l4, (const uint8_t *)payload, strlen(payload));
    return tf_ip4(fl, TF_PROTO_ICMP, l4, 7, 64);
}

/* An ARP request: not IP, compared as opaque bytes. */
static inline GByteArray *tf_arp(uint8_t target_last)
{
    GByteArray *b = g_byte_array_new();
    static const uint8_t head[] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 2,
        0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1,
        0x52, 0x54, 0, 0, 0, 2, 10, 0, 0, 2,
        0, 0, 0, 0, 0, 0, 10, 0, 0,
    };

    g_byte_array_append(b, head, sizeof(head));
    tf_put8(b, target_last);
    return b;
}

#endif /* COLO_TEST_FRAMES_H */
