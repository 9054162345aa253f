/* Packed, huge-page-backed memory for read-mostly lookup structures (FIB
 * blocks, large direct arrays). One virtual reservation that never moves,
 * committed 2 MB at a time with MADV_HUGEPAGE, carved into 16-byte size
 * classes, so thousands of small blocks sit densely on few TLB entries.
 *
 * Thread-safety: arena_alloc/arena_free are writer-side calls (serialised
 * by an internal mutex; frees of published memory must go through RCU).
 * Readers only dereference. Sanitizer builds (VR_DEBUG) use plain malloc so
 * ASan sees every block. */
#ifndef VR_ARENA_H
#define VR_ARENA_H

#include <stddef.h>

void *arena_alloc(size_t size);          /* 64-byte aligned; NULL when exhausted */
void arena_free(void *p, size_t size);   /* size as passed to arena_alloc */
void *arena_alloc_huge(size_t size);     /* 2 MB aligned + MADV_HUGEPAGE (large arrays) */
void arena_free_huge(void *p, size_t size);
size_t arena_committed(void);

#endif
