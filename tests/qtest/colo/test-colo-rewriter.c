/*
 * qtest of filter-rewriter: frames go through a real netdev and the
 * filter, end to end.
 *
 * Two socket netdevs on one hub stand for the two sides of the SVM's
 * netdev: the filter sits on "client", whose socket plays the clients
 * (frames the PVM mirrors in), and the socket of "guest" plays the SVM
 * (frames it sends arrive at "client" from the hub, as guest output does).
 *
 *   test --A-- [client + filter-rewriter] <-hub-> [guest] --B-- test
 *
 * The secondary's full set-up adds filter-redirectors as upstream's COLO
 * documentation has them: client frames come in on chardev red0 (from the
 * PVM's filter-mirror), SVM output leaves on red1 (to colo-compare).
 *
 *   test --red0--> [client: redirector in, redirector out, rewriter]
 *   test <--red1--                     <-hub-> [guest] --B-- test
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qobject/qdict.h"

enum {
    T_FIN = 0x01,
    T_SYN = 0x02,
    T_RST = 0x04,
    T_ACK = 0x10,
    T_ETH_LEN = 14,
    T_IP4_LEN = 20,
    T_TCP_LEN = 20,
    T_TCP_OFF = T_ETH_LEN + T_IP4_LEN,
};

static const uint8_t ip_guest[4] = { 192, 168, 1, 2 };
static const uint8_t ip_client[4] = { 10, 0, 0, 7 };

typedef struct Rig {
    QTestState *qts;
    int client_in_fd;       /* we write what clients send here */
    int client_out_fd;      /* and read what reaches them here */
    int guest_fd;           /* our end of the "guest" netdev's socket */
    int spare_fds[2];       /* our ends of unused sockets, or -1 */
} Rig;

/* ---- Frames ---- */

static void put16(GByteArray *b, uint16_t v)
{
    uint8_t x[2] = { v >> 8, v & 0xff };

    g_byte_array_append(b, x, 2);
}

static void put32(GByteArray *b, uint32_t v)
{
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    if (n & 1) {
        sum += p[n - 1] << 8;
    }
    return sum;
}

static uint16_t csum_finish(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum & 0xffff;
}

/* An IPv4 TCP frame between the guest and the client, checksums right. */
static GByteArray *tcp_frame(bool from_guest, uint8_t flags, uint32_t seq,
                             uint32_t ack, size_t payload_len)
{
    static const uint8_t macs[12] = {
        0x52, 0x54, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 2
    };
    const uint8_t *src = from_guest ? ip_guest : ip_client;
    const uint8_t *dst = from_guest ? ip_client : ip_guest;
    size_t tcp_len = T_TCP_LEN + payload_len;
    GByteArray *b = g_byte_array_new();
    uint32_t sum;
    uint16_t csum;

    g_byte_array_append(b, macs, sizeof(macs));
    put16(b, 0x0800);
    put32(b, 0x45000000 | (T_IP4_LEN + tcp_len));
    put32(b, 0x00014000);
    put32(b, 0x40060000);
    g_byte_array_append(b, src, 4);
    g_byte_array_append(b, dst, 4);
    csum = csum_finish(sum16(0, b->data + T_ETH_LEN, T_IP4_LEN));
    b->data[T_ETH_LEN + 10] = csum >> 8;
    b->data[T_ETH_LEN + 11] = csum & 0xff;

    put32(b, from_guest ? (80u << 16) | 40000 : (40000u << 16) | 80);
    put32(b, seq);
    put32(b, ack);
    put16(b, (5 << 12) | flags);
    put32(b, 65535u << 16);     /* window, checksum 0 for now */
    put16(b, 0);                /* urgent pointer */
    for (size_t i = 0; i < payload_len; i++) {
        uint8_t c = 'A' + i % 26;

        g_byte_array_append(b, &c, 1);
    }
    sum = sum16(0, src, 4);
    sum = sum16(sum, dst, 4);
    sum += 6 + tcp_len;
    csum = csum_finish(sum16(sum, b->data + T_TCP_OFF, tcp_len));
    b->data[T_TCP_OFF + 16] = csum >> 8;
    b->data[T_TCP_OFF + 17] = csum & 0xff;
    return b;
}

/* ---- Socket netdev framing: be32 length, then the frame ---- */

static void send_frame(int fd, const void *data, size_t len)
{
    uint32_t be_len = htonl(len);

    g_assert_cmpint(send(fd, &be_len, 4, 0), ==, 4);
    g_assert_cmpint(send(fd, data, len, 0), ==, len);
}

static GByteArray *recv_frame(int fd)
{
    GByteArray *b = g_byte_array_new();
    uint32_t be_len;
    size_t len;

    g_assert_cmpint(recv(fd, &be_len, 4, MSG_WAITALL), ==, 4);
    len = ntohl(be_len);
    g_assert_cmpuint(len, <, 65536);
    g_byte_array_set_size(b, len);
    g_assert_cmpint(recv(fd, b->data, len, MSG_WAITALL), ==, len);
    return b;
}

/*
 * Send @in into one side; what comes out of the other side must be @want
 * (the netdev may pad a short frame behind it).
 */
static void expect_through(int in_fd, int out_fd, const GByteArray *in,
                           const GByteArray *want)
{
    g_autoptr(GByteArray) out = NULL;

    send_frame(in_fd, in->data, in->len);
    out = recv_frame(out_fd);
    g_assert_cmpuint(out->len, >=, want->len);
    g_assert_cmpmem(out->data, want->len, want->data, want->len);
}

/* A segment from the client, and what the guest must get. */
static void to_guest(Rig *r, uint8_t flags, uint32_t seq, uint32_t ack,
                     uint32_t want_ack, size_t payload_len)
{
    g_autoptr(GByteArray) in = tcp_frame(false, flags, seq, ack, payload_len);
    g_autoptr(GByteArray) want = tcp_frame(false, flags, seq, want_ack,
                                           payload_len);

    expect_through(r->client_in_fd, r->guest_fd, in, want);
}

/* A segment from the guest, and what the client side must get. */
static void from_guest(Rig *r, uint8_t flags, uint32_t seq, uint32_t ack,
                       uint32_t want_seq, size_t payload_len)
{
    g_autoptr(GByteArray) in = tcp_frame(true, flags, seq, ack, payload_len);
    g_autoptr(GByteArray) want = tcp_frame(true, flags, want_seq, ack,
                                           payload_len);

    expect_through(r->guest_fd, r->client_out_fd, in, want);
}

/* ---- QEMU ---- */

/* A socket pair: QEMU gets one end (returned), we keep the other. */
static int rig_socket(int *ours)
{
    int sv[2];
    struct timeval tv = { .tv_sec = 60 };

    g_assert_cmpint(socketpair(PF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    /* A wedged filter fails the test instead of hanging it. */
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *ours = sv[0];
    return sv[1];
}

static const char rig_netdevs[] =
    "-nodefaults "
    "-netdev socket,id=client,fd=%d "
    "-netdev hubport,id=hc,hubid=0,netdev=client "
    "-netdev socket,id=guest,fd=%d "
    "-netdev hubport,id=hg,hubid=0,netdev=guest ";

static void rig_started(Rig *r, const int *theirs, int n)
{
    for (int i = 0; i < n; i++) {
        close(theirs[i]);
    }
    qtest_qmp_assert_success(r->qts, "{ 'execute': 'query-status' }");
}

/* The rig in a VM started with @machine_args, e.g. a COLO secondary. */
static void rig_start_vm(Rig *r, const char *machine_args,
                         const char *filter_args)
{
    g_autofree char *args = g_strconcat(machine_args, " ", rig_netdevs,
                                        "%s", NULL);
    int theirs[2];

    theirs[0] = rig_socket(&r->client_in_fd);
    theirs[1] = rig_socket(&r->guest_fd);
    r->client_out_fd = r->client_in_fd;
    r->spare_fds[0] = r->spare_fds[1] = -1;
    r->qts = qtest_initf(args, theirs[0], theirs[1], filter_args);
    rig_started(r, theirs, 2);
}

static void rig_start(Rig *r, const char *filter_args)
{
    rig_start_vm(r, "-machine none", filter_args);
}

/*
 * The secondary as upstream documents it; @filter_args may add the
 * rewriter, which then sits behind both redirectors.
 */
static void rig_start_secondary(Rig *r, const char *filter_args)
{
    g_autofree char *args = g_strconcat("-machine none ", rig_netdevs,
        "-chardev socket,id=red0,fd=%d -chardev socket,id=red1,fd=%d "
        "-object filter-redirector,id=f1,netdev=client,queue=tx,indev=red0 "
        "-object filter-redirector,id=f2,netdev=client,queue=rx,outdev=red1 "
        "%s", NULL);
    int theirs[4];

    theirs[0] = rig_socket(&r->spare_fds[0]);
    theirs[1] = rig_socket(&r->guest_fd);
    theirs[2] = rig_socket(&r->client_in_fd);
    theirs[3] = rig_socket(&r->client_out_fd);
    r->spare_fds[1] = r->client_out_fd;
    r->qts = qtest_initf(args, theirs[0], theirs[1], theirs[2], theirs[3],
                         filter_args);
    rig_started(r, theirs, 4);
}

static void rig_stop(Rig *r)
{
    qtest_quit(r->qts);
    close(r->client_in_fd);
    close(r->guest_fd);
    for (int i = 0; i < 2; i++) {
        if (r->spare_fds[i] >= 0) {
            close(r->spare_fds[i]);
        }
    }
}

static uint64_t counter(Rig *r, const char *id, const char *name)
{
    g_autofree char *path = g_strdup_printf("/objects/%s", id);
    g_autoptr(QDict) resp = qtest_qmp(r->qts,
        "{ 'execute': 'qom-get', 'arguments': "
        "{ 'path': %s, 'property': %s } }", path, name);

    g_assert_true(qdict_haskey(resp, "return"));
    return qdict_get_int(resp, "return");
}

/*
 * Client opens: SYN, SVM's SYN-ACK with ISN 1000, the client's ACK of the
 * PVM's ISN 50000.  Then data both ways, rewritten by 49000.
 */
static void handshake_and_data(Rig *r)
{
    const uint32_t svm = 1000, pvm = 50000;

    to_guest(r, T_SYN, 7, 0, 0, 0);
    from_guest(r, T_SYN | T_ACK, svm, 8, svm, 0);
    to_guest(r, T_ACK, 8, pvm + 1, svm + 1, 0);
    to_guest(r, T_ACK, 8, pvm + 1, svm + 1, 120);
    from_guest(r, T_ACK, svm + 1, 128, pvm + 1, 700);
    to_guest(r, T_ACK, 128, pvm + 701, svm + 701, 0);
}

static void test_end_to_end(void)
{
    Rig r;

    rig_start(&r, "-object filter-rewriter,id=rw0,netdev=client,queue=all");
    handshake_and_data(&r);
    g_assert_cmpuint(counter(&r, "rw0", "tracked-connections"), ==, 1);
    g_assert_cmpuint(counter(&r, "rw0", "rewritten-packets"), ==, 4);

    /* Both FINs, both acked: the connection is closed. */
    from_guest(&r, T_FIN | T_ACK, 1701, 128, 50701, 0);
    to_guest(&r, T_FIN | T_ACK, 128, 50702, 1702, 0);
    from_guest(&r, T_ACK, 1702, 129, 50702, 0);
    g_assert_cmpuint(counter(&r, "rw0", "closed-connections"), ==, 1);
    rig_stop(&r);
}

/* The filter can come and go while frames flow. */
static void test_object_add_del(void)
{
    Rig r;

    rig_start(&r, "");
    to_guest(&r, T_ACK, 1, 2, 2, 10);
    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'rw1', "
        "  'netdev': 'client', 'queue': 'all' } }");
    handshake_and_data(&r);
    g_assert_cmpuint(counter(&r, "rw1", "rewritten-packets"), ==, 4);

    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-del', 'arguments': { 'id': 'rw1' } }");
    /* Nothing rewrites the SVM's numbers any more. */
    from_guest(&r, T_ACK, 1701, 128, 1701, 5);

    /* A new filter adopts the running connection with offset 0. */
    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'rw2', "
        "  'netdev': 'client', 'queue': 'all' } }");
    from_guest(&r, T_ACK, 1706, 128, 1706, 5);
    to_guest(&r, T_ACK, 128, 1711, 1711, 0);
    g_assert_cmpuint(counter(&r, "rw2", "tracked-connections"), ==, 1);
    g_assert_cmpuint(counter(&r, "rw2", "rewritten-packets"), ==, 0);
    rig_stop(&r);
}

/* The property upstream has; a socket netdev has no vnet header. */
static void test_vnet_hdr_support(void)
{
    Rig r;

    rig_start(&r, "-object filter-rewriter,id=rw0,netdev=client,queue=all,"
              "vnet_hdr_support=on");
    handshake_and_data(&r);
    g_assert_cmpuint(counter(&r, "rw0", "rewritten-packets"), ==, 4);
    rig_stop(&r);
}

/*
 * On the secondary, between the redirectors: client frames injected from
 * red0 get their ack rewritten, the SVM's output leaves on red1 with the
 * PVM's seq.  The rewriter can be added and removed while it runs.
 */
static void test_secondary_chain(void)
{
    Rig r;

    rig_start_secondary(&r, "-object filter-rewriter,id=rw0,"
                        "netdev=client,queue=all");
    handshake_and_data(&r);
    g_assert_cmpuint(counter(&r, "rw0", "rewritten-packets"), ==, 4);

    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-del', 'arguments': { 'id': 'rw0' } }");
    from_guest(&r, T_ACK, 1701, 128, 1701, 5);
    to_guest(&r, T_ACK, 128, 50706, 50706, 0);

    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'rw1', "
        "  'netdev': 'client', 'queue': 'all' } }");
    /*
     * The old connection is adopted as it is, then reset: its ports open
     * a new one, whose offset is learned afresh.
     */
    from_guest(&r, T_ACK, 1706, 128, 1706, 5);
    to_guest(&r, T_RST, 128, 0, 0, 0);
    handshake_and_data(&r);
    g_assert_cmpuint(counter(&r, "rw1", "rewritten-packets"), ==, 4);
    g_assert_cmpuint(counter(&r, "rw1", "closed-connections"), ==, 1);
    rig_stop(&r);
}

/* ---- Under COLO: checkpoint and failover events ---- */

/* A machine small and quick to checkpoint under TCG. */
#define COLO_VM "-machine pc -accel tcg -m 32M"
/* Longer than the test: checkpoints happen only when asked for. */
#define COLO_NO_CHECKPOINT_MS 3600000
/* Bound on waits for QEMU; passing never depends on it. */
#define COLO_POLLS 6000
#define COLO_POLL_US (10 * 1000)

typedef struct ColoPair {
    QTestState *pvm;
    Rig svm;                /* the rig runs on the secondary */
    char *dir;
    char *sock;
} ColoPair;

static void colo_set_caps(QTestState *qts)
{
    qtest_qmp_assert_success(qts,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ { 'capability': 'x-colo', 'state': true } ] } }");
}

static void colo_set_delay(QTestState *qts, int64_t ms)
{
    qtest_qmp_assert_success(qts,
        "{ 'execute': 'migrate-set-parameters', 'arguments': "
        "{ 'x-checkpoint-delay': %" PRId64 " } }", ms);
}

static bool colo_in_mode(QTestState *qts, const char *mode)
{
    g_autoptr(QDict) rsp = qtest_qmp_assert_success_ref(qts,
        "{ 'execute': 'query-colo-status' }");

    return g_str_equal(qdict_get_str(rsp, "mode"), mode);
}

static bool colo_vm_running(QTestState *qts)
{
    g_autoptr(QDict) rsp = qtest_qmp_assert_success_ref(qts,
        "{ 'execute': 'query-status' }");

    return qdict_get_bool(rsp, "running");
}

static void colo_wait_mode(QTestState *qts, const char *mode)
{
    for (int i = 0; !colo_in_mode(qts, mode); i++) {
        g_assert_cmpint(i, <, COLO_POLLS);
        g_usleep(COLO_POLL_US);
    }
}

/*
 * Once the SVM runs, it has loaded the first state and its filters heard
 * of it; a reply to query-status also brings in every event before it.
 */
static void colo_wait_svm_running(QTestState *svm)
{
    for (int i = 0; !colo_vm_running(svm); i++) {
        g_assert_cmpint(i, <, COLO_POLLS);
        g_usleep(COLO_POLL_US);
    }
}

static void colo_drop_events(QTestState *qts, const char *name)
{
    QDict *ev;

    while ((ev = qtest_qmp_event_ref(qts, name))) {
        qobject_unref(ev);
    }
}

/*
 * A PVM and an SVM in COLO, no checkpoint due, the rig on the SVM with
 * the rewriter rw0 on "client" and another COLO-unaware filter, "other",
 * on "guest".
 */
static void colo_pair_start(ColoPair *p)
{
    g_autofree char *uri = NULL;

    p->dir = g_dir_make_tmp("colo-rewriter-XXXXXX", NULL);
    p->sock = g_strdup_printf("%s/mig", p->dir);
    uri = g_strconcat("unix:", p->sock, NULL);
    p->pvm = qtest_init(COLO_VM " -nodefaults");
    rig_start_vm(&p->svm, COLO_VM " -incoming defer",
                 "-object filter-rewriter,id=rw0,netdev=client,queue=all "
                 "-object filter-buffer,id=other,netdev=guest,interval=1000");
    colo_set_caps(p->pvm);
    colo_set_caps(p->svm.qts);
    colo_set_delay(p->pvm, COLO_NO_CHECKPOINT_MS);
    qtest_qmp_assert_success(p->svm.qts,
        "{ 'execute': 'migrate-incoming', 'arguments': { 'uri': %s } }", uri);
    qtest_qmp_assert_success(p->pvm,
        "{ 'execute': 'migrate', 'arguments': { 'uri': %s } }", uri);
    colo_wait_mode(p->pvm, "primary");
    colo_wait_mode(p->svm.qts, "secondary");
    colo_wait_svm_running(p->svm.qts);
}

static void colo_pair_stop(ColoPair *p)
{
    qtest_quit(p->pvm);
    rig_stop(&p->svm);
    unlink(p->sock);
    g_rmdir(p->dir);
    g_free(p->sock);
    g_free(p->dir);
}

/*
 * At least one checkpoint, now: a short delay re-arms the primary's
 * timer.  One more may follow before the long delay is back.
 */
static void colo_checkpoint(ColoPair *p)
{
    QTestState *svm = p->svm.qts;

    colo_drop_events(svm, "STOP");
    colo_drop_events(svm, "RESUME");
    colo_set_delay(p->pvm, 1);
    qtest_qmp_eventwait(svm, "STOP");
    qtest_qmp_eventwait(svm, "RESUME");
    colo_set_delay(p->pvm, COLO_NO_CHECKPOINT_MS);
}

/* Fail over on the SVM; filters have been told once COLO is left. */
static void colo_svm_failover(ColoPair *p)
{
    qtest_qmp_assert_success(p->svm.qts,
                             "{ 'execute': 'x-colo-lost-heartbeat' }");
    colo_wait_mode(p->svm.qts, "none");
}

static char *filter_status(Rig *r, const char *id)
{
    g_autofree char *path = g_strdup_printf("/objects/%s", id);
    g_autoptr(QDict) rsp = qtest_qmp(r->qts,
        "{ 'execute': 'qom-get', 'arguments': "
        "{ 'path': %s, 'property': 'status' } }", path);

    return g_strdup(qdict_get_str(rsp, "return"));
}

static void assert_filter_status(Rig *r, const char *id, const char *want)
{
    g_autofree char *status = filter_status(r, id);

    g_assert_cmpstr(status, ==, want);
}

/*
 * After a checkpoint the SVM has the PVM's TCP state: nothing is
 * rewritten.  With no connection left that needs it, the rewriter turns
 * off at failover like the other filters.
 */
static void test_colo_checkpoint(void)
{
    ColoPair p;
    Rig *r = &p.svm;

    colo_pair_start(&p);
    handshake_and_data(r);
    colo_checkpoint(&p);
    to_guest(r, T_ACK, 128, 50701, 50701, 10);
    from_guest(r, T_ACK, 50701, 138, 50701, 10);
    g_assert_cmpuint(counter(r, "rw0", "rewritten-packets"), ==, 4);
    g_assert_cmpuint(counter(r, "rw0", "tracked-connections"), ==, 1);

    colo_svm_failover(&p);
    assert_filter_status(r, "rw0", "off");
    assert_filter_status(r, "other", "off");
    colo_pair_stop(&p);
}

/*
 * At failover the rewriter stays on for the connection that has an
 * offset, while other filters turn off as usual; a connection opened
 * afterwards is left alone.
 */
static void test_colo_failover(void)
{
    ColoPair p;
    Rig *r = &p.svm;

    colo_pair_start(&p);
    handshake_and_data(r);
    colo_svm_failover(&p);
    assert_filter_status(r, "rw0", "on");
    assert_filter_status(r, "other", "off");
    from_guest(r, T_ACK, 1701, 128, 50701, 3);
    to_guest(r, T_ACK, 128, 50704, 1704, 0);

    /*
     * Its ports reused: that SYN is counted as untracked, and with no
     * connection left, later frames are not even looked at.
     */
    to_guest(r, T_RST, 128, 0, 0, 0);
    to_guest(r, T_SYN, 9000, 0, 0, 0);
    g_assert_cmpuint(counter(r, "rw0", "untracked-packets"), ==, 1);
    g_assert_cmpuint(counter(r, "rw0", "tracked-connections"), ==, 0);
    from_guest(r, T_SYN | T_ACK, 555, 9001, 555, 0);
    to_guest(r, T_ACK, 9001, 99, 99, 0);
    g_assert_cmpuint(counter(r, "rw0", "rewritten-packets"), ==, 6);
    colo_pair_stop(&p);
}

/* Bad frames are counted and pass unchanged; the filter keeps working. */
static void test_bad_frames(void)
{
    g_autoptr(GByteArray) good = tcp_frame(true, T_ACK, 1, 2, 30);
    g_autoptr(GByteArray) arp = g_byte_array_new();
    static const uint8_t arp_hdr[14] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 8, 6
    };
    Rig r;

    rig_start(&r, "-object filter-rewriter,id=rw0,netdev=client,queue=all");
    for (size_t len = 20; len < good->len; len += 7) {
        g_autoptr(GByteArray) cut = g_byte_array_sized_new(len);

        g_byte_array_append(cut, good->data, len);
        expect_through(r.guest_fd, r.client_out_fd, cut, cut);
    }
    g_assert_cmpuint(counter(&r, "rw0", "malformed-packets"), ==,
                     (good->len - 20 + 6) / 7);

    g_byte_array_append(arp, arp_hdr, sizeof(arp_hdr));
    g_byte_array_set_size(arp, 60);
    expect_through(r.client_in_fd, r.guest_fd, arp, arp);
    g_assert_cmpuint(counter(&r, "rw0", "non-tcp-packets"), ==, 1);
    g_assert_cmpuint(counter(&r, "rw0", "tracked-connections"), ==, 0);

    handshake_and_data(&r);
    rig_stop(&r);
}

/* Wrong arguments get an error and leave QEMU running. */
static void test_bad_args(void)
{
    Rig r;
    QDict *resp;

    rig_start(&r, "");
    resp = qtest_qmp(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'x', 'netdev': 'nope' } }");
    g_assert_true(qdict_haskey(resp, "error"));
    qobject_unref(resp);
    resp = qtest_qmp(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'x', 'netdev': 'client', "
        "  'vnet_hdr_support': 'maybe' } }");
    g_assert_true(qdict_haskey(resp, "error"));
    qobject_unref(resp);
    /* The counters are read-only. */
    qtest_qmp_assert_success(r.qts,
        "{ 'execute': 'object-add', 'arguments': "
        "{ 'qom-type': 'filter-rewriter', 'id': 'ok', 'netdev': 'client' } }");
    resp = qtest_qmp(r.qts,
        "{ 'execute': 'qom-set', 'arguments': "
        "{ 'path': '/objects/ok', 'property': 'rewritten-packets', "
        "  'value': 1 } }");
    g_assert_true(qdict_haskey(resp, "error"));
    qobject_unref(resp);
    to_guest(&r, T_ACK, 1, 2, 2, 0);
    rig_stop(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/colo-rewriter/end-to-end", test_end_to_end);
    qtest_add_func("/colo-rewriter/object-add-del", test_object_add_del);
    qtest_add_func("/colo-rewriter/vnet-hdr-support", test_vnet_hdr_support);
    qtest_add_func("/colo-rewriter/secondary-chain", test_secondary_chain);
    qtest_add_func("/colo-rewriter/bad-frames", test_bad_frames);
    qtest_add_func("/colo-rewriter/colo-checkpoint", test_colo_checkpoint);
    qtest_add_func("/colo-rewriter/colo-failover", test_colo_failover);
    qtest_add_func("/colo-rewriter/bad-args", test_bad_args);
    return g_test_run();
}
