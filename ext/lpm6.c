/* IPv6 instance of the per-VRF LPM (lpm_tmpl.h) on 128-bit keys. Writer:
 * control thread; readers: workers, lock-free under QSBR (see lpm6.h). */
#include "lpm6.h"

#include <string.h>

typedef unsigned __int128 u128;

#define KEY_T u128
#define KEY_BITS 128
#define LPM_T lpm6

static inline unsigned chunk6(u128 k, unsigned off)
{
    return off <= 122 ? (unsigned)(k >> (122 - off)) & 63u : (unsigned)(k << (off - 122)) & 63u;
}
#define CHUNK(k, off) chunk6((k), (off))

#define RKEY_T u128
#define RKEY_BITS 128
#define RK_INIT(k, s) ((u128)(k) << (s))

static unsigned s_for(size_t n) { return n < 1024 ? 8 : n < 8192 ? 12 : n < 65536 ? 16 : 18; }
#define S_FOR(n) s_for(n)

/* perf/bench_lpm.py --impls compares the variants on the real table. */
#define AUTO_IMPL LPM_IMPL_SCALAR

#include "lpm_tmpl.h"

#define PFX_lpm6(name) lpm6_##name
LPM_COMMON_API(PFX_lpm6)

static inline u128 key_load(const uint8_t *b)
{
    uint64_t hi, lo;
    memcpy(&hi, b, 8);
    memcpy(&lo, b + 8, 8);
    return ((u128)__builtin_bswap64(hi) << 64) | __builtin_bswap64(lo);
}

static inline void key_store(uint8_t *b, u128 k)
{
    uint64_t hi = __builtin_bswap64((uint64_t)(k >> 64)), lo = __builtin_bswap64((uint64_t)k);
    memcpy(b, &hi, 8);
    memcpy(b + 8, &lo, 8);
}


VR_EXPORT int lpm6_insert(struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len, uint32_t nh)
{
    return tm_insert(t, vrf, key_load(addr), len, nh);
}

VR_EXPORT int lpm6_delete(struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len)
{
    return tm_delete(t, vrf, key_load(addr), len);
}

VR_EXPORT int lpm6_get(const struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len, uint32_t *nh)
{
    return tm_get(t, vrf, key_load(addr), len, nh);
}

VR_EXPORT long lpm6_apply(struct lpm6 *t, uint32_t vrf, const uint8_t *addrs, const uint8_t *lens,
                          const uint32_t *nhs, const uint8_t *del, size_t n, size_t *bad)
{
    struct op *ops = vr_malloc((n ? n : 1) * sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ops[i] = (struct op){key_load(addrs + 16 * i), nhs ? nhs[i] : 0, lens[i], (uint8_t)(del && del[i])};
    long rc = tm_apply(t, vrf, ops, n, bad);
    vr_free(ops);
    return rc;
}


VR_EXPORT size_t lpm6_dump(const struct lpm6 *t, uint32_t vrf, uint8_t *addrs, uint8_t *lens, uint32_t *nhs,
                           size_t cap)
{
    u128 *keys = vr_malloc((cap ? cap : 1) * sizeof(*keys));
    if (!keys)
        return 0;
    size_t n = tm_dump(t, vrf, keys, lens, nhs, cap);
    for (size_t i = 0; i < n; i++)
        key_store(addrs + 16 * i, keys[i]);
    vr_free(keys);
    return n;
}


/* Cloned per ISA by GCC (ifunc), like the bulk paths: popcnt when the CPU has it. */
__attribute__((target_clones("popcnt", "default"))) VR_EXPORT uint32_t lpm6_lookup(const struct lpm6 *t, uint16_t vrf, const uint8_t addr[16])
{
    const struct fib *f = tm_fib(t, vrf);
    return f ? fib_lookup(f, key_load(addr)) : NO_ROUTE;
}

VR_EXPORT void lpm6_lookup_bulk(const struct lpm6 *t, uint16_t vrf, const uint8_t *addrs, uint32_t *out,
                                size_t n, int impl)
{
    const struct fib *f = tm_bulk_fib(t, vrf, out, n);
    if (!f)
        return;
    bulk_fn fn = pick_bulk(impl);
    u128 keys[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t m = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < m; j++)
            keys[j] = key_load(addrs + 16 * (i + j));
        fn(f, keys, out + i, m);
    }
}
