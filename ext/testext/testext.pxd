# Cython declarations for ext/testext/testext.h (test and benchmark helpers).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from flow cimport flow_table
from packet cimport pkt
from pipeline cimport pipeline, pl_result

cdef extern from "testext.h" nogil:
    int flow_stress(flow_table *t, int nthreads, uint32_t keys_per_thread, uint32_t rounds,
                    uint64_t seed, char *msg, size_t msglen)
    uint64_t pl_bench_loop(pipeline *pl, int worker, pkt *pkts, const uint8_t *tmpl, uint32_t stride,
                           const uint16_t *lens, const uint16_t *vifs, uint32_t n, uint32_t burst,
                           uint32_t iterations, pl_result *res, uint64_t now)
    uint64_t pl_tsc()
