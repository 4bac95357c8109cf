/*
 * COLO checkpoint statistics: what each checkpoint of the primary cost,
 * for query-colo-stats and "info colo".
 *
 * The primary's migration thread records; the monitor reads.  A
 * checkpoint goes through the phases of COLOCheckpointPhases in order;
 * the recorder is told when each one ends.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_STATS_H
#define MIGRATION_COLO_STATS_H

#include "qapi/qapi-types-migration.h"

typedef enum ColoStatsPhase {
    COLO_PHASE_REQUEST,
    COLO_PHASE_STOP,
    COLO_PHASE_RAM,
    COLO_PHASE_DEVICE_STATE,
    COLO_PHASE_SEND,
    COLO_PHASE_LOAD,
    COLO_PHASE_RESUME,
    COLO_PHASE__MAX,
} ColoStatsPhase;

/* A new COLO session: forget the last one's figures. */
void colo_stats_reset(void);

/*
 * A checkpoint is wanted for @cause (any thread).  The first cause since
 * the last checkpoint began is the one its checkpoint counts under.
 */
void colo_stats_want(COLOCheckpointCause cause);

/* The migration thread starts a checkpoint. */
void colo_stats_checkpoint_begin(void);

/* @phase of the current checkpoint has just ended. */
void colo_stats_phase_done(ColoStatsPhase phase);

/* The checkpoint completed (one that failed is not counted). */
void colo_stats_checkpoint_end(void);

#endif
