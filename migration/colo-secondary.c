/*
 * COLO secondary: after the first migration, run the VM and apply every
 * checkpoint the primary sends, all or nothing, until one side is lost.
 *
 * A checkpoint, each step its own function below:
 *   handshake  <- REQUEST, stop the SVM, REPLY ->
 *   RAM        <- VMSTATE_SEND, dirty RAM into the COLO RAM cache
 *   devices    <- [RAM_DIGEST], VMSTATE_SIZE, the device state into a buffer
 *   commit     RECEIVED ->; from here the primary may release the outputs
 *              of this state, so it is applied whatever happens next
 *   apply      reset the devices, copy the cache into guest RAM, load the
 *              device state, checkpoint the disks and the netfilters
 *   verify     [RAM_DIGEST_RESULT ->] the SVM's RAM against the digest
 *   resume     LOADED ->, restart the SVM
 * Until the commit nothing touches the running VM's RAM or devices: a
 * failover before it leaves the SVM at the last applied checkpoint plus
 * what it ran since.
 *
 * The bracketed messages are there when the primary has the colo-verify
 * capability; the secondary follows whatever the stream holds.
 *
 * The incoming migration coroutine hands over to a thread for the loop and
 * waits; the thread re-enters it when COLO ends.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/coroutine.h"
#include "qemu/rcu.h"
#include "io/channel-buffer.h"
#include "block/aio.h"
#include "block/export.h"
#include "block/replication.h"
#include "qapi/qapi-commands-block-export.h"
#include "system/block-backend.h"
#include "net/filter.h"
#include "system/runstate.h"
#include "system/memory.h"
#include "migration/blocker.h"
#include "migration/colo.h"
#include "migration/failover.h"
#include "migration.h"
#include "savevm.h"
#include "qemu-file.h"
#include "ram.h"
#include "multifd.h"
#include "colo-internal.h"
#include "colo-wire.h"
#include "colo-watchdog.h"
#include "colo-stats.h"
#include "colo-verify.h"
#include "migration/colo-ram-copy.h"
#include "trace.h"

typedef struct ColoSecondary {
    MigrationIncomingState *mis;
    Coroutine *co;              /* the incoming coroutine, parked */
    QemuThread thread;
    QEMUFile *from_pvm;         /* the migration stream */
    QEMUFile *to_pvm;           /* its return path */
    uint64_t checkpoints;
    ColoRamDigest *pvm_digest;  /* this checkpoint's, with colo-verify */
    bool state_broken;          /* a checkpoint was applied only in part */
    ColoWatchdog *watchdog;     /* always armed: the primary owes heartbeats */
    ColoRamCopy *ram_copy;      /* cache to RAM, kept for its threads */
    /*
     * An outgoing migration or a snapshot would take over the RAM state and
     * dirty log that the checkpoints go through.  Guarded by the BQL.
     */
    Error *blocker;

    QemuMutex io_lock;
    bool io_open;               /* guarded by io_lock: the files are usable */
} ColoSecondary;

static ColoSecondary secondary;

static void __attribute__((constructor)) colo_secondary_init_once(void)
{
    qemu_mutex_init(&secondary.io_lock);
}

/* Failover waker, from any thread: stop waiting for the primary. */
static void colo_secondary_unblock(void *opaque)
{
    ColoSecondary *sec = opaque;

    /* A multifd channel, not only the stream, may hold the loader. */
    WITH_QEMU_LOCK_GUARD(&sec->io_lock) {
        if (sec->io_open) {
            qemu_file_shutdown(sec->from_pvm);
            colo_cut_migration_channels();
            /*
             * A cut socket wakes only a thread that reads from it: one
             * that is busy or scheduled out would keep the loader in its
             * multifd sync, with the BQL, for as long as it likes.  End
             * the sync from here; the threads leave when they next look.
             */
            multifd_recv_shutdown();
        }
    }
}

/* --- one checkpoint ------------------------------------------------------ */

static bool colo_secondary_stop_vm(Error **errp)
{
    BQL_LOCK_GUARD();

    if (vm_stop_force_state(RUN_STATE_COLO) < 0) {
        error_setg(errp, "COLO: cannot stop the VM for a checkpoint");
        return false;
    }
    return true;
}

/*
 * Work of our own that may take long (draining the disks, applying a large
 * checkpoint) while the primary waits for our answer: owe the primary
 * nothing meanwhile, and let it hear that we are alive.
 */
static ColoKeepalive *colo_secondary_busy(ColoSecondary *sec)
{
    colo_watchdog_disarm(sec->watchdog);
    return colo_keepalive_start(sec->to_pvm);
}

static void colo_secondary_idle(ColoSecondary *sec, ColoKeepalive *k)
{
    colo_keepalive_stop(k);
    colo_watchdog_arm(sec->watchdog, 0);
}

static bool colo_secondary_handshake(ColoSecondary *sec, Error **errp)
{
    ColoKeepalive *k = colo_secondary_busy(sec);
    bool stopped = colo_secondary_stop_vm(errp);

    colo_secondary_idle(sec, k);
    if (!stopped ||
        !colo_send_message(sec->to_pvm, COLO_MESSAGE_CHECKPOINT_REPLY,
                           errp)) {
        return false;
    }
    colo_stats_apply_phase_done(COLO_APPLY_STOP);
    return true;
}

/* RAM pages land in the COLO RAM cache while the incoming state is COLO. */
static bool colo_secondary_load_ram(ColoSecondary *sec, Error **errp)
{
    int ret;

    if (!colo_receive_message(sec->from_pvm, COLO_MESSAGE_VMSTATE_SEND,
                              errp)) {
        return false;
    }
    bql_lock();
    ret = qemu_loadvm_state_main(sec->from_pvm, sec->mis, errp);
    bql_unlock();
    if (ret < 0) {
        error_prepend(errp, "COLO: cannot load dirty RAM: ");
        return false;
    }
    colo_stats_apply_phase_done(COLO_APPLY_RAM);
    return true;
}

/* <- [RAM_DIGEST], VMSTATE_SIZE: the size of the device state to come. */
static bool colo_secondary_receive_size(ColoSecondary *sec, uint64_t *size,
                                        Error **errp)
{
    COLOMessage msg;

    if (!colo_receive_next(sec->from_pvm, &msg, errp)) {
        return false;
    }
    if (msg == COLO_MESSAGE_RAM_DIGEST) {
        sec->pvm_digest = colo_verify_receive_digest(sec->from_pvm, errp);
        if (!sec->pvm_digest ||
            !colo_receive_next(sec->from_pvm, &msg, errp)) {
            return false;
        }
    }
    if (!colo_expect_message(msg, COLO_MESSAGE_VMSTATE_SIZE, errp)) {
        return false;
    }
    *size = qemu_get_be64(sec->from_pvm);
    if (qemu_file_get_error(sec->from_pvm)) {
        error_setg(errp, "COLO: the device state's size was cut short");
        return false;
    }
    return true;
}

static QIOChannelBuffer *colo_secondary_receive_devices(ColoSecondary *sec,
                                                        Error **errp)
{
    QIOChannelBuffer *bioc;
    uint64_t size;
    size_t got;

    if (!colo_secondary_receive_size(sec, &size, errp)) {
        return NULL;
    }
    if (size == 0 || size > COLO_MAX_DEVICE_STATE) {
        error_setg(errp, "COLO: the primary announced %" PRIu64 " bytes of "
                   "device state (at most %" PRIu64 " allowed)", size,
                   (uint64_t)COLO_MAX_DEVICE_STATE);
        return NULL;
    }
    bioc = qio_channel_buffer_new(size);
    got = qemu_get_buffer(sec->from_pvm, bioc->data, size);
    if (got != size || qemu_file_get_error(sec->from_pvm)) {
        error_setg(errp, "COLO: device state cut short after %zu of "
                   "%" PRIu64 " bytes", got, size);
        object_unref(OBJECT(bioc));
        return NULL;
    }
    bioc->usage = size;
    colo_stats_apply_phase_done(COLO_APPLY_DEVICE_STATE);
    return bioc;
}

/* With the BQL and the SVM stopped: make the SVM equal the PVM. */
static bool colo_secondary_apply_locked(ColoSecondary *sec,
                                        QIOChannelBuffer *bioc, Error **errp)
{
    ERRP_GUARD();
    QEMUFile *fb;
    size_t bytes;
    unsigned threads;
    int ret;

    /*
     * Loading device state into devices that have been running is not
     * what device models expect (q35 breaks); reset them first, as loadvm
     * does.  The reset runs before the RAM copy so that anything it writes
     * into guest RAM is overwritten by the primary's pages.
     *
     * The reset is one memory transaction: one rebuild of the memory
     * topology instead of one per region a reset handler touches (about a
     * millisecond per checkpoint here).  The device state is loaded outside
     * it, because post_load handlers map guest memory through the topology
     * they have just restored (AHCI restarts its DMA engines).
     */
    memory_region_transaction_begin();
    qemu_system_reset(SHUTDOWN_CAUSE_SNAPSHOT_LOAD);
    memory_region_transaction_commit();
    colo_stats_apply_phase_done(COLO_APPLY_RESET);
    colo_flush_ram_cache(colo_ram_copy_add, sec->ram_copy);
    bytes = colo_ram_copy_pending(sec->ram_copy);
    threads = colo_ram_copy_run(sec->ram_copy);
    trace_colo_secondary_ram_copy(bytes, threads);
    colo_stats_apply_phase_done(COLO_APPLY_RAM_FLUSH);

    fb = qemu_file_new_input(QIO_CHANNEL(bioc));
    ret = qemu_load_device_state(fb, errp);
    qemu_fclose(fb);
    if (ret < 0) {
        error_prepend(errp, "COLO: cannot load device state: ");
        return false;
    }
    colo_stats_apply_phase_done(COLO_APPLY_DEVICE_LOAD);

    if (replication_get_error_all(errp) &&
        replication_do_checkpoint_all(errp)) {
        colo_notify_filters_event(COLO_EVENT_CHECKPOINT, errp);
    }
    colo_stats_apply_phase_done(COLO_APPLY_DISKS);
    return !*errp;
}

/*
 * With colo-verify, the SVM stopped and the checkpoint applied: compare its
 * RAM with the PVM's digest and tell the primary.
 */
static bool colo_secondary_verify(ColoSecondary *sec, Error **errp)
{
    g_autoptr(ColoRamDigest) mine = colo_verify_digest_ram(sec->to_pvm);
    ColoRamDiff diff;
    bool ok;

    if (!colo_ram_digest_compare(mine, sec->pvm_digest, &diff)) {
        colo_verify_explain(mine, sec->pvm_digest, &diff);
    }
    colo_verify_record(COLO_MODE_SECONDARY, sec->checkpoints + 1, &diff);
    ok = colo_verify_send_result(sec->to_pvm, &diff, errp);
    colo_ram_diff_clear(&diff);
    colo_stats_apply_phase_done(COLO_APPLY_VERIFY);
    return ok;
}

/* <- CHECKPOINT_REQUEST; false if the primary is leaving instead. */
static bool colo_secondary_await_request(ColoSecondary *sec, Error **errp)
{
    COLOMessage msg;

    if (!colo_receive_next(sec->from_pvm, &msg, errp)) {
        return false;
    }
    if (msg == COLO_MESSAGE_LEAVING) {
        colo_note_peer_leaving();
        error_setg(errp, "COLO: the primary ended COLO");
        return false;
    }
    return colo_expect_message(msg, COLO_MESSAGE_CHECKPOINT_REQUEST, errp);
}

static bool colo_secondary_checkpoint(ColoSecondary *sec, Error **errp)
{
    QIOChannelBuffer *bioc = NULL;
    bool ok;

    if (!colo_secondary_await_request(sec, errp)) {
        return false;
    }
    trace_colo_checkpoint_begin(sec->checkpoints + 1);
    colo_stats_apply_begin();

    ok = colo_secondary_handshake(sec, errp) &&
         colo_secondary_load_ram(sec, errp) &&
         (bioc = colo_secondary_receive_devices(sec, errp)) &&
         colo_send_message(sec->to_pvm, COLO_MESSAGE_VMSTATE_RECEIVED, errp);
    if (ok) {
        ColoKeepalive *k = colo_secondary_busy(sec);

        bql_lock();
        ok = colo_secondary_apply_locked(sec, bioc, errp);
        sec->state_broken = !ok;
        bql_unlock();
        colo_secondary_idle(sec, k);
    }
    /* Still stopped: the RAM is the checkpoint's. */
    if (ok && sec->pvm_digest) {
        ok = colo_secondary_verify(sec, errp);
    }
    if (ok) {
        sec->checkpoints++;
        trace_colo_secondary_loaded(sec->checkpoints, bioc->usage);
        /*
         * The primary stays paused until it hears this; restarting the
         * SVM need not delay it (the SVM's output is compared whenever
         * it comes).  If the primary cannot hear it, the SVM stays
         * stopped until the failover decision.
         */
        ok = colo_send_message(sec->to_pvm, COLO_MESSAGE_VMSTATE_LOADED,
                               errp);
    }
    if (ok) {
        bql_lock();
        vm_start();
        bql_unlock();
        colo_stats_apply_phase_done(COLO_APPLY_RESUME);
        colo_stats_apply_end();
    }
    if (bioc) {
        object_unref(OBJECT(bioc));
    }
    colo_ram_digest_free(sec->pvm_digest);
    sec->pvm_digest = NULL;
    return ok;
}

/* --- the session --------------------------------------------------------- */

static bool colo_secondary_start(ColoSecondary *sec, Error **errp)
{
    ERRP_GUARD();

    bql_lock();
    migration_block_activate(errp);
    bql_unlock();
    if (*errp) {
        return false;
    }

    /* From now on, pages the SVM dirties are tracked for the next flush. */
    colo_incoming_start_dirty_log();

    bql_lock();
    replication_start_all(REPLICATION_MODE_SECONDARY, errp);
    if (!*errp) {
        vm_start();
    }
    bql_unlock();

    return !*errp &&
           colo_send_message(sec->to_pvm, COLO_MESSAGE_CHECKPOINT_READY, errp);
}

static bool colo_secondary_loop(ColoSecondary *sec, Error **errp)
{
    while (!colo_failover_pending()) {
        if (!colo_secondary_checkpoint(sec, errp)) {
            return false;
        }
    }
    return true;
}

/*
 * The primary may still be alive and writing through its replication
 * link.  Its writes must stop reaching the secondary disk before
 * replication stops saving that disk's old data, or they would land in
 * the survivor's disk unprotected.  On a COLO secondary the writable NBD
 * exports are the primary's way in: close them, and let the writes they
 * have in flight finish while the old data is still saved.
 */
static void colo_secondary_fence_exports(void)
{
    g_autoptr(BlockExportInfoList) exports = qmp_query_block_exports(NULL);

    for (BlockExportInfoList *e = exports; e; e = e->next) {
        BlockExport *exp = blk_exp_find(e->value->id);
        uint64_t perm, shared;

        if (!exp || e->value->type != BLOCK_EXPORT_TYPE_NBD) {
            continue;
        }
        blk_get_perm(exp->blk, &perm, &shared);
        if (!(perm & BLK_PERM_WRITE)) {
            continue;
        }
        trace_colo_secondary_fence_export(e->value->id);
        blk_exp_ref(exp);
        blk_exp_request_shutdown(exp);
        blk_drain(exp->blk);
        blk_exp_unref(exp);
    }
}

/* The primary is gone, or the user said so: run on from the last checkpoint. */
static void colo_secondary_take_over(ColoSecondary *sec)
{
    colo_failover_begin();
    bql_lock();
    colo_secondary_fence_exports();
    colo_run_alone_locked();
    if (sec->state_broken) {
        /* Running a half-loaded machine would be worse than not running. */
        error_report("COLO: the secondary VM holds a partly applied "
                     "checkpoint and stays stopped");
    } else if (runstate_check(RUN_STATE_COLO)) {
        vm_start();
    }
    bql_unlock();
    colo_failover_finish();
}

static void colo_secondary_setup(ColoSecondary *sec)
{
    MigrationIncomingState *mis = sec->mis;
    Error *err = NULL;

    /* RAM pages now go to the COLO cache instead of guest RAM. */
    migrate_set_state(&mis->state, MIGRATION_STATUS_ACTIVE,
                      MIGRATION_STATUS_COLO);
    sec->from_pvm = mis->from_src_file;
    if (mis->to_src_file) {
        /*
         * The return-path capability opened it already.  Telling the
         * primary's return-path thread that we are done lets it hand the
         * channel over to COLO.
         */
        migrate_send_rp_shut(mis, 0);
    } else {
        mis->to_src_file = qemu_file_get_return_path(sec->from_pvm);
    }
    sec->to_pvm = mis->to_src_file;
    colo_wire_open(sec->from_pvm);
    sec->checkpoints = 0;
    sec->state_broken = false;
    sec->ram_copy = colo_ram_copy_new();
    WITH_QEMU_LOCK_GUARD(&sec->io_lock) {
        sec->io_open = true;
    }
    /* Loaded, not started: from here on COLO restarts the SVM. */
    bql_lock();
    runstate_set(RUN_STATE_COLO);
    error_setg(&sec->blocker, "This VM is a COLO secondary: migrate or "
               "snapshot it once it has taken over");
    if (migrate_add_blocker_internal(&sec->blocker, &err) < 0) {
        /* No outgoing migration can be running here; say so if it is. */
        warn_report_err(err);
    }
    bql_unlock();
    colo_mode_enter(COLO_MODE_SECONDARY);
    colo_stats_secondary_start();
    colo_failover_reset(colo_secondary_unblock, sec);
    sec->watchdog = colo_watchdog_start(sec->from_pvm, true);
    /* The primary owes heartbeats at all times, but no deadline. */
    colo_watchdog_arm(sec->watchdog, 0);
}

static void colo_secondary_teardown(ColoSecondary *sec)
{
    colo_failover_detach();
    bql_lock();
    migrate_del_blocker(&sec->blocker);
    bql_unlock();
    WITH_QEMU_LOCK_GUARD(&sec->io_lock) {
        sec->io_open = false;
    }
    migrate_set_state(&sec->mis->state, MIGRATION_STATUS_COLO,
                      MIGRATION_STATUS_COMPLETED);
    colo_ram_copy_free(sec->ram_copy);
    sec->ram_copy = NULL;
    colo_mode_exit();
}

/*
 * The primary is lost: freeze this side until someone decides.  The SVM
 * stops (its output was never visible, and a stopped SVM cannot be taken
 * for a second live copy); the connection is shut down, so that a primary
 * that is alive after all sees the loss too.
 */
static void colo_secondary_freeze(void *opaque)
{
    ColoSecondary *sec = opaque;

    colo_secondary_unblock(sec);
    BQL_LOCK_GUARD();
    if (runstate_is_running()) {
        vm_stop_force_state(RUN_STATE_COLO);
    }
}

static void *colo_secondary_thread(void *opaque)
{
    ColoSecondary *sec = opaque;
    Error *err = NULL;

    rcu_register_thread();
    colo_secondary_setup(sec);
    if (colo_secondary_start(sec, &err)) {
        colo_secondary_loop(sec, &err);
    }
    /* Nothing is owed by the peer any more. */
    colo_watchdog_stop(sec->watchdog);
    sec->watchdog = NULL;
    colo_await_decision(err, colo_secondary_freeze, sec);
    colo_secondary_take_over(sec);
    colo_secondary_teardown(sec);
    rcu_unregister_thread();

    /* Back to the incoming coroutine, in the main loop. */
    aio_co_schedule(qemu_get_aio_context(), sec->co);
    return NULL;
}

void coroutine_fn colo_incoming_co(void)
{
    ColoSecondary *sec = &secondary;

    assert(bql_locked());
    sec->mis = migration_incoming_get_current();
    sec->co = qemu_coroutine_self();
    qemu_thread_create(&sec->thread, MIGRATION_THREAD_DST_COLO,
                       colo_secondary_thread, sec, QEMU_THREAD_JOINABLE);
    qemu_coroutine_yield();

    /* COLO is over; the thread's last act was to wake us. */
    qemu_thread_join(&sec->thread);
    /*
     * A multifd thread may still be writing a page into the cache: the
     * channels were cut, but only joined threads are done with it.
     */
    multifd_recv_stop_threads();
    colo_release_ram_cache();
}
