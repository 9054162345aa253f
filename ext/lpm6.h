/* Per-VRF IPv6 longest-prefix match (VRF 0..65535, prefix -> 32-bit next hop).
 * Addresses are 16 bytes in network order. Same contract as lpm4.h:
 *   readers (workers, lock-free, online in the RCU domain): lpm6_lookup,
 *     lpm6_lookup_bulk, lpm6_generation;
 *   writer (one thread): everything else; all-or-nothing on error.
 * Host bits set are rejected (-EINVAL), never normalised.
 */
#ifndef VR_LPM6_H
#define VR_LPM6_H

#include <stddef.h>
#include <stdint.h>

#include "lpm_api.h"
#include "rcu.h"

struct lpm6;

struct lpm6 *lpm6_create(struct rcu_domain *rcu);
void lpm6_destroy(struct lpm6 *t);

int lpm6_insert(struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len, uint32_t nh);
int lpm6_delete(struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len);
int lpm6_get(const struct lpm6 *t, uint32_t vrf, const uint8_t addr[16], unsigned len, uint32_t *nh);
/* addrs: n * 16 bytes. See lpm4_apply. */
long lpm6_apply(struct lpm6 *t, uint32_t vrf, const uint8_t *addrs, const uint8_t *lens, const uint32_t *nhs,
                const uint8_t *del, size_t n, size_t *bad);
size_t lpm6_count(const struct lpm6 *t, uint32_t vrf);
size_t lpm6_total(const struct lpm6 *t);
size_t lpm6_dump(const struct lpm6 *t, uint32_t vrf, uint8_t *addrs, uint8_t *lens, uint32_t *nhs, size_t cap);
size_t lpm6_vrfs(const struct lpm6 *t, uint16_t *out, size_t cap);
size_t lpm6_bytes(const struct lpm6 *t);

uint32_t lpm6_lookup(const struct lpm6 *t, uint16_t vrf, const uint8_t addr[16]);
void lpm6_lookup_bulk(const struct lpm6 *t, uint16_t vrf, const uint8_t *addrs, uint32_t *out, size_t n,
                      int impl);
uint64_t lpm6_generation(const struct lpm6 *t);

#endif
