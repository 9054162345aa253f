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
"""
from __future__ import annotations

import ipaddress

from control.agent.compiler import Cluster, key_str, leaks
from control.agent.intent import Intent, Key, Pod, match_labels


class Expectation:
    def __init__(self, intent: Intent, cluster: Cluster):
        self.intent, self.cluster = intent, cluster
        self.leaks = leaks(intent)
        self.by_vn: dict[Key, dict] = {}
        for itf in cluster.interfaces:
            for a in itf.addresses:
                self.by_vn.setdefault(itf.vn, {})[a] = itf

    def _subnets(self, vn: Key):
        return [s.cidr for s in self.intent.vn_subnets(self.intent.virtual_networks[vn])]

    def _interface_for(self, pod: Key, addr):
        itfs = self.cluster.interfaces_of(pod)
        for itf in itfs:
            if any(addr in n for n in self._subnets(itf.vn) if n.version == addr.version):
                return itf
        for itf in itfs[1:]:
            if any(addr in n for other in self.leaks[itf.vn] for n in self._subnets(other) if n.version == addr.version):
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
        out = self._interface_for(src, addr)
        if out is None:
            return None, "the pod has no interface"
        dst = self._owner(out.vn, addr)
        if dst is None:
            return None, f"{address} is not routed in {key_str(out.vn)}"
        if dst.pod == src:
            return src, "its own address"
        if dst.vn != out.vn and out.vn not in self.leaks[dst.vn]:
            return None, f"{key_str(dst.vn)} has no route back to {key_str(out.vn)}"
        src_addr = next((a for a in out.addresses if a.version == addr.version), None)
        why = self._policy(self.intent.pods[src], src_addr, self.intent.pods[dst.pod], addr, proto, port)
        if why:
            return None, why
        return dst.pod, f"via {key_str(out.vn)}" + ("" if dst.vn == out.vn else f" to {key_str(dst.vn)}")

    # -- NetworkPolicy, Kubernetes semantics -----------------------------------------------------------
    def _peer_matches(self, np_ns: str, peer, pod: Pod, addr) -> bool:
        if peer.ip_block is not None:
            b = peer.ip_block
            return addr is not None and addr.version == b.cidr.version and addr in b.cidr and \
                not any(addr.version == e.version and addr in e for e in b.excepts)
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
