/* Flow table: (VRF, family, proto, src, dst, sport, dport) -> cached decision
 * (action, next hop, policy rule, counters, TCP state), inserted as forward +
 * reverse pairs by the worker that saw the first packet, aged in the datapath.
 *
 * Layout. Entries live in a flat array allocated in pairs: the forward entry
 * is 2p, the reverse 2p+1 (reverse index = idx ^ 1). A hash index of 64-byte
 * buckets (8 x 16-bit tag + 8 x entry index + a sequence word) points into it.
 * Each key has two candidate buckets: it goes to the first unless that one is
 * nearly full and the second is emptier (so most hits read one bucket line,
 * and the second choice absorbs crowding). Entries never move once inserted,
 * so readers need no cuckoo move protocol. Buckets are sized for <= 50% slot
 * load at full capacity; both candidates full is counted as table_full.
 * Each bucket counts the entries that spilled from it (their first bucket) to
 * their second one; while that count is 0 a bulk-lookup miss stops after one
 * bucket line.
 *
 * Concurrency (shared table, per-bucket seqlocks, lock-free readers):
 *  - readers (flow_lookup, flow_lookup_bulk, flow_get, flow_touch_bulk) take no
 *    lock: they read a bucket's sequence (even = stable), match tag + key,
 *    check the pair is ACTIVE, and re-read the sequence; a changed or odd
 *    sequence means retry. Any thread, any number of them.
 *  - writers (flow_insert_pair(s), flow_delete*, flow_sweep) may run on any
 *    number of threads at once: they lock the buckets they touch (the
 *    sequence word, odd = locked) in ascending index order, so two workers
 *    inserting the same key cannot both succeed and no deadlock is possible.
 *  - a pair appears and disappears while its writer holds the locks of every
 *    bucket the two entries use: both slots are written (or cleared) before
 *    any of those locks is released, so a reader that has seen one end finds
 *    the other (a reader of a still-locked bucket retries): forward and
 *    reverse are seen together or not at all. The forward entry's state word
 *    (one release store) marks the pair live for iterators (sweep, dump).
 *  - pair slots come from a free stack under a spinlock (inner to bucket locks).
 *    Quota counts per vif / VRF are atomics shared by all workers.
 *  - counters are per worker (worker id 0..FLOW_MAX_WORKERS-1, one thread per
 *    id at a time), no atomics, summed by flow_stats(). flow_touch_bulk does
 *    plain (non-RMW) updates of packet/byte counts: a flow is steered to one
 *    worker; two workers touching one flow may lose increments, never tear.
 *  - flow_create/flow_destroy/flow_set_* : control thread, no reader running
 *    (set_* of quotas/timeouts may run concurrently; they are single words).
 * Time is whatever unit the caller's clock uses (ns in the datapath); the
 * timeouts must be in the same unit.
 */
#ifndef VR_FLOW_H
#define VR_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "vr_common.h"

#define FLOW_MAX_WORKERS 64
#define FLOW_BURST 64           /* bulk calls are processed in chunks of this */
#define FLOW_WAYS 8
#define FLOW_NONE 0xffffffffu
#define FLOW_MIN_CAPACITY 16
#define FLOW_MAX_CAPACITY (1u << 28)
#define FLOW_DEFAULT_CAPACITY (512u * 1024u)

/* The key the pipeline fills from parsed headers: 40 bytes, no padding.
 * IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d); ICMP uses
 * sport = identifier, dport = type. */
struct flow_key {
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t sport;
    uint16_t dport;
    uint16_t vrf;
    uint8_t proto;
    uint8_t family;   /* 4 or 6 */
};

enum flow_action { FLOW_ACT_FORWARD = 0, FLOW_ACT_DROP = 1 };

/* Named outcomes (drop reasons) declared once; flow_drop_name() maps them. */
#define FLOW_DROP_REASONS(X) \
    X(NONE, "none")                 \
    X(POLICY_DENY, "policy_deny")   \
    X(TABLE_FULL, "table_full")     \
    X(VIF_QUOTA, "vif_quota")       \
    X(VRF_QUOTA, "vrf_quota")       \
    X(FLOW_EXISTS, "flow_exists")   \
    X(BAD_KEY, "bad_key")
enum flow_drop {
#define FLOW_X(n, s) FLOW_DROP_##n,
    FLOW_DROP_REASONS(FLOW_X)
#undef FLOW_X
    FLOW_DROP__COUNT
};
const char *flow_drop_name(int reason);

/* TCP state bits, OR-ed per entry from the flags of packets seen. */
enum { FLOW_TCP_SYN = 1, FLOW_TCP_EST = 2, FLOW_TCP_FIN = 4, FLOW_TCP_RST = 8 };
enum { FLOW_FREE = 0, FLOW_ACTIVE = 1 };

/* Hot part of an entry (what a lookup reads): one cache line. */
struct flow_entry {
    struct flow_key key;   /* 40 */
    uint32_t nh;
    uint32_t rule_id;
    uint32_t policy_gen;
    uint32_t bucket;       /* bucket holding this entry (entries never move) */
    uint16_t vif;          /* ingress vif of the pair */
    uint8_t action;
    uint8_t drop_reason;
    uint8_t state;         /* meaningful on the forward entry (2p) only */
    uint8_t tcp;
    uint8_t ecmp;          /* ECMP member slot chosen for this direction */
    uint8_t pad;
} VR_ALIGNED(VR_CACHE_LINE);

/* Cold part: updated per packet by flow_touch_bulk. */
struct flow_times {
    uint64_t packets;
    uint64_t bytes;
    uint64_t first_seen;
    uint64_t last_seen;
};

struct flow_timeouts {
    uint64_t tcp;        /* established / handshake, default 180 s */
    uint64_t tcp_close;  /* after FIN or RST in either direction */
    uint64_t udp;
    uint64_t icmp;       /* ICMP and ICMPv6 */
    uint64_t other;
    uint64_t drop;       /* pairs whose action is drop */
};

/* Result of a lookup: 24 bytes, mirrored by a numpy dtype. */
struct flow_result {
    uint32_t index;        /* entry index or FLOW_NONE */
    uint32_t nh;
    uint32_t rule_id;
    uint8_t found;
    uint8_t action;
    uint8_t drop_reason;
    uint8_t tcp;
    uint8_t ecmp;          /* the entry's ECMP member slot */
    uint8_t pad[3];
    uint32_t hash;         /* flow_hash32 of the key (ECMP, tunnel source ports) */
};

/* What to install for one pair (the forward key comes separately). */
struct flow_install {
    uint32_t nh;           /* next hop of the forward entry */
    uint32_t rev_nh;       /* next hop of the reverse entry */
    uint32_t rule_id;
    uint32_t policy_gen;
    uint16_t vif;
    uint8_t action;
    uint8_t drop_reason;
    uint8_t ecmp;          /* ECMP member slot of the forward / reverse entry */
    uint8_t rev_ecmp;
    uint8_t pad[2];
};

struct flow_stats {
    uint64_t inserts;      /* pairs */
    uint64_t removed;      /* pairs deleted explicitly */
    uint64_t aged;         /* pairs removed by the sweep */
    uint64_t exists;
    uint64_t vif_quota;
    uint64_t vrf_quota;
    uint64_t table_full;
    uint64_t hits;
    uint64_t misses;
    uint64_t revalidated;
    uint64_t swept;        /* pair slots examined by the sweep */
    uint64_t entries;      /* derived: 2 * (inserts - removed - aged) */
};

/* Policy re-validation hook used by the sweep (the flow table does not know
 * the policy component): returns action (FLOW_ACT_*) and sets *rule_id. */
typedef int (*flow_reval_fn)(void *ctx, const struct flow_key *k, uint16_t vif,
                             uint32_t *rule_id);
struct flow_revalidator {
    flow_reval_fn fn;
    void *ctx;
    uint32_t gen;
};

struct flow_table;

/* Control thread. capacity = entries (pairs * 2), rounded up to even. */
int flow_create(uint32_t capacity, const struct flow_timeouts *to, struct flow_table **out);
void flow_destroy(struct flow_table *t);
void flow_default_timeouts(struct flow_timeouts *to);
void flow_set_timeouts(struct flow_table *t, const struct flow_timeouts *to);
/* Max pairs per vif / per VRF; 0 = unlimited. The default applies to ids
 * without an override; the override set to FLOW_NONE falls back to default. */
void flow_set_default_quota(struct flow_table *t, uint32_t per_vif, uint32_t per_vrf);
int flow_set_vif_quota(struct flow_table *t, uint16_t vif, uint32_t max);
int flow_set_vrf_quota(struct flow_table *t, uint16_t vrf, uint32_t max);
uint32_t flow_capacity(const struct flow_table *t);
size_t flow_memory(const struct flow_table *t);
uint32_t flow_vif_count(const struct flow_table *t, uint16_t vif);
uint32_t flow_vrf_count(const struct flow_table *t, uint16_t vrf);

/* Readers. */
uint64_t flow_hash(const struct flow_key *k);
/* The 32 bits of a flow hash the datapath spreads on (both halves mixed). */
static inline uint32_t flow_hash32(uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32));
}
void flow_key_reverse(const struct flow_key *k, struct flow_key *rev);
uint32_t flow_lookup(struct flow_table *t, const struct flow_key *k);   /* scalar */
void flow_lookup_bulk(struct flow_table *t, int worker, const struct flow_key *keys,
                      uint32_t n, struct flow_result *res);
/* Copy of an entry if its pair is active; 0 or -ENOENT. */
int flow_get(struct flow_table *t, uint32_t idx, struct flow_entry *e, struct flow_times *tm);
/* Per packet accounting of hits: idx[i] from a lookup, bytes, TCP flags. */
void flow_touch_bulk(struct flow_table *t, const uint32_t *idx, const uint32_t *bytes,
                     const uint8_t *tcp_flags, uint32_t n, uint64_t now);

/* Prefetch (for writing) the four buckets flow_insert_pair(fwd) will lock:
 * a caller about to insert several pairs issues these a few keys ahead. */
void flow_prefetch_insert(const struct flow_table *t, const struct flow_key *fwd);
/* Record the ECMP member slot a direction moved to (its member went away):
 * one relaxed byte store by the worker that forwards the flow. */
void flow_set_ecmp(struct flow_table *t, uint32_t idx, uint8_t slot);
/* Writers (any thread, see contract above). */
/* Returns the forward entry index (even) or -EEXIST / -ENOSPC / -EDQUOT;
 * *reason gets the FLOW_DROP_* outcome. rev may be NULL (computed). */
int flow_insert_pair(struct flow_table *t, int worker, const struct flow_key *fwd,
                     const struct flow_key *rev, const struct flow_install *in,
                     uint64_t now, int *reason);
/* Batch: out[i] = forward index or negative errno; reason[i] may be NULL. */
void flow_insert_pairs(struct flow_table *t, int worker, const struct flow_key *keys,
                       const struct flow_install *in, uint32_t n, uint64_t now,
                       int32_t *out, uint8_t *reason);
int flow_delete(struct flow_table *t, int worker, const struct flow_key *k);  /* 0 / -ENOENT */
int flow_delete_index(struct flow_table *t, int worker, uint32_t idx);
/* Examine at most `budget` pair slots from the shared cursor; remove expired
 * pairs, re-validate pairs whose policy generation differs from rv->gen
 * (rv may be NULL). Returns pairs removed; *examined gets slots examined. */
uint32_t flow_sweep(struct flow_table *t, int worker, uint64_t now, uint32_t budget,
                    const struct flow_revalidator *rv, uint32_t *examined);
void flow_stats(const struct flow_table *t, struct flow_stats *out);
/* Copy active entries (both of each pair) with pair index >= *cursor into
 * e/tm/idx (up to max, even); advances *cursor. Returns entries copied. */
uint32_t flow_dump(struct flow_table *t, uint32_t *cursor, struct flow_entry *e,
                   struct flow_times *tm, uint32_t *idx, uint32_t max);
/* Pair expired at `now`? (exposed so tests can compare with the model) */
int flow_pair_expired(struct flow_table *t, uint32_t pair, uint64_t now);

/* Test support (tests and ext/testext/flow_stress.c): how many entries hold
 * key k; a function called inside writers' critical sections (NULL = off). */
int flow_key_copies(struct flow_table *t, const struct flow_key *k);
void flow_set_test_hook(void (*fn)(void));

#endif
