/*
 * COLO checkpointing and failover, in the migration-test framework.
 *
 * Both VMs run the framework's boot sector, which keeps dirtying its memory
 * and prints a 'B' on its serial line after every pass.  A test migrates
 * with x-colo, lets COLO checkpoint a few times, then makes one side take
 * over and checks that the right COLO_EXIT comes out and that the survivor
 * keeps running.
 *
 * A side that loses its peer must not go on by itself: it stops its VM,
 * emits COLO_EXIT with reason error and waits in COLO (reason peer-lost)
 * until x-colo-lost-heartbeat, which the tests send after a yank, as the
 * documented procedure does.  Only with colo-auto-failover does it go on
 * at once.
 *
 * Every case runs with the colo-verify capability: each checkpoint compares
 * the secondary's RAM with the primary's, and a difference fails the test.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "qemu/atomic.h"
#include "qemu/bswap.h"
#include "qemu/sockets.h"
#include <poll.h>
#include <netinet/in.h>
#include "../../unit/colo/colo-test-frames.h"

#define COLO_CHECKPOINTS_BEFORE_FAILOVER 3
#define COLO_CHECKPOINT_DELAY_MS 300
/* Generous: a 2-core host running two TCG guests. */
#define COLO_WAIT_US (120 * G_USEC_PER_SEC)
#define COLO_POLL_US (20 * 1000)
/* How long a silent peer is given before COLO gives up on it, in tests. */
#define COLO_PEER_TIMEOUT_MS 3000
/* Long enough to tell a VM that runs from one that is stopped. */
#define COLO_STOPPED_CHECK_US (2 * G_USEC_PER_SEC)

static char *colo_tmpfs;

typedef enum {
    COLO_FAIL_PRIMARY,      /* the primary takes over: secondary lost */
    COLO_FAIL_SECONDARY,    /* the secondary takes over: primary lost */
} ColoSurvivor;

typedef struct {
    const char *machine;
    bool multifd;
    bool return_path;
    ColoSurvivor survivor;
    bool during_checkpoint; /* fail over while the secondary is stopped */
    bool hmp;               /* fail over through the human monitor */
    MemType mem_type;       /* what backs guest RAM */
    bool auto_failover;     /* colo-auto-failover on both sides */
    unsigned peer_timeout_ms;   /* colo-peer-timeout, 0 for the tests' */
    bool compare;           /* a colo-compare on the primary, see below */
    unsigned delay_ms;      /* x-checkpoint-delay, 0 for the tests' */
    int fault;              /* a ColoFault, for colo_test_fault() */
    int phase;              /* a ColoPhase: when the fault strikes */
} ColoTestCase;

/* Long enough that only colo-compare asks for checkpoints. */
#define COLO_NO_PERIODIC_MS (3600 * 1000)

/*
 * With ColoTestCase.compare the primary runs the documented output path:
 * colo-compare, whose output a filter-redirector (indev) injects into the
 * netdev of the VM's NIC.  The test writes what each VM would send into
 * colo-compare's inputs and reads "the wire", the netdev's socket.  Tests
 * run one at a time, so one rig will do.
 */
#define COLO_COMPARE_TIMEOUT_MS 300
/* How long the test waits for a packet that must come out. */
#define COLO_COMPARE_READ_S 60

typedef struct {
    int pri;                /* the test's end of primary_in */
    int sec;                /* ... of secondary_in */
    int out;                /* ... of the NIC's netdev: the wire */
    int qemu_fds[5];        /* QEMU's ends, closed once it has them */
} ColoCompareRig;

static ColoCompareRig colo_rig;

/* What one VM's QMP events told us. */
typedef struct {
    unsigned stops;
    unsigned resumes;
    bool exited;
    char *exit_mode;
    char *exit_reason;
    char *lost_cause;           /* COLO_PEER_LOST's, which precedes exit */
    unsigned mismatches;        /* COLO_VERIFY_MISMATCH events */
    char *mismatch_block;       /* ... the first one's block and offset */
    uint64_t mismatch_offset;
} ColoEvents;

static bool colo_watch_events(QTestState *who, const char *name,
                              QDict *event, void *opaque)
{
    ColoEvents *ev = opaque;

    if (g_str_equal(name, "STOP")) {
        ev->stops++;
        return true;
    }
    if (g_str_equal(name, "RESUME")) {
        ev->resumes++;
        return true;
    }
    if (g_str_equal(name, "COLO_PEER_LOST")) {
        QDict *data = qdict_get_qdict(event, "data");

        g_assert(!ev->exited && !ev->lost_cause);
        ev->lost_cause = g_strdup(qdict_get_str(data, "cause"));
        g_assert(strlen(qdict_get_str(data, "message")));
        return true;
    }
    if (g_str_equal(name, "COLO_EXIT")) {
        QDict *data = qdict_get_qdict(event, "data");

        g_assert(!ev->exited);
        ev->exited = true;
        ev->exit_mode = g_strdup(qdict_get_str(data, "mode"));
        ev->exit_reason = g_strdup(qdict_get_str(data, "reason"));
        return true;
    }
    if (g_str_equal(name, "COLO_VERIFY_MISMATCH")) {
        QDict *data = qdict_get_qdict(event, "data");

        if (!ev->mismatches++) {
            ev->mismatch_block = g_strdup(qdict_get_str(data, "block"));
            ev->mismatch_offset = qdict_get_uint(data, "offset");
        }
        return true;
    }
    return false;
}

static void colo_events_free(ColoEvents *ev)
{
    /* Whatever else a test checked, the replica was exact throughout. */
    g_assert_cmpuint(ev->mismatches, ==, 0);
    g_free(ev->exit_mode);
    g_free(ev->exit_reason);
    g_free(ev->lost_cause);
    g_free(ev->mismatch_block);
}

/* Events arrive only while we talk to QEMU: poke it. */
static void colo_pump_events(QTestState *who)
{
    qobject_unref(qtest_qmp(who, "{ 'execute': 'query-status' }"));
}

static unsigned colo_serial_passes(const char *side)
{
    g_autofree char *path = g_build_filename(colo_tmpfs, side, NULL);
    g_autofree char *text = NULL;
    gsize len = 0;
    unsigned passes = 0;

    if (g_file_get_contents(path, &text, &len, NULL)) {
        for (gsize i = 0; i < len; i++) {
            passes += text[i] == 'B';
        }
    }
    return passes;
}

/* The guest on @side completes at least one more pass over its memory. */
static void colo_assert_progress(const char *side)
{
    unsigned before = colo_serial_passes(side);
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (colo_serial_passes(side) <= before) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(COLO_POLL_US);
    }
}

/* Each checkpoint stops and restarts the secondary VM. */
static void colo_wait_checkpoint(QTestState *to, ColoEvents *ev)
{
    unsigned target = ev->resumes + 1;
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (ev->resumes < target) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_assert(!ev->exited);
        colo_pump_events(to);
        g_usleep(COLO_POLL_US);
    }
}

/*
 * The primary restarts its VM once the secondary is ready: from then on
 * it is between checkpoints until one is due.
 */
static void colo_wait_primary_started(QTestState *from, ColoEvents *ev)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (ev->resumes < 1) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        colo_pump_events(from);
        g_usleep(COLO_POLL_US);
    }
}

static void colo_wait_stop(QTestState *to, ColoEvents *ev)
{
    unsigned target = ev->stops + 1;
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (ev->stops < target) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        colo_pump_events(to);
        g_usleep(1000);
    }
}

static void colo_wait_exit(QTestState *who, ColoEvents *ev)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (!ev->exited) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        colo_pump_events(who);
        g_usleep(COLO_POLL_US);
    }
}

static void colo_assert_status(QTestState *who, const char *mode,
                               const char *last_mode, const char *reason)
{
    QDict *rsp = qtest_qmp_assert_success_ref(who,
                                   "{ 'execute': 'query-colo-status' }");

    g_assert_cmpstr(qdict_get_str(rsp, "mode"), ==, mode);
    g_assert_cmpstr(qdict_get_str(rsp, "last-mode"), ==, last_mode);
    g_assert_cmpstr(qdict_get_str(rsp, "reason"), ==, reason);
    qobject_unref(rsp);
}

/*
 * Both sides enter COLO a moment after the migration status says so, and
 * leave it a moment after a failover is asked for.
 */
static void colo_wait_mode(QTestState *who, const char *mode)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    for (;;) {
        QDict *rsp = qtest_qmp_assert_success_ref(who,
                                       "{ 'execute': 'query-colo-status' }");
        bool reached = g_str_equal(qdict_get_str(rsp, "mode"), mode);

        /* A session that has just begun has nothing to report yet. */
        if (reached && !g_str_equal(mode, "none")) {
            g_assert_cmpstr(qdict_get_str(rsp, "reason"), ==, "none");
        }
        qobject_unref(rsp);
        if (reached) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(COLO_POLL_US);
    }
}

/* At least @checkpoints were verified on @who, all of them equal. */
static void colo_assert_verified(QTestState *who, unsigned checkpoints)
{
    QDict *rsp = qtest_qmp_assert_success_ref(who,
                                   "{ 'execute': 'query-colo-status' }");

    g_assert_cmpuint(qdict_get_try_int(rsp, "verified-checkpoints", 0), >=,
                     checkpoints);
    g_assert_cmpuint(qdict_get_int(rsp, "verify-mismatches"), ==, 0);
    qobject_unref(rsp);
}

static void colo_assert_heartbeat_refused(QTestState *who, const char *why)
{
    QDict *rsp = qtest_qmp_assert_failure_ref(who,
                                  "{ 'execute': 'x-colo-lost-heartbeat' }");

    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==, why);
    qobject_unref(rsp);
}

static void colo_lost_heartbeat(QTestState *who, bool hmp)
{
    if (hmp) {
        g_autofree char *out = qtest_hmp(who, "x_colo_lost_heartbeat");

        g_assert_cmpstr(out, ==, "");
        return;
    }
    qtest_qmp_assert_success(who,
                             "{ 'execute': 'x-colo-lost-heartbeat' }");
}

/* The VM of @who makes no progress: COLO holds it stopped. */
static void colo_assert_frozen(QTestState *who, const char *serial)
{
    QDict *rsp = qtest_qmp_assert_success_ref(who,
                                              "{ 'execute': 'query-status' }");
    unsigned before = colo_serial_passes(serial);

    g_assert_cmpstr(qdict_get_str(rsp, "status"), ==, "colo");
    qobject_unref(rsp);
    g_usleep(COLO_STOPPED_CHECK_US);
    g_assert_cmpuint(colo_serial_passes(serial), ==, before);
}

/*
 * @who waits in COLO with its VM stopped, after one COLO_EXIT with
 * @exit_reason; query-colo-status says @waiting.
 */
static void colo_assert_waiting_as(QTestState *who, ColoEvents *ev,
                                   const char *mode, const char *serial,
                                   const char *exit_reason,
                                   const char *waiting)
{
    colo_wait_exit(who, ev);
    g_assert_cmpstr(ev->exit_mode, ==, mode);
    g_assert_cmpstr(ev->exit_reason, ==, exit_reason);
    colo_assert_status(who, mode, mode, waiting);
    colo_assert_frozen(who, serial);
    /* Still waiting: nothing but a decision moves it. */
    colo_assert_status(who, mode, mode, waiting);
}

/*
 * @who lost its peer: COLO_PEER_LOST and one COLO_EXIT with reason error,
 * and it waits.
 */
static void colo_assert_waiting(QTestState *who, ColoEvents *ev,
                                const char *mode, const char *serial)
{
    colo_assert_waiting_as(who, ev, mode, serial, "error", "peer-lost");
    g_assert(ev->lost_cause);
}

/* The primary ended COLO on purpose: the secondary reports, and waits. */
static void colo_assert_primary_left(QTestState *to, ColoEvents *ev)
{
    colo_assert_waiting_as(to, ev, "secondary", "dest_serial", "request",
                           "peer-left");
    g_assert(!ev->lost_cause);
}

/* The documented decision: yank, then x-colo-lost-heartbeat. */
static void colo_decide(QTestState *who, const char *mode,
                        const char *serial)
{
    qtest_qmp_assert_success(who, "{ 'exec-oob': 'yank', 'id': 'yank1', "
                             "'arguments': { 'instances': "
                             "[ { 'type': 'migration' } ] } }");
    colo_lost_heartbeat(who, false);
    colo_wait_mode(who, "none");
    colo_assert_status(who, "none", mode, "request");
    colo_assert_progress(serial);
}

/* ---- The colo-compare rig ---- */

static int colo_socket_pair(int *ours)
{
    int sv[2];
    struct timeval tv = { .tv_sec = COLO_COMPARE_READ_S };

    /* Not qemu_socketpair(): QEMU must inherit sv[1] across exec. */
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_cmpint(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
                               sizeof(tv)), ==, 0);
    *ours = sv[0];
    return sv[1];
}

/* The same NIC on both sides; only the primary's reaches the test. */
#define COLO_NIC "-device e1000,netdev=hn0,romfile= "

/* The primary's command line for the rig. */
static char *colo_compare_rig_open(void)
{
    ColoCompareRig *r = &colo_rig;
    int out_back;

    r->qemu_fds[0] = colo_socket_pair(&r->pri);
    r->qemu_fds[1] = colo_socket_pair(&r->sec);
    r->qemu_fds[2] = colo_socket_pair(&r->out);
    /* colo-compare's outdev to the redirector's indev, both in QEMU. */
    r->qemu_fds[3] = colo_socket_pair(&out_back);
    r->qemu_fds[4] = out_back;
    return g_strdup_printf(
        "-netdev socket,id=hn0,fd=%d " COLO_NIC
        "-chardev socket,id=cmp-pri,fd=%d "
        "-chardev socket,id=cmp-sec,fd=%d "
        "-chardev socket,id=cmp-out,fd=%d "
        "-chardev socket,id=cmp-back,fd=%d "
        "-object filter-redirector,id=redire0,netdev=hn0,queue=rx,"
        "indev=cmp-back "
        "-object iothread,id=cmp-iot "
        "-object colo-compare,id=cmp,primary_in=cmp-pri,"
        "secondary_in=cmp-sec,outdev=cmp-out,iothread=cmp-iot,"
        "compare_timeout=%d,expired_scan_cycle=50",
        r->qemu_fds[2], r->qemu_fds[0], r->qemu_fds[1], r->qemu_fds[3],
        r->qemu_fds[4], COLO_COMPARE_TIMEOUT_MS);
}

static void colo_compare_rig_started(void)
{
    for (int i = 0; i < ARRAY_SIZE(colo_rig.qemu_fds); i++) {
        close(colo_rig.qemu_fds[i]);
    }
}

static void colo_compare_rig_close(void)
{
    close(colo_rig.pri);
    close(colo_rig.sec);
    close(colo_rig.out);
}

/* One frame into a colo-compare input, framed as the filters do. */
static void colo_compare_send(int fd, GByteArray *frame)
{
    uint32_t be_len = cpu_to_be32(frame->len);

    g_assert_cmpint(qemu_send_full(fd, &be_len, 4), ==, 4);
    g_assert_cmpint(qemu_send_full(fd, frame->data, frame->len), ==,
                    frame->len);
}

/* Whether the wire has something to read within @ms. */
static bool colo_compare_out_ready(int ms)
{
    struct pollfd pfd = { .fd = colo_rig.out, .events = POLLIN };

    return poll(&pfd, 1, ms) == 1;
}

static void colo_compare_recv_full(void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(colo_rig.out, (char *)buf + got, len - got, 0);

        g_assert_cmpint(n, >, 0);   /* EOF or COLO_COMPARE_READ_S passed */
        got += n;
    }
}

/* The next frame on the wire must be @expect. */
static void colo_compare_expect(GByteArray *expect)
{
    uint32_t be_len;
    g_autofree uint8_t *buf = NULL;

    colo_compare_recv_full(&be_len, 4);
    g_assert_cmpuint(be32_to_cpu(be_len), ==, expect->len);
    buf = g_malloc(expect->len);
    colo_compare_recv_full(buf, expect->len);
    g_assert_cmpmem(buf, expect->len, expect->data, expect->len);
}

static uint64_t colo_compare_counter(QTestState *who, const char *name)
{
    QDict *rsp = qtest_qmp(who,
        "{ 'execute': 'qom-get', 'arguments': "
        "{ 'path': '/objects/cmp', 'property': %s } }", name);
    uint64_t value;

    g_assert(qdict_haskey(rsp, "return"));
    value = qdict_get_uint(rsp, "return");

    qobject_unref(rsp);
    return value;
}

/* COLO's start counts as the first checkpoint colo-compare sees. */
static void colo_compare_wait_protected(QTestState *from)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (colo_compare_counter(from, "checkpoints") < 1) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(COLO_POLL_US);
    }
}

/* Start both VMs, ready to migrate with x-colo. */
static void colo_prepare(const ColoTestCase *tc, QTestState **from,
                         QTestState **to, ColoEvents *src_ev,
                         ColoEvents *dst_ev)
{
    /*
     * Both VMs run on this host from the same boot disk; -snapshot keeps
     * them from fighting over its image lock.
     */
    g_autofree char *compare = tc->compare ? colo_compare_rig_open() : NULL;
    g_autofree char *machine = g_strdup_printf("-machine %s -snapshot %s",
                                               tc->machine,
                                               compare ? compare : "");
    g_autofree char *target = g_strdup_printf("-machine %s -snapshot %s",
                                              tc->machine, tc->compare ?
                                              "-netdev hubport,id=hn0,hubid=0 "
                                              COLO_NIC : "");
    MigrateStart args = {
        .hide_stderr = true,
        .oob = true,
        .opts_source = machine,
        .opts_target = target,
        .mem_type = tc->mem_type,
    };

    args.caps[MIGRATION_CAPABILITY_X_COLO] = true;
    args.caps[MIGRATION_CAPABILITY_COLO_VERIFY] = true;
    args.caps[MIGRATION_CAPABILITY_RETURN_PATH] = tc->return_path;
    args.caps[MIGRATION_CAPABILITY_MULTIFD] = tc->multifd;

    /* Deferred: multifd parameters must be set before incoming starts. */
    g_assert_cmpint(migrate_start(from, to, "defer", &args), ==, 0);
    if (tc->compare) {
        colo_compare_rig_started();
    }
    qtest_qmp_set_event_callback(*from, colo_watch_events, src_ev);
    qtest_qmp_set_event_callback(*to, colo_watch_events, dst_ev);

    if (tc->multifd) {
        migrate_set_parameter_int(*from, "multifd-channels", 4);
        migrate_set_parameter_int(*to, "multifd-channels", 4);
    }
    for (int i = 0; i < 2; i++) {
        QTestState *side = i ? *to : *from;

        migrate_set_parameter_int(side, "colo-peer-timeout",
                                  tc->peer_timeout_ms ?: COLO_PEER_TIMEOUT_MS);
        migrate_set_parameter_bool(side, "colo-auto-failover",
                                   tc->auto_failover);
    }
    migrate_incoming_qmp(*to, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_parameter_int(*from, "x-checkpoint-delay",
                              tc->delay_ms ?: COLO_CHECKPOINT_DELAY_MS);
    /* The guest dirties memory as fast as TCG lets it: allow a long stop. */
    migrate_ensure_converge(*from);

    colo_assert_progress("src_serial");
}

/* Migrate to @uri and wait until both sides run COLO. */
static void colo_migrate(QTestState *from, QTestState *to, const char *uri)
{
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "colo", NULL);
    colo_wait_mode(from, "primary");
    colo_wait_mode(to, "secondary");
}

static void colo_start(const ColoTestCase *tc, QTestState **from,
                       QTestState **to, ColoEvents *src_ev,
                       ColoEvents *dst_ev)
{
    g_autofree char *uri = NULL;

    colo_prepare(tc, from, to, src_ev, dst_ev);
    uri = migrate_get_connect_uri(*to);
    colo_migrate(*from, *to, uri);
}

static void colo_test_failover(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to, *survivor, *lost;
    ColoEvents *survivor_ev, *lost_ev;
    const char *survivor_mode, *lost_mode, *survivor_serial, *lost_serial;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);

    for (int i = 0; i < COLO_CHECKPOINTS_BEFORE_FAILOVER; i++) {
        colo_wait_checkpoint(to, &dst_ev);
        colo_assert_progress("src_serial");
        colo_assert_progress("dest_serial");
    }
    colo_assert_status(to, "secondary", "secondary", "none");
    /* The secondary's start may count as one of the resumes we waited for. */
    colo_assert_verified(to, COLO_CHECKPOINTS_BEFORE_FAILOVER - 1);
    colo_assert_verified(from, COLO_CHECKPOINTS_BEFORE_FAILOVER - 2);

    if (tc->survivor == COLO_FAIL_PRIMARY) {
        survivor = from, lost = to;
        survivor_ev = &src_ev, lost_ev = &dst_ev;
        survivor_mode = "primary", lost_mode = "secondary";
        survivor_serial = "src_serial", lost_serial = "dest_serial";
    } else {
        survivor = to, lost = from;
        survivor_ev = &dst_ev, lost_ev = &src_ev;
        survivor_mode = "secondary", lost_mode = "primary";
        survivor_serial = "dest_serial", lost_serial = "src_serial";
    }

    if (tc->during_checkpoint) {
        colo_wait_stop(to, &dst_ev);
    }
    colo_lost_heartbeat(survivor, tc->hmp);

    colo_wait_exit(survivor, survivor_ev);
    g_assert_cmpstr(survivor_ev->exit_mode, ==, survivor_mode);
    g_assert_cmpstr(survivor_ev->exit_reason, ==, "request");
    colo_assert_status(survivor, "none", survivor_mode, "request");

    /*
     * The other side lost its peer in turn.  Nobody told it to go on, so
     * it waits with its VM stopped: one guest runs, not two.  A primary
     * told between two checkpoints says goodbye first; in a checkpoint it
     * cuts the link, and its secondary sees a loss.
     */
    colo_wait_exit(lost, lost_ev);
    if (g_str_equal(lost_ev->exit_reason, "request")) {
        g_assert(tc->survivor == COLO_FAIL_PRIMARY);
        colo_assert_primary_left(lost, lost_ev);
    } else {
        colo_assert_waiting(lost, lost_ev, lost_mode, lost_serial);
    }

    colo_assert_progress(survivor_serial);
    colo_assert_progress(survivor_serial);
    colo_assert_heartbeat_refused(survivor, "VM is not in COLO mode");

    /*
     * A surviving secondary's RAM must be one the guest could have
     * produced: a checkpoint plus its own run, never a mix of pages from
     * different moments.  (A waiting one is stopped: nothing to check.)
     */
    migrate_end(from, to, tc->survivor == COLO_FAIL_SECONDARY);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/*
 * A TCP relay between the primary and the secondary, for every connection
 * of the migration: the main stream and the multifd channels, each
 * direction in its own thread, so that one stalled connection holds up no
 * other, as on a real network.  It can slip garbage into the
 * secondary-to-primary direction of the main stream, stop forwarding
 * altogether while the connections stay up, as a network partition would,
 * or play a sick multifd channel: slow, or one that takes the primary's
 * data and never delivers it.
 *
 * It also follows the main stream towards the secondary closely enough to
 * stop at a given phase of a checkpoint (a breakpoint, see
 * colo_relay_arm()), so that a fault can strike exactly there.
 */
#define COLO_RELAY_MAX_LINKS 8
/*
 * The relay's socket buffers, small: bytes it has taken from the primary
 * but not passed on are acknowledged all the same, and would look to the
 * primary like a secondary that reads.
 */
#define COLO_RELAY_SOCKET_BUFFER (64 * 1024)
/* How often the threads look at the test's wishes; a rate's period. */
#define COLO_RELAY_TICK_MS 50
#define COLO_RELAY_CHUNK (64 * 1024)

typedef enum {
    COLO_LINK_UNKNOWN,          /* the primary has not said what it is */
    COLO_LINK_MAIN,
    COLO_LINK_MULTIFD,
} ColoLinkKind;

/* Where in its life COLO is when a fault strikes. */
typedef enum {
    COLO_PHASE_STEADY,          /* between checkpoints; also: not armed */
    COLO_PHASE_REQUEST,         /* the primary asks, and still runs */
    COLO_PHASE_RAM,             /* the primary is stopped and sends RAM */
    COLO_PHASE_DEVICES,         /* ... and part of its device state */
    COLO_PHASE_LOAD,            /* the secondary has it all, and loads */
    COLO_PHASE__MAX,
} ColoPhase;

static const char *const colo_phase_names[COLO_PHASE__MAX] = {
    [COLO_PHASE_STEADY] = "steady",
    [COLO_PHASE_REQUEST] = "request",
    [COLO_PHASE_RAM] = "ram",
    [COLO_PHASE_DEVICES] = "devices",
    [COLO_PHASE_LOAD] = "load",
};

/*
 * The main stream towards the secondary, as the relay follows it.  A
 * checkpoint is CHECKPOINT_REQUEST, VMSTATE_SEND, dirty RAM and (with
 * colo-verify) a digest, then VMSTATE_SIZE, its size and the device state.
 * Only the message codes and the device state's bounds are parsed; RAM and
 * digest are scanned for the device state's header.
 */
typedef enum {
    COLO_TRACK_LOST,            /* not in step yet: scanning for a header */
    COLO_TRACK_MESSAGES,        /* between checkpoints: 4-byte codes */
    COLO_TRACK_RAM,             /* after VMSTATE_SEND: scanning */
    COLO_TRACK_DEVICES,         /* inside the device state */
} ColoTrackState;

/*
 * The header: VMSTATE_SIZE, a be64 size, then the first device's section
 * header: QEMU_VM_SECTION_FULL, a be32 section id, the idstr's length and
 * the idstr.  In COLO, qemu_save_device_state() writes no file magic in
 * front of it.
 */
#define COLO_WIRE_SECTION_FULL 0x04
#define COLO_HEADER_SIZE_AT 4
#define COLO_HEADER_DEVICES_AT 12     /* where the device state begins */
#define COLO_HEADER_SECTION_ID_AT 13
#define COLO_HEADER_IDSTR_LEN_AT 17
#define COLO_HEADER_IDSTR_AT 18
#define COLO_HEADER_MAX (COLO_HEADER_IDSTR_AT + 255)

typedef struct {
    ColoTrackState state;
    /* The end of what was scanned: a header may begin there. */
    uint8_t tail[COLO_HEADER_MAX - 1];
    size_t tail_len;
    uint64_t size;              /* the device state's */
    uint64_t left;              /* ... bytes still to come */
    unsigned device_states;     /* seen so far */
} ColoTracker;

typedef struct ColoRelay ColoRelay;

typedef struct {
    ColoRelay *relay;
    int src;                    /* from the primary */
    int out;                    /* to the secondary */
    int kind;                   /* atomic, a ColoLinkKind */
    bool swallow;               /* what the primary sends goes nowhere */
    ColoTracker track;          /* the main stream's, by its down thread */
    GThread *down;              /* primary to secondary */
    GThread *up;                /* secondary to primary */
} ColoRelayLink;

struct ColoRelay {
    int listen_fd;
    int dst_port;
    int inject;                 /* atomic: send garbage to the primary once */
    int frozen;                 /* atomic: forward nothing, a partition */
    int frozen_down;            /* atomic: nothing to the secondary */
    int frozen_up;              /* atomic: nothing to the primary */
    int heartbeats;             /* atomic: feed the primary heartbeats */
    int swallow_multifd;        /* atomic: one multifd channel loses all */
    int multifd_rate;           /* atomic: bytes per tick, 0 for no limit */
    int stop;                   /* atomic: the test is done with it */
    int main_state;             /* atomic: the main stream's ColoTrackState */
    int device_states;          /* atomic: how many it carried */
    /* The breakpoint; written under @lock, read atomically. */
    GMutex lock;
    GCond cond;                 /* @held changed */
    int armed;                  /* a ColoPhase to stop at, or steady */
    int ram_on_multifd;         /* RAM is seen on the multifd channels */
    int held;                   /* nothing goes towards the secondary */
    ColoRelayLink links[COLO_RELAY_MAX_LINKS];
    int nlinks;
    GThread *thread;            /* accepts the connections */
};

/* The first bytes of a multifd channel (MULTIFD_MAGIC, big-endian). */
static const uint8_t colo_multifd_magic[4] = { 0x11, 0x22, 0x33, 0x44 };

/*
 * Whether the header of a device state starts at @p, @n bytes long at
 * most; *@len: its length.  Besides the fixed bytes, a size below 4 GiB,
 * a section id below 65536 and a printable idstr: what RAM and digests
 * hardly ever look like.
 */
static bool colo_devices_header(const uint8_t *p, size_t n, size_t *len)
{
    static const uint8_t code_and_high_size[8] = {
        0, 0, 0, COLO_MESSAGE_VMSTATE_SIZE, 0, 0, 0, 0,
    };

    if (n < COLO_HEADER_IDSTR_AT ||
        memcmp(p, code_and_high_size, sizeof(code_and_high_size)) ||
        p[COLO_HEADER_DEVICES_AT] != COLO_WIRE_SECTION_FULL ||
        lduw_be_p(p + COLO_HEADER_SECTION_ID_AT) ||
        !p[COLO_HEADER_IDSTR_LEN_AT]) {
        return false;
    }
    *len = COLO_HEADER_IDSTR_AT + p[COLO_HEADER_IDSTR_LEN_AT];
    /* A device state goes on past its first section's header. */
    if (n < *len || ldq_be_p(p + COLO_HEADER_SIZE_AT) <=
                    *len - COLO_HEADER_DEVICES_AT) {
        return false;
    }
    for (size_t i = COLO_HEADER_IDSTR_AT; i < *len; i++) {
        if (!g_ascii_isgraph(p[i])) {
            return false;
        }
    }
    return true;
}

/* Where in @p, @n bytes, the first whole header starts, or @n. */
static size_t colo_devices_header_find(const uint8_t *p, size_t n,
                                       size_t *len)
{
    size_t at = 0;

    /* The message code's last byte is rare in RAM: look for it first. */
    while (n - at >= COLO_HEADER_IDSTR_AT) {
        const uint8_t *code = memchr(p + at + 3, COLO_MESSAGE_VMSTATE_SIZE,
                                     n - at - 3);

        if (!code) {
            break;
        }
        at = code - 3 - p;
        if (colo_devices_header(p + at, n - at, len)) {
            return at;
        }
        at++;
    }
    return n;
}

static void colo_track_keep_tail(ColoTracker *t, const uint8_t *data,
                                 size_t n)
{
    size_t keep = MIN(n, sizeof(t->tail));

    memcpy(t->tail, data + n - keep, keep);
    t->tail_len = keep;
}

/*
 * RAM, or anything while lost: scan for the device state, across reads.
 * Armed at RAM, stop after the first RAM bytes.
 */
static size_t colo_track_scan(ColoTracker *t, const uint8_t *p, size_t len,
                              ColoPhase armed, bool *hit)
{
    size_t n = t->tail_len + len, hlen = 0, at, ram_len, used;
    g_autofree uint8_t *data = g_malloc(n);

    memcpy(data, t->tail, t->tail_len);
    memcpy(data + t->tail_len, p, len);
    at = colo_devices_header_find(data, n, &hlen);
    ram_len = at < n ? MAX(at, t->tail_len) - t->tail_len : len;
    if (t->state == COLO_TRACK_RAM && armed == COLO_PHASE_RAM && ram_len) {
        *hit = true;
        colo_track_keep_tail(t, data, t->tail_len + ram_len);
        return ram_len;
    }
    if (at == n) {
        colo_track_keep_tail(t, data, n);
        return len;
    }
    /* A header inside what was already scanned would have been found. */
    used = at + hlen - t->tail_len;
    g_assert(at + hlen > t->tail_len);
    t->state = COLO_TRACK_DEVICES;
    t->size = ldq_be_p(data + at + COLO_HEADER_SIZE_AT);
    t->left = t->size - (hlen - COLO_HEADER_DEVICES_AT);
    t->tail_len = 0;
    t->device_states++;
    return used;
}

/*
 * Between checkpoints: one message code at a time, kept back until it is
 * whole.  Armed at the request, stop in front of it.
 */
static size_t colo_track_message(ColoTracker *t, const uint8_t *p,
                                 size_t len, ColoPhase armed, bool *hit)
{
    if (len < 4) {
        return 0;
    }
    switch (ldl_be_p(p)) {
    case COLO_MESSAGE_CHECKPOINT_REQUEST:
        *hit = armed == COLO_PHASE_REQUEST;
        return *hit ? 0 : 4;
    case COLO_MESSAGE_VMSTATE_SEND:
        t->state = COLO_TRACK_RAM;
        t->tail_len = 0;
        return 4;
    case COLO_MESSAGE_HEARTBEAT:
    case COLO_MESSAGE_LEAVING:
        return 4;
    default:
        /* Out of step after all: find the next device state. */
        t->state = COLO_TRACK_LOST;
        t->tail_len = 0;
        return colo_track_scan(t, p, len, armed, hit);
    }
}

/* Armed at the device state, stop halfway; at the load, after it. */
static size_t colo_track_devices(ColoTracker *t, size_t len,
                                 ColoPhase armed, bool *hit)
{
    uint64_t done = t->size - t->left, half = t->size / 2;
    size_t n = MIN(len, t->left);

    if (armed == COLO_PHASE_DEVICES && half < done + n) {
        n = half > done ? half - done : 0;
        *hit = true;
    }
    t->left -= n;
    if (!t->left) {
        t->state = COLO_TRACK_MESSAGES;
        *hit = armed == COLO_PHASE_LOAD;
    }
    return n;
}

/*
 * Follow @len bytes of the main stream; returns how many of them may go
 * on now, 0 (and no *@hit) when it needs more.  *@hit: the @armed phase is
 * reached right after those bytes.
 */
static size_t colo_track(ColoTracker *t, const uint8_t *p, size_t len,
                         ColoPhase armed, bool *hit)
{
    *hit = false;
    switch (t->state) {
    case COLO_TRACK_MESSAGES:
        return colo_track_message(t, p, len, armed, hit);
    case COLO_TRACK_DEVICES:
        return colo_track_devices(t, len, armed, hit);
    default:
        return colo_track_scan(t, p, len, armed, hit);
    }
}

/* Whether nothing may go towards the secondary now. */
static bool colo_relay_down_shut(ColoRelay *r)
{
    return qatomic_read(&r->frozen) || qatomic_read(&r->frozen_down) ||
           qatomic_read(&r->held);
}

static bool colo_relay_up_shut(ColoRelay *r)
{
    return qatomic_read(&r->frozen) || qatomic_read(&r->frozen_up);
}

/* Whether @fd can be read within a tick; false while its way is @shut. */
static bool colo_relay_readable(int fd, bool shut)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    if (shut) {
        g_usleep(COLO_RELAY_TICK_MS * 1000);
        return false;
    }
    return poll(&pfd, 1, COLO_RELAY_TICK_MS) == 1;
}

static bool colo_relay_send(int to, const uint8_t *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = send(to, buf + done, len - done, MSG_NOSIGNAL);

        if (w <= 0) {
            return false;
        }
        done += w;
    }
    return true;
}

/* Read up to @max bytes from @from and write them to @to (-1: nowhere). */
static ssize_t colo_relay_forward(int from, int to, size_t max)
{
    uint8_t buf[COLO_RELAY_CHUNK];
    ssize_t n = read(from, buf, MIN(sizeof(buf), max));

    if (n <= 0 || (to >= 0 && !colo_relay_send(to, buf, n))) {
        return -1;
    }
    return n;
}

/* Tell the main stream from a multifd channel by its first bytes. */
static ColoLinkKind colo_relay_classify(ColoRelay *r, int src)
{
    uint8_t head[4];

    while (!qatomic_read(&r->stop)) {
        ssize_t n;

        if (!colo_relay_readable(src, colo_relay_down_shut(r))) {
            continue;
        }
        n = recv(src, head, sizeof(head), MSG_PEEK);
        if (n <= 0) {
            break;
        }
        if (n == sizeof(head)) {
            return memcmp(head, colo_multifd_magic, 4) ? COLO_LINK_MAIN
                                                       : COLO_LINK_MULTIFD;
        }
        g_usleep(1000);
    }
    return COLO_LINK_UNKNOWN;
}

/* Either direction ending ends the link, as a real connection would. */
static void colo_relay_link_broken(ColoRelayLink *l)
{
    shutdown(l->src, SHUT_RDWR);
    shutdown(l->out, SHUT_RDWR);
}

/*
 * From a down thread that reached @phase: if the test still waits for it,
 * hold every way towards the secondary until colo_relay_release().  The
 * stop of the relay ends a hold too, so that nothing waits for good.
 */
static void colo_relay_hold(ColoRelay *r, ColoPhase phase)
{
    g_mutex_lock(&r->lock);
    if (qatomic_read(&r->armed) == phase) {
        qatomic_set(&r->armed, COLO_PHASE_STEADY);
        qatomic_set(&r->held, 1);
        g_cond_broadcast(&r->cond);
        while (qatomic_read(&r->held) && !qatomic_read(&r->stop)) {
            g_cond_wait_until(&r->cond, &r->lock, g_get_monotonic_time() +
                              COLO_RELAY_TICK_MS * 1000);
        }
    }
    g_mutex_unlock(&r->lock);
}

/* What the main stream's tracker is to stop at. */
static ColoPhase colo_relay_armed_main(ColoRelay *r)
{
    ColoPhase armed = qatomic_read(&r->armed);

    return armed == COLO_PHASE_RAM && qatomic_read(&r->ram_on_multifd) ?
           COLO_PHASE_STEADY : armed;
}

/* Bytes for the secondary: once its way is open, or never. */
static bool colo_relay_send_down(ColoRelay *r, int to, const uint8_t *buf,
                                 size_t len)
{
    while (colo_relay_down_shut(r)) {
        if (qatomic_read(&r->stop)) {
            return false;
        }
        g_usleep(COLO_RELAY_TICK_MS * 1000);
    }
    return colo_relay_send(to, buf, len);
}

/*
 * Pass @len bytes of the main stream on, holding where the armed phase
 * begins.  Returns how many bytes are kept back for the next read (a
 * message code cut in two), or -1 once the link is broken.
 */
static ssize_t colo_relay_pass_main(ColoRelayLink *l, uint8_t *buf,
                                    size_t len)
{
    ColoRelay *r = l->relay;
    size_t off = 0;

    while (off < len) {
        ColoPhase armed = colo_relay_armed_main(r);
        bool hit;
        size_t n = colo_track(&l->track, buf + off, len - off, armed, &hit);

        qatomic_set(&r->main_state, l->track.state);
        qatomic_set(&r->device_states, l->track.device_states);
        if (n && !colo_relay_send_down(r, l->out, buf + off, n)) {
            return -1;
        }
        off += n;
        if (hit) {
            colo_relay_hold(r, armed);
        } else if (!n) {
            break;
        }
    }
    memmove(buf, buf + off, len - off);
    return len - off;
}

static void colo_relay_down_main(ColoRelayLink *l)
{
    ColoRelay *r = l->relay;
    g_autofree uint8_t *buf = g_malloc(COLO_RELAY_CHUNK);
    ssize_t kept = 0;

    while (kept >= 0 && !qatomic_read(&r->stop)) {
        ssize_t n;

        if (!colo_relay_readable(l->src, colo_relay_down_shut(r))) {
            continue;
        }
        n = read(l->src, buf + kept, COLO_RELAY_CHUNK - kept);
        if (n <= 0) {
            break;
        }
        kept = colo_relay_pass_main(l, buf, kept + n);
    }
}

/* With multifd, RAM is on its way once a channel carries it. */
static void colo_relay_multifd_moved(ColoRelay *r)
{
    if (qatomic_read(&r->armed) == COLO_PHASE_RAM &&
        qatomic_read(&r->ram_on_multifd) &&
        qatomic_read(&r->main_state) == COLO_TRACK_RAM) {
        colo_relay_hold(r, COLO_PHASE_RAM);
    }
}

static void colo_relay_down_multifd(ColoRelayLink *l)
{
    ColoRelay *r = l->relay;
    int64_t tick = 0;
    size_t sent = 0;

    while (!qatomic_read(&r->stop)) {
        int rate = qatomic_read(&r->multifd_rate);
        int64_t now = g_get_monotonic_time() / (COLO_RELAY_TICK_MS * 1000);
        ssize_t n;

        if (!l->swallow && qatomic_read(&r->swallow_multifd)) {
            l->swallow = qatomic_xchg(&r->swallow_multifd, 0);
        }
        if (now != tick) {
            tick = now;
            sent = 0;
        }
        if (rate && sent >= rate) {
            g_usleep(COLO_RELAY_TICK_MS * 1000 / 5);
            continue;
        }
        if (!colo_relay_readable(l->src, colo_relay_down_shut(r))) {
            continue;
        }
        n = colo_relay_forward(l->src, l->swallow ? -1 : l->out,
                               rate ? rate - sent : SIZE_MAX);
        if (n < 0) {
            break;
        }
        sent += n;
        colo_relay_multifd_moved(r);
    }
}

static gpointer colo_relay_down(gpointer opaque)
{
    ColoRelayLink *l = opaque;
    ColoLinkKind kind = colo_relay_classify(l->relay, l->src);

    qatomic_set(&l->kind, kind);
    if (kind == COLO_LINK_MAIN) {
        colo_relay_down_main(l);
    } else if (kind == COLO_LINK_MULTIFD) {
        colo_relay_down_multifd(l);
    }
    colo_relay_link_broken(l);
    return NULL;
}

/* The test's wishes that concern the main stream's primary side. */
static void colo_relay_talk_to_primary(ColoRelay *r, int src)
{
    if (qatomic_read(&r->heartbeats)) {
        uint32_t msg = cpu_to_be32(COLO_MESSAGE_HEARTBEAT);

        /* Until the primary hangs up on us. */
        if (send(src, &msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg)) {
            qatomic_set(&r->heartbeats, 0);
        }
    }
    if (qatomic_xchg(&r->inject, 0)) {
        static const char garbage[] = "\xde\xad\xbe\xef not a message";

        g_assert_cmpint(send(src, garbage, sizeof(garbage), MSG_NOSIGNAL),
                        ==, sizeof(garbage));
    }
}

static gpointer colo_relay_up(gpointer opaque)
{
    ColoRelayLink *l = opaque;
    ColoRelay *r = l->relay;

    while (!qatomic_read(&r->stop)) {
        if (qatomic_read(&l->kind) == COLO_LINK_MAIN) {
            colo_relay_talk_to_primary(r, l->src);
        }
        if (colo_relay_readable(l->out, colo_relay_up_shut(r)) &&
            colo_relay_forward(l->out, l->src, SIZE_MAX) < 0) {
            break;
        }
    }
    colo_relay_link_broken(l);
    return NULL;
}

/*
 * The breakpoint.  Armed with a phase, the relay stops passing anything
 * towards the secondary where the next checkpoint reaches that phase:
 * in front of its request; after the first RAM (with multifd: after a
 * channel carried some); halfway through its device state; right after
 * it.  colo_relay_wait_held() returns once it holds there.
 */
static void colo_relay_arm(ColoRelay *r, ColoPhase phase, bool multifd)
{
    g_mutex_lock(&r->lock);
    qatomic_set(&r->ram_on_multifd, multifd);
    qatomic_set(&r->armed, phase);
    g_mutex_unlock(&r->lock);
}

static void colo_relay_wait_held(ColoRelay *r)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    g_mutex_lock(&r->lock);
    while (!qatomic_read(&r->held)) {
        g_assert(g_cond_wait_until(&r->cond, &r->lock, deadline) ||
                 qatomic_read(&r->held));
    }
    g_mutex_unlock(&r->lock);
}

/* Forwarding goes on, unless a fault keeps it from doing so. */
static void colo_relay_release(ColoRelay *r)
{
    g_mutex_lock(&r->lock);
    qatomic_set(&r->held, 0);
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

/*
 * Every connection ends at once, as when a host dies: its peer sees them
 * reset, and nothing more comes.
 */
static void colo_relay_sever(ColoRelay *r)
{
    qatomic_set(&r->frozen, 1);
    for (int i = 0; i < qatomic_read(&r->nlinks); i++) {
        colo_relay_link_broken(&r->links[i]);
    }
}

static void colo_relay_small_buffer(int fd, int which)
{
    int size = COLO_RELAY_SOCKET_BUFFER;

    g_assert_cmpint(setsockopt(fd, SOL_SOCKET, which, &size, sizeof(size)),
                    ==, 0);
}

static gpointer colo_relay_run(gpointer opaque)
{
    ColoRelay *r = opaque;
    struct sockaddr_in dst = {
        .sin_family = AF_INET,
        .sin_port = htons(r->dst_port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };

    while (!qatomic_read(&r->stop)) {
        struct pollfd pfd = { .fd = r->listen_fd, .events = POLLIN };
        ColoRelayLink *l;

        if (poll(&pfd, 1, COLO_RELAY_TICK_MS) != 1) {
            continue;
        }
        g_assert_cmpint(r->nlinks, <, COLO_RELAY_MAX_LINKS);
        l = &r->links[r->nlinks];
        qatomic_set(&r->nlinks, r->nlinks + 1);
        l->relay = r;
        l->src = accept(r->listen_fd, NULL, NULL);
        l->out = socket(AF_INET, SOCK_STREAM, 0);
        g_assert_cmpint(l->src, >=, 0);
        colo_relay_small_buffer(l->out, SO_SNDBUF);
        g_assert_cmpint(connect(l->out, (struct sockaddr *)&dst,
                                sizeof(dst)), ==, 0);
        l->down = g_thread_new("colo-relay-down", colo_relay_down, l);
        l->up = g_thread_new("colo-relay-up", colo_relay_up, l);
    }
    for (int i = 0; i < r->nlinks; i++) {
        g_thread_join(r->links[i].down);
        g_thread_join(r->links[i].up);
        close(r->links[i].src);
        close(r->links[i].out);
    }
    return NULL;
}

static char *colo_relay_start(ColoRelay *r, QTestState *to)
{
    g_autofree char *dst_uri = migrate_get_connect_uri(to);
    const char *port = strrchr(dst_uri, ':');
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    socklen_t len = sizeof(addr);

    g_assert(port);
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    r->dst_port = atoi(port + 1);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    /* Accepted connections inherit it. */
    colo_relay_small_buffer(r->listen_fd, SO_RCVBUF);
    g_assert_cmpint(bind(r->listen_fd, (struct sockaddr *)&addr,
                         sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(r->listen_fd, COLO_RELAY_MAX_LINKS), ==, 0);
    g_assert_cmpint(getsockname(r->listen_fd, (struct sockaddr *)&addr,
                                &len), ==, 0);
    r->thread = g_thread_new("colo-relay", colo_relay_run, r);
    return g_strdup_printf("tcp:127.0.0.1:%d", ntohs(addr.sin_port));
}

static void colo_relay_stop(ColoRelay *r)
{
    qatomic_set(&r->stop, 1);
    g_thread_join(r->thread);
    close(r->listen_fd);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
}

/* COLO through a relay, after its first checkpoint. */
static void colo_start_relayed(const ColoTestCase *tc, QTestState **from,
                               QTestState **to, ColoEvents *src_ev,
                               ColoEvents *dst_ev, ColoRelay *relay)
{
    g_autofree char *relay_uri = NULL;

    colo_prepare(tc, from, to, src_ev, dst_ev);
    relay_uri = colo_relay_start(relay, *to);
    colo_migrate(*from, *to, relay_uri);
    if (!tc->delay_ms) {
        colo_wait_checkpoint(*to, dst_ev);
    }
}

static void colo_end_relayed(QTestState *from, QTestState *to,
                             ColoEvents *src_ev, ColoEvents *dst_ev,
                             ColoRelay *relay)
{
    migrate_end(from, to, false);
    colo_relay_stop(relay);
    colo_events_free(src_ev);
    colo_events_free(dst_ev);
}

/*
 * A peer that dies: the survivor reports it (COLO_EXIT, reason error) and
 * waits until told to go on; with colo-auto-failover it goes on at once.
 *
 * A QEMU that gets SIGTERM shuts down in order, which for a primary is a
 * planned exit; libqtest cannot reap one killed with SIGKILL.  So death
 * is played: the victim is stopped, and the relay resets every connection
 * to it, which is what the survivor sees of a host that died.
 */
static void colo_test_peer_killed(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to, *survivor, *victim;
    ColoEvents *survivor_ev;
    const char *survivor_mode, *survivor_serial;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);

    if (tc->survivor == COLO_FAIL_PRIMARY) {
        victim = to, survivor = from, survivor_ev = &src_ev;
        survivor_mode = "primary", survivor_serial = "src_serial";
    } else {
        victim = from, survivor = to, survivor_ev = &dst_ev;
        survivor_mode = "secondary", survivor_serial = "dest_serial";
    }
    g_assert_cmpint(kill(qtest_pid(victim), SIGSTOP), ==, 0);
    colo_relay_sever(&relay);

    if (tc->auto_failover) {
        colo_wait_exit(survivor, survivor_ev);
        g_assert_cmpstr(survivor_ev->exit_reason, ==, "error");
        colo_wait_mode(survivor, "none");
        colo_assert_status(survivor, "none", survivor_mode, "error");
        colo_assert_progress(survivor_serial);
    } else {
        colo_assert_waiting(survivor, survivor_ev, survivor_mode,
                            survivor_serial);
        g_assert_cmpstr(survivor_ev->lost_cause, ==, "link-failed");
        colo_decide(survivor, survivor_mode, survivor_serial);
    }

    g_assert_cmpint(kill(qtest_pid(victim), SIGCONT), ==, 0);
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/*
 * A peer that hangs (its process is stopped, its kernel keeps the
 * connection up) is noticed after colo-peer-timeout; the survivor reports
 * it, waits, answers QMP throughout, and goes on when told to.
 */
static void colo_test_peer_hung(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to, *survivor, *hung;
    ColoEvents *survivor_ev;
    const char *survivor_mode, *survivor_serial;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    if (tc->survivor == COLO_FAIL_PRIMARY) {
        survivor = from, hung = to;
        survivor_ev = &src_ev;
        survivor_mode = "primary", survivor_serial = "src_serial";
    } else {
        survivor = to, hung = from;
        survivor_ev = &dst_ev;
        survivor_mode = "secondary", survivor_serial = "dest_serial";
    }
    g_assert_cmpint(kill(qtest_pid(hung), SIGSTOP), ==, 0);

    colo_assert_waiting(survivor, survivor_ev, survivor_mode,
                        survivor_serial);
    g_assert_cmpstr(survivor_ev->lost_cause, ==, "peer-silent");
    colo_decide(survivor, survivor_mode, survivor_serial);

    g_assert_cmpint(kill(qtest_pid(hung), SIGCONT), ==, 0);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/*
 * yank unsticks a primary blocked on a hung secondary in the middle of a
 * checkpoint, long before the watchdog would.
 */
static void colo_test_yank_unblocks(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    gint64 yanked;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_stop(to, &dst_ev);
    g_assert_cmpint(kill(qtest_pid(to), SIGSTOP), ==, 0);

    /* Out of band: the primary may hold the BQL while it is stuck. */
    yanked = g_get_monotonic_time();
    qtest_qmp_assert_success(from, "{ 'exec-oob': 'yank', 'id': 'yank0', "
                             "'arguments': { 'instances': "
                             "[ { 'type': 'migration' } ] } }");
    colo_wait_exit(from, &src_ev);
    g_assert_cmpint(g_get_monotonic_time() - yanked, <,
                    tc->peer_timeout_ms * 1000 / 2);
    colo_assert_waiting(from, &src_ev, "primary", "src_serial");
    colo_decide(from, "primary", "src_serial");

    g_assert_cmpint(kill(qtest_pid(to), SIGCONT), ==, 0);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/*
 * The primary receives garbage instead of a message: it stops talking to
 * the secondary, and both report their peer lost and wait.
 */
static void colo_test_garbage_from_secondary(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    qatomic_set(&relay.inject, 1);
    colo_assert_waiting(from, &src_ev, "primary", "src_serial");
    colo_assert_waiting(to, &dst_ev, "secondary", "dest_serial");
    colo_decide(from, "primary", "src_serial");
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/*
 * A secondary that only ever sends heartbeats looks alive byte-wise, but
 * a checkpoint it never completes ends at colo-checkpoint-timeout: the
 * primary reports the peer lost instead of staying paused for good.
 */
static void colo_test_heartbeats_only(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;
    gint64 start;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    migrate_set_parameter_int(from, "colo-peer-timeout", 1000);
    migrate_set_parameter_int(from, "colo-checkpoint-timeout", 5000);
    qatomic_set(&relay.frozen, 1);
    qatomic_set(&relay.heartbeats, 1);
    start = g_get_monotonic_time();
    colo_wait_exit(from, &src_ev);
    /* Heartbeats kept colo-peer-timeout from firing; the deadline did. */
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 4500 * 1000);
    colo_assert_waiting(from, &src_ev, "primary", "src_serial");
    g_assert_cmpstr(src_ev.lost_cause, ==, "checkpoint-overdue");
    colo_decide(from, "primary", "src_serial");
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/*
 * One multifd channel takes the primary's data and never delivers it, so
 * the secondary's load waits for a sync that cannot complete.  The loss
 * is noticed on both sides, neither holds its BQL while it waits for the
 * decision, and the secondary, told to, takes over.
 */
static void colo_test_multifd_channel_lost(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    qatomic_set(&relay.swallow_multifd, 1);
    colo_assert_waiting(to, &dst_ev, "secondary", "dest_serial");
    colo_assert_waiting(from, &src_ev, "primary", "src_serial");

    colo_decide(to, "secondary", "dest_serial");
    colo_assert_frozen(from, "src_serial");
    colo_assert_status(from, "primary", "primary", "peer-lost");
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/*
 * Slow multifd channels: a checkpoint's RAM takes several times
 * colo-peer-timeout to cross them while the main stream is quiet.  Slow
 * is not dead: COLO goes on checkpointing.
 */
#define COLO_SLOW_MULTIFD_BYTES_PER_TICK (128 * 1024)

static void colo_test_multifd_slow(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    for (int i = 0; i < 2; i++) {
        QTestState *side = i ? to : from;

        migrate_set_parameter_int(side, "colo-peer-timeout", 500);
        migrate_set_parameter_int(side, "colo-checkpoint-timeout", 120000);
    }
    qatomic_set(&relay.multifd_rate, COLO_SLOW_MULTIFD_BYTES_PER_TICK);
    for (int i = 0; i < COLO_CHECKPOINTS_BEFORE_FAILOVER; i++) {
        colo_wait_checkpoint(to, &dst_ev);
    }
    colo_pump_events(from);
    g_assert(!src_ev.exited);
    colo_assert_status(from, "primary", "primary", "none");
    colo_assert_status(to, "secondary", "secondary", "none");

    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, &src_ev);
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/*
 * migrate_cancel on the primary ends COLO as a request; the PVM runs on.
 * The secondary sees the connection close and waits: a primary that goes
 * away on purpose is no reason for the secondary to take over.
 */
static void colo_test_migrate_cancel(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_primary_started(from, &src_ev);

    migrate_cancel(from);
    colo_wait_exit(from, &src_ev);
    g_assert_cmpstr(src_ev.exit_reason, ==, "request");
    wait_for_migration_status(from, "cancelled", NULL);
    colo_assert_progress("src_serial");
    colo_assert_primary_left(to, &dst_ev);

    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/*
 * The primary's QEMU is told to quit: a planned exit.  The secondary
 * reports it, and even with colo-auto-failover does not take over by
 * itself; told to, it goes on, which makes a planned switchover.
 */
static void colo_test_primary_quits(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_primary_started(from, &src_ev);

    qtest_kill_qemu(from);      /* SIGTERM: QEMU shuts down in order */
    colo_assert_primary_left(to, &dst_ev);
    colo_decide(to, "secondary", "dest_serial");

    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/*
 * The link between two healthy sides breaks, both ways, while both
 * connections stay up: each side notices, reports and waits; neither goes
 * on by itself.  Told to, the primary goes on, and the secondary still
 * waits: one running guest, never two.
 */
static void colo_test_partition(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    qatomic_set(&relay.frozen, 1);
    colo_assert_waiting(to, &dst_ev, "secondary", "dest_serial");
    colo_assert_waiting(from, &src_ev, "primary", "src_serial");

    colo_decide(from, "primary", "src_serial");
    colo_assert_frozen(to, "dest_serial");
    colo_assert_status(to, "secondary", "secondary", "peer-lost");
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/* ---- The fault matrix: make faults ---- */

typedef enum {
    COLO_FAULT_NONE,
    COLO_FAULT_KILL,            /* the other side's host dies */
    COLO_FAULT_HANG,            /* the other side's process stops */
    COLO_FAULT_CUT,             /* the link breaks both ways */
    COLO_FAULT_CUT_TO_SECONDARY,    /* ... only towards the secondary */
    COLO_FAULT_CUT_TO_PRIMARY,      /* ... only towards the primary */
    COLO_FAULT_YANK,            /* someone yanks the other side's link */
    COLO_FAULT__MAX,
} ColoFault;

static const char *const colo_fault_names[COLO_FAULT__MAX] = {
    [COLO_FAULT_KILL] = "kill",
    [COLO_FAULT_HANG] = "hang",
    [COLO_FAULT_CUT] = "cut",
    [COLO_FAULT_CUT_TO_SECONDARY] = "cut_to_secondary",
    [COLO_FAULT_CUT_TO_PRIMARY] = "cut_to_primary",
    [COLO_FAULT_YANK] = "yank",
};

/*
 * From a fault to its report: colo-peer-timeout plus what two TCG guests
 * on two cores need to get there.
 */
#define COLO_FAULT_REPORT_US ((COLO_PEER_TIMEOUT_MS + 30 * 1000) * 1000LL)

static void colo_fault_inject(const ColoTestCase *tc, ColoRelay *relay,
                              QTestState *other)
{
    switch (tc->fault) {
    case COLO_FAULT_KILL:
        g_assert_cmpint(kill(qtest_pid(other), SIGSTOP), ==, 0);
        colo_relay_sever(relay);
        break;
    case COLO_FAULT_HANG:
        g_assert_cmpint(kill(qtest_pid(other), SIGSTOP), ==, 0);
        break;
    case COLO_FAULT_CUT:
        qatomic_set(&relay->frozen, 1);
        break;
    case COLO_FAULT_CUT_TO_SECONDARY:
        qatomic_set(&relay->frozen_down, 1);
        break;
    case COLO_FAULT_CUT_TO_PRIMARY:
        qatomic_set(&relay->frozen_up, 1);
        break;
    case COLO_FAULT_YANK:
        qtest_qmp_assert_success(other, "{ 'exec-oob': 'yank', 'id': 'f', "
                                 "'arguments': { 'instances': "
                                 "[ { 'type': 'migration' } ] } }");
        break;
    default:
        g_assert_not_reached();
    }
}

/* Events, without the BQL: a primary sending RAM may hold it. */
static void colo_pump_events_oob(QTestState *who)
{
    qobject_unref(qtest_qmp(who, "{ 'exec-oob': 'query-yank', "
                            "'id': 'pump' }"));
}

/*
 * Have the relay hold the next checkpoint where @tc's phase begins, and
 * check that the primary is there too: it asked and still runs, or it
 * is stopped for the checkpoint (one STOP more than RESUMEs).
 */
static void colo_fault_reach_phase(const ColoTestCase *tc, ColoRelay *relay,
                                   QTestState *from, ColoEvents *src_ev)
{
    /* Nothing to stop at until the relay is in step with the stream. */
    g_assert_cmpint(qatomic_read(&relay->device_states), >, 0);
    colo_relay_arm(relay, tc->phase, tc->multifd);
    colo_relay_wait_held(relay);
    colo_pump_events_oob(from);
    g_assert_cmpuint(src_ev->stops, ==,
                     src_ev->resumes + (tc->phase != COLO_PHASE_REQUEST));
}

/*
 * One cell of the matrix: a fault, at steady state or at a phase of a
 * checkpoint, plain or multifd, either side chosen to go on.  Neither side
 * goes live by itself; each that can still speak reports the loss within
 * the timeouts and answers QMP; after the decision exactly one guest runs,
 * and the other stays stopped even once it can see again what happened.
 */
static void colo_test_fault(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to, *survivor, *other;
    ColoEvents *survivor_ev, *other_ev;
    const char *survivor_mode, *other_mode, *survivor_serial, *other_serial;
    bool other_stopped = tc->fault == COLO_FAULT_KILL ||
                         tc->fault == COLO_FAULT_HANG;
    gint64 start;

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    colo_wait_checkpoint(to, &dst_ev);
    if (tc->survivor == COLO_FAIL_PRIMARY) {
        survivor = from, other = to;
        survivor_ev = &src_ev, other_ev = &dst_ev;
        survivor_mode = "primary", other_mode = "secondary";
        survivor_serial = "src_serial", other_serial = "dest_serial";
    } else {
        survivor = to, other = from;
        survivor_ev = &dst_ev, other_ev = &src_ev;
        survivor_mode = "secondary", other_mode = "primary";
        survivor_serial = "dest_serial", other_serial = "src_serial";
    }
    if (tc->phase != COLO_PHASE_STEADY) {
        colo_fault_reach_phase(tc, &relay, from, &src_ev);
    }

    start = g_get_monotonic_time();
    colo_fault_inject(tc, &relay, other);
    /* Whatever the fault left of the link carries on from the phase. */
    colo_relay_release(&relay);
    colo_wait_exit(survivor, survivor_ev);
    g_assert_cmpint(g_get_monotonic_time() - start, <, COLO_FAULT_REPORT_US);
    colo_assert_waiting(survivor, survivor_ev, survivor_mode,
                        survivor_serial);
    if (!other_stopped) {
        colo_assert_waiting(other, other_ev, other_mode, other_serial);
    }

    colo_decide(survivor, survivor_mode, survivor_serial);
    if (other_stopped) {
        /* Back, it finds its peer gone: it reports, and does not run. */
        g_assert_cmpint(kill(qtest_pid(other), SIGCONT), ==, 0);
        colo_assert_waiting(other, other_ev, other_mode, other_serial);
    }
    colo_assert_frozen(other, other_serial);
    colo_assert_progress(survivor_serial);
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
}

/* ---- Output commit, through the primary's colo-compare ---- */

static const TfFlow colo_udp_flow = {
    .src = { 10, 0, 0, 2 }, .dst = { 10, 0, 0, 1 },
    .sport = 5353, .dport = 40000,
};

/* The primary goes on alone, and the pair and the compare rig go. */
static void colo_compare_test_end(QTestState *from, QTestState *to,
                                  ColoEvents *src_ev, ColoEvents *dst_ev)
{
    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, src_ev);
    migrate_end(from, to, false);
    colo_compare_rig_close();
    colo_events_free(src_ev);
    colo_events_free(dst_ev);
}

/*
 * A packet the secondary also sent leaves at once.  One it never sends
 * waits for the checkpoint that its timeout asks for, and leaves once the
 * secondary has loaded that checkpoint: never on the timeout alone.
 */
static void colo_test_output_commit(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    g_autoptr(GByteArray) same = tf_udp(&colo_udp_flow, "same", 4, 1);
    g_autoptr(GByteArray) alone = tf_udp(&colo_udp_flow, "alone", 5, 2);
    unsigned loaded;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_compare_wait_protected(from);

    colo_compare_send(colo_rig.pri, same);
    colo_compare_send(colo_rig.sec, same);
    colo_compare_expect(same);
    g_assert_cmpuint(colo_compare_counter(from, "matched"), ==, 1);

    colo_pump_events(to);
    loaded = dst_ev.resumes;
    colo_compare_send(colo_rig.pri, alone);
    colo_compare_expect(alone);
    /* The secondary loaded a checkpoint before the packet left. */
    colo_pump_events(to);
    g_assert_cmpuint(dst_ev.resumes, >, loaded);
    g_assert_cmpuint(colo_compare_counter(from, "timeouts"), ==, 1);
    g_assert_cmpuint(colo_compare_counter(from, "held-for-checkpoint"), ==,
                     1);
    g_assert_cmpuint(colo_compare_counter(from, "released-at-checkpoint"),
                     ==, 1);
    g_assert_cmpuint(colo_compare_counter(from, "released-unmatched"), ==,
                     0);

    colo_compare_test_end(from, to, &src_ev, &dst_ev);
}

/*
 * The link breaks with a primary packet unmatched: nothing leaves while
 * the primary waits for the decision.  If the primary goes on alone, the
 * packet goes out; if the secondary takes over, it never does.
 */
static void colo_test_output_commit_partition(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    ColoRelay relay = { 0 };
    QTestState *from, *to;
    g_autoptr(GByteArray) held = tf_udp(&colo_udp_flow, "held", 4, 1);

    colo_start_relayed(tc, &from, &to, &src_ev, &dst_ev, &relay);
    colo_compare_wait_protected(from);
    qatomic_set(&relay.frozen, 1);
    colo_compare_send(colo_rig.pri, held);

    colo_assert_waiting(from, &src_ev, "primary", "src_serial");
    colo_assert_waiting(to, &dst_ev, "secondary", "dest_serial");
    g_assert(!colo_compare_out_ready(COLO_COMPARE_TIMEOUT_MS * 3));
    g_assert_cmpuint(colo_compare_counter(from, "held-for-checkpoint"), ==,
                     1);

    if (tc->survivor == COLO_FAIL_PRIMARY) {
        colo_decide(from, "primary", "src_serial");
        /* Through colo-compare's flush and the redirector's drain. */
        colo_compare_expect(held);
        g_assert_cmpuint(colo_compare_counter(from, "released-unmatched"),
                         ==, 1);
    } else {
        colo_decide(to, "secondary", "dest_serial");
        colo_assert_status(from, "primary", "primary", "peer-lost");
        g_assert(!colo_compare_out_ready(COLO_COMPARE_TIMEOUT_MS * 3));
        g_assert_cmpuint(colo_compare_counter(from, "released"), ==, 0);
    }
    colo_end_relayed(from, to, &src_ev, &dst_ev, &relay);
    colo_compare_rig_close();
}

/*
 * cont is refused while a checkpoint holds the PVM stopped.  The primary
 * saves with the BQL held and waits for the secondary's acknowledgement
 * without it, so a cont sent as the PVM stops is handled during that
 * wait; a few checkpoints are enough to catch one.
 */
static void colo_test_cont_refused(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    int refused = 0;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    for (int i = 0; i < 20 && !refused; i++) {
        QDict *rsp;

        colo_wait_stop(from, &src_ev);
        rsp = qtest_qmp(from, "{ 'execute': 'cont' }");
        if (qdict_haskey(rsp, "error")) {
            QDict *err = qdict_get_qdict(rsp, "error");

            g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                            "The VM is stopped by COLO: it resumes by "
                            "itself after a checkpoint, or at "
                            "x-colo-lost-heartbeat");
            refused++;
        }
        qobject_unref(rsp);
    }
    g_assert_cmpint(refused, >, 0);

    /* COLO goes on undisturbed. */
    colo_wait_checkpoint(to, &dst_ev);
    colo_assert_progress("src_serial");
    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, &src_ev);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/* Far above what the boot sector dirties: nothing rewrites it. */
#define COLO_HIDDEN_WRITE_OFFSET (120 * 1024 * 1024)

/*
 * Write into @pid's guest RAM behind QEMU's back, through the memfd that
 * backs it (MEM_TYPE_MEMFD), as a device bug or a stray host write would.
 */
static bool colo_hidden_ram_write(pid_t pid, uint64_t offset)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/fd", pid);
    GDir *fds = g_dir_open(dir, 0, NULL);
    const char *name;
    bool written = false;

    if (!fds) {
        g_test_skip("cannot look into the secondary's file descriptors");
        return false;
    }
    while (!written && (name = g_dir_read_name(fds))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *target = g_file_read_link(path, NULL);
        static const uint64_t garbage = 0x5a5a5a5a5a5a5a5aULL;
        int fd;

        /* memory-backend-memfd names its memfd after its type. */
        if (!target ||
            !g_str_has_prefix(target, "/memfd:memory-backend-memfd")) {
            continue;
        }
        fd = open(path, O_RDWR);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(pwrite(fd, &garbage, sizeof(garbage), offset), ==,
                        sizeof(garbage));
        close(fd);
        written = true;
    }
    g_dir_close(fds);
    g_assert(written);
    return true;
}

static void colo_wait_mismatch(QTestState *who, ColoEvents *ev)
{
    gint64 deadline = g_get_monotonic_time() + COLO_WAIT_US;

    while (!ev->mismatches) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        colo_pump_events(who);
        g_usleep(COLO_POLL_US);
    }
    g_assert_cmpstr(ev->mismatch_block, ==, "mig.mem");
    g_assert_cmpuint(ev->mismatch_offset, ==, COLO_HIDDEN_WRITE_OFFSET);
}

/* A mismatch is counted, and checkpoints go on: the user decides. */
static void colo_assert_mismatch_left_to_user(QTestState *to, ColoEvents *ev)
{
    QDict *rsp = qtest_qmp_assert_success_ref(to,
                                   "{ 'execute': 'query-colo-status' }");

    g_assert_cmpstr(qdict_get_str(rsp, "mode"), ==, "secondary");
    g_assert_cmpuint(qdict_get_int(rsp, "verify-mismatches"), >=, 1);
    qobject_unref(rsp);
    /* Nothing rewrites the page: the difference stays. */
    colo_wait_checkpoint(to, ev);
    colo_wait_checkpoint(to, ev);
    g_assert_cmpuint(ev->mismatches, >=, 2);
}

/*
 * colo-verify catches a difference COLO's dirty tracking cannot see: both
 * sides report the block and page, count it, and COLO carries on.
 */
static void colo_test_verify_catches_hidden_write(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);
    colo_assert_verified(to, 1);

    if (colo_hidden_ram_write(qtest_pid(to), COLO_HIDDEN_WRITE_OFFSET)) {
        colo_wait_mismatch(to, &dst_ev);
        colo_wait_mismatch(from, &src_ev);
        colo_assert_mismatch_left_to_user(to, &dst_ev);
    }

    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, &src_ev);
    migrate_end(from, to, false);
    /* Expected here; colo_events_free() fails on any other. */
    src_ev.mismatches = dst_ev.mismatches = 0;
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/* Timeouts shorter than heartbeats can keep up with are refused. */
static void colo_test_short_timeouts_refused(void)
{
    QTestState *qts = qtest_init("-machine none");
    static const char *const params[] = {
        "colo-peer-timeout", "colo-checkpoint-timeout",
    };

    for (int i = 0; i < G_N_ELEMENTS(params); i++) {
        QDict *rsp = qtest_qmp_assert_failure_ref(qts,
            "{ 'execute': 'migrate-set-parameters', 'arguments': "
            "{ %s: 100 } }", params[i]);

        g_assert(strstr(qdict_get_try_str(rsp, "desc"), params[i]));
        qobject_unref(rsp);
    }
    qtest_quit(qts);
}

static void colo_test_verify_needs_colo(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp = qtest_qmp_assert_failure_ref(qts,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ { 'capability': 'colo-verify', "
        "'state': true } ] } }");

    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==,
                    "Capability colo-verify requires x-colo");
    qobject_unref(rsp);
    /* No verification ever ran: the status has no counters. */
    rsp = qtest_qmp_assert_success_ref(qts,
                                       "{ 'execute': 'query-colo-status' }");
    g_assert_false(qdict_haskey(rsp, "verified-checkpoints"));
    g_assert_false(qdict_haskey(rsp, "verify-mismatches"));
    qobject_unref(rsp);
    qtest_quit(qts);
}

static void colo_test_heartbeat_outside_colo(void)
{
    QTestState *qts = qtest_init("-machine none");
    g_autofree char *hmp = qtest_hmp(qts, "x_colo_lost_heartbeat");

    g_assert(strstr(hmp, "VM is not in COLO mode"));
    colo_assert_heartbeat_refused(qts, "VM is not in COLO mode");
    colo_assert_status(qts, "none", "none", "none");
    qtest_quit(qts);
}

/* ---- Checkpoint statistics ---- */

static uint64_t colo_stats_cause(QDict *stats, const char *cause)
{
    QList *causes = qdict_get_qlist(stats, "causes");
    QListEntry *e;

    QLIST_FOREACH_ENTRY(causes, e) {
        QDict *c = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(c, "cause"), cause)) {
            return qdict_get_uint(c, "count");
        }
    }
    g_assert_not_reached();
}

static uint64_t colo_stats_phase_sum(QDict *phases, bool with_request)
{
    static const char *const names[] = {
        "stop", "ram", "device-state", "send", "load", "resume",
    };
    uint64_t sum = with_request ? qdict_get_uint(phases, "request") : 0;

    for (int i = 0; i < ARRAY_SIZE(names); i++) {
        sum += qdict_get_uint(phases, names[i]);
    }
    return sum;
}

/*
 * The secondary's side of the same checkpoints: it applied each one the
 * primary counted (@counted), and timed every step.
 */
static void colo_assert_secondary_stats(QTestState *to, uint64_t counted)
{
    static const char *const names[] = {
        "stop", "ram", "device-state", "reset", "ram-flush", "device-load",
        "disks", "verify", "resume",
    };
    QDict *st = qtest_qmp_assert_success_ref(to,
                                             "{ 'execute': 'query-colo-stats' }");
    QDict *sec = qdict_get_qdict(st, "secondary");
    QDict *last = qdict_get_qdict(sec, "phases-last");
    g_autofree char *hmp = NULL;
    uint64_t sum = 0;

    g_assert_cmpuint(qdict_get_uint(st, "checkpoints"), ==, 0);
    g_assert_cmpuint(qdict_get_uint(sec, "checkpoints"), >=, counted);
    for (int i = 0; i < ARRAY_SIZE(names); i++) {
        sum += qdict_get_uint(last, names[i]);
        g_assert_cmpuint(qdict_get_uint(qdict_get_qdict(sec, "phases-mean"),
                                        names[i]), <=, 60 * G_USEC_PER_SEC);
    }
    g_assert_cmpuint(sum, >, 0);
    /* colo-verify hashes all of RAM: never free. */
    g_assert_cmpuint(qdict_get_uint(last, "verify"), >, 0);
    qobject_unref(st);

    hmp = qtest_hmp(to, "info colo");
    g_assert_nonnull(strstr(hmp, "COLO mode: secondary"));
    g_assert_nonnull(strstr(hmp, "applied as the secondary: "));
}

/*
 * query-colo-stats counts what the test caused: one checkpoint for a
 * difference, one for a packet left without a partner, then some for the
 * timer; and its pauses, bytes and phases agree with each other.
 */
static void colo_test_stats(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    g_autoptr(GByteArray) ours = tf_udp(&colo_udp_flow, "ours", 4, 1);
    g_autoptr(GByteArray) theirs = tf_udp(&colo_udp_flow, "THEM", 4, 1);
    g_autoptr(GByteArray) alone = tf_udp(&colo_udp_flow, "alone", 5, 2);
    g_autofree char *hmp = NULL;
    g_autofree char *line = NULL;
    QDict *st;
    uint64_t n;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_compare_wait_protected(from);
    st = qtest_qmp_assert_success_ref(from,
                                      "{ 'execute': 'query-colo-stats' }");
    g_assert_cmpuint(qdict_get_uint(st, "checkpoints"), ==, 0);
    qobject_unref(st);

    /* The outputs differ: the checkpoint that follows lets ours out. */
    colo_compare_send(colo_rig.pri, ours);
    colo_compare_send(colo_rig.sec, theirs);
    colo_compare_expect(ours);
    /* No partner at all: its timeout asks for the next one. */
    colo_compare_send(colo_rig.pri, alone);
    colo_compare_expect(alone);
    /* Then the timer, twice at least. */
    migrate_set_parameter_int(from, "x-checkpoint-delay",
                              COLO_CHECKPOINT_DELAY_MS);
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    st = qtest_qmp_assert_success_ref(from,
                                      "{ 'execute': 'query-colo-stats' }");
    n = qdict_get_uint(st, "checkpoints");
    g_assert_cmpuint(colo_stats_cause(st, "mismatch"), ==, 1);
    g_assert_cmpuint(colo_stats_cause(st, "timeout"), ==, 1);
    g_assert_cmpuint(colo_stats_cause(st, "queue-full"), ==, 0);
    g_assert_cmpuint(colo_stats_cause(st, "timer"), >=, 2);
    g_assert_cmpuint(colo_stats_cause(st, "timer"), ==, n - 2);
    g_assert_cmpuint(qdict_get_uint(st, "pause-last"), >, 0);
    g_assert_cmpuint(qdict_get_uint(st, "pause-last"), <=,
                     qdict_get_uint(st, "pause-max"));
    g_assert_cmpuint(qdict_get_uint(st, "pause-median"), <=,
                     qdict_get_uint(st, "pause-p99"));
    g_assert_cmpuint(qdict_get_uint(st, "pause-p99"), <=,
                     qdict_get_uint(st, "pause-max"));
    g_assert_cmpuint(qdict_get_uint(st, "bytes-last"), >, 0);
    g_assert_cmpuint(qdict_get_uint(st, "bytes-total"), >=,
                     qdict_get_uint(st, "bytes-last"));
    g_assert_cmpuint(qdict_get_uint(st, "pages-total"), >, 0);
    /* The pause is every phase but the request; the mean is no more. */
    g_assert_cmpuint(colo_stats_phase_sum(qdict_get_qdict(st, "phases-last"),
                                          false), ==,
                     qdict_get_uint(st, "pause-last"));
    g_assert_cmpuint(colo_stats_phase_sum(qdict_get_qdict(st, "phases-mean"),
                                          false), <=,
                     qdict_get_uint(st, "pause-max"));
    /* Every case here runs with colo-verify. */
    g_assert_cmpuint(qdict_get_uint(st, "verify-mismatches"), ==, 0);
    g_assert_false(qdict_haskey(st, "secondary"));
    qobject_unref(st);

    colo_assert_secondary_stats(to, n);

    hmp = qtest_hmp(from, "info colo");
    line = g_strdup_printf("checkpoints: %" PRIu64 " (", n);
    g_assert_nonnull(strstr(hmp, "COLO mode: primary"));
    g_assert_nonnull(strstr(hmp, "mismatch 1"));
    g_assert_nonnull(strstr(hmp, "pause (us): last "));
    if (!strstr(hmp, line)) {
        /* The timer may have taken one more in between. */
        g_autofree char *next = g_strdup_printf("checkpoints: %" PRIu64 " (",
                                                n + 1);
        g_assert_nonnull(strstr(hmp, next));
    }

    colo_compare_test_end(from, to, &src_ev, &dst_ev);
}

/* Changing x-checkpoint-delay re-arms the primary's timer at once. */
static void colo_test_delay_rearms(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    unsigned resumes;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    /* An hour away: no periodic checkpoint for now. */
    migrate_set_parameter_int(from, "x-checkpoint-delay", 3600 * 1000);
    colo_pump_events(to);
    resumes = dst_ev.resumes;
    g_usleep(3 * G_USEC_PER_SEC);
    colo_pump_events(to);
    g_assert_cmpuint(dst_ev.resumes, <=, resumes + 1);

    /* Short again: the next one comes without waiting out the hour. */
    migrate_set_parameter_int(from, "x-checkpoint-delay",
                              COLO_CHECKPOINT_DELAY_MS);
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, &src_ev);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

static void colo_test_postcopy_refused(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp = qtest_qmp_assert_failure_ref(qts,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ { 'capability': 'x-colo', 'state': true },"
        " { 'capability': 'postcopy-ram', 'state': true } ] } }");

    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==,
                    "COLO does not support postcopy");
    qobject_unref(rsp);
    qtest_quit(qts);
}

static void colo_assert_caps_frozen(QTestState *who)
{
    QDict *rsp = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ { 'capability': 'x-colo', 'state': false } ] } }");

    g_assert(strstr(qdict_get_try_str(rsp, "desc"), "COLO") ||
             strstr(qdict_get_try_str(rsp, "desc"), "in progress"));
    qobject_unref(rsp);
}

static void colo_test_multifd_compression_refused(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp;

    migrate_set_capability(qts, "x-colo", true);
    migrate_set_capability(qts, "multifd", true);
    migrate_set_parameter_str(qts, "multifd-compression", "zlib");
    rsp = qtest_qmp_assert_failure_ref(qts,
        "{ 'execute': 'migrate', 'arguments': "
        "{ 'uri': 'tcp:127.0.0.1:1' } }");
    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==,
                    "COLO does not support multifd compression");
    qobject_unref(rsp);
    qtest_quit(qts);
}

/*
 * The parameters the COLO channels were set up with are refused while
 * COLO runs; the others (the checkpoint delay) are not.
 */
static void colo_assert_params_frozen(QTestState *who)
{
    QDict *rsp = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-parameters', 'arguments': "
        "{ 'multifd-channels': 8 } }");

    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==,
                    "The multifd-channels cannot change while COLO is "
                    "running");
    qobject_unref(rsp);
    rsp = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-parameters', 'arguments': "
        "{ 'tls-creds': 'tls0' } }");
    g_assert_cmpstr(qdict_get_try_str(rsp, "desc"), ==,
                    "The TLS parameters cannot change while COLO is "
                    "running");
    qobject_unref(rsp);
    migrate_set_parameter_int(who, "x-checkpoint-delay",
                              COLO_CHECKPOINT_DELAY_MS);
}

/*
 * A secondary refuses an outgoing migration and a snapshot: both would
 * take over the RAM state its checkpoints go through.
 */
static void colo_test_secondary_refuses_migrate(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;
    g_autofree char *hmp = NULL;
    QDict *rsp;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    rsp = qtest_qmp_assert_failure_ref(to,
        "{ 'execute': 'migrate', 'arguments': "
        "{ 'uri': 'tcp:127.0.0.1:1' } }");
    g_assert(strstr(qdict_get_try_str(rsp, "desc"), "COLO secondary"));
    qobject_unref(rsp);
    hmp = qtest_hmp(to, "savevm colo-test");
    g_assert(strstr(hmp, "COLO secondary"));

    /* COLO goes on undisturbed. */
    colo_wait_checkpoint(to, &dst_ev);
    colo_assert_status(to, "secondary", "secondary", "none");
    colo_lost_heartbeat(from, false);
    colo_wait_exit(from, &src_ev);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

/* Capabilities and channel parameters are frozen while COLO runs. */
static void colo_test_capabilities_frozen(const void *opaque)
{
    const ColoTestCase *tc = opaque;
    ColoEvents src_ev = { 0 }, dst_ev = { 0 };
    QTestState *from, *to;

    colo_start(tc, &from, &to, &src_ev, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    colo_assert_caps_frozen(from);
    colo_assert_caps_frozen(to);
    colo_assert_params_frozen(from);
    colo_assert_params_frozen(to);
    /* Checkpoints go on with the channels they had. */
    colo_wait_checkpoint(to, &dst_ev);
    colo_wait_checkpoint(to, &dst_ev);

    colo_lost_heartbeat(to, false);
    colo_wait_exit(to, &dst_ev);
    migrate_end(from, to, false);
    colo_events_free(&src_ev);
    colo_events_free(&dst_ev);
}

static void colo_add(const char *name, ColoTestCase tc,
                     void (*fn)(const void *))
{
    g_autofree char *path = g_strdup_printf("/migration/colo/%s", name);
    ColoTestCase *copy = g_memdup2(&tc, sizeof(tc));

    qtest_add_data_func_full(path, copy, fn, g_free);
}

void migration_test_add_colo(MigrationTestEnv *env)
{
    static const struct {
        const char *name;
        bool multifd;
    } transports[] = { { "plain", false }, { "multifd", true } };

    if (!env->is_x86) {
        return;
    }
    colo_tmpfs = env->tmpfs;

    for (int t = 0; t < G_N_ELEMENTS(transports); t++) {
        for (int during = 0; during < 2; during++) {
            for (int s = 0; s < 2; s++) {
                g_autofree char *name = g_strdup_printf("%s/%s_failover%s",
                    transports[t].name, s ? "secondary" : "primary",
                    during ? "_checkpoint" : "");

                colo_add(name, (ColoTestCase) {
                    .machine = "pc",
                    .multifd = transports[t].multifd,
                    .return_path = true,
                    .survivor = s ? COLO_FAIL_SECONDARY : COLO_FAIL_PRIMARY,
                    .during_checkpoint = during,
                }, colo_test_failover);
            }
        }
    }
    colo_add("q35/primary_failover", (ColoTestCase) {
        .machine = "q35", .survivor = COLO_FAIL_PRIMARY,
    }, colo_test_failover);
    colo_add("q35/secondary_failover", (ColoTestCase) {
        .machine = "q35", .survivor = COLO_FAIL_SECONDARY, .hmp = true,
    }, colo_test_failover);
    colo_add("no_return_path/secondary_failover", (ColoTestCase) {
        .machine = "pc", .survivor = COLO_FAIL_SECONDARY,
    }, colo_test_failover);

    colo_add("errors/secondary_killed", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_PRIMARY,
    }, colo_test_peer_killed);
    colo_add("errors/primary_killed", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_SECONDARY,
    }, colo_test_peer_killed);
    colo_add("errors/secondary_hung", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_PRIMARY,
    }, colo_test_peer_hung);
    colo_add("errors/primary_hung", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_SECONDARY,
    }, colo_test_peer_hung);
    colo_add("errors/secondary_killed_auto_failover", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_PRIMARY, .auto_failover = true,
    }, colo_test_peer_killed);
    colo_add("errors/primary_killed_auto_failover", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_SECONDARY, .auto_failover = true,
    }, colo_test_peer_killed);
    colo_add("errors/partition", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_partition);
    /* Long enough that only the yank can explain a prompt exit. */
    colo_add("errors/yank_unblocks_primary", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .survivor = COLO_FAIL_PRIMARY, .peer_timeout_ms = 30000,
    }, colo_test_yank_unblocks);
    colo_add("errors/heartbeats_only_from_secondary", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_heartbeats_only);
    colo_add("errors/garbage_from_secondary", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_garbage_from_secondary);
    /* Planned exits: no periodic checkpoint, so the primary is idle. */
    colo_add("errors/migrate_cancel", (ColoTestCase) {
        .machine = "pc", .return_path = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
    }, colo_test_migrate_cancel);
    colo_add("errors/primary_quits", (ColoTestCase) {
        .machine = "pc", .return_path = true, .auto_failover = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
    }, colo_test_primary_quits);
    colo_add("errors/cont_refused_during_checkpoint", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_cont_refused);
    colo_add("errors/delay_rearms_timer", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_delay_rearms);
    colo_add("errors/capabilities_frozen", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_capabilities_frozen);
    colo_add("errors/secondary_refuses_migrate", (ColoTestCase) {
        .machine = "pc", .return_path = true,
    }, colo_test_secondary_refuses_migrate);
    colo_add("errors/multifd_settings_frozen", (ColoTestCase) {
        .machine = "pc", .return_path = true, .multifd = true,
    }, colo_test_capabilities_frozen);
    colo_add("errors/multifd_channel_lost", (ColoTestCase) {
        .machine = "pc", .return_path = true, .multifd = true,
    }, colo_test_multifd_channel_lost);
    colo_add("errors/multifd_slow_is_not_dead", (ColoTestCase) {
        .machine = "pc", .return_path = true, .multifd = true,
    }, colo_test_multifd_slow);
    for (int f = COLO_FAULT_KILL; f < COLO_FAULT__MAX; f++) {
        for (int t = 0; t < G_N_ELEMENTS(transports); t++) {
            for (int p = 0; p < COLO_PHASE__MAX; p++) {
                for (int s = 0; s < 2; s++) {
                    g_autofree char *name = g_strdup_printf(
                        "faults/%s/%s_%s_%s_goes_on", colo_fault_names[f],
                        transports[t].name, colo_phase_names[p],
                        s ? "secondary" : "primary");

                    colo_add(name, (ColoTestCase) {
                        .machine = "pc", .return_path = true,
                        .multifd = transports[t].multifd,
                        .survivor = s ? COLO_FAIL_SECONDARY
                                      : COLO_FAIL_PRIMARY,
                        .phase = p, .fault = f,
                    }, colo_test_fault);
                }
            }
        }
    }
    migration_test_add("/migration/colo/errors/heartbeat_outside_colo",
                       colo_test_heartbeat_outside_colo);
    migration_test_add("/migration/colo/errors/postcopy_refused",
                       colo_test_postcopy_refused);
    migration_test_add("/migration/colo/errors/multifd_compression_refused",
                       colo_test_multifd_compression_refused);
    migration_test_add("/migration/colo/errors/short_timeouts_refused",
                       colo_test_short_timeouts_refused);

    colo_add("stats/causes_and_costs", (ColoTestCase) {
        .machine = "pc", .return_path = true, .compare = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
    }, colo_test_stats);
    colo_add("net/output_commit", (ColoTestCase) {
        .machine = "pc", .return_path = true, .compare = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
    }, colo_test_output_commit);
    colo_add("net/partition_primary_goes_on", (ColoTestCase) {
        .machine = "pc", .return_path = true, .compare = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
        .survivor = COLO_FAIL_PRIMARY,
    }, colo_test_output_commit_partition);
    colo_add("net/partition_secondary_takes_over", (ColoTestCase) {
        .machine = "pc", .return_path = true, .compare = true,
        .delay_ms = COLO_NO_PERIODIC_MS,
        .survivor = COLO_FAIL_SECONDARY,
    }, colo_test_output_commit_partition);

    colo_add("verify/catches_hidden_write", (ColoTestCase) {
        .machine = "pc", .return_path = true, .mem_type = MEM_TYPE_MEMFD,
    }, colo_test_verify_catches_hidden_write);
    migration_test_add("/migration/colo/verify/needs_x_colo",
                       colo_test_verify_needs_colo);
}
