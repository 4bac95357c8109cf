/*
 * COLO's control messages between the two sides (colo-wire.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_WIRE_H
#define MIGRATION_COLO_WIRE_H

#include "qemu/units.h"
#include "qapi/qapi-types-migration.h"
#include "qemu-file.h"

/*
 * Largest device state a checkpoint may carry.  Device state is a few
 * hundred KiB; anything near this bound is a corrupted stream.
 */
#define COLO_MAX_DEVICE_STATE (256 * MiB)

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

#endif /* MIGRATION_COLO_WIRE_H */
