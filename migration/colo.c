/*
 * COLO (COarse-grained LOck-stepping) VM replication: the mode this process
 * runs in, how it leaves it, and the QMP and core entry points.
 *
 * The checkpoint loops live in colo-primary.c and colo-secondary.c; the
 * failover lifecycle in colo-failover.c; the wire messages in colo-wire.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/units.h"
#include "qapi/qapi-commands-migration.h"
#include "qapi/qapi-commands-yank.h"
#include "qapi/qapi-events-migration.h"
#include "qemu/lockable.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "migration/colo.h"
#include "migration/failover.h"
#include "block/replication.h"
#include "net/filter.h"
#include "net/colo-compare.h"
#include "migration.h"
#include "options.h"
#include "ram.h"
#include "colo-internal.h"
#include "colo-primary.h"
#include "colo-verify.h"
#include "trace.h"

/*
 * Which role this process plays.  Written by the side's thread when it
 * enters and leaves COLO; read by QMP and the core from any thread.
 */
static struct {
    QemuMutex lock;
    QemuCond decided;       /* signalled when @pending is set */
    /* Guarded by @lock. */
    COLOMode mode;          /* COLO_MODE_NONE outside COLO */
    COLOMode last_mode;     /* the mode of the session that ended last */
    COLOExitReason pending; /* why a failover was asked for, or none */
    COLOExitReason exited;  /* what the last COLO_EXIT said */
    /*
     * Once COLO_EXIT went out and the side awaits a decision: peer-lost or
     * peer-left; none before.
     */
    COLOExitReason waiting;
    bool peer_leaving;      /* the primary said it ends COLO on purpose */
    COLOPeerLossCause loss_cause;   /* if the peer is lost: how it showed */
} colo;

static void __attribute__((constructor)) colo_state_init(void)
{
    qemu_mutex_init(&colo.lock);
    qemu_cond_init(&colo.decided);
}

void colo_mode_enter(COLOMode mode)
{
    assert(mode != COLO_MODE_NONE);
    WITH_QEMU_LOCK_GUARD(&colo.lock) {
        assert(colo.mode == COLO_MODE_NONE);
        colo.mode = mode;
        colo.pending = COLO_EXIT_REASON_NONE;
        colo.exited = COLO_EXIT_REASON_NONE;
        colo.waiting = COLO_EXIT_REASON_NONE;
        colo.peer_leaving = false;
        colo.loss_cause = COLO_PEER_LOSS_CAUSE_LINK_FAILED;
    }
    colo_verify_session_start();
    trace_colo_mode_enter(COLOMode_str(mode));
}

void colo_mode_exit(void)
{
    COLOMode mode;
    COLOExitReason reason;
    bool reported;

    WITH_QEMU_LOCK_GUARD(&colo.lock) {
        mode = colo.mode;
        assert(mode != COLO_MODE_NONE);
        /* A side only leaves COLO through a failover request. */
        reason = colo.pending;
        assert(reason == COLO_EXIT_REASON_REQUEST ||
               reason == COLO_EXIT_REASON_ERROR);
        reported = colo.waiting != COLO_EXIT_REASON_NONE;
        colo.last_mode = mode;
        colo.mode = COLO_MODE_NONE;
        colo.exited = reason;
        colo.pending = COLO_EXIT_REASON_NONE;
        colo.waiting = COLO_EXIT_REASON_NONE;
    }
    trace_colo_mode_exit(COLOMode_str(mode), COLOExitReason_str(reason));
    /* A lost or leaving peer was reported then: one COLO_EXIT a session. */
    if (!reported) {
        qapi_event_send_colo_exit(mode, reason);
    }
}

COLOMode colo_current_mode(void)
{
    QEMU_LOCK_GUARD(&colo.lock);
    return colo.mode;
}

bool colo_request_failover(COLOExitReason why, Error **errp)
{
    assert(why == COLO_EXIT_REASON_REQUEST || why == COLO_EXIT_REASON_ERROR);
    /*
     * Held across the request so that the woken side cannot reach
     * colo_mode_exit() before the reason is recorded.
     */
    QEMU_LOCK_GUARD(&colo.lock);
    if (colo.mode == COLO_MODE_NONE) {
        error_setg(errp, "VM is not in COLO mode");
        return false;
    }
    if (!colo_failover_request(errp)) {
        return false;
    }
    colo.pending = why;
    qemu_cond_broadcast(&colo.decided);
    return true;
}

void colo_note_peer_loss(COLOPeerLossCause cause)
{
    QEMU_LOCK_GUARD(&colo.lock);
    colo.loss_cause = cause;
}

void colo_note_peer_leaving(void)
{
    QEMU_LOCK_GUARD(&colo.lock);
    colo.peer_leaving = true;
}

void colo_await_decision(Error *err, void (*freeze)(void *opaque),
                         void *opaque)
{
    COLOMode mode;
    COLOPeerLossCause cause;
    bool leaving;

    if (!err) {
        return;
    }
    if (colo_failover_pending()) {
        /* The failure is the failover cutting our I/O short. */
        error_free(err);
        return;
    }
    freeze(opaque);
    WITH_QEMU_LOCK_GUARD(&colo.lock) {
        mode = colo.mode;
        leaving = colo.peer_leaving;
        cause = colo.loss_cause;
        colo.waiting = leaving ? COLO_EXIT_REASON_PEER_LEFT
                               : COLO_EXIT_REASON_PEER_LOST;
    }
    if (leaving) {
        /*
         * Nothing failed: the primary went on alone or went away, as its
         * user asked.  That is theirs to follow up, never a reason to take
         * over by ourselves.
         */
        error_free(err);
        info_report("COLO: the primary ended COLO on purpose; this side "
                    "waits for x-colo-lost-heartbeat");
        trace_colo_peer_left(COLOMode_str(mode));
        qapi_event_send_colo_exit(mode, COLO_EXIT_REASON_REQUEST);
    } else {
        trace_colo_peer_lost(COLOMode_str(mode));
        qapi_event_send_colo_peer_lost(mode, cause, error_get_pretty(err));
        error_report_err(err);
        qapi_event_send_colo_exit(mode, COLO_EXIT_REASON_ERROR);
    }

    if (!leaving && migrate_colo_auto_failover()) {
        /* The user chose to go on alone, split brain or not. */
        colo_request_failover(COLO_EXIT_REASON_ERROR, NULL);
        return;
    }
    /*
     * Either side may be the one that lost touch; only someone who sees
     * both can tell which should go on.  Wait for x-colo-lost-heartbeat.
     */
    WITH_QEMU_LOCK_GUARD(&colo.lock) {
        while (colo.pending == COLO_EXIT_REASON_NONE) {
            qemu_cond_wait(&colo.decided, &colo.lock);
        }
    }
}

void colo_cut_migration_channels(void)
{
    YankInstance inst = { .type = YANK_INSTANCE_TYPE_MIGRATION };
    YankInstanceList list = { .value = &inst };
    Error *err = NULL;

    /* Not registered once the migration has been torn down: nothing to do. */
    qmp_yank(&list, &err);
    error_free(err);
}

void colo_run_alone_locked(void)
{
    Error *err = NULL;

    assert(bql_locked());
    replication_stop_all(true, &err);
    if (err) {
        error_report_err(err);
        err = NULL;
    }
    /* What only makes sense with a peer steps aside. */
    colo_compare_failover();
    colo_notify_filters_event(COLO_EVENT_FAILOVER, &err);
    if (err) {
        error_report_err(err);
    }
}

COLOStatus *qmp_query_colo_status(Error **errp)
{
    COLOStatus *s = g_new0(COLOStatus, 1);

    QEMU_LOCK_GUARD(&colo.lock);
    if (colo.mode != COLO_MODE_NONE) {
        s->mode = colo.mode;
        s->last_mode = colo.mode;
        /* Waiting: peer-lost or peer-left; otherwise none. */
        s->reason = colo_failover_pending() ? COLO_EXIT_REASON_PROCESSING
                                            : colo.waiting;
    } else {
        s->mode = COLO_MODE_NONE;
        s->last_mode = colo.last_mode;
        s->reason = colo.exited;
    }
    colo_verify_fill_status(s);
    return s;
}

void qmp_x_colo_lost_heartbeat(Error **errp)
{
    colo_request_failover(COLO_EXIT_REASON_REQUEST, errp);
}

bool migration_in_colo_state(void)
{
    return migrate_get_current()->state == MIGRATION_STATUS_COLO;
}

bool migration_incoming_in_colo_state(void)
{
    MigrationIncomingState *mis = migration_incoming_get_current();

    return mis && mis->state == MIGRATION_STATUS_COLO;
}

bool colo_check_capabilities(const bool *old_caps, const bool *new_caps,
                             Error **errp)
{
    if (colo_current_mode() != COLO_MODE_NONE &&
        memcmp(old_caps, new_caps,
               sizeof(bool) * MIGRATION_CAPABILITY__MAX) != 0) {
        error_setg(errp, "Migration capabilities cannot change while COLO "
                   "is running");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_COLO_VERIFY] &&
        !new_caps[MIGRATION_CAPABILITY_X_COLO]) {
        error_setg(errp, "Capability colo-verify requires x-colo");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_X_COLO] &&
        new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        error_setg(errp, "COLO does not support postcopy");
        error_append_hint(errp, "Disable postcopy-ram or x-colo.\n");
        return false;
    }
    return true;
}

bool colo_check_parameters(const MigrateSetParameters *p, Error **errp)
{
    const char *fixed = NULL;

    if (colo_current_mode() == COLO_MODE_NONE) {
        return true;
    }
    if (p->has_multifd_channels) {
        fixed = "multifd-channels";
    } else if (p->has_multifd_compression) {
        fixed = "multifd-compression";
    } else if (p->tls_creds || p->tls_hostname || p->tls_authz) {
        fixed = "TLS parameters";
    } else if (p->has_mode) {
        fixed = "mode";
    } else if (p->has_zero_page_detection) {
        fixed = "zero-page-detection";
    }
    if (fixed) {
        error_setg(errp, "The %s cannot change while COLO is running",
                   fixed);
        return false;
    }
    return true;
}

bool colo_check_migration(Error **errp)
{
    if (migrate_colo_verify() && ram_bytes_total() > COLO_VERIFY_MAX_RAM) {
        error_setg(errp, "colo-verify supports guests with up to %llu GiB "
                   "of RAM", COLO_VERIFY_MAX_RAM / GiB);
        return false;
    }
    /* Only the plain multifd receive path knows the COLO RAM cache. */
    if (migrate_multifd() &&
        migrate_multifd_compression() != MULTIFD_COMPRESSION_NONE) {
        error_setg(errp, "COLO does not support multifd compression");
        error_append_hint(errp, "Set multifd-compression to none.\n");
        return false;
    }
    return true;
}

void colo_shutdown(void)
{
    /* QEMU is exiting: let the side's thread wind down without a peer. */
    switch (colo_current_mode()) {
    case COLO_MODE_PRIMARY:
        /* A planned exit: the secondary hears it, and does not act on it. */
        colo_primary_leave();
        break;
    case COLO_MODE_SECONDARY:
        colo_request_failover(COLO_EXIT_REASON_REQUEST, NULL);
        break;
    default:
        break;
    }
}
