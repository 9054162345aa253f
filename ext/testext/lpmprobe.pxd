# Cython declarations for ext/lpmprobe.h (C reader thread for concurrency tests).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from rcu cimport rcu_domain

cdef extern from "lpmprobe.h" nogil:
    struct lpm_probe:
        pass
    lpm_probe *lpm_probe_start(int family, const void *table, rcu_domain *rcu, uint16_t vrf,
                               const void *keys, size_t nkeys, size_t max_rounds)
    size_t lpm_probe_stop(lpm_probe *p)
    size_t lpm_probe_total_rounds(const lpm_probe *p)
    void lpm_probe_copy(const lpm_probe *p, uint64_t *gb, uint64_t *ga, uint32_t *answers)
    void lpm_probe_free(lpm_probe *p)
