/* XDP program of the AF_XDP back-end (io_xsk_prog.c loads it): steer the tunnel traffic of
 * the fabric device to the vRouter's XDP sockets, leave everything else to
 * the kernel stack (the node's own SSH, ZeroMQ, BGP, ARP, ICMP ...).
 *
 * Redirected: Ethernet (+ at most one 802.1Q tag), then
 *   - IPv4 with any IHL (5..15), not a fragment (MF clear, offset 0), UDP, or
 *   - IPv6 whose fixed header's next header is UDP (no extension headers),
 * with UDP destination port 4789 (VXLAN, RFC 7348) or 6635 (MPLS-in-UDP,
 * RFC 7510). Such a frame goes to the XDP socket in xsks_map at the receive
 * queue's index; with no socket there bpf_redirect_map falls back to XDP_PASS.
 *
 * Built by setup.py: clang -O2 -g -target bpf -c -> vrouter/bpf/xdp_tunnel.o
 * (-g: libbpf needs the BTF of the map definition).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VXLAN_PORT 4789
#define MPLS_UDP_PORT 6635
#define VLAN_HLEN 4
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);      /* one entry per receive queue */
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

struct vlan_tag {
    __be16 tci;
    __be16 proto;                 /* the encapsulated ethertype */
};

static __always_inline int tunnel_port(const struct udphdr *udp)
{
    return udp->dest == bpf_htons(VXLAN_PORT) || udp->dest == bpf_htons(MPLS_UDP_PORT);
}

SEC("xdp")
int xdp_tunnel(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct udphdr *udp;
    void *l3;
    __be16 proto;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    proto = eth->h_proto;
    l3 = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q)) {
        struct vlan_tag *tag = l3;
        if ((void *)(tag + 1) > data_end)
            return XDP_PASS;
        proto = tag->proto;
        l3 = tag + 1;
    }

    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = l3;
        if ((void *)(ip + 1) > data_end)
            return XDP_PASS;
        if (ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
            return XDP_PASS;
        if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
            return XDP_PASS;      /* a fragment: the kernel reassembles it */
        udp = (void *)ip + ip->ihl * 4;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        if (ip6->nexthdr != IPPROTO_UDP)
            return XDP_PASS;
        udp = (void *)(ip6 + 1);
    } else {
        return XDP_PASS;
    }
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (!tunnel_port(udp))
        return XDP_PASS;
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
