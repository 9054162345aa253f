/* Per-VRF IPv4 longest-prefix match (VRF 0..65535, prefix -> 32-bit next hop).
 *
 * Thread-safety contract:
 *   readers (workers, any number, no locks): lpm4_lookup, lpm4_lookup_bulk,
 *     lpm4_generation. A reader must be online in the table's RCU domain
 *     (rcu_register/online, or rcu_read_enter) and report quiescent states
 *     between bursts; it never sees a torn or freed structure.
 *   writer (one thread at a time, e.g. the control thread): every other call.
 *     Writes are all-or-nothing: on any error the table is unchanged.
 * Prefixes with host bits set are rejected (-EINVAL), never normalised.
 * Errors are negated errno: -EINVAL (length/host bits), -ERANGE (VRF or next
 * hop out of range), -ENOENT (absent), -ENOMEM (memory exhausted).
 */
#ifndef VR_LPM4_H
#define VR_LPM4_H

#include <stddef.h>
#include <stdint.h>

#include "lpm_api.h"
#include "rcu.h"

struct lpm4;

struct lpm4 *lpm4_create(struct rcu_domain *rcu);
void lpm4_destroy(struct lpm4 *t);

/* Writer. insert: 1 added, 0 replaced; delete: 0 or -ENOENT. */
int lpm4_insert(struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t nh);
int lpm4_delete(struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len);
int lpm4_get(const struct lpm4 *t, uint32_t vrf, uint32_t addr, unsigned len, uint32_t *nh);
/* Batch of inserts (del[i] == 0) and deletes (del[i] != 0; del may be NULL
 * for all inserts), applied in order, all or nothing. Returns the number of
 * routes changed; on -EINVAL/-ERANGE *bad is the offending index. */
long lpm4_apply(struct lpm4 *t, uint32_t vrf, const uint32_t *addrs, const uint8_t *lens,
                const uint32_t *nhs, const uint8_t *del, size_t n, size_t *bad);
size_t lpm4_count(const struct lpm4 *t, uint32_t vrf);
size_t lpm4_total(const struct lpm4 *t);
size_t lpm4_dump(const struct lpm4 *t, uint32_t vrf, uint32_t *addrs, uint8_t *lens, uint32_t *nhs,
                 size_t cap);
size_t lpm4_vrfs(const struct lpm4 *t, uint16_t *out, size_t cap);
size_t lpm4_bytes(const struct lpm4 *t);

/* Readers. Addresses are host-order integers. */
uint32_t lpm4_lookup(const struct lpm4 *t, uint16_t vrf, uint32_t addr);
void lpm4_lookup_bulk(const struct lpm4 *t, uint16_t vrf, const uint32_t *addrs, uint32_t *out, size_t n,
                      int impl);
uint64_t lpm4_generation(const struct lpm4 *t);

#endif
