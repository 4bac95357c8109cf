/*
 * COLO (COarse-grained LOck-stepping) VM replication: the entry points the
 * migration core, the netfilter core and the command line call.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_H
#define MIGRATION_COLO_H

#include "qapi/qapi-types-migration.h"

/*
 * What a COLO netfilter is told through NetFilterClass::handle_event,
 * which carries it as an int: a handler turns it back into a ColoEvent
 * first.  The numbers are part of the netfilter interface: 0 means
 * nothing happened.
 */
typedef enum ColoEvent {
    COLO_EVENT_NONE,
    COLO_EVENT_CHECKPOINT,  /* both VMs now hold the same state */
    COLO_EVENT_FAILOVER,    /* this side runs alone from now on */
} ColoEvent;

/* --- Both sides ------------------------------------------------------- */

/* QEMU is shutting down: leave COLO and stop its threads. */
void colo_shutdown(void);

/*
 * Refuse capability sets COLO cannot run with, and any change while COLO
 * runs.  Called by migrate_caps_check().
 */
bool colo_check_capabilities(const bool *old_caps, const bool *new_caps,
                             Error **errp);

/*
 * Refuse changes to parameters the COLO channels were set up with (multifd,
 * TLS, mode) while COLO runs.  Called by qmp_migrate_set_parameters().
 */
bool colo_check_parameters(const MigrateSetParameters *params, Error **errp);

/* --- Primary (outgoing) side ------------------------------------------ */

/* Refuse to start an x-colo migration with settings COLO cannot run. */
bool colo_check_migration(Error **errp);

/* The first migration finished: run the checkpoint loop until failover. */
void migrate_start_colo_process(MigrationState *s);

/* True while the outgoing migration is in the COLO state. */
bool migration_in_colo_state(void);

/* migrate_cancel on a COLO primary: it carries on alone, as requested. */
void colo_migration_cancelled(void);

/* x-checkpoint-delay changed: re-arm the primary's checkpoint timer. */
void colo_checkpoint_delay_set(void);

/*
 * Ask the primary for a checkpoint as soon as possible, because of @cause
 * (counted in query-colo-stats).  Callable from any thread; does nothing
 * unless this process is a COLO primary.
 */
void colo_checkpoint_request(COLOCheckpointCause cause);

/* --- Secondary (incoming) side ---------------------------------------- */

/*
 * The peer announces COLO in the migration stream; enabling it makes the
 * first load prepare the RAM cache the checkpoints go through.
 */
int migration_incoming_enable_colo(Error **errp);
void migration_incoming_disable_colo(void);
bool migration_incoming_colo_enabled(void);
/* True while the incoming migration is in the COLO state. */
bool migration_incoming_in_colo_state(void);

/* The incoming coroutine hands over to the secondary's checkpoint loop. */
void coroutine_fn colo_incoming_co(void);

#endif /* MIGRATION_COLO_H */
