/* LPM template, part 1: the writer's RIB. Path-compressed binary tries in a
 * node pool of the table (indices, not pointers, so the pool may grow); each
 * VRF has one trie per direct slot plus one for routes shorter than the slot
 * (see lpm_tmpl.h), so a walk only ever crosses a few routes. Writer only.
 * Included by lpm_tmpl.h; not a public header. */

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

/* Pre-order walk of one trie: ascending address, shorter prefix first. */
struct rib_iter {
    uint32_t stack[KEY_BITS + 2];
    unsigned top;
};

static void rib_iter_push(struct rib_iter *it, uint32_t root)
{
    if (root)
        it->stack[it->top++] = root;
}

static uint32_t rib_iter_next(const struct LPM_T *t, struct rib_iter *it)
{
    while (it->top) {
        uint32_t x = it->stack[--it->top];
        const struct rib_node *n = &t->pool[x];
        if (n->child[1])
            it->stack[it->top++] = n->child[1];
        if (n->child[0])
            it->stack[it->top++] = n->child[0];
        if (n->has)
            return x;
    }
    return 0;
}

/* Return every node of a trie to the pool. */
static void rib_free_trie(struct LPM_T *t, uint32_t root)
{
    uint32_t stack[KEY_BITS + 2];
    unsigned top = 0;
    if (root)
        stack[top++] = root;
    while (top) {
        uint32_t x = stack[--top];
        struct rib_node *n = &t->pool[x];
        if (n->child[1])
            stack[top++] = n->child[1];
        if (n->child[0])
            stack[top++] = n->child[0];
        pool_put(t, x);
    }
}
