/*
 * Writes the seed corpus of fuzz-colo-compare into a directory: scripts
 * of real conversations (both VMs agreeing, cutting data differently,
 * disagreeing, going silent) so that the fuzzer starts from frames that
 * parse and connections that match.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "../../unit/colo/colo-test-frames.h"

enum { OP_P, OP_S, OP_BOTH, OP_TIME, OP_CP_BEGIN, OP_CP_DONE, OP_EXPIRE,
       OP_FAILOVER };
#define OP_VNET 0x08

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
    op_frame(s, OP_BOTH, tf_tcp(&web, 0xfffffff0, 5, TF_ACK, "0123456789abcdef0123"));
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
    return 0;
}
