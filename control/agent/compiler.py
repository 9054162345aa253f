"""The compiler: validated intent -> the desired state of every node. A pure function of the intent and
the previous allocations (no I/O); the agent diffs its result against what each node has.

Reachability (CN2's semantics, ARCHITECTURE.md §6): every virtual network (VN) is a VRF, isolated by
default. ``leaks(intent)`` gives, for each VN, the VNs whose routes its VRF receives:

* a **mesh** VirtualNetworkRouter's member VNs receive each other's routes;
* a VNR that **imports** another VNR gives its members the routes of the imported VNR's members. A mesh
  VNR imports mesh VNRs, a hub imports spokes, a spoke imports hubs; any other import (a spoke importing
  a spoke, a hub a hub, a mesh a hub) is ignored with a warning: spokes never reach each other, and the
  members of one hub (or one spoke) VNR do not reach each other through it;
* a VN in several VNRs (hybrid) receives the union.

Routes are host routes (/32, /128) of every pod interface: in VRF(a) on node N, those of a's interfaces
and of the interfaces of the VNs leaked into a; local ones point to the interface next hop of their vif,
remote ones to a tunnel next hop to the pod's node: VXLAN with the VNI of the pod's VN (the receiving
node's VNI table selects the VRF holding the host route), or MPLSoUDP with the label the receiving node
maps to the pod's interface next hop. A leaked route never replaces one of the VRF's own VN; two leaked
VNs with the same address: the first VN in key order wins and a warning says so.

A pod's first interface (its pod network) has the default routes; each further interface gets routes to
the subnets of the VNs leaked into its VN, via its gateway (like DHCP's classless static routes).

NetworkPolicy (Kubernetes semantics) becomes each selected pod's vif rule list: a pod selected by a
policy with type Ingress accepts only what some ingress rule of its selecting policies allows (rules on
the vrouter's "egress" direction, i.e. towards the vif), Egress likewise (the vrouter's "ingress", from
the vif); the list ends with a deny of that direction, its default is pass, and flows are stateful so
replies pass. Peers: pod selectors (the policy's namespace, or the namespaces a namespaceSelector picks),
ipBlock minus its excepts. A policy applies to every interface of a selected pod, and a selected peer
pod contributes every address it has.

Identifiers that must stay stable across agent restarts (VRF ids, auto VNIs, addresses, vif ids, next-hop
ids, labels) come from ``Allocations``, which the agent saves as JSON. An object keeps its id while it
exists; an id freed is not handed out again until the range wraps (a recycled id never meets a stale
object of the same id on a node).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

from control.agent.intent import (AUTO_ASN, AUTO_RT_BASE, IPAddress, Intent, IntentError, Key, LabelSelector, Pod,
                                  Subnet, match_labels)
from control.node.state import NodeState  # noqa: F401 - one node's desired tables (control/node/state.py)

ROUTER_MAC = "00:00:5e:00:01:00"     # the gateway MAC every pod sees (the vrouter's default router_mac)
FABRIC_VIF = 0
VRF_RANGE = (1, 65535)
VNI_RANGE = (0x10000, (1 << 24) - 1)  # automatic VNIs, above the ones people usually write by hand
VIF_RANGE = (1, 4095)
NH_RANGE = (1000, (1 << 24) - 1)      # below 1000: left to the node's static configuration
LABEL_RANGE = (1000, (1 << 20) - 1)
RT_RANGE = (AUTO_RT_BASE + 65536, AUTO_RT_BASE + 2 * 65536 - 1)   # VNRs' automatic targets (VNs': base + VRF id)
FABRIC_VRF = 0                        # the fabric vif's VRF: host routes of local fabric-forwarding pods
VIF_PREFIXES_MAX = 8                  # a vif's allowed sources (control protocol)
ENCAPS = ("vxlan", "mplsoudp")
IMPORTS_OK = {("mesh", "mesh"), ("hub", "spoke"), ("spoke", "hub")}


def key_str(k: Key) -> str:
    return f"{k[0]}/{k[1]}"


# ---------------------------------------------------------------------------------------------- allocation

class Pool:
    """Stable ids for string keys in [lo, hi]: a key keeps its id; new keys take the next free id after
    the last one handed out (wrapping), so a freed id is reused as late as possible."""

    def __init__(self, lo: int, hi: int, ids: dict[str, int] | None = None, nxt: int | None = None):
        self.lo, self.hi = lo, hi
        self.ids = {k: v for k, v in (ids or {}).items() if lo <= v <= hi}
        self.next = nxt if nxt is not None and lo <= nxt <= hi else lo
        self.used: set[str] = set()
        self.taken = set(self.ids.values())

    def get(self, key: str, reserved: set[int] = frozenset()) -> int:
        self.used.add(key)
        got = self.ids.get(key)
        if got is not None and got not in reserved:
            return got
        if got is not None:
            self.taken.discard(got)
        span = self.hi - self.lo + 1
        for i in range(span):
            cand = self.lo + (self.next - self.lo + i) % span
            if cand not in self.taken and cand not in reserved:
                self.ids[key] = cand
                self.taken.add(cand)
                self.next = self.lo + (cand - self.lo + 1) % span
                return cand
        raise IntentError(f"no free id left in {self.lo}..{self.hi} for {key}")

    def release_unused(self) -> None:
        for k in [k for k in self.ids if k not in self.used]:
            self.taken.discard(self.ids.pop(k))
        self.used = set()

    def to_json(self) -> dict:
        return {"next": self.next, "ids": dict(sorted(self.ids.items()))}


@dataclass
class Allocations:
    """Everything allocated, by key; ``to_json``/``from_json`` round-trip it for the agent's state file."""
    vrf: Pool = field(default_factory=lambda: Pool(*VRF_RANGE))
    vni: Pool = field(default_factory=lambda: Pool(*VNI_RANGE))
    addresses: dict[str, dict[str, str]] = field(default_factory=dict)   # subnet -> owner -> address
    vif: dict[str, Pool] = field(default_factory=dict)                   # node -> pool
    nh: dict[str, Pool] = field(default_factory=dict)
    label: dict[str, Pool] = field(default_factory=dict)
    rt: Pool = field(default_factory=lambda: Pool(*RT_RANGE))           # VNR -> automatic route target number

    def node_pool(self, kind: str, node: str) -> Pool:
        pools = getattr(self, kind)
        if node not in pools:
            pools[node] = Pool(*{"vif": VIF_RANGE, "nh": NH_RANGE, "label": LABEL_RANGE}[kind])
        return pools[node]

    def to_json(self) -> dict:
        return {"version": 1, "vrf": self.vrf.to_json(), "vni": self.vni.to_json(), "rt": self.rt.to_json(),
                "addresses": {s: dict(sorted(a.items())) for s, a in sorted(self.addresses.items())},
                **{k: {n: p.to_json() for n, p in sorted(getattr(self, k).items())} for k in ("vif", "nh", "label")}}

    @classmethod
    def from_json(cls, d: dict) -> "Allocations":
        if not isinstance(d, dict) or d.get("version") != 1:
            raise ValueError("not an allocation state of version 1")

        def pool(x, rng):
            return Pool(*rng, {str(k): int(v) for k, v in x.get("ids", {}).items()}, x.get("next"))
        a = cls(pool(d.get("vrf", {}), VRF_RANGE), pool(d.get("vni", {}), VNI_RANGE),
                {str(s): {str(o): str(ip) for o, ip in m.items()} for s, m in d.get("addresses", {}).items()})
        for kind, rng in (("vif", VIF_RANGE), ("nh", NH_RANGE), ("label", LABEL_RANGE)):
            getattr(a, kind).update({str(n): pool(x, rng) for n, x in d.get(kind, {}).items()})
        a.rt = pool(d.get("rt", {}), RT_RANGE)        # absent in states written before route targets
        return a

    def copy(self) -> "Allocations":
        return Allocations.from_json(json.loads(json.dumps(self.to_json())))


# ---------------------------------------------------------------------------------------------- results

@dataclass
class PodInterface:
    pod: Key
    index: int                  # 0: the pod network (eth0), then the annotation's networks
    vn: Key
    node: str
    vif: int
    ifname: str                 # the device's name: eth0, eth1, ... in the pod's namespace; vif<id> without one
    mac: str                    # the pod's MAC on it
    netns: str | None
    addresses: list[IPAddress]
    prefixlens: list[int]       # of each address's subnet

    @property
    def owner(self) -> str:
        return f"{key_str(self.pod)}#{self.index}"


@dataclass
class Cluster:
    nodes: dict[str, NodeState]
    interfaces: list[PodInterface]
    vrf_ids: dict[Key, int]             # VN -> its VRF id (the same on every node)
    vnis: dict[Key, int]                # VN -> VNI
    leaks: dict[Key, set[Key]]          # VN -> the VNs whose routes its VRF receives
    alloc: Allocations
    warnings: list[str]
    route_targets: dict[Key, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    #                                   VN -> (import targets, export targets), sorted, "target:64512:N"
    static_routes: dict[Key, dict[str, list["PodInterface"]]] = field(default_factory=dict)
    #                                   VN -> its RouteTables' prefixes -> the interfaces they resolve to

    def interfaces_of(self, pod: Key) -> list[PodInterface]:
        return [i for i in self.interfaces if i.pod == pod]


# ---------------------------------------------------------------------------------------------- reachability

RT = tuple   # a symbolic route target: ("vn", key) / ("vnr", key) automatic, ("rt", "target:..") explicit


def symbolic_targets(intent: Intent, warnings: list[str] | None = None) -> dict[Key, tuple[set[RT], set[RT]]]:
    """VN -> (import targets, export targets), the one route-target model for VNRs and explicit targets:

    * every VN imports and exports its own automatic target (its routes stay in it);
    * a VNR has a target (spec.routeTarget, else automatic) that every member VN exports; a **mesh** VNR's
      members import it too; a VNR that **imports** another VNR gives its members the imported VNR's target as
      an import — honoured for mesh<-mesh, hub<-spoke, spoke<-hub only (any other is ignored with a warning);
      so spokes never import a spoke's target and the members of one hub (or spoke) VNR never each other's;
    * routeTargetList adds to both sets, importRouteTargetList / exportRouteTargetList to one.

    A VN receives another's routes iff exports(other) & imports(vn) (``leaks``)."""
    def vnr_rt(r) -> RT:
        return ("rt", r.route_target) if r.route_target else ("vnr", r.key)

    out: dict[Key, tuple[set[RT], set[RT]]] = {}
    for k, vn in intent.virtual_networks.items():
        rts = vn.route_targets
        out[k] = ({("vn", k)} | {("rt", t) for t in rts.import_set}, {("vn", k)} | {("rt", t) for t in rts.export_set})
    for k, r in intent.virtual_network_routers.items():
        members = [vn.key for vn in intent.vnr_members(r)]
        for m in members:
            out[m][1].add(vnr_rt(r))
            if r.type == "mesh":
                out[m][0].add(vnr_rt(r))
        for imp in intent.vnr_imports(r):
            if (r.type, imp.type) in IMPORTS_OK:
                for m in members:
                    out[m][0].add(vnr_rt(imp))
            elif warnings is not None:
                warnings.append(f"VirtualNetworkRouter {key_str(k)} ({r.type}) imports {key_str(imp.key)} "
                                f"({imp.type}): ignored (a mesh imports meshes, a hub spokes, a spoke hubs)")
    return out


def leaks_from(targets: dict[Key, tuple[set, set]]) -> dict[Key, set[Key]]:
    """VN -> the other VNs whose routes it receives: those exporting a target it imports."""
    exporters: dict = {}
    for k, (_, exp) in targets.items():
        for t in exp:
            exporters.setdefault(t, set()).add(k)
    return {k: {b for t in imp for b in exporters.get(t, ())} - {k} for k, (imp, _) in targets.items()}


def leaks(intent: Intent, warnings: list[str] | None = None) -> dict[Key, set[Key]]:
    """VN -> the VNs whose routes it receives (never itself), per the route-target model above."""
    return leaks_from(symbolic_targets(intent, warnings))


def target_names(intent: Intent, targets: dict[Key, tuple[set, set]], vrf_ids: dict[Key, int],
                 alloc: "Allocations") -> dict[Key, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The symbolic targets written as BGP will carry them: a VN's own target:64512:<8000000 + its VRF id>,
    a VNR's target:64512:<allocated>, explicit ones as given."""
    def name(t: RT) -> str:
        if t[0] == "rt":
            return t[1]
        if t[0] == "vn":
            return f"target:{AUTO_ASN}:{AUTO_RT_BASE + vrf_ids[t[1]]}"
        return f"target:{AUTO_ASN}:{alloc.rt.get(key_str(t[1]))}"
    for k in sorted(intent.virtual_network_routers):       # ids in key order, as VRFs
        if not intent.virtual_network_routers[k].route_target:
            alloc.rt.get(key_str(k))
    alloc.rt.release_unused()
    return {k: (tuple(sorted(map(name, imp))), tuple(sorted(map(name, exp)))) for k, (imp, exp) in targets.items()}


# ---------------------------------------------------------------------------------------------- IPAM

def _pool_ranges(sub: Subnet) -> list[tuple[int, int]]:
    net = sub.cidr
    if sub.ranges:
        return [(int(r.first), int(r.last)) for ar in sub.ranges for r in ar.ip_ranges]
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.num_addresses > 2:
        first += 1
        if net.version == 4:
            last -= 1
    return [(first, last)]


def _assign(intent: Intent, alloc: Allocations, ifaces: list[tuple[Pod, int, Key]]) -> dict[tuple[Key, int], list]:
    """(pod, index) -> [(address, subnet)] for every interface: fixed addresses first, then the previous
    allocation when still valid, then the lowest free address of the subnet's ranges."""
    out: dict[tuple[Key, int], list] = {}
    taken: dict[str, dict[int, str]] = {}        # subnet -> address int -> owner
    new_addr: dict[str, dict[str, str]] = {}
    pending = []
    for pod, idx, vk in ifaces:
        owner = f"{key_str(pod.key)}#{idx}"
        for sub in intent.vn_subnets(intent.virtual_networks[vk]):
            sk = key_str(sub.key)
            t = taken.setdefault(sk, {})
            if sub.default_gateway is not None:
                t[int(sub.default_gateway)] = "(gateway)"
            fx = [ip for ip in pod.iface_ips.get(idx, []) if ip.version == sub.cidr.version]
            if fx:
                t[int(fx[0])] = owner
                new_addr.setdefault(sk, {})[owner] = str(fx[0])
                out.setdefault((pod.key, idx), []).append((fx[0], sub))
            else:
                pending.append((pod, idx, sub, owner))
    for pod, idx, sub, owner in pending:          # previous allocations that still hold
        sk = key_str(sub.key)
        prev = alloc.addresses.get(sk, {}).get(owner)
        if prev is None:
            continue
        try:
            ip = ipaddress.ip_address(prev)
        except ValueError:
            continue
        n = int(ip)
        if ip.version == sub.cidr.version and any(lo <= n <= hi for lo, hi in _pool_ranges(sub)) and \
                n not in taken[sk]:
            taken[sk][n] = owner
            new_addr.setdefault(sk, {})[owner] = prev
    for pod, idx, sub, owner in pending:
        sk = key_str(sub.key)
        got = new_addr.get(sk, {}).get(owner)
        if got is None:
            t = taken[sk]
            for lo, hi in _pool_ranges(sub):
                n = lo
                while n <= hi and n in t:
                    n += 1
                if n <= hi:
                    break
            else:
                raise pod.source.error(None, f"subnet {key_str(sub.key)} ({sub.cidr}) has no free address left")
            t[n] = owner
            got = str(ipaddress.ip_address(n))
            new_addr.setdefault(sk, {})[owner] = got
        out.setdefault((pod.key, idx), []).append((ipaddress.ip_address(got), sub))
    alloc.addresses = new_addr
    for k in out:
        out[k].sort(key=lambda x: x[0].version)
    return out


# ---------------------------------------------------------------------------------------------- policies

def _peer_pods(intent: Intent, policy_ns: str, pod_sel: LabelSelector | None,
               ns_sel: LabelSelector | None) -> list[Pod]:
    """A peer's pods (Kubernetes): absent namespaceSelector, the policy's own namespace; absent podSelector
    (beside a namespaceSelector), every pod of those namespaces (match_labels(None, ...) is True)."""
    spaces = {policy_ns} if ns_sel is None else set(intent.select_namespaces(ns_sel))
    return [p for p in intent.pods.values() if p.namespace in spaces and match_labels(pod_sel, p.labels)]


def _peer_prefixes(intent: Intent, addrs: dict[Key, list[IPAddress]], policy_ns: str, peer) -> list[str]:
    if peer.ip_block is not None:
        nets = [peer.ip_block.cidr]
        for ex in peer.ip_block.excepts:
            nxt = []
            for n in nets:
                if n.version == ex.version and ex.subnet_of(n):
                    nxt.extend(n.address_exclude(ex))
                elif n.version == ex.version and n.subnet_of(ex):
                    continue
                else:
                    nxt.append(n)
            nets = nxt
        return [str(n) for n in sorted(nets, key=lambda n: (n.version, n))]
    pods = _peer_pods(intent, policy_ns, peer.pod_selector, peer.namespace_selector)
    return [f"{ip}/{ip.max_prefixlen}" for p in pods for ip in addrs.get(p.key, [])]


def _port_specs(rule) -> list[tuple]:
    if not rule.ports:
        return [("any", "any")]
    out = []
    for p in rule.ports:
        proto = {"TCP": "tcp", "UDP": "udp", "SCTP": 132}[p.protocol]
        dport = "any" if p.port is None else p.port if p.end_port is None else [p.port, p.end_port]
        out.append((proto, dport))
    return out


_TYPES = (("Ingress", "ingress", "egress", "src"), ("Egress", "egress", "ingress", "dst"))


def _policy_rules(intent: Intent, np_, attr: str, vr_dir: str, peer_field: str, addrs) -> list[dict]:
    """The pass rules one NetworkPolicy's ingress (or egress) list gives."""
    rules = []
    for rule in getattr(np_, attr):
        peers = ["any"] if not rule.peers else \
            [x for peer in rule.peers for x in _peer_prefixes(intent, addrs, np_.namespace, peer)]
        for prefix in dict.fromkeys(peers):
            for proto, dport in _port_specs(rule):
                rules.append({peer_field: prefix, "proto": proto, "dport": dport, "direction": vr_dir,
                              "action": "pass"})
    return rules


def pod_policy(intent: Intent, pod: Pod, addrs: dict[Key, list[IPAddress]],
               cache: dict | None = None) -> list[dict] | None:
    """The rule list for every vif of ``pod`` (None: no policy selects it). Rules are vrouter.policy
    dicts without ids. ``cache`` (one dict per compile) keeps each policy's rules across pods."""
    sel = [np_ for np_ in intent.network_policies.values()
           if np_.namespace == pod.namespace and match_labels(np_.pod_selector, pod.labels)]
    if not sel:
        return None
    cache = {} if cache is None else cache
    rules: list[dict] = []
    for ptype, attr, vr_dir, peer_field in _TYPES:
        isolating = [np_ for np_ in sel if ptype in np_.policy_types]
        if not isolating:
            continue
        for np_ in isolating:
            key = (np_.key, attr)
            if key not in cache:
                cache[key] = _policy_rules(intent, np_, attr, vr_dir, peer_field, addrs)
            rules += cache[key]
        rules.append({"direction": vr_dir, "action": "deny"})
    return rules


# ---------------------------------------------------------------------------------------------- compile

def _mac(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def compile_cluster(intent: Intent, alloc: Allocations | None = None, *, encap: str = "vxlan",
                    netns_format: str | None = "{namespace}-{name}", mtu: int = 1450,
                    router_mac: str = ROUTER_MAC) -> Cluster:
    """The desired state of every node. ``alloc`` (copied, never changed) is the previous allocation;
    the result's ``alloc`` is the new one. ``netns_format`` names a pod's network namespace (None: the
    pod's devices stay in the node's namespace)."""
    if encap not in ENCAPS:
        raise ValueError(f"encap must be one of {', '.join(ENCAPS)}, not {encap!r}")
    alloc = Allocations() if alloc is None else alloc.copy()
    warnings: list[str] = []
    sym = symbolic_targets(intent, warnings)
    lk = leaks_from(sym)

    vns = sorted(intent.virtual_networks)
    explicit_vnis = {vn.vni for vn in intent.virtual_networks.values() if vn.vni is not None}
    vnis = {}
    for k in vns:
        vn = intent.virtual_networks[k]
        vnis[k] = vn.vni if vn.vni is not None else alloc.vni.get(key_str(k), explicit_vnis)
    vrf_ids = {k: alloc.vrf.get(key_str(k)) for k in vns}
    alloc.vrf.release_unused()
    alloc.vni.release_unused()
    rt_names = target_names(intent, sym, vrf_ids, alloc)

    pods = [intent.pods[k] for k in sorted(intent.pods)]
    ifaces = [(p, i, vk) for p in pods for i, vk in enumerate(p.interfaces)]
    assigned = _assign(intent, alloc, ifaces)

    nodes = {n: NodeState(n, node.control) for n, node in sorted(intent.nodes.items())}
    interfaces: list[PodInterface] = []
    netns_of: dict[str, Pod] = {}
    for p, i, vk in ifaces:
        got = assigned[(p.key, i)]
        netns = netns_format.format(namespace=p.namespace, name=p.name) if netns_format else None
        if netns is not None and netns_of.setdefault(netns, p) is not p:
            other = netns_of[netns]
            raise p.source.error("metadata.name", f"its network namespace {netns!r} is Pod "
                                 f"{key_str(other.key)}'s too (namespace format {netns_format!r})")
        # one vif per pod interface: its network or addresses changing replace its device (vif_update)
        vif = alloc.node_pool("vif", p.node).get(f"{key_str(p.key)}#{i}")
        # in its own namespace a device is eth<i> (as Kubernetes names them) or the name the annotation
        # gives; in the node's, vif<id>
        ifname = p.ifnames.get(i, f"eth{i}") if netns is not None else f"vif{vif}"
        interfaces.append(PodInterface(p.key, i, vk, p.node, vif, ifname,
                                       p.macs.get(i) or _mac(p.namespace, p.name, str(i)),
                                       netns, [a for a, _ in got], [s.cidr.prefixlen for _, s in got]))
    addrs: dict[Key, list[IPAddress]] = {}
    for itf in interfaces:
        addrs.setdefault(itf.pod, []).extend(itf.addresses)

    # per node: VRFs, vifs, interface next hops, labels
    local_nh: dict[tuple[str, int], int] = {}
    labels: dict[tuple[str, int], int] = {}
    by_vn: dict[Key, list[PodInterface]] = {}
    for itf in interfaces:
        by_vn.setdefault(itf.vn, []).append(itf)
    pol_cache: dict = {}
    policies = {p.key: pod_policy(intent, p, addrs, pol_cache) for p in pods}
    own_subnets: dict[Key, list] = {}      # a pod's connected subnets: no RouteTable prefix over them
    for itf in interfaces:
        own_subnets.setdefault(itf.pod, []).extend(
            s.cidr for s in intent.vn_subnets(intent.virtual_networks[itf.vn]))
    for itf in interfaces:
        st = nodes[itf.node]
        vn = intent.virtual_networks[itf.vn]
        subs = {s.cidr.version: s for s in intent.vn_subnets(vn)}
        vrf = vrf_ids[itf.vn]
        st.vrfs[vrf] = {"vrf": vrf, "name": (vn.display_name or key_str(itf.vn))[:64]}
        st.vnis[vnis[itf.vn]] = {"vni": vnis[itf.vn], "vrf": vrf}
        tap = {"name": itf.ifname, "netns": itf.netns, "pod_mac": itf.mac, "default_route": itf.index == 0,
               "routes": []}
        gw = {}
        for a, plen in zip(itf.addresses, itf.prefixlens):
            tap["ip" if a.version == 4 else "ip6"] = f"{a}/{plen}"
            g = subs[a.version].default_gateway
            if g is not None:
                gw[a.version] = str(g)
        if itf.index > 0:   # routes to the leaked networks' subnets and the RouteTables' prefixes through it
            tap["routes"] = sorted({str(s.cidr) for other in sorted(lk[itf.vn])
                                    for s in intent.vn_subnets(intent.virtual_networks[other])
                                    if s.cidr.version in gw} |
                                   {str(r.prefix) for r in _table_routes(intent, [itf.vn] + sorted(lk[itf.vn]))
                                    if r.prefix.version in gw and not any(
                                        r.prefix.overlaps(n) for n in own_subnets[itf.pod]
                                        if n.version == r.prefix.version)},
                                   key=lambda c: (":" in c, c))
        pol = policies[itf.pod]
        st.vifs[itf.vif] = {"id": itf.vif, "kind": "virtual", "vrf": vrf, "mac": router_mac, "mtu": mtu,
                            "policy": pol is not None, "gw4": gw.get(4), "gw6": gw.get(6),
                            "prefixes": [f"{a}/{a.max_prefixlen}" for a in itf.addresses], "tap": tap}
        nh = alloc.node_pool("nh", itf.node).get(f"vif:{itf.vif}")
        local_nh[(itf.node, itf.vif)] = nh
        st.nhs[nh] = {"id": nh, "type": "interface", "vif": itf.vif, "dmac": itf.mac}
        if encap == "mplsoudp":
            lab = alloc.node_pool("label", itf.node).get(f"vif:{itf.vif}")
            labels[(itf.node, itf.vif)] = lab
            st.labels[lab] = {"label": lab, "nh": nh}
        if pol is not None:
            st.policies[itf.vif] = {"kind": "vif", "id": itf.vif, "default": "pass",
                                    "rules": [{"id": n, **r} for n, r in enumerate(pol, 1)]}

    # routes: each VRF gets its VN's routes, then those of the VNs leaked into it (host routes first, then
    # the RouteTables' prefixes); a route never replaces one already there
    host = {(itf.node, itf.vif): [f"{a}/{a.max_prefixlen}" for a in itf.addresses] for itf in interfaces}
    statics = _static_routes(intent, by_vn, lk, warnings)
    allowed = _allowed_sources(intent, interfaces, statics)
    for itf in interfaces:
        extra = [p for p in allowed.get((itf.node, itf.vif), []) if p not in nodes[itf.node].vifs[itf.vif]["prefixes"]]
        if extra:
            vif = nodes[itf.node].vifs[itf.vif]
            vif["prefixes"] = vif["prefixes"] + extra
            if len(vif["prefixes"]) > VIF_PREFIXES_MAX:
                raise intent.pods[itf.pod].source.error(
                    None, f"interface {itf.ifname} would send from {len(vif['prefixes'])} prefixes (its addresses "
                    f"and the RouteTable prefixes routed to it); a vif allows {VIF_PREFIXES_MAX}")
    ff = {k for k, vn in intent.virtual_networks.items() if vn.fabric_forwarding}
    tunnels: dict[tuple, int] = {}

    def nh_to(st, me, y, plain: bool = True) -> int:
        if y.node == st.name:
            return local_nh[(st.name, y.vif)]
        if plain and y.vn in ff:  # a fabric-forwarding pod is reached as plain IP on the underlay
            return _fabric_nh(st, intent.nodes[y.node], alloc)
        tk = (st.name, y.node, vnis[y.vn] if encap == "vxlan" else labels[(y.node, y.vif)])
        nh = tunnels.get(tk)
        if nh is None:
            nh = tunnels[tk] = _tunnel(st, me, intent.nodes[y.node], alloc, encap, vnis[y.vn],
                                       labels.get((y.node, y.vif)))
        return nh

    for st in nodes.values():
        me = intent.nodes[st.name]
        for vk in [k for k in vns if vrf_ids[k] in st.vrfs]:
            vrf = vrf_ids[vk]
            table: dict[str, int] = {}
            owner: dict[str, Key] = {}
            sources = [vk] + sorted(lk[vk])
            for src_vn in sources:
                for y in by_vn.get(src_vn, []):
                    nh = nh_to(st, me, y)
                    for prefix in host[(y.node, y.vif)]:
                        if prefix in table:
                            if owner[prefix] != src_vn:
                                warnings.append(f"{prefix} of {key_str(src_vn)} is not leaked into "
                                                f"{key_str(vk)}: {key_str(owner[prefix])} has it")
                            continue
                        table[prefix] = nh
                        owner[prefix] = src_vn
            for src_vn in sources:
                for prefix, ys in statics.get(src_vn, {}).items():
                    if prefix in table or not ys:
                        continue
                    # local members first (the VNI's VRF at the far end resolves the prefix again, to
                    # its own local members); remote ones through a tunnel to their network's VRF
                    local = [y for y in ys if y.node == st.name]
                    table[prefix] = _group(st, alloc, sorted({nh_to(st, me, y, False) for y in local or ys}))
                    owner[prefix] = src_vn
            if vk in ff:
                gw = me.fabric_gateway_mac
                if gw is None:
                    warnings.append(f"{key_str(vk)} forwards on the fabric, but Node {st.name} has no "
                                    f"spec.fabricGatewayMac: its pods there reach nothing beyond the network")
                else:
                    nh = _fabric_nh(st, None, alloc, gw)
                    for fam in sorted({s.cidr.version for s in intent.vn_subnets(intent.virtual_networks[vk])}):
                        table.setdefault("0.0.0.0/0" if fam == 4 else "::/0", nh)
            for prefix, nh in table.items():
                st.routes.setdefault((vrf, 6 if ":" in prefix else 4), {})[prefix] = nh
        # the fabric VRF: plain IP from the underlay to a local fabric-forwarding pod
        local_ff = [itf for itf in interfaces if itf.node == st.name and itf.vn in ff]
        if local_ff:
            st.vrfs[FABRIC_VRF] = {"vrf": FABRIC_VRF, "name": "fabric"}
            for itf in local_ff:
                for prefix in host[(itf.node, itf.vif)]:
                    st.routes.setdefault((FABRIC_VRF, 6 if ":" in prefix else 4), {})[prefix] = \
                        local_nh[(st.name, itf.vif)]
    for pools in (alloc.vif, alloc.nh, alloc.label):
        for n in list(pools):
            if n not in intent.nodes:
                del pools[n]
            else:
                pools[n].release_unused()
    return Cluster(nodes, interfaces, vrf_ids, vnis, lk, alloc, list(dict.fromkeys(warnings)), rt_names, statics)


def _table_routes(intent: Intent, vns: list[Key]) -> list:
    """The routes of the RouteTables the VNs reference."""
    return [r for vk in vns for ref in intent.virtual_networks[vk].route_tables
            for r in intent.route_tables[ref].routes]


def _static_routes(intent: Intent, by_vn: dict[Key, list[PodInterface]], lk: dict[Key, set[Key]],
                   warnings: list[str]) -> dict[Key, dict[str, list[PodInterface]]]:
    """VN -> prefix -> the interfaces its RouteTables' next hops resolve to: the interface of the VN holding
    the next-hop address. Several routes for one prefix (one table or several) make an ECMP group of their
    next hops; a next hop that no interface holds (its pod gone) is left out, and the prefix withdrawn when
    none is left."""
    out: dict[Key, dict[str, list[PodInterface]]] = {}
    for vk, vn in sorted(intent.virtual_networks.items()):
        if not vn.route_tables:
            continue
        addr: dict = {}
        for itf in by_vn.get(vk, []):
            for a in itf.addresses:
                addr.setdefault(a, itf)
        want: dict[str, list] = {}
        for ref in vn.route_tables:
            for r in intent.route_tables[ref].routes:
                want.setdefault(str(r.prefix), []).append(r.next_hop)
        got = {}
        for prefix, hops in want.items():
            ys = []
            for h in dict.fromkeys(hops):
                y = addr.get(h)
                if y is None:
                    warnings.append(f"{key_str(vk)}: static route {prefix} via {h}: no interface has {h} "
                                    f"(route left out)" if len(set(hops)) == 1 else
                                    f"{key_str(vk)}: static route {prefix}: next hop {h} has no interface")
                elif y not in ys:
                    ys.append(y)
            got[prefix] = ys
        out[vk] = got
    return out


def _allowed_sources(intent: Intent, interfaces: list[PodInterface], statics) -> dict[tuple[str, int], list[str]]:
    """(node, vif) -> prefixes it may send from beyond its addresses (reverse-path check): the RouteTable
    prefixes routed to it; everything when its network has rpf: disable."""
    out: dict[tuple[str, int], list[str]] = {}
    for vk, table in sorted(statics.items()):
        for prefix, ys in table.items():
            for y in ys:
                lst = out.setdefault((y.node, y.vif), [])
                if prefix not in lst:
                    lst.append(prefix)
    for itf in interfaces:
        if not intent.virtual_networks[itf.vn].rpf:
            out[(itf.node, itf.vif)] = ["0.0.0.0/0", "::/0"]
    return out


def _group(st: NodeState, alloc: Allocations, members: list[int]) -> int:
    """One next hop, or the ECMP group of several (one per member set and node)."""
    if len(members) == 1:
        return members[0]
    nh = alloc.node_pool("nh", st.name).get("ecmp:" + ",".join(map(str, members)))
    st.nhs[nh] = {"id": nh, "type": "ecmp", "members": list(members)}
    return nh


def _fabric_nh(st: NodeState, peer, alloc: Allocations, mac: str | None = None) -> int:
    """Plain IP out of the fabric vif: to ``peer``'s fabric MAC (a remote fabric-forwarding pod), or to
    ``mac`` (the underlay gateway). No encapsulation."""
    if peer is not None:
        if peer.fabric_mac is None:
            raise peer.source.error("spec.fabricMac", f"needed: node {st.name} forwards to its pods on the fabric")
        mac = peer.fabric_mac
    nh = alloc.node_pool("nh", st.name).get(f"fabric:{mac}")
    st.nhs[nh] = {"id": nh, "type": "interface", "vif": FABRIC_VIF, "dmac": mac}
    return nh


def _tunnel(st: NodeState, me, peer, alloc: Allocations, encap: str, vni: int, label: int | None) -> int:
    """The tunnel next hop from ``me`` to ``peer`` carrying ``vni`` (VXLAN) or ``label`` (MPLSoUDP)."""
    if peer.fabric_mac is None:
        raise peer.source.error("spec.fabricMac", f"needed: node {me.name} has tunnels to this node")
    if me.fabric_address.version != peer.fabric_address.version:
        raise peer.source.error("spec.fabricAddress", f"IPv{peer.fabric_address.version}, but node {me.name}'s "
                                f"is IPv{me.fabric_address.version}")
    tag = f"vni:{vni}" if encap == "vxlan" else f"label:{label}"
    nh = alloc.node_pool("nh", st.name).get(f"tunnel:{peer.name}:{tag}")
    body = {"id": nh, "type": "tunnel", "vif": FABRIC_VIF, "dmac": peer.fabric_mac, "encap": encap,
            "src": str(me.fabric_address), "dst": str(peer.fabric_address)}
    body.update({"vni": vni} if encap == "vxlan" else {"label": label})
    st.nhs[nh] = body
    return nh

