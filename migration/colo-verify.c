/*
 * COLO checkpoint verification (capability colo-verify).
 *
 * At a checkpoint the primary hashes its RAM once the VM is stopped and the
 * dirty pages are on the stream, and sends the digest between the RAM and
 * the device state.  The secondary hashes its own RAM once the checkpoint
 * is applied, before its VM resumes, and answers with how many pages
 * differ.  Both sides count and report the result; a difference does not
 * end COLO (the documented choice: the user or the cluster manager decides
 * what to do with a secondary that is not an exact replica).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-events-migration.h"
#include "qemu/lockable.h"
#include "qemu/rcu.h"
#include "qemu/timer.h"
#include "exec/target_page.h"
#include "system/ramblock.h"
#include "migration/misc.h"
#include "ram.h"
#include "colo-wire.h"
#include "colo-watchdog.h"
#include "colo-verify.h"
#include "trace.h"

/* Room for a name and a length per block, beyond the page hashes. */
#define COLO_DIGEST_BLOCK_OVERHEAD (2 + COLO_RAM_DIGEST_NAME_MAX + 8)

static struct {
    QemuMutex lock;
    /* Guarded by @lock. */
    bool active;            /* this session verified at least once */
    uint64_t checkpoints;
    uint64_t mismatches;
} verify;

static void __attribute__((constructor)) colo_verify_init(void)
{
    qemu_mutex_init(&verify.lock);
}

ColoRamDigest *colo_verify_digest_ram(QEMUFile *keepalive)
{
    ColoRamDigest *d = colo_ram_digest_new(qemu_target_page_size());
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    /* Hashing a large RAM takes a while: the peer must not think us hung. */
    ColoKeepalive *k = keepalive ? colo_keepalive_start(keepalive) : NULL;
    RAMBlock *block;

    WITH_RCU_READ_LOCK_GUARD() {
        /* The blocks a checkpoint carries, as ram_save and the flush. */
        RAMBLOCK_FOREACH_NOT_IGNORED(block) {
            colo_ram_digest_add_block(d, block->idstr, block->host,
                                      block->used_length);
        }
    }
    if (k) {
        colo_keepalive_stop(k);
    }
    trace_colo_verify_digest(colo_ram_digest_pages(d),
                             qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - start);
    return d;
}

/* The most pages a peer's digest may hold: this VM's RAM, with slack. */
static uint64_t colo_verify_max_pages(void)
{
    uint64_t pages = 0;
    RAMBlock *block;

    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH_NOT_IGNORED(block) {
            pages += DIV_ROUND_UP(block->max_length, qemu_target_page_size());
        }
    }
    return pages * 2 + 1024;
}

bool colo_verify_send_digest(QEMUFile *f, const ColoRamDigest *d,
                             Error **errp)
{
    g_autoptr(GByteArray) enc = colo_ram_digest_encode(d);
    Error *cause = NULL;

    if (!colo_send_value(f, COLO_MESSAGE_RAM_DIGEST, enc->len, errp)) {
        return false;
    }
    qemu_put_buffer(f, enc->data, enc->len);
    qemu_fflush(f);
    if (qemu_file_get_error_obj(f, &cause)) {
        error_propagate_prepend(errp, cause, "COLO: cannot send the RAM "
                                "digest: ");
        return false;
    }
    return true;
}

ColoRamDigest *colo_verify_receive_digest(QEMUFile *f, Error **errp)
{
    uint64_t max_pages = colo_verify_max_pages();
    uint64_t max_len = 8 + max_pages * 8 +
                       COLO_RAM_DIGEST_MAX_BLOCKS * COLO_DIGEST_BLOCK_OVERHEAD;
    g_autofree uint8_t *buf = NULL;
    uint64_t len = qemu_get_be64(f);
    size_t got;

    if (qemu_file_get_error(f)) {
        error_setg(errp, "COLO: the RAM digest's size was cut short");
        return NULL;
    }
    if (len > max_len) {
        error_setg(errp, "COLO: the primary announced a RAM digest of "
                   "%" PRIu64 " bytes (at most %" PRIu64 " expected)",
                   len, max_len);
        return NULL;
    }
    buf = g_malloc(len);
    got = qemu_get_buffer(f, buf, len);
    if (got != len || qemu_file_get_error(f)) {
        error_setg(errp, "COLO: RAM digest cut short after %zu of "
                   "%" PRIu64 " bytes", got, len);
        return NULL;
    }
    return colo_ram_digest_decode(buf, len, max_pages, errp);
}

bool colo_verify_send_result(QEMUFile *f, const ColoRamDiff *diff,
                             Error **errp)
{
    Error *cause = NULL;

    if (!colo_send_value(f, COLO_MESSAGE_RAM_DIGEST_RESULT, diff->pages,
                         errp)) {
        return false;
    }
    if (!diff->pages) {
        return true;
    }
    qemu_put_counted_string(f, diff->block);
    qemu_put_be64(f, diff->offset);
    qemu_fflush(f);
    if (qemu_file_get_error_obj(f, &cause)) {
        error_propagate_prepend(errp, cause, "COLO: cannot send the RAM "
                                "digest result: ");
        return false;
    }
    return true;
}

bool colo_verify_receive_result(QEMUFile *f, ColoRamDiff *diff,
                                Error **errp)
{
    char block[COLO_RAM_DIGEST_NAME_MAX];

    memset(diff, 0, sizeof(*diff));
    if (!colo_receive_value(f, COLO_MESSAGE_RAM_DIGEST_RESULT, &diff->pages,
                            errp)) {
        return false;
    }
    if (!diff->pages) {
        return true;
    }
    if (!qemu_get_counted_string(f, block)) {
        error_setg(errp, "COLO: the RAM digest result names no block");
        return false;
    }
    diff->offset = qemu_get_be64(f);
    if (qemu_file_get_error(f)) {
        error_setg(errp, "COLO: the RAM digest result was cut short");
        return false;
    }
    diff->block = g_strdup(block);
    return true;
}

void colo_verify_explain(const ColoRamDigest *mine,
                         const ColoRamDigest *theirs, const ColoRamDiff *diff)
{
    RAMBlock *block;

    WITH_RCU_READ_LOCK_GUARD() {
        block = qemu_ram_block_by_name(diff->block);
        for (unsigned i = 0; i < diff->nsample; i++) {
            uint64_t offset = diff->sample[i];
            uint64_t pvm = 0, svm = 0, cache = 0;

            colo_ram_digest_lookup(theirs, diff->block, offset, &pvm);
            colo_ram_digest_lookup(mine, diff->block, offset, &svm);
            if (block && block->colo_cache &&
                offset + qemu_target_page_size() <= block->used_length) {
                cache = colo_page_hash(block->colo_cache + offset,
                                       qemu_target_page_size());
            }
            trace_colo_verify_page(diff->block, offset, pvm, svm, cache);
        }
    }
}

void colo_verify_record(COLOMode mode, uint64_t checkpoint,
                        const ColoRamDiff *diff)
{
    WITH_QEMU_LOCK_GUARD(&verify.lock) {
        verify.active = true;
        verify.checkpoints++;
        verify.mismatches += diff->pages != 0;
    }
    trace_colo_verify_result(checkpoint, diff->pages);
    if (diff->pages) {
        qapi_event_send_colo_verify_mismatch(mode, checkpoint, diff->pages,
                                             diff->block, diff->offset);
    }
}

void colo_verify_session_start(void)
{
    QEMU_LOCK_GUARD(&verify.lock);
    verify.active = false;
    verify.checkpoints = 0;
    verify.mismatches = 0;
}

void colo_verify_fill_status(COLOStatus *s)
{
    QEMU_LOCK_GUARD(&verify.lock);
    if (verify.active) {
        s->has_verified_checkpoints = true;
        s->verified_checkpoints = verify.checkpoints;
        s->has_verify_mismatches = true;
        s->verify_mismatches = verify.mismatches;
    }
}
