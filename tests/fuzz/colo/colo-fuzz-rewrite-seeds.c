/*
 * Writes the seed corpus of fuzz-colo-rewrite into a directory: the
 * secondary's view of real conversations, with timestamps, so that the
 * fuzzer starts from connections whose offsets get learned.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "../../unit/colo/colo-test-frames.h"

enum { OP_FROM_GUEST, OP_TO_GUEST, OP_CHECKPOINT, OP_FAILOVER, OP_TIME };

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
    return 0;
}
