/*
 * COLO primary: after the first migration, keep checkpointing the running
 * VM into the secondary until one of the two is lost.
 *
 * A checkpoint, each step its own function below:
 *   handshake  REQUEST ->, <- REPLY     the secondary has stopped its VM
 *   stop       stop the PVM, checkpoint the replicated disks
 *   save       VMSTATE_SEND, dirty RAM on the stream, device state
 *              into a buffer
 *   send       [RAM_DIGEST], VMSTATE_SIZE, the buffered device state
 *   ack        <- RECEIVED (the secondary holds it all),
 *              [<- RAM_DIGEST_RESULT], <- LOADED
 *   resume     restart the PVM, re-arm the timer
 *
 * Runs on the migration thread, which enters with the BQL held.  The BQL is
 * taken only around what needs it: stopping and starting the VM and saving
 * its state (the dirty-log sync of the RAM save runs work on the vCPUs under
 * TCG, and that requires the BQL).
 *
 * The bracketed messages are there with the colo-verify capability: a
 * digest of the stopped PVM's RAM, and the secondary's verdict on it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/atomic.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "io/channel-buffer.h"
#include "block/replication.h"
#include "qapi/qapi-commands-yank.h"
#include "system/runstate.h"
#include "migration/colo.h"
#include "migration/failover.h"
#include "net/colo-compare.h"
#include "migration.h"
#include "options.h"
#include "savevm.h"
#include "qemu-file.h"
#include "colo-internal.h"
#include "colo-primary.h"
#include "colo-wire.h"
#include "colo-watchdog.h"
#include "colo-stats.h"
#include "colo-verify.h"
#include "trace.h"

/* Device state is usually far below this; the buffer grows when needed. */
#define COLO_DEVICE_BUFFER_HINT (1 * MiB)

typedef struct ColoPrimary {
    /* Set up and torn down by the migration thread under the BQL. */
    MigrationState *s;
    QEMUFile *to_svm;           /* the migration stream */
    QEMUFile *from_svm;         /* its return path */
    QEMUTimer *timer;           /* main loop; guarded by the BQL */
    /* QEMU_CLOCK_HOST, guarded by the BQL: when the last checkpoint began */
    int64_t last_checkpoint_ms;
    int64_t last_resume_ms;     /* and when the PVM ran again after it */

    /* Owned by the migration thread during one checkpoint. */
    QIOChannelBuffer *devbuf;
    QEMUFile *devfile;
    ColoRamDigest *digest;      /* with colo-verify: the PVM's RAM */
    uint64_t checkpoints;

    ColoWatchdog *watchdog;

    /* Shared with other threads. */
    QemuSemaphore wake;         /* a checkpoint or a failover may be due */
    QemuSemaphore left;         /* the secondary was told we are leaving */
    bool checkpoint_wanted;     /* atomic */
    bool busy;                  /* atomic: waiting on the secondary's work */
    QemuMutex io_lock;
    bool io_open;               /* guarded by io_lock: the files are usable */
    char **disk_links;          /* guarded by io_lock: nodes to the SVM */
} ColoPrimary;

static ColoPrimary primary;

static void __attribute__((constructor)) colo_primary_init_once(void)
{
    qemu_sem_init(&primary.wake, 0);
    qemu_sem_init(&primary.left, 0);
    qemu_mutex_init(&primary.io_lock);
}

static void colo_primary_want_checkpoint(COLOCheckpointCause cause)
{
    colo_stats_want(cause);
    qatomic_set(&primary.checkpoint_wanted, true);
    qemu_sem_post(&primary.wake);
}

static void colo_primary_timer_fired(void *opaque)
{
    colo_primary_want_checkpoint(COLO_CHECKPOINT_CAUSE_TIMER);
}

/* colo-compare, from its thread: the outputs differ, or waited too long. */
void colo_checkpoint_request(COLOCheckpointCause cause)
{
    if (colo_current_mode() == COLO_MODE_PRIMARY) {
        colo_primary_want_checkpoint(cause);
    }
}

/*
 * With the BQL.  Periodic checkpoints start x-checkpoint-delay apart,
 * however long each one takes, so that their rate is the one asked for;
 * but the PVM runs at least half the delay between two, or checkpoints
 * slower than the delay would leave it no time at all.
 */
static void colo_primary_arm_timer(ColoPrimary *p)
{
    int64_t delay = migrate_checkpoint_delay();

    timer_mod(p->timer, MAX(p->last_checkpoint_ms + delay,
                            p->last_resume_ms + delay / 2));
}

/* The PVM runs again after a checkpoint that began at @began_ms. */
static void colo_primary_checkpoint_timed(ColoPrimary *p, int64_t began_ms)
{
    p->last_checkpoint_ms = began_ms;
    p->last_resume_ms = qemu_clock_get_ms(QEMU_CLOCK_HOST);
    colo_primary_arm_timer(p);
}

/* x-checkpoint-delay changed: it counts from the last checkpoint at once. */
void colo_checkpoint_delay_set(void)
{
    assert(bql_locked());
    if (colo_current_mode() == COLO_MODE_PRIMARY && primary.timer) {
        colo_primary_arm_timer(&primary);
    }
}

/*
 * The disk links to a lost secondary are cut with the rest: a hung
 * secondary never answers their requests, and the quorum, a VM stop or a
 * drain would wait for them for good, possibly with the BQL held.  The
 * yank fails them.
 */
static void colo_primary_cut_disk_links_locked(ColoPrimary *p)
{
    for (char **name = p->disk_links; name && *name; name++) {
        YankInstance inst = {
            .type = YANK_INSTANCE_TYPE_BLOCK_NODE,
            .u.block_node.node_name = *name,
        };
        YankInstanceList list = { .value = &inst };
        Error *err = NULL;

        trace_colo_primary_cut_disk_link(*name);
        /* Only NBD registers a yank instance; other links need none. */
        qmp_yank(&list, &err);
        error_free(err);
    }
}

/*
 * From any thread: cut every link to the secondary.  Besides the stream,
 * a multifd channel blocked on a full socket may hold a checkpoint in a
 * sync with the BQL, and the disk links hold the VM stop's drain.
 */
static void colo_primary_cut_peer(ColoPrimary *p)
{
    WITH_QEMU_LOCK_GUARD(&p->io_lock) {
        if (p->io_open) {
            qemu_file_shutdown(p->to_svm);
            colo_cut_migration_channels();
        }
        colo_primary_cut_disk_links_locked(p);
    }
}

/*
 * Between checkpoints the thread only waits on @wake, and a planned exit
 * has it say goodbye over the working link.  In a checkpoint it may be
 * blocked on a secondary that will never answer: cut.
 */
/*
 * Failover waker, from any thread: stop waiting for the secondary.  In a
 * checkpoint the links are cut, so that blocked I/O returns; either way
 * the thread sees the pending failover when it wakes.
 */
static void colo_primary_unblock(void *opaque)
{
    ColoPrimary *p = opaque;

    if (qatomic_read(&p->busy)) {
        colo_primary_cut_peer(p);
    }
    qemu_sem_post(&p->wake);
}

/* How long a planned exit waits for the goodbye to be on its way. */
#define COLO_LEAVE_WAIT_MS 1000

void colo_primary_leave(void)
{
    if (colo_request_failover(COLO_EXIT_REASON_REQUEST, NULL) &&
        !qatomic_read(&primary.busy)) {
        /* Sent with the BQL held: the thread needs no BQL for it. */
        qemu_sem_timedwait(&primary.left, COLO_LEAVE_WAIT_MS);
    }
}

/* migrate_cancel: a primary leaves COLO on purpose, before the cut. */
void colo_migration_cancelled(void)
{
    if (colo_current_mode() == COLO_MODE_PRIMARY) {
        colo_primary_leave();
    }
}

/* --- one checkpoint ------------------------------------------------------ */

static bool colo_primary_handshake(ColoPrimary *p, Error **errp)
{
    return colo_send_message(p->to_svm, COLO_MESSAGE_CHECKPOINT_REQUEST,
                             errp) &&
           colo_receive_message(p->from_svm, COLO_MESSAGE_CHECKPOINT_REPLY,
                                errp);
}

static bool colo_primary_stop_vm(ColoPrimary *p, Error **errp)
{
    ERRP_GUARD();
    BQL_LOCK_GUARD();

    if (vm_stop_force_state(RUN_STATE_COLO) < 0) {
        error_setg(errp, "COLO: cannot stop the VM for a checkpoint");
        return false;
    }
    /* Output from here on belongs to the new checkpoint's epoch. */
    colo_compare_checkpoint_begin();
    replication_do_checkpoint_all(errp);
    return !*errp;
}

/* With the BQL: the VM is stopped, its state is consistent. */
static bool colo_primary_save_locked(ColoPrimary *p, Error **errp)
{
    Error *cause = NULL;
    int ret;

    /* Dirty RAM goes straight onto the stream, up to its EOF marker. */
    qemu_savevm_live_state(p->to_svm);
    if (qemu_file_get_error_obj(p->to_svm, &cause)) {
        error_propagate_prepend(errp, cause, "COLO: cannot send dirty RAM: ");
        return false;
    }
    colo_stats_phase_done(COLO_PHASE_RAM);
    /* The secondary applies device state only once it has all of it. */
    ret = qemu_save_device_state(p->devfile);
    if (ret == 0) {
        ret = qemu_fflush(p->devfile);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "COLO: cannot save device state");
        return false;
    }
    return true;
}

static bool colo_primary_save(ColoPrimary *p, Error **errp)
{
    bool ok;

    if (!colo_send_message(p->to_svm, COLO_MESSAGE_VMSTATE_SEND, errp)) {
        return false;
    }
    p->devbuf = qio_channel_buffer_new(COLO_DEVICE_BUFFER_HINT);
    p->devfile = qemu_file_new_output(QIO_CHANNEL(p->devbuf));

    bql_lock();
    ok = colo_primary_save_locked(p, errp);
    bql_unlock();
    colo_stats_phase_done(COLO_PHASE_DEVICE_STATE);
    if (ok && migrate_colo_verify()) {
        /* The PVM is stopped: its RAM is the checkpoint's. */
        p->digest = colo_verify_digest_ram(p->to_svm);
    }
    return ok;
}

static bool colo_primary_send_devices(ColoPrimary *p, Error **errp)
{
    Error *cause = NULL;
    uint64_t size = p->devbuf->usage;

    if (p->digest && !colo_verify_send_digest(p->to_svm, p->digest, errp)) {
        return false;
    }
    if (!colo_send_value(p->to_svm, COLO_MESSAGE_VMSTATE_SIZE, size, errp)) {
        return false;
    }
    qemu_put_buffer(p->to_svm, p->devbuf->data, size);
    qemu_fflush(p->to_svm);
    if (qemu_file_get_error_obj(p->to_svm, &cause)) {
        error_propagate_prepend(errp, cause,
                                "COLO: cannot send device state: ");
        return false;
    }
    return true;
}

/* With colo-verify: what the secondary found, once it has loaded. */
static bool colo_primary_await_verdict(ColoPrimary *p, Error **errp)
{
    ColoRamDiff diff;

    if (!colo_verify_receive_result(p->from_svm, &diff, errp)) {
        return false;
    }
    colo_verify_record(COLO_MODE_PRIMARY, p->checkpoints + 1, &diff);
    colo_ram_diff_clear(&diff);
    return true;
}

static bool colo_primary_await_ack(ColoPrimary *p, Error **errp)
{
    return colo_receive_message(p->from_svm, COLO_MESSAGE_VMSTATE_RECEIVED,
                                errp) &&
           (!p->digest || colo_primary_await_verdict(p, errp)) &&
           colo_receive_message(p->from_svm, COLO_MESSAGE_VMSTATE_LOADED,
                                errp);
}

static void colo_primary_resume(ColoPrimary *p, int64_t began_ms)
{
    BQL_LOCK_GUARD();

    /* The secondary holds this state now; what it covers may go out. */
    colo_compare_checkpoint_done();
    vm_start();
    colo_primary_checkpoint_timed(p, began_ms);
}

/* What one checkpoint built up, whether it completed or not. */
static void colo_primary_drop_checkpoint_state(ColoPrimary *p)
{
    colo_ram_digest_free(p->digest);
    p->digest = NULL;
    if (p->devfile) {
        /* Closing frees the buffer's data along with the channel. */
        qemu_fclose(p->devfile);
        p->devfile = NULL;
    }
    if (p->devbuf) {
        object_unref(OBJECT(p->devbuf));
        p->devbuf = NULL;
    }
}

/* Marks the end of a phase in a chain of steps that each return true. */
static bool colo_primary_phase_done(ColoStatsPhase phase)
{
    colo_stats_phase_done(phase);
    return true;
}

static bool colo_primary_checkpoint(ColoPrimary *p, Error **errp)
{
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    int64_t began_ms = qemu_clock_get_ms(QEMU_CLOCK_HOST);
    bool ok;

    trace_colo_checkpoint_begin(p->checkpoints + 1);
    qatomic_set(&p->busy, true);
    colo_stats_checkpoint_begin();
    colo_watchdog_arm(p->watchdog, migrate_colo_checkpoint_timeout());
    ok = colo_primary_handshake(p, errp) &&
         colo_primary_phase_done(COLO_PHASE_REQUEST) &&
         colo_primary_stop_vm(p, errp) &&
         colo_primary_phase_done(COLO_PHASE_STOP) &&
         colo_primary_save(p, errp) &&
         colo_primary_send_devices(p, errp) &&
         colo_primary_phase_done(COLO_PHASE_SEND) &&
         colo_primary_await_ack(p, errp) &&
         colo_primary_phase_done(COLO_PHASE_LOAD);
    colo_watchdog_disarm(p->watchdog);
    qatomic_set(&p->busy, !ok);
    if (ok) {
        uint64_t device_bytes = p->devbuf->usage;

        colo_primary_resume(p, began_ms);
        colo_stats_phase_done(COLO_PHASE_RESUME);
        colo_stats_checkpoint_end();
        p->checkpoints++;
        trace_colo_checkpoint_end(p->checkpoints,
                                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                                  start, device_bytes);
    }
    /* On failure the VM stays stopped until a failover restarts it. */
    colo_primary_drop_checkpoint_state(p);
    return ok;
}

/* --- the session --------------------------------------------------------- */

static bool colo_primary_start(ColoPrimary *p, Error **errp)
{
    ERRP_GUARD();

    colo_stats_reset();
    colo_watchdog_arm(p->watchdog, migrate_colo_checkpoint_timeout());
    if (!colo_receive_message(p->from_svm, COLO_MESSAGE_CHECKPOINT_READY,
                              errp)) {
        return false;
    }
    colo_watchdog_disarm(p->watchdog);
    qatomic_set(&p->busy, false);

    BQL_LOCK_GUARD();
    replication_start_all(REPLICATION_MODE_PRIMARY, errp);
    if (*errp) {
        return false;
    }
    WITH_QEMU_LOCK_GUARD(&p->io_lock) {
        p->disk_links = replication_peer_links();
    }
    /* The secondary starts from this state: a checkpoint like any other. */
    colo_compare_checkpoint_begin();
    colo_compare_checkpoint_done();
    vm_start();
    colo_primary_checkpoint_timed(p, qemu_clock_get_ms(QEMU_CLOCK_HOST));
    return true;
}

/* Asked to end COLO with the link working: tell the secondary first. */
static void colo_primary_say_goodbye(ColoPrimary *p)
{
    /* If it fails, the secondary sees a lost primary; nothing else to do. */
    colo_send_message(p->to_svm, COLO_MESSAGE_LEAVING, NULL);
    qemu_sem_post(&p->left);
}

static bool colo_primary_loop(ColoPrimary *p, Error **errp)
{
    for (;;) {
        if (colo_failover_pending()) {
            colo_primary_say_goodbye(p);
            return true;
        }
        if (qatomic_xchg(&p->checkpoint_wanted, false)) {
            if (!colo_primary_checkpoint(p, errp)) {
                return false;
            }
            continue;
        }
        /* Quiet for a while: tell the secondary we are still here. */
        if (qemu_sem_timedwait(&p->wake, COLO_HEARTBEAT_MS) != 0 &&
            !colo_send_message(p->to_svm, COLO_MESSAGE_HEARTBEAT, errp)) {
            return false;
        }
    }
}

/* The secondary is gone, or the user said so: carry on alone. */
static void colo_primary_take_over(ColoPrimary *p)
{
    colo_failover_begin();
    bql_lock();
    timer_del(p->timer);
    colo_run_alone_locked();
    /* Stopped for a checkpoint that will never complete. */
    if (runstate_check(RUN_STATE_COLO)) {
        vm_start();
    }
    bql_unlock();
    colo_failover_finish();
}

/*
 * The secondary is lost: freeze this side until someone decides.  The PVM
 * stops, so that nothing it does meanwhile (output, disk writes) has to be
 * accounted for if the secondary is chosen to go on; the connection is
 * shut down, so that a secondary that is alive after all sees the loss too.
 */
static void colo_primary_freeze(void *opaque)
{
    ColoPrimary *p = opaque;

    /* Before the VM stop below, which waits for the disks. */
    colo_primary_cut_peer(p);
    BQL_LOCK_GUARD();
    timer_del(p->timer);
    if (runstate_is_running()) {
        vm_stop_force_state(RUN_STATE_COLO);
    }
}

static void colo_primary_run(ColoPrimary *p)
{
    Error *err = NULL;

    if (colo_primary_start(p, &err)) {
        colo_primary_loop(p, &err);
    }
    /* Nothing is owed by the peer any more. */
    colo_watchdog_stop(p->watchdog);
    p->watchdog = NULL;
    colo_await_decision(err, colo_primary_freeze, p);
    colo_primary_take_over(p);
}

static void colo_primary_setup(ColoPrimary *p, MigrationState *s)
{
    p->s = s;
    p->to_svm = s->to_dst_file;
    p->checkpoints = 0;
    qatomic_set(&p->checkpoint_wanted, false);
    /* Until the secondary is ready, a failover must not wait on it. */
    qatomic_set(&p->busy, true);
    while (qemu_sem_timedwait(&p->left, 0) == 0) {
        /* A goodbye of an earlier session nobody waited for. */
    }

    WITH_QEMU_LOCK_GUARD(&s->qemu_file_lock) {
        /* Kept open by the core when the return-path capability is on. */
        if (!s->rp_state.from_dst_file) {
            s->rp_state.from_dst_file = qemu_file_get_return_path(p->to_svm);
        }
        p->from_svm = s->rp_state.from_dst_file;
    }
    colo_wire_open(p->to_svm);
    WITH_QEMU_LOCK_GUARD(&p->io_lock) {
        p->io_open = true;
    }
    p->timer = timer_new_ms(QEMU_CLOCK_HOST, colo_primary_timer_fired, p);
    /*
     * The first migration left the PVM stopped: from here on it is COLO's
     * to restart, when the secondary is ready or at a failover.
     */
    runstate_set(RUN_STATE_COLO);
    colo_mode_enter(COLO_MODE_PRIMARY);
    colo_failover_reset(colo_primary_unblock, p);
    p->watchdog = colo_watchdog_start(p->to_svm, false);
}

static void colo_primary_teardown(ColoPrimary *p)
{
    MigrationState *s = p->s;
    QEMUFile *rp;

    colo_failover_detach();
    timer_free(p->timer);
    p->timer = NULL;
    WITH_QEMU_LOCK_GUARD(&p->io_lock) {
        p->io_open = false;
        g_strfreev(p->disk_links);
        p->disk_links = NULL;
    }
    WITH_QEMU_LOCK_GUARD(&s->qemu_file_lock) {
        rp = s->rp_state.from_dst_file;
        s->rp_state.from_dst_file = NULL;
    }
    if (rp) {
        qemu_fclose(rp);
    }
    /* A migrate_cancel leaves CANCELLING for the core to finish. */
    migrate_set_state(&s->state, MIGRATION_STATUS_COLO,
                      MIGRATION_STATUS_COMPLETED);
    colo_mode_exit();
}

void migrate_start_colo_process(MigrationState *s)
{
    assert(bql_locked());
    colo_primary_setup(&primary, s);
    bql_unlock();
    colo_primary_run(&primary);
    bql_lock();
    colo_primary_teardown(&primary);
}
