/* Tunnel encapsulation and decapsulation in place: VXLAN (RFC 7348) and
 * MPLS over UDP (RFC 7510), outer IPv4 or IPv6.
 *
 *   VXLAN:    | outer Eth [+802.1Q] | IPv4/IPv6 | UDP dport 4789 | VXLAN 8 | inner Eth | inner IP ...
 *   MPLSoUDP: | outer Eth [+802.1Q] | IPv4/IPv6 | UDP dport 6635 | label 4 | inner IP ...
 *
 *   VXLAN header:  |R|R|R|R|I|R|R|R| reserved (24) | VNI (24) | reserved (8) |
 *   MPLS entry:    | label (20) | TC (3) | S | TTL (8) |
 *
 * The outer header is the TUNNEL next hop's precomputed template (nexthop.h);
 * per packet only lengths, the IPv4 header checksum (from the template's
 * partial sum), the UDP source port and, over IPv6, the UDP checksum are
 * written. Outer IPv4 carries DF and a zero UDP checksum (RFC 7348 5, RFC
 * 7510 3); outer IPv6 a computed one (RFC 8200 8.1: zero is not allowed
 * without RFC 6935 / 6936 support on the receiver).
 *
 * Thread-safety: no state; any thread, one packet per thread at a time.
 */
#ifndef VR_ENCAP_H
#define VR_ENCAP_H

#include <stdint.h>

#include "nexthop.h"
#include "packet.h"
#include "vr_common.h"

#define ENCAP_VXLAN_LEN 8
#define ENCAP_MPLS_LEN 4
#define ENCAP_SPORT_MIN 49152u   /* dynamic port range (RFC 6335), 16384 ports */

/* UDP source port from the inner flow's 32-bit hash (RFC 7348 5: entropy
 * for ECMP in the underlay), in 49152..65535. Its top bits: the low ones pick
 * our own ECMP members. */
static inline uint16_t encap_sport(uint32_t hash)
{
    return (uint16_t)(ENCAP_SPORT_MIN | (hash >> 18));
}

/* Bytes in front of the inner IP packet once encapsulated (VXLAN: with the
 * inner Ethernet header) and how many of them count against the fabric MTU. */
static inline unsigned encap_overhead(const struct nh *nh)
{
    return nh->hdr_len + (nh->s.encap == NH_ENC_VXLAN ? PKT_ETH_LEN : 0u);
}

static inline unsigned encap_mtu_overhead(const struct nh *nh)
{
    return encap_overhead(nh) - nh->l3_off;
}

/* Encapsulate the IP packet at buf + ip_off (ip_len bytes, ethertype of the
 * inner family) with TUNNEL next hop nh: the frame becomes the outer frame
 * (data_off / data_len updated; parser metadata no longer describes it).
 * VXLAN's inner Ethernet header: destination nh->s.inner_dmac, source the
 * fabric MAC. Returns 0, or -1 when the headroom is too small (untouched). */
VR_EXPORT int encap_push(struct pkt *p, const struct nh *nh, unsigned ip_off, unsigned ip_len,
                         uint16_t ethertype, uint16_t sport);

/* Decapsulation: for a parsed outer UDP packet to the tunnel ports, check the
 * tunnel header and return the offset (from the frame start) of what it
 * carries (VXLAN: the inner Ethernet frame; MPLS: the inner IP packet), with
 * the VNI / label in *id; -1 when malformed (VXLAN without the I flag, MPLS
 * not bottom of stack or without an IPv4/IPv6 packet behind, truncated). The
 * payload ends where the UDP length says. *end gets that end. */
VR_EXPORT int encap_vxlan_inner(const struct pkt *p, uint32_t *vni, unsigned *end);
VR_EXPORT int encap_mpls_inner(const struct pkt *p, uint32_t *label, unsigned *end);

#endif
