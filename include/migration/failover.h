/*
 * COLO failover: the lifecycle of "this side takes over alone".
 *
 *   none --request--> require --begin--> active --finish--> completed
 *     ^                                                          |
 *     +---------------------- reset (next COLO session) ---------+
 *
 * A request comes from the user (x-colo-lost-heartbeat) or from the COLO
 * side itself when its peer fails.  The side's thread observes it at named
 * points of its loop, begins it, and finishes it once the survivor runs
 * alone.  Every transition goes through one function that checks it against
 * the table, traces it and refuses anything else.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_FAILOVER_H
#define MIGRATION_FAILOVER_H

#include "qapi/qapi-types-migration.h"

/* Called when a request arrives, so a side blocked in a wait wakes up. */
typedef void ColoFailoverWakeFn(void *opaque);

/* A new COLO session starts: back to none, with @wake as the waker. */
void colo_failover_reset(ColoFailoverWakeFn *wake, void *opaque);

/* The session is over: forget the waker (the state is kept for queries). */
void colo_failover_detach(void);

FailoverStatus colo_failover_state(void);

/* Ask the current side to take over.  Refused unless the state is none. */
bool colo_failover_request(Error **errp);

/*
 * Cut the current side's blocked I/O short without asking for a failover:
 * its loop then fails and the side reports its peer lost.
 */
void colo_failover_unblock(void);

/* A request is waiting or being handled. */
bool colo_failover_pending(void);

/* The side's thread starts handling the request: require -> active. */
void colo_failover_begin(void);

/* The survivor runs alone: active -> completed. */
void colo_failover_finish(void);

#endif /* MIGRATION_FAILOVER_H */
