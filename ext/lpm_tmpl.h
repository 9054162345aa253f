/* Per-VRF longest-prefix match, written once for any key width and included
 * by lpm4.c (32-bit keys) and lpm6.c (128-bit keys). Not a public header.
 *
 * Two structures per VRF (STYLE habit 2):
 *  - the RIB, writer-only (lpm_rib.h): every route, in one small trie per
 *    direct slot (routes of length >= s) plus one trie of shorter routes, and
 *    per slot the next hop those shorter routes give it (`dshort`). Deletes
 *    fall back to covering routes by themselves;
 *  - the FIB, read by workers without locks (lpm_fib.h): a direct array on
 *    the first `s` bits whose entries are a leaf or a block of Poptrie nodes.
 *    `s` grows with the VRF's route count, so an empty VRF costs nothing and
 *    a small one a few KB.
 * A change rebuilds only the blocks of the slots under the changed prefix,
 * publishes each direct entry with one atomic store (or a whole new FIB with
 * one pointer store when `s` changes), and hands the old blocks to RCU.
 *
 * The including file defines: KEY_T, KEY_BITS, LPM_T (struct tag), LPM_FN(x)
 * (name prefixing), CHUNK(k, off) (6 key bits from bit `off`, zero-padded
 * past the end), S_FOR(count) (direct bits for a VRF of that size).
 */
#include "arena.h"
#include "mem.h"
#include "rcu.h"
#include "vr_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NO_ROUTE 0xFFFFFFFFu
#define NVRF 65536u
#define STRIDE 6

/* ---------------------------------------------------------------- keys */

static inline KEY_T key_mask(unsigned len)
{
    return len == 0 ? (KEY_T)0 : (KEY_T)(~(KEY_T)0 << (KEY_BITS - len));
}

static inline unsigned key_bit(KEY_T k, unsigned i) { return (unsigned)(k >> (KEY_BITS - 1 - i)) & 1u; }

static inline unsigned key_slot(KEY_T k, unsigned s) { return (unsigned)(k >> (KEY_BITS - s)); }

/* Length of the common prefix of a and b, at most `max`. */
static inline unsigned key_common(KEY_T a, KEY_T b, unsigned max)
{
    KEY_T x = a ^ b;
    unsigned c;
    if (x == 0)
        return max;
#if KEY_BITS == 32
    c = (unsigned)__builtin_clz((uint32_t)x);
#else
    uint64_t hi = (uint64_t)(x >> 64);
    c = hi ? (unsigned)__builtin_clzll(hi) : 64u + (unsigned)__builtin_clzll((uint64_t)x);
#endif
    return c < max ? c : max;
}

/* ---------------------------------------------------------------- RIB */

struct rib_node {
    KEY_T key;
    uint32_t nh;
    uint32_t child[2]; /* pool indices; 0 = none */
    uint8_t len;
    uint8_t has;       /* carries a route (else a pure branch node) */
};

/* ---------------------------------------------------------------- FIB */

struct pt_node {
    uint64_t vector;  /* bit i: child i is a node */
    uint64_t leafvec; /* bit i: a run of equal leaves starts at child i */
    uint32_t base0;   /* first leaf of this node, in uint32 units from the block start */
    uint32_t base1;   /* first child node in the block's node array */
};

struct pt_block {
    uint32_t nnodes, nleaves;
    struct pt_node nodes[]; /* then uint32_t leaves[nleaves] */
};

struct fib {
    uint64_t *direct; /* 1 << s entries: (nh << 1 | 1) or struct pt_block * */
    unsigned s;       /* direct-pointing bits */
    size_t bytes;     /* this fib and its blocks */
};

#define LEAF(nh) (((uint64_t)(nh) << 1) | 1u)
#define IS_LEAF(e) ((e)&1u)
#define BLOCK_LEAVES(b) ((const uint32_t *)((b)->nodes + (b)->nnodes))
#define BLOCK_WORDS(b) ((const uint32_t *)(b))

struct vrf_w {
    uint32_t *roots;     /* 1 << s tries of the routes of length >= s */
    uint32_t *dshort;    /* per slot: next hop of the longest route shorter than s over it */
    uint32_t short_root; /* trie of the routes shorter than s */
    uint32_t count;
    unsigned s;
};

struct undo {
    uint32_t node;
    uint32_t prev_nh;
    uint8_t prev_has;
    uint8_t created; /* this op added the route's node to the trie */
};

struct LPM_T {
    struct fib *fibs[NVRF]; /* read by workers */
    uint64_t generation;    /* read by workers (consistency checks) */
    struct rcu_domain *rcu;
    /* writer only from here */
    struct vrf_w *vrf[NVRF]; /* NULL: no routes */
    struct rib_node *pool;
    uint32_t pool_n, pool_cap, pool_free;
    size_t total, fib_bytes, vrf_bytes;
    struct pt_node *sc_nodes; /* block-build scratch */
    uint32_t *sc_leaves;
    uint32_t sc_nn, sc_nl, sc_ncap, sc_lcap;
    struct undo *undo;
    size_t undo_cap;
};

#include "lpm_rib.h"
#include "lpm_fib.h"

/* ------------------------------------------------------ per-VRF forest */

static size_t forest_bytes(unsigned s) { return sizeof(struct vrf_w) + ((size_t)2 << s) * sizeof(uint32_t); }

static struct vrf_w *forest_new(struct LPM_T *t, unsigned s)
{
    struct vrf_w *w = vr_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->s = s;
    w->roots = vr_calloc((size_t)1 << s, sizeof(uint32_t));
    w->dshort = vr_malloc(((size_t)1 << s) * sizeof(uint32_t));
    if (!w->roots || !w->dshort) {
        vr_free(w->roots);
        vr_free(w->dshort);
        vr_free(w);
        return NULL;
    }
    for (size_t i = 0; i < ((size_t)1 << s); i++)
        w->dshort[i] = NO_ROUTE;
    t->vrf_bytes += forest_bytes(s);
    return w;
}

static void forest_free(struct LPM_T *t, struct vrf_w *w)
{
    if (!w)
        return;
    rib_free_trie(t, w->short_root);
    for (size_t i = 0; i < ((size_t)1 << w->s); i++)
        rib_free_trie(t, w->roots[i]);
    t->vrf_bytes -= forest_bytes(w->s);
    vr_free(w->roots);
    vr_free(w->dshort);
    vr_free(w);
}

static inline uint32_t *trie_of(struct vrf_w *w, KEY_T key, unsigned len)
{
    return len >= w->s ? &w->roots[key_slot(key, w->s)] : &w->short_root;
}

/* Direct entry of one slot from its trie and the value shorter routes give it. */
static int slot_entry(struct LPM_T *t, const struct vrf_w *w, size_t slot, uint32_t d, uint64_t *e, size_t *bytes)
{
    uint32_t r = w->roots[slot];
    *e = LEAF(d);
    if (!r)
        return 0;
    const struct rib_node *n = &t->pool[r];
    if (n->len == w->s) {
        uint32_t dd = n->has ? n->nh : d;
        *e = LEAF(dd);
        if (!n->child[0] && !n->child[1])
            return 0;
        return build_block(t, r, w->s, dd, e, bytes);
    }
    return build_block(t, r, w->s, d, e, bytes);
}

struct paint_ctx {
    uint32_t *nodes;
    size_t n, cap;
};

/* dshort for the slots of key/len (len < s) into out[]: the routes shorter
 * than len over it, then the short routes inside it, shortest first. */
static int paint_short(struct LPM_T *t, const struct vrf_w *w, KEY_T key, unsigned len, uint32_t *out)
{
    unsigned s = w->s;
    size_t lo = key_slot(key, s), cnt = (size_t)1 << (s - len);
    uint32_t d = len ? rib_lpm(t, w->short_root, key, (int)len - 1) : NO_ROUTE;
    for (size_t i = 0; i < cnt; i++)
        out[i] = d;
    struct paint_ctx pc = {0};
    struct rib_iter it = {.top = 0};
    rib_iter_push(&it, rib_descend(t, w->short_root, key, len));
    for (uint32_t x; (x = rib_iter_next(t, &it));) {
        if (pc.n == pc.cap) {
            size_t cap = pc.cap ? pc.cap * 2 : 64;
            uint32_t *p = vr_realloc(pc.nodes, cap * sizeof(*p));
            if (!p) {
                vr_free(pc.nodes);
                return -ENOMEM;
            }
            pc.nodes = p;
            pc.cap = cap;
        }
        pc.nodes[pc.n++] = x;
    }
    for (unsigned l = len; l < s; l++)
        for (size_t i = 0; i < pc.n; i++) {
            const struct rib_node *n = &t->pool[pc.nodes[i]];
            if (n->len != l)
                continue;
            size_t from = key_slot(n->key, s) - lo, span = (size_t)1 << (s - l);
            for (size_t j = 0; j < span; j++)
                out[from + j] = n->nh;
        }
    vr_free(pc.nodes);
    return 0;
}

/* A complete FIB for w (recomputing w's dshort into a new array). */
static struct fib *fib_build(struct LPM_T *t, struct vrf_w *w, uint32_t **dshort_out)
{
    size_t n = (size_t)1 << w->s, bytes = sizeof(struct fib) + n * sizeof(uint64_t);
    uint32_t *ds = vr_malloc(n * sizeof(uint32_t));
    struct fib *f = vr_calloc(1, sizeof(*f));
    if (!ds || !f)
        goto fail;
    f->s = w->s;
    f->direct = arena_alloc_huge(n * sizeof(uint64_t));
    if (!f->direct)
        goto fail;
    for (size_t i = 0; i < n; i++)
        f->direct[i] = LEAF(NO_ROUTE);
    if (paint_short(t, w, 0, 0, ds) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (slot_entry(t, w, i, ds[i], &f->direct[i], &bytes) < 0)
            goto fail;
    f->bytes = bytes;
    *dshort_out = ds;
    return f;
fail:
    vr_free(ds);
    if (f)
        fib_free(f);
    return NULL;
}

/* ------------------------------------------------------ commit to FIB */

struct range {
    KEY_T key;
    unsigned len;   /* clamped to s */
    int is_short;   /* the changed route was shorter than s: dshort changes */
};

static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (int)x->len - (int)y->len;
}

static void publish_fib(struct LPM_T *t, uint32_t vrf, struct fib *nf)
{
    struct fib *old = t->fibs[vrf];
    VR_STORE_REL(&t->fibs[vrf], nf);
    t->fib_bytes += nf ? nf->bytes : 0;
    if (old) {
        t->fib_bytes -= old->bytes;
        rcu_defer(t->rcu, old, fib_free); /* reserved by the caller */
    }
}

/* Publish a complete new FIB for w (the VRF's current forest). */
static int commit_full(struct LPM_T *t, uint32_t vrf, struct vrf_w *w)
{
    uint32_t *ds;
    struct fib *nf = fib_build(t, w, &ds);
    if (!nf)
        return -ENOMEM;
    vr_free(w->dshort);
    w->dshort = ds;
    publish_fib(t, vrf, nf);
    return 0;
}

/* Move every route into a forest split at s, then publish a FIB for it. On
 * failure the old forest and FIB are untouched. */
static int commit_resplit(struct LPM_T *t, uint32_t vrf, unsigned s)
{
    struct vrf_w *w = t->vrf[vrf], *nw = forest_new(t, s);
    if (!nw)
        return -ENOMEM;
    for (size_t i = 0; i <= ((size_t)1 << w->s); i++) {
        struct rib_iter it = {.top = 0};
        rib_iter_push(&it, i < ((size_t)1 << w->s) ? w->roots[i] : w->short_root);
        for (uint32_t x; (x = rib_iter_next(t, &it));) {
            int created;
            if (pool_reserve(t, 2) < 0)
                goto fail;
            KEY_T k = t->pool[x].key;
            unsigned l = t->pool[x].len;
            uint32_t nh = t->pool[x].nh;
            uint32_t y = rib_make(t, trie_of(nw, k, l), k, l, &created);
            t->pool[y].has = 1;
            t->pool[y].nh = nh;
        }
    }
    nw->count = w->count;
    if (commit_full(t, vrf, nw) < 0)
        goto fail;
    t->vrf[vrf] = nw;
    forest_free(t, w);
    return 0;
fail:
    forest_free(t, nw);
    return -ENOMEM;
}

/* Bring vrf's FIB in line with its RIB after the routes at ranges[] changed.
 * Either everything is published or nothing is and -ENOMEM is returned.
 * *resplit tells the caller the forest was rebuilt (its undo log is void). */
static int fib_commit(struct LPM_T *t, uint32_t vrf, struct range *ranges, size_t nr, int *resplit)
{
    struct vrf_w *w = t->vrf[vrf];
    struct fib *f = t->fibs[vrf];
    *resplit = 0;
    if (rcu_defer_reserve(t->rcu, 1) < 0)
        return -ENOMEM;
    if (w->count == 0) {
        publish_fib(t, vrf, NULL);
        return 0;
    }
    unsigned s = S_FOR(w->count);
    /* Shrink only well below the threshold, so a VRF hovering around it
     * does not re-split on every change. */
    if (s < w->s && S_FOR((size_t)w->count * 4) >= w->s)
        s = w->s;
    if (s != w->s) {
        int rc = commit_resplit(t, vrf, s);
        *resplit = rc == 0;
        return rc;
    }
    if (!f)
        return commit_full(t, vrf, w);

    for (size_t i = 0; i < nr; i++) {
        ranges[i].is_short = ranges[i].len < s;
        if (ranges[i].len > s)
            ranges[i].len = s;
        ranges[i].key &= key_mask(ranges[i].len);
    }
    qsort(ranges, nr, sizeof(*ranges), range_cmp);
    size_t m = 0, affected = 0, nshort = 0; /* drop ranges nested in a kept one */
    for (size_t i = 0; i < nr; i++) {
        if (m && key_common(ranges[i].key, ranges[m - 1].key, ranges[m - 1].len) >= ranges[m - 1].len)
            continue;
        ranges[m++] = ranges[i];
    }
    nr = m;
    for (size_t i = 0; i < nr; i++) {
        size_t cnt = (size_t)1 << (s - ranges[i].len);
        affected += cnt;
        nshort += ranges[i].is_short ? cnt : 0;
    }
    if (affected * 4 > ((size_t)1 << s))
        return commit_full(t, vrf, w);

    /* One slot (a route at least s long) is the common case: no malloc. */
    uint64_t tmp1[16];
    uint32_t tds1[16];
    uint64_t *tmp = affected <= 16 ? tmp1 : vr_malloc(affected * sizeof(uint64_t));
    uint32_t *tds = nshort <= 16 ? tds1 : vr_malloc(nshort * sizeof(uint32_t));
    size_t off = 0, soff = 0, bytes = 0, olds = 0;
    int rc = tmp && tds ? 0 : -ENOMEM;
    for (size_t i = 0; i < nr && rc == 0; i++) {
        size_t lo = key_slot(ranges[i].key, s), cnt = (size_t)1 << (s - ranges[i].len);
        const uint32_t *ds = w->dshort + lo;
        if (ranges[i].is_short) {
            rc = paint_short(t, w, ranges[i].key, ranges[i].len, tds + soff);
            ds = tds + soff;
            soff += cnt;
        }
        for (size_t j = 0; j < cnt && rc == 0; j++, off++) {
            tmp[off] = LEAF(NO_ROUTE);
            rc = slot_entry(t, w, lo + j, ds[j], &tmp[off], &bytes);
            olds += !IS_LEAF(f->direct[lo + j]);
        }
    }
    if (rc == 0)
        rc = rcu_defer_reserve(t->rcu, olds);
    if (rc < 0) {
        if (tmp)
            free_blocks(tmp, off);
        if (tmp != tmp1)
            vr_free(tmp);
        if (tds != tds1)
            vr_free(tds);
        return rc;
    }
    off = soff = 0;
    for (size_t i = 0; i < nr; i++) {
        size_t lo = key_slot(ranges[i].key, s), cnt = (size_t)1 << (s - ranges[i].len);
        for (size_t j = 0; j < cnt; j++) {
            uint64_t old = f->direct[lo + j];
            VR_STORE_REL(&f->direct[lo + j], tmp[off + j]);
            if (!IS_LEAF(old)) {
                size_t b = block_bytes(old);
                f->bytes -= b;
                t->fib_bytes -= b;
                rcu_defer(t->rcu, (void *)(uintptr_t)old, block_free);
            }
        }
        if (ranges[i].is_short) {
            memcpy(w->dshort + lo, tds + soff, cnt * sizeof(uint32_t));
            soff += cnt;
        }
        off += cnt;
    }
    f->bytes += bytes;
    t->fib_bytes += bytes;
    if (tmp != tmp1)
        vr_free(tmp);
    if (tds != tds1)
        vr_free(tds);
    return 0;
}

/* ------------------------------------------------------- writer ops */

struct op {
    KEY_T key;
    uint32_t nh;
    uint8_t len;
    uint8_t del;
};

static int undo_reserve(struct LPM_T *t, size_t n)
{
    if (n <= t->undo_cap)
        return 0;
    struct undo *u = vr_realloc(t->undo, n * sizeof(*u));
    if (!u)
        return -ENOMEM;
    t->undo = u;
    t->undo_cap = n;
    return 0;
}

static void rollback(struct LPM_T *t, struct vrf_w *w, const struct op *ops, size_t n)
{
    /* Restore every value first, newest change first, then prune: pruning
     * earlier could free a node an older undo entry still points to. */
    for (size_t i = n; i-- > 0;) {
        struct undo *u = &t->undo[i];
        if (u->node == 0)
            continue;
        struct rib_node *x = &t->pool[u->node];
        w->count += (uint32_t)u->prev_has - (uint32_t)x->has;
        t->total += (size_t)u->prev_has - (size_t)x->has;
        x->has = u->prev_has;
        x->nh = u->prev_nh;
    }
    for (size_t i = n; i-- > 0;)
        if (t->undo[i].node)
            rib_prune(t, trie_of(w, ops[i].key, ops[i].len), ops[i].key, ops[i].len);
}

/* Apply ops (already validated) to one VRF, all or nothing. Returns the
 * number of routes that changed, or -ENOMEM with the table unchanged. */
static long apply_ops(struct LPM_T *t, uint32_t vrf, const struct op *ops, size_t n)
{
    struct vrf_w *w = t->vrf[vrf];
    int new_forest = 0;
    if (!w) {
        size_t ins = 0;
        for (size_t i = 0; i < n; i++)
            ins += !ops[i].del;
        if (ins == 0)
            return 0;
        /* Size a new VRF for its first batch (a bulk load lands in one go). */
        if (!(w = forest_new(t, S_FOR(ins))))
            return -ENOMEM;
        t->vrf[vrf] = w;
        new_forest = 1;
    }
    struct range small[8];
    struct range *ranges = n <= 8 ? small : vr_malloc(n * sizeof(*ranges));
    if (!ranges || undo_reserve(t, n) < 0) {
        if (ranges != small)
            vr_free(ranges);
        goto nomem;
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        const struct op *o = &ops[i];
        struct undo *u = &t->undo[i];
        uint32_t *root = trie_of(w, o->key, o->len);
        u->node = 0;
        if (o->del) {
            uint32_t x = rib_find(t, *root, o->key, o->len);
            if (!x || !t->pool[x].has)
                continue;
            *u = (struct undo){x, t->pool[x].nh, 1, 0};
            t->pool[x].has = 0; /* pruned once the FIB is committed */
            w->count--;
            t->total--;
        } else {
            int created;
            if (pool_reserve(t, 2) < 0) {
                rollback(t, w, ops, i);
                if (ranges != small)
                    vr_free(ranges);
                goto nomem;
            }
            uint32_t x = rib_make(t, root, o->key, o->len, &created);
            struct rib_node *nd = &t->pool[x];
            if (nd->has && nd->nh == o->nh)
                continue;
            *u = (struct undo){x, nd->nh, nd->has, (uint8_t)created};
            if (!nd->has) {
                w->count++;
                t->total++;
            }
            nd->has = 1;
            nd->nh = o->nh;
        }
        ranges[nr++] = (struct range){o->key, o->len, 0};
    }
    if (nr) {
        int resplit;
        if (fib_commit(t, vrf, ranges, nr, &resplit) < 0) {
            rollback(t, w, ops, n);
            if (ranges != small)
                vr_free(ranges);
            goto nomem;
        }
        w = t->vrf[vrf];
        if (!resplit)
            for (size_t i = 0; i < n; i++)
                if (ops[i].del && t->undo[i].node)
                    rib_prune(t, trie_of(w, ops[i].key, ops[i].len), ops[i].key, ops[i].len);
        VR_STORE_REL(&t->generation, t->generation + 1);
    }
    if (ranges != small)
        vr_free(ranges);
    if (w->count == 0) {
        forest_free(t, w);
        t->vrf[vrf] = NULL;
    }
    if (rcu_pending(t->rcu))
        rcu_reclaim(t->rcu);
    return (long)nr;
nomem:
    if (new_forest) {
        forest_free(t, w);
        t->vrf[vrf] = NULL;
    }
    return -ENOMEM;
}

static int check_route(KEY_T key, unsigned len)
{
    if (len > KEY_BITS)
        return -EINVAL;
    if (key & ~key_mask(len))
        return -EINVAL; /* host bits set: rejected, never normalised */
    return 0;
}

/* ------------------------------------------- shared bodies of the API */

static struct LPM_T *tm_create(struct rcu_domain *rcu)
{
    struct LPM_T *t = vr_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->rcu = rcu;
    t->pool_n = 1; /* index 0 means "no node" */
    return t;
}

static void tm_destroy(struct LPM_T *t)
{
    if (!t)
        return;
    for (size_t v = 0; v < NVRF; v++) {
        if (t->fibs[v])
            fib_free(t->fibs[v]);
        if (t->vrf[v]) {
            vr_free(t->vrf[v]->roots);
            vr_free(t->vrf[v]->dshort);
            vr_free(t->vrf[v]);
        }
    }
    vr_free(t->pool);
    vr_free(t->sc_nodes);
    vr_free(t->sc_leaves);
    vr_free(t->undo);
    vr_free(t);
}

static int tm_check(uint32_t vrf, KEY_T key, unsigned len, uint32_t nh)
{
    if (vrf >= NVRF || nh == NO_ROUTE)
        return -ERANGE;
    return check_route(key, len);
}

static uint32_t tm_find(const struct LPM_T *t, uint32_t vrf, KEY_T key, unsigned len)
{
    struct vrf_w *w = t->vrf[vrf];
    uint32_t x = w ? rib_find(t, *trie_of(w, key, len), key, len) : 0;
    return x && t->pool[x].has ? x : 0;
}

static int tm_insert(struct LPM_T *t, uint32_t vrf, KEY_T key, unsigned len, uint32_t nh)
{
    int rc = tm_check(vrf, key, len, nh);
    if (rc < 0)
        return rc;
    struct op o = {key, nh, (uint8_t)len, 0};
    uint32_t before = t->vrf[vrf] ? t->vrf[vrf]->count : 0;
    long r = apply_ops(t, vrf, &o, 1);
    if (r < 0)
        return (int)r;
    return t->vrf[vrf]->count != before; /* 1: added, 0: replaced */
}

static int tm_delete(struct LPM_T *t, uint32_t vrf, KEY_T key, unsigned len)
{
    int rc = tm_check(vrf, key, len, 0);
    if (rc < 0)
        return rc;
    struct op o = {key, 0, (uint8_t)len, 1};
    long r = apply_ops(t, vrf, &o, 1);
    return r < 0 ? (int)r : r == 0 ? -ENOENT : 0;
}

static int tm_get(const struct LPM_T *t, uint32_t vrf, KEY_T key, unsigned len, uint32_t *nh)
{
    int rc = tm_check(vrf, key, len, 0);
    if (rc < 0)
        return rc;
    uint32_t x = tm_find(t, vrf, key, len);
    if (!x)
        return -ENOENT;
    *nh = t->pool[x].nh;
    return 0;
}

struct op_ix {
    struct op op;
    size_t ix;
};

static int op_ix_cmp(const void *a, const void *b)
{
    const struct op_ix *x = a, *y = b;
    if (x->op.key != y->op.key)
        return x->op.key < y->op.key ? -1 : 1;
    return x->ix < y->ix ? -1 : x->ix > y->ix;
}

/* Validate every op, then apply all or nothing. A large batch is applied in
 * address order (stable, so a later duplicate still wins): the tries and
 * the direct array are then walked nearly sequentially, not at random. */
static long tm_apply(struct LPM_T *t, uint32_t vrf, const struct op *ops, size_t n, size_t *bad)
{
    if (vrf >= NVRF)
        return -ERANGE;
    for (size_t i = 0; i < n; i++) {
        int rc = tm_check(vrf, ops[i].key, ops[i].len, ops[i].del ? 0 : ops[i].nh);
        if (rc < 0) {
            *bad = i;
            return rc;
        }
    }
    if (n < 64)
        return apply_ops(t, vrf, ops, n);
    struct op_ix *sorted = vr_malloc(n * sizeof(*sorted));
    struct op *in_order = vr_malloc(n * sizeof(*in_order));
    long rc = -ENOMEM;
    if (sorted && in_order) {
        for (size_t i = 0; i < n; i++)
            sorted[i] = (struct op_ix){ops[i], i};
        qsort(sorted, n, sizeof(*sorted), op_ix_cmp);
        for (size_t i = 0; i < n; i++)
            in_order[i] = sorted[i].op;
        rc = apply_ops(t, vrf, in_order, n);
    }
    vr_free(sorted);
    vr_free(in_order);
    return rc;
}

/* Every route of vrf in order (ascending address, shorter prefix first):
 * the short trie and the slot tries are each in order, so merge them. */
static size_t tm_dump(const struct LPM_T *t, uint32_t vrf, KEY_T *keys, uint8_t *lens, uint32_t *nhs,
                      size_t cap)
{
    const struct vrf_w *w = vrf < NVRF ? t->vrf[vrf] : NULL;
    if (!w)
        return 0;
    struct rib_iter a = {.top = 0}, b = {.top = 0};
    size_t slot = 0, nslots = (size_t)1 << w->s, n = 0;
    rib_iter_push(&a, w->short_root);
    uint32_t x = rib_iter_next(t, &a), y = 0;
    for (;;) {
        while (!y && (b.top || slot < nslots)) {
            if (!b.top)
                rib_iter_push(&b, w->roots[slot++]);
            y = rib_iter_next(t, &b);
        }
        if ((!x && !y) || n == cap)
            break;
        int take_x = x && (!y || t->pool[x].key < t->pool[y].key ||
                           (t->pool[x].key == t->pool[y].key && t->pool[x].len < t->pool[y].len));
        const struct rib_node *r = &t->pool[take_x ? x : y];
        keys[n] = r->key;
        lens[n] = r->len;
        nhs[n] = r->nh;
        n++;
        if (take_x)
            x = rib_iter_next(t, &a);
        else
            y = 0;
    }
    return n;
}

static size_t tm_vrfs(const struct LPM_T *t, uint16_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t v = 0; v < NVRF && n < cap; v++)
        if (t->vrf[v])
            out[n++] = (uint16_t)v;
    return n;
}

static size_t tm_count(const struct LPM_T *t, uint32_t vrf)
{
    return vrf < NVRF && t->vrf[vrf] ? t->vrf[vrf]->count : 0;
}

static size_t tm_bytes(const struct LPM_T *t)
{
    return sizeof(*t) + t->fib_bytes + t->vrf_bytes + (size_t)t->pool_cap * sizeof(struct rib_node) +
           (size_t)t->sc_ncap * sizeof(struct pt_node) + (size_t)t->sc_lcap * sizeof(uint32_t) +
           t->undo_cap * sizeof(struct undo);
}

static inline const struct fib *tm_fib(const struct LPM_T *t, uint32_t vrf)
{
    return VR_LOAD_ACQ(&t->fibs[vrf & (NVRF - 1)]);
}

/* The FIB of vrf for a bulk lookup; NULL (after answering NO_ROUTE for every
 * key) when the VRF has no routes. */
static inline const struct fib *tm_bulk_fib(const struct LPM_T *t, uint32_t vrf, uint32_t *out, size_t n)
{
    const struct fib *f = tm_fib(t, vrf);
    if (!f)
        for (size_t i = 0; i < n; i++)
            out[i] = NO_ROUTE;
    return f;
}

/* The entry points that do not depend on the key width, defined once for
 * both families: PFX(name) pastes the family prefix (lpm4_, lpm6_). */
#define LPM_COMMON_API(PFX)                                                                              \
    VR_EXPORT struct LPM_T *PFX(create)(struct rcu_domain *rcu) { return tm_create(rcu); }             \
    VR_EXPORT void PFX(destroy)(struct LPM_T *t) { tm_destroy(t); }                                    \
    VR_EXPORT size_t PFX(count)(const struct LPM_T *t, uint32_t vrf) { return tm_count(t, vrf); }      \
    VR_EXPORT size_t PFX(total)(const struct LPM_T *t) { return t->total; }                            \
    VR_EXPORT size_t PFX(vrfs)(const struct LPM_T *t, uint16_t *out, size_t cap) { return tm_vrfs(t, out, cap); } \
    VR_EXPORT size_t PFX(bytes)(const struct LPM_T *t) { return tm_bytes(t); }                         \
    VR_EXPORT uint64_t PFX(generation)(const struct LPM_T *t) { return VR_LOAD_ACQ(&t->generation); }
