/*
 * Replication manager: the one place COLO drives every replicated disk from.
 *
 * A component that replicates state alongside a COLO checkpoint (today: the
 * "replication" block driver) registers a ReplicationState with its
 * ReplicationOps.  The COLO migration layer then starts, checkpoints, polls
 * and stops all of them at once, without knowing what they are.
 *
 * All functions run in the main loop context: call them with the BQL held.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef BLOCK_REPLICATION_H
#define BLOCK_REPLICATION_H

#include "qapi/qapi-types-block-core.h"
#include "qemu/queue.h"

typedef struct ReplicationOps ReplicationOps;
typedef struct ReplicationState ReplicationState;

/*
 * What a replicated component implements.  Each hook reports failure through
 * @errp only; the manager never looks inside @rs->opaque.
 */
struct ReplicationOps {
    /* Begin replicating in @mode; COLO has just entered that role. */
    bool (*start)(ReplicationState *rs, ReplicationMode mode, Error **errp);
    /*
     * End replication.  @failover true: this side survives and must carry on
     * alone with its own data; false: replication just stops.
     */
    bool (*stop)(ReplicationState *rs, bool failover, Error **errp);
    /* Both VMs now hold the same state: drop what diverged since the last. */
    bool (*checkpoint)(ReplicationState *rs, Error **errp);
    /* Report an error that happened in the background since the last call. */
    bool (*get_error)(ReplicationState *rs, Error **errp);
    /*
     * Optional: the node through which this side writes to its peer (a
     * primary's NBD client), or NULL.  Yanking its block-node instance
     * fails the requests a lost peer will never answer.
     */
    const char *(*peer_link)(ReplicationState *rs);
};

struct ReplicationState {
    void *opaque;
    const ReplicationOps *ops;
    QTAILQ_ENTRY(ReplicationState) next;
};

/* Register a component; @ops must outlive it. */
ReplicationState *replication_new(void *opaque, const ReplicationOps *ops);
/* Unregister and free @rs (NULL is ignored). */
void replication_remove(ReplicationState *rs);

/*
 * Start every component in @mode, in registration order.  If one fails,
 * those already started are stopped again, so a failed start leaves
 * nothing half-running.
 */
bool replication_start_all(ReplicationMode mode, Error **errp);
/* Checkpoint every component; stops at the first failure. */
bool replication_do_checkpoint_all(Error **errp);
/* First background error of any component, if there was one. */
bool replication_get_error_all(Error **errp);
/*
 * Stop every component, in reverse registration order, even after a
 * failure; reports the first failure.
 */
bool replication_stop_all(bool failover, Error **errp);
/* The peer_link of every component that has one; free with g_strfreev(). */
char **replication_peer_links(void);

#endif /* BLOCK_REPLICATION_H */
