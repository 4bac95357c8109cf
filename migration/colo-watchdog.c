/*
 * COLO liveness: the watchdog notices a peer that stopped answering, and
 * the keepalive stops the peer's watchdog from firing while this side is
 * busy.
 *
 * A dead peer host shows up as a TCP error, but a hung peer process does
 * not: its kernel goes on acknowledging what we send.  So while a side
 * waits on its peer, the watchdog samples the kernel's byte counters of the
 * migration's sockets (bytes received plus bytes the peer acknowledged),
 * the multifd channels' included: with multifd, a checkpoint's RAM leaves
 * the main stream quiet for as long as it takes to send.  When
 * neither moves for the colo-peer-timeout parameter, or a wait with a
 * deadline (a checkpoint, colo-checkpoint-timeout) outlasts it however
 * much moves, the peer is declared lost: the watchdog cuts the side's I/O
 * short, and the side reports the loss and waits for a decision.  The
 * primary sends heartbeats while no checkpoint is due, so the secondary
 * always expects traffic.
 *
 * The watchdog has its own thread: the side may be blocked on the peer
 * while holding the BQL, and a main-loop timer would then never fire.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/error-report.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "io/channel-socket.h"
#include "io/channel-tls.h"
#include "migration/failover.h"
#include "options.h"
#include "multifd.h"
#include "colo-internal.h"
#include "colo-wire.h"
#include "colo-watchdog.h"
#include "trace.h"

#ifdef CONFIG_LINUX
#include <netinet/tcp.h>

/*
 * The kernel's struct tcp_info goes on past the part glibc declares; its
 * layout only ever grows at the end, and these are the fields that follow.
 * (linux/tcp.h cannot be included beside netinet/tcp.h.)
 */
struct colo_tcp_info {
    struct tcp_info base;
    uint64_t pacing_rate;
    uint64_t max_pacing_rate;
    uint64_t bytes_acked;
    uint64_t bytes_received;
};
QEMU_BUILD_BUG_ON(sizeof(struct tcp_info) % 8 != 0);
#endif

#define COLO_WATCHDOG_TICK_MS 250

struct ColoWatchdog {
    QemuThread thread;
    QemuSemaphore stop;
    GArray *fds;                /* the TCP sockets: main stream, multifd */
    int64_t armed_since;        /* atomic; 0 while the side is not waiting */
    int64_t deadline;           /* atomic; 0 for none, else a realtime ms */
};

/* The socket under @ioc, looking through TLS; -1 if it is not a socket. */
static int colo_watchdog_socket_fd(QIOChannel *ioc)
{
    if (object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_TLS)) {
        ioc = QIO_CHANNEL_TLS(ioc)->master;
    }
    if (object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SOCKET)) {
        return QIO_CHANNEL_SOCKET(ioc)->fd;
    }
    return -1;
}

/* Bytes that crossed the connection either way; false if unknown. */
static bool colo_watchdog_sample_fd(int fd, uint64_t *bytes)
{
#if defined(CONFIG_LINUX) && defined(TCP_INFO)
    struct colo_tcp_info info = { 0 };
    socklen_t len = sizeof(info);

    /* An older kernel fills less: then we cannot tell. */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 ||
        len < sizeof(info)) {
        return false;
    }
    *bytes = info.bytes_acked + info.bytes_received;
    return true;
#else
    return false;
#endif
}

/*
 * Bytes that crossed any of the sockets; false if the main stream's are
 * unknown.  A multifd socket that cannot tell adds nothing.
 */
static bool colo_watchdog_sample(ColoWatchdog *wd, uint64_t *bytes)
{
    uint64_t sum = 0;

    for (guint i = 0; i < wd->fds->len; i++) {
        uint64_t n;

        if (colo_watchdog_sample_fd(g_array_index(wd->fds, int, i), &n)) {
            sum += n;
        } else if (i == 0) {
            return false;
        }
    }
    *bytes = sum;
    return true;
}

/* The peer is lost: say why, and cut the side's I/O short. */
static void colo_watchdog_fire(COLOPeerLossCause cause, const char *why,
                               int64_t ms)
{
    trace_colo_watchdog_peer_lost(why, ms);
    error_report("COLO: %s for %" PRId64 " ms; the peer is lost", why, ms);
    colo_note_peer_loss(cause);
    colo_failover_unblock();
}

static void *colo_watchdog_thread(void *opaque)
{
    ColoWatchdog *wd = opaque;
    uint64_t last = 0, now_bytes;
    int64_t last_change = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    while (qemu_sem_timedwait(&wd->stop, COLO_WATCHDOG_TICK_MS) != 0) {
        int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        int64_t armed = qatomic_read(&wd->armed_since);
        int64_t deadline = qatomic_read(&wd->deadline);

        if (armed && deadline && now >= deadline) {
            colo_watchdog_fire(COLO_PEER_LOSS_CAUSE_CHECKPOINT_OVERDUE,
                               "a checkpoint has not completed", now - armed);
            break;
        }
        if (!colo_watchdog_sample(wd, &now_bytes)) {
            continue;
        }
        if (now_bytes != last) {
            last = now_bytes;
            last_change = now;
            continue;
        }
        /* Waiting counts only from when the side began to wait. */
        if (armed &&
            now - MAX(last_change, armed) >= migrate_colo_peer_timeout()) {
            colo_watchdog_fire(COLO_PEER_LOSS_CAUSE_PEER_SILENT,
                               "no sign of life from the peer",
                               now - MAX(last_change, armed));
            break;
        }
    }
    return NULL;
}

static void colo_watchdog_add_channel(QIOChannel *ioc, void *opaque)
{
    ColoWatchdog *wd = opaque;
    int fd = colo_watchdog_socket_fd(ioc);

    if (fd >= 0) {
        g_array_append_val(wd->fds, fd);
    }
}

ColoWatchdog *colo_watchdog_start(QEMUFile *f, bool incoming)
{
    int fd = colo_watchdog_socket_fd(qemu_file_get_ioc(f));
    ColoWatchdog *wd;
    uint64_t bytes;

    if (fd < 0 || !colo_watchdog_sample_fd(fd, &bytes)) {
        warn_report("COLO: the migration channel is not a TCP socket; "
                    "a hung peer will not be noticed");
        return NULL;
    }
    wd = g_new0(ColoWatchdog, 1);
    wd->fds = g_array_new(false, false, sizeof(int));
    g_array_append_val(wd->fds, fd);
    if (migrate_multifd()) {
        multifd_foreach_channel(incoming, colo_watchdog_add_channel, wd);
    }
    qemu_sem_init(&wd->stop, 0);
    qemu_thread_create(&wd->thread, "colo-watchdog", colo_watchdog_thread,
                       wd, QEMU_THREAD_JOINABLE);
    return wd;
}

void colo_watchdog_arm(ColoWatchdog *wd, uint32_t limit_ms)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    if (wd) {
        qatomic_set(&wd->deadline, limit_ms ? now + limit_ms : 0);
        qatomic_set(&wd->armed_since, now);
    }
}

void colo_watchdog_disarm(ColoWatchdog *wd)
{
    if (wd) {
        qatomic_set(&wd->armed_since, 0);
        qatomic_set(&wd->deadline, 0);
    }
}

void colo_watchdog_stop(ColoWatchdog *wd)
{
    if (!wd) {
        return;
    }
    qemu_sem_post(&wd->stop);
    qemu_thread_join(&wd->thread);
    qemu_sem_destroy(&wd->stop);
    g_array_free(wd->fds, true);
    g_free(wd);
}

/* --- the keepalive ------------------------------------------------------- */

struct ColoKeepalive {
    QemuThread thread;
    QemuSemaphore stop;
    QEMUFile *f;
};

static void *colo_keepalive_thread(void *opaque)
{
    ColoKeepalive *k = opaque;

    while (qemu_sem_timedwait(&k->stop, COLO_HEARTBEAT_MS) != 0) {
        /* A failure is the side's to find on its next message. */
        if (!colo_send_message(k->f, COLO_MESSAGE_HEARTBEAT, NULL)) {
            break;
        }
    }
    return NULL;
}

ColoKeepalive *colo_keepalive_start(QEMUFile *f)
{
    ColoKeepalive *k = g_new0(ColoKeepalive, 1);

    k->f = f;
    qemu_sem_init(&k->stop, 0);
    qemu_thread_create(&k->thread, "colo-keepalive", colo_keepalive_thread,
                       k, QEMU_THREAD_JOINABLE);
    return k;
}

void colo_keepalive_stop(ColoKeepalive *k)
{
    qemu_sem_post(&k->stop);
    qemu_thread_join(&k->thread);
    qemu_sem_destroy(&k->stop);
    g_free(k);
}
