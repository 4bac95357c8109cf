/*
 * The "replication" block driver: one disk of a COLO pair.
 *
 * Primary mode: the node forwards the guest's I/O to its file child, an NBD
 * client connected to the secondary's export.  Once replication stops the
 * node fails every request, so the quorum above it (vote-threshold=1) goes
 * on with the local disk alone.
 *
 * Secondary mode: the file child is the active disk, whose backing is the
 * hidden disk, whose backing is the secondary disk that the primary writes
 * into through NBD:
 *
 *     SVM -> quorum (top-id) -> replication -> active -> hidden -> secondary
 *                                                                   ^
 *                                          primary's writes (NBD) --+
 *
 * While replicating, a backup job in sync=none mode copies what each of
 * the primary's writes overwrites in the secondary disk into the hidden
 * disk, and the SVM's own writes stay in the active disk, so the SVM keeps
 * seeing the last checkpoint plus its own writes.  A checkpoint empties the
 * active and hidden disks; failover commits them into the secondary disk,
 * which the node then uses directly.
 *
 * The replication manager (replication.c) drives start, checkpoint,
 * get_error and stop with the BQL held; I/O may run in any AioContext and
 * only reads the node's state.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/util.h"
#include "qemu/atomic.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/option.h"
#include "block/block-io.h"
#include "block/block_int.h"
#include "block/block_backup.h"
#include "block/blockjob.h"
#include "block/replication.h"
#include "system/block-backend.h"
#include "system/runstate.h"
#include "trace.h"

#define REPLICATION_OPT_MODE    "mode"
#define REPLICATION_OPT_TOP_ID  "top-id"

/* The permissions the file child takes from, and shares like, the parents. */
#define REPL_PERM_PASSTHROUGH   (BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE | \
                                 BLK_PERM_WRITE_UNCHANGED | BLK_PERM_RESIZE)

/*
 * Lifecycle of a node.  repl_set_state() is the only writer and checks
 * every change against repl_transitions[].
 */
typedef enum ReplNodeState {
    REPL_NODE_IDLE,             /* opened, or stopped without failover */
    REPL_NODE_REPLICATING,      /* started */
    REPL_NODE_FAILING_OVER,     /* secondary: commit job running */
    REPL_NODE_FAILOVER_FAILED,  /* secondary: commit failed, chain intact */
    REPL_NODE_STOPPED,          /* replication over; see repl_io_refused() */
    REPL_NODE__MAX,
} ReplNodeState;

static const char *const repl_state_names[REPL_NODE__MAX] = {
    [REPL_NODE_IDLE] = "idle",
    [REPL_NODE_REPLICATING] = "replicating",
    [REPL_NODE_FAILING_OVER] = "failing-over",
    [REPL_NODE_FAILOVER_FAILED] = "failover-failed",
    [REPL_NODE_STOPPED] = "stopped",
};

static const bool repl_transitions[REPL_NODE__MAX][REPL_NODE__MAX] = {
    [REPL_NODE_IDLE] = {
        [REPL_NODE_REPLICATING] = true,
    },
    [REPL_NODE_REPLICATING] = {
        [REPL_NODE_IDLE] = true,            /* secondary stop, no failover */
        [REPL_NODE_FAILING_OVER] = true,    /* secondary failover */
        [REPL_NODE_STOPPED] = true,         /* primary stop */
    },
    [REPL_NODE_FAILING_OVER] = {
        [REPL_NODE_FAILOVER_FAILED] = true,
        [REPL_NODE_STOPPED] = true,
    },
    [REPL_NODE_FAILOVER_FAILED] = {
        [REPL_NODE_FAILING_OVER] = true,    /* failover tried again */
        [REPL_NODE_IDLE] = true,            /* given up: chain left as is */
    },
    [REPL_NODE_STOPPED] = {
        [REPL_NODE_REPLICATING] = true,     /* continuous replication */
    },
};

/* What the replication manager may ask of a node, and when. */
typedef enum ReplVerb {
    REPL_VERB_START,
    REPL_VERB_STOP,
    REPL_VERB_CHECKPOINT,
    REPL_VERB__MAX,
} ReplVerb;

static const char *const repl_verb_names[REPL_VERB__MAX] = {
    [REPL_VERB_START] = "start",
    [REPL_VERB_STOP] = "stop",
    [REPL_VERB_CHECKPOINT] = "checkpoint",
};

static const bool repl_verbs[REPL_VERB__MAX][REPL_NODE__MAX] = {
    [REPL_VERB_START] = {
        [REPL_NODE_IDLE] = true,
        [REPL_NODE_STOPPED] = true,
    },
    [REPL_VERB_STOP] = {
        [REPL_NODE_REPLICATING] = true,
        [REPL_NODE_FAILOVER_FAILED] = true,
    },
    [REPL_VERB_CHECKPOINT] = {
        [REPL_NODE_REPLICATING] = true,
    },
};

typedef struct BDRVReplicationState {
    /* Fixed at open. */
    ReplicationMode mode;       /* the role the node was configured for */
    char *top_id;               /* secondary: root that owns the node */
    ReplicationState *rs;       /* registration with the manager */

    /* Read by I/O in any context; written by repl_set_state() only. */
    ReplNodeState state;
    /* First error on the file child while replicating as primary. */
    int io_error;

    /* Main loop, BQL held. */
    ReplicationMode role;       /* the role of the last start */
    Error *bg_error;            /* first error of a job, for get_error */

    /* Secondary, while replicating (and its teardown). */
    bool file_write;            /* hold WRITE on active to empty it */
    bool hidden_reopened_rw;    /* hidden was read-only before start */
    BdrvChild *hidden;          /* writable link to empty the hidden disk */
    /*
     * The write generations of active and hidden when they were last
     * emptied; valid while @overlays_empty_known.  A checkpoint that finds
     * both unchanged has nothing to drop.
     */
    bool overlays_empty_known;
    unsigned active_gen, hidden_gen;
    BlockDriverState *top_bs;   /* the blocked root, NULL when unblocked */
    Error *top_blocker;

    /* Primary, while replicating: the node may not leave its quorum. */
    Error *detach_blocker;
    BlockDriverState *detach_bs;    /* the node the blocker is on */
    Notifier exit_notifier;         /* registered with the blocker */
    BlockJob *backup_job;       /* secondary -> hidden copy-before-write */
    BlockJob *commit_job;       /* active + hidden -> secondary */
} BDRVReplicationState;

/* The three disks below a secondary node, top to bottom. */
typedef struct ReplChain {
    BlockDriverState *active;
    BlockDriverState *hidden;
    BlockDriverState *secondary;
} ReplChain;

static const char *repl_name(BlockDriverState *bs)
{
    return bdrv_get_device_or_node_name(bs);
}

static void repl_set_state(BlockDriverState *bs, ReplNodeState new_state)
{
    BDRVReplicationState *s = bs->opaque;
    ReplNodeState old = s->state;

    GLOBAL_STATE_CODE();
    assert(repl_transitions[old][new_state]);
    trace_replication_set_state(repl_name(bs), repl_state_names[old],
                                repl_state_names[new_state]);
    qatomic_set(&s->state, new_state);
}

/* Refuse @verb unless the current state accepts it. */
static bool repl_verb_check(BlockDriverState *bs, ReplVerb verb,
                            Error **errp)
{
    BDRVReplicationState *s = bs->opaque;

    if (repl_verbs[verb][s->state]) {
        return true;
    }
    trace_replication_verb_refused(repl_name(bs), repl_verb_names[verb],
                                   repl_state_names[s->state]);
    error_setg(errp, "Replication node '%s' cannot %s in state '%s'",
               repl_name(bs), repl_verb_names[verb],
               repl_state_names[s->state]);
    return false;
}

/* Keep the first background error; get_error reports it. */
static void repl_set_bg_error(BDRVReplicationState *s, Error *err)
{
    if (!s->bg_error) {
        s->bg_error = error_copy(err);
    }
}

/* Options */

static QemuOptsList repl_runtime_opts = {
    .name = "replication",
    .head = QTAILQ_HEAD_INITIALIZER(repl_runtime_opts.head),
    .desc = {
        {
            .name = REPLICATION_OPT_MODE,
            .type = QEMU_OPT_STRING,
            .help = "Replication mode: primary or secondary",
        },
        {
            .name = REPLICATION_OPT_TOP_ID,
            .type = QEMU_OPT_STRING,
            .help = "Secondary mode: node name or device ID of the root "
                    "node above the replication node",
        },
        { /* end of list */ }
    },
};

static bool repl_parse_opts(BDRVReplicationState *s, QDict *options,
                            Error **errp)
{
    QemuOpts *opts = qemu_opts_create(&repl_runtime_opts, NULL, 0,
                                      &error_abort);
    const char *mode, *top_id;
    bool ok = false;
    int m;

    if (!qemu_opts_absorb_qdict(opts, options, errp)) {
        goto out;
    }
    mode = qemu_opt_get(opts, REPLICATION_OPT_MODE);
    top_id = qemu_opt_get(opts, REPLICATION_OPT_TOP_ID);
    if (!mode) {
        error_setg(errp, "Replication needs the option 'mode' "
                   "(primary or secondary)");
        goto out;
    }
    m = qapi_enum_parse(&ReplicationMode_lookup, mode, -1, NULL);
    if (m < 0) {
        error_setg(errp, "Invalid replication mode '%s': expected primary "
                   "or secondary", mode);
        goto out;
    }
    if (m == REPLICATION_MODE_PRIMARY && top_id) {
        error_setg(errp, "The option 'top-id' is only valid in secondary "
                   "mode");
        goto out;
    }
    if (m == REPLICATION_MODE_SECONDARY && !top_id) {
        error_setg(errp, "Secondary mode needs the option 'top-id'");
        goto out;
    }
    s->mode = m;
    s->top_id = g_strdup(top_id);
    ok = true;
out:
    qemu_opts_del(opts);
    return ok;
}

/* The secondary's disk chain */

static bool GRAPH_RDLOCK repl_chain_find(BlockDriverState *bs, ReplChain *c,
                                         Error **errp)
{
    BlockDriverState *active = bs->file->bs;
    BlockDriverState *hidden = active->backing ? active->backing->bs : NULL;

    /* Checkpoints empty the active and hidden disks. */
    if (!active->drv->bdrv_make_empty) {
        error_setg(errp, "Active disk '%s' (%s) cannot be emptied at "
                   "checkpoints; use a format such as qcow2",
                   repl_name(active), active->drv->format_name);
        return false;
    }
    if (!hidden) {
        error_setg(errp, "Active disk '%s' has no backing (hidden) disk",
                   repl_name(active));
        return false;
    }
    if (!hidden->drv->bdrv_make_empty) {
        error_setg(errp, "Hidden disk '%s' (%s) cannot be emptied at "
                   "checkpoints; use a format such as qcow2",
                   repl_name(hidden), hidden->drv->format_name);
        return false;
    }
    if (!hidden->backing) {
        error_setg(errp, "Hidden disk '%s' has no backing (secondary) disk",
                   repl_name(hidden));
        return false;
    }
    *c = (ReplChain) {
        .active = active,
        .hidden = hidden,
        .secondary = hidden->backing->bs,
    };
    return true;
}

/* Find the chain and check it is usable: formats, shape and lengths. */
static bool repl_chain_check(BlockDriverState *bs, ReplChain *c, Error **errp)
{
    BlockDriverState *disks[] = { NULL, NULL, NULL };
    const char *what[] = { "active", "hidden", "secondary" };
    int64_t len[3];
    bool found;
    int i;

    bdrv_graph_rdlock_main_loop();
    found = repl_chain_find(bs, c, errp);
    bdrv_graph_rdunlock_main_loop();
    if (!found) {
        return false;
    }
    disks[0] = c->active;
    disks[1] = c->hidden;
    disks[2] = c->secondary;
    for (i = 0; i < 3; i++) {
        len[i] = bdrv_getlength(disks[i]);
        if (len[i] < 0) {
            error_setg_errno(errp, -len[i], "Cannot get the length of the "
                             "%s disk '%s'", what[i], repl_name(disks[i]));
            return false;
        }
    }
    if (len[0] != len[1] || len[1] != len[2]) {
        error_setg(errp, "Active, hidden and secondary disks differ in "
                   "length (%" PRId64 ", %" PRId64 ", %" PRId64 " bytes)",
                   len[0], len[1], len[2]);
        return false;
    }
    return true;
}

static bool GRAPH_RDLOCK repl_subtree_has(BlockDriverState *root,
                                          BlockDriverState *bs)
{
    BdrvChild *child;

    if (root == bs) {
        return true;
    }
    QLIST_FOREACH(child, &root->children, next) {
        if (repl_subtree_has(child->bs, bs)) {
            return true;
        }
    }
    return false;
}

/* top-id must name a root whose subtree holds @bs. */
static BlockDriverState *repl_top_find(BlockDriverState *bs, Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    BlockDriverState *top;
    Error *local_err = NULL;

    top = bdrv_lookup_bs(s->top_id, s->top_id, &local_err);
    if (!top) {
        error_propagate_prepend(errp, local_err, "Replication top-id: ");
        return NULL;
    }

    GRAPH_RDLOCK_GUARD_MAINLOOP();
    if (!bdrv_is_root_node(top)) {
        error_setg(errp, "Replication top-id '%s' is not a root node",
                   s->top_id);
        return NULL;
    }
    if (!repl_subtree_has(top, bs)) {
        error_setg(errp, "Replication top-id '%s' does not lead to "
                   "replication node '%s'", s->top_id, repl_name(bs));
        return NULL;
    }
    return top;
}

/* Secondary setup and teardown steps, each undone by its pair */

static bool repl_hidden_make_writable(BlockDriverState *bs,
                                      BlockDriverState *hidden, Error **errp)
{
    BDRVReplicationState *s = bs->opaque;

    /* Backing files open read-only; the backup job writes into it. */
    if (!bdrv_is_read_only(hidden)) {
        return true;
    }
    if (bdrv_reopen_set_read_only(hidden, false, errp) < 0) {
        error_prepend(errp, "Cannot make hidden disk '%s' writable: ",
                      repl_name(hidden));
        return false;
    }
    s->hidden_reopened_rw = true;
    return true;
}

/* Best effort: a hidden disk left writable does no harm. */
static void repl_hidden_restore(BlockDriverState *bs, BlockDriverState *hidden)
{
    BDRVReplicationState *s = bs->opaque;
    Error *err = NULL;

    if (!s->hidden_reopened_rw) {
        return;
    }
    s->hidden_reopened_rw = false;
    if (bdrv_reopen_set_read_only(hidden, true, &err) < 0) {
        warn_reportf_err(err, "Hidden disk '%s' stays writable: ",
                         repl_name(hidden));
    }
}

/* Hold WRITE on the active disk (file) and the hidden disk, to empty them. */
static bool repl_links_attach(BlockDriverState *bs, BlockDriverState *hidden,
                              Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    int ret;

    s->file_write = true;
    bdrv_graph_rdlock_main_loop();
    ret = bdrv_child_refresh_perms(bs, bs->file, errp);
    bdrv_graph_rdunlock_main_loop();
    if (ret < 0) {
        s->file_write = false;
        return false;
    }

    bdrv_ref(hidden);
    bdrv_graph_wrlock_drained();
    s->hidden = bdrv_attach_child(bs, hidden, "hidden", &child_of_bds,
                                  BDRV_CHILD_DATA, errp);
    bdrv_graph_wrunlock();
    return s->hidden != NULL;
}

static void repl_links_detach(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    if (s->hidden) {
        bdrv_graph_wrlock_drained();
        bdrv_unref_child(bs, s->hidden);
        s->hidden = NULL;
        bdrv_graph_wrunlock();
    }
    if (s->file_write) {
        s->file_write = false;
        bdrv_graph_rdlock_main_loop();
        /* Should this fail, WRITE merely stays held. */
        bdrv_child_refresh_perms(bs, bs->file, NULL);
        bdrv_graph_rdunlock_main_loop();
    }
}

/* Keep users from reshaping the tree under a running replication. */
static void repl_top_block(BlockDriverState *bs, BlockDriverState *top)
{
    BDRVReplicationState *s = bs->opaque;

    assert(!s->top_bs);
    error_setg(&s->top_blocker, "Replication is running on node '%s'",
               repl_name(bs));
    bdrv_op_block_all(top, s->top_blocker);
    s->top_bs = top;
}

static void repl_top_unblock(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    if (s->top_bs) {
        bdrv_op_unblock_all(s->top_bs, s->top_blocker);
        s->top_bs = NULL;
        error_free(s->top_blocker);
        s->top_blocker = NULL;
    }
}

/*
 * A primary node taken out of its quorum (x-blockdev-change, drive_del)
 * would go on checkpointing while the secondary's disk receives nothing.
 */
static void repl_primary_unblock_detach(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    if (s->detach_blocker) {
        notifier_remove(&s->exit_notifier);
        bdrv_op_unblock(bs, BLOCK_OP_TYPE_DRIVE_DEL, s->detach_blocker);
        error_free(s->detach_blocker);
        s->detach_blocker = NULL;
        s->detach_bs = NULL;
    }
}

/*
 * QEMU deletes every node on its way out, and a node must have no
 * blockers left by then.  Any shutdown request lifts the guard: with
 * -no-shutdown a powered-off guest leaves it lifted, which only gives an
 * operator back the choice to detach the node.
 */
static void repl_primary_exit(Notifier *n, void *data)
{
    BDRVReplicationState *s = container_of(n, BDRVReplicationState,
                                           exit_notifier);

    repl_primary_unblock_detach(s->detach_bs);
}

static void repl_primary_block_detach(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    assert(!s->detach_blocker);
    error_setg(&s->detach_blocker, "Replication node '%s' is replicating; "
               "it can be removed once COLO has ended", repl_name(bs));
    bdrv_op_block(bs, BLOCK_OP_TYPE_DRIVE_DEL, s->detach_blocker);
    s->detach_bs = bs;
    s->exit_notifier.notify = repl_primary_exit;
    qemu_register_shutdown_notifier(&s->exit_notifier);
}

static void repl_backup_done(void *opaque, int ret)
{
    BlockDriverState *bs = opaque;
    BDRVReplicationState *s = bs->opaque;
    Error *err = NULL;

    if (!s->backup_job) {
        return;     /* repl_backup_cancel() asked for it */
    }
    /*
     * Someone else ended it, e.g. QEMU cancelling every job on exit: the
     * hidden disk stops keeping the checkpoint, and the top may go away.
     */
    s->backup_job = NULL;
    error_setg_errno(&err, ret < 0 ? -ret : ECANCELED,
                     "Copy-before-write into the hidden disk of replication "
                     "node '%s' stopped", repl_name(bs));
    repl_set_bg_error(s, err);
    error_free(err);
    repl_top_unblock(bs);
}

static bool repl_backup_start(BlockDriverState *bs, ReplChain *c,
                              Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    BackupPerf perf = { .max_workers = 64 };

    /*
     * Break the primary's write rather than lose the old data: the primary
     * then drops this disk and the secondary still has its checkpoint.
     */
    s->backup_job = backup_job_create(NULL, c->secondary, c->hidden, 0,
                                      MIRROR_SYNC_MODE_NONE, NULL,
                                      BITMAP_SYNC_MODE_NEVER, false, false,
                                      NULL, &perf, BLOCKDEV_ON_ERROR_REPORT,
                                      BLOCKDEV_ON_ERROR_REPORT,
                                      ON_CBW_ERROR_BREAK_GUEST_WRITE,
                                      JOB_INTERNAL, repl_backup_done, bs,
                                      NULL, errp);
    if (!s->backup_job) {
        error_prepend(errp, "Cannot protect the secondary disk of "
                      "replication node '%s': ", repl_name(bs));
        return false;
    }
    job_start(&s->backup_job->job);
    return true;
}

static void repl_backup_cancel(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;
    BlockJob *job = s->backup_job;

    if (job) {
        /* Cleared first, so that repl_backup_done() knows it was us. */
        s->backup_job = NULL;
        job_cancel_sync(&job->job, true);
    }
}

/*
 * Empty @c unless it was emptied already and nothing wrote to it since
 * (*@gen is its write generation then).  Emptying a qcow2 image rewrites
 * its metadata and flushes it several times: milliseconds of every
 * checkpoint's pause, for a guest that wrote nothing.
 */
static int repl_empty_if_written(BDRVReplicationState *s, BdrvChild *c,
                                 unsigned *gen, Error **errp)
{
    int ret;

    if (s->overlays_empty_known && *gen == qatomic_read(&c->bs->write_gen)) {
        return 0;
    }
    ret = bdrv_make_empty(c, errp);
    if (ret == 0) {
        *gen = qatomic_read(&c->bs->write_gen);
    }
    return ret;
}

/*
 * Drop what the SVM wrote and what the PVM overwrote since the last
 * checkpoint: both VMs are now equal to the secondary disk's contents.
 */
static bool repl_overlays_empty(BlockDriverState *bs, Error **errp)
{
    ERRP_GUARD();
    BDRVReplicationState *s = bs->opaque;
    BlockDriverState *quiet = s->hidden->bs;
    bool ok = false;

    /* Quiesce both the NBD writer and the SVM while the disks change. */
    bdrv_ref(quiet);
    bdrv_drained_begin(quiet);
    bdrv_graph_rdlock_main_loop();
    if (s->backup_job) {
        /* Old data must be copied again on the next write of each area. */
        backup_do_checkpoint(s->backup_job, errp);
        if (*errp) {
            goto out;
        }
    }
    if (repl_empty_if_written(s, bs->file, &s->active_gen, errp) < 0 ||
        repl_empty_if_written(s, s->hidden, &s->hidden_gen, errp) < 0) {
        /* Not knowing how far it got, the next one empties both. */
        s->overlays_empty_known = false;
        goto out;
    }
    s->overlays_empty_known = true;
    ok = true;
out:
    bdrv_graph_rdunlock_main_loop();
    bdrv_drained_end(quiet);
    bdrv_unref(quiet);
    return ok;
}

/*
 * Undo whatever repl_secondary_start() set up, except the top blocker
 * which failover keeps until the commit ends.
 */
static void repl_secondary_teardown(BlockDriverState *bs,
                                    BlockDriverState *hidden)
{
    repl_backup_cancel(bs);
    repl_links_detach(bs);
    repl_hidden_restore(bs, hidden);
}

static bool repl_secondary_start(BlockDriverState *bs, Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    BlockDriverState *top;
    ReplChain c;

    if (!repl_chain_check(bs, &c, errp)) {
        return false;
    }
    if (bdrv_is_read_only(c.secondary)) {
        error_setg(errp, "Secondary disk '%s' is read-only: the primary's "
                   "writes could not land there", repl_name(c.secondary));
        return false;
    }
    top = repl_top_find(bs, errp);
    if (!top) {
        return false;
    }
    if (!repl_hidden_make_writable(bs, c.hidden, errp)) {
        return false;
    }
    if (!repl_links_attach(bs, c.hidden, errp)) {
        goto fail;
    }
    repl_top_block(bs, top);
    /* Empty first: the copies must not mix with stale data. */
    s->overlays_empty_known = false;
    if (!repl_overlays_empty(bs, errp) || !repl_backup_start(bs, &c, errp)) {
        goto fail;
    }
    return true;

fail:
    repl_top_unblock(bs);
    repl_secondary_teardown(bs, c.hidden);
    return false;
}

/* Failover: commit active and hidden into the secondary disk */

static void repl_commit_done(void *opaque, int ret)
{
    BlockDriverState *bs = opaque;
    BDRVReplicationState *s = bs->opaque;
    Error *err = NULL;

    s->commit_job = NULL;
    trace_replication_commit_done(repl_name(bs), ret);
    repl_top_unblock(bs);
    if (ret < 0) {
        error_setg_errno(&err, -ret, "Failover of replication node '%s' "
                         "could not commit to the secondary disk",
                         repl_name(bs));
        repl_set_bg_error(s, err);
        error_free(err);
        repl_set_state(bs, REPL_NODE_FAILOVER_FAILED);
        return;
    }
    repl_set_state(bs, REPL_NODE_STOPPED);
}

static bool repl_commit_start(BlockDriverState *bs, Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    Error *err = NULL;
    ReplChain c;

    /* A retry owns the error slot again. */
    error_free(s->bg_error);
    s->bg_error = NULL;
    repl_set_state(bs, REPL_NODE_FAILING_OVER);
    if (repl_chain_check(bs, &c, &err)) {
        s->commit_job = commit_active_start(NULL, c.active, c.secondary,
                                            JOB_INTERNAL, 0,
                                            BLOCKDEV_ON_ERROR_REPORT, NULL,
                                            repl_commit_done, bs, true, &err);
    }
    if (s->commit_job) {
        return true;
    }
    error_prepend(&err, "Failover of replication node '%s': ", repl_name(bs));
    repl_set_bg_error(s, err);
    repl_top_unblock(bs);
    repl_set_state(bs, REPL_NODE_FAILOVER_FAILED);
    error_propagate(errp, err);
    return false;
}

/* ReplicationOps */

/*
 * A secondary's active and hidden disks exist until its failover merges
 * them; after that it may only go on as a primary (continuous replication).
 */
static bool repl_role_check(BlockDriverState *bs, ReplicationMode role,
                            Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    bool merged = s->state == REPL_NODE_STOPPED;
    const char *why = NULL;

    if (s->mode == REPLICATION_MODE_PRIMARY) {
        if (role == REPLICATION_MODE_SECONDARY) {
            why = "it was opened in primary mode";
        }
    } else if (role == REPLICATION_MODE_SECONDARY && merged) {
        why = "it has failed over, and may only start as a primary";
    } else if (role == REPLICATION_MODE_PRIMARY && !merged) {
        why = "a secondary becomes a primary only after its failover";
    }
    if (why) {
        error_setg(errp, "Replication node '%s' cannot start as a %s in "
                   "state '%s': %s", repl_name(bs), ReplicationMode_str(role),
                   repl_state_names[s->state], why);
        return false;
    }
    return true;
}

/*
 * A primary keeps no state between checkpoints, but once a request to the
 * secondary failed (a write, or the flush of the checkpoint's own VM
 * stop), the secondary's disk may lag behind the PVM's: a checkpoint must
 * not pair that disk with the PVM's RAM.  Failing it makes COLO fail
 * over, and the primary goes on alone.
 */
static bool repl_primary_checkpoint(BlockDriverState *bs, Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    int io_error = qatomic_read(&s->io_error);
    bool orphan;

    if (io_error) {
        error_setg_errno(errp, -io_error, "Replication node '%s' cannot "
                         "checkpoint: I/O to the secondary failed",
                         repl_name(bs));
        return false;
    }
    /* However it got there, a node nobody writes through replicates nothing. */
    bdrv_graph_rdlock_main_loop();
    orphan = QLIST_EMPTY(&bs->parents);
    bdrv_graph_rdunlock_main_loop();
    if (orphan) {
        error_setg(errp, "Replication node '%s' cannot checkpoint: it is "
                   "no longer part of a disk", repl_name(bs));
        return false;
    }
    return true;
}

static bool repl_start(ReplicationState *rs, ReplicationMode mode,
                       Error **errp)
{
    BlockDriverState *bs = rs->opaque;
    BDRVReplicationState *s = bs->opaque;

    GLOBAL_STATE_CODE();
    if (!repl_verb_check(bs, REPL_VERB_START, errp) ||
        !repl_role_check(bs, mode, errp)) {
        return false;
    }
    if (mode == REPLICATION_MODE_SECONDARY && !repl_secondary_start(bs, errp)) {
        return false;
    }
    error_free(s->bg_error);
    s->bg_error = NULL;
    qatomic_set(&s->io_error, 0);
    s->role = mode;
    if (mode == REPLICATION_MODE_PRIMARY) {
        repl_primary_block_detach(bs);
    }
    repl_set_state(bs, REPL_NODE_REPLICATING);
    return true;
}

static bool repl_checkpoint(ReplicationState *rs, Error **errp)
{
    BlockDriverState *bs = rs->opaque;
    BDRVReplicationState *s = bs->opaque;

    GLOBAL_STATE_CODE();
    if (!repl_verb_check(bs, REPL_VERB_CHECKPOINT, errp)) {
        return false;
    }
    trace_replication_checkpoint(repl_name(bs), ReplicationMode_str(s->role));
    if (s->role == REPLICATION_MODE_SECONDARY) {
        return repl_overlays_empty(bs, errp);
    }
    return repl_primary_checkpoint(bs, errp);
}

static bool repl_stop(ReplicationState *rs, bool failover, Error **errp)
{
    BlockDriverState *bs = rs->opaque;
    BDRVReplicationState *s = bs->opaque;

    GLOBAL_STATE_CODE();
    if (!repl_verb_check(bs, REPL_VERB_STOP, errp)) {
        return false;
    }
    if (s->role == REPLICATION_MODE_PRIMARY) {
        repl_primary_unblock_detach(bs);
        repl_set_state(bs, REPL_NODE_STOPPED);
        return true;
    }
    if (s->state == REPL_NODE_REPLICATING) {
        repl_secondary_teardown(bs, s->hidden->bs);
    }
    if (failover) {
        return repl_commit_start(bs, errp);
    }
    repl_top_unblock(bs);
    repl_set_state(bs, REPL_NODE_IDLE);
    return true;
}

static bool repl_get_error(ReplicationState *rs, Error **errp)
{
    BlockDriverState *bs = rs->opaque;
    BDRVReplicationState *s = bs->opaque;
    int io_error = qatomic_read(&s->io_error);

    GLOBAL_STATE_CODE();
    if (s->bg_error) {
        error_propagate(errp, error_copy(s->bg_error));
        return false;
    }
    if (io_error) {
        error_setg_errno(errp, -io_error, "Replication node '%s' cannot "
                         "reach the secondary", repl_name(bs));
        return false;
    }
    return true;
}

/* A primary writes to the secondary through its file child (NBD). */
static const char *repl_peer_link(ReplicationState *rs)
{
    BlockDriverState *bs = rs->opaque;
    BDRVReplicationState *s = bs->opaque;

    GLOBAL_STATE_CODE();
    if (s->role != REPLICATION_MODE_PRIMARY ||
        s->state != REPL_NODE_REPLICATING || !bs->file) {
        return NULL;
    }
    return bdrv_get_node_name(bs->file->bs);
}

static const ReplicationOps repl_ops = {
    .start = repl_start,
    .stop = repl_stop,
    .checkpoint = repl_checkpoint,
    .get_error = repl_get_error,
    .peer_link = repl_peer_link,
};

/* BlockDriver */

static int repl_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    BDRVReplicationState *s = bs->opaque;
    ReplChain c;

    if (!repl_parse_opts(s, options, errp)) {
        return -EINVAL;
    }
    if (!bdrv_open_child(NULL, options, "file", bs, &child_of_bds,
                         BDRV_CHILD_DATA | BDRV_CHILD_PRIMARY, false, errp)) {
        g_free(s->top_id);
        return -EINVAL;
    }
    if (s->mode == REPLICATION_MODE_SECONDARY &&
        !repl_chain_check(bs, &c, errp)) {
        g_free(s->top_id);
        return -EINVAL;
    }
    s->state = REPL_NODE_IDLE;
    s->rs = replication_new(bs, &repl_ops);
    return 0;
}

static void repl_close(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    if (s->state == REPL_NODE_FAILING_OVER) {
        /* repl_commit_done() moves on to failover-failed. */
        job_cancel_sync(&s->commit_job->job, true);
    }
    if (s->state == REPL_NODE_REPLICATING &&
        s->role == REPLICATION_MODE_SECONDARY) {
        repl_secondary_teardown(bs, s->hidden->bs);
        repl_top_unblock(bs);
        repl_set_state(bs, REPL_NODE_IDLE);
    }
    repl_primary_unblock_detach(bs);
    assert(!s->backup_job && !s->commit_job && !s->hidden && !s->top_bs);
    replication_remove(s->rs);
    s->rs = NULL;
    error_free(s->bg_error);
    g_free(s->top_id);
}

static void GRAPH_RDLOCK
repl_child_perm(BlockDriverState *bs, BdrvChild *c, BdrvChildRole role,
                BlockReopenQueue *reopen_queue, uint64_t perm, uint64_t shared,
                uint64_t *nperm, uint64_t *nshared)
{
    BDRVReplicationState *s = bs->opaque;

    if (!(role & BDRV_CHILD_PRIMARY)) {
        /* The hidden disk: only emptied, next to the backup job's writes. */
        *nperm = BLK_PERM_WRITE;
        *nshared = BLK_PERM_ALL;
        return;
    }
    /* Like a filter: the node needs what its parents need, no more. */
    *nperm = perm & REPL_PERM_PASSTHROUGH;
    if (s->file_write) {
        *nperm |= BLK_PERM_WRITE;
    }
    /*
     * The disks below the active disk are written by the NBD server and
     * the backup job; the active disk passes on what it is given here.
     */
    *nshared = (shared & REPL_PERM_PASSTHROUGH) |
               (BLK_PERM_ALL & ~REPL_PERM_PASSTHROUGH) |
               BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED;
}

static int64_t coroutine_fn GRAPH_RDLOCK
repl_co_getlength(BlockDriverState *bs)
{
    return bdrv_co_getlength(bs->file->bs);
}

/* A stopped primary fails I/O, so its quorum goes on without it. */
static bool repl_io_refused(BDRVReplicationState *s)
{
    return s->mode == REPLICATION_MODE_PRIMARY &&
           qatomic_read(&s->state) == REPL_NODE_STOPPED;
}

/* A primary's link broke: remember it for get_error. */
static int repl_io_done(BDRVReplicationState *s, int ret)
{
    if (ret < 0 && s->mode == REPLICATION_MODE_PRIMARY &&
        qatomic_read(&s->state) == REPL_NODE_REPLICATING) {
        qatomic_cmpxchg(&s->io_error, 0, ret);
    }
    return ret;
}

static int coroutine_fn GRAPH_RDLOCK
repl_co_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
               QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    BDRVReplicationState *s = bs->opaque;

    if (repl_io_refused(s)) {
        return -EIO;
    }
    return repl_io_done(s, bdrv_co_preadv(bs->file, offset, bytes, qiov,
                                          flags));
}

static int coroutine_fn GRAPH_RDLOCK
repl_co_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    BDRVReplicationState *s = bs->opaque;

    if (repl_io_refused(s)) {
        return -EIO;
    }
    return repl_io_done(s, bdrv_co_pwritev(bs->file, offset, bytes, qiov,
                                           flags));
}

static int coroutine_fn GRAPH_RDLOCK repl_co_flush(BlockDriverState *bs)
{
    BDRVReplicationState *s = bs->opaque;

    if (repl_io_refused(s)) {
        return -EIO;
    }
    return repl_io_done(s, bdrv_co_flush(bs->file->bs));
}

/* What the node is; a reopen cannot change it. */
static const char *const repl_fixed_opts[] = {
    REPLICATION_OPT_MODE, REPLICATION_OPT_TOP_ID, NULL
};

static BlockDriver bdrv_replication = {
    .format_name = "replication",
    .instance_size = sizeof(BDRVReplicationState),
    .strong_runtime_opts = repl_fixed_opts,

    /* Lifecycle; replication itself is driven by the manager. */
    .bdrv_open = repl_open,
    .bdrv_child_perm = repl_child_perm,
    .bdrv_close = repl_close,

    /* I/O, forwarded to the file child while the state allows it. */
    .bdrv_co_preadv = repl_co_preadv,
    .bdrv_co_pwritev = repl_co_pwritev,
    .bdrv_co_flush = repl_co_flush,
    .bdrv_co_getlength = repl_co_getlength,
};

static void repl_register_driver(void)
{
    bdrv_register(&bdrv_replication);
}

block_init(repl_register_driver);
