/*
 * Writes the seed corpus of fuzz-colo-rewrite into a directory: the
 * secondary's view of real conversations, with timestamps, so that the
 * fuzzer starts from connections whose offsets get learned.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "fuzz-tcp-desc.h"

enum { OP_FROM_GUEST, OP_TO_GUEST, OP_CHECKPOINT, OP_FAILOVER, OP_TIME };
#define OP_TCP 0x10
#define TS FUZZ_TCP_TIMESTAMPS

/* The guest's side and the client's side of one connection. */
static const TfFlow out = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 }, .sport = 80, .dport = 9,
};
static const TfFlow in = {
    .src = { 10, 0, 0, 1 }, .dst = { 10, 0, 0, 2 }, .sport = 9, .dport = 80,
};

static void op_frame(GByteArray *s, uint8_t op, GByteArray *frame)
{
    uint8_t hdr[3] = { op, frame->len & 0xff, frame->len >> 8 };

    g_byte_array_append(s, hdr, 3);
    g_byte_array_append(s, frame->data, frame->len);
    g_byte_array_unref(frame);
}

static void op(GByteArray *s, uint8_t op)
{
    g_byte_array_append(s, &op, 1);
}

/* A TCP segment by description (fuzz-tcp-desc.h). */
static void op_seg(GByteArray *s, uint8_t op, uint8_t flow, uint8_t flags,
                   uint32_t seq, uint32_t ack, uint8_t len)
{
    fuzz_tcp_desc_append(s, op | OP_TCP, flow, flags, seq, ack, len);
}

/*
 * A client's connection by description, with timestamps: handshake, data
 * both ways, a retransmit, a checkpoint, a close.  @isn near 2^32 makes
 * the guest's sequence numbers go round.
 */
static void seg_conversation(GByteArray *s, uint8_t flow, uint32_t isn)
{
    op_seg(s, OP_TO_GUEST, flow | TS, TF_SYN, 7000, 0, 0);
    op_seg(s, OP_FROM_GUEST, flow | TS, TF_SYN | TF_ACK, isn, 7001, 0);
    op_seg(s, OP_TO_GUEST, flow | TS, TF_ACK, 7001, isn + 1, 0);
    op_seg(s, OP_TO_GUEST, flow | TS, TF_ACK | TF_PSH, 7001, isn + 1, 30);
    op_seg(s, OP_FROM_GUEST, flow | TS, TF_ACK | TF_PSH, isn + 1, 7031, 120);
    op_seg(s, OP_FROM_GUEST, flow | TS, TF_ACK | TF_PSH, isn + 1, 7031, 120);
    op(s, OP_CHECKPOINT);
    op_seg(s, OP_TO_GUEST, flow | TS, TF_ACK, 7031, isn + 121, 0);
    op_seg(s, OP_FROM_GUEST, flow | TS, TF_ACK | TF_FIN, isn + 121, 7031, 0);
    op_seg(s, OP_TO_GUEST, flow | TS, TF_ACK | TF_FIN, 7031, isn + 122, 0);
    op(s, OP_TIME);
}

static void write_seed(const char *dir, const char *name, GByteArray *s)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) err = NULL;

    if (!g_file_set_contents(path, (char *)s->data, s->len, &err)) {
        fprintf(stderr, "colo-fuzz-rewrite-seeds: %s\n", err->message);
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
    op_frame(s, OP_TO_GUEST, tf_tcp_ts(&in, 100, 0, TF_SYN, NULL, 7, 0));
    op_frame(s, OP_FROM_GUEST, tf_tcp_ts(&out, 5000, 101, TF_SYN | TF_ACK,
                                         NULL, 900, 7));
    op_frame(s, OP_TO_GUEST, tf_tcp_ts(&in, 101, 70001, TF_ACK, NULL, 8,
                                       40000));
    op_frame(s, OP_TO_GUEST, tf_tcp_ts(&in, 101, 70001, TF_ACK | TF_PSH,
                                       "GET /", 9, 40000));
    op_frame(s, OP_FROM_GUEST, tf_tcp_ts(&out, 5001, 106, TF_ACK | TF_PSH,
                                         "200 OK", 910, 9));
    op(s, OP_FAILOVER);
    op_frame(s, OP_FROM_GUEST, tf_tcp_ts(&out, 5007, 106, TF_ACK | TF_FIN,
                                         NULL, 920, 9));
    op_frame(s, OP_TO_GUEST, tf_tcp_ts(&in, 106, 70008, TF_ACK | TF_FIN,
                                       NULL, 10, 40020));
    write_seed(argv[1], "client-opens-failover", s);

    s = g_byte_array_new();
    op_frame(s, OP_FROM_GUEST, tf_tcp_ts(&out, 0xfffffff0, 0, TF_SYN, NULL,
                                         1, 0));
    op_frame(s, OP_TO_GUEST, tf_tcp_ts(&in, 300, 0x10, TF_SYN | TF_ACK,
                                       NULL, 2, 0xffffff00));
    op_frame(s, OP_FROM_GUEST, tf_tcp(&out, 0xfffffff1, 301, TF_ACK,
                                      "wrapped"));
    op(s, OP_CHECKPOINT);
    op_frame(s, OP_TO_GUEST, tf_tcp(&in, 301, 0xfffffff8, TF_RST, NULL));
    op(s, OP_TIME);
    write_seed(argv[1], "guest-opens-checkpoint-rst", s);

    s = g_byte_array_new();
    seg_conversation(s, 0, 123456);
    write_seed(argv[1], "seg-conversation", s);

    s = g_byte_array_new();
    seg_conversation(s, 1, 0xffffffc0u);
    op(s, OP_FAILOVER);
    seg_conversation(s, 2, 1000);
    write_seed(argv[1], "seg-wrap-failover", s);

    /* Six connections where the rewriter keeps four. */
    s = g_byte_array_new();
    for (int f = 0; f < 6; f++) {
        op_seg(s, OP_TO_GUEST, f | TS, TF_SYN, 100 * f, 0, 0);
        op_seg(s, OP_FROM_GUEST, f | TS, TF_SYN | TF_ACK, 9000 * f, 100 * f + 1,
               0);
    }
    for (int f = 0; f < 6; f++) {
        op_seg(s, OP_FROM_GUEST, f | TS, TF_ACK | TF_PSH, 9000 * f + 1,
               100 * f + 1, 10);
    }
    write_seed(argv[1], "seg-evictions", s);
    return 0;
}
