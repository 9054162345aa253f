/* Worker threads: rx burst -> pipeline -> tx burst per output vif. See worker.h. */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "mem.h"
#include "policy.h"

struct worker {
    int id;
    int cpu;
    struct pipeline *pl;
    struct rcu_domain *rcu;
    struct flow_table *ft;
    struct pol_table *pt;
    struct io_pool *pool;
    pthread_t th;
    int started;
    int stop;                    /* atomic */
    int efd;                     /* wake-up eventfd */
    int epfd;
    /* configuration hand-over (control thread -> worker) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;                /* bumped by wk_set_ports (atomic) */
    uint64_t applied;            /* last gen the worker runs with (under mu) */
    struct wk_ports next;        /* under mu */
    struct wk_ports cur;         /* the worker's own copy */
    struct wk_stats st;          /* written by the worker, read racily */
    /* capture (SPSC ring: the worker writes head, the control thread tail) */
    int cap_vif;                 /* atomic; -1 = off */
    uint32_t cap_snap;
    uint8_t *cap_ring;           /* WK_CAP_RING bytes, allocated on first use */
    uint64_t cap_head, cap_tail; /* byte counters (atomic) */
    uint64_t cap_dropped;
    /* per burst scratch */
    struct pkt pkts[IO_BURST] VR_ALIGNED(VR_CACHE_LINE);
    struct pl_result res[IO_BURST];
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Re-register the epoll set for the current rx ports. */
static void epoll_rebuild(struct worker *w)
{
    if (w->epfd >= 0)
        close(w->epfd);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ev);
    for (uint32_t i = 0; i < w->cur.nrx; i++) {
        ev.data.u32 = i;
        if (w->cur.rx[i]->fd >= 0)
            epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->cur.rx[i]->fd, &ev);
    }
}

static void apply_config(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->cur = w->next;
    w->applied = VR_LOAD_RLX(&w->gen);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    epoll_rebuild(w);
}

static inline uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Append one record to the capture ring, or count it dropped. */
static void cap_put(struct worker *w, const struct pkt *p, int dir)
{
    uint32_t caplen = p->data_len < w->cap_snap ? p->data_len : w->cap_snap;
    uint32_t need = (uint32_t)((sizeof(struct wk_cap_hdr) + caplen + 7) & ~7u);
    uint64_t head = w->cap_head, tail = VR_LOAD_ACQ(&w->cap_tail);
    if (head - tail + need > WK_CAP_RING) {
        w->cap_dropped++;
        return;
    }
    struct wk_cap_hdr h = {realtime_ns(), p->vif, (uint8_t)dir, 0, p->data_len, (uint16_t)caplen};
    uint8_t rec[sizeof h];
    memcpy(rec, &h, sizeof h);
    for (uint32_t i = 0; i < sizeof h; i++)
        w->cap_ring[(head + i) % WK_CAP_RING] = rec[i];
    const uint8_t *d = pkt_data(p);
    uint64_t at = head + sizeof h;
    for (uint32_t i = 0; i < caplen; i++)
        w->cap_ring[(at + i) % WK_CAP_RING] = d[i];
    VR_STORE_REL(&w->cap_head, head + need);
}

static inline void capture(struct worker *w, struct pkt *pkts, uint32_t n, int dir, const uint16_t *vifs)
{
    int cv = VR_LOAD_RLX(&w->cap_vif);
    if (VR_LIKELY(cv < 0))
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t v = vifs ? vifs[i] : pkts[i].vif;
        if (v == (uint16_t)cv) {
            struct pkt q = pkts[i];
            q.vif = v;
            cap_put(w, &q, dir);
        }
    }
}

/* Where a verdict sends its frame (NULL: nowhere, it goes back to the pool). */
static inline struct io_port *port_of(const struct worker *w, const struct pl_result *r)
{
    if (r->verdict == PL_FORWARD || r->verdict == PL_REPLY)
        return r->out_vif < VIF_MAX ? w->cur.tx[r->out_vif] : NULL;
    return r->verdict == PL_HOST ? w->cur.host : NULL;
}

/* Transmit a burst's verdicts: frames grouped by out port (in order within
 * a port), every frame handed to exactly one port or back to the pool. */
static void transmit(struct worker *w, uint32_t n)
{
    struct pkt *by_port[IO_BURST];
    uint8_t done[IO_BURST];
    memset(done, 0, n);
    for (uint32_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        const struct pl_result *r = &w->res[i];
        struct io_port *port = port_of(w, r);
        if (!port) {
            if (r->verdict == PL_FORWARD || r->verdict == PL_REPLY)
                w->st.tx_no_port++;
            else if (r->verdict == PL_HOST)
                w->st.to_host_dropped++;
            io_pool_put(w->pool, w->pkts[i].buf);
            done[i] = 1;
            continue;
        }
        /* gather every later frame for the same port */
        uint32_t k = 0;
        for (uint32_t j = i; j < n; j++) {
            if (done[j])
                continue;
            if (port_of(w, &w->res[j]) == port) {
                by_port[k++] = &w->pkts[j];
                done[j] = 1;
            }
        }
        if (VR_UNLIKELY(VR_LOAD_RLX(&w->cap_vif) >= 0))
            for (uint32_t j = 0; j < k; j++)
                if (port->vif == (uint16_t)VR_LOAD_RLX(&w->cap_vif)) {
                    struct pkt q = *by_port[j];
                    q.vif = port->vif;
                    cap_put(w, &q, WK_CAP_TX);
                }
        uint32_t sent = io_tx_burst(port, w->pool, by_port, k);
        w->st.tx_packets += sent;
        w->st.tx_dropped += k - sent;
    }
}

static void sweep(struct worker *w, uint64_t now)
{
    struct flow_revalidator rv = {pol_flow_reval, w->pt, pol_generation(w->pt)};
    uint32_t examined = 0;
    uint32_t aged = flow_sweep(w->ft, w->id, now, WK_SWEEP_BUDGET, &rv, &examined);
    w->st.swept += examined;
    w->st.aged += aged;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    int slot = rcu_register(w->rcu);
    if (slot < 0)
        return NULL;
    rcu_online(w->rcu, slot);
    apply_config(w);
    uint64_t last_sweep = now_ns();
    unsigned empty = 0;
    while (!VR_LOAD_ACQ(&w->stop)) {
        if (VR_LOAD_ACQ(&w->gen) != w->applied)
            apply_config(w);
        uint64_t t0 = now_ns();
        uint32_t got = 0;
        for (uint32_t p = 0; p < w->cur.nrx; p++) {
            struct io_port *port = w->cur.rx[p];
            uint32_t n = io_rx_burst(port, w->pool, w->pkts, IO_BURST);
            if (!n)
                continue;
            got += n;
            capture(w, w->pkts, n, WK_CAP_RX, NULL);
            pl_process(w->pl, w->id, w->pkts, n, w->res, t0);
            transmit(w, n);
        }
        /* reclaim frames the kernel finished sending (AF_XDP completions) */
        for (uint32_t v = 0; v < w->cur.nrx; v++)
            if (w->cur.rx[v]->ops->poll_tx)
                w->cur.rx[v]->ops->poll_tx(w->cur.rx[v], w->pool);
        rcu_quiescent(w->rcu, slot);
        w->st.loops++;
        if (got) {
            w->st.busy_loops++;
            w->st.rx_packets += got;
            w->st.busy_ns += now_ns() - t0;
            empty = 0;
        }
        if (t0 - last_sweep >= WK_SWEEP_PERIOD_NS) {
            sweep(w, t0);
            last_sweep = t0;
        }
        if (got || ++empty < WK_SPIN_POLLS)
            continue;
        /* idle: sleep until a port has frames, the control thread knocks,
         * or the sweep is due */
        rcu_offline(w->rcu, slot);
        struct epoll_event evs[16];
        w->st.sleeps++;
        int ne = w->epfd >= 0 ? epoll_wait(w->epfd, evs, 16, WK_IDLE_SLEEP_MS) : 0;
        for (int i = 0; i < ne; i++)
            if (evs[i].data.u32 == UINT32_MAX) {
                uint64_t v;
                ssize_t r = read(w->efd, &v, sizeof v);
                (void)r;
            }
        rcu_online(w->rcu, slot);
        empty = WK_SPIN_POLLS / 2;   /* spin a little before sleeping again */
    }
    rcu_offline(w->rcu, slot);
    rcu_unregister(w->rcu, slot);
    return NULL;
}

VR_EXPORT int wk_create(int id, struct pipeline *pl, struct rcu_domain *rcu, struct flow_table *ft,
                        struct pol_table *pt, struct io_pool *pool, int cpu, struct worker **out)
{
    if (id < 0 || id >= pl_workers(pl) || !pool || !pool->base)
        return -EINVAL;
    struct worker *w = vr_aligned_alloc(VR_CACHE_LINE, sizeof *w);
    if (!w)
        return -ENOMEM;
    memset(w, 0, sizeof *w);
    w->id = id;
    w->cpu = cpu;
    w->pl = pl;
    w->rcu = rcu;
    w->ft = ft;
    w->pt = pt;
    w->pool = pool;
    w->epfd = -1;
    w->cap_vif = -1;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        int e = errno;
        vr_free(w);
        return -e;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    *out = w;
    return 0;
}

static void knock(struct worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof one);
    (void)r;
}

VR_EXPORT int wk_start(struct worker *w)
{
    if (w->started)
        return -EBUSY;
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    if (rc)
        return -rc;
    w->started = 1;
    return 0;
}

VR_EXPORT int wk_set_ports(struct worker *w, const struct wk_ports *ports)
{
    if (ports->nrx > WK_MAX_PORTS)
        return -EINVAL;
    pthread_mutex_lock(&w->mu);
    w->next = *ports;
    uint64_t gen = VR_LOAD_RLX(&w->gen) + 1;
    VR_STORE_REL(&w->gen, gen);
    if (!w->started) {
        w->cur = w->next;   /* picked up at start */
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    knock(w);
    while (w->applied < gen && !VR_LOAD_ACQ(&w->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        knock(w);
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

VR_EXPORT void wk_stop(struct worker *w)
{
    if (!w->started)
        return;
    VR_STORE_REL(&w->stop, 1);
    knock(w);
    pthread_join(w->th, NULL);
    w->started = 0;
}

VR_EXPORT void wk_destroy(struct worker *w)
{
    if (!w)
        return;
    wk_stop(w);
    if (w->epfd >= 0)
        close(w->epfd);
    close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    vr_free(w->cap_ring);
    vr_free(w);
}

VR_EXPORT void wk_read_stats(const struct worker *w, struct wk_stats *out)
{
    const uint64_t *s = (const uint64_t *)&w->st;
    uint64_t *d = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / 8; i++)
        d[i] = VR_LOAD_RLX(&s[i]);
}

VR_EXPORT int wk_running(const struct worker *w)
{
    return w->started && !VR_LOAD_ACQ(&w->stop);
}

VR_EXPORT struct io_pool *wk_pool(struct worker *w)
{
    return w->pool;
}

VR_EXPORT int wk_capture_set(struct worker *w, int vif, uint32_t snaplen)
{
    if (vif >= VIF_MAX || snaplen == 0 || snaplen > 65535)
        return -EINVAL;
    if (vif >= 0 && !w->cap_ring) {
        w->cap_ring = vr_malloc(WK_CAP_RING);
        if (!w->cap_ring)
            return -ENOMEM;
    }
    w->cap_snap = snaplen;
    VR_STORE_REL(&w->cap_vif, vif < 0 ? -1 : vif);
    return 0;
}

VR_EXPORT uint32_t wk_capture_read(struct worker *w, uint8_t *out, uint32_t cap, uint64_t *dropped)
{
    uint32_t n = 0;
    if (dropped)
        *dropped = VR_LOAD_RLX(&w->cap_dropped);
    if (!w->cap_ring)
        return 0;
    uint64_t tail = w->cap_tail, head = VR_LOAD_ACQ(&w->cap_head);
    while (tail < head) {
        struct wk_cap_hdr h;
        uint8_t *hb = (uint8_t *)&h;
        for (uint32_t i = 0; i < sizeof h; i++)
            hb[i] = w->cap_ring[(tail + i) % WK_CAP_RING];
        uint32_t need = (uint32_t)((sizeof h + h.caplen + 7) & ~7u);
        if (n + sizeof h + h.caplen > cap)
            break;
        memcpy(out + n, &h, sizeof h);
        for (uint32_t i = 0; i < h.caplen; i++)
            out[n + sizeof h + i] = w->cap_ring[(tail + sizeof h + i) % WK_CAP_RING];
        n += (uint32_t)(sizeof h + h.caplen);
        tail += need;
    }
    VR_STORE_REL(&w->cap_tail, tail);
    return n;
}
