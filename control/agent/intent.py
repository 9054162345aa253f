"""CN2-style intent: parsing and validation (no compilation).

Input is YAML (multi-document, ``---`` separated) shaped like Kubernetes / CN2 custom resources, so
manifests written for CN2 load unchanged. Understood documents (anything else is ignored and listed in
``Intent.ignored``; fields the agent does not use are ignored, not errors):

* ``core.contrail.juniper.net/v1alpha1`` or ``/v1``: ``Subnet``, ``VirtualNetwork``, ``VirtualNetworkRouter``
* ``v1``: ``Namespace`` (labels, for namespace selectors; ``core.juniper.net/isolated-namespace: "true"``
  gives the namespace its own pod network), ``Pod``
* ``networking.k8s.io/v1``: ``NetworkPolicy`` (matchLabels selectors only; named ports are refused)
* ``vrouter.io/v1``: ``Node`` (ours: ``spec.fabricAddress``, ``spec.control``, optional ``spec.fabricMac``)

Pods: ``spec.nodeName`` places the pod. Every pod has a primary interface on its namespace's pod network
(``default/default-podnetwork``, or ``<ns>/<ns>-podnetwork`` in an isolated namespace) and, Multus-style,
one more interface per entry of the ``k8s.v1.cni.cncf.io/networks`` annotation (``vn``, ``ns/vn``,
``ns/vn@ifname``, comma-separated, or the JSON list ``[{"name": "vn", "namespace": "ns"}]``; a missing
namespace is the pod's). Our own annotation ``vrouter.io/ip: "10.1.0.5"`` (comma-separated for several)
fixes addresses: each goes to the first annotation network whose subnet contains it, else to the pod
network (an error if none holds it); an address may be fixed once per VN.

Default pod networks: unless the intent defines ``default/default-podnetwork``, it is synthesized with the
subnet ``default/default-podnetwork-v4`` = ``default_pod_cidr`` (10.244.0.0/16). For each isolated
namespace without an explicit ``<ns>-podnetwork`` VN, one is synthesized with subnet ``<ns>-podnetwork-v4``
whose CIDR is the next ``/isolated_prefixlen`` (24) of ``isolated_pool`` (10.245.0.0/16), handed out in the
sorted order of those namespaces. Synthesized VNs/subnets have ``source=None``.

Namespaces need not be declared; every namespace carries the Kubernetes automatic label
``kubernetes.io/metadata.name: <name>``. Keys: namespaced objects are keyed ``(namespace, name)``
(``metadata.namespace`` defaults to ``default``); Namespaces and Nodes are cluster-scoped, keyed by name.

Errors: the first one found raises ``IntentError``, e.g.
``pods.yaml doc 3 (Pod team-a/web-1): spec.nodeName: no node node-9`` (documents are numbered from 1).
"""
from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

CN2_GROUP = "core.contrail.juniper.net"
CN2_VERSIONS = ("v1alpha1", "v1")
ISOLATED_LABEL = "core.juniper.net/isolated-namespace"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
IP_ANNOTATION = "vrouter.io/ip"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_POD_NETWORK = ("default", "default-podnetwork")
VNR_TYPES = ("mesh", "hub", "spoke")
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
VNI_MAX = (1 << 24) - 1
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Key = tuple[str, str]


class IntentError(Exception):
    """The first problem found. ``file``, ``doc`` (1-based), ``kind``, ``namespace`` (None if
    cluster-scoped), ``name``, ``field`` (path such as ``spec.ranges[0].ipRanges[1].from``) and ``msg``;
    any of the location parts may be None when not known."""

    def __init__(self, msg: str, *, file: str | None = None, doc: int | None = None, kind: str | None = None,
                 namespace: str | None = None, name: str | None = None, field: str | None = None):
        self.msg, self.file, self.doc, self.kind = msg, file, doc, kind
        self.namespace, self.name, self.field = namespace, name, field
        super().__init__(str(self))

    def __str__(self):
        where = " ".join(x for x in (self.file, None if self.doc is None else f"doc {self.doc}") if x)
        if self.kind:
            obj = f"{self.namespace}/{self.name}" if self.namespace is not None else (self.name or "?")
            where = f"{where} ({self.kind} {obj})" if where else f"({self.kind} {obj})"
        return ": ".join(x for x in (where, self.field, self.msg) if x)


@dataclass(frozen=True)
class Source:
    """Where an object came from: file name (or the name given to a text), 1-based document index."""
    file: str
    doc: int
    kind: str
    namespace: str | None
    name: str

    def error(self, field: str | None, msg: str) -> IntentError:
        return IntentError(msg, file=self.file, doc=self.doc, kind=self.kind, namespace=self.namespace,
                           name=self.name, field=field)


@dataclass
class Namespace:
    name: str
    labels: dict[str, str]
    isolated: bool
    source: Source | None = None


@dataclass
class IPRange:
    first: IPAddress
    last: IPAddress


@dataclass
class AllocationRange:
    key: str | None
    ip_ranges: list[IPRange]


@dataclass
class Subnet:
    namespace: str
    name: str
    labels: dict[str, str]
    cidr: IPNetwork
    default_gateway: IPAddress | None   # spec.defaultGateway, else the first host (None if there is none)
    ranges: list[AllocationRange] = field(default_factory=list)
    source: Source | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class VirtualNetwork:
    namespace: str
    name: str
    labels: dict[str, str]
    v4_subnet: Key | None
    v6_subnet: Key | None
    vni: int | None                     # spec.vxlanNetworkIdentifier, else None (allocated later)
    source: Source | None = None        # None: a synthesized default pod network

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def subnet_keys(self) -> list[Key]:
        return [k for k in (self.v4_subnet, self.v6_subnet) if k is not None]


@dataclass
class VnrImport:
    vnr_selector: dict[str, str]            # virtualNetworkRouterSelector.matchLabels
    namespace_selector: dict[str, str] | None   # None: the importing VNR's own namespace


@dataclass
class VirtualNetworkRouter:
    namespace: str
    name: str
    labels: dict[str, str]
    type: str                           # mesh | hub | spoke
    vn_selector: dict[str, str]         # virtualNetworkSelector.matchLabels (own namespace)
    imports: list[VnrImport]
    source: Source | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class IPBlock:
    cidr: IPNetwork
    excepts: list[IPNetwork]


@dataclass
class PolicyPeer:
    """A from/to entry: ipBlock alone, or pod and/or namespace selectors (matchLabels; None = not set)."""
    pod_selector: dict[str, str] | None = None
    namespace_selector: dict[str, str] | None = None
    ip_block: IPBlock | None = None


@dataclass
class PolicyPort:
    protocol: str                       # TCP | UDP | SCTP
    port: int | None                    # None: all ports
    end_port: int | None


@dataclass
class PolicyRule:
    peers: list[PolicyPeer]             # empty: all peers
    ports: list[PolicyPort]             # empty: all ports


@dataclass
class NetworkPolicy:
    namespace: str
    name: str
    labels: dict[str, str]
    pod_selector: dict[str, str]
    policy_types: list[str]
    ingress: list[PolicyRule]
    egress: list[PolicyRule]
    source: Source | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    node: str
    pod_network: Key | None             # filled by validation: the namespace's (default/isolated) pod network
    networks: list[Key]                 # from the k8s.v1.cni.cncf.io/networks annotation (extra interfaces)
    fixed_ips: dict[Key, list[IPAddress]] = field(default_factory=dict)   # VN key -> vrouter.io/ip addresses
    source: Source | None = None
    _raw_ips: list[tuple[str, IPAddress]] = field(default_factory=list, repr=False)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def interfaces(self) -> list[Key]:
        """The pod's networks in interface order: the pod network first, then the annotation's."""
        return ([self.pod_network] if self.pod_network else []) + list(self.networks)


@dataclass
class Node:
    name: str
    fabric_address: IPAddress
    control: str
    fabric_mac: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    source: Source | None = None


def match_labels(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes matchLabels: every listed label present with an equal value; None or {} matches all."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


@dataclass
class Intent:
    namespaces: dict[str, Namespace] = field(default_factory=dict)      # declared ones only
    nodes: dict[str, Node] = field(default_factory=dict)
    subnets: dict[Key, Subnet] = field(default_factory=dict)
    virtual_networks: dict[Key, VirtualNetwork] = field(default_factory=dict)
    virtual_network_routers: dict[Key, VirtualNetworkRouter] = field(default_factory=dict)
    network_policies: dict[Key, NetworkPolicy] = field(default_factory=dict)
    pods: dict[Key, Pod] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)   # "file doc N: apiVersion kind ns/name ignored"

    def namespace_names(self) -> list[str]:
        """Every namespace the intent mentions (declared or used by an object), sorted."""
        names = set(self.namespaces) | {"default"}
        for d in (self.subnets, self.virtual_networks, self.virtual_network_routers, self.network_policies,
                  self.pods):
            names.update(ns for ns, _ in d)
        return sorted(names)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels plus the automatic kubernetes.io/metadata.name."""
        ns = self.namespaces.get(namespace)
        return {**(ns.labels if ns else {}), NS_NAME_LABEL: namespace}

    def is_isolated(self, namespace: str) -> bool:
        ns = self.namespaces.get(namespace)
        return bool(ns and ns.isolated)

    def pod_network_of(self, namespace: str) -> Key:
        return (namespace, f"{namespace}-podnetwork") if self.is_isolated(namespace) else DEFAULT_POD_NETWORK

    def select_namespaces(self, match: Mapping[str, str] | None) -> list[str]:
        return [ns for ns in self.namespace_names() if match_labels(match, self.namespace_labels(ns))]

    def select_vns(self, match: Mapping[str, str] | None, namespace: str) -> list[VirtualNetwork]:
        """VNs of ``namespace`` whose labels match (None or {} selects all of them), in intent order."""
        return [vn for vn in self.virtual_networks.values()
                if vn.namespace == namespace and match_labels(match, vn.labels)]

    def select_vnrs(self, match: Mapping[str, str] | None, namespace_labels: Mapping[str, str] | None = None,
                    from_namespace: str = "default") -> list[VirtualNetworkRouter]:
        """VNRs whose labels match ``match``: in ``from_namespace`` when ``namespace_labels`` is None, else
        in every namespace whose labels match ``namespace_labels`` ({} = all namespaces)."""
        if namespace_labels is None:
            scope = {from_namespace}
        else:
            scope = {ns for ns in {r.namespace for r in self.virtual_network_routers.values()}
                     if match_labels(namespace_labels, self.namespace_labels(ns))}
        return [r for r in self.virtual_network_routers.values()
                if r.namespace in scope and match_labels(match, r.labels)]

    def vnr_members(self, vnr: VirtualNetworkRouter) -> list[VirtualNetwork]:
        return self.select_vns(vnr.vn_selector, vnr.namespace)

    def vnr_imports(self, vnr: VirtualNetworkRouter) -> list[VirtualNetworkRouter]:
        """The VNRs ``vnr`` imports (each once, in intent order; never itself)."""
        found: dict[Key, VirtualNetworkRouter] = {}
        for imp in vnr.imports:
            for r in self.select_vnrs(imp.vnr_selector, imp.namespace_selector, vnr.namespace):
                if r.key != vnr.key:
                    found[r.key] = r
        return [r for k, r in self.virtual_network_routers.items() if k in found]

    def vn_subnets(self, vn: VirtualNetwork) -> list[Subnet]:
        return [self.subnets[k] for k in vn.subnet_keys]


# ---------------------------------------------------------------------------------------------- parsing

class _Doc:
    """One document being parsed: typed accessors that raise IntentError naming the field."""

    def __init__(self, file: str, index: int, body: Any):
        self.file, self.index, self.body = file, index, body
        self.kind: str | None = None
        self.namespace: str | None = None
        self.name: str | None = None

    def source(self) -> Source:
        return Source(self.file, self.index, self.kind or "?", self.namespace, self.name or "?")

    def error(self, fld: str | None, msg: str) -> IntentError:
        return IntentError(msg, file=self.file, doc=self.index, kind=self.kind, namespace=self.namespace,
                           name=self.name, field=fld)

    def mapping(self, obj: Any, path: str, required: bool = False) -> dict:
        if obj is None:
            if required:
                raise self.error(path, "missing")
            return {}
        if not isinstance(obj, dict):
            raise self.error(path, f"must be a mapping, not {type(obj).__name__}")
        return obj

    def seq(self, obj: Any, path: str) -> list:
        if obj is None:
            return []
        if not isinstance(obj, list):
            raise self.error(path, f"must be a list, not {type(obj).__name__}")
        return obj

    def string(self, obj: Any, path: str, required: bool = False) -> str | None:
        if obj is None:
            if required:
                raise self.error(path, "missing")
            return None
        if not isinstance(obj, str) or not obj:
            raise self.error(path, f"must be a non-empty string, not {obj!r}")
        return obj

    def labels(self, obj: Any, path: str) -> dict[str, str]:
        m = self.mapping(obj, path)
        for k, v in m.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise self.error(f"{path}.{k}", f"label keys and values must be strings, not {v!r}"
                                 + (' (quote it: "true")' if isinstance(v, bool) else ""))
        return dict(m)

    def selector(self, obj: Any, path: str, required: bool = False) -> dict[str, str] | None:
        """A LabelSelector: matchLabels only (matchExpressions would widen the meaning, so it is refused)."""
        if obj is None and not required:
            return None
        m = self.mapping(obj, path, required)
        if m.get("matchExpressions"):
            raise self.error(f"{path}.matchExpressions", "not supported (use matchLabels)")
        return self.labels(m.get("matchLabels"), f"{path}.matchLabels")

    def network(self, obj: Any, path: str, strict: bool = True) -> IPNetwork:
        s = self.string(obj, path, required=True)
        try:
            return ipaddress.ip_network(s, strict=strict)
        except ValueError as e:
            raise self.error(path, f"bad CIDR {s!r}: {e}") from None

    def address(self, obj: Any, path: str, required: bool = True) -> IPAddress | None:
        s = self.string(obj, path, required)
        if s is None:
            return None
        try:
            return ipaddress.ip_address(s)
        except ValueError:
            raise self.error(path, f"bad IP address {s!r}") from None

    def ref(self, obj: Any, path: str) -> Key | None:
        if obj is None:
            return None
        m = self.mapping(obj, path)
        name = self.string(m.get("name"), f"{path}.name", required=True)
        ns = self.string(m.get("namespace"), f"{path}.namespace") or self.namespace
        return (ns, name)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_subnet(d: _Doc, spec: dict, labels: dict) -> Subnet:
    raw = d.string(spec.get("cidr"), "spec.cidr", required=True)
    try:
        cidr = ipaddress.ip_network(raw)
    except ValueError as e:
        msg = "host bits set" if "host bits" in str(e) else f"bad CIDR: {e}"
        raise d.error("spec.cidr", f"{raw!r}: {msg}") from None
    gw = d.address(spec.get("defaultGateway"), "spec.defaultGateway", required=False)
    if gw is not None:
        if gw.version != cidr.version or gw not in cidr:
            raise d.error("spec.defaultGateway", f"{gw} is outside the subnet {cidr}")
        if gw == cidr.network_address and cidr.num_addresses > 1:
            raise d.error("spec.defaultGateway", f"{gw} is the network address of {cidr}")
        if cidr.version == 4 and cidr.prefixlen < 31 and gw == cidr.broadcast_address:
            raise d.error("spec.defaultGateway", f"{gw} is the broadcast address of {cidr}")
    elif cidr.num_addresses >= 4:
        gw = cidr.network_address + 1
    ranges, seen = [], []
    for i, r in enumerate(d.seq(spec.get("ranges"), "spec.ranges")):
        p = f"spec.ranges[{i}]"
        r = d.mapping(r, p)
        key = d.string(r.get("key"), f"{p}.key")
        ips = []
        for j, ipr in enumerate(d.seq(r.get("ipRanges"), f"{p}.ipRanges")):
            q = f"{p}.ipRanges[{j}]"
            ipr = d.mapping(ipr, q)
            lo = d.address(ipr.get("from"), f"{q}.from")
            hi = d.address(ipr.get("to"), f"{q}.to")
            for a, f in ((lo, "from"), (hi, "to")):
                if a.version != cidr.version or a not in cidr:
                    raise d.error(f"{q}.{f}", f"{a} is outside the subnet {cidr}")
            if lo > hi:
                raise d.error(q, f"from {lo} is after to {hi}")
            for (plo, phi, pq) in seen:
                if lo <= phi and plo <= hi:
                    raise d.error(q, f"{lo}-{hi} overlaps {pq} ({plo}-{phi})")
            seen.append((lo, hi, q))
            ips.append(IPRange(lo, hi))
        ranges.append(AllocationRange(key, ips))
    return Subnet(d.namespace, d.name, labels, cidr, gw, ranges, d.source())


def _parse_vn(d: _Doc, spec: dict, labels: dict) -> VirtualNetwork:
    v4 = d.ref(spec.get("v4SubnetReference"), "spec.v4SubnetReference")
    v6 = d.ref(spec.get("v6SubnetReference"), "spec.v6SubnetReference")
    if v4 is None and v6 is None:
        raise d.error("spec", "needs spec.v4SubnetReference and/or spec.v6SubnetReference")
    vni = spec.get("vxlanNetworkIdentifier")
    if vni is not None and (not _is_int(vni) or not 1 <= vni <= VNI_MAX):
        raise d.error("spec.vxlanNetworkIdentifier", f"must be an integer 1..{VNI_MAX}, not {vni!r}")
    return VirtualNetwork(d.namespace, d.name, labels, v4, v6, vni, d.source())


def _parse_vnr(d: _Doc, spec: dict, labels: dict) -> VirtualNetworkRouter:
    t = d.string(spec.get("type"), "spec.type", required=True)
    if t not in VNR_TYPES:
        raise d.error("spec.type", f"unknown type {t!r} (one of {', '.join(VNR_TYPES)})")
    vns = d.selector(spec.get("virtualNetworkSelector"), "spec.virtualNetworkSelector") or {}
    imp = d.mapping(spec.get("import"), "spec.import")
    imports = []
    for i, e in enumerate(d.seq(imp.get("virtualNetworkRouters"), "spec.import.virtualNetworkRouters")):
        p = f"spec.import.virtualNetworkRouters[{i}]"
        e = d.mapping(e, p)
        sel = d.selector(e.get("virtualNetworkRouterSelector"), f"{p}.virtualNetworkRouterSelector",
                         required=True)
        nss = d.selector(e.get("namespaceSelector"), f"{p}.namespaceSelector")
        imports.append(VnrImport(sel, nss))
    return VirtualNetworkRouter(d.namespace, d.name, labels, t, vns, imports, d.source())


def _parse_peer(d: _Doc, e: Any, p: str) -> PolicyPeer:
    e = d.mapping(e, p)
    ipb = None
    if e.get("ipBlock") is not None:
        if e.get("podSelector") is not None or e.get("namespaceSelector") is not None:
            raise d.error(f"{p}.ipBlock", "cannot be combined with podSelector/namespaceSelector")
        b = d.mapping(e["ipBlock"], f"{p}.ipBlock")
        cidr = d.network(b.get("cidr"), f"{p}.ipBlock.cidr", strict=False)
        excepts = []
        for k, x in enumerate(d.seq(b.get("except"), f"{p}.ipBlock.except")):
            n = d.network(x, f"{p}.ipBlock.except[{k}]", strict=False)
            if n.version != cidr.version or not n.subnet_of(cidr):
                raise d.error(f"{p}.ipBlock.except[{k}]", f"{n} is not inside {cidr}")
            excepts.append(n)
        ipb = IPBlock(cidr, excepts)
    pod = d.selector(e.get("podSelector"), f"{p}.podSelector")
    ns = d.selector(e.get("namespaceSelector"), f"{p}.namespaceSelector")
    if ipb is None and pod is None and ns is None:
        raise d.error(p, "needs podSelector, namespaceSelector or ipBlock")
    return PolicyPeer(pod, ns, ipb)


def _parse_port(d: _Doc, e: Any, p: str) -> PolicyPort:
    e = d.mapping(e, p)
    proto = e.get("protocol", "TCP")
    if proto not in PROTOCOLS:
        raise d.error(f"{p}.protocol", f"unknown protocol {proto!r} (one of {', '.join(PROTOCOLS)})")
    port = e.get("port")
    if isinstance(port, str):
        raise d.error(f"{p}.port", f"named port {port!r} is not supported (use a number)")
    if port is not None and (not _is_int(port) or not 1 <= port <= 65535):
        raise d.error(f"{p}.port", f"must be 1..65535, not {port!r}")
    end = e.get("endPort")
    if end is not None:
        if port is None:
            raise d.error(f"{p}.endPort", "needs a numeric port")
        if not _is_int(end) or not 1 <= end <= 65535:
            raise d.error(f"{p}.endPort", f"must be 1..65535, not {end!r}")
        if end < port:
            raise d.error(f"{p}.endPort", f"{end} is below port {port}")
    return PolicyPort(proto, port, end)


def _parse_rules(d: _Doc, rules: Any, path: str, peers_key: str) -> list[PolicyRule]:
    out = []
    for i, r in enumerate(d.seq(rules, path)):
        p = f"{path}[{i}]"
        r = d.mapping(r, p)
        peers = [_parse_peer(d, e, f"{p}.{peers_key}[{j}]")
                 for j, e in enumerate(d.seq(r.get(peers_key), f"{p}.{peers_key}"))]
        ports = [_parse_port(d, e, f"{p}.ports[{j}]") for j, e in enumerate(d.seq(r.get("ports"), f"{p}.ports"))]
        out.append(PolicyRule(peers, ports))
    return out


def _parse_np(d: _Doc, spec: dict, labels: dict) -> NetworkPolicy:
    pods = d.selector(spec.get("podSelector"), "spec.podSelector", required=True)
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") is not None else [])
    for i, t in enumerate(d.seq(types, "spec.policyTypes")):
        if t not in POLICY_TYPES:
            raise d.error(f"spec.policyTypes[{i}]", f"unknown policy type {t!r} (Ingress or Egress)")
    ingress = _parse_rules(d, spec.get("ingress"), "spec.ingress", "from")
    egress = _parse_rules(d, spec.get("egress"), "spec.egress", "to")
    return NetworkPolicy(d.namespace, d.name, labels, pods, list(types), ingress, egress, d.source())


def _parse_networks_annotation(d: _Doc, raw: Any, path: str) -> list[Key]:
    s = d.string(raw, path)
    if s is None or not s.strip():
        return []
    s = s.strip()
    out = []
    if s.startswith("["):
        try:
            items = json.loads(s)
        except ValueError as e:
            raise d.error(path, f"bad JSON: {e}") from None
        if not isinstance(items, list):
            raise d.error(path, "JSON form must be a list")
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not isinstance(it.get("name"), str) or not it["name"]:
                raise d.error(f"{path}[{i}]", "needs a string name")
            ns = it.get("namespace") or d.namespace
            if not isinstance(ns, str):
                raise d.error(f"{path}[{i}].namespace", "must be a string")
            out.append((ns, it["name"]))
        return out
    for i, part in enumerate(p.strip() for p in s.split(",")):
        ref = part.split("@", 1)[0]
        ns, _, name = ref.rpartition("/")
        if not name or "/" in ns:
            raise d.error(f"{path}[{i}]", f"bad network {part!r} (want [<namespace>/]<vn>[@<ifname>])")
        out.append((ns or d.namespace, name))
    return out


def _parse_pod(d: _Doc, spec: dict, labels: dict, meta: dict) -> Pod:
    node = d.string(spec.get("nodeName"), "spec.nodeName", required=True)
    ann = d.mapping(meta.get("annotations"), "metadata.annotations")
    nets = _parse_networks_annotation(d, ann.get(NETWORKS_ANNOTATION),
                                      f'metadata.annotations["{NETWORKS_ANNOTATION}"]')
    ips = []
    p = f'metadata.annotations["{IP_ANNOTATION}"]'
    raw = d.string(ann.get(IP_ANNOTATION), p)
    for i, s in enumerate(x.strip() for x in (raw.split(",") if raw else [])):
        try:
            ips.append((p if "," not in raw else f"{p}[{i}]", ipaddress.ip_address(s)))
        except ValueError:
            raise d.error(p, f"bad IP address {s!r}") from None
    return Pod(d.namespace, d.name, labels, node, None, nets, {}, d.source(), ips)


def _parse_node(d: _Doc, spec: dict, labels: dict) -> Node:
    fab = d.address(spec.get("fabricAddress"), "spec.fabricAddress")
    ctl = d.string(spec.get("control"), "spec.control", required=True)
    mac = d.string(spec.get("fabricMac"), "spec.fabricMac")
    if mac is not None and not _MAC.match(mac):
        raise d.error("spec.fabricMac", f"bad MAC address {mac!r}")
    return Node(d.name, fab, ctl, mac.lower() if mac else None, labels, d.source())


# (apiVersion predicate, kind) -> (Intent attribute, namespaced, parser)
def _kinds(api: str, kind: str):
    group, _, version = api.rpartition("/")
    if group == CN2_GROUP and version in CN2_VERSIONS:
        return {"Subnet": ("subnets", True, _parse_subnet), "VirtualNetwork": ("virtual_networks", True, _parse_vn),
                "VirtualNetworkRouter": ("virtual_network_routers", True, _parse_vnr)}.get(kind)
    if api == "v1":
        return {"Namespace": ("namespaces", False, None), "Pod": ("pods", True, _parse_pod)}.get(kind)
    if api == "networking.k8s.io/v1" and kind == "NetworkPolicy":
        return ("network_policies", True, _parse_np)
    if api == "vrouter.io/v1" and kind == "Node":
        return ("nodes", False, _parse_node)
    return None


def _parse_doc(intent: Intent, d: _Doc) -> None:
    body = d.body
    if not isinstance(body, dict):
        raise d.error(None, f"document must be a mapping, not {type(body).__name__}")
    api = d.string(body.get("apiVersion"), "apiVersion", required=True)
    kind = d.string(body.get("kind"), "kind", required=True)
    spec_entry = _kinds(api, kind)
    meta_raw = body.get("metadata")
    if spec_entry is None:
        meta = meta_raw if isinstance(meta_raw, dict) else {}
        nm = meta.get("name")
        ns = meta.get("namespace")
        intent.ignored.append(f"{d.file} doc {d.index}: {api} {kind} "
                              f"{f'{ns}/' if ns else ''}{nm or '?'} ignored (not used by the agent)")
        return
    attr, namespaced, parser = spec_entry
    d.kind = kind
    meta = d.mapping(meta_raw, "metadata", required=True)
    d.name = d.string(meta.get("name"), "metadata.name", required=True)
    if namespaced:
        d.namespace = d.string(meta.get("namespace"), "metadata.namespace") or "default"
    labels = d.labels(meta.get("labels"), "metadata.labels")
    spec = d.mapping(body.get("spec"), "spec", required=kind not in ("Namespace",))
    if kind == "Namespace":
        iso = labels.get(ISOLATED_LABEL)
        if iso is not None and iso not in ("true", "false"):
            raise d.error(f"metadata.labels.{ISOLATED_LABEL}", f'must be "true" or "false", not {iso!r}')
        obj = Namespace(d.name, labels, iso == "true", d.source())
    elif kind == "Pod":
        obj = parser(d, spec, labels, meta)
    else:
        obj = parser(d, spec, labels)
    table = getattr(intent, attr)
    key = (d.namespace, d.name) if namespaced else d.name
    if key in table:
        prev = table[key].source
        raise d.error("metadata.name", f"duplicate {kind} (first in {prev.file} doc {prev.doc})")
    table[key] = obj


# ---------------------------------------------------------------------------------------------- validation

def _synthesize_pod_networks(intent: Intent, default_pod_cidr: str, isolated_pool: str,
                             isolated_prefixlen: int) -> None:
    def add(ns: str, vn_name: str, cidr: IPNetwork):
        key = (ns, f"{vn_name}-v4")
        if key in intent.subnets:
            s = intent.subnets[key].source
            raise s.error("metadata.name", f"name reserved for the synthesized subnet of pod network {ns}/{vn_name}"
                          f" (define VirtualNetwork {ns}/{vn_name} yourself, or rename this subnet)")
        gw = cidr.network_address + 1 if cidr.num_addresses >= 4 else None
        intent.subnets[key] = Subnet(ns, key[1], {}, cidr, gw, [], None)
        intent.virtual_networks[(ns, vn_name)] = VirtualNetwork(ns, vn_name, {}, key, None, None, None)

    if DEFAULT_POD_NETWORK not in intent.virtual_networks:
        add(*DEFAULT_POD_NETWORK, ipaddress.ip_network(default_pod_cidr))
    need = sorted(ns for ns, n in intent.namespaces.items()
                  if n.isolated and (ns, f"{ns}-podnetwork") not in intent.virtual_networks)
    pool = ipaddress.ip_network(isolated_pool).subnets(new_prefix=isolated_prefixlen)
    for ns in need:
        cidr = next(pool, None)
        if cidr is None:
            raise intent.namespaces[ns].source.error(
                f"metadata.labels.{ISOLATED_LABEL}", f"isolated pod network pool {isolated_pool} is exhausted")
        add(ns, f"{ns}-podnetwork", cidr)


def _validate(intent: Intent) -> None:
    vnis: dict[int, VirtualNetwork] = {}
    for vn in intent.virtual_networks.values():
        if vn.source is None:
            continue
        for ref, fam, fld in ((vn.v4_subnet, 4, "spec.v4SubnetReference"), (vn.v6_subnet, 6, "spec.v6SubnetReference")):
            if ref is None:
                continue
            sub = intent.subnets.get(ref)
            if sub is None:
                raise vn.source.error(fld, f"no subnet {ref[0]}/{ref[1]}")
            if sub.cidr.version != fam:
                raise vn.source.error(fld, f"subnet {ref[0]}/{ref[1]} is IPv{sub.cidr.version} ({sub.cidr}), "
                                      f"not IPv{fam}")
        if vn.v4_subnet is not None and vn.v4_subnet == vn.v6_subnet:
            raise vn.source.error("spec.v6SubnetReference", "same subnet as spec.v4SubnetReference")
        if vn.vni is not None:
            other = vnis.get(vn.vni)
            if other is not None:
                raise vn.source.error("spec.vxlanNetworkIdentifier",
                                      f"VNI {vn.vni} already used by VirtualNetwork {other.namespace}/{other.name}")
            vnis[vn.vni] = vn

    seen_fab: dict[IPAddress, Node] = {}
    for node in intent.nodes.values():
        other = seen_fab.get(node.fabric_address)
        if other is not None:
            raise node.source.error("spec.fabricAddress",
                                    f"{node.fabric_address} already used by Node {other.name}")
        seen_fab[node.fabric_address] = node

    fixed: dict[tuple[Key, IPAddress], Pod] = {}
    for pod in intent.pods.values():
        src = pod.source
        if pod.node not in intent.nodes:
            raise src.error("spec.nodeName", f"no node {pod.node}")
        pod.pod_network = intent.pod_network_of(pod.namespace)
        for ref in pod.networks:
            if ref not in intent.virtual_networks:
                raise src.error(f'metadata.annotations["{NETWORKS_ANNOTATION}"]',
                                f"no VirtualNetwork {ref[0]}/{ref[1]}")
        pod.fixed_ips = {}
        for fld, ip in pod._raw_ips:
            homes = [(vk, s) for vk in dict.fromkeys(pod.networks + [pod.pod_network])
                     for s in intent.vn_subnets(intent.virtual_networks[vk]) if ip.version == s.cidr.version
                     and ip in s.cidr]
            if not homes:
                nets = ", ".join(f"{vk[0]}/{vk[1]} " + "/".join(str(s.cidr) for s in
                                 intent.vn_subnets(intent.virtual_networks[vk])) for vk in pod.interfaces)
                raise src.error(fld, f"{ip} is outside the subnets of the pod's networks ({nets})")
            vk, sub = homes[0]   # the first annotation network holding it, else the pod network
            if ip == sub.default_gateway:
                raise src.error(fld, f"{ip} is the gateway of subnet {sub.namespace}/{sub.name}")
            if sub.cidr.num_addresses > 2 and ip == sub.cidr.network_address or (
                    sub.cidr.version == 4 and sub.cidr.prefixlen < 31 and ip == sub.cidr.broadcast_address):
                raise src.error(fld, f"{ip} is the network or broadcast address of {sub.cidr}")
            other = fixed.get((vk, ip))
            if other is not None:
                raise src.error(fld, f"{ip} in {vk[0]}/{vk[1]} already taken by Pod {other.namespace}/{other.name}")
            fixed[(vk, ip)] = pod
            pod.fixed_ips.setdefault(vk, []).append(ip)


# ---------------------------------------------------------------------------------------------- entry point

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml's, when PyYAML has it: ~10x faster

SourceArg = str | os.PathLike | tuple[str, str]


def _read(item: SourceArg, n: int) -> tuple[str, str]:
    if isinstance(item, tuple):
        name, text = item
        return str(name), text
    if isinstance(item, os.PathLike) or (isinstance(item, str) and "\n" not in item):
        p = pathlib.Path(item)
        try:
            return str(item), p.read_text()
        except OSError as e:
            raise IntentError(f"cannot read: {e.strerror or e}", file=str(item)) from None
    return f"<text {n}>", item


def _is_pair(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(y, str) for y in x) and "\n" in x[1]


def load(sources: SourceArg | Iterable[SourceArg], *, default_pod_cidr: str = "10.244.0.0/16",
         isolated_pool: str = "10.245.0.0/16", isolated_prefixlen: int = 24) -> Intent:
    """Parse and validate intent. ``sources``: one or a list of file paths (``Path``, or a ``str`` without a
    newline), YAML texts (a ``str`` with a newline; named ``<text N>``) or ``(name, text)`` pairs (a lone pair
    passed without a list must have a newline in its text, else it is read as two paths). Raises
    IntentError for the first problem found (documents in order, then cross-references)."""
    if isinstance(sources, (str, os.PathLike)) or _is_pair(sources):
        sources = [sources]
    intent = Intent()
    for n, item in enumerate(sources, 1):
        name, text = _read(item, n)
        try:
            docs = list(yaml.load_all(text, Loader=_LOADER))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else None
            raise IntentError(f"bad YAML: {getattr(e, 'problem', None) or e}", file=name, field=where) from None
        for i, body in enumerate(docs, 1):
            if body is None:
                continue
            _parse_doc(intent, _Doc(name, i, body))
    _synthesize_pod_networks(intent, default_pod_cidr, isolated_pool, isolated_prefixlen)
    _validate(intent)
    return intent
