/* Concurrency probe: a pthread that reads an LPM table the way a worker does
 * (registered QSBR reader, quiescent between rounds) and records what it saw.
 * Built into vrouter._testext only; see lpmprobe.h for the threads. */
#include "lpmprobe.h"
#include "mem.h"
#include "vr_common.h"

#include <pthread.h>
#include <string.h>

struct lpm_probe {
    int family;
    const void *table;
    struct rcu_domain *rcu;
    uint16_t vrf;
    size_t nkeys, max_rounds, rounds;
    void *keys;
    uint64_t *gb, *ga;
    uint32_t *ans;
    int stop;
    pthread_t th;
};

static uint64_t generation(const struct lpm_probe *p)
{
    return p->family == 4 ? lpm4_generation(p->table) : lpm6_generation(p->table);
}

static void *probe_main(void *arg)
{
    struct lpm_probe *p = arg;
    int slot = rcu_register(p->rcu);
    if (slot < 0)
        return NULL;
    rcu_online(p->rcu, slot);
    while (!VR_LOAD_ACQ(&p->stop)) {
        size_t r = p->rounds % p->max_rounds;
        uint32_t *out = p->ans + r * p->nkeys;
        p->gb[r] = generation(p);
        if (p->family == 4)
            lpm4_lookup_bulk(p->table, p->vrf, p->keys, out, p->nkeys, LPM_IMPL_AUTO);
        else
            lpm6_lookup_bulk(p->table, p->vrf, p->keys, out, p->nkeys, LPM_IMPL_AUTO);
        p->ga[r] = generation(p);
        p->rounds++;
        rcu_quiescent(p->rcu, slot);
    }
    rcu_offline(p->rcu, slot);
    rcu_unregister(p->rcu, slot);
    return NULL;
}

void lpm_probe_free(struct lpm_probe *p)
{
    if (!p)
        return;
    vr_free(p->keys);
    vr_free(p->gb);
    vr_free(p->ga);
    vr_free(p->ans);
    vr_free(p);
}

struct lpm_probe *lpm_probe_start(int family, const void *table, struct rcu_domain *rcu, uint16_t vrf,
                                            const void *keys, size_t nkeys, size_t max_rounds)
{
    struct lpm_probe *p = vr_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    size_t ksz = family == 4 ? 4 : 16;
    *p = (struct lpm_probe){.family = family, .table = table, .rcu = rcu, .vrf = vrf, .nkeys = nkeys,
                            .max_rounds = max_rounds ? max_rounds : 1};
    p->keys = vr_malloc(nkeys * ksz + 1);
    p->gb = vr_malloc(p->max_rounds * sizeof(uint64_t));
    p->ga = vr_malloc(p->max_rounds * sizeof(uint64_t));
    p->ans = vr_malloc(p->max_rounds * nkeys * sizeof(uint32_t) + 1);
    if (!p->keys || !p->gb || !p->ga || !p->ans) {
        lpm_probe_free(p);
        return NULL;
    }
    memcpy(p->keys, keys, nkeys * ksz);
    if (pthread_create(&p->th, NULL, probe_main, p) != 0) {
        lpm_probe_free(p);
        return NULL;
    }
    return p;
}

size_t lpm_probe_stop(struct lpm_probe *p)
{
    VR_STORE_REL(&p->stop, 1);
    pthread_join(p->th, NULL);
    return p->rounds < p->max_rounds ? p->rounds : p->max_rounds;
}

size_t lpm_probe_total_rounds(const struct lpm_probe *p) { return p->rounds; }

void lpm_probe_copy(const struct lpm_probe *p, uint64_t *gb, uint64_t *ga, uint32_t *answers)
{
    size_t n = p->rounds < p->max_rounds ? p->rounds : p->max_rounds;
    size_t first = p->rounds - n;
    for (size_t i = 0; i < n; i++) {
        size_t r = (first + i) % p->max_rounds;
        gb[i] = p->gb[r];
        ga[i] = p->ga[r];
        memcpy(answers + i * p->nkeys, p->ans + r * p->nkeys, p->nkeys * sizeof(uint32_t));
    }
}
