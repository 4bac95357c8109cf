/*
 * COLO under Xen: the toolstack runs the checkpoint loop itself and only
 * asks QEMU to drive the replicated disks and the netfilters.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-migration.h"
#include "block/replication.h"
#include "net/filter.h"
#include "migration/colo.h"

void qmp_xen_set_replication(bool enable, bool primary,
                             bool has_failover, bool failover,
                             Error **errp)
{
    if (enable) {
        if (has_failover) {
            error_setg(errp, "'failover' only applies when disabling "
                       "replication");
            return;
        }
        replication_start_all(primary ? REPLICATION_MODE_PRIMARY :
                                        REPLICATION_MODE_SECONDARY, errp);
        return;
    }
    replication_stop_all(has_failover && failover, errp);
}

ReplicationStatus *qmp_query_xen_replication_status(Error **errp)
{
    ReplicationStatus *status = g_new0(ReplicationStatus, 1);
    Error *err = NULL;

    replication_get_error_all(&err);
    if (err) {
        status->error = true;
        status->desc = g_strdup(error_get_pretty(err));
        error_free(err);
    }
    return status;
}

void qmp_xen_colo_do_checkpoint(Error **errp)
{
    if (replication_do_checkpoint_all(errp)) {
        colo_notify_filters_event(COLO_EVENT_CHECKPOINT, errp);
    }
}
