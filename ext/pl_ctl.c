/* Pipeline control side: create / destroy, the counter readers (sums over
 * the workers' blocks) and clear, and flow revalidation after route changes.
 * Control (writer) thread only; the readers race the workers' counters
 * harmlessly (64-bit aligned words: a snapshot, never torn).
 */
#include "pl_priv.h"

#include "mem.h"

VR_EXPORT int pl_create(struct nh_table *nt, struct lpm4 *l4, struct lpm6 *l6, struct flow_table *ft,
                        struct pol_table *pt, int nworkers, unsigned flags, struct pipeline **out)
{
    if (!nt || !l4 || !l6 || !ft || !pt || nworkers < 1 || nworkers > PL_MAX_WORKERS ||
        (flags & ~PL_F_VERIFY_IP4_CSUM))
        return -EINVAL;
    struct pipeline *pl = vr_calloc(1, sizeof *pl);
    if (!pl)
        return -ENOMEM;
    *pl = (struct pipeline){nt, l4, l6, ft, pt, 0, nworkers, NULL};
    if (flags & PL_F_VERIFY_IP4_CSUM)
        pl->parse_flags |= PKT_PARSE_VERIFY_IP4_CSUM;
    pl->w = vr_aligned_alloc(VR_CACHE_LINE, sizeof(struct pl_worker) * (size_t)(nworkers + 1));
    if (!pl->w)
        goto fail;
    memset(pl->w, 0, sizeof(struct pl_worker) * (size_t)(nworkers + 1));
    for (int i = 0; i <= nworkers; i++) {
        /* calloc of this size is fresh zero pages: memory follows the ids in use */
        pl->w[i].vif = vr_calloc(VIF_MAX, sizeof(struct pl_vif_stats));
        pl->w[i].vrf = vr_calloc(PL_VRF_MAX, sizeof(struct pl_vrf_stats));
        if (!pl->w[i].vif || !pl->w[i].vrf)
            goto fail;
    }
    *out = pl;
    return 0;
fail:
    pl_destroy(pl);
    return -ENOMEM;
}

VR_EXPORT void pl_destroy(struct pipeline *pl)
{
    if (!pl)
        return;
    if (pl->w)
        for (int i = 0; i <= pl->nworkers; i++) {
            vr_free(pl->w[i].vif);
            vr_free(pl->w[i].vrf);
        }
    vr_free(pl->w);
    vr_free(pl);
}

VR_EXPORT int pl_workers(const struct pipeline *pl)
{
    return pl->nworkers;
}

VR_EXPORT void pl_stats_clear(struct pipeline *pl)
{
    for (int i = 0; i <= pl->nworkers; i++) {
        memset(&pl->w[i].st, 0, sizeof pl->w[i].st);
        memset(pl->w[i].vif, 0, VIF_MAX * sizeof(struct pl_vif_stats));
        memset(pl->w[i].vrf, 0, PL_VRF_MAX * sizeof(struct pl_vrf_stats));
    }
}

/* Sum arrays of uint64_t counters word by word. */
static void sum_words(uint64_t *dst, const uint64_t *src, size_t words)
{
    for (size_t i = 0; i < words; i++)
        dst[i] += VR_LOAD_RLX(&src[i]);
}

VR_EXPORT void pl_read_stats(const struct pipeline *pl, struct pl_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].st, sizeof *out / 8);
}

VR_EXPORT void pl_read_vif_stats(const struct pipeline *pl, uint16_t vif, struct pl_vif_stats *out)
{
    memset(out, 0, sizeof *out);
    if (vif >= VIF_MAX)
        return;
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].vif[vif], sizeof *out / 8);
}

VR_EXPORT void pl_read_vrf_stats(const struct pipeline *pl, uint16_t vrf, struct pl_vrf_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].vrf[vrf], sizeof *out / 8);
}

VR_EXPORT uint32_t pl_flows_revalidate(struct pipeline *pl, int vrf, uint32_t *examined)
{
    enum { CHUNK = 256 };
    struct flow_entry e[CHUNK];
    struct flow_times tm[CHUNK];
    uint32_t idx[CHUNK];
    uint32_t cursor = 0, deleted = 0, seen = 0, n;
    while ((n = flow_dump(pl->ft, &cursor, e, tm, idx, CHUNK)) > 0) {
        for (uint32_t i = 0; i + 1 < n; i += 2) {   /* forward, reverse of one pair */
            seen += 2;
            if (vrf >= 0 && e[i].key.vrf != vrf && e[i + 1].key.vrf != vrf)
                continue;   /* (the reverse end may sit in the destination's VRF) */
            int stale = 0;
            for (uint32_t j = i; j < i + 2 && !stale; j++) {
                int why;
                uint32_t want = pl_resolve(pl, NULL, e[j].key.vrf, e[j].key.family, e[j].key.dst, &why);
                uint32_t have = e[j].nh;
                /* a reverse end made without a route routes itself per packet: stale only
                 * once a route appeared; everything else: stale when the route moved */
                stale = have == NH_NONE ? want != LPM_NO_ROUTE : want != have;
            }
            if (stale && flow_delete_index(pl->ft, pl->nworkers % FLOW_MAX_WORKERS, idx[i]) == 0)
                deleted++;
        }
    }
    if (examined)
        *examined = seen;
    return deleted;
}
