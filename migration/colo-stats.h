/*
 * COLO checkpoint statistics: what each checkpoint of the primary cost,
 * for query-colo-stats and "info colo".
 *
 * The primary's migration thread records, and so does the secondary's
 * COLO thread; the monitor reads.  A checkpoint goes through its phases
 * in order (COLOCheckpointPhases on the primary, COLOApplyPhases on the
 * secondary); the recorder is told when each one ends.
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

/* The secondary's steps through one checkpoint, in order. */
typedef enum ColoApplyPhase {
    COLO_APPLY_STOP,
    COLO_APPLY_RAM,
    COLO_APPLY_DEVICE_STATE,
    COLO_APPLY_RESET,
    COLO_APPLY_RAM_FLUSH,
    COLO_APPLY_DEVICE_LOAD,
    COLO_APPLY_DISKS,
    COLO_APPLY_VERIFY,
    COLO_APPLY_RESUME,
    COLO_APPLY__MAX,
} ColoApplyPhase;

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

/* A new COLO session as the secondary. */
void colo_stats_secondary_start(void);

/*
 * The same for a secondary's thread applying a checkpoint: it begins at
 * the primary's request, and a phase that does not happen is skipped.
 */
void colo_stats_apply_begin(void);
void colo_stats_apply_phase_done(ColoApplyPhase phase);
void colo_stats_apply_end(void);

#endif
