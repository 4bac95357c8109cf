/*
 * COLO checkpoint verification (capability colo-verify): the primary sends
 * a digest of its RAM at each checkpoint, the secondary compares it with
 * its own RAM once the checkpoint is loaded and sends back its verdict.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_VERIFY_H
#define MIGRATION_COLO_VERIFY_H

#include "qapi/qapi-types-migration.h"
#include "qemu-file.h"
#include "colo-ram-digest.h"

/*
 * Guests with more RAM are refused: their digest would not fit the wire
 * format's buffers (8 bytes per 4 KiB page).
 */
#define COLO_VERIFY_MAX_RAM (1ULL << 40)

/*
 * Digest of this VM's RAM, every block a checkpoint carries.  The VM must
 * be stopped; neither the BQL nor the RCU read lock need be held.  Sends
 * a heartbeat on @keepalive (if not NULL) every COLO_HEARTBEAT_MS, so that
 * the peer, waiting meanwhile, does not take a long hash for a dead peer.
 */
ColoRamDigest *colo_verify_digest_ram(QEMUFile *keepalive);

/* Primary: COLO_MESSAGE_RAM_DIGEST and the digest. */
bool colo_verify_send_digest(QEMUFile *f, const ColoRamDigest *d,
                             Error **errp);
/*
 * Secondary: the digest that follows a COLO_MESSAGE_RAM_DIGEST code the
 * caller has read.  Refused if larger than this VM's RAM could explain.
 */
ColoRamDigest *colo_verify_receive_digest(QEMUFile *f, Error **errp);

/* Secondary: COLO_MESSAGE_RAM_DIGEST_RESULT with @diff. */
bool colo_verify_send_result(QEMUFile *f, const ColoRamDiff *diff,
                             Error **errp);
/* Primary: the secondary's COLO_MESSAGE_RAM_DIGEST_RESULT. */
bool colo_verify_receive_result(QEMUFile *f, ColoRamDiff *diff,
                                Error **errp);

/*
 * Secondary, for a difference: trace the first differing pages' hashes in
 * the PVM's digest, in the SVM's RAM and in the COLO RAM cache, which tells
 * a page the primary never sent from one the secondary did not restore.
 */
void colo_verify_explain(const ColoRamDigest *mine,
                         const ColoRamDigest *theirs, const ColoRamDiff *diff);

/*
 * Either side: checkpoint @checkpoint was verified with @diff.  Counts it
 * and, for a difference, emits COLO_VERIFY_MISMATCH.
 */
void colo_verify_record(COLOMode mode, uint64_t checkpoint,
                        const ColoRamDiff *diff);

/* A COLO session starts: its counters start from zero. */
void colo_verify_session_start(void);
/* Fill the verification members of query-colo-status. */
void colo_verify_fill_status(COLOStatus *s);

#endif /* MIGRATION_COLO_VERIFY_H */
