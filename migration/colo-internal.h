/*
 * COLO internals shared by the common part (colo.c), the two sides
 * (colo-primary.c, colo-secondary.c) and the wire protocol (colo-wire.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_INTERNAL_H
#define MIGRATION_COLO_INTERNAL_H

#include "qemu/units.h"
#include "qapi/qapi-types-migration.h"
#include "qemu-file.h"

/*
 * Largest device state a checkpoint may carry.  Device state is a few
 * hundred KiB; anything near this bound is a corrupted stream.
 */
#define COLO_MAX_DEVICE_STATE (256 * MiB)

/*
 * How often a side that is alive but has nothing to say sends a heartbeat;
 * far inside the colo-peer-timeout parameter (at least 500 ms).
 */
#define COLO_HEARTBEAT_MS 250

/* --- colo.c: the COLO mode and its exit ------------------------------- */

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

/* --- colo-wire.c: control messages between the two sides ---------------- */

/*
 * Ready the stream @f (and its return path, which shares the channel) for
 * COLO's exchange of small messages, before the first one.
 */
void colo_wire_open(QEMUFile *f);
bool colo_send_message(QEMUFile *f, COLOMessage msg, Error **errp);
bool colo_send_value(QEMUFile *f, COLOMessage msg, uint64_t value,
                     Error **errp);
/*
 * Read one message; anything but @expected is a protocol error.  Heartbeats
 * from the primary may come first and are skipped.
 */
bool colo_receive_message(QEMUFile *f, COLOMessage expected, Error **errp);
/* Read the next message but heartbeats, whatever it is. */
bool colo_receive_next(QEMUFile *f, COLOMessage *msg, Error **errp);
/* A protocol error unless @got is @expected. */
bool colo_expect_message(COLOMessage got, COLOMessage expected, Error **errp);
bool colo_receive_value(QEMUFile *f, COLOMessage expected, uint64_t *value,
                        Error **errp);

/* --- colo-watchdog.c: noticing a hung peer, and not looking like one --- */

typedef struct ColoWatchdog ColoWatchdog;

/*
 * Watch the connection under @f, and the multifd channels of the incoming
 * or outgoing migration.  NULL (with a warning) when @f is not over a TCP
 * socket; the other functions accept NULL and do nothing.
 */
ColoWatchdog *colo_watchdog_start(QEMUFile *f, bool incoming);
/*
 * The side now waits on its peer: the peer is lost if it goes quiet for
 * colo-peer-timeout, or if @limit_ms (0 for none) pass however busy it is.
 */
void colo_watchdog_arm(ColoWatchdog *wd, uint32_t limit_ms);
/* The side waits on nothing the peer owes it. */
void colo_watchdog_disarm(ColoWatchdog *wd);
void colo_watchdog_stop(ColoWatchdog *wd);

/*
 * While this side works on something long with nothing to send, a
 * heartbeat every COLO_HEARTBEAT_MS on @f tells the peer it is alive.
 * Nothing else may write to @f until colo_keepalive_stop().
 */
typedef struct ColoKeepalive ColoKeepalive;
ColoKeepalive *colo_keepalive_start(QEMUFile *f);
void colo_keepalive_stop(ColoKeepalive *k);

/* --- colo-primary.c ------------------------------------------------------ */

void colo_primary_delay_changed(void);
void colo_primary_request_checkpoint(void);
/*
 * End COLO on purpose (migrate_cancel, quit): ask for the failover, and
 * give the primary's thread a moment to tell the secondary, before the
 * caller takes the channels down.  With the BQL.
 */
void colo_primary_leave(void);

#endif /* MIGRATION_COLO_INTERNAL_H */
