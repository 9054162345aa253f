/* IPv4 instance of the per-VRF LPM (lpm_tmpl.h). Writer: control thread;
 * readers: workers, lock-free under QSBR (see lpm4.h). */
#include "lpm4.h"

#define KEY_T uint32_t
#define KEY_BITS 32
#define LPM_T lpm4
/* Six key bits from bit `off`; the key is padded with zeros past bit 31. */
#define CHUNK(k, off) ((unsigned)((((uint64_t)(k)) << 32) >> (58 - (off))) & 63u)

/* Running key of a walk: the address in the top 32 bits of a u64. */
#define RKEY_T uint64_t
#define RKEY_BITS 64
#define RK_INIT(k, s) (((uint64_t)(k) << 32) << (s))

/* Direct-pointing bits by VRF size: 2 KB for a small VRF, 2 MB (Poptrie18)
 * for a full Internet table. */
static unsigned s_for(size_t n) { return n < 1024 ? 8 : n < 8192 ? 12 : n < 65536 ? 16 : 18; }
#define S_FOR(n) s_for(n)

/* perf/bench_lpm.py --impls compares the variants on the real table. */
#define AUTO_IMPL LPM_IMPL_BATCH

#include "lpm_tmpl.h"

#define PFX_lpm4(name) lpm4_##name
LPM_COMMON_API(PFX_lpm4)


VR_EXPORT int lpm4_insert(struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t nh)
{
    return tm_insert(t, vrf, addr, len, nh);
}

VR_EXPORT int lpm4_delete(struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len)
{
    return tm_delete(t, vrf, addr, len);
}

VR_EXPORT int lpm4_get(const struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t *nh)
{
    return tm_get(t, vrf, addr, len, nh);
}

VR_EXPORT long lpm4_apply(struct lpm4 *t, uint32_t vrf, const uint32_t *addrs, const uint8_t *lens,
                          const uint32_t *nhs, const uint8_t *del, size_t n, size_t *bad)
{
    struct op *ops = vr_malloc((n ? n : 1) * sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ops[i] = (struct op){addrs[i], nhs ? nhs[i] : 0, lens[i], (uint8_t)(del && del[i])};
    long rc = tm_apply(t, vrf, ops, n, bad);
    vr_free(ops);
    return rc;
}


VR_EXPORT size_t lpm4_dump(const struct lpm4 *t, uint32_t vrf, uint32_t *addrs, uint8_t *lens, uint32_t *nhs,
                           size_t cap)
{
    return tm_dump(t, vrf, addrs, lens, nhs, cap);
}


/* Cloned per ISA by GCC (ifunc), like the bulk paths: popcnt when the CPU has it. */
__attribute__((target_clones("popcnt", "default"))) VR_EXPORT uint32_t lpm4_lookup(const struct lpm4 *t, uint16_t vrf, uint32_t addr)
{
    const struct fib *f = tm_fib(t, vrf);
    return f ? fib_lookup(f, addr) : NO_ROUTE;
}

VR_EXPORT void lpm4_lookup_bulk(const struct lpm4 *t, uint16_t vrf, const uint32_t *addrs, uint32_t *out,
                                size_t n, int impl)
{
    const struct fib *f = tm_bulk_fib(t, vrf, out, n);
    if (!f)
        return;
    pick_bulk(impl)(f, addrs, out, n);
}
