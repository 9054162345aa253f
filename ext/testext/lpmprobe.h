/* A C reader thread for the LPM concurrency tests: loops bulk lookups of a
 * fixed key set as a registered QSBR reader, recording per round the table
 * generation before and after and every answer (a ring of the last
 * `max_rounds` rounds). Test support only; never on the packet path.
 * Thread-safety: start/stop/free from one (Python) thread; the probe thread
 * is a reader of the table (see lpm4.h/lpm6.h). */
#ifndef VR_LPMPROBE_H
#define VR_LPMPROBE_H

#include <stddef.h>
#include <stdint.h>

#include "lpm4.h"
#include "lpm6.h"
#include "rcu.h"

struct lpm_probe;

/* family 4: keys are n uint32; family 6: keys are n*16 bytes. Copies keys. */
struct lpm_probe *lpm_probe_start(int family, const void *table, struct rcu_domain *rcu, uint16_t vrf,
                                  const void *keys, size_t nkeys, size_t max_rounds);
/* Join the thread; returns the number of rounds recorded (<= max_rounds),
 * oldest first in the arrays below. */
size_t lpm_probe_stop(struct lpm_probe *p);
size_t lpm_probe_total_rounds(const struct lpm_probe *p);
void lpm_probe_copy(const struct lpm_probe *p, uint64_t *gen_before, uint64_t *gen_after, uint32_t *answers);
void lpm_probe_free(struct lpm_probe *p);

#endif
