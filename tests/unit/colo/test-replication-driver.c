/*
 * The "replication" block driver (block/replication.c) on local images,
 * driven through the replication manager as COLO drives it.
 *
 * Primary: a quorum (vote-threshold=1) over a local disk and a replication
 * node whose file child stands in for the NBD client.  Secondary: a quorum
 * over a replication node whose chain is active (qcow2) -> hidden (qcow2)
 * -> secondary (raw); a BlockBackend on the secondary disk stands in for
 * the NBD server that receives the primary's writes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "qemu/units.h"
#include "qemu/job.h"
#include "qobject/qdict.h"
#include "block/block_int.h"
#include "block/replication.h"
#include "system/block-backend.h"

#define IMG_SIZE    (1 * MiB)
#define CHUNK       (64 * KiB)

/* Four areas of the disk, one per kind of write in a scenario. */
#define AREA_A      (0 * CHUNK)
#define AREA_B      (1 * CHUNK)
#define AREA_C      (2 * CHUNK)
#define AREA_D      (3 * CHUNK)

/* Data patterns: what the disk held at first, then who wrote what. */
#define P_BASE      0x11
#define P_PVM1      0x22
#define P_SVM1      0x33
#define P_PVM2      0x44
#define P_SVM2      0x55
#define P_LATER     0x66

static char *tmp_dir;

/* Helpers */

static char *img_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

static void img_create(const char *name, const char *fmt, int64_t size)
{
    g_autofree char *path = img_path(name);

    bdrv_img_create(path, fmt, NULL, NULL, NULL, size, BDRV_O_RDWR, true,
                    &error_abort);
}

static void img_remove(const char *name)
{
    g_autofree char *path = img_path(name);

    unlink(path);
}

/* Build options from key, value pairs; file names go under tmp_dir. */
static QDict * G_GNUC_NULL_TERMINATED opts_new(const char *key, ...)
{
    QDict *d = qdict_new();
    va_list ap;

    va_start(ap, key);
    for (; key; key = va_arg(ap, const char *)) {
        const char *val = va_arg(ap, const char *);

        if (g_str_has_suffix(key, "filename")) {
            g_autofree char *path = img_path(val);

            qdict_put_str(d, key, path);
        } else {
            qdict_put_str(d, key, val);
        }
    }
    va_end(ap);
    return d;
}

/* A BlockBackend on a named node, to look at it or bypass its parents. */
static BlockBackend *blk_on(const char *node, uint64_t perm)
{
    BlockDriverState *bs = bdrv_find_node(node);
    BlockBackend *blk = blk_new(qemu_get_aio_context(), perm, BLK_PERM_ALL);

    g_assert_nonnull(bs);
    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    return blk;
}

static int fill(BlockBackend *blk, int64_t offset, int64_t bytes, int pattern)
{
    g_autofree uint8_t *buf = g_malloc(bytes);

    memset(buf, pattern, bytes);
    return blk_pwrite(blk, offset, bytes, buf, 0);
}

static void fill_ok(BlockBackend *blk, int64_t offset, int64_t bytes,
                    int pattern)
{
    g_assert_cmpint(fill(blk, offset, bytes, pattern), ==, 0);
}

static void expect(BlockBackend *blk, int64_t offset, int64_t bytes,
                   int pattern)
{
    g_autofree uint8_t *buf = g_malloc(bytes);
    int64_t i;

    g_assert_cmpint(blk_pread(blk, offset, bytes, buf, 0), ==, 0);
    for (i = 0; i < bytes; i++) {
        if (buf[i] != pattern) {
            g_test_message("byte %" PRId64 " is 0x%02x, expected 0x%02x",
                           offset + i, buf[i], pattern);
            g_assert_cmphex(buf[i], ==, pattern);
        }
    }
}

static int read_ret(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    g_autofree uint8_t *buf = g_malloc(bytes);

    return blk_pread(blk, offset, bytes, buf, 0);
}

/* Whether @node itself holds data for the whole area (not its backing). */
static bool holds_data(const char *node, int64_t offset, int64_t bytes)
{
    BlockDriverState *bs = bdrv_find_node(node);
    int64_t pnum = 0;
    int ret;

    g_assert_nonnull(bs);
    bdrv_graph_rdlock_main_loop();
    ret = bdrv_is_allocated(bs, offset, bytes, &pnum);
    bdrv_graph_rdunlock_main_loop();
    g_assert_cmpint(ret, >=, 0);
    g_assert_cmpint(pnum, ==, bytes);
    return ret;
}

static bool node_blocked(const char *node)
{
    BlockDriverState *bs = bdrv_find_node(node);
    bool blocked;

    g_assert_nonnull(bs);
    bdrv_graph_rdlock_main_loop();
    blocked = bdrv_op_is_blocked(bs, BLOCK_OP_TYPE_BACKUP_SOURCE, NULL);
    bdrv_graph_rdunlock_main_loop();
    return blocked;
}

static void jobs_wait(void)
{
    while (job_next(NULL)) {
        aio_poll(qemu_get_aio_context(), true);
    }
}

static void error_expect(Error *err, const char *needle)
{
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_test_message("error '%s' lacks '%s'", error_get_pretty(err),
                       needle);
        g_assert_not_reached();
    }
    error_free(err);
}

static void start_ok(ReplicationMode mode)
{
    replication_start_all(mode, &error_abort);
}

static void start_refused(ReplicationMode mode, const char *needle)
{
    Error *err = NULL;

    replication_start_all(mode, &err);
    error_expect(err, needle);
}

static void stop_refused(bool failover, const char *needle)
{
    Error *err = NULL;

    replication_stop_all(failover, &err);
    error_expect(err, needle);
}

static void no_error(void)
{
    replication_get_error_all(&error_abort);
}

/* Primary: quorum over "local" and the replication node "buddy" */

typedef struct Primary {
    BlockBackend *pvm;      /* the guest's disk */
    BlockDriverState *local;
    BlockDriverState *buddy;
    BlockBackend *local_view;
    BlockBackend *remote_view;
} Primary;

/* @link_fails: the link to the secondary fails every write. */
static void primary_open(Primary *p, bool link_fails)
{
    QDict *buddy_opts;

    img_create("local.raw", "raw", IMG_SIZE);
    img_create("remote.raw", "raw", IMG_SIZE);
    p->local = bdrv_open(NULL, NULL,
                         opts_new("driver", "raw", "node-name", "local",
                                  "file.filename", "local.raw", NULL),
                         BDRV_O_RDWR, &error_abort);
    if (link_fails) {
        buddy_opts = opts_new("driver", "replication", "node-name", "buddy",
                              "mode", "primary", "file.driver", "raw",
                              "file.node-name", "remote",
                              "file.file.driver", "blkdebug",
                              "file.file.image.filename", "remote.raw",
                              "file.file.inject-error.0.event", "write_aio",
                              "file.file.inject-error.0.errno", "5", NULL);
    } else {
        buddy_opts = opts_new("driver", "replication", "node-name", "buddy",
                              "mode", "primary", "file.driver", "raw",
                              "file.node-name", "remote",
                              "file.file.filename", "remote.raw", NULL);
    }
    p->buddy = bdrv_open(NULL, NULL, buddy_opts, BDRV_O_RDWR, &error_abort);
    p->pvm = blk_new_open(NULL, NULL,
                          opts_new("driver", "quorum", "node-name", "pvm",
                                   "vote-threshold", "1",
                                   "read-pattern", "fifo",
                                   "children.0", "local",
                                   "children.1", "buddy", NULL),
                          BDRV_O_RDWR, &error_abort);
    p->local_view = blk_on("local", 0);
    p->remote_view = blk_on("remote", 0);
}

static void primary_close(Primary *p)
{
    blk_unref(p->local_view);
    blk_unref(p->remote_view);
    blk_unref(p->pvm);
    bdrv_unref(p->buddy);
    bdrv_unref(p->local);
    img_remove("local.raw");
    img_remove("remote.raw");
}

static void test_primary_io_before_start(void)
{
    Primary p;

    primary_open(&p, false);
    fill_ok(p.pvm, AREA_A, CHUNK, P_PVM1);
    expect(p.pvm, AREA_A, CHUNK, P_PVM1);
    expect(p.local_view, AREA_A, CHUNK, P_PVM1);
    expect(p.remote_view, AREA_A, CHUNK, P_PVM1);
    no_error();
    primary_close(&p);
}

static void test_primary_replicates(void)
{
    Primary p;

    primary_open(&p, false);
    start_ok(REPLICATION_MODE_PRIMARY);
    fill_ok(p.pvm, AREA_B, CHUNK, P_PVM1);
    expect(p.remote_view, AREA_B, CHUNK, P_PVM1);
    replication_do_checkpoint_all(&error_abort);
    fill_ok(p.pvm, AREA_C, CHUNK, P_PVM2);
    expect(p.local_view, AREA_C, CHUNK, P_PVM2);
    expect(p.remote_view, AREA_C, CHUNK, P_PVM2);
    no_error();
    replication_stop_all(false, &error_abort);
    primary_close(&p);
}

static void test_primary_failover(void)
{
    BlockBackend *direct;
    Primary p;

    primary_open(&p, false);
    start_ok(REPLICATION_MODE_PRIMARY);
    fill_ok(p.pvm, AREA_A, CHUNK, P_PVM1);
    replication_stop_all(true, &error_abort);

    /* The node itself now fails (quorum lets no one else write it)... */
    direct = blk_on("buddy", BLK_PERM_CONSISTENT_READ);
    g_assert_cmpint(read_ret(direct, AREA_A, CHUNK), ==, -EIO);
    g_assert_cmpint(blk_flush(direct), ==, -EIO);
    blk_unref(direct);

    /* ...and the guest goes on with its local disk alone. */
    fill_ok(p.pvm, AREA_A, CHUNK, P_PVM2);
    expect(p.pvm, AREA_A, CHUNK, P_PVM2);
    expect(p.local_view, AREA_A, CHUNK, P_PVM2);
    expect(p.remote_view, AREA_A, CHUNK, P_PVM1);
    /* I/O refused after the stop is not a replication error. */
    no_error();
    primary_close(&p);
}

static void test_primary_restart(void)
{
    Primary p;

    primary_open(&p, false);
    start_ok(REPLICATION_MODE_PRIMARY);
    replication_stop_all(true, &error_abort);
    start_ok(REPLICATION_MODE_PRIMARY);
    fill_ok(p.pvm, AREA_D, CHUNK, P_LATER);
    expect(p.remote_view, AREA_D, CHUNK, P_LATER);
    /* QEMU lifts the node's guard before it deletes it: stop here. */
    replication_stop_all(false, &error_abort);
    primary_close(&p);
}

static void test_primary_refusals(void)
{
    Error *err = NULL;
    Primary p;

    primary_open(&p, false);
    replication_do_checkpoint_all(&err);
    error_expect(err, "cannot checkpoint in state 'idle'");
    stop_refused(true, "cannot stop in state 'idle'");
    start_refused(REPLICATION_MODE_SECONDARY, "opened in primary mode");

    start_ok(REPLICATION_MODE_PRIMARY);
    start_refused(REPLICATION_MODE_PRIMARY,
                  "cannot start in state 'replicating'");
    replication_stop_all(false, &error_abort);
    stop_refused(true, "cannot stop in state 'stopped'");
    err = NULL;
    replication_do_checkpoint_all(&err);
    error_expect(err, "cannot checkpoint in state 'stopped'");
    primary_close(&p);
}

static void test_primary_link_error(void)
{
    Error *err = NULL;
    Primary p;

    primary_open(&p, true);
    start_ok(REPLICATION_MODE_PRIMARY);
    no_error();
    /* The quorum hides the failed child from the guest. */
    fill_ok(p.pvm, AREA_A, CHUNK, P_PVM1);
    expect(p.local_view, AREA_A, CHUNK, P_PVM1);
    replication_get_error_all(&err);
    error_expect(err, "cannot reach the secondary");
    replication_stop_all(true, &error_abort);
    primary_close(&p);
}

/* A checkpoint after a lost write would pair a stale disk with the RAM. */
static void test_primary_link_error_fails_checkpoint(void)
{
    Error *err = NULL;
    Primary p;

    primary_open(&p, true);
    start_ok(REPLICATION_MODE_PRIMARY);
    replication_do_checkpoint_all(&error_abort);
    fill_ok(p.pvm, AREA_B, CHUNK, P_PVM1);
    replication_do_checkpoint_all(&err);
    error_expect(err, "I/O to the secondary failed");
    /* Failover still works, and the guest's disk is intact. */
    replication_stop_all(true, &error_abort);
    fill_ok(p.pvm, AREA_C, CHUNK, P_PVM2);
    expect(p.local_view, AREA_B, CHUNK, P_PVM1);
    expect(p.local_view, AREA_C, CHUNK, P_PVM2);
    primary_close(&p);
}

/*
 * While it replicates, the primary node refuses to leave its quorum; if it
 * leaves anyway, the next checkpoint fails instead of pretending.
 */
static void test_primary_stays_in_quorum(void)
{
    BlockDriverState *quorum;
    BdrvChild *child;
    Error *err = NULL;
    Primary p;

    primary_open(&p, false);
    g_assert(!bdrv_op_is_blocked(p.buddy, BLOCK_OP_TYPE_DRIVE_DEL, NULL));
    start_ok(REPLICATION_MODE_PRIMARY);
    g_assert(bdrv_op_is_blocked(p.buddy, BLOCK_OP_TYPE_DRIVE_DEL, &err));
    error_expect(err, "it can be removed once COLO has ended");

    quorum = blk_bs(p.pvm);
    bdrv_graph_wrlock_drained();
    QLIST_FOREACH(child, &quorum->children, next) {
        if (child->bs == p.buddy) {
            break;
        }
    }
    g_assert(child);
    bdrv_del_child(quorum, child, &error_abort);
    bdrv_graph_wrunlock();

    err = NULL;
    replication_do_checkpoint_all(&err);
    error_expect(err, "no longer part of a disk");
    replication_stop_all(true, &error_abort);
    g_assert(!bdrv_op_is_blocked(p.buddy, BLOCK_OP_TYPE_DRIVE_DEL, NULL));
    primary_close(&p);
}

/* Secondary: quorum "top" over "repl" -> active -> hidden -> "sec" */

typedef struct SecondaryConfig {
    const char *active_fmt;     /* default qcow2 */
    const char *hidden_fmt;     /* default qcow2; NULL: no hidden disk */
    int64_t hidden_size;        /* default IMG_SIZE */
    const char *top_id;         /* default "top" */
    bool no_top_id;
    bool secondary_read_only;
    int64_t secondary_bad_sector;   /* writes there fail, if set */
} SecondaryConfig;

typedef struct Secondary {
    BlockBackend *nbd;          /* what the NBD server writes through */
    BlockDriverState *repl;
    BlockBackend *svm;          /* the guest's disk */
    BlockBackend *other;        /* an unrelated root */
} Secondary;

static const SecondaryConfig good_config = {
    .hidden_fmt = "qcow2",
};

static BlockBackend *secondary_disk_open(const SecondaryConfig *cfg)
{
    g_autofree char *sector = NULL;
    QDict *o;

    if (!cfg->secondary_bad_sector) {
        o = opts_new("driver", "raw", "node-name", "sec",
                     "file.filename", "sec.raw", NULL);
    } else {
        sector = g_strdup_printf("%" PRId64, cfg->secondary_bad_sector);
        o = opts_new("driver", "raw", "node-name", "sec",
                     "file.driver", "blkdebug",
                     "file.image.filename", "sec.raw",
                     "file.inject-error.0.event", "write_aio",
                     "file.inject-error.0.errno", "5",
                     "file.inject-error.0.sector", sector, NULL);
    }
    return blk_new_open(NULL, NULL, o,
                        cfg->secondary_read_only ? 0 : BDRV_O_RDWR,
                        &error_abort);
}

static QDict *repl_opts(const SecondaryConfig *cfg)
{
    const char *active_fmt = cfg->active_fmt ?: "qcow2";
    QDict *o = opts_new("driver", "replication", "node-name", "repl",
                        "mode", "secondary",
                        "file.driver", active_fmt, "file.node-name", "active",
                        "file.file.filename", "active.img", NULL);

    if (!cfg->no_top_id) {
        qdict_put_str(o, "top-id", cfg->top_id ?: "top");
    }
    if (cfg->hidden_fmt) {
        g_autofree char *path = img_path("hidden.img");

        qdict_put_str(o, "file.backing.driver", cfg->hidden_fmt);
        qdict_put_str(o, "file.backing.node-name", "hidden");
        qdict_put_str(o, "file.backing.file.filename", path);
        if (g_str_equal(cfg->hidden_fmt, "qcow2")) {
            qdict_put_str(o, "file.backing.backing", "sec");
        }
    }
    return o;
}

/* Open everything; only the replication node may fail, into @errp. */
static bool secondary_open(Secondary *v, const SecondaryConfig *cfg,
                           Error **errp)
{
    *v = (Secondary) { NULL };
    img_create("sec.raw", "raw", IMG_SIZE);
    img_create("active.img", cfg->active_fmt ?: "qcow2", IMG_SIZE);
    img_create("hidden.img", cfg->hidden_fmt ?: "qcow2",
               cfg->hidden_size ?: IMG_SIZE);
    img_create("other.raw", "raw", IMG_SIZE);

    v->nbd = secondary_disk_open(cfg);
    if (!cfg->secondary_read_only && !cfg->secondary_bad_sector) {
        fill_ok(v->nbd, 0, IMG_SIZE, P_BASE);
    }
    v->other = blk_new_open(NULL, NULL,
                            opts_new("driver", "raw", "node-name", "other",
                                     "file.filename", "other.raw", NULL),
                            BDRV_O_RDWR, &error_abort);
    v->repl = bdrv_open(NULL, NULL, repl_opts(cfg), BDRV_O_RDWR, errp);
    if (!v->repl) {
        return false;
    }
    v->svm = blk_new_open(NULL, NULL,
                          opts_new("driver", "quorum", "node-name", "top",
                                   "vote-threshold", "1",
                                   "read-pattern", "fifo",
                                   "children.0", "repl", NULL),
                          BDRV_O_RDWR, &error_abort);
    return true;
}

static void secondary_close(Secondary *v)
{
    /*
     * As QEMU does on exit: jobs end before the graph goes, which also
     * lifts the replication's blocker from the top node.
     */
    job_cancel_sync_all();
    if (v->svm) {
        blk_unref(v->svm);
    }
    if (v->repl) {
        bdrv_unref(v->repl);
    }
    blk_unref(v->other);
    blk_unref(v->nbd);
    img_remove("sec.raw");
    img_remove("active.img");
    img_remove("hidden.img");
    img_remove("other.raw");
}

static void secondary_open_ok(Secondary *v)
{
    g_assert_true(secondary_open(v, &good_config, &error_abort));
}

static void test_secondary_io_before_start(void)
{
    Secondary v;

    secondary_open_ok(&v);
    expect(v.svm, 0, IMG_SIZE, P_BASE);
    fill_ok(v.svm, AREA_A, CHUNK, P_SVM1);
    expect(v.svm, AREA_A, CHUNK, P_SVM1);
    g_assert_true(holds_data("active", AREA_A, CHUNK));
    expect(v.nbd, AREA_A, CHUNK, P_BASE);
    secondary_close(&v);
}

static void test_secondary_start(void)
{
    Secondary v;

    secondary_open_ok(&v);
    fill_ok(v.svm, AREA_A, CHUNK, P_SVM1);
    g_assert_false(node_blocked("top"));
    g_assert_true(bdrv_is_read_only(bdrv_find_node("hidden")));

    start_ok(REPLICATION_MODE_SECONDARY);
    /* Both VMs were just synchronised: earlier SVM writes are dropped. */
    g_assert_false(holds_data("active", AREA_A, CHUNK));
    expect(v.svm, 0, IMG_SIZE, P_BASE);
    g_assert_true(node_blocked("top"));
    g_assert_false(bdrv_is_read_only(bdrv_find_node("hidden")));
    no_error();
    secondary_close(&v);
}

/* Writes while replicating: v is started; PVM1 at B, SVM1 at C. */
static void secondary_write_both(Secondary *v)
{
    BlockBackend *hidden_view;

    fill_ok(v->nbd, AREA_B, CHUNK, P_PVM1);
    /* The old data moved to the hidden disk; the SVM keeps seeing it. */
    g_assert_true(holds_data("hidden", AREA_B, CHUNK));
    hidden_view = blk_on("hidden", 0);
    expect(hidden_view, AREA_B, CHUNK, P_BASE);
    blk_unref(hidden_view);
    expect(v->svm, AREA_B, CHUNK, P_BASE);
    g_assert_false(holds_data("active", AREA_B, CHUNK));

    fill_ok(v->svm, AREA_C, CHUNK, P_SVM1);
    expect(v->svm, AREA_C, CHUNK, P_SVM1);
    g_assert_true(holds_data("active", AREA_C, CHUNK));
    g_assert_false(holds_data("hidden", AREA_C, CHUNK));
    expect(v->nbd, AREA_C, CHUNK, P_BASE);
}

static void test_secondary_writes(void)
{
    Secondary v;

    secondary_open_ok(&v);
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(&v);
    /* A second write to the same area keeps the first old data. */
    fill_ok(v.nbd, AREA_B, CHUNK, P_PVM2);
    expect(v.svm, AREA_B, CHUNK, P_BASE);
    no_error();
    secondary_close(&v);
}

static void secondary_checkpoint(Secondary *v)
{
    replication_get_error_all(&error_abort);
    replication_do_checkpoint_all(&error_abort);
    g_assert_false(holds_data("active", 0, IMG_SIZE));
    g_assert_false(holds_data("hidden", 0, IMG_SIZE));
}

static void test_secondary_checkpoint(void)
{
    Secondary v;

    secondary_open_ok(&v);
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(&v);
    secondary_checkpoint(&v);
    /* The SVM now sees the PVM's disk, without its own writes. */
    expect(v.svm, AREA_B, CHUNK, P_PVM1);
    expect(v.svm, AREA_C, CHUNK, P_BASE);

    /* The next PVM write to B saves P_PVM1 again. */
    fill_ok(v.nbd, AREA_B, CHUNK, P_PVM2);
    expect(v.svm, AREA_B, CHUNK, P_PVM1);
    secondary_checkpoint(&v);
    expect(v.svm, AREA_B, CHUNK, P_PVM2);
    secondary_close(&v);
}

/* How often the image file under node @name has been written to. */
static unsigned file_writes(const char *name)
{
    return qatomic_read(&bdrv_find_node(name)->file->bs->write_gen);
}

/*
 * A checkpoint empties only an overlay that was written since the last
 * one: emptying rewrites and flushes the image's metadata, which would
 * otherwise cost every checkpoint's pause milliseconds for nothing.
 */
static void test_secondary_checkpoint_skips_clean(void)
{
    Secondary v;
    unsigned active, hidden;

    secondary_open_ok(&v);
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_checkpoint(&v);

    /* Nothing written: neither image is touched. */
    active = file_writes("active");
    hidden = file_writes("hidden");
    secondary_checkpoint(&v);
    g_assert_cmpuint(file_writes("active"), ==, active);
    g_assert_cmpuint(file_writes("hidden"), ==, hidden);

    /* Only the SVM wrote: only active is emptied. */
    fill_ok(v.svm, AREA_C, CHUNK, P_SVM1);
    g_assert_true(holds_data("active", AREA_C, CHUNK));
    active = file_writes("active");
    hidden = file_writes("hidden");
    secondary_checkpoint(&v);
    g_assert_cmpuint(file_writes("active"), >, active);
    g_assert_cmpuint(file_writes("hidden"), ==, hidden);
    expect(v.svm, AREA_C, CHUNK, P_BASE);

    /* Only the PVM wrote: its old data in hidden goes. */
    fill_ok(v.nbd, AREA_B, CHUNK, P_PVM1);
    g_assert_true(holds_data("hidden", AREA_B, CHUNK));
    active = file_writes("active");
    secondary_checkpoint(&v);
    g_assert_cmpuint(file_writes("active"), ==, active);
    expect(v.svm, AREA_B, CHUNK, P_PVM1);

    /* After a clean checkpoint the next PVM write still saves old data. */
    secondary_checkpoint(&v);
    fill_ok(v.nbd, AREA_B, CHUNK, P_PVM2);
    expect(v.svm, AREA_B, CHUNK, P_PVM1);
    secondary_checkpoint(&v);
    expect(v.svm, AREA_B, CHUNK, P_PVM2);
    no_error();
    secondary_close(&v);
}

/* v is started and checkpointed: PVM1 at B.  Then PVM2 at D, SVM2 at A. */
static void secondary_failover(Secondary *v)
{
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(v);
    secondary_checkpoint(v);
    fill_ok(v->nbd, AREA_D, CHUNK, P_PVM2);
    fill_ok(v->svm, AREA_A, CHUNK, P_SVM2);

    replication_stop_all(true, &error_abort);
    stop_refused(true, "cannot stop in state 'failing-over'");
    jobs_wait();
    no_error();
}

static void test_secondary_failover(void)
{
    Secondary v;

    secondary_open_ok(&v);
    secondary_failover(&v);

    /* Last checkpoint plus the SVM's own writes, in the secondary disk. */
    expect(v.svm, AREA_A, CHUNK, P_SVM2);
    expect(v.svm, AREA_B, CHUNK, P_PVM1);
    expect(v.svm, AREA_C, CHUNK, P_BASE);
    expect(v.svm, AREA_D, CHUNK, P_BASE);
    expect(v.nbd, AREA_A, CHUNK, P_SVM2);
    expect(v.nbd, AREA_B, CHUNK, P_PVM1);
    expect(v.nbd, AREA_D, CHUNK, P_BASE);

    /* The node now sits on the secondary disk; the overlays are gone. */
    g_assert_true(v.repl->file->bs == bdrv_find_node("sec"));
    g_assert_null(bdrv_find_node("active"));
    g_assert_null(bdrv_find_node("hidden"));
    g_assert_false(node_blocked("top"));
    fill_ok(v.svm, AREA_C, CHUNK, P_LATER);
    expect(v.nbd, AREA_C, CHUNK, P_LATER);
    secondary_close(&v);
}

static void test_secondary_continuous(void)
{
    Secondary v;

    secondary_open_ok(&v);
    secondary_failover(&v);
    start_refused(REPLICATION_MODE_SECONDARY,
                  "has failed over, and may only start as a primary");

    /* This side is the primary now; its disk is the local one. */
    start_ok(REPLICATION_MODE_PRIMARY);
    fill_ok(v.svm, AREA_C, CHUNK, P_LATER);
    replication_do_checkpoint_all(&error_abort);
    expect(v.nbd, AREA_C, CHUNK, P_LATER);
    replication_stop_all(true, &error_abort);
    /* A former secondary keeps serving its guest after the stop. */
    fill_ok(v.svm, AREA_D, CHUNK, P_LATER);
    expect(v.svm, AREA_D, CHUNK, P_LATER);
    expect(v.nbd, AREA_D, CHUNK, P_LATER);
    secondary_close(&v);
}

static void test_secondary_stop_without_failover(void)
{
    Secondary v;

    secondary_open_ok(&v);
    start_refused(REPLICATION_MODE_PRIMARY,
                  "becomes a primary only after its failover");
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(&v);
    replication_stop_all(false, &error_abort);

    /* Everything set up for replication is undone; the chain stays. */
    g_assert_false(node_blocked("top"));
    g_assert_true(bdrv_is_read_only(bdrv_find_node("hidden")));
    g_assert_true(v.repl->file->bs == bdrv_find_node("active"));
    expect(v.svm, AREA_C, CHUNK, P_SVM1);

    /* And it can start over. */
    start_ok(REPLICATION_MODE_SECONDARY);
    expect(v.svm, AREA_C, CHUNK, P_BASE);
    secondary_close(&v);
}

static void test_secondary_refusals(void)
{
    Error *err = NULL;
    Secondary v;

    secondary_open_ok(&v);
    replication_do_checkpoint_all(&err);
    error_expect(err, "cannot checkpoint in state 'idle'");
    stop_refused(false, "cannot stop in state 'idle'");
    start_ok(REPLICATION_MODE_SECONDARY);
    start_refused(REPLICATION_MODE_SECONDARY,
                  "cannot start in state 'replicating'");
    secondary_close(&v);
}

static void test_secondary_failover_failed(void)
{
    SecondaryConfig cfg = good_config;
    Error *err = NULL;
    Secondary v;

    /* The commit's write of area E into the secondary disk fails. */
    cfg.secondary_bad_sector = (8 * CHUNK) / BDRV_SECTOR_SIZE;
    g_assert_true(secondary_open(&v, &cfg, &error_abort));
    start_ok(REPLICATION_MODE_SECONDARY);
    fill_ok(v.svm, 8 * CHUNK, CHUNK, P_SVM1);

    replication_stop_all(true, &error_abort);
    jobs_wait();
    replication_get_error_all(&err);
    error_expect(err, "could not commit to the secondary disk");
    g_assert_false(node_blocked("top"));
    /* The chain is intact: the SVM still reads its own write. */
    g_assert_true(v.repl->file->bs == bdrv_find_node("active"));
    expect(v.svm, 8 * CHUNK, CHUNK, P_SVM1);

    /* Trying again fails the same way; giving up leaves the node idle. */
    replication_stop_all(true, &error_abort);
    jobs_wait();
    err = NULL;
    replication_get_error_all(&err);
    error_expect(err, "could not commit");
    replication_stop_all(false, &error_abort);
    start_refused(REPLICATION_MODE_PRIMARY,
                  "in state 'idle'");
    secondary_close(&v);
}

static void test_secondary_exit_while_replicating(void)
{
    Error *err = NULL;
    Secondary v;

    secondary_open_ok(&v);
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(&v);
    job_cancel_sync_all();
    replication_get_error_all(&err);
    error_expect(err, "Copy-before-write into the hidden disk");
    g_assert_false(node_blocked("top"));
    secondary_close(&v);
    /* The node unregistered itself: the manager has nothing to run. */
    replication_start_all(REPLICATION_MODE_SECONDARY, &error_abort);
    replication_stop_all(true, &error_abort);
}

static void test_secondary_exit_while_failing_over(void)
{
    Error *err = NULL;
    Secondary v;

    secondary_open_ok(&v);
    start_ok(REPLICATION_MODE_SECONDARY);
    secondary_write_both(&v);
    replication_stop_all(true, &error_abort);
    job_cancel_sync_all();
    replication_get_error_all(&err);
    error_expect(err, "could not commit");
    g_assert_false(node_blocked("top"));
    secondary_close(&v);
    g_assert_null(job_next(NULL));
}

/*
 * Every verb in every state of a secondary node, cell by cell.  A verb
 * the state table allows may still fail for a reason of its own (a start
 * after a failover finds no overlays left); what is checked is that the
 * state check refuses exactly the cells the table forbids, by name.
 */
typedef enum VerbCellState {
    VC_IDLE,
    VC_REPLICATING,
    VC_FAILING_OVER,
    VC_FAILOVER_FAILED,
    VC_STOPPED,
    VC__MAX,
} VerbCellState;

static const char *const vc_state_names[VC__MAX] = {
    "idle", "replicating", "failing-over", "failover-failed", "stopped",
};

typedef enum VerbCellVerb {
    VC_START,
    VC_STOP,
    VC_CHECKPOINT,
    VC_VERBS,
} VerbCellVerb;

static const char *const vc_verb_names[VC_VERBS] = {
    "start", "stop", "checkpoint",
};

static const bool vc_allowed[VC_VERBS][VC__MAX] = {
    [VC_START] = { [VC_IDLE] = true, [VC_STOPPED] = true },
    [VC_STOP] = { [VC_REPLICATING] = true, [VC_FAILOVER_FAILED] = true },
    [VC_CHECKPOINT] = { [VC_REPLICATING] = true },
};

typedef struct VerbCell {
    VerbCellState state;
    VerbCellVerb verb;
} VerbCell;

/* Opens a secondary and takes it to @state by the way COLO would. */
static void secondary_reach(Secondary *v, VerbCellState state)
{
    SecondaryConfig cfg = good_config;

    if (state == VC_FAILOVER_FAILED) {
        /* The commit's write of the SVM's data into the disk fails. */
        cfg.secondary_bad_sector = (8 * CHUNK) / BDRV_SECTOR_SIZE;
    }
    g_assert_true(secondary_open(v, &cfg, &error_abort));
    if (state == VC_IDLE) {
        return;
    }
    start_ok(REPLICATION_MODE_SECONDARY);
    if (state == VC_REPLICATING) {
        return;
    }
    if (state == VC_FAILOVER_FAILED) {
        fill_ok(v->svm, 8 * CHUNK, CHUNK, P_SVM1);
    } else {
        /* Data to commit, so that the failover takes a while. */
        secondary_write_both(v);
    }
    replication_stop_all(true, &error_abort);
    if (state != VC_FAILING_OVER) {
        /* The commit job ends, well or not. */
        jobs_wait();
    }
}

static void test_secondary_verb_cell(const void *opaque)
{
    const VerbCell *c = opaque;
    g_autofree char *refusal = g_strdup_printf(
        "cannot %s in state '%s'", vc_verb_names[c->verb],
        vc_state_names[c->state]);
    Error *err = NULL;
    Secondary v;

    secondary_reach(&v, c->state);
    switch (c->verb) {
    case VC_START:
        replication_start_all(REPLICATION_MODE_SECONDARY, &err);
        break;
    case VC_STOP:
        replication_stop_all(false, &err);
        break;
    case VC_CHECKPOINT:
        replication_do_checkpoint_all(&err);
        break;
    default:
        g_assert_not_reached();
    }
    if (vc_allowed[c->verb][c->state]) {
        g_assert_true(!err || !strstr(error_get_pretty(err), refusal));
        error_free(err);
    } else {
        error_expect(err, refusal);
    }
    /* Leave no job behind: a node that replicates stops, no failover. */
    err = NULL;
    replication_stop_all(false, &err);
    error_free(err);
    jobs_wait();
    secondary_close(&v);
}

static void add_secondary_verb_cells(void)
{
    for (int state = 0; state < VC__MAX; state++) {
        for (int verb = 0; verb < VC_VERBS; verb++) {
            VerbCell *c = g_new(VerbCell, 1);
            g_autofree char *path = g_strdup_printf(
                "/replication-driver/secondary/verbs/%s/%s",
                vc_state_names[state], vc_verb_names[verb]);

            *c = (VerbCell) { state, verb };
            g_test_add_data_func_full(path, c, test_secondary_verb_cell,
                                      g_free);
        }
    }
}

/* Bad configurations */

static void open_refused(const SecondaryConfig *cfg, const char *needle)
{
    Error *err = NULL;
    Secondary v;

    g_assert_false(secondary_open(&v, cfg, &err));
    error_expect(err, needle);
    secondary_close(&v);
}

static void start_refused_with(const SecondaryConfig *cfg, const char *needle)
{
    Secondary v;

    g_assert_true(secondary_open(&v, cfg, &error_abort));
    start_refused(REPLICATION_MODE_SECONDARY, needle);
    /* Nothing was left half set up. */
    g_assert_false(node_blocked("top"));
    if (bdrv_find_node("hidden")) {
        g_assert_true(bdrv_is_read_only(bdrv_find_node("hidden")));
    }
    g_assert_null(job_next(NULL));
    secondary_close(&v);
}

static void primary_open_refused(QDict *opts, const char *needle)
{
    g_autofree char *path = img_path("remote.raw");
    Error *err = NULL;
    BlockDriverState *bs;

    img_create("remote.raw", "raw", IMG_SIZE);
    qdict_put_str(opts, "driver", "replication");
    qdict_put_str(opts, "file.driver", "raw");
    qdict_put_str(opts, "file.file.filename", path);
    bs = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &err);
    g_assert_null(bs);
    error_expect(err, needle);
    img_remove("remote.raw");
}

static void test_bad_mode_missing(void)
{
    primary_open_refused(qdict_new(), "needs the option 'mode'");
}

static void test_bad_mode_invalid(void)
{
    primary_open_refused(opts_new("mode", "tertiary", NULL),
                         "Invalid replication mode 'tertiary'");
}

static void test_bad_top_id_in_primary(void)
{
    primary_open_refused(opts_new("mode", "primary", "top-id", "top", NULL),
                         "only valid in secondary mode");
}

static void test_bad_top_id_missing(void)
{
    SecondaryConfig cfg = good_config;

    cfg.no_top_id = true;
    open_refused(&cfg, "needs the option 'top-id'");
}

static void test_bad_active_format(void)
{
    SecondaryConfig cfg = good_config;

    cfg.active_fmt = "raw";
    cfg.hidden_fmt = NULL;
    open_refused(&cfg, "Active disk 'active' (raw) cannot be emptied");
}

static void test_bad_hidden_format(void)
{
    SecondaryConfig cfg = good_config;

    cfg.hidden_fmt = "raw";
    open_refused(&cfg, "Hidden disk 'hidden' (raw) cannot be emptied");
}

static void test_bad_no_hidden(void)
{
    SecondaryConfig cfg = good_config;

    cfg.hidden_fmt = NULL;
    open_refused(&cfg, "has no backing (hidden) disk");
}

static void test_bad_lengths(void)
{
    SecondaryConfig cfg = good_config;

    cfg.hidden_size = IMG_SIZE / 2;
    open_refused(&cfg, "differ in length");
}

static void test_bad_top_id_unknown(void)
{
    SecondaryConfig cfg = good_config;

    cfg.top_id = "nowhere";
    start_refused_with(&cfg, "Replication top-id: ");
}

static void test_bad_top_id_not_root(void)
{
    SecondaryConfig cfg = good_config;

    cfg.top_id = "active";
    start_refused_with(&cfg, "top-id 'active' is not a root node");
}

static void test_bad_top_id_elsewhere(void)
{
    SecondaryConfig cfg = good_config;

    cfg.top_id = "other";
    start_refused_with(&cfg, "top-id 'other' does not lead to");
}

static void test_bad_secondary_read_only(void)
{
    SecondaryConfig cfg = good_config;

    cfg.secondary_read_only = true;
    start_refused_with(&cfg, "Secondary disk 'sec' is read-only");
}

int main(int argc, char **argv)
{
    g_autoptr(GError) gerr = NULL;
    int ret;

    bdrv_init();
    qemu_init_main_loop(&error_abort);
    rust_bql_mock_lock();
    g_test_init(&argc, &argv, NULL);

    tmp_dir = g_dir_make_tmp("colo-replication-XXXXXX", &gerr);
    g_assert_nonnull(tmp_dir);

    g_test_add_func("/replication-driver/primary/io-before-start",
                    test_primary_io_before_start);
    g_test_add_func("/replication-driver/primary/replicates",
                    test_primary_replicates);
    g_test_add_func("/replication-driver/primary/failover",
                    test_primary_failover);
    g_test_add_func("/replication-driver/primary/restart",
                    test_primary_restart);
    g_test_add_func("/replication-driver/primary/stays-in-quorum",
                    test_primary_stays_in_quorum);
    g_test_add_func("/replication-driver/primary/refusals",
                    test_primary_refusals);
    g_test_add_func("/replication-driver/primary/link-error",
                    test_primary_link_error);

    g_test_add_func("/replication-driver/primary/link-error-fails-checkpoint",
                    test_primary_link_error_fails_checkpoint);
    g_test_add_func("/replication-driver/secondary/io-before-start",
                    test_secondary_io_before_start);
    g_test_add_func("/replication-driver/secondary/start",
                    test_secondary_start);
    g_test_add_func("/replication-driver/secondary/writes",
                    test_secondary_writes);
    g_test_add_func("/replication-driver/secondary/checkpoint",
                    test_secondary_checkpoint);
    g_test_add_func("/replication-driver/secondary/checkpoint-skips-clean",
                    test_secondary_checkpoint_skips_clean);
    g_test_add_func("/replication-driver/secondary/failover",
                    test_secondary_failover);
    g_test_add_func("/replication-driver/secondary/continuous",
                    test_secondary_continuous);
    g_test_add_func("/replication-driver/secondary/stop-without-failover",
                    test_secondary_stop_without_failover);
    g_test_add_func("/replication-driver/secondary/refusals",
                    test_secondary_refusals);
    add_secondary_verb_cells();
    g_test_add_func("/replication-driver/secondary/failover-failed",
                    test_secondary_failover_failed);
    g_test_add_func("/replication-driver/secondary/exit-while-replicating",
                    test_secondary_exit_while_replicating);
    g_test_add_func("/replication-driver/secondary/exit-while-failing-over",
                    test_secondary_exit_while_failing_over);

    g_test_add_func("/replication-driver/bad-config/mode-missing",
                    test_bad_mode_missing);
    g_test_add_func("/replication-driver/bad-config/mode-invalid",
                    test_bad_mode_invalid);
    g_test_add_func("/replication-driver/bad-config/top-id-in-primary",
                    test_bad_top_id_in_primary);
    g_test_add_func("/replication-driver/bad-config/top-id-missing",
                    test_bad_top_id_missing);
    g_test_add_func("/replication-driver/bad-config/active-format",
                    test_bad_active_format);
    g_test_add_func("/replication-driver/bad-config/hidden-format",
                    test_bad_hidden_format);
    g_test_add_func("/replication-driver/bad-config/no-hidden",
                    test_bad_no_hidden);
    g_test_add_func("/replication-driver/bad-config/lengths",
                    test_bad_lengths);
    g_test_add_func("/replication-driver/bad-config/top-id-unknown",
                    test_bad_top_id_unknown);
    g_test_add_func("/replication-driver/bad-config/top-id-not-root",
                    test_bad_top_id_not_root);
    g_test_add_func("/replication-driver/bad-config/top-id-elsewhere",
                    test_bad_top_id_elsewhere);
    g_test_add_func("/replication-driver/bad-config/secondary-read-only",
                    test_bad_secondary_read_only);

    ret = g_test_run();
    rmdir(tmp_dir);
    g_free(tmp_dir);
    return ret;
}
