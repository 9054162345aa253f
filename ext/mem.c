/* Allocation wrappers with fault injection. Writer side only (control thread);
 * the per-packet path never allocates. */
#include "mem.h"
#include "vr_common.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1;

VR_EXPORT void vr_mem_fail_after(long n) { __atomic_store_n(&fail_countdown, n, __ATOMIC_RELAXED); }

VR_EXPORT int vr_mem_inject_failure(void)
{
    long c = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);
    if (VR_LIKELY(c < 0))
        return 0;
    if (c == 0) {
        /* Stays failing until reset, so an operation cannot half-succeed by
         * retrying a different allocation. */
        return 1;
    }
    __atomic_store_n(&fail_countdown, c - 1, __ATOMIC_RELAXED);
    return 0;
}

void *vr_malloc(size_t size) { return vr_mem_inject_failure() ? NULL : malloc(size ? size : 1); }
void *vr_calloc(size_t n, size_t size) { return vr_mem_inject_failure() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *vr_realloc(void *p, size_t size) { return vr_mem_inject_failure() ? NULL : realloc(p, size ? size : 1); }

void *vr_aligned_alloc(size_t align, size_t size)
{
    void *p = NULL;
    if (vr_mem_inject_failure())
        return NULL;
    if (posix_memalign(&p, align, size ? size : align) != 0)
        return NULL;
    return p;
}

void vr_free(void *p) { free(p); }
