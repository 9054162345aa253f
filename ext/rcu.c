/* QSBR: a global epoch, one cache line per reader slot holding the epoch the
 * reader last saw (0 = offline), and a writer-side list of deferred frees
 * tagged with the epoch at which they became unreachable. */
#include "rcu.h"
#include "mem.h"
#include "vr_common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

struct rcu_slot {
    uint64_t seen;   /* 0: offline */
    uint32_t in_use;
} VR_ALIGNED(VR_CACHE_LINE);

struct rcu_deferred {
    void *p;
    rcu_free_fn fn;
    uint64_t tag;
};

struct rcu_domain {
    uint64_t epoch VR_ALIGNED(VR_CACHE_LINE);
    int nslots; /* high-water mark of slots ever claimed: scans stop there */
    struct rcu_slot slots[RCU_MAX_READERS];
    pthread_mutex_t lock;             /* writer side only */
    struct rcu_deferred *defer;
    size_t ndefer, cap;
};

VR_EXPORT struct rcu_domain *rcu_create(void)
{
    struct rcu_domain *d = vr_aligned_alloc(VR_CACHE_LINE, sizeof(*d));
    if (!d)
        return NULL;
    memset(d, 0, sizeof(*d));
    d->epoch = 1;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

VR_EXPORT void rcu_destroy(struct rcu_domain *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->ndefer; i++)
        d->defer[i].fn(d->defer[i].p);
    vr_free(d->defer);
    pthread_mutex_destroy(&d->lock);
    vr_free(d);
}

VR_EXPORT int rcu_register(struct rcu_domain *d)
{
    for (int i = 0; i < RCU_MAX_READERS; i++) {
        uint32_t expect = 0;
        if (__atomic_compare_exchange_n(&d->slots[i].in_use, &expect, 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            VR_STORE_REL(&d->slots[i].seen, 0);
            int hw = VR_LOAD_RLX(&d->nslots);
            while (hw < i + 1 && !__atomic_compare_exchange_n(&d->nslots, &hw, i + 1, 0, __ATOMIC_ACQ_REL,
                                                              __ATOMIC_RELAXED))
                ;
            return i;
        }
    }
    return -EBUSY;
}

VR_EXPORT void rcu_unregister(struct rcu_domain *d, int id)
{
    VR_STORE_REL(&d->slots[id].seen, 0);
    VR_STORE_REL(&d->slots[id].in_use, 0);
}

VR_EXPORT void rcu_online(struct rcu_domain *d, int id)
{
    VR_STORE_RLX(&d->slots[id].seen, VR_LOAD_RLX(&d->epoch));
    /* Our slot store must be visible before we read any table pointer. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

VR_EXPORT void rcu_offline(struct rcu_domain *d, int id)
{
    VR_STORE_REL(&d->slots[id].seen, 0);
}

VR_EXPORT void rcu_quiescent(struct rcu_domain *d, int id)
{
    /* All our earlier reads of table pointers happen before the store. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    VR_STORE_REL(&d->slots[id].seen, VR_LOAD_RLX(&d->epoch));
}

VR_EXPORT int rcu_read_enter(struct rcu_domain *d)
{
    int id;
    while ((id = rcu_register(d)) < 0)
        sched_yield();
    rcu_online(d, id);
    return id;
}

VR_EXPORT void rcu_read_exit(struct rcu_domain *d, int id) { rcu_unregister(d, id); }

static int reserve_locked(struct rcu_domain *d, size_t n)
{
    if (d->ndefer + n <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 64;
    while (cap < d->ndefer + n)
        cap *= 2;
    struct rcu_deferred *nd = vr_realloc(d->defer, cap * sizeof(*nd));
    if (!nd)
        return -ENOMEM;
    d->defer = nd;
    d->cap = cap;
    return 0;
}

VR_EXPORT int rcu_defer_reserve(struct rcu_domain *d, size_t n)
{
    pthread_mutex_lock(&d->lock);
    int rc = reserve_locked(d, n);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

VR_EXPORT int rcu_defer(struct rcu_domain *d, void *p, rcu_free_fn fn)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&d->lock);
    if (reserve_locked(d, 1) < 0) {
        pthread_mutex_unlock(&d->lock);
        return -ENOMEM;
    }
    /* The object was unpublished before this increment; any reader that
     * reports the new epoch (or later) can no longer hold it. */
    uint64_t tag = __atomic_add_fetch(&d->epoch, 1, __ATOMIC_SEQ_CST);
    d->defer[d->ndefer++] = (struct rcu_deferred){p, fn, tag};
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Smallest epoch seen by an online reader; UINT64_MAX when none is online. */
static uint64_t min_seen(struct rcu_domain *d)
{
    uint64_t m = UINT64_MAX;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int n = VR_LOAD_ACQ(&d->nslots);
    for (int i = 0; i < n; i++) {
        if (!VR_LOAD_ACQ(&d->slots[i].in_use))
            continue;
        uint64_t s = VR_LOAD_ACQ(&d->slots[i].seen);
        if (s && s < m)
            m = s;
    }
    return m;
}

VR_EXPORT size_t rcu_reclaim(struct rcu_domain *d)
{
    pthread_mutex_lock(&d->lock);
    uint64_t m = min_seen(d);
    size_t n = 0;
    while (n < d->ndefer && d->defer[n].tag <= m)
        n++;
    for (size_t i = 0; i < n; i++)
        d->defer[i].fn(d->defer[i].p);
    if (n && n < d->ndefer) /* (memmove on the NULL list of a fresh domain is UB) */
        memmove(d->defer, d->defer + n, (d->ndefer - n) * sizeof(*d->defer));
    d->ndefer -= n;
    pthread_mutex_unlock(&d->lock);
    return n;
}

VR_EXPORT void rcu_synchronize(struct rcu_domain *d)
{
    uint64_t target = __atomic_add_fetch(&d->epoch, 1, __ATOMIC_SEQ_CST);
    while (min_seen(d) < target)
        sched_yield();
    rcu_reclaim(d);
}

VR_EXPORT size_t rcu_pending(struct rcu_domain *d)
{
    pthread_mutex_lock(&d->lock);
    size_t n = d->ndefer;
    pthread_mutex_unlock(&d->lock);
    return n;
}

VR_EXPORT uint64_t rcu_epoch(struct rcu_domain *d) { return VR_LOAD_ACQ(&d->epoch); }

VR_EXPORT int rcu_online_readers(struct rcu_domain *d)
{
    int n = 0;
    for (int i = 0; i < RCU_MAX_READERS; i++)
        n += VR_LOAD_ACQ(&d->slots[i].in_use) && VR_LOAD_ACQ(&d->slots[i].seen);
    return n;
}
