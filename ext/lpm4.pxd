# Cython declarations for ext/lpm4.h (per-VRF IPv4 LPM).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from rcu cimport rcu_domain

cdef extern from "lpm_api.h" nogil:
    enum:
        LPM_NO_ROUTE
        LPM_MAX_NH
        LPM_MAX_VRF
        LPM_IMPL_AUTO
        LPM_IMPL_SCALAR
        LPM_IMPL_BATCH
        LPM_IMPL_SCALAR_PORTABLE
        LPM_IMPL_BATCH_PORTABLE

cdef extern from "lpm4.h" nogil:
    struct lpm4:
        pass
    lpm4 *lpm4_create(rcu_domain *rcu)
    void lpm4_destroy(lpm4 *t)
    int lpm4_insert(lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t nh)
    int lpm4_delete(lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len)
    int lpm4_get(const lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t *nh)
    long lpm4_apply(lpm4 *t, uint32_t vrf, const uint32_t *addrs, const uint8_t *lens,
                    const uint32_t *nhs, const uint8_t *dels, size_t n, size_t *bad)
    size_t lpm4_count(const lpm4 *t, uint32_t vrf)
    size_t lpm4_total(const lpm4 *t)
    size_t lpm4_dump(const lpm4 *t, uint32_t vrf, uint32_t *addrs, uint8_t *lens, uint32_t *nhs, size_t cap)
    size_t lpm4_vrfs(const lpm4 *t, uint16_t *out, size_t cap)
    size_t lpm4_bytes(const lpm4 *t)
    uint32_t lpm4_lookup(const lpm4 *t, uint16_t vrf, uint32_t addr)
    void lpm4_lookup_bulk(const lpm4 *t, uint16_t vrf, const uint32_t *addrs, uint32_t *out, size_t n, int impl)
    uint64_t lpm4_generation(const lpm4 *t)
