"""What the intent says a connection should do, decided from the intent alone (not from compiled tables):
the demo's "expected" column, compared with what real packets do.

``Expectation(intent, cluster).connect(src_pod, address, proto, port)`` follows the connection the way the
pods and networks are declared to behave:

1. the source pod picks an interface: the one whose subnet holds the address, else a further interface
   whose network receives the routes of a network holding it, else its first interface (default route);
2. in that interface's network, the address belongs to the interface that has it in the network itself,
   else in a network leaked into it (compiler.leaks, CN2's VNR semantics); none: unreachable;
3. the reply must come back: the destination's network must receive the source network's routes
   (the same network, or leaked the other way too);
4. Kubernetes NetworkPolicy: the source pod's egress and the destination pod's ingress must allow it
   (a pod is isolated in a direction once a policy with that type selects it; then some rule of a
   selecting policy must match the peer and the port).

The answer is (pod key or None, reason).

RouteTables (static routes) and router pods: in step 2, an address no interface holds may match a
RouteTable prefix of the network (or of one leaked into it; the longest prefix wins): the packet goes to
the interface of that RouteTable's network holding the route's next hop (ECMP: any of them, all alike
here). That pod answers if the
address is its own (on any interface); otherwise it forwards it only if it is a router (``routers``: the
pods that are the next hop of some static route; the lab turns on their IP forwarding), out of the
interface its own routes pick (step 1), and the walk goes on there. The reply walks back the same way
from the destination to the source's address and must end at the source.

Fabric forwarding: ``from_fabric(address)`` is a host on the fabric (the underlay gateway of every node)
sending plain IP to a pod address: it reaches the pod when the address is on an interface of a network
with fabric forwarding (the node's fabric VRF holds it), and the reply comes back when the pod's
interface towards the host is on such a network and its node has a fabric gateway (the default route).
NetworkPolicy applies with the host as a peer outside the cluster (only an ipBlock can match it).
"""
from __future__ import annotations

import ipaddress

from control.agent.compiler import Cluster, key_str, leaks
from control.agent.intent import Intent, Key, Pod, match_labels


def routers(intent: Intent, cluster: Cluster) -> set[Key]:
    """The pods some static route points at (whatever network it resolves in): they forward."""
    hops = {r.next_hop for rt in intent.route_tables.values() for r in rt.routes}
    return {itf.pod for itf in cluster.interfaces if any(a in hops for a in itf.addresses)}


class Expectation:
    MAX_HOPS = 4

    def __init__(self, intent: Intent, cluster: Cluster):
        self.intent, self.cluster = intent, cluster
        self.leaks = leaks(intent)
        self.by_vn: dict[Key, dict] = {}
        for itf in cluster.interfaces:
            for a in itf.addresses:
                self.by_vn.setdefault(itf.vn, {})[a] = itf
        self.routers = routers(intent, cluster)
        self.ff = {k for k, vn in intent.virtual_networks.items() if vn.fabric_forwarding}

    def _static(self, vn: Key, addr):
        """The interface the longest static-route prefix for ``addr`` in ``vn`` leads to (the network's own
        RouteTables first, then those of the networks leaked into it), or None."""
        best = None
        for src in [vn] + sorted(self.leaks[vn]):
            for ref in self.intent.virtual_networks[src].route_tables:
                for r in self.intent.route_tables[ref].routes:
                    if r.prefix.version == addr.version and addr in r.prefix and (
                            best is None or r.prefix.prefixlen > best[0].prefixlen):
                        hop = self.by_vn.get(src, {}).get(r.next_hop)
                        if hop is not None:
                            best = (r.prefix, hop)
        return None if best is None else best[1]

    def _walk(self, src: Key, addr):
        """(interface that receives a packet from pod ``src`` to ``addr``, its first out interface, why)."""
        out = self._interface_for(src, addr)
        if out is None:
            return None, None, "the pod has no interface"
        first, pod = out, src
        for _ in range(self.MAX_HOPS):
            dst = self._owner(out.vn, addr)
            if dst is not None:
                return dst, first, None
            via = self._static(out.vn, addr)
            if via is None:
                return None, first, f"{addr} is not routed in {key_str(out.vn)}"
            own = next((i for i in self.cluster.interfaces_of(via.pod) if addr in i.addresses), None)
            if own is not None:
                return own, first, None
            if via.pod not in self.routers or via.pod == pod:
                return None, first, f"{key_str(via.pod)} does not forward"
            pod = via.pod
            out = self._interface_for(pod, addr)
        return None, first, "too many hops"

    def _subnets(self, vn: Key):
        return [s.cidr for s in self.intent.vn_subnets(self.intent.virtual_networks[vn])]

    def _interface_for(self, pod: Key, addr):
        itfs = self.cluster.interfaces_of(pod)
        for itf in itfs:
            if any(addr in n for n in self._subnets(itf.vn) if n.version == addr.version):
                return itf
        for itf in itfs[1:]:       # the routes the vrouter gives a further interface (compiler: tap routes)
            if any(addr in n for other in self.leaks[itf.vn] for n in self._subnets(other) if n.version == addr.version):
                return itf
            own = [n for i in itfs for n in self._subnets(i.vn)]
            if any(addr in r.prefix for other in [itf.vn] + sorted(self.leaks[itf.vn])
                   for ref in self.intent.virtual_networks[other].route_tables
                   for r in self.intent.route_tables[ref].routes if r.prefix.version == addr.version
                   and not any(r.prefix.overlaps(n) for n in own if n.version == addr.version)):
                return itf
        return itfs[0] if itfs else None

    def _owner(self, vn: Key, addr):
        got = self.by_vn.get(vn, {}).get(addr)
        if got is not None:
            return got
        for other in sorted(self.leaks[vn]):
            got = self.by_vn.get(other, {}).get(addr)
            if got is not None:
                return got
        return None

    def connect(self, src: Key, address: str, proto: str = "tcp", port: int = 80) -> tuple[Key | None, str]:
        addr = ipaddress.ip_address(address)
        dst, out, why = self._walk(src, addr)
        if dst is None:
            return None, why
        if dst.pod == src:
            return src, "its own address"
        src_addr = next((a for a in out.addresses if a.version == addr.version), None)
        if src_addr is None:
            return None, f"{key_str(out.vn)} has no IPv{addr.version} address for the source"
        back, _, why = self._walk(dst.pod, src_addr)
        if back is None or back.pod != src:
            return None, f"no route back to {key_str(out.vn)}" + (f" ({why})" if why else "")
        why = self._policy(self.intent.pods[src], src_addr, self.intent.pods[dst.pod], addr, proto, port)
        if why:
            return None, why
        return dst.pod, f"via {key_str(out.vn)}" + ("" if dst.vn == out.vn else f" to {key_str(dst.vn)}")

    def from_fabric(self, host: str, address: str, proto: str = "tcp", port: int = 80) -> tuple[Key | None, str]:
        """A host on the fabric (the nodes' gateway) to a pod address, as plain IP."""
        h, addr = ipaddress.ip_address(host), ipaddress.ip_address(address)
        dst = next((i for i in self.cluster.interfaces if addr in i.addresses and i.vn in self.ff), None)
        if dst is None:
            return None, f"{address} is not on a fabric-forwarding network"
        back = self._interface_for(dst.pod, h)
        if back.vn not in self.ff or self.intent.nodes[back.node].fabric_gateway_mac is None:
            return None, f"{key_str(dst.pod)} has no route to the fabric"
        why = self._allowed("Ingress", self.intent.pods[dst.pod], None, h, proto, port)
        if why:
            return None, why
        return dst.pod, f"on the fabric in {key_str(dst.vn)}"

    # -- NetworkPolicy, Kubernetes semantics -----------------------------------------------------------
    def _peer_matches(self, np_ns: str, peer, pod: Pod, addr) -> bool:
        if peer.ip_block is not None:
            b = peer.ip_block
            return addr is not None and addr.version == b.cidr.version and addr in b.cidr and \
                not any(addr.version == e.version and addr in e for e in b.excepts)
        if pod is None:                 # a host outside the cluster: only an ipBlock names it
            return False
        if peer.namespace_selector is None:
            in_ns = pod.namespace == np_ns
        else:
            in_ns = match_labels(peer.namespace_selector, self.intent.namespace_labels(pod.namespace))
        return in_ns and match_labels(peer.pod_selector, pod.labels)

    def _allowed(self, ptype: str, me: Pod, peer: Pod, peer_addr, proto: str, port: int) -> str | None:
        sel = [p for p in self.intent.network_policies.values()
               if p.namespace == me.namespace and match_labels(p.pod_selector, me.labels) and ptype in p.policy_types]
        if not sel:
            return None
        for p in sel:
            for rule in (p.ingress if ptype == "Ingress" else p.egress):
                if rule.peers and not any(self._peer_matches(p.namespace, x, peer, peer_addr) for x in rule.peers):
                    continue
                if rule.ports and not any(pp.protocol.lower() == proto and (pp.port is None or (
                        pp.port <= port <= (pp.end_port or pp.port))) for pp in rule.ports):
                    continue
                return None
        names = ", ".join(key_str(p.key) for p in sel)
        return f"NetworkPolicy {names} ({ptype.lower()} of {key_str(me.key)})"

    def _policy(self, src: Pod, src_addr, dst: Pod, dst_addr, proto, port) -> str | None:
        return self._allowed("Egress", src, dst, dst_addr, proto, port) or \
            self._allowed("Ingress", dst, src, src_addr, proto, port)
