/*
 * QTests for the COLO filters filter-mirror and filter-redirector.
 *
 * Every test runs one QEMU with this network, built without a guest:
 *
 *   test a <-> netdev n0 <-> hubport hp0 <-> hub 0 <-> hubport hp1
 *                                                  <-> netdev n1 <-> test b
 *
 * The filters sit on n0, so queue=tx sees what the test writes to a (on its
 * way to b) and queue=rx what the test writes to b (on its way to a).  The
 * chardevs c0..c3 are socket pairs whose other ends the test holds; s0 is a
 * listening unix socket the test may connect to, or not.  Both netdev sockets
 * carry be32-length-framed packets, like the COLO frames without vnet header.
 *
 * A packet that must not arrive somewhere is checked by sending a second one
 * along the same path afterwards and seeing it arrive first.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "qemu/sockets.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qapi/error.h"

#define NCHR 4
#define PKT_LEN 64
/* Guards against a hang, not a timing check. */
#define RECV_TIMEOUT_S 60

typedef struct Topo {
    QTestState *qts;
    int a;              /* the test's end of netdev n0 */
    int b;              /* the test's end of netdev n1 */
    int chr[NCHR];      /* the test's ends of chardevs c0..c3 */
    char *dir;
    char *s0_path;      /* listening chardev s0 */
} Topo;

static int socket_pair(int *qemu_end)
{
    int sv[2];
    struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };

    g_assert_cmpint(socketpair(PF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_cmpint(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
                               sizeof(tv)), ==, 0);
    *qemu_end = sv[1];
    return sv[0];
}

/* Start QEMU with the network above and @filters (QEMU options). */
static void topo_start(Topo *t, const char *filters)
{
    int qa, qb, qc[NCHR];
    int i;
    g_autofree char *cmd = NULL;

    t->a = socket_pair(&qa);
    t->b = socket_pair(&qb);
    for (i = 0; i < NCHR; i++) {
        t->chr[i] = socket_pair(&qc[i]);
    }
    t->dir = g_dir_make_tmp("colo-filters-XXXXXX", NULL);
    g_assert(t->dir);
    t->s0_path = g_build_filename(t->dir, "s0.sock", NULL);

    cmd = g_strdup_printf(
        "-nodefaults -M none "
        "-netdev socket,id=n0,fd=%d "
        "-netdev hubport,id=hp0,hubid=0,netdev=n0 "
        "-netdev socket,id=n1,fd=%d "
        "-netdev hubport,id=hp1,hubid=0,netdev=n1 "
        "-chardev socket,id=c0,fd=%d -chardev socket,id=c1,fd=%d "
        "-chardev socket,id=c2,fd=%d -chardev socket,id=c3,fd=%d "
        "-chardev socket,id=s0,path=%s,server=on,wait=off %s",
        qa, qb, qc[0], qc[1], qc[2], qc[3], t->s0_path, filters);
    t->qts = qtest_init(cmd);

    close(qa);
    close(qb);
    for (i = 0; i < NCHR; i++) {
        close(qc[i]);
    }
}

static void topo_stop(Topo *t)
{
    int i;

    qtest_quit(t->qts);
    close(t->a);
    close(t->b);
    for (i = 0; i < NCHR; i++) {
        close(t->chr[i]);
    }
    unlink(t->s0_path);
    rmdir(t->dir);
    g_free(t->s0_path);
    g_free(t->dir);
}

static void assert_alive(QTestState *qts)
{
    qtest_qmp_assert_success(qts, "{'execute': 'query-status'}");
}

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(n, >, 0);
        p += n;
        len -= n;
    }
}

static void recv_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = recv(fd, p, len, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        /* Fails on timeout (-1 EAGAIN) or EOF (0). */
        g_assert_cmpint(n, >, 0);
        p += n;
        len -= n;
    }
}

/*
 * Wait until QEMU has read everything the test wrote to @fd; the QMP round
 * trip then lets the handler that read the last bytes finish.
 */
static void wait_consumed(QTestState *qts, int fd)
{
    int i, unread = -1;

    for (i = 0; i < RECV_TIMEOUT_S * 100; i++) {
        g_assert_cmpint(ioctl(fd, SIOCOUTQ, &unread), ==, 0);
        if (!unread) {
            break;
        }
        g_usleep(10 * 1000);
    }
    g_assert_cmpint(unread, ==, 0);
    assert_alive(qts);
}

static void fill_packet(uint8_t *pkt, size_t len, uint8_t tag)
{
    size_t i;

    for (i = 0; i < len; i++) {
        pkt[i] = tag + i;
    }
}

/* Write a frame: be32 length, [be32 vnet header length], payload. */
static void send_frame(int fd, bool vnet, uint32_t vnet_hdr_len,
                       const uint8_t *payload, uint32_t len)
{
    uint8_t hdr[8];

    stl_be_p(hdr, len);
    stl_be_p(hdr + 4, vnet_hdr_len);
    send_all(fd, hdr, vnet ? 8 : 4);
    send_all(fd, payload, len);
}

static void send_packet(int fd, uint8_t tag)
{
    uint8_t pkt[PKT_LEN];

    fill_packet(pkt, sizeof(pkt), tag);
    send_frame(fd, false, 0, pkt, sizeof(pkt));
}

/* Read one frame and check it is the packet tagged @tag. */
static void expect_frame(int fd, bool vnet, uint32_t vnet_hdr_len,
                         uint8_t tag)
{
    uint8_t hdr[8], want[PKT_LEN], got[PKT_LEN];

    recv_all(fd, hdr, vnet ? 8 : 4);
    g_assert_cmpuint(ldl_be_p(hdr), ==, PKT_LEN);
    if (vnet) {
        g_assert_cmpuint(ldl_be_p(hdr + 4), ==, vnet_hdr_len);
    }
    recv_all(fd, got, PKT_LEN);
    fill_packet(want, sizeof(want), tag);
    g_assert(memcmp(got, want, PKT_LEN) == 0);
}

static void expect_packet(int fd, uint8_t tag)
{
    expect_frame(fd, false, 0, tag);
}

static int64_t qom_get_int(QTestState *qts, const char *id, const char *prop)
{
    g_autofree char *path = g_strdup_printf("/objects/%s", id);
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                           "{'path': %s, 'property': %s}}", path, prop);
    int64_t value;

    g_assert(qdict_haskey(rsp, "return"));
    value = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    return value;
}

/* Run a QMP command that must fail; return its error description. */
static char * G_GNUC_PRINTF(2, 3) qmp_error(QTestState *qts,
                                            const char *fmt, ...)
{
    va_list ap;
    QDict *rsp;
    QDict *err;
    char *desc;

    va_start(ap, fmt);
    rsp = qtest_vqmp(qts, fmt, ap);
    va_end(ap);

    g_assert(rsp);
    err = qdict_get_qdict(rsp, "error");
    g_assert(err);
    desc = g_strdup(qdict_get_str(err, "desc"));
    qobject_unref(rsp);
    return desc;
}

/* filter-mirror copies to outdev and lets the packet go on. */
static void test_mirror(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    g_autofree char *opts = g_strdup_printf(
        "-object filter-mirror,id=f0,netdev=n0,queue=tx,outdev=c0%s",
        vnet ? ",vnet_hdr_support=on" : "");
    Topo t;

    topo_start(&t, opts);
    send_packet(t.a, 1);
    /* The socket netdev has no vnet header: its length is sent as 0. */
    expect_frame(t.chr[0], vnet, 0, 1);
    expect_packet(t.b, 1);
    send_packet(t.a, 2);
    expect_packet(t.b, 2);
    expect_frame(t.chr[0], vnet, 0, 2);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out"), ==, 2);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "bytes-out"), ==, 2 * PKT_LEN);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out-dropped"), ==, 0);
    topo_stop(&t);
}

/* queue=rx: only the traffic towards n0's backend is mirrored. */
static void test_mirror_rx(void)
{
    Topo t;

    topo_start(&t, "-object filter-mirror,id=f0,netdev=n0,queue=rx,"
               "outdev=c0");
    send_packet(t.a, 1);
    expect_packet(t.b, 1);
    send_packet(t.b, 2);
    expect_packet(t.a, 2);
    /* The tx packet 1 was not mirrored: 2 is the first frame. */
    expect_frame(t.chr[0], false, 0, 2);
    topo_stop(&t);
}

/* A redirector with outdev swallows; turned off, it lets packets pass. */
static void test_redirector_out_and_status(void)
{
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "outdev=c0");
    send_packet(t.a, 1);
    expect_frame(t.chr[0], false, 0, 1);

    qtest_qmp_assert_success(t.qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': '/objects/f0', 'property': 'status', "
                             "'value': 'off'}}");
    send_packet(t.a, 2);
    /* 1 never reached b: 2 is the first packet there. */
    expect_packet(t.b, 2);

    qtest_qmp_assert_success(t.qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': '/objects/f0', 'property': 'status', "
                             "'value': 'on'}}");
    send_packet(t.a, 3);
    expect_frame(t.chr[0], false, 0, 3);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out"), ==, 2);
    topo_stop(&t);
}

/*
 * indev injects into the chain in the filter's direction; the next
 * redirector sends it to its outdev.
 */
static void test_redirector_chain(gconstpointer opaque)
{
    const char *queue = opaque;
    bool rx = !strcmp(queue, "rx");
    g_autofree char *in = g_strdup_printf(
        "-object filter-redirector,id=in,netdev=n0,queue=%s,indev=c0 ",
        queue);
    g_autofree char *out = g_strdup_printf(
        "-object filter-redirector,id=out,netdev=n0,queue=%s,outdev=c1 ",
        queue);
    /* rx walks the chain backwards: "out" must come first to be next. */
    g_autofree char *opts = rx ? g_strconcat(out, in, NULL) :
                                 g_strconcat(in, out, NULL);
    Topo t;

    topo_start(&t, opts);
    send_packet(t.chr[0], 6);
    send_packet(t.chr[0], 7);
    expect_frame(t.chr[1], false, 0, 6);
    expect_frame(t.chr[1], false, 0, 7);
    g_assert_cmpint(qom_get_int(t.qts, "in", "frames-in"), ==, 2);
    g_assert_cmpint(qom_get_int(t.qts, "out", "frames-out"), ==, 2);
    topo_stop(&t);
}

/* Injected frames leave through the right side of the netdev. */
static void test_redirector_inject(gconstpointer opaque)
{
    const char *queue = opaque;
    bool rx = !strcmp(queue, "rx");
    g_autofree char *opts = g_strdup_printf(
        "-object filter-redirector,id=f0,netdev=n0,queue=%s,indev=c0",
        queue);
    Topo t;

    topo_start(&t, opts);
    send_packet(t.chr[0], 9);
    /* rx: towards n0's backend; tx and all: from n0 towards the hub. */
    expect_packet(rx ? t.a : t.b, 9);
    /* Traffic still passes: the filter has no outdev. */
    send_packet(t.a, 10);
    expect_packet(t.b, 10);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in"), ==, 1);
    topo_stop(&t);
}

/* A frame's vnet header is adapted to the netdev's (none here). */
static void test_redirector_inject_vnet(void)
{
    uint8_t frame[10 + PKT_LEN];
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "indev=c0,vnet_hdr_support=on");
    memset(frame, 0xee, 10);
    fill_packet(frame + 10, PKT_LEN, 20);
    send_frame(t.chr[0], true, 10, frame, sizeof(frame));
    expect_packet(t.b, 20);
    topo_stop(&t);
}

/* While off, indev is not read; its frames come through once on again. */
static void test_redirector_in_status(void)
{
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "indev=c0,status=off");
    send_packet(t.chr[0], 30);
    send_packet(t.a, 31);
    expect_packet(t.b, 31);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in"), ==, 0);
    qtest_qmp_assert_success(t.qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': '/objects/f0', 'property': 'status', "
                             "'value': 'on'}}");
    expect_packet(t.b, 30);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in"), ==, 1);
    topo_stop(&t);
}

/* A frame for a netdev side with nobody on it is counted, not crashed on. */
static void test_redirector_inject_no_peer(void)
{
    Topo t;

    /* A hub port without netdev= has no peer. */
    topo_start(&t, "-netdev hubport,id=n2,hubid=1 "
               "-object filter-redirector,id=f0,netdev=n2,queue=tx,indev=c0");
    send_packet(t.chr[0], 40);
    /* The frame is handled before the QMP command is read. */
    assert_alive(t.qts);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in-dropped"), ==, 1);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in"), ==, 0);
    topo_stop(&t);
}

static void object_add(QTestState *qts, const char *args)
{
    g_autofree char *json = g_strdup_printf("{%s}", args);

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', "
                             "'arguments': %p}",
                             qobject_from_json(json, &error_abort));
}

static void object_del(QTestState *qts, const char *id)
{
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments': "
                             "{'id': %s}}", id);
}

/* object-add with position=id=...,insert=before, and object-del. */
static void test_runtime_add_del(void)
{
    Topo t;

    topo_start(&t, "-object filter-redirector,id=out,netdev=n0,queue=tx,"
               "outdev=c1");
    /* in: injects just before "out". */
    object_add(t.qts, "'qom-type': 'filter-redirector', 'id': 'in', "
               "'netdev': 'n0', 'queue': 'tx', 'indev': 'c0', "
               "'position': 'id=out', 'insert': 'before'");
    /* mir: before "in", so it sees traffic from a but not injected frames. */
    object_add(t.qts, "'qom-type': 'filter-mirror', 'id': 'mir', "
               "'netdev': 'n0', 'queue': 'tx', 'outdev': 'c2', "
               "'position': 'id=in', 'insert': 'before'");

    send_packet(t.chr[0], 50);
    expect_frame(t.chr[1], false, 0, 50);
    send_packet(t.a, 51);
    expect_frame(t.chr[2], false, 0, 51);       /* 50 was not mirrored */
    expect_frame(t.chr[1], false, 0, 51);

    object_del(t.qts, "mir");
    object_del(t.qts, "in");
    send_packet(t.a, 52);
    expect_frame(t.chr[1], false, 0, 52);

    /* The chardevs were released: they can serve new filters. */
    object_add(t.qts, "'qom-type': 'filter-mirror', 'id': 'mir2', "
               "'netdev': 'n0', 'queue': 'tx', 'outdev': 'c0', "
               "'position': 'head'");
    send_packet(t.a, 53);
    expect_frame(t.chr[0], false, 0, 53);
    expect_frame(t.chr[1], false, 0, 53);
    g_assert_cmpint(qom_get_int(t.qts, "out", "frames-out"), ==, 4);
    object_del(t.qts, "mir2");
    object_del(t.qts, "out");
    send_packet(t.a, 54);
    expect_packet(t.b, 54);
    topo_stop(&t);
}

/* Garbage on indev is counted; a valid frame after it still arrives. */
static void test_redirector_garbage(void)
{
    static const uint8_t garbage[] = {
        0, 0, 0, 0,                 /* length 0 */
        0xff, 0xff, 0xff, 0xff,     /* far too long */
        0x00, 0x02, 0x00, 0x00,     /* 128 KiB: still too long */
    };
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "indev=c0");
    send_all(t.chr[0], garbage, sizeof(garbage));
    send_packet(t.chr[0], 60);
    expect_packet(t.b, 60);
    assert_alive(t.qts);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in-bad"), ==, 3);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in"), ==, 1);
    topo_stop(&t);
}

/* vnet_hdr_len larger than the frame is a framing error too. */
static void test_redirector_garbage_vnet(void)
{
    uint8_t pkt[PKT_LEN], hdr[8];
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "indev=c0,vnet_hdr_support=on");
    fill_packet(pkt, sizeof(pkt), 61);
    /* A header alone: 64 bytes, 65 of them vnet header. */
    stl_be_p(hdr, PKT_LEN);
    stl_be_p(hdr + 4, PKT_LEN + 1);
    send_all(t.chr[0], hdr, sizeof(hdr));
    send_frame(t.chr[0], true, 0, pkt, PKT_LEN);
    expect_packet(t.b, 61);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in-bad"), ==, 1);
    topo_stop(&t);
}

/* Wait until chardev s0 is (dis)connected, as QEMU sees it. */
static void wait_s0(Topo *t, bool connected)
{
    int i;

    for (i = 0; i < RECV_TIMEOUT_S * 100; i++) {
        if (qtest_qom_get_bool(t->qts, "/chardevs/s0", "connected") ==
            connected) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_assert_not_reached();
}

static int connect_s0(Topo *t)
{
    struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
    int fd = unix_connect(t->s0_path, NULL);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                               sizeof(tv)), ==, 0);
    wait_s0(t, true);
    return fd;
}

/* A reconnecting indev peer starts on a frame boundary. */
static void test_redirector_in_reconnect(void)
{
    uint8_t half[4 + 10];
    Topo t;
    int fd;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "indev=s0");
    fd = connect_s0(&t);
    stl_be_p(half, PKT_LEN);
    memset(half + 4, 0x77, 10);
    send_all(fd, half, sizeof(half));
    close(fd);
    wait_s0(&t, false);

    fd = connect_s0(&t);
    send_packet(fd, 70);
    expect_packet(t.b, 70);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-in-bad"), ==, 0);
    close(fd);
    topo_stop(&t);
}

/* Nobody reads outdev: frames are dropped and counted, QEMU stays up. */
static void test_outdev_absent(void)
{
    Topo t;
    int i;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "outdev=s0");
    for (i = 0; i < 5; i++) {
        send_packet(t.a, 80 + i);
    }
    /* Packets swallowed by the redirector never show up at b. */
    wait_consumed(t.qts, t.a);
    qtest_qmp_assert_success(t.qts, "{'execute': 'qom-set', 'arguments': "
                             "{'path': '/objects/f0', 'property': 'status', "
                             "'value': 'off'}}");
    send_packet(t.a, 90);
    expect_packet(t.b, 90);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out-dropped"), ==, 5);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out"), ==, 0);
    topo_stop(&t);
}

typedef struct Writer {
    int fd;
    int count;
    int len;
} Writer;

/* Writes @count numbered frames of @len bytes, however long that blocks. */
static gpointer writer_run(gpointer opaque)
{
    Writer *w = opaque;
    g_autofree uint8_t *pkt = g_malloc(w->len);

    memset(pkt, 0xab, w->len);
    for (int i = 0; i < w->count; i++) {
        stl_be_p(pkt, i);
        send_frame(w->fd, false, 0, pkt, w->len);
    }
    return NULL;
}

/* Read @count frames of @len bytes from @fd: all there, in order. */
static void expect_numbered(int fd, int count, int len)
{
    g_autofree uint8_t *got = g_malloc(len);
    uint8_t hdr[4];

    for (int i = 0; i < count; i++) {
        recv_all(fd, hdr, 4);
        g_assert_cmpuint(ldl_be_p(hdr), ==, len);
        recv_all(fd, got, len);
        g_assert_cmpuint(got[len - 1], ==, 0xab);
        g_assert_cmpuint(ldl_be_p(got), ==, i);
    }
}

static void wait_held(Topo *t, const char *id)
{
    for (int i = 0; i < RECV_TIMEOUT_S * 100; i++) {
        if (qom_get_int(t->qts, id, "frames-out-held") > 0) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_assert_not_reached();
}

/* Every frame @w wrote reaches outdev's reader, in order; none dropped. */
static void expect_all_out(Topo *t, const Writer *w)
{
    expect_numbered(t->chr[0], w->count, w->len);
    g_assert_cmpint(qom_get_int(t->qts, "f0", "frames-out-dropped"), ==, 0);
    g_assert_cmpint(qom_get_int(t->qts, "f0", "frames-out"), ==, w->count);
}

/*
 * A connected outdev reader that does not read for a while: once the
 * queue is full the redirector holds its sender back (a socket netdev
 * stops reading), and when the reader reads again every frame arrives,
 * in order; nothing is dropped, and the monitor answers meanwhile.
 */
static void test_outdev_slow_holds_sender(void)
{
    Writer w = { .count = 4000, .len = 1400 };
    GThread *thread;
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "outdev=c0");
    w.fd = t.a;
    thread = g_thread_new("writer", writer_run, &w);
    wait_held(&t, "f0");
    assert_alive(t.qts);
    expect_all_out(&t, &w);
    g_thread_join(thread);
    topo_stop(&t);
}

/*
 * The same from a sender that cannot be held back (the hub gives no
 * sent_cb, like e1000): its packets wait in the redirector, up to 4 MiB,
 * and arrive in order.
 */
static void test_outdev_slow_holds_packets(void)
{
    Writer w = { .count = 2000, .len = 1400 };
    GThread *thread;
    Topo t;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=rx,"
               "outdev=c0");
    w.fd = t.b;
    thread = g_thread_new("writer", writer_run, &w);
    g_thread_join(thread);
    /* QEMU read it all, the reader nothing: most of it is held. */
    wait_consumed(t.qts, t.b);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out-held"), >, 0);
    expect_all_out(&t, &w);
    topo_stop(&t);
}

/*
 * An outdev reader that leaves with frames queued for it, and its sender
 * held back: the frames are dropped, the sender goes on (into the void),
 * and the next reader starts on a frame boundary.
 */
static void test_outdev_reconnect(void)
{
    Writer w = { .count = 2000, .len = 1400 };
    GThread *thread;
    Topo t;
    int fd;

    topo_start(&t, "-object filter-redirector,id=f0,netdev=n0,queue=tx,"
               "outdev=s0");
    fd = connect_s0(&t);
    w.fd = t.a;
    thread = g_thread_new("writer", writer_run, &w);
    wait_held(&t, "f0");
    close(fd);
    g_thread_join(thread);
    wait_consumed(t.qts, t.a);
    wait_s0(&t, false);
    g_assert_cmpint(qom_get_int(t.qts, "f0", "frames-out") +
                    qom_get_int(t.qts, "f0", "frames-out-dropped"), ==,
                    w.count);

    fd = connect_s0(&t);
    send_packet(t.a, 110);
    expect_frame(fd, false, 0, 110);
    close(fd);
    topo_stop(&t);
}

static void test_bad_properties(void)
{
    Topo t;
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    g_autofree char *e5 = NULL, *e6 = NULL, *e7 = NULL;

    topo_start(&t, "-object filter-mirror,id=ok,netdev=n0,outdev=c0");
    e1 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-mirror', 'id': 'x1', "
                   "'netdev': 'n0'}}");
    g_assert(strstr(e1, "outdev"));
    e2 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-redirector', 'id': 'x2', "
                   "'netdev': 'n0', 'indev': 'c1', 'outdev': 'c1'}}");
    g_assert(strstr(e2, "different"));
    e3 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-mirror', 'id': 'x3', "
                   "'netdev': 'n0', 'outdev': 'nosuch'}}");
    g_assert(strstr(e3, "'nosuch' not found"));
    e4 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-redirector', 'id': 'x4', "
                   "'netdev': 'n0'}}");
    g_assert(strstr(e4, "indev"));
    e5 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-redirector', 'id': 'x5', "
                   "'netdev': 'n0', 'indev': 'nosuch'}}");
    g_assert(strstr(e5, "'nosuch' not found"));
    /* c0 already has a frontend: the "ok" filter. */
    e6 = qmp_error(t.qts, "{'execute': 'object-add', 'arguments': "
                   "{'qom-type': 'filter-redirector', 'id': 'x6', "
                   "'netdev': 'n0', 'indev': 'c0'}}");
    g_assert(strstr(e6, "in use"));
    e7 = qmp_error(t.qts, "{'execute': 'qom-set', 'arguments': "
                   "{'path': '/objects/ok', 'property': 'outdev', "
                   "'value': 'c1'}}");
    g_assert(strstr(e7, "cannot be changed"));

    /* None of the failed filters is left half-made: c1 is free. */
    object_add(t.qts, "'qom-type': 'filter-redirector', 'id': 'y', "
               "'netdev': 'n0', 'queue': 'tx', 'outdev': 'c1'");
    send_packet(t.a, 100);
    expect_frame(t.chr[0], false, 0, 100);
    expect_frame(t.chr[1], false, 0, 100);
    topo_stop(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_data_func("/colo/filters/mirror/plain", GINT_TO_POINTER(0),
                        test_mirror);
    qtest_add_data_func("/colo/filters/mirror/vnet", GINT_TO_POINTER(1),
                        test_mirror);
    qtest_add_func("/colo/filters/mirror/rx", test_mirror_rx);
    qtest_add_func("/colo/filters/redirector/out-status",
                   test_redirector_out_and_status);
    qtest_add_data_func("/colo/filters/redirector/chain/tx", "tx",
                        test_redirector_chain);
    qtest_add_data_func("/colo/filters/redirector/chain/rx", "rx",
                        test_redirector_chain);
    qtest_add_data_func("/colo/filters/redirector/inject/tx", "tx",
                        test_redirector_inject);
    qtest_add_data_func("/colo/filters/redirector/inject/rx", "rx",
                        test_redirector_inject);
    qtest_add_data_func("/colo/filters/redirector/inject/all", "all",
                        test_redirector_inject);
    qtest_add_func("/colo/filters/redirector/inject/vnet",
                   test_redirector_inject_vnet);
    qtest_add_func("/colo/filters/redirector/inject/no-peer",
                   test_redirector_inject_no_peer);
    qtest_add_func("/colo/filters/redirector/in-status",
                   test_redirector_in_status);
    qtest_add_func("/colo/filters/runtime-add-del", test_runtime_add_del);
    qtest_add_func("/colo/filters/redirector/garbage",
                   test_redirector_garbage);
    qtest_add_func("/colo/filters/redirector/garbage-vnet",
                   test_redirector_garbage_vnet);
    qtest_add_func("/colo/filters/redirector/in-reconnect",
                   test_redirector_in_reconnect);
    qtest_add_func("/colo/filters/outdev/absent", test_outdev_absent);
    qtest_add_func("/colo/filters/outdev/slow-holds-sender",
                   test_outdev_slow_holds_sender);
    qtest_add_func("/colo/filters/outdev/slow-holds-packets",
                   test_outdev_slow_holds_packets);
    qtest_add_func("/colo/filters/outdev/reconnect", test_outdev_reconnect);
    qtest_add_func("/colo/filters/bad-properties", test_bad_properties);
    return g_test_run();
}
