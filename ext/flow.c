/* Flow table: two-choice bucketised hash over a pair-allocated entry array:
 * create, lookups (scalar + prefetching bulk), pair insert and delete.
 * Concurrency: per-bucket seqlocks (writers lock, readers validate); see flow.h. */
#include "arena.h"
#include "flow_priv.h"
#include "mem.h"

#include <errno.h>
#include <sys/mman.h>

static const char *const drop_names[] = {
#define FLOW_X(n, s) s,
    FLOW_DROP_REASONS(FLOW_X)
#undef FLOW_X
};

VR_EXPORT const char *flow_drop_name(int reason)
{
    if (reason < 0 || reason >= FLOW_DROP__COUNT)
        return "unknown";
    return drop_names[reason];
}


void (*flow__test_hook)(void);

VR_EXPORT void flow_set_test_hook(void (*fn)(void)) { VR_STORE_RLX(&flow__test_hook, fn); }

VR_EXPORT uint64_t flow_hash(const struct flow_key *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = mix64(load64(p) ^ 0xa0761d6478bd642full, load64(p + 8) ^ 0xe7037ed1a0b428dbull);
    h ^= mix64(load64(p + 16) ^ 0x8ebc6af09c88c6e3ull, load64(p + 24) ^ 0x589965cc75374cc3ull);
    return mix64(h ^ load64(p + 32), 0x1d8e4e27c47d124full);
}

VR_EXPORT void flow_key_reverse(const struct flow_key *k, struct flow_key *r)
{
    *r = *k;
    memcpy(r->src, k->dst, 16);
    memcpy(r->dst, k->src, 16);
    if (k->proto == 1 || k->proto == 58) {
        /* ICMP: same identifier; echo request <-> reply. */
        uint16_t ty = k->dport;
        if (k->proto == 1)
            r->dport = ty == 8 ? 0 : ty == 0 ? 8 : ty;
        else
            r->dport = ty == 128 ? 129 : ty == 129 ? 128 : ty;
    } else {
        r->sport = k->dport;
        r->dport = k->sport;
    }
}
/* ---------------------------------------------------------------- create */

/* The three big arrays are read at random by every lookup: huge pages (the
 * arena's own 2 MB-aligned mappings, advised before first touch) keep their
 * TLB misses down. Zeroed. */
static void *big_alloc(size_t bytes)
{
    void *p = arena_alloc_huge(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static size_t entries_bytes(const struct flow_table *t) { return (size_t)t->nentries * sizeof(struct flow_entry); }
static size_t times_bytes(const struct flow_table *t) { return (size_t)t->nentries * sizeof(struct flow_times); }
static size_t buckets_bytes(const struct flow_table *t) { return (size_t)t->nbuckets * sizeof(struct flow_bucket); }

VR_EXPORT void flow_default_timeouts(struct flow_timeouts *to)
{
    const uint64_t s = 1000000000ull;
    to->tcp = 180 * s;
    to->tcp_close = 10 * s;
    to->udp = 60 * s;
    to->icmp = 30 * s;
    to->other = 60 * s;
    to->drop = 5 * s;
}

VR_EXPORT void flow_destroy(struct flow_table *t)
{
    if (!t)
        return;
    arena_free_huge(t->e, entries_bytes(t));
    arena_free_huge(t->tm, times_bytes(t));
    arena_free_huge(t->b, buckets_bytes(t));
    vr_free(t->vif_quota);
    vr_free(t->vrf_quota);
    vr_free(t->vif_count);
    vr_free(t->vrf_count);
    vr_free(t->free_stack);
    vr_free(t);
}

VR_EXPORT int flow_create(uint32_t capacity, const struct flow_timeouts *to, struct flow_table **out)
{
    *out = NULL;
    if (capacity < FLOW_MIN_CAPACITY || capacity > FLOW_MAX_CAPACITY)
        return -EINVAL;
    capacity = (capacity + 1) & ~1u;
    struct flow_table *t = vr_aligned_alloc(VR_CACHE_LINE, sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof(*t));
    t->npairs = capacity / 2;
    t->nentries = capacity;
    uint32_t nb = 2;
    while (nb < capacity / 4)   /* 8 ways x cap/4 buckets = 2 slots per entry */
        nb <<= 1;
    t->nbuckets = nb;
    t->mask = nb - 1;
    if (to)
        t->to = *to;
    else
        flow_default_timeouts(&t->to);
    t->e = big_alloc(entries_bytes(t));
    t->tm = big_alloc(times_bytes(t));
    t->b = big_alloc(buckets_bytes(t));
    t->vif_quota = vr_malloc(65536 * sizeof(uint32_t));
    t->vrf_quota = vr_malloc(65536 * sizeof(uint32_t));
    t->vif_count = vr_calloc(65536, sizeof(uint32_t));
    t->vrf_count = vr_calloc(65536, sizeof(uint32_t));
    t->free_stack = vr_malloc((size_t)t->npairs * sizeof(uint32_t));
    if (!t->e || !t->tm || !t->b || !t->vif_quota || !t->vrf_quota || !t->vif_count ||
        !t->vrf_count || !t->free_stack) {
        flow_destroy(t);
        return -ENOMEM;
    }
    memset(t->vif_quota, 0xff, 65536 * sizeof(uint32_t));
    memset(t->vrf_quota, 0xff, 65536 * sizeof(uint32_t));
    for (uint32_t b = 0; b < nb; b++)
        for (int w = 0; w < FLOW_WAYS; w++)
            t->b[b].idx[w] = FLOW_NONE;
    /* Low pair indices on top of the stack: a fresh table fills from 0. */
    for (uint32_t i = 0; i < t->npairs; i++)
        t->free_stack[i] = t->npairs - 1 - i;
    t->free_top = t->npairs;
    t->bytes = sizeof(*t) + (size_t)capacity * (sizeof(struct flow_entry) + sizeof(struct flow_times)) +
               (size_t)nb * sizeof(struct flow_bucket) + 4 * 65536 * sizeof(uint32_t) +
               (size_t)t->npairs * sizeof(uint32_t);
    *out = t;
    return 0;
}

VR_EXPORT void flow_set_timeouts(struct flow_table *t, const struct flow_timeouts *to)
{
    uint64_t *d = (uint64_t *)&t->to;
    const uint64_t *s = (const uint64_t *)to;
    for (size_t i = 0; i < sizeof(*to) / 8; i++)
        VR_STORE_RLX(&d[i], s[i]);
}

VR_EXPORT void flow_set_default_quota(struct flow_table *t, uint32_t per_vif, uint32_t per_vrf)
{
    VR_STORE_RLX(&t->def_vif_quota, per_vif);
    VR_STORE_RLX(&t->def_vrf_quota, per_vrf);
}

VR_EXPORT int flow_set_vif_quota(struct flow_table *t, uint16_t vif, uint32_t max)
{
    VR_STORE_RLX(&t->vif_quota[vif], max);
    return 0;
}

VR_EXPORT int flow_set_vrf_quota(struct flow_table *t, uint16_t vrf, uint32_t max)
{
    VR_STORE_RLX(&t->vrf_quota[vrf], max);
    return 0;
}

VR_EXPORT uint32_t flow_capacity(const struct flow_table *t) { return t->nentries; }
VR_EXPORT size_t flow_memory(const struct flow_table *t) { return t->bytes; }
VR_EXPORT uint32_t flow_vif_count(const struct flow_table *t, uint16_t vif) { return VR_LOAD_RLX(&t->vif_count[vif]); }
VR_EXPORT uint32_t flow_vrf_count(const struct flow_table *t, uint16_t vrf) { return VR_LOAD_RLX(&t->vrf_count[vrf]); }

/* ---------------------------------------------------------------- readers */


/* Plain scalar lookup: the reference path the bulk variant is tested against. */
static uint32_t lookup_hashed(struct flow_table *t, const struct flow_key *k, uint64_t h)
{
    const uint16_t tag = hash_tag(h);
    const uint32_t bi[2] = {hash_b1(t, h), hash_b2(t, h)};
    for (;;) {
        int retry = 0;
        for (int j = 0; j < 2 && !retry; j++) {
            const struct flow_bucket *b = &t->b[bi[j]];
            uint32_t s = VR_LOAD_ACQ(&b->seq);
            if (s & 1) {
                retry = 1;
                break;
            }
            uint32_t found = FLOW_NONE;
            for (uint32_t m = tag_mask(b, tag); m; m &= m - 1) {
                uint32_t idx = VR_LOAD_RLX(&b->idx[__builtin_ctz(m)]);
                if (idx < t->nentries && key_eq(&t->e[idx].key, k)) {
                    found = idx;
                    break;
                }
            }
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (VR_LOAD_RLX(&b->seq) != s)
                retry = 1;
            else if (found != FLOW_NONE)
                return found;
        }
        if (!retry)
            return FLOW_NONE;
        cpu_relax();
    }
}

VR_EXPORT uint32_t flow_lookup(struct flow_table *t, const struct flow_key *k)
{
    return lookup_hashed(t, k, flow_hash(k));
}

static inline void fill_result(const struct flow_table *t, uint32_t idx, struct flow_result *r)
{
    const struct flow_entry *e = &t->e[idx];
    r->index = idx;
    r->nh = e->nh;
    r->rule_id = e->rule_id;
    r->found = 1;
    r->action = e->action;
    r->drop_reason = e->drop_reason;
    r->tcp = e->tcp;
    r->ecmp = e->ecmp;
}

static inline void fill_miss(struct flow_result *r)
{
    memset(r, 0, sizeof(*r));
    r->index = FLOW_NONE;
}

/* Fill a result consistently with the bucket that holds idx (retries). */
static void result_stable(struct flow_table *t, const struct flow_key *k, uint64_t h,
                          struct flow_result *r)
{
    for (;;) {
        uint32_t idx = lookup_hashed(t, k, h);
        if (idx == FLOW_NONE) {
            fill_miss(r);
            return;
        }
        const struct flow_bucket *b = &t->b[t->e[idx].bucket & t->mask];
        uint32_t s = VR_LOAD_ACQ(&b->seq);
        if (s & 1)
            continue;
        fill_result(t, idx, r);
        int ok = key_eq(&t->e[idx].key, k);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (ok && VR_LOAD_RLX(&b->seq) == s)
            return;
    }
}

/* Hash all keys and prefetch their first bucket; match tags there (most
 * entries live in their first bucket, see insert_locked) and prefetch the
 * candidate entry or, when the tag is absent, the second bucket; then the
 * second-bucket keys; then compare keys. Anything unusual (tag collision, a
 * writer in the bucket) falls back to the scalar path for that key. */
static void lookup_chunk(struct flow_table *t, const struct flow_key *keys, uint32_t n,
                         struct flow_result *res, uint64_t *hits)
{
    uint64_t h[FLOW_BURST];
    uint32_t cand[FLOW_BURST], s1[FLOW_BURST], s2[FLOW_BURST];
    uint8_t state[FLOW_BURST];   /* 0: miss, 1: candidate in b1, 2: in b2, 3: need b2, 4: slow,
                                  * 5: miss decided by b1 alone */
    for (uint32_t i = 0; i < n; i++) {
        h[i] = flow_hash(&keys[i]);
        __builtin_prefetch(&t->b[hash_b1(t, h[i])]);
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct flow_bucket *b1 = &t->b[hash_b1(t, h[i])];
        s1[i] = VR_LOAD_ACQ(&b1->seq);
        uint32_t m1 = tag_mask(b1, hash_tag(h[i]));
        cand[i] = FLOW_NONE;
        if ((s1[i] & 1) || (m1 & (m1 - 1))) {
            state[i] = 4;
        } else if (m1) {
            cand[i] = VR_LOAD_RLX(&b1->idx[__builtin_ctz(m1)]);
            state[i] = 1;
            __builtin_prefetch(&t->e[cand[i] < t->nentries ? cand[i] : 0]);
            __builtin_prefetch(&t->tm[cand[i] < t->nentries ? cand[i] : 0], 1);   /* flow_touch_bulk's */
        } else if (VR_LOAD_RLX(&b1->ovf) == 0) {
            state[i] = 5;   /* nothing of this bucket spilled: a miss */
        } else {
            state[i] = 3;
            __builtin_prefetch(&t->b[hash_b2(t, h[i])]);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (state[i] != 3)
            continue;
        const struct flow_bucket *b2 = &t->b[hash_b2(t, h[i])];
        s2[i] = VR_LOAD_ACQ(&b2->seq);
        uint32_t m2 = tag_mask(b2, hash_tag(h[i]));
        if ((s2[i] & 1) || (m2 & (m2 - 1))) {
            state[i] = 4;
        } else if (m2) {
            cand[i] = VR_LOAD_RLX(&b2->idx[__builtin_ctz(m2)]);
            state[i] = 2;
            __builtin_prefetch(&t->e[cand[i] < t->nentries ? cand[i] : 0]);
        } else {
            state[i] = 0;
        }
    }
    uint64_t nhit = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct flow_result *r = &res[i];
        int ok = 1;
        if (state[i] == 4 || ((state[i] == 1 || state[i] == 2) && cand[i] >= t->nentries))
            ok = 0;
        else if (state[i] == 0 || state[i] == 5)
            fill_miss(r);
        else if (key_eq(&t->e[cand[i]].key, &keys[i]))
            fill_result(t, cand[i], r);
        else
            ok = 0;
        if (ok) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            ok = VR_LOAD_RLX(&t->b[hash_b1(t, h[i])].seq) == s1[i] &&
                 (state[i] == 1 || state[i] == 5 || VR_LOAD_RLX(&t->b[hash_b2(t, h[i])].seq) == s2[i]);
        }
        if (!ok)
            result_stable(t, &keys[i], h[i], r);
        r->hash = flow_hash32(h[i]);
        nhit += r->found;
    }
    *hits += nhit;
}

VR_EXPORT void flow_lookup_bulk(struct flow_table *t, int worker, const struct flow_key *keys,
                                uint32_t n, struct flow_result *res)
{
    uint64_t hits = 0;
    for (uint32_t off = 0; off < n; off += FLOW_BURST) {
        uint32_t m = n - off < FLOW_BURST ? n - off : FLOW_BURST;
        lookup_chunk(t, keys + off, m, res + off, &hits);
    }
    struct flow_stats *st = &t->ws[worker & (FLOW_MAX_WORKERS - 1)].s;
    st->hits += hits;
    st->misses += n - hits;
}


/* e and tm may be unaligned (numpy buffers): copied out with memcpy. */
VR_EXPORT int flow_get(struct flow_table *t, uint32_t idx, struct flow_entry *e, struct flow_times *tm)
{
    if (idx >= t->nentries)
        return -ENOENT;
    for (;;) {
        struct flow_entry ce;
        struct flow_times ct;
        const struct flow_bucket *b = &t->b[VR_LOAD_RLX(&t->e[idx].bucket) & t->mask];
        uint32_t s = VR_LOAD_ACQ(&b->seq);
        if (s & 1) {
            cpu_relax();
            continue;
        }
        int present = slot_of(b, idx) >= 0 && pair_active(t, idx);
        ce = t->e[idx];
        ct = t->tm[idx];
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (VR_LOAD_RLX(&b->seq) != s)
            continue;
        if (!present || &t->b[ce.bucket & t->mask] != b)
            return -ENOENT;
        memcpy(e, &ce, sizeof(ce));
        memcpy(tm, &ct, sizeof(ct));
        return 0;
    }
}

VR_EXPORT void flow_touch_bulk(struct flow_table *t, const uint32_t *idx, const uint32_t *bytes,
                               const uint8_t *tcp_flags, uint32_t n, uint64_t now)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = idx[i];
        if (x >= t->nentries)
            continue;
        struct flow_times *tm = &t->tm[x];
        VR_STORE_RLX(&tm->packets, VR_LOAD_RLX(&tm->packets) + 1);
        VR_STORE_RLX(&tm->bytes, VR_LOAD_RLX(&tm->bytes) + (bytes ? bytes[i] : 0));
        VR_STORE_RLX(&tm->last_seen, now);
        if (!tcp_flags || t->e[x].key.proto != 6)
            continue;
        uint8_t f = tcp_flags[i], st = VR_LOAD_RLX(&t->e[x].tcp);
        uint8_t pair = st | VR_LOAD_RLX(&t->e[x ^ 1].tcp);
        if (f & 0x02)
            st |= FLOW_TCP_SYN;
        if ((f & 0x10) && !(f & 0x02) && (pair & FLOW_TCP_SYN))
            st |= FLOW_TCP_EST;
        if (f & 0x01)
            st |= FLOW_TCP_FIN;
        if (f & 0x04)
            st |= FLOW_TCP_RST;
        VR_STORE_RLX(&t->e[x].tcp, st);
    }
}

VR_EXPORT void flow_prefetch_insert(const struct flow_table *t, const struct flow_key *fwd)
{
    struct flow_key rev;
    flow_key_reverse(fwd, &rev);
    uint64_t hf = flow_hash(fwd), hr = flow_hash(&rev);
    __builtin_prefetch(&t->b[hash_b1(t, hf)], 1);
    __builtin_prefetch(&t->b[hash_b2(t, hf)], 1);
    __builtin_prefetch(&t->b[hash_b1(t, hr)], 1);
    __builtin_prefetch(&t->b[hash_b2(t, hr)], 1);
}

VR_EXPORT void flow_set_ecmp(struct flow_table *t, uint32_t idx, uint8_t slot)
{
    if (idx < t->nentries)
        VR_STORE_RLX(&t->e[idx].ecmp, slot);
}

/* ---------------------------------------------------------------- writers */

static int find_locked(const struct flow_table *t, uint32_t bi, uint16_t tag, const struct flow_key *k)
{
    const struct flow_bucket *b = &t->b[bi];
    for (uint32_t m = tag_mask(b, tag); m; m &= m - 1) {
        uint32_t idx = b->idx[__builtin_ctz(m)];
        if (key_eq(&t->e[idx].key, k))
            return 1;
    }
    return 0;
}

static int free_way(const struct flow_bucket *b)
{
    for (int w = 0; w < FLOW_WAYS; w++)
        if (!b->tag[w])
            return w;
    return -1;
}

static inline uint32_t quota_of(const uint32_t *arr, uint32_t def, uint16_t id)
{
    uint32_t q = VR_LOAD_RLX(&arr[id]);
    return q == FLOW_NONE ? VR_LOAD_RLX(&def) : q;
}

/* Take one unit of quota; 0 or -1 when the limit is reached. */
static int quota_take(uint32_t *count, uint32_t limit)
{
    uint32_t c = __atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
    if (limit && c >= limit) {
        __atomic_fetch_sub(count, 1, __ATOMIC_RELAXED);
        return -1;
    }
    return 0;
}

static uint32_t pair_alloc(struct flow_table *t)
{
    uint32_t p = FLOW_NONE;
    while (__atomic_exchange_n(&t->free_lock, 1, __ATOMIC_ACQUIRE))
        cpu_relax();
    if (t->free_top)
        p = t->free_stack[--t->free_top];
    VR_STORE_REL(&t->free_lock, 0);
    return p;
}

void flow__pair_free(struct flow_table *t, uint32_t p)
{
    while (__atomic_exchange_n(&t->free_lock, 1, __ATOMIC_ACQUIRE))
        cpu_relax();
    t->free_stack[t->free_top++] = p;
    VR_STORE_REL(&t->free_lock, 0);
}

static void entry_fill(struct flow_table *t, uint32_t idx, const struct flow_key *k, uint32_t nh,
                       uint8_t ecmp, const struct flow_install *in, uint32_t bucket, uint64_t now)
{
    struct flow_entry *e = &t->e[idx];
    e->key = *k;
    e->nh = nh;
    e->rule_id = in->rule_id;
    e->policy_gen = in->policy_gen;
    e->bucket = bucket;
    e->vif = in->vif;
    e->action = in->action;
    e->drop_reason = in->drop_reason;
    e->tcp = 0;
    e->ecmp = ecmp;
    struct flow_times *tm = &t->tm[idx];
    tm->packets = tm->bytes = 0;
    tm->first_seen = tm->last_seen = now;
}

static inline void slot_set(struct flow_bucket *b, int w, uint32_t idx, uint16_t tag)
{
    VR_STORE_RLX(&b->idx[w], idx);
    VR_STORE_RLX(&b->tag[w], tag);
}

#define NONE_BKT FLOW_NONE
/* The first bucket unless it is nearly full and the second is emptier: most
 * keys then sit in their first bucket (one bucket line per hit), while the
 * second choice still absorbs the crowded buckets. `taken` counts as one
 * more used slot (the forward entry placed a moment ago). */
static uint32_t prefer_first(const struct flow_table *t, uint32_t b1, uint32_t b2, uint32_t taken)
{
    int u1 = bkt_used(&t->b[b1]) + (b1 == taken), u2 = bkt_used(&t->b[b2]) + (b2 == taken);
    return (u1 >= FLOW_WAYS - 2 && u2 < u1) ? b2 : b1;
}

static int insert_locked(struct flow_table *t, struct flow_stats *st, const struct flow_key *fwd,
                         const struct flow_key *rev, uint64_t hf, uint64_t hr,
                         const struct flow_install *in, uint64_t now, int *reason)
{
    const uint16_t tf = hash_tag(hf), tr = hash_tag(hr);
    uint32_t f1 = hash_b1(t, hf), f2 = hash_b2(t, hf), r1 = hash_b1(t, hr), r2 = hash_b2(t, hr);
    if (find_locked(t, f1, tf, fwd) || find_locked(t, f2, tf, fwd) ||
        find_locked(t, r1, tr, rev) || find_locked(t, r2, tr, rev)) {
        st->exists++;
        *reason = FLOW_DROP_FLOW_EXISTS;
        return -EEXIST;
    }
    /* Emptier candidate bucket first; the reverse slot must not reuse the
     * forward one when both land in the same bucket. */
    uint32_t fb = prefer_first(t, f1, f2, NONE_BKT);
    int fw = free_way(&t->b[fb]);
    if (fw < 0) {
        fb = fb == f1 ? f2 : f1;
        fw = free_way(&t->b[fb]);
    }
    int rw = -1;
    uint32_t rb = r1;
    if (fw >= 0) {
        uint32_t cands[2] = {r1, r2};
        if (prefer_first(t, r1, r2, fb) == r2) {
            cands[0] = r2;
            cands[1] = r1;
        }
        for (int j = 0; j < 2 && rw < 0; j++) {
            const struct flow_bucket *b = &t->b[cands[j]];
            for (int w = 0; w < FLOW_WAYS; w++)
                if (!b->tag[w] && !(cands[j] == fb && w == fw)) {
                    rb = cands[j];
                    rw = w;
                    break;
                }
        }
    }
    if (fw < 0 || rw < 0) {
        st->table_full++;
        *reason = FLOW_DROP_TABLE_FULL;
        return -ENOSPC;
    }
    if (quota_take(&t->vif_count[in->vif], quota_of(t->vif_quota, t->def_vif_quota, in->vif))) {
        st->vif_quota++;
        *reason = FLOW_DROP_VIF_QUOTA;
        return -EDQUOT;
    }
    if (quota_take(&t->vrf_count[fwd->vrf], quota_of(t->vrf_quota, t->def_vrf_quota, fwd->vrf))) {
        __atomic_fetch_sub(&t->vif_count[in->vif], 1, __ATOMIC_RELAXED);
        st->vrf_quota++;
        *reason = FLOW_DROP_VRF_QUOTA;
        return -EDQUOT;
    }
    uint32_t p = pair_alloc(t);
    if (p == FLOW_NONE) {
        __atomic_fetch_sub(&t->vif_count[in->vif], 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&t->vrf_count[fwd->vrf], 1, __ATOMIC_RELAXED);
        st->table_full++;
        *reason = FLOW_DROP_TABLE_FULL;
        return -ENOSPC;
    }
    TEST_HOOK();
    entry_fill(t, 2 * p, fwd, in->nh, in->ecmp, in, fb, now);
    entry_fill(t, 2 * p + 1, rev, in->rev_nh, in->rev_ecmp, in, rb, now);
    slot_set(&t->b[fb], fw, 2 * p, tf);
    slot_set(&t->b[rb], rw, 2 * p + 1, tr);
    if (fb != f1)
        VR_STORE_RLX(&t->b[f1].ovf, (uint16_t)(t->b[f1].ovf + 1));
    if (rb != r1)
        VR_STORE_RLX(&t->b[r1].ovf, (uint16_t)(t->b[r1].ovf + 1));
    VR_STORE_REL(&t->e[2 * p].state, FLOW_ACTIVE);   /* the pair appears here */
    st->inserts++;
    *reason = FLOW_DROP_NONE;
    return (int)(2 * p);
}

VR_EXPORT int flow_insert_pair(struct flow_table *t, int worker, const struct flow_key *fwd,
                               const struct flow_key *rev, const struct flow_install *in,
                               uint64_t now, int *reason)
{
    struct flow_stats *st = &t->ws[worker & (FLOW_MAX_WORKERS - 1)].s;
    struct flow_key rk;
    int dummy;
    if (!reason)
        reason = &dummy;
    if (!rev) {
        flow_key_reverse(fwd, &rk);
        rev = &rk;
    }
    if (key_eq(fwd, rev)) {   /* a flow that is its own reverse cannot be a pair */
        *reason = FLOW_DROP_BAD_KEY;
        return -EINVAL;
    }
    uint64_t hf = flow_hash(fwd), hr = flow_hash(rev);
    uint32_t ids[4] = {hash_b1(t, hf), hash_b2(t, hf), hash_b1(t, hr), hash_b2(t, hr)};
    int n = bkt_set(ids, 4);
    lock_set(t, ids, n);
    int rc = insert_locked(t, st, fwd, rev, hf, hr, in, now, reason);
    unlock_set(t, ids, n);
    return rc;
}

VR_EXPORT void flow_insert_pairs(struct flow_table *t, int worker, const struct flow_key *keys,
                                 const struct flow_install *in, uint32_t n, uint64_t now,
                                 int32_t *out, uint8_t *reason)
{
    for (uint32_t i = 0; i < n; i++) {
        int r;
        if (i + 4 < n) {
            uint64_t h = flow_hash(&keys[i + 4]);
            __builtin_prefetch(&t->b[hash_b1(t, h)], 1);
            __builtin_prefetch(&t->b[hash_b2(t, h)], 1);
        }
        out[i] = flow_insert_pair(t, worker, &keys[i], NULL, &in[i], now, &r);
        if (reason)
            reason[i] = (uint8_t)r;
    }
}

/* Lock the buckets holding pair p. Returns the set size, or 0 when the pair
 * is not (or no longer) active with the expected key. */
int flow__lock_pair(struct flow_table *t, uint32_t p, const struct flow_key *expect, uint32_t *ids)
{
    struct flow_entry *f = &t->e[2 * p], *r = &t->e[2 * p + 1];
    for (;;) {
        /* The entries' buckets, plus their keys' first buckets (whose
         * overflow counts a removal may decrement); racy reads, checked below. */
        uint32_t want0 = VR_LOAD_RLX(&f->bucket) & t->mask, want1 = VR_LOAD_RLX(&r->bucket) & t->mask;
        struct flow_key kf = f->key, kr = r->key;
        ids[0] = want0;
        ids[1] = want1;
        ids[2] = hash_b1(t, flow_hash(&kf));
        ids[3] = hash_b1(t, flow_hash(&kr));
        int n = bkt_set(ids, 4);
        lock_set(t, ids, n);
        if (f->state != FLOW_ACTIVE || f->bucket != want0 || r->bucket != want1 ||
            slot_of(&t->b[want0], 2 * p) < 0 || slot_of(&t->b[want1], 2 * p + 1) < 0 ||
            (expect && !key_eq(&f->key, expect) && !key_eq(&r->key, expect))) {
            unlock_set(t, ids, n);
            return 0;
        }
        if (key_eq(&f->key, &kf) && key_eq(&r->key, &kr))
            return n;
        unlock_set(t, ids, n);   /* reused while we read it: read again */
    }
}

void flow__remove_locked(struct flow_table *t, uint32_t p)
{
    struct flow_entry *f = &t->e[2 * p];
    VR_STORE_REL(&f->state, FLOW_FREE);   /* the pair disappears here */
    TEST_HOOK();
    for (uint32_t i = 2 * p; i <= 2 * p + 1; i++) {
        struct flow_bucket *b = &t->b[t->e[i].bucket];
        int w = slot_of(b, i);
        slot_set(b, w, FLOW_NONE, 0);
        uint32_t b1 = hash_b1(t, flow_hash(&t->e[i].key));
        if (b1 != t->e[i].bucket)
            VR_STORE_RLX(&t->b[b1].ovf, (uint16_t)(t->b[b1].ovf - 1));
    }
    __atomic_fetch_sub(&t->vif_count[f->vif], 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&t->vrf_count[f->key.vrf], 1, __ATOMIC_RELAXED);
}

VR_EXPORT int flow_delete_index(struct flow_table *t, int worker, uint32_t idx)
{
    if (idx >= t->nentries)
        return -ENOENT;
    uint32_t ids[4], p = idx / 2;
    int n = flow__lock_pair(t, p, NULL, ids);
    if (!n)
        return -ENOENT;
    flow__remove_locked(t, p);
    unlock_set(t, ids, n);
    flow__pair_free(t, p);
    t->ws[worker & (FLOW_MAX_WORKERS - 1)].s.removed++;
    return 0;
}

VR_EXPORT int flow_delete(struct flow_table *t, int worker, const struct flow_key *k)
{
    for (;;) {
        uint32_t idx = flow_lookup(t, k), ids[4];
        if (idx == FLOW_NONE)
            return -ENOENT;
        int n = flow__lock_pair(t, idx / 2, k, ids);
        if (!n)
            continue;   /* changed under us: look again */
        flow__remove_locked(t, idx / 2);
        unlock_set(t, ids, n);
        flow__pair_free(t, idx / 2);
        t->ws[worker & (FLOW_MAX_WORKERS - 1)].s.removed++;
        return 0;
    }
}
