/* Private to the flow component (flow.c, flow_age.c): table layout, hashing
 * and the bucket seqlock helpers. Same concurrency contract as flow.h;
 * nothing here is part of the API other components may call. */
#ifndef VR_FLOW_PRIV_H
#define VR_FLOW_PRIV_H

#include "flow.h"

#include <sched.h>
#include <string.h>

struct flow_bucket {
    uint32_t seq;                 /* odd: a writer holds the bucket */
    uint16_t tag[FLOW_WAYS];      /* 0 = empty slot */
    uint32_t idx[FLOW_WAYS];
    uint16_t ovf;                 /* entries whose first bucket is this one but
                                   * that live in their second: 0 lets a miss
                                   * stop here (one bucket line) */
    uint8_t pad[10];
} VR_ALIGNED(VR_CACHE_LINE);

struct flow_wstats {
    struct flow_stats s;
} VR_ALIGNED(VR_CACHE_LINE);

struct flow_table {
    struct flow_entry *e;
    struct flow_times *tm;
    struct flow_bucket *b;
    uint32_t npairs, nentries, nbuckets, mask;
    struct flow_timeouts to;
    uint32_t def_vif_quota, def_vrf_quota;
    uint32_t *vif_quota, *vrf_quota;   /* FLOW_NONE: use the default */
    uint32_t *vif_count, *vrf_count;   /* pairs, atomics */
    uint32_t *free_stack;
    uint32_t free_top;
    uint32_t free_lock;
    size_t bytes;
    uint64_t cursor VR_ALIGNED(VR_CACHE_LINE);
    struct flow_wstats ws[FLOW_MAX_WORKERS];
};

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

/* Test-only hook called inside writer critical sections (flow_set_test_hook)
 * so that the stress test can force preemption there. */
extern void (*flow__test_hook)(void);
#define TEST_HOOK()                                        \
    do {                                                   \
        void (*h_)(void) = VR_LOAD_RLX(&flow__test_hook);  \
        if (VR_UNLIKELY(h_ != NULL))                       \
            h_();                                          \
    } while (0)

/* ---------------------------------------------------------------- hashing */

static inline uint64_t mix64(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint16_t hash_tag(uint64_t h)
{
    uint16_t t = (uint16_t)(h >> 48);
    return t ? t : 1;
}
static inline uint32_t hash_b1(const struct flow_table *t, uint64_t h) { return (uint32_t)h & t->mask; }
static inline uint32_t hash_b2(const struct flow_table *t, uint64_t h)
{
    return (uint32_t)((h * 0x9E3779B97F4A7C15ull) >> 32) & t->mask;
}

static inline int key_eq(const struct flow_key *a, const struct flow_key *b)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    uint64_t d = (load64(x) ^ load64(y)) | (load64(x + 8) ^ load64(y + 8)) |
                 (load64(x + 16) ^ load64(y + 16)) | (load64(x + 24) ^ load64(y + 24)) |
                 (load64(x + 32) ^ load64(y + 32));
    return d == 0;
}

/* ------------------------------------------------------------ bucket lock */

static inline void bkt_lock(struct flow_bucket *b)
{
    for (unsigned spins = 0;; spins++) {
        uint32_t s = VR_LOAD_RLX(&b->seq);
        /* Acquire: the slot and entry stores that follow cannot become
         * visible before the odd sequence that tells readers to retry. */
        if (!(s & 1) && __atomic_compare_exchange_n(&b->seq, &s, s + 1, 0, __ATOMIC_ACQUIRE,
                                                    __ATOMIC_RELAXED))
            return;
        if ((spins & 1023) == 1023)
            sched_yield();   /* the holder may be descheduled (oversubscribed cores) */
        else
            cpu_relax();
    }
}

static inline void bkt_unlock(struct flow_bucket *b)
{
    VR_STORE_REL(&b->seq, VR_LOAD_RLX(&b->seq) + 1);
}

/* Sort and de-duplicate up to 4 bucket ids; returns the count. */
static inline int bkt_set(uint32_t *ids, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t x = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = x;
        }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || ids[m - 1] != ids[i])
            ids[m++] = ids[i];
    return m;
}

static inline void lock_set(struct flow_table *t, const uint32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        bkt_lock(&t->b[ids[i]]);
}
static inline void unlock_set(struct flow_table *t, const uint32_t *ids, int n)
{
    for (int i = n - 1; i >= 0; i--)
        bkt_unlock(&t->b[ids[i]]);
}

static inline uint32_t tag_mask(const struct flow_bucket *b, uint16_t tag)
{
    uint32_t m = 0;
    for (int w = 0; w < FLOW_WAYS; w++)
        m |= (uint32_t)(b->tag[w] == tag) << w;
    return m;
}

static inline int bkt_used(const struct flow_bucket *b)
{
    int n = 0;
    for (int w = 0; w < FLOW_WAYS; w++)
        n += b->tag[w] != 0;
    return n;
}

static inline int pair_active(const struct flow_table *t, uint32_t idx)
{
    return VR_LOAD_ACQ(&t->e[idx & ~1u].state) == FLOW_ACTIVE;
}

static inline int slot_of(const struct flow_bucket *b, uint32_t idx)
{
    for (int w = 0; w < FLOW_WAYS; w++)
        if (b->tag[w] && VR_LOAD_RLX(&b->idx[w]) == idx)
            return w;
    return -1;
}

/* Writer helpers shared by flow.c and flow_age.c (hidden symbols). */
int flow__lock_pair(struct flow_table *t, uint32_t p, const struct flow_key *expect, uint32_t *ids);
void flow__remove_locked(struct flow_table *t, uint32_t p);
void flow__pair_free(struct flow_table *t, uint32_t p);

#endif
