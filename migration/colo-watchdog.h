/*
 * Noticing a hung COLO peer, and not looking like one (colo-watchdog.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_WATCHDOG_H
#define MIGRATION_COLO_WATCHDOG_H

#include "qemu-file.h"

/*
 * How often a side that is alive but has nothing to say sends a heartbeat;
 * far inside the colo-peer-timeout parameter (at least 500 ms).
 */
#define COLO_HEARTBEAT_MS 250

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

#endif /* MIGRATION_COLO_WATCHDOG_H */
