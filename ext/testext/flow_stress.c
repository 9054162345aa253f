/* Test helper for the flow table's concurrency contract: pthreads insert,
 * look up (scalar and bulk), delete and sweep at once, then the table is
 * checked against what each thread recorded. Built into vrouter._testext
 * only; one call at a time (it owns the flow table's test hook meanwhile). */
#include "flow.h"
#include "mem.h"
#include "testext.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

struct stress {
    struct flow_table *t;
    int nthreads;
    uint32_t nkeys, rounds;
    uint64_t seed;
    pthread_barrier_t bar;
    uint32_t *shared_wins;        /* per shared key: successful inserts */
    int32_t churn_net[64];        /* per churn key: inserts - deletes that succeeded */
    int failed;
    char msg[256];
    pthread_mutex_t msg_lock;
};

struct worker {
    struct stress *s;
    int id;
    uint8_t *present;
};

#define SHARED_KEYS 512u

/* Yield inside a writer's critical section now and then: with more threads
 * than free cores this is where a missing lock would let another writer in. */
static __thread uint32_t hook_calls;
static void yield_hook(void)
{
    uint32_t c = ++hook_calls;
    if ((c & 63) == 0) {
        sched_yield();
    } else if ((c & 3) == 0) {
        for (int i = 0; i < 500; i++)   /* ~a microsecond inside the critical section */
            __builtin_ia32_pause();
    }
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void make_key(struct flow_key *k, uint32_t owner, uint32_t j)
{
    memset(k, 0, sizeof(*k));
    k->family = 4;
    k->proto = 17;
    k->vrf = (uint16_t)(1 + owner % 3);
    k->src[10] = k->src[11] = 0xff;
    k->dst[10] = k->dst[11] = 0xff;
    k->src[12] = 10;
    k->src[13] = (uint8_t)owner;
    k->src[14] = (uint8_t)(j >> 8);
    k->src[15] = (uint8_t)j;
    k->dst[12] = 192;
    k->dst[13] = 168;
    k->dst[15] = 1;
    k->sport = (uint16_t)(1024 + (j >> 16));
    k->dport = 53;
}

static uint32_t nh_of(uint32_t owner, uint32_t j) { return owner * 1000003u + j; }

static void fail(struct stress *s, const char *what, uint32_t owner, uint32_t j)
{
    pthread_mutex_lock(&s->msg_lock);
    if (!s->failed)
        snprintf(s->msg, sizeof(s->msg), "%s (thread %u key %u)", what, owner, j);
    s->failed = 1;
    pthread_mutex_unlock(&s->msg_lock);
}

/* A found entry must carry exactly the values its owner wrote. */
static int entry_ok(struct flow_table *t, const struct flow_result *r, uint32_t owner, uint32_t j, int rev)
{
    uint32_t nh = nh_of(owner, j);
    (void)t;
    return r->found && r->nh == (rev ? ~nh : nh) && r->rule_id == nh && (r->index & 1) == (uint32_t)rev;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct stress *s = w->s;
    struct flow_table *t = s->t;
    uint64_t x = s->seed * 2654435761u + (uint64_t)w->id * 97 + 1;
    struct flow_key k[2];
    struct flow_result r[2];
    struct flow_install in;
    memset(&in, 0, sizeof(in));
    in.vif = (uint16_t)w->id;

    /* Phase 1: every thread races to insert the same shared keys. */
    pthread_barrier_wait(&s->bar);
    for (uint32_t n = 0; n < SHARED_KEYS; n++) {
        uint32_t j = (n + (uint32_t)w->id * 37u) % SHARED_KEYS;   /* threads meet mid-way */
        make_key(&k[0], 250, j);
        in.nh = nh_of(250, j);
        in.rev_nh = ~in.nh;
        in.rule_id = in.nh;
        int rc = flow_insert_pair(t, w->id, &k[0], NULL, &in, 1, NULL);
        if (rc >= 0) {
            __atomic_fetch_add(&s->shared_wins[j], 1, __ATOMIC_RELAXED);
            if (flow_key_copies(t, &k[0]) > 1)
                fail(s, "a raced key is held twice", 250, j);
        }
        else if (rc != -EEXIST)
            fail(s, "shared insert failed", (uint32_t)w->id, j);
    }
    pthread_barrier_wait(&s->bar);

    /* Phase 2: all threads insert and delete the same 64 keys at random; a
     * key may never be held twice, so per key successes minus deletes stays
     * 0 or 1 and must end equal to its presence. */
    for (uint32_t n = 0; n < s->rounds * 2000u; n++) {
        uint32_t j = (uint32_t)(rnd(&x) % 64);
        make_key(&k[0], 251, j);
        in.nh = nh_of(251, j);
        in.rev_nh = ~in.nh;
        in.rule_id = in.nh;
        if (rnd(&x) & 1) {
            if (flow_insert_pair(t, w->id, &k[0], NULL, &in, 1, NULL) >= 0) {
                __atomic_fetch_add(&s->churn_net[j], 1, __ATOMIC_RELAXED);
                if (flow_key_copies(t, &k[0]) > 1)
                    fail(s, "a key is held twice", 251, j);
            }
        } else if (flow_delete(t, w->id, &k[0]) == 0) {
            __atomic_fetch_sub(&s->churn_net[j], 1, __ATOMIC_RELAXED);
        }
    }

    /* Phase 3: own keys inserted/deleted, everyone's keys looked up. */
    for (uint32_t round = 0; round < s->rounds && !s->failed; round++) {
        for (uint32_t n = 0; n < s->nkeys; n++) {
            uint32_t j = (uint32_t)(rnd(&x) % s->nkeys);
            make_key(&k[0], (uint32_t)w->id, j);
            flow_key_reverse(&k[0], &k[1]);
            if (!w->present[j]) {
                in.nh = nh_of((uint32_t)w->id, j);
                in.rev_nh = ~in.nh;
                in.rule_id = in.nh;
                if (flow_insert_pair(t, w->id, &k[0], NULL, &in, 1, NULL) < 0) {
                    fail(s, "insert of an absent own key failed", (uint32_t)w->id, j);
                    break;
                }
                w->present[j] = 1;
            } else if (rnd(&x) & 1) {
                if (flow_delete(t, w->id, &k[rnd(&x) & 1]) != 0) {
                    fail(s, "delete of a present own key failed", (uint32_t)w->id, j);
                    break;
                }
                w->present[j] = 0;
            }
            flow_lookup_bulk(t, w->id, k, 2, r);
            if (w->present[j]) {
                if (!entry_ok(t, &r[0], (uint32_t)w->id, j, 0) || !entry_ok(t, &r[1], (uint32_t)w->id, j, 1) ||
                    r[1].index != (r[0].index ^ 1u))
                    fail(s, "own pair not seen whole after insert", (uint32_t)w->id, j);
            } else if (r[0].found || r[1].found) {
                fail(s, "own pair still seen after delete", (uint32_t)w->id, j);
            }
            /* Someone else's key: absent, or whole and untorn. */
            uint32_t o = (uint32_t)(rnd(&x) % (uint64_t)s->nthreads), oj = (uint32_t)(rnd(&x) % s->nkeys);
            make_key(&k[0], o, oj);
            flow_key_reverse(&k[0], &k[1]);
            uint32_t sc = flow_lookup(t, &k[0]);
            flow_lookup_bulk(t, w->id, k, 2, r);
            if ((r[0].found && !entry_ok(t, &r[0], o, oj, 0)) || (r[1].found && !entry_ok(t, &r[1], o, oj, 1)))
                fail(s, "torn entry seen", o, oj);
            if (sc != FLOW_NONE && (sc & 1))
                fail(s, "scalar lookup returned a reverse index for a forward key", o, oj);
            if ((n & 63) == 0 && flow_sweep(t, w->id, 0, 64, NULL, NULL) != 0)
                fail(s, "sweep removed a pair that cannot have expired", o, oj);
        }
    }
    return NULL;
}

int flow_stress(struct flow_table *t, int nthreads, uint32_t keys_per_thread,
                          uint32_t rounds, uint64_t seed, char *msg, size_t msglen)
{
    if (nthreads < 1 || nthreads > 32 || keys_per_thread > 65535 * 16)
        return -EINVAL;
    struct stress s;
    memset(&s, 0, sizeof(s));
    s.t = t;
    s.nthreads = nthreads;
    s.nkeys = keys_per_thread;
    s.rounds = rounds;
    s.seed = seed | 1;
    pthread_mutex_init(&s.msg_lock, NULL);
    pthread_barrier_init(&s.bar, NULL, (unsigned)nthreads);
    struct worker w[32];
    pthread_t th[32];
    s.shared_wins = vr_calloc(SHARED_KEYS, sizeof(uint32_t));
    int started = 0, rc = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i].s = &s;
        w[i].id = i;
        w[i].present = vr_calloc(keys_per_thread, 1);
    }
    for (int i = 0; i < nthreads; i++)
        if (!w[i].present || !s.shared_wins)
            rc = -ENOMEM;
    if (rc == 0) {
        flow_set_test_hook(yield_hook);
        for (; started < nthreads; started++)
            if (pthread_create(&th[started], NULL, run, &w[started]) != 0)
                break;
        if (started < nthreads) {
            /* Threads already started wait on the barrier forever: not recoverable. */
            snprintf(msg, msglen, "pthread_create failed");
            return -EAGAIN;
        }
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        flow_set_test_hook(NULL);
    }
    /* Check the table against the records. */
    uint64_t expect_pairs = 0;
    for (uint32_t j = 0; rc == 0 && !s.failed && j < SHARED_KEYS; j++) {
        struct flow_key k;
        make_key(&k, 250, j);
        if (s.shared_wins[j] != 1 || flow_lookup(t, &k) == FLOW_NONE)
            fail(&s, "shared key not inserted exactly once", 250, j);
        expect_pairs++;
    }
    for (uint32_t j = 0; rc == 0 && !s.failed && j < 64; j++) {
        struct flow_key k;
        make_key(&k, 251, j);
        int present = flow_lookup(t, &k) != FLOW_NONE;
        if (s.churn_net[j] != present)
            fail(&s, "a churned key was held twice or lost", 251, j);
        expect_pairs += (uint64_t)present;
    }
    for (int i = 0; rc == 0 && !s.failed && i < nthreads; i++)
        for (uint32_t j = 0; j < keys_per_thread && !s.failed; j++) {
            struct flow_key k[2];
            struct flow_result r[2];
            make_key(&k[0], (uint32_t)i, j);
            flow_key_reverse(&k[0], &k[1]);
            flow_lookup_bulk(t, 0, k, 2, r);
            if (w[i].present[j]) {
                expect_pairs++;
                if (!entry_ok(t, &r[0], (uint32_t)i, j, 0) || !entry_ok(t, &r[1], (uint32_t)i, j, 1))
                    fail(&s, "final table lost a pair", (uint32_t)i, j);
            } else if (r[0].found || r[1].found) {
                fail(&s, "final table holds a deleted pair", (uint32_t)i, j);
            }
        }
    if (rc == 0 && !s.failed) {
        struct flow_stats st;
        flow_stats(t, &st);
        uint64_t vifs = 0;
        for (int i = 0; i < nthreads; i++)
            vifs += flow_vif_count(t, (uint16_t)i);
        if (st.entries != 2 * expect_pairs || vifs != expect_pairs)
            fail(&s, "counters disagree with the records", (uint32_t)st.entries, (uint32_t)vifs);
    }
    if (s.failed) {
        rc = -EPROTO;
        snprintf(msg, msglen, "%s", s.msg);
    }
    for (int i = 0; i < nthreads; i++)
        vr_free(w[i].present);
    vr_free(s.shared_wins);
    pthread_barrier_destroy(&s.bar);
    pthread_mutex_destroy(&s.msg_lock);
    return rc;
}
