/* The packet pipeline: a burst of frames received on vifs goes in; each frame
 * comes out forwarded on a vif, answered by the vrouter, handed to the host,
 * or dropped with exactly one reason. All in C, in place, no allocation.
 *
 * Per burst (ARCHITECTURE.md section 3):
 *   parse -> classify (ingress vif -> VRF; from the fabric: VXLAN VNI -> VRF,
 *   MPLSoUDP label -> next hop, strip the outer headers; everything else from
 *   the fabric goes to the host) -> local handling (ARP / neighbour
 *   solicitation for the gateway or any routed address, echo to the gateway)
 *   -> flow lookup for the whole burst -> on a miss: route (LPM, one level of
 *   NH_VRF), next hop, ECMP member by flow hash, policy, install the forward
 *   and reverse flow -> TTL, MTU, rewrite or encapsulate.
 *
 * Sources: pipeline.c (the burst driver) and one file per stage, sharing the
 * private pl_priv.h: pl_classify.c, pl_forward.c, pl_trace.c, pl_ctl.c.
 *
 * Buffers. struct pkt (packet.h) describes a frame inside a caller-owned
 * buffer; the pipeline rewrites the frame in place and moves data_off /
 * data_len: encapsulation grows into the headroom (PKT_HEADROOM), answers
 * may grow the frame up to buf_size. The caller transmits pkts[i] on
 * res[i].out_vif when the verdict is FORWARD or REPLY.
 *
 * TTL. A packet routed from a virtual or host vif has its TTL / hop limit
 * decremented once (TTL 1 -> ICMP time exceeded from the vif's gateway).
 * Packets arriving through a tunnel are not decremented again: the overlay
 * between two workloads is one routed hop.
 *
 * MTU. A packet larger than the out vif's MTU (minus the tunnel overhead) is
 * never fragmented here: IPv4 with DF and IPv6 get ICMP fragmentation
 * needed / packet too big with the usable MTU; IPv4 without DF is dropped
 * (too_big). Answers are sent only for packets from a workload (not from the
 * fabric), never about ICMP errors or non-first fragments.
 *
 * Policy (on a flow miss only; the flow caches the decision for the pair).
 * Directions are the vrouter's: POL_DIR_IN ("ingress") = received from the
 * vif, POL_DIR_OUT ("egress") = sent to it.
 * a source vif with VIF_F_POLICY -> pol_eval(key, vif, POL_DIR_IN): its
 * security group, then its VRF's policy; a destination vif (INTERFACE next
 * hop) with VIF_F_POLICY -> its own list with POL_DIR_OUT. A denied first
 * packet installs a drop pair, so the next packets of the flow are dropped
 * by one lookup.
 *
 * Thread-safety: pl_process and pl_trace are reader calls: any number of
 * workers, each with its own worker id (0..nworkers-1, one thread per id at
 * a time), online in the tables' RCU domain. Counters are per worker and
 * summed by the pl_*_stats readers (racy snapshots, never torn: 64-bit
 * aligned words). pl_create/pl_destroy/pl_stats_clear: control thread.
 * pl_trace: the writer (control) thread only: it names the matched route
 * from the writer's RIB.
 */
#ifndef VR_PIPELINE_H
#define VR_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "drop.h"
#include "flow.h"
#include "lpm4.h"
#include "lpm6.h"
#include "nexthop.h"
#include "packet.h"
#include "policy.h"
#include "vr_common.h"

#define PL_MAX_WORKERS FLOW_MAX_WORKERS
#define PL_BURST 64           /* pl_process works in chunks of this */
#define PL_VRF_MAX 65536
#define PL_TRACE_MAX 4096
#define PL_VXLAN_PORT 4789    /* RFC 7348 */
#define PL_MPLSOUDP_PORT 6635 /* RFC 7510 */

enum pl_verdict {
    PL_FORWARD = 0,   /* send on res.out_vif */
    PL_REPLY = 1,     /* answered by the vrouter: send on res.out_vif (the ingress vif) */
    PL_HOST = 2,      /* not for the overlay: give it to the host's stack unchanged */
    PL_DROP = 3,      /* res.reason says why */
};

/* Why a frame was dropped: enum pl_drop, declared in drop.def (the parser's
 * reasons first, with the same numbers as enum pkt_drop); vr_drop_name()
 * names them. */

/* What the vrouter answered (res.reason of a PL_REPLY). */
#define PL_REPLIES(X)                                         \
    X(ARP, "arp_reply")                                       \
    X(NA, "neighbour_advert")                                 \
    X(ECHO, "echo_reply")                                     \
    X(TIME_EXCEEDED, "time_exceeded")                         \
    X(TOO_BIG, "too_big")                                     \
    X(VXLAN_ARP, "vxlan_arp_reply")
enum pl_reply {
#define PL_X(n, s) PL_REPLY_##n,
    PL_REPLIES(PL_X)
#undef PL_X
    PL_REPLY__COUNT
};

VR_EXPORT const char *pl_reply_name(int kind);

struct pl_result {
    uint16_t out_vif;   /* FORWARD / REPLY; VIF_NONE otherwise */
    uint8_t verdict;    /* enum pl_verdict */
    uint8_t reason;     /* DROP: enum pl_drop; REPLY: enum pl_reply; else 0 */
};

struct pl_vif_stats {
    uint64_t rx_packets, rx_bytes;
    uint64_t tx_packets, tx_bytes;
    uint64_t drops;
};

struct pl_vrf_stats {
    uint64_t packets, bytes;   /* routed in this VRF (after decapsulation) */
};

struct pl_stats {
    uint64_t packets;          /* frames handed to pl_process */
    uint64_t forwarded, replies, to_host, dropped;
    uint64_t flow_hits, flow_misses, flow_installs;
    uint64_t encap_vxlan, encap_mpls, decap_vxlan, decap_mpls;
    uint64_t drops[PL_DROP__COUNT];
    uint64_t reply[PL_REPLY__COUNT];
};

struct pipeline;

/* pl_create flags */
#define PL_F_VERIFY_IP4_CSUM 1u   /* verify IPv4 header checksums (no NIC did) */

/* Control thread. The tables must outlive the pipeline. */
VR_EXPORT int pl_create(struct nh_table *nt, struct lpm4 *l4, struct lpm6 *l6, struct flow_table *ft,
                        struct pol_table *pt, int nworkers, unsigned flags, struct pipeline **out);
VR_EXPORT void pl_destroy(struct pipeline *pl);
VR_EXPORT int pl_workers(const struct pipeline *pl);
VR_EXPORT void pl_stats_clear(struct pipeline *pl);

/* Worker: process n frames (any n) in place; res[i] for pkts[i]. `now` in
 * the flow table's time unit (ns). Returns the number forwarded or answered. */
VR_EXPORT uint32_t pl_process(struct pipeline *pl, int worker, struct pkt *pkts, uint32_t n,
                              struct pl_result *res, uint64_t now);

/* One frame, dry run (no flow installed, no counter touched), with every
 * stage's decision written to buf as lines "stage key=value ...\n". The frame
 * is rewritten as pl_process would. Returns the text length. */
VR_EXPORT size_t pl_trace(struct pipeline *pl, struct pkt *p, struct pl_result *res, uint64_t now,
                          char *buf, size_t cap);

/* After routes of VRF vrf changed (vrf < 0: any VRF): delete the flow pairs
 * whose cached next hop is no longer what the routes give, so their next
 * packet is decided afresh (a moved pod, a withdrawn prefix). Writer thread
 * (it reads the route tables between writes); workers keep running. Returns
 * pairs deleted; *examined gets entries looked at. Pairs decided by an MPLS
 * label rather than a route are re-made by their next packet too. */
VR_EXPORT uint32_t pl_flows_revalidate(struct pipeline *pl, int vrf, uint32_t *examined);

/* Readers of the counters (sums over workers). */
VR_EXPORT void pl_read_stats(const struct pipeline *pl, struct pl_stats *out);
VR_EXPORT void pl_read_vif_stats(const struct pipeline *pl, uint16_t vif, struct pl_vif_stats *out);
VR_EXPORT void pl_read_vrf_stats(const struct pipeline *pl, uint16_t vrf, struct pl_vrf_stats *out);

#endif
