/* Quiescent-state-based reclamation (QSBR) shared by every read-mostly table.
 *
 * Readers (worker threads) never lock: they register a slot once, report a
 * quiescent state between bursts (rcu_quiescent), and go offline when idle.
 * The single writer unpublishes an object (one atomic pointer store), hands
 * it to rcu_defer(), and the object is freed by rcu_reclaim() once every
 * online reader has passed a quiescent point after the unpublish.
 *
 * Thread-safety contract:
 *   readers:  rcu_register/unregister, rcu_online/offline, rcu_quiescent,
 *             rcu_read_enter/rcu_read_exit (ephemeral slot, for one call)
 *   writer:   rcu_defer_reserve, rcu_defer, rcu_reclaim, rcu_synchronize,
 *             rcu_destroy (writer calls are serialised by an internal mutex,
 *             so several tables may share one domain)
 */
#ifndef VR_RCU_H
#define VR_RCU_H

#include <stddef.h>
#include <stdint.h>

#define RCU_MAX_READERS 128

struct rcu_domain;
typedef void (*rcu_free_fn)(void *);

struct rcu_domain *rcu_create(void);
/* Frees everything still deferred; no reader may be online. */
void rcu_destroy(struct rcu_domain *d);

/* Reader side. */
int rcu_register(struct rcu_domain *d);              /* slot id, or -EBUSY */
void rcu_unregister(struct rcu_domain *d, int id);
void rcu_online(struct rcu_domain *d, int id);
void rcu_offline(struct rcu_domain *d, int id);
void rcu_quiescent(struct rcu_domain *d, int id);
/* Claim a slot and go online for the duration of one call (a Python batch
 * lookup that released the GIL); spins if all slots are taken. */
int rcu_read_enter(struct rcu_domain *d);
void rcu_read_exit(struct rcu_domain *d, int id);

/* Writer side. */
int rcu_defer_reserve(struct rcu_domain *d, size_t n);  /* 0 or -ENOMEM */
/* Never fails after a successful rcu_defer_reserve() covering it. */
int rcu_defer(struct rcu_domain *d, void *p, rcu_free_fn fn);
size_t rcu_reclaim(struct rcu_domain *d);               /* objects freed */
void rcu_synchronize(struct rcu_domain *d);             /* wait, then reclaim all */
size_t rcu_pending(struct rcu_domain *d);
uint64_t rcu_epoch(struct rcu_domain *d);
int rcu_online_readers(struct rcu_domain *d);

#endif
