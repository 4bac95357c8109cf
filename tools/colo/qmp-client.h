/*
 * A synchronous QMP client for qemu-colo: one monitor socket, commands
 * with a deadline, events kept until asked for.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_COLO_QMP_CLIENT_H
#define QEMU_COLO_QMP_CLIENT_H

#include "qobject/qdict.h"

typedef struct QmpClient QmpClient;

/*
 * Connect to the QMP socket at @path and leave capabilities negotiation,
 * with out-of-band execution enabled when the monitor offers it.  Every
 * command, the negotiation included, must answer within @timeout_ms;
 * @hung (if not NULL) tells whether the monitor accepted the connection
 * but did not answer in time.
 */
QmpClient *qmp_client_open(const char *path, int timeout_ms, bool *hung,
                           Error **errp);
void qmp_client_close(QmpClient *c);

/*
 * Run @command with @args (consumed; NULL for none).  Returns the
 * command's "return" value, a new reference, or NULL with @errp set when
 * QEMU answered with an error, the connection failed or the deadline
 * passed.  After a timeout the client is unusable: see qmp_client_hung().
 */
QObject *qmp_client_call(QmpClient *c, const char *command, QDict *args,
                         Error **errp);
/*
 * The same, out of band where the monitor allows it: for a QEMU whose
 * main loop may be stuck.
 */
QObject *qmp_client_call_oob(QmpClient *c, const char *command, QDict *args,
                             Error **errp);
/* qmp_client_call() for commands whose answer is {}. */
bool qmp_client_run(QmpClient *c, const char *command, QDict *args,
                    Error **errp);

/* qmp_client_call() for argument-less queries that answer an object. */
QDict *qmp_client_query(QmpClient *c, const char *command, Error **errp);

/* Whether a command timed out: QEMU is alive but does not answer. */
bool qmp_client_hung(QmpClient *c);

/*
 * The next event called @name (any event if NULL), waiting at most
 * @timeout_ms; NULL on timeout or error.  Events that came with earlier
 * answers are returned first.
 */
QDict *qmp_client_event(QmpClient *c, const char *name, int timeout_ms,
                        Error **errp);

#endif
