/* Per-VRF longest-prefix match, written once for any key width and included
 * by lpm4.c (32-bit keys) and lpm6.c (128-bit keys). Not a public header.
 *
 * Two structures per VRF (STYLE habit 2):
 *  - the RIB, writer-only: a path-compressed binary trie in a node pool,
 *    holding every route; deletes fall back to covering routes by itself;
 *  - the FIB, read by workers without locks: a direct-pointing array on the
 *    first `s` bits whose entries are either a leaf (next hop) or a pointer to
 *    a block of Poptrie-style 64-ary nodes (two 64-bit vectors + popcount),
 *    leaf-pushed and leaf-compressed. `s` grows with the VRF's route count,
 *    so an empty VRF costs nothing and a small one a few KB.
 * A change rebuilds only the blocks under the changed prefix, publishes each
 * direct entry with one atomic store (or the whole FIB with one pointer
 * store), and hands the old blocks to the RCU domain.
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
    uint32_t root;
    uint32_t count;
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
    struct vrf_w vrf[NVRF];
    struct rib_node *pool;
    uint32_t pool_n, pool_cap, pool_free;
    size_t total, fib_bytes;
    struct pt_node *sc_nodes; /* block-build scratch */
    uint32_t *sc_leaves;
    uint32_t sc_nn, sc_nl, sc_ncap, sc_lcap;
    struct undo *undo;
    size_t undo_cap;
};

/* ------------------------------------------------------------ RIB pool */

static int pool_reserve(struct LPM_T *t, uint32_t n)
{
    if (t->pool_n + n <= t->pool_cap)
        return 0;
    uint32_t cap = t->pool_cap ? t->pool_cap : 1024;
    while (cap < t->pool_n + n)
        cap *= 2;
    struct rib_node *p = vr_realloc(t->pool, (size_t)cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    t->pool = p;
    t->pool_cap = cap;
    return 0;
}

/* Caller has reserved. */
static uint32_t pool_get(struct LPM_T *t)
{
    uint32_t i;
    if (t->pool_free) {
        i = t->pool_free;
        t->pool_free = t->pool[i].child[0];
    } else {
        i = t->pool_n++;
    }
    memset(&t->pool[i], 0, sizeof(t->pool[i]));
    return i;
}

static void pool_put(struct LPM_T *t, uint32_t i)
{
    t->pool[i].child[0] = t->pool_free;
    t->pool[i].has = 0;
    t->pool_free = i;
}

/* Node holding exactly key/len, or 0. */
static uint32_t rib_find(const struct LPM_T *t, uint32_t root, KEY_T key, unsigned len)
{
    uint32_t i = root;
    while (i) {
        const struct rib_node *n = &t->pool[i];
        if (n->len > len || key_common(n->key, key, n->len) < n->len)
            return 0;
        if (n->len == len)
            return i;
        i = n->child[key_bit(key, n->len)];
    }
    return 0;
}

/* Longest route covering key with length <= maxlen (maxlen < KEY_BITS ok). */
static uint32_t rib_lpm(const struct LPM_T *t, uint32_t root, KEY_T key, int maxlen)
{
    uint32_t best = NO_ROUTE, i = root;
    while (i) {
        const struct rib_node *n = &t->pool[i];
        if ((int)n->len > maxlen || key_common(n->key, key, n->len) < n->len)
            break;
        if (n->has)
            best = n->nh;
        if (n->len == KEY_BITS)
            break;
        i = n->child[key_bit(key, n->len)];
    }
    return best;
}

/* Topmost node whose prefix lies inside key/len, or 0. */
static uint32_t rib_descend(const struct LPM_T *t, uint32_t root, KEY_T key, unsigned len)
{
    uint32_t i = root;
    while (i) {
        const struct rib_node *n = &t->pool[i];
        if (n->len >= len)
            return key_common(n->key, key, len) >= len ? i : 0;
        if (key_common(n->key, key, n->len) < n->len)
            return 0;
        i = n->child[key_bit(key, n->len)];
    }
    return 0;
}

/* Make sure a node for key/len exists; returns it and whether it was created.
 * Needs 2 reserved pool nodes. */
static uint32_t rib_make(struct LPM_T *t, uint32_t *rootp, KEY_T key, unsigned len, int *created)
{
    uint32_t parent = 0, pb = 0, i = *rootp;
    *created = 0;
    while (i) {
        struct rib_node *n = &t->pool[i];
        unsigned cl = key_common(n->key, key, n->len < len ? n->len : len);
        if (cl < n->len) {
            /* Split above n: either key/len is n's ancestor or a branch node. */
            uint32_t x = pool_get(t);
            n = &t->pool[i];
            *created = 1;
            if (cl == len) {
                t->pool[x].key = key;
                t->pool[x].len = (uint8_t)len;
                t->pool[x].child[key_bit(n->key, len)] = i;
                if (parent)
                    t->pool[parent].child[pb] = x;
                else
                    *rootp = x;
                return x;
            }
            uint32_t br = x, leaf = pool_get(t);
            n = &t->pool[i];
            t->pool[br].key = key & key_mask(cl);
            t->pool[br].len = (uint8_t)cl;
            t->pool[br].child[key_bit(n->key, cl)] = i;
            t->pool[br].child[key_bit(key, cl)] = leaf;
            t->pool[leaf].key = key;
            t->pool[leaf].len = (uint8_t)len;
            if (parent)
                t->pool[parent].child[pb] = br;
            else
                *rootp = br;
            return leaf;
        }
        if (n->len == len)
            return i;
        parent = i;
        pb = key_bit(key, n->len);
        i = n->child[pb];
    }
    uint32_t x = pool_get(t);
    t->pool[x].key = key;
    t->pool[x].len = (uint8_t)len;
    *created = 1;
    if (parent)
        t->pool[parent].child[pb] = x;
    else
        *rootp = x;
    return x;
}

/* Remove route-less nodes with fewer than two children on the path to
 * key/len (after a delete or an undo). Never allocates. */
static void rib_prune(struct LPM_T *t, uint32_t *rootp, KEY_T key, unsigned len)
{
    uint32_t path[KEY_BITS + 2];
    unsigned depth = 0;
    uint32_t i = *rootp;
    while (i) {
        struct rib_node *n = &t->pool[i];
        if (n->len > len || key_common(n->key, key, n->len) < n->len)
            break;
        path[depth++] = i;
        if (n->len == len || n->len == KEY_BITS)
            break;
        i = n->child[key_bit(key, n->len)];
    }
    while (depth > 0) {
        uint32_t x = path[--depth];
        struct rib_node *n = &t->pool[x];
        if (n->has || (n->child[0] && n->child[1]))
            continue; /* still needed; ancestors may still be prunable below */
        uint32_t repl = n->child[0] ? n->child[0] : n->child[1];
        if (depth == 0)
            *rootp = repl;
        else {
            struct rib_node *p = &t->pool[path[depth - 1]];
            p->child[p->child[1] == x] = repl;
        }
        pool_put(t, x);
    }
}

/* ------------------------------------------------------- block builder */

static int sc_reserve(struct LPM_T *t, uint32_t nodes, uint32_t leaves)
{
    if (t->sc_nn + nodes > t->sc_ncap) {
        uint32_t cap = t->sc_ncap ? t->sc_ncap : 256;
        while (cap < t->sc_nn + nodes)
            cap *= 2;
        struct pt_node *p = vr_realloc(t->sc_nodes, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->sc_nodes = p;
        t->sc_ncap = cap;
    }
    if (t->sc_nl + leaves > t->sc_lcap) {
        uint32_t cap = t->sc_lcap ? t->sc_lcap : 1024;
        while (cap < t->sc_nl + leaves)
            cap *= 2;
        uint32_t *p = vr_realloc(t->sc_leaves, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->sc_leaves = p;
        t->sc_lcap = cap;
    }
    return 0;
}

/* Build node `ni` (already reserved) covering the 64 children below bit
 * `off`, from the RIB subtree at `r` (r->len >= off, inside the node's
 * prefix), with `d` the value inherited from routes of length <= off. */
static int build_node(struct LPM_T *t, uint32_t ni, uint32_t r, unsigned off, uint32_t d)
{
    uint32_t val[64], child[64];
    uint32_t paints[2 * 64]; /* RIB nodes whose routes fall inside this node */
    unsigned np = 0, top = 0;
    uint32_t stack[2 * STRIDE + 4];

    for (unsigned i = 0; i < 64; i++) {
        val[i] = d;
        child[i] = 0;
    }
    stack[top++] = r;
    while (top) {
        uint32_t x = stack[--top];
        const struct rib_node *n = &t->pool[x];
        if (n->len > off + STRIDE) {
            child[CHUNK(n->key, off)] = x;
            continue;
        }
        if (n->has && n->len > off)
            paints[np++] = x;
        if (n->len == off + STRIDE) {
            if (n->child[0] || n->child[1])
                child[CHUNK(n->key, off)] = x;
            continue;
        }
        if (n->child[1])
            stack[top++] = n->child[1];
        if (n->child[0])
            stack[top++] = n->child[0];
    }
    /* Shorter prefixes first so longer ones overwrite them. */
    for (unsigned l = off + 1; l <= off + STRIDE; l++)
        for (unsigned p = 0; p < np; p++) {
            const struct rib_node *n = &t->pool[paints[p]];
            if (n->len != l)
                continue;
            unsigned base = CHUNK(n->key, off), cnt = 1u << (off + STRIDE - l);
            for (unsigned i = 0; i < cnt; i++)
                val[base + i] = n->nh;
        }

    uint64_t vector = 0, leafvec = 0;
    uint32_t nleaves = 0, nchild = 0, last = 0;
    int have_last = 0;
    for (unsigned i = 0; i < 64; i++) {
        if (child[i]) {
            vector |= 1ull << i;
            nchild++;
            continue;
        }
        if (!have_last || val[i] != last) {
            leafvec |= 1ull << i;
            nleaves++;
            last = val[i];
            have_last = 1;
        }
    }
    if (sc_reserve(t, nchild, nleaves) < 0)
        return -ENOMEM;
    uint32_t base0 = t->sc_nl, base1 = t->sc_nn;
    for (unsigned i = 0; i < 64; i++)
        if ((leafvec >> i) & 1)
            t->sc_leaves[t->sc_nl++] = val[i];
    t->sc_nn += nchild;
    t->sc_nodes[ni] = (struct pt_node){vector, leafvec, base0, base1};
    uint32_t c = base1;
    for (unsigned i = 0; i < 64; i++)
        if (child[i]) {
            int rc = build_node(t, c++, child[i], off + STRIDE, val[i]);
            if (rc < 0)
                return rc;
        }
    return 0;
}

static int build_block(struct LPM_T *t, uint32_t r, unsigned off, uint32_t d, uint64_t *entry,
                       size_t *bytes)
{
    t->sc_nn = 0;
    t->sc_nl = 0;
    if (sc_reserve(t, 1, 0) < 0)
        return -ENOMEM;
    t->sc_nn = 1;
    int rc = build_node(t, 0, r, off, d);
    if (rc < 0)
        return rc;
    size_t sz = sizeof(struct pt_block) + t->sc_nn * sizeof(struct pt_node) + t->sc_nl * sizeof(uint32_t);
    struct pt_block *b = arena_alloc(sz);
    if (!b)
        return -ENOMEM;
    b->nnodes = t->sc_nn;
    b->nleaves = t->sc_nl;
    memcpy(b->nodes, t->sc_nodes, t->sc_nn * sizeof(struct pt_node));
    memcpy((uint32_t *)BLOCK_LEAVES(b), t->sc_leaves, t->sc_nl * sizeof(uint32_t));
    /* Rebase leaf indices onto the block start: the lookup then needs no
     * extra load to find the leaf array. */
    uint32_t lbase = (uint32_t)((const uint32_t *)BLOCK_LEAVES(b) - BLOCK_WORDS(b));
    for (uint32_t i = 0; i < b->nnodes; i++)
        b->nodes[i].base0 += lbase;
    *entry = (uint64_t)(uintptr_t)b;
    *bytes += sz;
    return 0;
}

static size_t block_bytes(uint64_t e)
{
    const struct pt_block *b = (const struct pt_block *)(uintptr_t)e;
    return sizeof(*b) + b->nnodes * sizeof(struct pt_node) + b->nleaves * sizeof(uint32_t);
}

static void block_free(void *p) { arena_free(p, block_bytes((uint64_t)(uintptr_t)p)); }

static void fill(uint64_t *out, size_t from, size_t to, uint32_t d)
{
    for (size_t i = from; i < to; i++)
        out[i] = LEAF(d);
}

/* Direct entries for every slot of qkey/qlen (qlen <= s) into out[], where
 * out[0] is slot `lo`. `r` is the topmost RIB node inside qkey/qlen (or 0),
 * `d` the value of the longest route shorter than qlen covering it. On error
 * the blocks already built stay in out[] for the caller to free. */
static int fill_range(struct LPM_T *t, uint64_t *out, size_t lo, KEY_T qkey, unsigned qlen, uint32_t r,
                      uint32_t d, unsigned s, size_t *bytes)
{
    size_t qlo = key_slot(qkey, s) - lo, qhi = qlo + ((size_t)1 << (s - qlen));
    if (!r) {
        fill(out, qlo, qhi, d);
        return 0;
    }
    const struct rib_node *n = &t->pool[r];
    if (n->len >= s) {
        size_t sl = key_slot(n->key, s) - lo;
        fill(out, qlo, sl, d);
        fill(out, sl + 1, qhi, d);
        uint32_t dd = (n->len == s && n->has) ? n->nh : d;
        if (n->len == s && !n->child[0] && !n->child[1]) {
            out[sl] = LEAF(dd);
            return 0;
        }
        out[sl] = LEAF(d);
        return build_block(t, r, s, dd, &out[sl], bytes);
    }
    size_t nlo = key_slot(n->key, s) - lo, nhi = nlo + ((size_t)1 << (s - n->len));
    fill(out, qlo, nlo, d);
    fill(out, nhi, qhi, d);
    uint32_t dd = n->has ? n->nh : d;
    for (unsigned b = 0; b < 2; b++) {
        KEY_T ck = n->key | ((KEY_T)b << (KEY_BITS - 1 - n->len));
        int rc = fill_range(t, out, lo, ck, n->len + 1, n->child[b], dd, s, bytes);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void free_blocks(uint64_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS_LEAF(e[i])) {
            block_free((void *)(uintptr_t)e[i]);
            e[i] = LEAF(NO_ROUTE);
        }
}

static void fib_free(void *p)
{
    struct fib *f = p;
    if (f->direct) {
        free_blocks(f->direct, (size_t)1 << f->s);
        arena_free_huge(f->direct, ((size_t)1 << f->s) * sizeof(uint64_t));
    }
    vr_free(f);
}

static struct fib *fib_build(struct LPM_T *t, uint32_t root, unsigned s)
{
    size_t n = (size_t)1 << s, bytes = sizeof(struct fib) + n * sizeof(uint64_t);
    struct fib *f = vr_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->s = s;
    f->direct = arena_alloc_huge(n * sizeof(uint64_t));
    if (!f->direct) {
        vr_free(f);
        return NULL;
    }
    fill(f->direct, 0, n, NO_ROUTE);
    if (fill_range(t, f->direct, 0, 0, 0, root, NO_ROUTE, s, &bytes) < 0) {
        fib_free(f);
        return NULL;
    }
    f->bytes = bytes;
    return f;
}

/* ------------------------------------------------------ commit to FIB */

struct range {
    KEY_T key;
    unsigned len;
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

/* Bring vrf's FIB in line with its RIB after routes at ranges[] changed.
 * Either everything is published or nothing is and -ENOMEM is returned. */
static int fib_commit(struct LPM_T *t, uint32_t vrf, struct range *ranges, size_t nr)
{
    struct vrf_w *w = &t->vrf[vrf];
    struct fib *f = t->fibs[vrf];
    if (rcu_defer_reserve(t->rcu, 1) < 0)
        return -ENOMEM;
    if (w->count == 0) {
        publish_fib(t, vrf, NULL);
        return 0;
    }
    unsigned s = S_FOR(w->count);
    /* Shrink only well below the threshold, so a VRF hovering around it
     * does not rebuild on every change. */
    if (f && s < f->s && S_FOR(w->count * 4) >= f->s)
        s = f->s;
    size_t affected = 0;
    if (f && s == f->s) {
        for (size_t i = 0; i < nr; i++) {
            if (ranges[i].len > s)
                ranges[i].len = s;
            ranges[i].key &= key_mask(ranges[i].len);
        }
        qsort(ranges, nr, sizeof(*ranges), range_cmp);
        size_t m = 0; /* drop ranges nested in the previous kept one */
        for (size_t i = 0; i < nr; i++) {
            if (m && key_common(ranges[i].key, ranges[m - 1].key, ranges[m - 1].len) >= ranges[m - 1].len)
                continue;
            ranges[m++] = ranges[i];
        }
        nr = m;
        for (size_t i = 0; i < nr; i++)
            affected += (size_t)1 << (s - ranges[i].len);
    }
    if (!f || s != f->s || affected * 4 > ((size_t)1 << s)) {
        struct fib *nf = fib_build(t, w->root, s);
        if (!nf)
            return -ENOMEM;
        publish_fib(t, vrf, nf);
        return 0;
    }
    uint64_t *tmp = vr_malloc(affected * sizeof(uint64_t));
    if (!tmp)
        return -ENOMEM;
    size_t off = 0, bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < nr && rc == 0; i++) {
        KEY_T k = ranges[i].key;
        unsigned l = ranges[i].len;
        size_t cnt = (size_t)1 << (s - l);
        fill(tmp + off, 0, cnt, NO_ROUTE);
        rc = fill_range(t, tmp + off, key_slot(k, s), k, l, rib_descend(t, w->root, k, l),
                        l ? rib_lpm(t, w->root, k, (int)l - 1) : NO_ROUTE, s, &bytes);
        off += cnt;
    }
    size_t olds = 0;
    for (size_t i = 0; i < nr && rc == 0; i++) {
        size_t lo = key_slot(ranges[i].key, s), cnt = (size_t)1 << (s - ranges[i].len);
        for (size_t j = 0; j < cnt; j++)
            olds += !IS_LEAF(f->direct[lo + j]);
    }
    if (rc == 0)
        rc = rcu_defer_reserve(t->rcu, olds);
    if (rc < 0) {
        free_blocks(tmp, off);
        vr_free(tmp);
        return rc;
    }
    off = 0;
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
        off += cnt;
    }
    f->bytes += bytes;
    t->fib_bytes += bytes;
    vr_free(tmp);
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

static void rollback(struct LPM_T *t, uint32_t vrf, const struct op *ops, size_t n)
{
    struct vrf_w *w = &t->vrf[vrf];
    /* Restore every value first, newest change first, then prune: pruning
     * earlier could free a node an older undo entry still points to. */
    for (size_t i = n; i-- > 0;) {
        struct undo *u = &t->undo[i];
        if (u->node == 0)
            continue;
        struct rib_node *x = &t->pool[u->node];
        w->count += (size_t)u->prev_has - (size_t)x->has;
        t->total += (size_t)u->prev_has - (size_t)x->has;
        x->has = u->prev_has;
        x->nh = u->prev_nh;
    }
    for (size_t i = n; i-- > 0;)
        if (t->undo[i].node)
            rib_prune(t, &w->root, ops[i].key, ops[i].len);
}

/* Apply ops (already validated) to one VRF, all or nothing. Returns the
 * number of routes that changed, or -ENOMEM with the table unchanged. */
static long apply_ops(struct LPM_T *t, uint32_t vrf, const struct op *ops, size_t n)
{
    struct vrf_w *w = &t->vrf[vrf];
    if (undo_reserve(t, n) < 0)
        return -ENOMEM;
    struct range *ranges = vr_malloc((n ? n : 1) * sizeof(*ranges));
    if (!ranges)
        return -ENOMEM;
    size_t nr = 0, changed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct op *o = &ops[i];
        struct undo *u = &t->undo[i];
        u->node = 0;
        if (o->del) {
            uint32_t x = rib_find(t, w->root, o->key, o->len);
            if (!x || !t->pool[x].has)
                continue;
            *u = (struct undo){x, t->pool[x].nh, 1, 0};
            t->pool[x].has = 0;
            w->count--;
            t->total--;
        } else {
            int created;
            if (pool_reserve(t, 2) < 0) {
                rollback(t, vrf, ops, i);
                vr_free(ranges);
                return -ENOMEM;
            }
            uint32_t x = rib_make(t, &w->root, o->key, o->len, &created);
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
        ranges[nr++] = (struct range){o->key, o->len};
        changed++;
    }
    if (nr) {
        int rc = fib_commit(t, vrf, ranges, nr);
        if (rc < 0) {
            rollback(t, vrf, ops, n);
            vr_free(ranges);
            return rc;
        }
        /* Deleted routes leave branch nodes behind until now: prune them. */
        for (size_t i = 0; i < n; i++)
            if (ops[i].del && t->undo[i].node)
                rib_prune(t, &w->root, ops[i].key, ops[i].len);
        VR_STORE_REL(&t->generation, t->generation + 1);
    }
    vr_free(ranges);
    if (rcu_pending(t->rcu))
        rcu_reclaim(t->rcu);
    return (long)changed;
}

static int check_route(KEY_T key, unsigned len)
{
    if (len > KEY_BITS)
        return -EINVAL;
    if (key & ~key_mask(len))
        return -EINVAL; /* host bits set: rejected, never normalised */
    return 0;
}

/* ------------------------------------------------------- reader side */

static inline uint32_t fib_lookup(const struct fib *f, KEY_T k)
{
    uint64_t e = VR_LOAD_ACQ(&f->direct[key_slot(k, f->s)]);
    if (IS_LEAF(e))
        return (uint32_t)(e >> 1);
    const struct pt_block *b = (const struct pt_block *)(uintptr_t)e;
    const struct pt_node *n = b->nodes;
    unsigned off = f->s;
    for (;;) {
        uint64_t bit = 1ull << CHUNK(k, off), m = (bit << 1) - 1;
        if (n->vector & bit) {
            n = b->nodes + n->base1 + __builtin_popcountll(n->vector & m) - 1;
            off += STRIDE;
            continue;
        }
        return BLOCK_WORDS(b)[n->base0 + __builtin_popcountll(n->leafvec & m) - 1];
    }
}

/* Scalar bulk path: one key after the other. */
static inline void bulk_scalar(const struct fib *f, const KEY_T *keys, uint32_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fib_lookup(f, keys[i]);
}

/* Interleaved bulk path: the keys of a group walk down the trie in lock
 * step, one level per pass, each lane prefetching its next node as soon as it
 * knows it, so up to GROUP misses are in flight at once; the direct entries
 * of the next group are prefetched while this one walks. */
#define GROUP 16
static inline void walk_group(const struct fib *f, const KEY_T *keys, uint32_t *out, unsigned n)
{
    const uint64_t *D = f->direct;
    const struct pt_node *node[GROUP];
    const uint32_t *words[GROUP];
    uint8_t act[GROUP];
    unsigned na = 0, off = f->s;

    for (unsigned j = 0; j < n; j++) {
        uint64_t e = VR_LOAD_ACQ(&D[key_slot(keys[j], f->s)]);
        if (IS_LEAF(e)) {
            out[j] = (uint32_t)(e >> 1);
            continue;
        }
        const struct pt_block *b = (const struct pt_block *)(uintptr_t)e;
        __builtin_prefetch(b);
        node[j] = b->nodes;
        words[j] = BLOCK_WORDS(b);
        act[na++] = (uint8_t)j;
    }
    while (na) {
        unsigned keep = 0;
        for (unsigned a = 0; a < na; a++) {
            unsigned j = act[a];
            const struct pt_node *nd = node[j];
            uint64_t bit = 1ull << CHUNK(keys[j], off), m = (bit << 1) - 1;
            if (nd->vector & bit) {
                const struct pt_node *nx = (const struct pt_node *)(words[j] + 2) + nd->base1 +
                                           __builtin_popcountll(nd->vector & m) - 1;
                __builtin_prefetch(nx);
                node[j] = nx;
                act[keep++] = (uint8_t)j;
            } else {
                out[j] = words[j][nd->base0 + __builtin_popcountll(nd->leafvec & m) - 1];
            }
        }
        na = keep;
        off += STRIDE;
    }
}

static inline void bulk_batch(const struct fib *f, const KEY_T *keys, uint32_t *out, size_t n)
{
    const uint64_t *D = f->direct;
    for (size_t j = 0; j < n && j < GROUP; j++)
        __builtin_prefetch(&D[key_slot(keys[j], f->s)]);
    for (size_t i = 0; i < n; i += GROUP) {
        for (size_t j = i + GROUP; j < n && j < i + 2 * GROUP; j++)
            __builtin_prefetch(&D[key_slot(keys[j], f->s)]);
        walk_group(f, keys + i, out + i, n - i < GROUP ? (unsigned)(n - i) : GROUP);
    }
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
    for (size_t v = 0; v < NVRF; v++)
        if (t->fibs[v])
            fib_free(t->fibs[v]);
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

static int tm_insert(struct LPM_T *t, uint32_t vrf, KEY_T key, unsigned len, uint32_t nh)
{
    int rc = tm_check(vrf, key, len, nh);
    if (rc < 0)
        return rc;
    uint32_t x = rib_find(t, t->vrf[vrf].root, key, len);
    int existed = x && t->pool[x].has;
    struct op o = {key, nh, (uint8_t)len, 0};
    long r = apply_ops(t, vrf, &o, 1);
    return r < 0 ? (int)r : !existed;
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
    uint32_t x = rib_find(t, t->vrf[vrf].root, key, len);
    if (!x || !t->pool[x].has)
        return -ENOENT;
    *nh = t->pool[x].nh;
    return 0;
}

/* Validate every op, then apply all or nothing. */
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
    return apply_ops(t, vrf, ops, n);
}

/* In-order walk: ascending address, shorter prefix first. */
static size_t tm_dump(const struct LPM_T *t, uint32_t vrf, KEY_T *keys, uint8_t *lens, uint32_t *nhs,
                      size_t cap)
{
    if (vrf >= NVRF)
        return 0;
    uint32_t stack[KEY_BITS * 2 + 2];
    size_t top = 0, n = 0;
    if (t->vrf[vrf].root)
        stack[top++] = t->vrf[vrf].root;
    while (top && n < cap) {
        const struct rib_node *x = &t->pool[stack[--top]];
        if (x->has) {
            keys[n] = x->key;
            lens[n] = x->len;
            nhs[n] = x->nh;
            n++;
        }
        if (x->child[1])
            stack[top++] = x->child[1];
        if (x->child[0])
            stack[top++] = x->child[0];
    }
    return n;
}

static size_t tm_vrfs(const struct LPM_T *t, uint16_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t v = 0; v < NVRF && n < cap; v++)
        if (t->vrf[v].count)
            out[n++] = (uint16_t)v;
    return n;
}

static size_t tm_bytes(const struct LPM_T *t)
{
    return sizeof(*t) + t->fib_bytes + (size_t)t->pool_cap * sizeof(struct rib_node) +
           (size_t)t->sc_ncap * sizeof(struct pt_node) + (size_t)t->sc_lcap * sizeof(uint32_t) +
           t->undo_cap * sizeof(struct undo);
}

/* Bulk lookups, compiled twice: portable, and with the popcnt instruction
 * (picked at run time; the portable build cannot assume it). */
#define POPCNT_TARGET __attribute__((target("popcnt")))
static void bulk_scalar_generic(const struct fib *f, const KEY_T *k, uint32_t *o, size_t n) { bulk_scalar(f, k, o, n); }
static void bulk_batch_generic(const struct fib *f, const KEY_T *k, uint32_t *o, size_t n) { bulk_batch(f, k, o, n); }
POPCNT_TARGET static void bulk_scalar_popcnt(const struct fib *f, const KEY_T *k, uint32_t *o, size_t n) { bulk_scalar(f, k, o, n); }
POPCNT_TARGET static void bulk_batch_popcnt(const struct fib *f, const KEY_T *k, uint32_t *o, size_t n) { bulk_batch(f, k, o, n); }

typedef void (*bulk_fn)(const struct fib *, const KEY_T *, uint32_t *, size_t);

static bulk_fn pick_bulk(int impl)
{
    static int popcnt = -1;
    if (popcnt < 0) {
        __builtin_cpu_init();
        popcnt = __builtin_cpu_supports("popcnt") ? 1 : 0;
    }
    switch (impl) {
    case LPM_IMPL_SCALAR:
        return popcnt ? bulk_scalar_popcnt : bulk_scalar_generic;
    case LPM_IMPL_SCALAR_PORTABLE:
        return bulk_scalar_generic;
    case LPM_IMPL_BATCH_PORTABLE:
        return bulk_batch_generic;
    default:
        return popcnt ? bulk_batch_popcnt : bulk_batch_generic;
    }
}

static inline const struct fib *tm_fib(const struct LPM_T *t, uint32_t vrf)
{
    return VR_LOAD_ACQ(&t->fibs[vrf & (NVRF - 1)]);
}
