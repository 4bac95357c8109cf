/*
 * Multifd receive path into the COLO RAM cache.
 *
 * A COLO secondary keeps a second copy of guest RAM, the COLO RAM cache,
 * that always mirrors the primary's RAM.  Pages from the primary must land
 * there, whichever channel they arrive on:
 *  - during the first migration, in the cache and in guest RAM, which is
 *    not running yet;
 *  - during COLO, in the cache only, with the page marked in the cache's
 *    bitmap; the next checkpoint copies marked pages into guest RAM.
 * The main stream does the same in ram_load_precopy().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "system/ramblock.h"
#include "migration/colo.h"
#include "multifd.h"
#include "multifd-colo.h"
#include "ram.h"
#include "migration.h"
#include "trace.h"

static void multifd_colo_zero_pages(MultiFDRecvParams *p, bool in_colo)
{
    size_t page_size = multifd_ram_page_size();

    for (uint32_t i = 0; i < p->zero_num; i++) {
        ram_addr_t offset = p->zero[i];

        ram_handle_zero(p->block->colo_cache + offset, page_size);
        if (!in_colo) {
            ram_handle_zero(p->block->host + offset, page_size);
            ramblock_recv_bitmap_set_offset(p->block, offset);
        }
    }
    if (in_colo && p->zero_num) {
        colo_record_bitmap(p->block, p->zero, p->zero_num);
    }
}

int multifd_colo_recv_pages(MultiFDRecvParams *p, Error **errp)
{
    size_t page_size = multifd_ram_page_size();
    MigrationStatus state = migration_incoming_get_current()->state;
    bool in_colo = state == MIGRATION_STATUS_COLO;
    int ret;

    /*
     * After COLO the secondary runs on its own: a page that comes late
     * belongs neither in its RAM nor in the cache, which is going away.
     */
    if (!in_colo && state != MIGRATION_STATUS_ACTIVE) {
        error_setg(errp, "multifd %u: a page arrived after COLO ended",
                   p->id);
        return -1;
    }
    if (!p->block->colo_cache) {
        error_setg(errp, "multifd %u: no COLO RAM cache for block %s",
                   p->id, p->block->idstr);
        return -1;
    }
    trace_multifd_colo_recv(p->block->idstr, p->normal_num, p->zero_num,
                            in_colo);

    multifd_colo_zero_pages(p, in_colo);
    if (!p->normal_num) {
        return 0;
    }

    for (uint32_t i = 0; i < p->normal_num; i++) {
        p->iov[i].iov_base = p->block->colo_cache + p->normal[i];
        p->iov[i].iov_len = page_size;
    }
    ret = qio_channel_readv_all(p->c, p->iov, p->normal_num, errp);
    if (ret < 0) {
        return ret;
    }

    if (in_colo) {
        colo_record_bitmap(p->block, p->normal, p->normal_num);
        return 0;
    }
    for (uint32_t i = 0; i < p->normal_num; i++) {
        memcpy(p->block->host + p->normal[i],
               p->block->colo_cache + p->normal[i], page_size);
        ramblock_recv_bitmap_set_offset(p->block, p->normal[i]);
    }
    return 0;
}
