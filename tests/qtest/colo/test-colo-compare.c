/*
 * qtests of colo-compare over socket chardevs.
 *
 * The test plays both VMs: it writes framed packets into primary_in and
 * secondary_in and reads what colo-compare lets out on outdev.  Whether a
 * checkpoint was asked for is read from the object's counters (outside
 * COLO the request itself goes nowhere), or, with notify_dev, from the
 * message a Xen toolstack would get.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qemu/iov.h"
#include "qemu/sockets.h"
#include "../../unit/colo/colo-test-frames.h"

/* How long a read may wait before the test calls it missing. */
#define READ_TIMEOUT_S  20

typedef struct Rig {
    QTestState *qts;
    int pri;            /* the test's end of primary_in */
    int sec;            /* ... of secondary_in */
    int out;            /* ... of outdev */
    int notify;         /* ... of notify_dev, or -1 */
    bool vnet;
} Rig;

static int chardev_pair(int *ours)
{
    int sv[2];
    struct timeval tv = { .tv_sec = READ_TIMEOUT_S };

    /* Not qemu_socketpair(): QEMU must inherit sv[1] across exec. */
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_cmpint(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
                               sizeof(tv)), ==, 0);
    *ours = sv[0];
    return sv[1];
}

/* colo-compare that lets a packet wait @timeout_ms for its partner. */
static void rig_start_timeout(Rig *r, int timeout_ms, const char *extra,
                              bool vnet, bool notify)
{
    int pri = chardev_pair(&r->pri);
    int sec = chardev_pair(&r->sec);
    int out = chardev_pair(&r->out);
    int ntf = notify ? chardev_pair(&r->notify) : -1;
    g_autofree char *notify_opts = notify ?
        g_strdup_printf("-chardev socket,id=ntf,fd=%d ", ntf) :
        g_strdup("");

    r->notify = notify ? r->notify : -1;
    r->vnet = vnet;
    r->qts = qtest_initf(
        "-M none -nodefaults "
        "-chardev socket,id=pri,fd=%d "
        "-chardev socket,id=sec,fd=%d "
        "-chardev socket,id=out,fd=%d "
        "%s"
        "-object iothread,id=iot "
        "-object colo-compare,id=cmp,primary_in=pri,secondary_in=sec,"
        "outdev=out,iothread=iot,compare_timeout=%d,expired_scan_cycle=50,"
        "vnet_hdr_support=%s%s%s",
        pri, sec, out, notify_opts, timeout_ms, vnet ? "on" : "off",
        notify ? ",notify_dev=ntf" : "", extra ? extra : "");
    close(pri);
    close(sec);
    close(out);
    if (notify) {
        close(ntf);
    }
}

/* colo-compare with small timeouts so that the tests run fast. */
static void rig_start(Rig *r, const char *extra, bool vnet, bool notify)
{
    rig_start_timeout(r, 600, extra, vnet, notify);
}

static void rig_stop(Rig *r)
{
    qtest_quit(r->qts);
    close(r->pri);
    close(r->sec);
    close(r->out);
    if (r->notify >= 0) {
        close(r->notify);
    }
}

static void send_raw(int fd, const void *buf, size_t len)
{
    g_assert_cmpint(qemu_send_full(fd, buf, len), ==, len);
}

/* One frame, framed as the COLO filters do; consumes @frame. */
static void send_frame(Rig *r, int fd, GByteArray *frame)
{
    uint32_t be_len, be_vnet = cpu_to_be32(12);
    uint8_t vnet_hdr[12] = { 0 };

    if (r->vnet) {
        g_byte_array_prepend(frame, vnet_hdr, sizeof(vnet_hdr));
    }
    be_len = cpu_to_be32(frame->len);
    send_raw(fd, &be_len, 4);
    if (r->vnet) {
        send_raw(fd, &be_vnet, 4);
    }
    send_raw(fd, frame->data, frame->len);
    g_byte_array_unref(frame);
}

/* Fails the test on EOF or after READ_TIMEOUT_S without data. */
static void recv_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_error("recv: %s", n < 0 ? strerror(errno) : "end of stream");
        }
        got += n;
    }
}

/* The next frame on @fd; with a vnet header, it is stripped after checking. */
static GByteArray *recv_frame(Rig *r, int fd, bool vnet)
{
    uint32_t len, vnet_len;
    GByteArray *b;

    recv_full(fd, &len, 4);
    len = be32_to_cpu(len);
    g_assert_cmpuint(len, >, 0);
    g_assert_cmpuint(len, <, 70000);
    if (vnet) {
        recv_full(fd, &vnet_len, 4);
        g_assert_cmpuint(be32_to_cpu(vnet_len), ==, 12);
    }
    b = g_byte_array_sized_new(len);
    g_byte_array_set_size(b, len);
    recv_full(fd, b->data, len);
    if (vnet) {
        g_byte_array_remove_range(b, 0, 12);
    }
    return b;
}

static void expect_frame(Rig *r, GByteArray *expect)
{
    g_autoptr(GByteArray) got = recv_frame(r, r->out, r->vnet);

    g_assert_cmpmem(got->data, got->len, expect->data, expect->len);
    g_byte_array_unref(expect);
}

/* Nothing more arrives on @fd within @ms. */
static void expect_silence(int fd, int ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    g_assert_cmpint(poll(&pfd, 1, ms), ==, 0);
}

static uint64_t counter(Rig *r, const char *name)
{
    QDict *rsp = qtest_qmp(r->qts,
        "{'execute': 'qom-get', 'arguments': "
        "{'path': '/objects/cmp', 'property': %s}}", name);
    uint64_t v;

    g_assert(qdict_haskey(rsp, "return"));
    v = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    return v;
}

/* Counters move in the iothread: poll until @name reaches @want. */
static void wait_counter(Rig *r, const char *name, uint64_t want)
{
    for (int i = 0; i < READ_TIMEOUT_S * 100; i++) {
        if (counter(r, name) >= want) {
            g_assert_cmpuint(counter(r, name), ==, want);
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("counter %s never reached %" PRIu64 " (it is %" PRIu64 ")",
            name, want, counter(r, name));
}

static const TfFlow web = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 },
    .sport = 80, .dport = 41000,
};

/* Same answer from both VMs: released in order, no checkpoint wanted. */
static void run_identical(bool vnet)
{
    Rig r;

    rig_start(&r, NULL, vnet, false);
    send_frame(&r, r.pri, tf_tcp(&web, 100, 7, TF_SYN | TF_ACK, NULL));
    send_frame(&r, r.pri, tf_tcp(&web, 101, 7, TF_ACK | TF_PSH, "GET "));
    send_frame(&r, r.pri, tf_tcp(&web, 105, 7, TF_ACK | TF_PSH, "done"));
    /* The secondary's ISN differs; its data is cut differently. */
    send_frame(&r, r.sec, tf_tcp(&web, 99999, 7, TF_SYN | TF_ACK, NULL));
    send_frame(&r, r.sec, tf_tcp(&web, 101, 7, TF_ACK, "GET do"));
    send_frame(&r, r.sec, tf_tcp(&web, 107, 7, TF_ACK, "ne"));

    expect_frame(&r, tf_tcp(&web, 100, 7, TF_SYN | TF_ACK, NULL));
    expect_frame(&r, tf_tcp(&web, 101, 7, TF_ACK | TF_PSH, "GET "));
    expect_frame(&r, tf_tcp(&web, 105, 7, TF_ACK | TF_PSH, "done"));
    g_assert_cmpuint(counter(&r, "matched"), ==, 3);
    g_assert_cmpuint(counter(&r, "checkpoint-requests"), ==, 0);
    g_assert_cmpuint(counter(&r, "primary-packets"), ==, 3);
    g_assert_cmpuint(counter(&r, "secondary-packets"), ==, 3);
    rig_stop(&r);
}

static void test_identical(void)
{
    run_identical(false);
}

static void test_identical_vnet(void)
{
    run_identical(true);
}

/* A differing payload asks for a checkpoint; the packet is not lost. */
static void test_mismatch(void)
{
    Rig r;

    rig_start(&r, NULL, false, false);
    send_frame(&r, r.pri, tf_udp(&web, "primary", 7, 1));
    send_frame(&r, r.sec, tf_udp(&web, "PRIMARY", 7, 1));
    wait_counter(&r, "checkpoint-requests", 1);
    g_assert_cmpuint(counter(&r, "mismatches"), ==, 1);
    /* No checkpoint comes outside COLO: the timeout lets it out. */
    expect_frame(&r, tf_udp(&web, "primary", 7, 1));
    g_assert_cmpuint(counter(&r, "released-unmatched"), ==, 1);
    rig_stop(&r);
}

/* An answer the secondary never gives goes out after compare_timeout. */
static void test_timeout(void)
{
    Rig r;
    gint64 start;

    rig_start(&r, NULL, false, false);
    start = g_get_monotonic_time();
    send_frame(&r, r.pri, tf_icmp_echo(&web, 3, "lonely"));
    expect_frame(&r, tf_icmp_echo(&web, 3, "lonely"));
    /* Not before its time (600 ms), whatever the machine's load. */
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 600 * 1000);
    g_assert_cmpuint(counter(&r, "timeouts"), ==, 1);
    g_assert_cmpuint(counter(&r, "checkpoint-requests"), ==, 1);
    rig_stop(&r);
}

/* With notify_dev, the request goes to that chardev as a Xen message. */
static void test_notify_dev(void)
{
    Rig r;
    g_autoptr(GByteArray) msg = NULL;

    rig_start(&r, NULL, false, true);
    send_frame(&r, r.pri, tf_udp(&web, "a", 1, 1));
    send_frame(&r, r.sec, tf_udp(&web, "b", 1, 1));
    msg = recv_frame(&r, r.notify, false);
    g_assert_cmpmem(msg->data, msg->len, "DO_CHECKPOINT", 13);
    rig_stop(&r);
}

/* One framed string on notify_dev, as the Xen toolstack sends them. */
static void send_notify(Rig *r, const char *msg)
{
    uint32_t be_len = cpu_to_be32(strlen(msg));

    send_raw(r->notify, &be_len, 4);
    send_raw(r->notify, msg, strlen(msg));
}

static void expect_notify(Rig *r, const char *msg)
{
    g_autoptr(GByteArray) got = recv_frame(r, r->notify, false);

    g_assert_cmpmem(got->data, got->len, msg, strlen(msg));
}

/*
 * The toolstack's side of notify_dev: its hello is answered, and its
 * COLO_CHECKPOINT is the checkpoint that a held packet waits for.
 */
static void test_notify_dev_xen(void)
{
    Rig r;

    rig_start(&r, NULL, false, true);
    send_notify(&r, "COLO_USERSPACE_PROXY_INIT");
    expect_notify(&r, "COLO_COMPARE_GET_XEN_INIT");
    /* The first checkpoint: from now on the secondary is a replica. */
    send_notify(&r, "COLO_CHECKPOINT");
    wait_counter(&r, "checkpoints", 1);

    send_frame(&r, r.pri, tf_udp(&web, "held", 4, 1));
    expect_notify(&r, "DO_CHECKPOINT");
    expect_silence(r.out, 1000);
    g_assert_cmpuint(counter(&r, "held-for-checkpoint"), ==, 1);
    send_notify(&r, "COLO_CHECKPOINT");
    expect_frame(&r, tf_udp(&web, "held", 4, 1));
    g_assert_cmpuint(counter(&r, "released-at-checkpoint"), ==, 1);
    g_assert_cmpuint(counter(&r, "checkpoints"), ==, 2);
    rig_stop(&r);
}

/*
 * A checkpoint lets out everything that waited for it at once, more than
 * outdev's reader takes in one go: it all arrives, nothing is dropped.
 */
#define BURST_PACKETS   96
#define BURST_PAYLOAD   (60 * 1024)

static void test_release_burst(void)
{
    g_autofree char *payload = g_malloc(BURST_PAYLOAD);
    Rig r;

    rig_start(&r, NULL, false, true);
    send_notify(&r, "COLO_CHECKPOINT");
    wait_counter(&r, "checkpoints", 1);
    for (int i = 0; i < BURST_PACKETS; i++) {
        memset(payload, 'a' + i % 26, BURST_PAYLOAD);
        send_frame(&r, r.pri, tf_udp(&web, payload, BURST_PAYLOAD, i));
    }
    expect_notify(&r, "DO_CHECKPOINT");
    wait_counter(&r, "held-for-checkpoint", BURST_PACKETS);
    /* Some 5.6 MiB at once, read by nobody yet. */
    send_notify(&r, "COLO_CHECKPOINT");
    wait_counter(&r, "released-at-checkpoint", BURST_PACKETS);
    for (int i = 0; i < BURST_PACKETS; i++) {
        memset(payload, 'a' + i % 26, BURST_PAYLOAD);
        expect_frame(&r, tf_udp(&web, payload, BURST_PAYLOAD, i));
    }
    g_assert_cmpuint(counter(&r, "out-dropped"), ==, 0);
    rig_stop(&r);
}

/*
 * A secondary that sends on thousands of flows the primary never used
 * cannot push out the connection of a primary packet that waits for its
 * partner: that packet still leaves matched, nothing is evicted, and the
 * secondary's own flows make room for each other.
 */
#define INVENTED_FLOWS  5000

static void test_secondary_flood(void)
{
    Rig r;

    /* Protected (a checkpoint has committed), and a timeout out of reach. */
    rig_start_timeout(&r, 60000, NULL, false, true);
    send_notify(&r, "COLO_CHECKPOINT");
    wait_counter(&r, "checkpoints", 1);
    send_frame(&r, r.pri, tf_udp(&web, "answer", 6, 1));
    for (int i = 0; i < INVENTED_FLOWS; i++) {
        TfFlow fl = web;

        fl.dport = 1024 + i;
        fl.sport = 81;
        send_frame(&r, r.sec, tf_udp(&fl, "made up", 7, 1));
    }
    send_frame(&r, r.sec, tf_udp(&web, "answer", 6, 1));
    expect_frame(&r, tf_udp(&web, "answer", 6, 1));
    g_assert_cmpuint(counter(&r, "matched"), ==, 1);
    g_assert_cmpuint(counter(&r, "evictions"), ==, 0);
    g_assert_cmpuint(counter(&r, "checkpoint-requests"), ==, 0);
    g_assert_cmpuint(counter(&r, "secondary-evictions"), >, 0);
    g_assert_cmpuint(counter(&r, "connections"), <, INVENTED_FLOWS / 4);
    rig_stop(&r);
}

/* Garbage in the framing is counted and the stream goes on after it. */
static void test_bad_framing(void)
{
    Rig r;
    uint32_t huge = cpu_to_be32(0x7fffffff), zero = 0;

    rig_start(&r, NULL, false, false);
    send_raw(r.pri, &huge, 4);
    send_raw(r.pri, &zero, 4);
    send_frame(&r, r.pri, tf_udp(&web, "after", 5, 1));
    send_frame(&r, r.sec, tf_udp(&web, "after", 5, 1));
    expect_frame(&r, tf_udp(&web, "after", 5, 1));
    g_assert_cmpuint(counter(&r, "bad-framing"), ==, 2);
    g_assert_cmpuint(counter(&r, "checkpoint-requests"), ==, 0);

    /* A frame too short for Ethernet: passed on, counted, no crash. */
    send_frame(&r, r.pri, g_byte_array_append(g_byte_array_new(),
                                              (const uint8_t *)"xyz", 3));
    expect_frame(&r, g_byte_array_append(g_byte_array_new(),
                                         (const uint8_t *)"xyz", 3));
    g_assert_cmpuint(counter(&r, "malformed"), ==, 1);
    rig_stop(&r);
}

/* Deleting the object with packets held releases them and keeps QEMU up. */
static void test_object_del(void)
{
    Rig r;
    QDict *rsp;

    rig_start(&r, NULL, false, false);
    send_frame(&r, r.pri, tf_udp(&web, "held", 4, 1));
    wait_counter(&r, "primary-packets", 1);
    rsp = qtest_qmp(r.qts, "{'execute': 'object-del', "
                           "'arguments': {'id': 'cmp'}}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    expect_frame(&r, tf_udp(&web, "held", 4, 1));
    /* Input after deletion goes nowhere and hurts nothing. */
    send_frame(&r, r.pri, tf_udp(&web, "late", 4, 1));
    expect_silence(r.out, 200);
    rsp = qtest_qmp(r.qts, "{'execute': 'query-status'}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    rig_stop(&r);
}

static void expect_add_error(QTestState *qts, const char *args,
                             const char *needle)
{
    g_autofree char *json = g_strdup_printf(
        "{'qom-type': 'colo-compare', 'id': 'bad', %s}", args);
    QObject *obj = qobject_from_json(json, &error_abort);
    QDict *rsp = qtest_qmp(qts, "{'execute': 'object-add', 'arguments': %p}",
                           obj);
    const char *desc;

    g_assert(qdict_haskey(rsp, "error"));
    desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    if (!strstr(desc, needle)) {
        g_error("error '%s' does not mention '%s'", desc, needle);
    }
    qobject_unref(rsp);
}

static void test_bad_properties(void)
{
    g_autofree char *dir = g_dir_make_tmp("colo-compare-XXXXXX", NULL);
    QTestState *qts;
    QDict *rsp;

    g_assert(dir);
    qts = qtest_initf("-M none -nodefaults -object iothread,id=iot "
                      "-chardev null,id=n1 "
                      "-chardev socket,id=s1,path=%s/s1,server=on,wait=off "
                      "-chardev socket,id=s2,path=%s/s2,server=on,wait=off "
                      "-chardev socket,id=s3,path=%s/s3,server=on,wait=off",
                      dir, dir, dir);
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's1', "
                          "'outdev': 's3', 'iothread': 'iot'",
                     "must be different");
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's2', "
                          "'outdev': 'nope', 'iothread': 'iot'",
                     "nope");
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's2', "
                          "'outdev': 's3', 'iothread': 'iot', "
                          "'compare_timeout': 0",
                     "greater than 0");
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's2', "
                          "'iothread': 'iot'",
                     "outdev");
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's2', "
                          "'outdev': 's3'",
                     "iothread");
    /* A chardev that cannot run in an iothread is refused, not fatal. */
    expect_add_error(qts, "'primary_in': 's1', 'secondary_in': 's2', "
                          "'outdev': 'n1', 'iothread': 'iot'",
                     "iothread");
    /* The failures left the chardevs free: a good object can use them. */
    rsp = qtest_qmp(qts, "{'execute': 'object-add', 'arguments': "
                         "{'qom-type': 'colo-compare', 'id': 'good', "
                         "'primary_in': 's1', 'secondary_in': 's2', "
                         "'outdev': 's3', 'iothread': 'iot'}}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': "
                         "{'path': '/objects/good', "
                         "'property': 'compare_timeout', 'value': 5}}");
    g_assert(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    /* Its chardev ids read back, and are as fixed as the rest. */
    rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                         "{'path': '/objects/good', "
                         "'property': 'primary_in'}}");
    g_assert_cmpstr(qdict_get_try_str(rsp, "return"), ==, "s1");
    qobject_unref(rsp);
    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': "
                         "{'path': '/objects/good', "
                         "'property': 'outdev', 'value': 's1'}}");
    g_assert(qdict_haskey(rsp, "error"));
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                          "desc"),
                            "'outdev' cannot change"));
    qobject_unref(rsp);
    qtest_quit(qts);
    for (int i = 1; i <= 3; i++) {
        g_autofree char *path = g_strdup_printf("%s/s%d", dir, i);

        unlink(path);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* A reader that went away must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    qtest_add_func("/colo/compare/identical", test_identical);
    qtest_add_func("/colo/compare/identical-vnet", test_identical_vnet);
    qtest_add_func("/colo/compare/mismatch", test_mismatch);
    qtest_add_func("/colo/compare/timeout", test_timeout);
    qtest_add_func("/colo/compare/notify-dev", test_notify_dev);
    qtest_add_func("/colo/compare/notify-dev-xen", test_notify_dev_xen);
    qtest_add_func("/colo/compare/release-burst", test_release_burst);
    qtest_add_func("/colo/compare/secondary-flood", test_secondary_flood);
    qtest_add_func("/colo/compare/bad-framing", test_bad_framing);
    qtest_add_func("/colo/compare/object-del", test_object_del);
    qtest_add_func("/colo/compare/bad-properties", test_bad_properties);
    return g_test_run();
}
