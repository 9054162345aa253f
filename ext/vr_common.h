/* Small shared definitions for every ext/ component: branch hints, cache-line
 * size, atomics. Header only; no state. */
#ifndef VR_COMMON_H
#define VR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define VR_CACHE_LINE 64
#define VR_LIKELY(x) __builtin_expect(!!(x), 1)
#define VR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define VR_EXPORT __attribute__((visibility("default")))
/* Hot helpers that must be inlined into each CPU-specific variant (compiled
 * on their own they would get the portable ISA: popcount as a libgcc call). */
#define VR_ALWAYS_INLINE inline __attribute__((always_inline))
#define VR_ALIGNED(n) __attribute__((aligned(n)))

#define VR_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define VR_LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define VR_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define VR_STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Error codes returned by writer-side calls (negated errno values). */
#include <errno.h>

#endif
