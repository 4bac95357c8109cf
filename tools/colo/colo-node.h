/*
 * This node's QEMU for one replicated VM: launch it in a role, find it,
 * talk to it, stop it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_COLO_NODE_H
#define QEMU_COLO_NODE_H

#include "colo-config.h"
#include "qmp-client.h"

typedef enum ColoNodeRole {
    COLO_NODE_PRIMARY,          /* runs the guest */
    COLO_NODE_SECONDARY,        /* waits for the primary's state */
} ColoNodeRole;

/* The running QEMU's pid, or 0 if there is none. */
pid_t colo_node_pid(const ColoConfig *cfg);

/*
 * Launch QEMU in @role and wait until its monitor answers.  A secondary
 * is left listening for the primary: its NBD export and its incoming
 * migration are open, its proxy connects to the peer by itself.
 */
bool colo_node_launch(const ColoConfig *cfg, ColoNodeRole role,
                      int timeout_ms, Error **errp);

/* Whether QEMU @pid was started as a secondary (waiting for a guest). */
bool colo_node_started_as_secondary(pid_t pid);

/* Quit QEMU, then kill it if it has not gone after @timeout_ms. */
bool colo_node_stop(const ColoConfig *cfg, int timeout_ms, Error **errp);

/*
 * QEMU has two monitors, and a monitor serves one client at a time.  A
 * command that keeps its connection for long (start, protect, whose copy
 * of the disks may take minutes) uses the session monitor; the short ones
 * (status, failover, stop) use the control monitor, so that a cluster
 * manager's status query or failover never waits behind a protection.
 */
typedef enum ColoMonitor {
    COLO_MONITOR_SESSION,
    COLO_MONITOR_CONTROL,
} ColoMonitor;

/* A connection to monitor @which; see qmp_client_open() for @hung. */
QmpClient *colo_node_monitor(const ColoConfig *cfg, ColoMonitor which,
                             int timeout_ms, bool *hung, Error **errp);

/*
 * Put every NIC's tap on its bridge and up (the node serves the guest),
 * or only up and off any bridge (a secondary: the proxy feeds its guest).
 */
bool colo_node_plug_taps(const ColoConfig *cfg, bool serve, Error **errp);

#endif
