/* C helpers for tests and benchmarks, built into vrouter._testext only (never
 * into vrouter._ext, never installed). They run on tables the product module
 * made (handed over as capsules); the module links its own copy of the same
 * objects, so each call stays inside one copy of the code.
 * Thread-safety: each call as documented below; none is for the packet path. */
#ifndef VR_TESTEXT_H
#define VR_TESTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "pipeline.h"

/* nthreads pthreads insert / look up / delete concurrently, then the table
 * is checked against their records. Returns 0 when consistent, else a
 * negative code; msg gets a description. The table must be empty and not
 * used by anything else meanwhile. */
int flow_stress(struct flow_table *t, int nthreads, uint32_t keys_per_thread,
                uint32_t rounds, uint64_t seed, char *msg, size_t msglen);

/* Benchmark loop: `iterations` times, restore the n frames from `tmpl` (n
 * frames of `stride` bytes, lengths in lens, ingress vifs in vifs) into pkts'
 * buffers, and process them in bursts of `burst` on worker `worker` (the
 * caller is that worker: an online RCU reader). Returns the TSC cycles spent
 * in pl_process (0 where there is no TSC). */
uint64_t pl_bench_loop(struct pipeline *pl, int worker, struct pkt *pkts, const uint8_t *tmpl, uint32_t stride,
                       const uint16_t *lens, const uint16_t *vifs, uint32_t n, uint32_t burst,
                       uint32_t iterations, struct pl_result *res, uint64_t now);

/* TSC now (0 where there is none): the benchmark calibrates it. */
uint64_t pl_tsc(void);

#endif
