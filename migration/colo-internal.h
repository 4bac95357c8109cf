/*
 * The common part of COLO (colo.c), for the two sides and the files that
 * serve them: the COLO mode, its exit, and the failover it ends with.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_INTERNAL_H
#define MIGRATION_COLO_INTERNAL_H

#include "qapi/qapi-types-migration.h"

/* This process now runs COLO as @mode. */
void colo_mode_enter(COLOMode mode);
/*
 * This process leaves COLO: emits COLO_EXIT with the reason recorded by
 * colo_request_failover() (unless colo_await_decision() already did) and
 * makes query-colo-status report it.
 */
void colo_mode_exit(void);
COLOMode colo_current_mode(void);

/*
 * A side's loop has ended, with @err if it failed; returns once the side
 * is to carry on alone.  A failure that is not the failover's own doing
 * means the peer is lost (it died, hung, or sent what is not COLO): the
 * side is frozen first (@freeze(@opaque), without the BQL: the VM stops,
 * COLO I/O ends), the loss is reported (the one place COLO errors are),
 * COLO_EXIT says "error", and unless colo-auto-failover is on the side
 * waits for whoever decides, a person or a cluster manager, to send
 * x-colo-lost-heartbeat.  Takes @err.
 */
void colo_await_decision(Error *err, void (*freeze)(void *opaque),
                         void *opaque);
/*
 * Before the side's loop fails: how the peer's loss showed, for
 * COLO_PEER_LOST (the link failed, unless noted otherwise).
 */
void colo_note_peer_loss(COLOPeerLossCause cause);
/*
 * The primary said it is leaving: the end of the connection that follows
 * is no loss.  colo_await_decision() reports it as such and waits.
 */
void colo_note_peer_leaving(void);

/*
 * With the BQL, during a failover: stop replicating the disks and let the
 * netfilters step aside.  Errors are reported, not returned: the survivor
 * carries on regardless.
 */
void colo_run_alone_locked(void);
/*
 * From any thread: shut down every channel of the migration (the main
 * stream, its return path and the multifd channels), as a yank of the
 * migration instance does, so that no thread stays blocked on the peer.
 */
void colo_cut_migration_channels(void);

/*
 * Make the current side take over alone.  @why is what COLO_EXIT will say:
 * COLO_EXIT_REASON_REQUEST for a user's request, COLO_EXIT_REASON_ERROR when
 * the peer or the stream failed.  The first request wins.
 */
bool colo_request_failover(COLOExitReason why, Error **errp);

#endif /* MIGRATION_COLO_INTERNAL_H */
