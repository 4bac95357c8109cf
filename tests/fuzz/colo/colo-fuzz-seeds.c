/*
 * Writes the seed corpus of fuzz-colo-compare into a directory: scripts
 * of real conversations (both VMs agreeing, cutting data differently,
 * disagreeing, going silent) so that the fuzzer starts from frames that
 * parse and connections that match.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "fuzz-tcp-desc.h"

enum { OP_P, OP_S, OP_BOTH, OP_TIME, OP_CP_BEGIN, OP_CP_DONE, OP_EXPIRE,
       OP_FAILOVER };
#define OP_VNET 0x08
#define OP_TCP 0x10
#define FLOW_CLIENT FUZZ_TCP_FROM_CLIENT
#define FLOW_PAYLOAD(v) FUZZ_TCP_PAYLOAD(v)

static const TfFlow web = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 }, .sport = 80, .dport = 9,
};

/* Append one frame operation; consumes @frame. */
static void op_frame(GByteArray *s, uint8_t op, GByteArray *frame)
{
    uint8_t hdr[3] = { op, frame->len & 0xff, frame->len >> 8 };

    g_byte_array_append(s, hdr, 3);
    g_byte_array_append(s, frame->data, frame->len);
    g_byte_array_unref(frame);
}

static void op(GByteArray *s, uint8_t op, int arg)
{
    g_byte_array_append(s, &op, 1);
    if (arg >= 0) {
        uint8_t a = arg;

        g_byte_array_append(s, &a, 1);
    }
}

/* A TCP segment by description (fuzz-tcp-desc.h). */
static void op_seg(GByteArray *s, uint8_t op, uint8_t flow, uint8_t flags,
                   uint32_t seq, uint32_t ack, uint8_t len)
{
    fuzz_tcp_desc_append(s, op | OP_TCP, flow, flags, seq, ack, len);
}

/*
 * One connection's life by description: handshake (the secondary picks
 * its own ISN), data both ways, a retransmit, a checkpoint in between,
 * and a close.  @isn near 2^32 makes the data go round.
 */
static void seg_conversation(GByteArray *s, uint8_t flow, uint32_t isn)
{
    op_seg(s, OP_BOTH, flow | FLOW_CLIENT, TF_SYN, 5000, 0, 0);
    op_seg(s, OP_P, flow, TF_SYN | TF_ACK, isn, 5001, 0);
    op_seg(s, OP_S, flow, TF_SYN | TF_ACK, isn + 12345, 5001, 0);
    op_seg(s, OP_BOTH, flow | FLOW_CLIENT, TF_ACK, 5001, isn + 1, 0);
    op_seg(s, OP_BOTH, flow | FLOW_CLIENT, TF_ACK | TF_PSH, 5001, isn + 1,
           40);
    op_seg(s, OP_BOTH, flow, TF_ACK | TF_PSH, isn + 1, 5041, 200);
    op_seg(s, OP_P, flow, TF_ACK | TF_PSH, isn + 201, 5041, 200);
    op_seg(s, OP_S, flow | FLOW_PAYLOAD(1), TF_ACK | TF_PSH, isn + 201, 5041,
           200);
    op(s, OP_CP_BEGIN, -1);
    op(s, OP_CP_DONE, -1);
    /* The client missed it: the same bytes again. */
    op_seg(s, OP_BOTH, flow, TF_ACK | TF_PSH, isn + 201, 5041, 200);
    op_seg(s, OP_BOTH, flow | FLOW_CLIENT, TF_ACK | TF_FIN, 5041, isn + 401,
           0);
    op_seg(s, OP_BOTH, flow, TF_ACK | TF_FIN, isn + 401, 5042, 0);
    op(s, OP_TIME, 100);
    op(s, OP_EXPIRE, -1);
}

static void write_seed(const char *dir, const char *name, GByteArray *s)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) err = NULL;

    if (!g_file_set_contents(path, (char *)s->data, s->len, &err)) {
        fprintf(stderr, "colo-fuzz-seeds: %s\n", err->message);
        exit(1);
    }
    g_byte_array_unref(s);
}

int main(int argc, char **argv)
{
    GByteArray *s;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    g_mkdir_with_parents(argv[1], 0755);

    s = g_byte_array_new();
    op_frame(s, OP_P, tf_tcp(&web, 100, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_S, tf_tcp(&web, 777, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_BOTH, tf_tcp(&web, 101, 5, TF_ACK, "hello"));
    op_frame(s, OP_P, tf_tcp(&web, 106, 5, TF_ACK, "world!"));
    op_frame(s, OP_S, tf_tcp(&web, 106, 5, TF_ACK, "wor"));
    op_frame(s, OP_S, tf_tcp(&web, 109, 5, TF_ACK, "ld!"));
    op_frame(s, OP_BOTH, tf_tcp(&web, 112, 6, TF_ACK | TF_FIN, NULL));
    write_seed(argv[1], "tcp-session", s);

    s = g_byte_array_new();
    op_frame(s, OP_BOTH,
             tf_tcp(&web, 0xfffffff0, 5, TF_ACK, "0123456789abcdef0123"));
    op_frame(s, OP_S, tf_tcp(&web, 0xfffffff0, 5, TF_ACK, "0123"));
    op_frame(s, OP_P, tf_tcp(&web, 0xfffffff0, 5, TF_RST, NULL));
    op(s, OP_TIME, 200);
    op(s, OP_EXPIRE, -1);
    write_seed(argv[1], "tcp-wrap-rst", s);

    s = g_byte_array_new();
    op_frame(s, OP_P, tf_tcp(&web, 101, 5, TF_ACK, "abc"));
    op_frame(s, OP_S, tf_tcp(&web, 101, 5, TF_ACK, "abd"));
    op(s, OP_CP_BEGIN, -1);
    op_frame(s, OP_BOTH, tf_udp(&web, "dns", 3, 1));
    op(s, OP_CP_DONE, -1);
    op_frame(s, OP_BOTH, tf_tcp(&web, 104, 5, TF_ACK, "next"));
    write_seed(argv[1], "mismatch-checkpoint", s);

    s = g_byte_array_new();
    op_frame(s, OP_BOTH | OP_VNET, tf_udp(&web, "answer", 6, 7));
    op_frame(s, OP_P, tf_icmp_echo(&web, 1, "ping"));
    op_frame(s, OP_S, tf_icmp_echo(&web, 1, "pong"));
    op_frame(s, OP_BOTH, tf_arp(4));
    op(s, OP_TIME, 255);
    op(s, OP_EXPIRE, -1);
    op(s, OP_FAILOVER, -1);
    op_frame(s, OP_P, tf_arp(5));
    write_seed(argv[1], "udp-icmp-arp-failover", s);

    /* COLO runs: timeouts, overflow and eviction wait for a checkpoint. */
    s = g_byte_array_new();
    op(s, OP_CP_BEGIN, -1);
    op(s, OP_CP_DONE, -1);
    op_frame(s, OP_P, tf_tcp(&web, 100, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_S, tf_tcp(&web, 777, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_P, tf_tcp(&web, 101, 5, TF_ACK, "late"));
    op(s, OP_TIME, 200);
    op(s, OP_EXPIRE, -1);
    for (int i = 0; i < 6; i++) {
        TfFlow other = web;

        other.sport = 1000 + i;
        op_frame(s, OP_P, tf_udp(&other, "x", 1, i));
    }
    op_frame(s, OP_BOTH, tf_tcp(&web, 105, 5, TF_ACK, "matched"));
    op_frame(s, OP_BOTH, tf_arp(6));
    op(s, OP_CP_BEGIN, -1);
    op_frame(s, OP_P, tf_udp(&web, "in-flight", 9, 1));
    op(s, OP_CP_DONE, -1);
    write_seed(argv[1], "output-commit", s);

    /*
     * Unmatched segments, each released on its timeout, move the flow
     * round the sequence space to just before its SYN, which then comes
     * again while the secondary sends a byte there.
     */
    s = g_byte_array_new();
    op_frame(s, OP_P, tf_tcp(&web, 100, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_S, tf_tcp(&web, 777, 5, TF_SYN | TF_ACK, NULL));
    {
        /* Each step under half the sequence space, so that it counts. */
        const uint32_t ends[] = { 101 + 0x7fff0000u, 101 + 0xfffe0000u, 100 };

        for (int i = 0; i < ARRAY_SIZE(ends); i++) {
            op_frame(s, OP_P, tf_tcp(&web, ends[i] - 1, 5, TF_ACK, "j"));
            op(s, OP_TIME, 255);
            op(s, OP_EXPIRE, -1);
        }
    }
    op_frame(s, OP_P, tf_tcp(&web, 100, 5, TF_SYN | TF_ACK, NULL));
    op_frame(s, OP_S, tf_tcp(&web, 100, 5, TF_ACK, "q"));
    write_seed(argv[1], "tcp-syn-after-wrap", s);

    s = g_byte_array_new();
    seg_conversation(s, 0, 1000);
    write_seed(argv[1], "seg-conversation", s);

    s = g_byte_array_new();
    seg_conversation(s, 1, 0xffffff00u);
    write_seed(argv[1], "seg-conversation-wraps", s);

    /* Eight connections at once where the matcher keeps four. */
    s = g_byte_array_new();
    for (int f = 0; f < 8; f++) {
        op_seg(s, OP_P, f, TF_SYN | TF_ACK, 100 * f, 1, 0);
        op_seg(s, OP_S, f, TF_SYN | TF_ACK, 7777 * f, 1, 0);
    }
    for (int f = 0; f < 8; f++) {
        op_seg(s, OP_BOTH, f, TF_ACK | TF_PSH, 100 * f + 1, 1, 10);
    }
    op(s, OP_CP_BEGIN, -1);
    op(s, OP_CP_DONE, -1);
    write_seed(argv[1], "seg-evictions", s);
    return 0;
}
