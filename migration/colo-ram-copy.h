/*
 * Copying a checkpoint's pages from the COLO RAM cache into guest RAM,
 * spread over threads.
 *
 * A COLO secondary applies each checkpoint while both VMs are stopped, so
 * every millisecond of the copy is a millisecond of the primary's pause.
 * One thread does not saturate memory bandwidth; the copy is split into
 * equal shares of bytes, one per thread, the caller's thread taking one.
 * Pure data handling apart from the thread pool: the caller says what to
 * copy, through colo_ram_copy_add().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_COLO_RAM_COPY_H
#define MIGRATION_COLO_RAM_COPY_H

/* At most this many threads copy, the caller's included. */
#define COLO_RAM_COPY_MAX_THREADS 4
/* Below this many bytes one thread copies: waking others costs more. */
#define COLO_RAM_COPY_PARALLEL_MIN (4 * MiB)

typedef struct ColoRamCopy ColoRamCopy;

ColoRamCopy *colo_ram_copy_new(void);
void colo_ram_copy_free(ColoRamCopy *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoRamCopy, colo_ram_copy_free)

/*
 * Record that @len bytes at @src are to be copied to @dst.  Nothing is
 * copied yet.  @opaque is the ColoRamCopy (the signature is that of
 * colo_flush_ram_cache()'s copy callback).
 */
void colo_ram_copy_add(void *dst, const void *src, size_t len, void *opaque);

/* Bytes recorded and not yet copied. */
size_t colo_ram_copy_pending(const ColoRamCopy *c);

/*
 * Copy everything recorded, on as many threads as pay (at most
 * COLO_RAM_COPY_MAX_THREADS, at most the CPUs online when @c was made),
 * and forget it.  Returns the number of threads that copied.
 */
unsigned colo_ram_copy_run(ColoRamCopy *c);

/* The same on exactly @threads threads (at least 1), whatever the size. */
void colo_ram_copy_run_on(ColoRamCopy *c, unsigned threads);

#endif
