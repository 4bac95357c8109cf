/*
 * Pairing this node's running guest with the peer's secondary, and
 * letting it go on alone when the peer is lost.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_COLO_PAIR_H
#define QEMU_COLO_PAIR_H

#include "colo-config.h"

/*
 * Protect the guest that runs here (alone, or freshly started as a
 * primary) with the secondary that waits on the peer: with @resync, first
 * copy every disk to the peer; then connect the disks' replication and
 * the network proxy, and migrate.  Returns once COLO runs; a guest that
 * is already protected is left alone.
 */
bool colo_pair_protect(const ColoConfig *cfg, bool resync, int timeout_ms,
                       Error **errp);

/*
 * The decision that this node goes on alone: it must have lost its peer
 * (or be told to leave it).  A former secondary also takes over the
 * guest's network.  Returns once the guest runs alone.
 */
bool colo_pair_failover(const ColoConfig *cfg, int timeout_ms, Error **errp);

#endif
