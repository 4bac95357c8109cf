/*
 * TCP segments from short descriptions, for the COLO fuzz targets: with
 * them a fuzzer walks TCP's states (handshakes, retransmits, sequence
 * numbers going round, more flows than a table holds) instead of
 * searching for bytes that parse.
 *
 * A description is FUZZ_TCP_DESC_LEN bytes:
 *   flow    bits 0-2: one of 8 connections; bit 3: from the client (the
 *           target may decide the direction itself); bits 4-6: which
 *           payload, so that two sides can differ; bit 7: a timestamp
 *           option (TSval from seq, TSecr from ack), as Linux sends
 *   flags   the TCP flags
 *   seq     32-bit little-endian
 *   ack     32-bit little-endian
 *   len     payload bytes
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef FUZZ_TCP_DESC_H
#define FUZZ_TCP_DESC_H

#include "qemu/bswap.h"
#include "../../unit/colo/colo-test-frames.h"

#define FUZZ_TCP_DESC_LEN 11
#define FUZZ_TCP_FROM_CLIENT 0x08
#define FUZZ_TCP_PAYLOAD(v) (((v) & 7) << 4)
#define FUZZ_TCP_TIMESTAMPS 0x80

static inline GByteArray *fuzz_tcp_from_desc(const uint8_t *d,
                                             bool from_client)
{
    uint8_t flow = d[0], len = d[10];
    uint32_t seq = ldl_le_p(d + 2), ack = ldl_le_p(d + 6);
    TfFlow guest = {
        .src = { 10, 0, 0, 1 }, .dst = { 10, 0, 0, 2 },
        .sport = 80, .dport = 40000 + (flow & 7),
    };
    TfFlow client = {
        .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 },
        .sport = guest.dport, .dport = guest.sport,
    };
    const TfFlow *fl = from_client ? &client : &guest;
    char payload[256];

    for (int i = 0; i < len; i++) {
        payload[i] = 'a' + (i + ((flow >> 4) & 7)) % 26;
    }
    payload[len] = '\0';
    if (flow & FUZZ_TCP_TIMESTAMPS) {
        return tf_tcp_ts(fl, seq, ack, d[1], payload, seq ^ 0x5a5a5a5a, ack);
    }
    return tf_tcp_full(fl, seq, ack, d[1], payload, len, 0, 1);
}

/* For seed generators: append operation @op and its description. */
static inline void fuzz_tcp_desc_append(GByteArray *s, uint8_t op,
                                        uint8_t flow, uint8_t flags,
                                        uint32_t seq, uint32_t ack,
                                        uint8_t len)
{
    uint8_t d[1 + FUZZ_TCP_DESC_LEN] = { op, flow, flags };

    stl_le_p(d + 3, seq);
    stl_le_p(d + 7, ack);
    d[11] = len;
    g_byte_array_append(s, d, sizeof(d));
}

#endif /* FUZZ_TCP_DESC_H */
