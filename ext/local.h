/* Answers the vrouter builds in place of the frame that asked (ARCHITECTURE
 * section 3, step 4): ARP replies (RFC 826), neighbour advertisements (RFC
 * 4861 4.4), echo replies (RFC 792 / RFC 4443 4.2) and ICMP errors: time
 * exceeded and fragmentation needed (RFC 792, RFC 1191) / ICMPv6 time
 * exceeded and packet too big (RFC 4443 3.2-3.3, RFC 8201); and ARP replies
 * sent back through the VXLAN tunnel the request came in (RFC 7348 4.3).
 *
 * Each takes a parsed frame (struct pkt), rewrites it into the answer that
 * goes back out of the vif it came from, and moves data_off / data_len. The
 * Ethernet header of the answer goes to the asker's MAC from `mac` (the
 * vif's); a tagged frame keeps its tag (echo, ARP, NA), an ICMP error gets
 * the vif's VLAN.
 *
 * Thread-safety: no state; any thread, one packet per thread at a time.
 */
#ifndef VR_LOCAL_H
#define VR_LOCAL_H

#include <stdint.h>

#include "nexthop.h"
#include "packet.h"
#include "vr_common.h"

#define LOCAL_TTL 64                             /* TTL / hop limit of answers */
#define LOCAL_ICMP4_QUOTE_MAX (576 - 20 - 8)    /* RFC 1812 4.3.2.3: answer <= 576 bytes */
#define LOCAL_ICMP6_QUOTE_MAX (1280 - 40 - 8)   /* RFC 4443 2.4(c): answer <= minimum MTU */

enum local_icmp { LOCAL_TIME_EXCEEDED = 1, LOCAL_TOO_BIG = 2 };

/* A parsed ARP request -> the reply "target is at mac". */
VR_EXPORT void local_arp_reply(struct pkt *p, const uint8_t mac[6]);

/* Where the outer headers of a decapsulated tunnel frame were: the frame's
 * data_off / data_len before decapsulation, and its outer IP and UDP header
 * offsets from there. */
struct local_outer {
    unsigned off, len, l3, l4;
    int v4;
};

/* A parsed ARP request that arrived inside VXLAN (a remote VTEP, e.g. a
 * Linux vxlan device, resolving one of our pods) -> the reply, sent back
 * where the request came from: the inner ARP turned into the reply, outer
 * Ethernet to the sender from mac, outer addresses swapped (TTL LOCAL_TTL,
 * checksums redone), and data_off / data_len back to the outer frame. */
VR_EXPORT void local_vxlan_arp_reply(struct pkt *p, const uint8_t mac[6], const struct local_outer *o);

/* A parsed neighbour solicitation -> a solicited advertisement for target
 * (router, solicited, override flags; target link-layer address option).
 * -1 when the buffer cannot hold the 72-byte answer. */
VR_EXPORT int local_nd_advert(struct pkt *p, const uint8_t mac[6], const uint8_t target[16]);

/* A parsed ICMP / ICMPv6 echo request -> the echo reply, from the address
 * it was sent to. */
VR_EXPORT void local_echo_reply(struct pkt *p, const uint8_t mac[6]);

/* May an ICMP error be sent about this parsed IP packet? Not about ICMP
 * errors, non-first fragments, or unspecified / multicast / broadcast
 * sources (RFC 1812 4.3.2.7, RFC 4443 2.4(e)). */
VR_EXPORT int local_icmp_error_allowed(const struct pkt *p);

/* Turn the IP packet into an ICMP error to its sender, from the vif's
 * gateway, quoting as much of it as fits. mtu: the usable MTU for
 * LOCAL_TOO_BIG. Returns 0, -1 when not allowed (see above, or the vif has no
 * gateway of the family), -2 when the headroom is too small. */
VR_EXPORT int local_icmp_error(struct pkt *p, const struct vif *v, int kind, uint32_t mtu);

#endif
