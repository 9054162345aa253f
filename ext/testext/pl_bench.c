/* The pipeline benchmark's inner loop (perf/bench_pipeline.py): frames copied
 * from templates as an rx ring would have written them, then pl_process on
 * each burst, timed with the TSC. Built into vrouter._testext only; the
 * calling thread is the pipeline worker it names. */
#include "testext.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
uint64_t pl_tsc(void) { return __rdtsc(); }
#else
uint64_t pl_tsc(void) { return 0; }
#endif

uint64_t pl_bench_loop(struct pipeline *pl, int worker, struct pkt *pkts, const uint8_t *tmpl, uint32_t stride,
                       const uint16_t *lens, const uint16_t *vifs, uint32_t n, uint32_t burst,
                       uint32_t iterations, struct pl_result *res, uint64_t now)
{
    uint64_t cycles = 0;
    if (!burst)
        return 0;
    for (uint32_t it = 0; it < iterations; it++) {
        for (uint32_t base = 0; base < n; base += burst) {
            uint32_t m = n - base < burst ? n - base : burst;
            for (uint32_t i = base; i < base + m; i++) {
                struct pkt *p = &pkts[i];
                p->data_off = PKT_HEADROOM;
                p->data_len = lens[i];
                p->vif = vifs[i];
                if (lens[i] <= 128)
                    vr_copy_small(p->buf + PKT_HEADROOM, tmpl + (size_t)i * stride, lens[i]);
                else
                    memcpy(p->buf + PKT_HEADROOM, tmpl + (size_t)i * stride, lens[i]);
            }
            uint64_t t0 = pl_tsc();
            pl_process(pl, worker, pkts + base, m, res + base, now);
            cycles += pl_tsc() - t0;
        }
    }
    return cycles;
}
