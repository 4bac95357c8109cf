/*
 * Unit tests for the COLO chardev frame writer (net/colo-frame-writer.c),
 * over a real socket chardev whose peer is this test: frames written are
 * parsed back with the frame reader.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/config-file.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/sockets.h"
#include "qom/object.h"
#include "system/system.h"
#include "chardev/char.h"
#include "chardev/char-fe.h"
#include "chardev/char-socket.h"
#include "net/colo-frame.h"
#include <netinet/tcp.h>

#define PKT_LEN 1400
/* Bounds every wait for the main loop; a guard, not a timing check. */
#define MAX_SPINS 1000000

typedef struct Fixture {
    char *dir;
    char *path;
    CharFrontend fe;
    ColoFrameWriter *w;
    int peer;
    bool reset_on_close;
    int closed;             /* CHR_EVENT_CLOSED seen */
    ColoFrameReader reader; /* parses what the peer receives */
    GArray *seqs;           /* first word of each frame received */
    uint32_t last_vnet;
} Fixture;

static void fixture_event(void *opaque, QEMUChrEvent event)
{
    Fixture *f = opaque;

    if (event == CHR_EVENT_CLOSED) {
        f->closed++;
        if (f->reset_on_close) {
            colo_frame_writer_reset(f->w);
        }
    }
}

static bool chr_connected(Fixture *f)
{
    return object_property_get_bool(OBJECT(qemu_chr_fe_get_driver(&f->fe)),
                                     "connected", &error_abort);
}

static void spin_until_connected(Fixture *f, bool connected)
{
    int i;

    for (i = 0; i < MAX_SPINS && chr_connected(f) != connected; i++) {
        main_loop_wait(true);
    }
    g_assert(chr_connected(f) == connected);
}

static void fixture_connect(Fixture *f)
{
    f->peer = unix_connect(f->path, &error_abort);
    g_assert(qemu_set_blocking(f->peer, false, &error_abort));
    spin_until_connected(f, true);
}

static void fixture_start(Fixture *f, bool vnet, size_t max_queued,
                          bool connect)
{
    g_autofree char *opts = NULL;
    Chardev *chr;

    memset(f, 0, sizeof(*f));
    f->peer = -1;
    f->dir = g_dir_make_tmp("colo-frame-writer-XXXXXX", NULL);
    g_assert(f->dir);
    f->path = g_build_filename(f->dir, "sock", NULL);
    opts = g_strdup_printf("unix:%s,server=on,wait=off", f->path);
    chr = qemu_chr_new("colo-writer", opts, NULL);
    g_assert(chr);
    qemu_chr_fe_init(&f->fe, chr, &error_abort);
    f->w = colo_frame_writer_new(&f->fe, vnet, max_queued);
    qemu_chr_fe_set_handlers(&f->fe, NULL, NULL, fixture_event, NULL, f,
                             NULL, true);
    colo_frame_reader_init(&f->reader, vnet);
    f->seqs = g_array_new(false, false, sizeof(uint32_t));
    if (connect) {
        fixture_connect(f);
    }
}

static void fixture_stop(Fixture *f)
{
    colo_frame_writer_free(f->w);
    qemu_chr_fe_deinit(&f->fe, true);
    if (f->peer >= 0) {
        close(f->peer);
    }
    colo_frame_reader_destroy(&f->reader);
    g_array_unref(f->seqs);
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* Send a frame whose payload starts with @seq, split over three iovs. */
static bool send_seq(Fixture *f, uint32_t seq, uint32_t vnet_hdr_len)
{
    uint8_t head[4], mid[100], tail[PKT_LEN - 104];
    struct iovec iov[] = {
        { .iov_base = head, .iov_len = sizeof(head) },
        { .iov_base = mid, .iov_len = sizeof(mid) },
        { .iov_base = tail, .iov_len = sizeof(tail) },
    };

    stl_be_p(head, seq);
    memset(mid, 0x3c, sizeof(mid));
    memset(tail, 0xc3, sizeof(tail));
    return colo_frame_writer_send(f->w, iov, ARRAY_SIZE(iov), vnet_hdr_len);
}

static void peer_frame(void *opaque, const uint8_t *buf, size_t len,
                       uint32_t vnet_hdr_len)
{
    Fixture *f = opaque;
    uint32_t seq = ldl_be_p(buf);

    g_assert_cmpuint(len, ==, PKT_LEN);
    g_assert_cmpuint(buf[4], ==, 0x3c);
    g_assert_cmpuint(buf[103], ==, 0x3c);
    g_assert_cmpuint(buf[104], ==, 0xc3);
    g_assert_cmpuint(buf[PKT_LEN - 1], ==, 0xc3);
    f->last_vnet = vnet_hdr_len;
    g_array_append_val(f->seqs, seq);
}

/* Read what the peer has now; false if nothing was there. */
static bool peer_read(Fixture *f)
{
    uint8_t buf[65536];
    ssize_t n = recv(f->peer, buf, sizeof(buf), 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return false;
    }
    g_assert_cmpint(n, >, 0);
    colo_frame_reader_feed(&f->reader, buf, n, peer_frame, f);
    return true;
}

/* Run the main loop and read until @count frames have arrived. */
static void peer_drain(Fixture *f, guint count)
{
    int i;

    for (i = 0; i < MAX_SPINS && f->seqs->len < count; i++) {
        if (!peer_read(f)) {
            main_loop_wait(true);
        }
    }
    g_assert_cmpuint(f->seqs->len, ==, count);
    g_assert_cmpuint(f->reader.stats.bad_frames, ==, 0);
}

/* Send until the writer refuses a frame; returns how many it took. */
static uint32_t fill_until_drop(Fixture *f)
{
    uint32_t seq;

    for (seq = 0; seq < 100000; seq++) {
        if (!send_seq(f, seq, 0)) {
            return seq;
        }
    }
    g_assert_not_reached();
}

static void test_roundtrip(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    const ColoFrameStats *st;
    Fixture f;

    fixture_start(&f, vnet, 64 * 1024, true);
    st = colo_frame_writer_stats(f.w);
    g_assert(send_seq(&f, 1, 12));
    g_assert(send_seq(&f, 2, 12));
    g_assert(send_seq(&f, 3, 12));
    /* A connected socket with room takes the frames at once. */
    g_assert_cmpuint(st->frames, ==, 3);
    g_assert_cmpuint(st->bytes, ==, 3 * PKT_LEN);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), ==, 0);
    peer_drain(&f, 3);
    g_assert_cmpuint(g_array_index(f.seqs, uint32_t, 0), ==, 1);
    g_assert_cmpuint(g_array_index(f.seqs, uint32_t, 2), ==, 3);
    g_assert_cmpuint(f.last_vnet, ==, vnet ? 12 : 0);
    fixture_stop(&f);
}

static void test_refused(void)
{
    g_autofree uint8_t *big = g_malloc0(COLO_FRAME_MAX_LEN + 1);
    struct iovec iov = { .iov_base = big, .iov_len = COLO_FRAME_MAX_LEN + 1 };
    const ColoFrameStats *st;
    Fixture f;

    fixture_start(&f, true, 64 * 1024, true);
    st = colo_frame_writer_stats(f.w);
    g_assert(!colo_frame_writer_send(f.w, &iov, 1, 0));
    iov.iov_len = 0;
    g_assert(!colo_frame_writer_send(f.w, &iov, 1, 0));
    iov.iov_len = 10;
    g_assert(!colo_frame_writer_send(f.w, &iov, 1, 11));
    g_assert_cmpuint(st->bad_frames, ==, 3);
    /* The largest frame goes through. */
    iov.iov_len = COLO_FRAME_MAX_LEN;
    g_assert(colo_frame_writer_send(f.w, &iov, 1, 0));
    g_assert_cmpuint(st->dropped, ==, 0);
    fixture_stop(&f);
}

static void test_no_peer(void)
{
    const ColoFrameStats *st;
    Fixture f;

    fixture_start(&f, false, 64 * 1024, false);
    st = colo_frame_writer_stats(f.w);
    g_assert(!send_seq(&f, 1, 0));
    g_assert(!send_seq(&f, 2, 0));
    g_assert_cmpuint(st->dropped, ==, 2);
    g_assert_cmpuint(st->frames, ==, 0);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), ==, 0);
    /* A peer arriving later gets the next frame, whole. */
    fixture_connect(&f);
    g_assert(send_seq(&f, 3, 0));
    peer_drain(&f, 1);
    g_assert_cmpuint(g_array_index(f.seqs, uint32_t, 0), ==, 3);
    fixture_stop(&f);
}

/* A slow peer: queue up to the limit, drop beyond, flush when it reads. */
static void test_slow_peer(void)
{
    const size_t max_queued = 256 * 1024;
    const ColoFrameStats *st;
    uint32_t taken, i;
    Fixture f;

    fixture_start(&f, false, max_queued, true);
    st = colo_frame_writer_stats(f.w);
    taken = fill_until_drop(&f);
    g_assert_cmpuint(st->dropped, ==, 1);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), >, 0);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), <=, max_queued);
    g_assert_cmpuint(st->frames, <, taken);

    peer_drain(&f, taken);
    for (i = 0; i < taken; i++) {
        g_assert_cmpuint(g_array_index(f.seqs, uint32_t, i), ==, i);
    }
    g_assert_cmpuint(st->frames, ==, taken);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), ==, 0);

    /* Room again: the next frame goes out at once. */
    g_assert(send_seq(&f, taken + 1, 0));
    g_assert_cmpuint(st->frames, ==, taken + 1);
    fixture_stop(&f);
}

/* An empty queue takes a frame whatever the limit. */
static void test_zero_limit(void)
{
    Fixture f;

    fixture_start(&f, false, 0, true);
    g_assert(send_seq(&f, 5, 0));
    peer_drain(&f, 1);
    fixture_stop(&f);
}

/*
 * The peer leaves with frames queued: they are dropped (by the reset from
 * the close event, or by the failing write, whichever comes first), and a
 * new peer starts on a frame boundary.
 */
static void test_peer_leaves(gconstpointer opaque)
{
    bool reset_on_close = GPOINTER_TO_INT(opaque);
    const ColoFrameStats *st;
    uint32_t taken;
    Fixture f;
    int i;

    fixture_start(&f, false, 256 * 1024, true);
    f.reset_on_close = reset_on_close;
    st = colo_frame_writer_stats(f.w);
    taken = fill_until_drop(&f);
    close(f.peer);
    f.peer = -1;
    for (i = 0; i < MAX_SPINS && colo_frame_writer_queued(f.w); i++) {
        main_loop_wait(true);
    }
    g_assert_cmpuint(colo_frame_writer_queued(f.w), ==, 0);
    /* Every frame taken was either written or dropped, plus the refused. */
    g_assert_cmpuint(st->frames + st->dropped, ==, taken + 1);

    spin_until_connected(&f, false);
    g_assert_cmpint(f.closed, ==, 1);
    fixture_connect(&f);
    g_assert(send_seq(&f, 77, 0));
    peer_drain(&f, 1);
    g_assert_cmpuint(g_array_index(f.seqs, uint32_t, 0), ==, 77);
    fixture_stop(&f);
}

/* Freeing a writer with a watch armed leaves nothing to call it back. */
static void test_free_while_queued(void)
{
    Fixture f;
    int i;

    fixture_start(&f, false, 256 * 1024, true);
    fill_until_drop(&f);
    g_assert_cmpuint(colo_frame_writer_queued(f.w), >, 0);
    colo_frame_writer_free(f.w);
    f.w = NULL;
    /* The socket drains; a stale watch would fire into freed memory. */
    for (i = 0; i < 1000; i++) {
        peer_read(&f);
        main_loop_wait(true);
    }
    fixture_stop(&f);
}

static bool socket_nodelay(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);

    g_assert_cmpint(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), ==,
                    0);
    return on;
}

/*
 * A TCP chardev the user left with Nagle's algorithm on sends its frames
 * at once anyway: once a writer uses it, its connections have
 * TCP_NODELAY, the one that is up and those made later.
 */
static void test_no_delay(void)
{
    g_autoptr(SocketAddress) where = NULL;
    struct sockaddr_in to = { .sin_family = AF_INET };
    SocketChardev *s;
    ColoFrameWriter *w;
    CharFrontend fe = { 0 };
    Chardev *chr;
    int peer, i;

    chr = qemu_chr_new("colo-writer-tcp",
                       "tcp:127.0.0.1:0,server=on,wait=off", NULL);
    g_assert(chr);
    s = SOCKET_CHARDEV(chr);
    g_assert_false(object_property_get_bool(OBJECT(chr), "nodelay",
                                            &error_abort));
    where = qio_channel_socket_get_local_address(
        qio_net_listener_sioc(s->listener, 0), &error_abort);
    qemu_chr_fe_init(&fe, chr, &error_abort);

    /* Made after the writer. */
    w = colo_frame_writer_new(&fe, false, 64 * 1024);
    g_assert_true(object_property_get_bool(OBJECT(chr), "nodelay",
                                           &error_abort));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(atoi(where->u.inet.port));
    peer = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(connect(peer, (struct sockaddr *)&to, sizeof(to)), ==, 0);
    for (i = 0; i < MAX_SPINS && !s->sioc; i++) {
        main_loop_wait(true);
    }
    g_assert(s->sioc);
    g_assert_true(socket_nodelay(s->sioc->fd));
    colo_frame_writer_free(w);

    /* Up before the writer. */
    object_property_set_bool(OBJECT(chr), "nodelay", false, &error_abort);
    g_assert_false(socket_nodelay(s->sioc->fd));
    w = colo_frame_writer_new(&fe, false, 64 * 1024);
    g_assert_true(socket_nodelay(s->sioc->fd));
    colo_frame_writer_free(w);

    close(peer);
    qemu_chr_fe_deinit(&fe, true);
}

int main(int argc, char **argv)
{
    /* As in QEMU: a write to a peer that left fails, it does not kill. */
    signal(SIGPIPE, SIG_IGN);
    qemu_init_main_loop(&error_abort);
    socket_init();
    g_test_init(&argc, &argv, NULL);
    module_call_init(MODULE_INIT_QOM);
    qemu_add_opts(&qemu_chardev_opts);

    g_test_add_data_func("/colo/frame-writer/roundtrip/plain",
                         GINT_TO_POINTER(0), test_roundtrip);
    g_test_add_data_func("/colo/frame-writer/roundtrip/vnet",
                         GINT_TO_POINTER(1), test_roundtrip);
    g_test_add_func("/colo/frame-writer/refused", test_refused);
    g_test_add_func("/colo/frame-writer/no-peer", test_no_peer);
    g_test_add_func("/colo/frame-writer/slow-peer", test_slow_peer);
    g_test_add_func("/colo/frame-writer/zero-limit", test_zero_limit);
    g_test_add_data_func("/colo/frame-writer/peer-leaves/write-error",
                         GINT_TO_POINTER(0), test_peer_leaves);
    g_test_add_data_func("/colo/frame-writer/peer-leaves/reset",
                         GINT_TO_POINTER(1), test_peer_leaves);
    g_test_add_func("/colo/frame-writer/free-while-queued",
                    test_free_while_queued);
    g_test_add_func("/colo/frame-writer/no-delay", test_no_delay);
    return g_test_run();
}
