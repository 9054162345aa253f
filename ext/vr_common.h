/* Small shared definitions for every ext/ component: branch hints, cache-line
 * size, atomics. Header only; no state. */
#ifndef VR_COMMON_H
#define VR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define VR_CACHE_LINE 64
#define VR_LIKELY(x) __builtin_expect(!!(x), 1)
#define VR_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Marks a component's API function. Only a mark: like everything else built
 * with -fvisibility=hidden, it stays out of the module's dynamic symbols
 * (vrouter._ext exports PyInit__ext alone; nothing links against it). */
#define VR_EXPORT
/* Hot helpers that must be inlined into each CPU-specific variant (compiled
 * on their own they would get the portable ISA: popcount as a libgcc call). */
#define VR_ALWAYS_INLINE inline __attribute__((always_inline))
#define VR_ALIGNED(n) __attribute__((aligned(n)))

#define VR_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define VR_LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define VR_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define VR_STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Big-endian (network order) fields in frames, at any alignment. */
static inline uint16_t vr_get16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

static inline void vr_put16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline uint32_t vr_get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline void vr_put32(uint8_t *b, uint32_t v)
{
    vr_put16(b, (uint16_t)(v >> 16));
    vr_put16(b + 2, (uint16_t)v);
}

/* Copy n <= 128 bytes with fixed-size moves (two overlapping ones) that the
 * compiler inlines: a call into libc's memcpy costs more than the copy for
 * the headers the datapath writes. */
#include <string.h>
static inline void vr_copy_small(void *dst, const void *src, unsigned n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    if (n >= 64) {
        memcpy(d, s, 64);
        memcpy(d + n - 64, s + n - 64, 64);
    } else if (n >= 32) {
        memcpy(d, s, 32);
        memcpy(d + n - 32, s + n - 32, 32);
    } else if (n >= 16) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else {
        for (unsigned i = 0; i < n; i++)
            d[i] = s[i];
    }
}

/* Error codes returned by writer-side calls (negated errno values). */
#include <errno.h>

#endif
