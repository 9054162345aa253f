/* Writer-side allocation for every table: one place that counts bytes and can
 * be told to fail (fault injection for the "memory exhausted" tests).
 * Thread-safety: the fault-injection knob is a plain global for tests; the
 * allocation calls themselves are as thread-safe as malloc. Never used per
 * packet. */
#ifndef VR_MEM_H
#define VR_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Make the n-th allocation from now fail (0 = the next one); -1 disables. */
void vr_mem_fail_after(long n);

/* 1 if the allocation being made now must fail (for allocators elsewhere). */
int vr_mem_inject_failure(void);

void *vr_malloc(size_t size);
void *vr_calloc(size_t n, size_t size);
void *vr_realloc(void *p, size_t size);
void *vr_aligned_alloc(size_t align, size_t size);
void vr_free(void *p);

#endif
