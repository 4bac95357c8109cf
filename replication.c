/*
 * Replication manager: drives every registered replicated component through
 * the COLO checkpoint lifecycle.  See include/block/replication.h.
 *
 * Components start in the order they registered and stop in the reverse
 * order, so one that depends on another registered earlier never outlives
 * it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/replication.h"
#include "qemu/main-loop.h"

typedef QTAILQ_HEAD(, ReplicationState) ReplicationList;

static ReplicationList replicated = QTAILQ_HEAD_INITIALIZER(replicated);

ReplicationState *replication_new(void *opaque, const ReplicationOps *ops)
{
    ReplicationState *rs;

    assert(ops);
    rs = g_new0(ReplicationState, 1);
    *rs = (ReplicationState) { .opaque = opaque, .ops = ops };
    QTAILQ_INSERT_TAIL(&replicated, rs, next);
    return rs;
}

void replication_remove(ReplicationState *rs)
{
    if (!rs) {
        return;
    }
    QTAILQ_REMOVE(&replicated, rs, next);
    g_free(rs);
}

/* Stop the components before @until, newest first; errors add nothing. */
static void replication_unwind(ReplicationState *until)
{
    ReplicationState *rs = until ? QTAILQ_PREV(until, next) :
                                   QTAILQ_LAST(&replicated);

    for (; rs; rs = QTAILQ_PREV(rs, next)) {
        if (rs->ops->stop) {
            rs->ops->stop(rs, false, NULL);
        }
    }
}

bool replication_start_all(ReplicationMode mode, Error **errp)
{
    ReplicationState *rs;

    assert(bql_locked());
    QTAILQ_FOREACH(rs, &replicated, next) {
        if (rs->ops->start && !rs->ops->start(rs, mode, errp)) {
            replication_unwind(rs);
            return false;
        }
    }
    return true;
}

bool replication_do_checkpoint_all(Error **errp)
{
    ReplicationState *rs;

    assert(bql_locked());
    QTAILQ_FOREACH(rs, &replicated, next) {
        if (rs->ops->checkpoint && !rs->ops->checkpoint(rs, errp)) {
            return false;
        }
    }
    return true;
}

bool replication_get_error_all(Error **errp)
{
    ReplicationState *rs;

    assert(bql_locked());
    QTAILQ_FOREACH(rs, &replicated, next) {
        if (rs->ops->get_error && !rs->ops->get_error(rs, errp)) {
            return false;
        }
    }
    return true;
}

bool replication_stop_all(bool failover, Error **errp)
{
    ReplicationState *rs;
    Error *first = NULL;

    assert(bql_locked());
    QTAILQ_FOREACH_REVERSE(rs, &replicated, next) {
        Error *err = NULL;

        if (rs->ops->stop && !rs->ops->stop(rs, failover, &err) && !first) {
            first = err;
        } else {
            error_free(err);
        }
    }
    if (first) {
        error_propagate(errp, first);
        return false;
    }
    return true;
}

char **replication_peer_links(void)
{
    GPtrArray *names = g_ptr_array_new();
    ReplicationState *rs;

    QTAILQ_FOREACH(rs, &replicated, next) {
        const char *name = rs->ops->peer_link ? rs->ops->peer_link(rs) : NULL;

        if (name) {
            g_ptr_array_add(names, g_strdup(name));
        }
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, false);
}
