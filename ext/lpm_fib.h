/* LPM template, part 2: the readers' FIB. A direct array on the first `s`
 * bits whose entries are a leaf (next hop) or a block of Poptrie-style 64-ary
 * nodes (two 64-bit vectors + popcount), leaf-pushed and leaf-compressed, in
 * the packed arena. Block building is writer-side; the lookups are what the
 * workers run. Included by lpm_tmpl.h; not a public header. */

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
    uint64_t vector = 0;

    for (unsigned i = 0; i < 64; i++)
        val[i] = d;
    stack[top++] = r;
    while (top) {
        uint32_t x = stack[--top];
        const struct rib_node *n = &t->pool[x];
        if (n->len > off + STRIDE || (n->len == off + STRIDE && (n->child[0] || n->child[1]))) {
            unsigned c = CHUNK(n->key, off);
            child[c] = x;
            vector |= 1ull << c;
            if (n->len > off + STRIDE || !n->has)
                continue;
        }
        if (n->has && n->len > off)
            paints[np++] = x;
        if (n->len >= off + STRIDE)
            continue;
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

    /* A leaf run starts at child 0, at every change of value, and at the
     * first leaf after a node child (so a run never spans a node child). */
    uint64_t change = 1;
    for (unsigned i = 1; i < 64; i++)
        change |= (uint64_t)(val[i] != val[i - 1]) << i;
    uint64_t leafvec = (change | (vector << 1)) & ~vector;
    uint32_t nchild = (uint32_t)__builtin_popcountll(vector), nleaves = (uint32_t)__builtin_popcountll(leafvec);
    if (sc_reserve(t, nchild, nleaves) < 0)
        return -ENOMEM;
    uint32_t base0 = t->sc_nl, base1 = t->sc_nn;
    for (uint64_t m = leafvec; m; m &= m - 1)
        t->sc_leaves[t->sc_nl++] = val[__builtin_ctzll(m)];
    t->sc_nn += nchild;
    t->sc_nodes[ni] = (struct pt_node){vector, leafvec, base0, base1};
    uint32_t c = base1;
    for (uint64_t m = vector; m; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctzll(m);
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

/* ------------------------------------------------------- reader side */

/* The walk keeps a running key RKEY_T shifted so that the next six bits are
 * always its top bits (zeros come in from the right past the address end).
 * One shift of a vector by (63 - v) gives both "is child v a node" (the sign
 * bit) and the popcount rank of bits 0..v. */
#define RANK_SHIFT(rk) ((unsigned)(~(rk) >> (RKEY_BITS - STRIDE)) & 63u)

static VR_ALWAYS_INLINE uint32_t fib_lookup(const struct fib *f, KEY_T k)
{
    uint64_t e = VR_LOAD_ACQ(&f->direct[key_slot(k, f->s)]);
    if (IS_LEAF(e))
        return (uint32_t)(e >> 1);
    const uint32_t *w = (const uint32_t *)(uintptr_t)e;
    const struct pt_node *nodes = ((const struct pt_block *)w)->nodes, *n = nodes;
    RKEY_T rk = RK_INIT(k, f->s);
    for (;;) {
        unsigned sh = RANK_SHIFT(rk);
        uint64_t x = n->vector << sh;
        if ((int64_t)x < 0) {
            n = nodes + n->base1 + __builtin_popcountll(x) - 1;
            rk <<= STRIDE;
            continue;
        }
        return w[n->base0 + __builtin_popcountll(n->leafvec << sh) - 1];
    }
}

/* Scalar bulk path: one key after the other. */
static VR_ALWAYS_INLINE void bulk_scalar(const struct fib *f, const KEY_T *keys, uint32_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fib_lookup(f, keys[i]);
}

/* Batch path: the scalar walk, pipelined: the direct entry of key i+16 and
 * the block of key i+8 are prefetched (branch-free) while key i is resolved,
 * so the misses of different keys overlap. (Lock-step walks of 4 or 16 keys,
 * in registers or lane arrays, measured slower here than this.) */
#define AHEAD_D 16
#define AHEAD_B 8
static VR_ALWAYS_INLINE void bulk_batch(const struct fib *f, const KEY_T *keys, uint32_t *out, size_t n)
{
    const uint64_t *D = f->direct;
    const unsigned s = f->s;
    for (size_t i = 0; i < n && i < AHEAD_D; i++)
        __builtin_prefetch(&D[key_slot(keys[i], s)]);
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD_D < n)
            __builtin_prefetch(&D[key_slot(keys[i + AHEAD_D], s)]);
        if (i + AHEAD_B < n) {
            uint64_t e = VR_LOAD_RLX(&D[key_slot(keys[i + AHEAD_B], s)]);
            const char *p = IS_LEAF(e) ? (const char *)D : (const char *)(uintptr_t)e;
            __builtin_prefetch(p);
            __builtin_prefetch(p + 64);
        }
        out[i] = fib_lookup(f, keys[i]);
    }
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
    case LPM_IMPL_BATCH:
        return popcnt ? bulk_batch_popcnt : bulk_batch_generic;
    default: /* AUTO: the variant measured fastest for this key width */
        return pick_bulk(AUTO_IMPL);
    }
}

