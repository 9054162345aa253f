/* Flow aging, policy re-validation and inspection: the incremental sweep
 * (bounded work per call from a shared cursor), stats summed over workers,
 * dump. Any thread may sweep; removals take the pair's bucket locks (flow.h). */
#include "flow_priv.h"

#include <errno.h>

/* ------------------------------------------------------------------ aging */

VR_EXPORT int flow_pair_expired(struct flow_table *t, uint32_t p, uint64_t now)
{
    const struct flow_entry *f = &t->e[2 * p], *r = &t->e[2 * p + 1];
    uint64_t a = VR_LOAD_RLX(&t->tm[2 * p].last_seen), b = VR_LOAD_RLX(&t->tm[2 * p + 1].last_seen);
    uint64_t last = a > b ? a : b, to;
    uint8_t tcp = VR_LOAD_RLX(&f->tcp) | VR_LOAD_RLX(&r->tcp);
    if (f->action == FLOW_ACT_DROP)
        to = VR_LOAD_RLX(&t->to.drop);
    else if (f->key.proto == 6)
        to = (tcp & (FLOW_TCP_FIN | FLOW_TCP_RST)) ? VR_LOAD_RLX(&t->to.tcp_close) : VR_LOAD_RLX(&t->to.tcp);
    else if (f->key.proto == 17)
        to = VR_LOAD_RLX(&t->to.udp);
    else if (f->key.proto == 1 || f->key.proto == 58)
        to = VR_LOAD_RLX(&t->to.icmp);
    else
        to = VR_LOAD_RLX(&t->to.other);
    return now >= last && now - last >= to;
}

static void revalidate(struct flow_table *t, uint32_t p, const struct flow_revalidator *rv,
                       struct flow_stats *st)
{
    struct flow_key k = t->e[2 * p].key;
    uint16_t vif = t->e[2 * p].vif;
    uint32_t rule = 0, ids[4];
    int act = rv->fn(rv->ctx, &k, vif, &rule);
    int n = flow__lock_pair(t, p, &k, ids);
    if (!n)
        return;
    for (uint32_t i = 2 * p; i <= 2 * p + 1; i++) {
        struct flow_entry *e = &t->e[i];
        if (act == FLOW_ACT_DROP) {
            e->action = FLOW_ACT_DROP;
            e->drop_reason = FLOW_DROP_POLICY_DENY;
        } else if (e->drop_reason == FLOW_DROP_POLICY_DENY) {
            e->action = FLOW_ACT_FORWARD;
            e->drop_reason = FLOW_DROP_NONE;
        }
        e->rule_id = rule;
        e->policy_gen = rv->gen;
    }
    unlock_set(t, ids, n);
    st->revalidated++;
}

VR_EXPORT uint32_t flow_sweep(struct flow_table *t, int worker, uint64_t now, uint32_t budget,
                              const struct flow_revalidator *rv, uint32_t *examined)
{
    struct flow_stats *st = &t->ws[worker & (FLOW_MAX_WORKERS - 1)].s;
    if (budget > t->npairs)
        budget = t->npairs;
    uint64_t start = __atomic_fetch_add(&t->cursor, budget, __ATOMIC_RELAXED);
    uint32_t removed = 0;
    for (uint32_t i = 0; i < budget; i++) {
        uint32_t p = (uint32_t)((start + i) % t->npairs), ids[4];
        if (VR_LOAD_ACQ(&t->e[2 * p].state) != FLOW_ACTIVE)
            continue;
        if (flow_pair_expired(t, p, now)) {
            int n = flow__lock_pair(t, p, NULL, ids);
            if (!n)
                continue;
            if (!flow_pair_expired(t, p, now)) {   /* touched meanwhile */
                unlock_set(t, ids, n);
                continue;
            }
            flow__remove_locked(t, p);
            unlock_set(t, ids, n);
            flow__pair_free(t, p);
            st->aged++;
            removed++;
        } else if (rv && rv->fn && VR_LOAD_RLX(&t->e[2 * p].policy_gen) != rv->gen) {
            revalidate(t, p, rv, st);
        }
    }
    st->swept += budget;
    if (examined)
        *examined = budget;
    return removed;
}

/* Test helper: entries holding k in its two buckets right now (no lock, no
 * retry: a stress thread uses it to catch a duplicate the moment it exists). */
VR_EXPORT int flow_key_copies(struct flow_table *t, const struct flow_key *k)
{
    uint64_t h = flow_hash(k);
    uint32_t b1 = hash_b1(t, h), b2 = hash_b2(t, h);
    int n = 0;
    for (int j = 0; j < (b1 == b2 ? 1 : 2); j++) {
        const struct flow_bucket *b = &t->b[j ? b2 : b1];
        for (int w = 0; w < FLOW_WAYS; w++) {
            uint32_t idx = VR_LOAD_RLX(&b->idx[w]);
            n += VR_LOAD_RLX(&b->tag[w]) != 0 && idx < t->nentries && key_eq(&t->e[idx].key, k);
        }
    }
    return n;
}

VR_EXPORT void flow_stats(const struct flow_table *t, struct flow_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int w = 0; w < FLOW_MAX_WORKERS; w++) {
        const uint64_t *s = (const uint64_t *)&t->ws[w].s;
        uint64_t *d = (uint64_t *)out;
        for (size_t i = 0; i < sizeof(*out) / 8; i++)
            d[i] += VR_LOAD_RLX(&s[i]);
    }
    out->entries = 2 * (out->inserts - out->removed - out->aged);
}

VR_EXPORT uint32_t flow_dump(struct flow_table *t, uint32_t *cursor, struct flow_entry *e,
                             struct flow_times *tm, uint32_t *idx, uint32_t max)
{
    uint32_t n = 0;
    uint32_t p = *cursor;
    for (; p < t->npairs && n + 2 <= max; p++) {
        if (VR_LOAD_ACQ(&t->e[2 * p].state) != FLOW_ACTIVE)
            continue;
        /* byte offsets: e/tm are numpy buffers without the struct alignment */
        struct flow_entry *e0 = (struct flow_entry *)((char *)e + (size_t)n * sizeof(*e));
        struct flow_times *t0 = (struct flow_times *)((char *)tm + (size_t)n * sizeof(*tm));
        if (flow_get(t, 2 * p, e0, t0) ||
            flow_get(t, 2 * p + 1, (struct flow_entry *)((char *)e0 + sizeof(*e)),
                     (struct flow_times *)((char *)t0 + sizeof(*tm))))
            continue;
        idx[n] = 2 * p;
        idx[n + 1] = 2 * p + 1;
        n += 2;
    }
    *cursor = p;
    return n;
}
