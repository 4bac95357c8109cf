/*
 * What the rest of COLO asks of the primary's side (colo-primary.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_PRIMARY_H
#define MIGRATION_COLO_PRIMARY_H

/*
 * End COLO on purpose (migrate_cancel, quit): ask for the failover, and
 * give the primary's thread a moment to tell the secondary, before the
 * caller takes the channels down.  With the BQL.
 */
void colo_primary_leave(void);

#endif /* MIGRATION_COLO_PRIMARY_H */
