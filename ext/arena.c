/* A never-moving arena with size-class free lists for FIB blocks; writer side
 * only (one mutex), readers just load through the published pointers. */
#include "arena.h"
#include "mem.h"
#include "vr_common.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_RESERVE (64ull << 30) /* address space only */
#define ARENA_CHUNK (2u << 20)
#define ARENA_GRAIN 64u
#define ARENA_MAX_SMALL (64u << 10) /* larger blocks take the huge path */
#define NCLASS (ARENA_MAX_SMALL / ARENA_GRAIN + 1)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t committed;

#ifdef VR_DEBUG
VR_EXPORT void *arena_alloc(size_t size) { return vr_aligned_alloc(ARENA_GRAIN, size); }
VR_EXPORT void arena_free(void *p, size_t size) { (void)size; vr_free(p); }
#else
static char *base, *top, *committed_end;
static void *free_list[NCLASS];

static int grow(size_t need)
{
    if (!base) {
        void *p = mmap(NULL, ARENA_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        /* Start on a 2 MB boundary so every chunk can be a huge page. */
        base = (char *)(((uintptr_t)p + ARENA_CHUNK - 1) & ~(uintptr_t)(ARENA_CHUNK - 1));
        top = committed_end = base;
    }
    while ((size_t)(committed_end - top) < need) {
        if ((size_t)(committed_end - base) + ARENA_CHUNK > ARENA_RESERVE - ARENA_CHUNK)
            return -1;
        if (mprotect(committed_end, ARENA_CHUNK, PROT_READ | PROT_WRITE) != 0)
            return -1;
        madvise(committed_end, ARENA_CHUNK, MADV_HUGEPAGE);
        committed_end += ARENA_CHUNK;
        committed += ARENA_CHUNK;
    }
    return 0;
}

VR_EXPORT void *arena_alloc(size_t size)
{
    size_t cls = (size + ARENA_GRAIN - 1) / ARENA_GRAIN;
    if (cls >= NCLASS)
        return arena_alloc_huge(size);
    if (vr_mem_inject_failure())
        return NULL;
    void *p = NULL;
    pthread_mutex_lock(&lock);
    if (free_list[cls]) {
        p = free_list[cls];
        memcpy(&free_list[cls], p, sizeof(void *));
    } else if (grow(cls * ARENA_GRAIN) == 0) {
        p = top;
        top += cls * ARENA_GRAIN;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

VR_EXPORT void arena_free(void *p, size_t size)
{
    if (!p)
        return;
    size_t cls = (size + ARENA_GRAIN - 1) / ARENA_GRAIN;
    if (cls >= NCLASS) {
        arena_free_huge(p, size);
        return;
    }
    pthread_mutex_lock(&lock);
    memcpy(p, &free_list[cls], sizeof(void *));
    free_list[cls] = p;
    pthread_mutex_unlock(&lock);
}
#endif

/* Large arrays get their own mapping, 2 MB aligned, advised before the first
 * touch so the kernel backs them with huge pages from the first fault. */
VR_EXPORT void *arena_alloc_huge(size_t size)
{
    if (size < ARENA_CHUNK)
        return vr_aligned_alloc(ARENA_GRAIN, size);
    if (vr_mem_inject_failure())
        return NULL;
    size_t rounded = (size + ARENA_CHUNK - 1) & ~(size_t)(ARENA_CHUNK - 1);
    char *p = mmap(NULL, rounded + ARENA_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *q = (char *)(((uintptr_t)p + ARENA_CHUNK - 1) & ~(uintptr_t)(ARENA_CHUNK - 1));
    if (q > p)
        munmap(p, (size_t)(q - p));
    if (q + rounded < p + rounded + ARENA_CHUNK)
        munmap(q + rounded, (size_t)(p + rounded + ARENA_CHUNK - (q + rounded)));
    madvise(q, rounded, MADV_HUGEPAGE);
    return q;
}

VR_EXPORT void arena_free_huge(void *p, size_t size)
{
    if (!p)
        return;
    if (size < ARENA_CHUNK) {
        vr_free(p);
        return;
    }
    munmap(p, (size + ARENA_CHUNK - 1) & ~(size_t)(ARENA_CHUNK - 1));
}

VR_EXPORT size_t arena_committed(void)
{
    pthread_mutex_lock(&lock);
    size_t c = committed;
    pthread_mutex_unlock(&lock);
    return c;
}
