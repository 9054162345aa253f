# Cython declarations for ext/lpm6.h (per-VRF IPv6 LPM; 16-byte network-order keys).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from rcu cimport rcu_domain

cdef extern from "lpm6.h" nogil:
    struct lpm6:
        pass
    lpm6 *lpm6_create(rcu_domain *rcu)
    void lpm6_destroy(lpm6 *t)
    int lpm6_insert(lpm6 *t, uint32_t vrf, const uint8_t *addr, unsigned len, uint32_t nh)
    int lpm6_delete(lpm6 *t, uint32_t vrf, const uint8_t *addr, unsigned len)
    int lpm6_get(const lpm6 *t, uint32_t vrf, const uint8_t *addr, unsigned len, uint32_t *nh)
    long lpm6_apply(lpm6 *t, uint32_t vrf, const uint8_t *addrs, const uint8_t *lens,
                    const uint32_t *nhs, const uint8_t *dels, size_t n, size_t *bad)
    size_t lpm6_count(const lpm6 *t, uint32_t vrf)
    size_t lpm6_total(const lpm6 *t)
    size_t lpm6_dump(const lpm6 *t, uint32_t vrf, uint8_t *addrs, uint8_t *lens, uint32_t *nhs, size_t cap)
    size_t lpm6_vrfs(const lpm6 *t, uint16_t *out, size_t cap)
    size_t lpm6_bytes(const lpm6 *t)
    uint32_t lpm6_lookup(const lpm6 *t, uint16_t vrf, const uint8_t *addr)
    void lpm6_lookup_bulk(const lpm6 *t, uint16_t vrf, const uint8_t *addrs, uint32_t *out, size_t n, int impl)
    uint64_t lpm6_generation(const lpm6 *t)
