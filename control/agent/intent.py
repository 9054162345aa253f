"""CN2-style intent: parsing and validation (no compilation).

Input is YAML (multi-document, ``---`` separated) shaped like Kubernetes / CN2 custom resources, so
manifests written for CN2 load unchanged. Understood documents (fields the agent does not use are ignored,
not errors; but label selectors and NetworkPolicy rules and peers are closed: an unknown key in them is an
error, and so is, in a VNR or NetworkPolicy, a key that is a typo of a field the agent reads or a selector
key one level off):

* ``core.contrail.juniper.net/v1alpha1`` or ``/v1``: ``Subnet``, ``VirtualNetwork``, ``VirtualNetworkRouter``
* ``v1``: ``Namespace`` (labels, for namespace selectors; ``core.juniper.net/isolated-namespace: "true"``
  gives the namespace its own pod network), ``Pod``
* ``networking.k8s.io/v1``: ``NetworkPolicy`` (named ports are refused)
* ``vrouter.io/v1``: ``Node`` (ours: ``spec.fabricAddress``, optional ``spec.fabricMac`` and ``spec.control``:
  the vrouter's endpoint when the cluster agent pushes it directly; without it, the node's agent does)

Other documents are listed in ``Intent.ignored`` (``Ignored``: file, document, apiVersion, kind, name, why)
and otherwise skipped: other groups' kinds, the other kinds of these groups (CN2's ``RoutingInstance``,
core ``Service``...), versions the agent does not read (``core.contrail.juniper.net/v2``). A document whose
kind or apiVersion is almost surely a typo of one the agent reads is refused (``IntentFormatError``): in one
of these groups, a kind that is not the group's but close to one the agent reads (``Subnett``, ``pod``,
``NetworkPolicies``; "did you mean Subnet?"), a kind the agent reads in another of its groups
(``v1 NetworkPolicy``), any other kind or version of ``vrouter.io`` (ours) or version of core ``v1``; and a
kind the agent reads under a group a letter or two from its own (``networking.k8s.oi/v1``). So is input
with no intent: no YAML document at all, or none of a kind the agent reads.

Label selectors (``LabelSelector``, Kubernetes' metav1 semantics): ``matchLabels`` and ``matchExpressions``
(operators ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``) are ANDed; ``In`` needs the key with one of the
values, ``NotIn`` matches a missing key or another value, ``Exists`` / ``DoesNotExist`` test the key. Refused
as Kubernetes refuses them: ``In`` / ``NotIn`` without values, ``Exists`` / ``DoesNotExist`` with values, any
other operator (case matters), keys that are not qualified names (``[prefix/]name``: a lowercase DNS
subdomain of at most 253 characters, a name of 1-63 alphanumerics, ``-``, ``_``, ``.``, alphanumeric at both
ends), values that are not label values (at most 63 such characters, or empty), non-string values
(``true`` unquoted); and, as kubectl's strict field validation does, any key but those (``vn: web``
directly under a selector, ``value:`` for ``values:``) and selector keys one level off (``matchLabels``
beside ``virtualNetworkSelector``, ``matchExpressions`` inside ``matchLabels``, ``podSelector`` directly in
an ingress rule). Object labels (``metadata.labels``) are validated the same way. The empty selector ``{}``
selects everything; a null selector (``LabelSelector.parse(None)``, Go's ``LabelSelectorAsSelector(nil)``)
selects nothing, but every selector field here defines its own rule for absence (YAML ``null`` is absent):

============================================= =============================== ========================================
selector field                                ``{}`` selects                  absent or null
============================================= =============================== ========================================
VNR ``spec.virtualNetworkSelector``           every VN of the VNR's namespace refused: required (CN2's API)
VNR import ``virtualNetworkRouterSelector``   every VNR of the namespaces in  refused: required (CN2: optional, with no
                                              scope, never the VNR itself     stated meaning; "none" would be a no-op)
VNR import ``namespaceSelector``              every namespace                 the importing VNR's own namespace
NetworkPolicy ``spec.podSelector``            every pod of the namespace      refused: required (Kubernetes)
NetworkPolicy peer ``podSelector``            every pod of the namespaces in  every pod of the namespaces the peer's
                                              scope                           namespaceSelector picks
NetworkPolicy peer ``namespaceSelector``      every namespace                 the policy's own namespace
============================================= =============================== ========================================

(a peer needs podSelector, namespaceSelector or ipBlock; ipBlock excludes the other two). Sources: the
Kubernetes API reference (LabelSelector, LabelSelectorRequirement, NetworkPolicySpec, NetworkPolicyPeer),
k8s.io/apimachinery (``Requirement.Matches``, ``ValidateLabelSelectorRequirement``, ``IsQualifiedName``,
``IsValidLabelValue``), CN2's API (VirtualNetworkRouterSpec, VirtualNetworkRouterEntry) and its
VirtualNetworkRouter guide, whose examples use namespaceSelector only for VNRs of other namespaces.

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

import difflib
import ipaddress
import json
import os
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from control import fields as F

CN2_GROUP = "core.contrail.juniper.net"
CN2_VERSIONS = ("v1alpha1", "v1", "v3")
NAD_GROUP = "k8s.cni.cncf.io"
OUR_GROUP = "vrouter.io"
ISOLATED_LABEL = "core.juniper.net/isolated-namespace"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
IP_ANNOTATION = "vrouter.io/ip"
JUNIPER_NETWORKS = "juniper.net/networks"                  # a NAD's network, subnets and route targets
PODNETWORK_ANNOTATION = "net.juniper.contrail.podnetwork"   # on a Namespace or Pod: its custom pod network
PODNETWORK_IP_ANNOTATION = "net.juniper.contrail.podnetwork.ip"
FORWARDING_ANNOTATION = "core.juniper.net/forwarding-mode"  # on a Namespace: fabric-forwarding | fabric-snat
DISPLAY_NAME = "core.juniper.net/display-name"
FABRIC_FORWARDING_MODES = ("fabric-forwarding", "ip-fabric")   # ip-fabric: the older spelling in CN2's examples
AUTO_ASN = 64512                    # automatic route targets: target:64512:N, N >= AUTO_RT_BASE
AUTO_RT_BASE = 8000000
NOT_YET_SNAT = "not supported yet: fabricSNAT (comes with source NAT)"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_POD_NETWORK = ("default", "default-podnetwork")
VNR_TYPES = ("mesh", "hub", "spoke")
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
VNI_MAX = F.VNI_MAX
# fields of the CN2 / Kubernetes structs the agent reads (a key close to one of these is taken for a typo)
VN_SPEC_FIELDS = ("v4SubnetReference", "v6SubnetReference", "vxlanNetworkIdentifier", "podNetwork",
                  "routeTargetList", "importRouteTargetList", "exportRouteTargetList", "routeTableReferences",
                  "fabricForwarding", "fabricSNAT", "virtualNetworkProperties", "isProviderNetwork",
                  "providerNetworkReference", "fqName", "commonSpec")
NAD_NETWORK_KEYS = ("ipamV4Subnet", "ipamV6Subnet", "podNetwork", "routeTargetList", "importRouteTargetList",
                    "exportRouteTargetList", "fabricSNAT", "fabricForwarding")
MULTUS_KEYS = ("name", "namespace", "ips", "mac", "interface")
MULTUS_NOT_SUPPORTED = ("default-route", "portMappings", "bandwidth", "cni-args", "infiniband-guid",
                        "ipam-claim-reference", "deviceID", "gateway-request")
VNR_SPEC_FIELDS = ("type", "virtualNetworkSelector", "import", "routeTarget", "routingType",
                   "l3vxlanNetworkIdentifier", "fqName", "commonSpec")
NP_SPEC_FIELDS = ("podSelector", "policyTypes", "ingress", "egress")
PEER_FIELDS = ("podSelector", "namespaceSelector", "ipBlock")

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


class IntentFormatError(IntentError):
    """Input that is not intent the agent can read at all: a file it cannot read, bad YAML, a document that
    is not a Kubernetes object (not a mapping, no apiVersion or kind), a kind or apiVersion that is almost
    surely a typo of one it reads, or no intent (no YAML document, or none of a kind the agent reads).
    ``--check`` exits 2 for these, 1 for other refused intent."""


@dataclass(frozen=True)
class Ignored:
    """A document the agent does not read (another group's kind, a CN2 kind it does not use, a version it
    does not read), kept so ``--check`` can list it. ``why`` says so, with the agent's own kind if close."""
    file: str
    doc: int
    api_version: str
    kind: str
    namespace: str | None
    name: str | None
    why: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.file} doc {self.doc}: {self.api_version} {self.kind} {ns}{self.name or '?'} ignored ({self.why})"


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
    pod_network: Key | None = None      # net.juniper.contrail.podnetwork: every pod's primary network
    fabric_forwarding: bool = False     # core.juniper.net/forwarding-mode: fabric-forwarding (its pod network)
    annotations: dict[str, str] = field(default_factory=dict)


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
    display_name: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class RouteTargets:
    """A network's explicit route targets (``target:<asn>:<n>`` or ``target:<ipv4>:<n>``): ``both``
    (routeTargetList: imported and exported), ``imports``, ``exports``."""
    both: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    exports: tuple[str, ...] = ()

    @property
    def import_set(self) -> set[str]:
        return set(self.both) | set(self.imports)

    @property
    def export_set(self) -> set[str]:
        return set(self.both) | set(self.exports)


@dataclass
class VirtualNetwork:
    namespace: str
    name: str
    labels: dict[str, str]
    v4_subnet: Key | None
    v6_subnet: Key | None
    vni: int | None                     # spec.vxlanNetworkIdentifier, else None (allocated later)
    source: Source | None = None        # None: a synthesized default pod network
    pod_network: bool = False           # spec.podNetwork: may be a pod's primary network
    route_targets: RouteTargets = field(default_factory=RouteTargets)
    route_tables: list[Key] = field(default_factory=list)    # spec.routeTableReferences
    fabric_forwarding: bool = False     # spec.fabricForwarding (or its namespace's forwarding mode)
    rpf: bool = True                    # spec.virtualNetworkProperties.rpf (disable: no source check)
    display_name: str | None = None     # metadata.annotations core.juniper.net/display-name
    nad: Source | None = None           # the NetworkAttachmentDefinition that defined it, if one did

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def subnet_keys(self) -> list[Key]:
        return [k for k in (self.v4_subnet, self.v6_subnet) if k is not None]


@dataclass
class VnrImport:
    vnr_selector: LabelSelector                 # virtualNetworkRouterSelector (required)
    namespace_selector: LabelSelector | None    # None (absent): the importing VNR's own namespace


@dataclass
class VirtualNetworkRouter:
    namespace: str
    name: str
    labels: dict[str, str]
    type: str                           # mesh | hub | spoke
    vn_selector: LabelSelector          # virtualNetworkSelector (required; VNs of the VNR's namespace)
    imports: list[VnrImport]
    source: Source | None = None
    route_target: str | None = None     # spec.routeTarget (else allocated: target:64512:N)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class StaticRoute:
    prefix: IPNetwork
    next_hop: IPAddress
    communities: tuple[str, ...] = ()   # communityAttributes: kept and shown, not acted on


@dataclass
class RouteTable:
    namespace: str
    name: str
    labels: dict[str, str]
    routes: list[StaticRoute]
    source: Source | None = None
    display_name: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class NetworkAttachment:
    """A NetworkAttachmentDefinition (k8s.cni.cncf.io/v1). With CN2's ``juniper.net/networks`` annotation
    it defines the VirtualNetwork of its name (and subnets ``<name>-v4`` / ``<name>-v6``); without, it
    names a VirtualNetwork declared as such."""
    namespace: str
    name: str
    labels: dict[str, str]
    v4: IPNetwork | None
    v6: IPNetwork | None
    pod_network: bool
    route_targets: RouteTargets
    fabric_forwarding: bool
    annotated: bool
    source: Source | None = None
    display_name: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass
class IPBlock:
    cidr: IPNetwork
    excepts: list[IPNetwork]


@dataclass
class PolicyPeer:
    """A from/to entry: ipBlock alone, or pod and/or namespace selectors (None = absent: every pod of the
    namespaces in scope / the policy's own namespace)."""
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
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
    pod_selector: LabelSelector         # spec.podSelector (required; {} = every pod of the namespace)
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
    custom_pod_network: Key | None = None   # the Pod's own net.juniper.contrail.podnetwork annotation
    attachments: list["Attachment"] = field(default_factory=list)   # per entry of networks: its options
    primary: "Attachment | None" = None     # options of the primary interface (podnetwork.ip)
    iface_ips: dict[int, list[IPAddress]] = field(default_factory=dict)   # interface index -> fixed addresses
    ifnames: dict[int, str] = field(default_factory=dict)                # interface index -> device name
    macs: dict[int, str] = field(default_factory=dict)                   # interface index -> fixed MAC

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def interfaces(self) -> list[Key]:
        """The pod's networks in interface order: the pod network first, then the annotation's."""
        return ([self.pod_network] if self.pod_network else []) + list(self.networks)


@dataclass
class Attachment:
    """One interface's options (Multus' JSON form, CN2's podnetwork.ip): where they were written, the
    device name in the pod, fixed addresses (with the prefix length given, if any) and MAC."""
    path: str
    ifname: str | None = None
    ips: list[tuple[IPAddress, int | None, str]] = field(default_factory=list)   # address, /len, its path
    mac: str | None = None


@dataclass
class Node:
    name: str
    fabric_address: IPAddress
    control: str | None                 # None: its node agent pushes it (control/node)
    fabric_mac: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    source: Source | None = None
    fabric_gateway_mac: str | None = None   # spec.fabricGatewayMac: the underlay next hop of fabric forwarding


# ---------------------------------------------------------------------------------------------- label selectors

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
_REQUIREMENT_FIELDS = ("key", "operator", "values")
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")        # a qualified name's name part
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (Kubernetes' qualified name: an optional DNS-subdomain prefix of
    at most 253 characters and a slash, then a name of 1-63 characters), or None."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        return f"label key {key!r}: at most one '/' (prefix/name)"
    if slash and not prefix:
        return f"label key {key!r}: the prefix before '/' is empty"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (f"label key {key!r}: the prefix must be a lowercase DNS subdomain (e.g. example.com) of at most "
                f"253 characters")
    if not name:
        return f"label key {key!r}: the name is empty"
    if len(name) > 63:
        return f"label key {key!r}: the name part has {len(name)} characters (at most 63)"
    if not _NAME.fullmatch(name):
        return f"label key {key!r}: the name part must be {_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value (empty, or 1-63 characters like a key's name), or None."""
    if len(value) > 63:
        return f"label value {value!r} has {len(value)} characters (at most 63)"
    if value and not _NAME.fullmatch(value):
        return f"label value {value!r} must be empty or {_NAME_RULE}"
    return None


class SelectorError(ValueError):
    """A LabelSelector that Kubernetes would refuse; ``field`` is the path of the offending part."""

    def __init__(self, fld: str, msg: str):
        self.field, self.msg = fld, msg
        super().__init__(f"{fld}: {msg}")


def _close(word: Any, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is most likely a typo of: the same letters in any order and case (``form``,
    ``pod``), else difflib's ratio >= 0.8 (``Subnett``, ``namespaceSelecter``); None if none is."""
    if not isinstance(word, str):
        return None
    by_lower = {c.lower(): c for c in choices}
    same = [c for lc, c in by_lower.items() if sorted(lc) == sorted(word.lower())]
    if same:
        return same[0]
    got = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[got[0]] if got else None


def _string_hint(v: Any) -> str:
    return ' (quote it: "true")' if isinstance(v, bool) else ' (quote it)' if isinstance(v, (int, float)) else ""


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry: ``key`` ``operator`` ``values`` (a sorted tuple, empty for Exists and
    DoesNotExist). Valid by construction (ValueError otherwise)."""
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))
        problem = label_key_problem(self.key) if isinstance(self.key, str) else "the key must be a string"
        if problem:
            raise ValueError(problem)
        if self.operator not in SELECTOR_OPERATORS:
            raise ValueError(f"unknown operator {self.operator!r} (one of {', '.join(SELECTOR_OPERATORS)})")
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"{self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"{self.operator} takes no values")
        for v in self.values:
            problem = label_value_problem(v) if isinstance(v, str) else "values must be strings"
            if problem:
                raise ValueError(problem)

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator == "In":
            return has and labels[self.key] in self.values
        if self.operator == "NotIn":            # an object without the key matches NotIn (as in Kubernetes)
            return not has or labels[self.key] not in self.values
        return has if self.operator == "Exists" else not has

    def __str__(self) -> str:
        vals = ",".join(self.values)
        return {"In": f"{self.key} in ({vals})", "NotIn": f"{self.key} notin ({vals})", "Exists": self.key,
                "DoesNotExist": f"!{self.key}"}[self.operator]


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes LabelSelector (metav1), parsed and validated once; immutable and hashable.

    ``match_labels`` (sorted (key, value) pairs) and ``match_expressions`` are ANDed; the empty selector
    ``{}`` matches every object; ``null=True`` is the null selector (``LabelSelectorAsSelector(nil)``,
    ``labels.Nothing()``), which matches none. ``LabelSelector.parse`` reads the YAML form;
    ``LabelSelector.of({"app": "web"}, Requirement("tier", "In", ("a",)))`` builds one in code."""
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()
    null: bool = False

    def __post_init__(self):
        object.__setattr__(self, "match_labels", tuple(sorted(dict(self.match_labels).items())))
        object.__setattr__(self, "match_expressions", tuple(self.match_expressions))
        if self.null and (self.match_labels or self.match_expressions):
            raise ValueError("a null selector has no requirements")
        for k, v in self.match_labels:
            problem = label_key_problem(k) or label_value_problem(v)
            if problem:
                raise ValueError(problem)

    @classmethod
    def of(cls, match_labels: Mapping[str, str] | None = None, *expressions: Requirement) -> LabelSelector:
        return cls(tuple((match_labels or {}).items()), expressions)

    @property
    def labels(self) -> dict[str, str]:
        """matchLabels, as a new dict."""
        return dict(self.match_labels)

    @property
    def empty(self) -> bool:
        """True for ``{}``: no requirement at all, so every object matches."""
        return not self.null and not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.null:
            return False
        return all(k in labels and labels[k] == v for k, v in self.match_labels) and \
            all(r.matches(labels) for r in self.match_expressions)

    def __str__(self) -> str:
        """kubectl's form (``app=web,tier in (a,b),!legacy``); ``<everything>`` / ``<nothing>``."""
        if self.null:
            return "<nothing>"
        parts = [f"{k}={v}" for k, v in self.match_labels] + [str(r) for r in self.match_expressions]
        return ",".join(parts) or "<everything>"

    @classmethod
    def parse(cls, obj: Any, path: str = "selector") -> LabelSelector:
        """The YAML/JSON form -> a LabelSelector, validated as Kubernetes validates it; ``None`` (absent or
        null) is the null selector. Raises SelectorError naming the offending field under ``path``, e.g.
        ``spec.podSelector.matchExpressions[0].values``; an unknown or misplaced key is an error."""
        if obj is None:
            return NOTHING
        if not isinstance(obj, dict):
            raise SelectorError(path, f"must be a LabelSelector mapping (matchLabels and/or matchExpressions), "
                                      f"not {type(obj).__name__}")
        for k in obj:
            if k in _SELECTOR_FIELDS:
                continue
            at = f"{path}.{k}"
            if k in _REQUIREMENT_FIELDS:
                raise SelectorError(at, "misplaced: key/operator/values go in an entry of matchExpressions")
            close = _close(k, _SELECTOR_FIELDS)
            if close:
                raise SelectorError(at, f"unknown field (did you mean {close}?)")
            raise SelectorError(at, f"unknown field: a LabelSelector has matchLabels and matchExpressions only"
                                    f" (a label to match goes under matchLabels: {{{k}: ...}})")
        labels = obj.get("matchLabels")
        lp = f"{path}.matchLabels"
        if labels is None:
            labels = {}
        if not isinstance(labels, dict):
            raise SelectorError(lp, f"must be a mapping of label keys to values, not {type(labels).__name__}")
        pairs = []
        for k, v in labels.items():
            at = f"{lp}.{k}"
            if k in _SELECTOR_FIELDS and isinstance(v, (list, dict)):
                raise SelectorError(at, f"misplaced: {k} goes beside matchLabels, not inside it")
            if not isinstance(k, str) or not isinstance(v, str):
                raise SelectorError(at, f"label keys and values must be strings, not {v!r}" + _string_hint(v))
            problem = label_key_problem(k) or label_value_problem(v)
            if problem:
                raise SelectorError(at, problem)
            pairs.append((k, v))
        exprs = obj.get("matchExpressions")
        ep = f"{path}.matchExpressions"
        if exprs is None:
            exprs = []
        if not isinstance(exprs, list):
            raise SelectorError(ep, f"must be a list of {{key, operator, values}}, not {type(exprs).__name__}")
        return cls(tuple(pairs), tuple(_parse_requirement(e, f"{ep}[{i}]") for i, e in enumerate(exprs)))


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(null=True)
Selector = LabelSelector | Mapping[str, str] | None     # what match_labels and Intent.select_* accept


def _parse_requirement(e: Any, path: str) -> Requirement:
    if not isinstance(e, dict):
        raise SelectorError(path, f"must be a mapping {{key, operator, values}}, not {type(e).__name__}")
    for k in e:
        if k not in _REQUIREMENT_FIELDS:
            close = _close(k, _REQUIREMENT_FIELDS)
            raise SelectorError(f"{path}.{k}", "unknown field" + (f" (did you mean {close}?)" if close else
                                                                 " (key, operator and values only)"))
    key, op, values = e.get("key"), e.get("operator"), e.get("values")
    if key is None:
        raise SelectorError(f"{path}.key", "missing")
    if not isinstance(key, str):
        raise SelectorError(f"{path}.key", f"must be a string, not {key!r}")
    problem = label_key_problem(key)
    if problem:
        raise SelectorError(f"{path}.key", problem)
    if op is None:
        raise SelectorError(f"{path}.operator", f"missing (one of {', '.join(SELECTOR_OPERATORS)})")
    if op not in SELECTOR_OPERATORS:
        close = _close(op, SELECTOR_OPERATORS)
        raise SelectorError(f"{path}.operator", f"unknown operator {op!r} (one of {', '.join(SELECTOR_OPERATORS)}"
                                                + (f"; did you mean {close}?)" if close else ")"))
    vp = f"{path}.values"
    if values is None:
        values = []
    if not isinstance(values, list):
        raise SelectorError(vp, f"must be a list of strings, not {values!r}")
    if op in ("In", "NotIn") and not values:
        raise SelectorError(vp, f"must be given (at least one value) when operator is {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise SelectorError(vp, f"must be empty when operator is {op} (it tests the key only)")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise SelectorError(f"{vp}[{i}]", f"must be a string, not {v!r}" + _string_hint(v))
        problem = label_value_problem(v)
        if problem:
            raise SelectorError(f"{vp}[{i}]", problem)
    return Requirement(key, op, tuple(values))


def match_labels(selector: LabelSelector | Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Does ``selector`` select an object with ``labels``? A LabelSelector: ``selector.matches(labels)``.
    None means a selector field left out whose rule is "no constraint" (a NetworkPolicy peer's podSelector
    next to a namespaceSelector: every pod of those namespaces), so it matches everything; callers whose
    field gives absence another meaning (a peer's namespaceSelector: the policy's own namespace) test
    ``is None`` first. A plain mapping is a matchLabels (the older form)."""
    if selector is None:
        return True
    if not isinstance(selector, LabelSelector):
        selector = LabelSelector.of(selector)
    return selector.matches(labels)


@dataclass
class Intent:
    namespaces: dict[str, Namespace] = field(default_factory=dict)      # declared ones only
    nodes: dict[str, Node] = field(default_factory=dict)
    subnets: dict[Key, Subnet] = field(default_factory=dict)
    virtual_networks: dict[Key, VirtualNetwork] = field(default_factory=dict)
    virtual_network_routers: dict[Key, VirtualNetworkRouter] = field(default_factory=dict)
    network_policies: dict[Key, NetworkPolicy] = field(default_factory=dict)
    pods: dict[Key, Pod] = field(default_factory=dict)
    route_tables: dict[Key, RouteTable] = field(default_factory=dict)
    attachment_definitions: dict[Key, NetworkAttachment] = field(default_factory=dict)
    ignored: list[Ignored] = field(default_factory=list)   # documents not read, in order

    def namespace_names(self) -> list[str]:
        """Every namespace the intent mentions (declared or used by an object), sorted."""
        names = set(self.namespaces) | {"default"}
        for d in (self.subnets, self.virtual_networks, self.virtual_network_routers, self.network_policies,
                  self.pods, self.route_tables, self.attachment_definitions):
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
        """The namespace's pod network: its custom one (net.juniper.contrail.podnetwork), else its own
        (isolated) or the default one."""
        ns = self.namespaces.get(namespace)
        if ns is not None and ns.pod_network is not None:
            return ns.pod_network
        return (namespace, f"{namespace}-podnetwork") if self.is_isolated(namespace) else DEFAULT_POD_NETWORK

    # Selectors below: a LabelSelector, or a plain mapping read as matchLabels; None as match_labels says.
    def select_namespaces(self, match: Selector) -> list[str]:
        """Every namespace the intent mentions whose labels (with kubernetes.io/metadata.name) match."""
        return [ns for ns in self.namespace_names() if match_labels(match, self.namespace_labels(ns))]

    def select_vns(self, match: Selector, namespace: str) -> list[VirtualNetwork]:
        """VNs of ``namespace`` whose labels match ({} selects all of them), in intent order."""
        return [vn for vn in self.virtual_networks.values()
                if vn.namespace == namespace and match_labels(match, vn.labels)]

    def select_vnrs(self, match: Selector, namespace_selector: Selector = None,
                    from_namespace: str = "default") -> list[VirtualNetworkRouter]:
        """VNRs whose labels match ``match``: in ``from_namespace`` when ``namespace_selector`` is None
        (absent), else in every namespace it selects ({} = all namespaces)."""
        if namespace_selector is None:
            scope = {from_namespace}
        else:
            scope = {ns for ns in {r.namespace for r in self.virtual_network_routers.values()}
                     if match_labels(namespace_selector, self.namespace_labels(ns))}
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

    def error(self, fld: str | None, msg: str, cls: type[IntentError] = IntentError) -> IntentError:
        return cls(msg, file=self.file, doc=self.index, kind=self.kind, namespace=self.namespace,
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

    def string(self, obj: Any, path: str, required: bool = False,
               cls: type[IntentError] = IntentError) -> str | None:
        if obj is None:
            if required:
                raise self.error(path, "missing", cls)
            return None
        if not isinstance(obj, str) or not obj:
            raise self.error(path, f"must be a non-empty string, not {obj!r}", cls)
        return obj

    def labels(self, obj: Any, path: str) -> dict[str, str]:
        """metadata.labels: string keys and values, valid as Kubernetes requires (a selector could not match
        a label it would refuse)."""
        m = self.mapping(obj, path)
        for k, v in m.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise self.error(f"{path}.{k}", f"label keys and values must be strings, not {v!r}"
                                 + _string_hint(v))
            problem = label_key_problem(k) or label_value_problem(v)
            if problem:
                raise self.error(f"{path}.{k}", problem)
        return dict(m)

    def selector(self, obj: Any, path: str, required: str | None = None) -> LabelSelector | None:
        """A LabelSelector field. Absent or null: None (the field's own rule for absence applies), or, when
        ``required`` (a hint such as "use {} for every pod of the namespace"), an error."""
        if obj is None:
            if required:
                raise self.error(path, f"missing ({required})")
            return None
        try:
            return LabelSelector.parse(obj, path)
        except SelectorError as e:
            raise self.error(e.field, e.msg) from None

    def check_keys(self, m: dict, path: str, known: Iterable[str], misplaced: Mapping[str, str] | None = None,
                   strict: bool = False) -> None:
        """Refuse a key of ``m`` that belongs elsewhere (``misplaced``: key -> where it goes) or that is a
        typo of a ``known`` one; with ``strict`` (a closed Kubernetes struct), any key not ``known``."""
        known = tuple(known)
        for k in m:
            if k in known:
                continue
            if misplaced and k in misplaced:
                raise self.error(f"{path}.{k}", f"misplaced: {misplaced[k]}")
            close = _close(k, known)
            if close:
                raise self.error(f"{path}.{k}", f"unknown field (did you mean {close}?)")
            if strict:
                raise self.error(f"{path}.{k}", f"unknown field ({', '.join(known)} only)")

    def field(self, check, path: str, value, *args, **kw):
        """A control.fields checker; its refusal becomes an IntentError naming this document's field."""
        try:
            return check(path, value, *args, **kw)
        except F.FieldError as e:
            raise self.error(e.path, e.msg) from None

    def network(self, obj: Any, path: str, strict: bool = True) -> IPNetwork:
        """A CIDR; not ``strict``: host bits allowed, meaning the network (Kubernetes' ipBlock)."""
        s = self.string(obj, path, required=True)
        if strict:
            return self.field(F.network, path, s)
        return self.field(F.interface, path, s, unicast=False).network

    def address(self, obj: Any, path: str, required: bool = True) -> IPAddress | None:
        s = self.string(obj, path, required)
        return None if s is None else self.field(F.address, path, s)

    def boolean(self, obj: Any, path: str) -> bool:
        if obj is None:
            return False
        if not isinstance(obj, bool):
            raise self.error(path, f"must be true or false, not {obj!r}")
        return obj

    def targets(self, obj: Any, path: str) -> tuple[str, ...]:
        """A list of route targets, each checked and written canonically."""
        out = []
        for i, t in enumerate(self.seq(obj, path)):
            got, problem = route_target(t)
            if problem:
                raise self.error(f"{path}[{i}]", problem)
            out.append(got)
        return tuple(dict.fromkeys(out))

    def annotations(self, meta: dict) -> dict[str, str]:
        ann = self.mapping(meta.get("annotations"), "metadata.annotations")
        for k, v in ann.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise self.error(f'metadata.annotations["{k}"]', f"annotation values must be strings, not {v!r}"
                                 + _string_hint(v))
        return dict(ann)

    def unsupported(self, path: str, what: str = "") -> IntentError:
        return self.error(path, "not supported" + (f": {what}" if what else ""))

    def ref(self, obj: Any, path: str) -> Key | None:
        if obj is None:
            return None
        m = self.mapping(obj, path)
        name = self.string(m.get("name"), f"{path}.name", required=True)
        ns = self.string(m.get("namespace"), f"{path}.namespace") or self.namespace
        return (ns, name)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def route_target(t: Any) -> tuple[str | None, str | None]:
    """A route target (RFC 4360's route target extended community as CN2 writes it): ``target:<asn>:<n>``
    (a 2-byte ASN with a 4-byte number, or a 4-byte ASN with a 2-byte one) or ``target:<ipv4>:<n>`` (a
    2-byte number). Returns (canonical text, None) or (None, why not). ``target:64512:N`` with N >=
    8000000 is reserved for the automatic targets of networks and VNRs."""
    want = "want target:<asn>:<number> or target:<ipv4 address>:<number>"
    if not isinstance(t, str):
        return None, f"must be a string like target:64512:100, not {t!r}"
    parts = t.split(":")
    if len(parts) != 3 or parts[0] != "target":
        return None, f"{t!r}: {want}"
    admin, num = parts[1], parts[2]
    if not num.isdigit() or not num.isascii():
        return None, f"{t!r}: the number {num!r} is not a decimal number"
    n = int(num)
    if "." in admin:
        try:
            a = ipaddress.IPv4Address(admin)
        except ValueError:
            return None, f"{t!r}: {admin!r} is not an IPv4 address"
        if n > 0xFFFF:
            return None, f"{t!r}: after an IPv4 address the number is at most 65535"
        return f"target:{a}:{n}", None
    if not admin.isdigit() or not admin.isascii():
        return None, f"{t!r}: {want}"
    asn = int(admin)
    if not 1 <= asn <= 0xFFFFFFFF:
        return None, f"{t!r}: the AS number must be 1..4294967295"
    if n > (0xFFFF if asn > 0xFFFF else 0xFFFFFFFF):
        return None, (f"{t!r}: after a 4-byte AS number the number is at most 65535" if asn > 0xFFFF
                      else f"{t!r}: the number is at most 4294967295")
    if asn == AUTO_ASN and n >= AUTO_RT_BASE:
        return None, f"{t!r}: target:{AUTO_ASN}:{AUTO_RT_BASE} and above are the automatic targets"
    return f"target:{asn}:{n}", None


def _display_name(d: "_Doc", ann: dict[str, str]) -> str | None:
    name = ann.get(DISPLAY_NAME)
    if name is not None and not name.strip():
        raise d.error(f'metadata.annotations["{DISPLAY_NAME}"]', "must not be empty")
    return name


def _parse_subnet(d: _Doc, spec: dict, labels: dict, meta: dict | None = None) -> Subnet:
    cidr = d.network(spec.get("cidr"), "spec.cidr")
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
    return Subnet(d.namespace, d.name, labels, cidr, gw, ranges, d.source(),
                  _display_name(d, d.annotations(meta or {})))


def _parse_vn(d: _Doc, spec: dict, labels: dict, meta: dict) -> VirtualNetwork:
    d.check_keys(spec, "spec", VN_SPEC_FIELDS)
    ann = d.annotations(meta)
    v4 = d.ref(spec.get("v4SubnetReference"), "spec.v4SubnetReference")
    v6 = d.ref(spec.get("v6SubnetReference"), "spec.v6SubnetReference")
    if v4 is None and v6 is None:
        raise d.error("spec", "needs spec.v4SubnetReference and/or spec.v6SubnetReference")
    vni = spec.get("vxlanNetworkIdentifier")
    if vni is not None:
        vni = d.field(F.integer, "spec.vxlanNetworkIdentifier", vni, 1, VNI_MAX)
    if d.boolean(spec.get("fabricSNAT"), "spec.fabricSNAT"):
        raise d.error("spec.fabricSNAT", NOT_YET_SNAT)
    if d.boolean(spec.get("isProviderNetwork"), "spec.isProviderNetwork"):
        raise d.unsupported("spec.isProviderNetwork", "provider networks (VLANs on the fabric)")
    if spec.get("providerNetworkReference") is not None:
        raise d.unsupported("spec.providerNetworkReference", "provider networks (VLANs on the fabric)")
    props = d.mapping(spec.get("virtualNetworkProperties"), "spec.virtualNetworkProperties")
    d.check_keys(props, "spec.virtualNetworkProperties", ("forwardingMode", "rpf"))
    for k in props:
        if k not in ("forwardingMode", "rpf"):
            raise d.unsupported(f"spec.virtualNetworkProperties.{k}")
    mode = props.get("forwardingMode")
    if mode is not None and mode not in ("l2_l3", "l3", "l2"):
        raise d.error("spec.virtualNetworkProperties.forwardingMode", f"unknown mode {mode!r} (l2_l3, l3 or l2)")
    if mode == "l2":
        raise d.unsupported("spec.virtualNetworkProperties.forwardingMode", "l2 (the vrouter forwards IP; "
                            "l2_l3 and l3 are both IP forwarding here)")
    rpf = props.get("rpf", "enable")
    if rpf not in ("enable", "disable"):
        raise d.error("spec.virtualNetworkProperties.rpf", f"must be enable or disable, not {rpf!r}")
    rts = RouteTargets(d.targets(spec.get("routeTargetList"), "spec.routeTargetList"),
                       d.targets(spec.get("importRouteTargetList"), "spec.importRouteTargetList"),
                       d.targets(spec.get("exportRouteTargetList"), "spec.exportRouteTargetList"))
    tables = []
    for i, r in enumerate(d.seq(spec.get("routeTableReferences"), "spec.routeTableReferences")):
        p = f"spec.routeTableReferences[{i}]"
        ref = d.ref(r, p)
        kind = r.get("kind") if isinstance(r, dict) else None
        if kind is not None and kind != "RouteTable":
            raise d.error(f"{p}.kind", f"must be RouteTable, not {kind!r}")
        tables.append(ref)
    return VirtualNetwork(d.namespace, d.name, labels, v4, v6, vni, d.source(),
                          pod_network=d.boolean(spec.get("podNetwork"), "spec.podNetwork"), route_targets=rts,
                          route_tables=tables,
                          fabric_forwarding=d.boolean(spec.get("fabricForwarding"), "spec.fabricForwarding"),
                          rpf=rpf == "enable", display_name=_display_name(d, ann))


def _parse_route_table(d: _Doc, spec: dict, labels: dict, meta: dict) -> RouteTable:
    d.check_keys(spec, "spec", ("routes",), {"route": "goes inside spec.routes", "prefix": "goes in an entry of "
                                             "spec.routes.route", "nextHop": "goes in an entry of spec.routes.route"})
    routes_m = d.mapping(spec.get("routes"), "spec.routes")
    d.check_keys(routes_m, "spec.routes", ("route",), strict=True)
    out = []
    for i, r in enumerate(d.seq(routes_m.get("route"), "spec.routes.route")):
        p = f"spec.routes.route[{i}]"
        r = d.mapping(r, p)
        d.check_keys(r, p, ("prefix", "nextHop", "nextHopType", "communityAttributes"), strict=True)
        prefix = d.network(r.get("prefix"), f"{p}.prefix")
        nht = r.get("nextHopType", "ip-address")
        if nht != "ip-address":
            raise d.unsupported(f"{p}.nextHopType", f"{nht!r} (only ip-address)")
        nh = d.address(r.get("nextHop"), f"{p}.nextHop")
        if nh.version != prefix.version:
            raise d.error(f"{p}.nextHop", f"IPv{nh.version} next hop for an IPv{prefix.version} prefix {prefix}")
        ca = d.mapping(r.get("communityAttributes"), f"{p}.communityAttributes")
        d.check_keys(ca, f"{p}.communityAttributes", ("communityAttribute",), strict=True)
        comms = []
        for j, c in enumerate(d.seq(ca.get("communityAttribute"), f"{p}.communityAttributes.communityAttribute")):
            comms.append(d.string(c, f"{p}.communityAttributes.communityAttribute[{j}]", required=True))
        out.append(StaticRoute(prefix, nh, tuple(comms)))
    return RouteTable(d.namespace, d.name, labels, out, d.source(), _display_name(d, d.annotations(meta)))


def _parse_nad(d: _Doc, spec: dict, labels: dict, meta: dict) -> NetworkAttachment:
    ann = d.annotations(meta)
    cfg = spec.get("config")
    if isinstance(cfg, str):
        try:
            conf = json.loads(cfg)
        except ValueError:
            conf = None     # kubectl takes any string; CN2 reads the annotation, not this
        if isinstance(conf, dict) and conf.get("type") not in (None, "contrail-k8s-cni"):
            raise d.unsupported("spec.config.type", f"{conf.get('type')!r} (CN2's networks are "
                                "contrail-k8s-cni, described by the juniper.net/networks annotation)")
    raw = ann.get(JUNIPER_NETWORKS)
    path = f'metadata.annotations["{JUNIPER_NETWORKS}"]'
    if raw is None:
        return NetworkAttachment(d.namespace, d.name, labels, None, None, False, RouteTargets(), False, False,
                                 d.source(), _display_name(d, ann))
    try:
        net = json.loads(raw)
    except ValueError as e:
        raise d.error(path, f"bad JSON: {e}") from None
    if not isinstance(net, dict):
        raise d.error(path, f"must be a JSON object, not {type(net).__name__}")
    for k in net:
        if k not in NAD_NETWORK_KEYS:
            close = _close(k, NAD_NETWORK_KEYS)
            raise d.error(f"{path}.{k}", f"unknown key (did you mean {close}?)" if close else
                          f"not supported (the agent reads {', '.join(NAD_NETWORK_KEYS)})")
    cidrs = {}
    for k, fam in (("ipamV4Subnet", 4), ("ipamV6Subnet", 6)):
        if net.get(k) is not None:
            n = d.network(net[k], f"{path}.{k}")
            if n.version != fam:
                raise d.error(f"{path}.{k}", f"{n} is not IPv{fam}")
            cidrs[fam] = n
    if d.boolean(net.get("fabricSNAT"), f"{path}.fabricSNAT"):
        raise d.error(f"{path}.fabricSNAT", NOT_YET_SNAT)
    rts = RouteTargets(d.targets(net.get("routeTargetList"), f"{path}.routeTargetList"),
                       d.targets(net.get("importRouteTargetList"), f"{path}.importRouteTargetList"),
                       d.targets(net.get("exportRouteTargetList"), f"{path}.exportRouteTargetList"))
    return NetworkAttachment(d.namespace, d.name, labels, cidrs.get(4), cidrs.get(6),
                             d.boolean(net.get("podNetwork"), f"{path}.podNetwork"), rts,
                             d.boolean(net.get("fabricForwarding"), f"{path}.fabricForwarding"), True, d.source(),
                             _display_name(d, ann))


def _parse_vnr(d: _Doc, spec: dict, labels: dict, meta: dict | None = None) -> VirtualNetworkRouter:
    d.check_keys(spec, "spec", VNR_SPEC_FIELDS, {
        "matchLabels": "goes inside spec.virtualNetworkSelector",
        "matchExpressions": "goes inside spec.virtualNetworkSelector",
        "virtualNetworkRouters": "goes inside spec.import",
        "virtualNetworkRouterSelector": "goes in an entry of spec.import.virtualNetworkRouters",
        "namespaceSelector": "goes in an entry of spec.import.virtualNetworkRouters"})
    t = d.string(spec.get("type"), "spec.type", required=True)
    if t not in VNR_TYPES:
        raise d.error("spec.type", f"unknown type {t!r} (one of {', '.join(VNR_TYPES)})")
    vns = d.selector(spec.get("virtualNetworkSelector"), "spec.virtualNetworkSelector",
                     required="use {} for every VirtualNetwork of the namespace")
    imp = d.mapping(spec.get("import"), "spec.import")
    entry = "goes in an entry of spec.import.virtualNetworkRouters"
    d.check_keys(imp, "spec.import", ("virtualNetworkRouters",), {
        "virtualNetworkRouterSelector": entry, "namespaceSelector": entry, "matchLabels": entry,
        "matchExpressions": entry})
    imports = []
    for i, e in enumerate(d.seq(imp.get("virtualNetworkRouters"), "spec.import.virtualNetworkRouters")):
        p = f"spec.import.virtualNetworkRouters[{i}]"
        e = d.mapping(e, p)
        inside = "goes inside virtualNetworkRouterSelector (or namespaceSelector)"
        d.check_keys(e, p, ("virtualNetworkRouterSelector", "namespaceSelector"),
                     {"matchLabels": inside, "matchExpressions": inside})
        sel = d.selector(e.get("virtualNetworkRouterSelector"), f"{p}.virtualNetworkRouterSelector",
                         required="use {} for every VirtualNetworkRouter of the namespaces in scope")
        nss = d.selector(e.get("namespaceSelector"), f"{p}.namespaceSelector")
        imports.append(VnrImport(sel, nss))
    rt = None
    if spec.get("routeTarget") is not None:
        rt, problem = route_target(spec["routeTarget"])
        if problem:
            raise d.error("spec.routeTarget", problem)
    return VirtualNetworkRouter(d.namespace, d.name, labels, t, vns, imports, d.source(), rt)


def _parse_peer(d: _Doc, e: Any, p: str) -> PolicyPeer:
    e = d.mapping(e, p)
    inside = "goes inside podSelector or namespaceSelector"
    d.check_keys(e, p, PEER_FIELDS, {"matchLabels": inside, "matchExpressions": inside,
                                     "ports": "goes beside from/to, in the rule"}, strict=True)
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
        peer = f"goes in a peer: {p}.{peers_key}[]"
        other = "to" if peers_key == "from" else "from"
        d.check_keys(r, p, (peers_key, "ports"), {
            "podSelector": peer, "namespaceSelector": peer, "ipBlock": peer, "matchLabels": peer,
            "matchExpressions": peer,
            other: f"{path.rpartition('.')[2]} rules have {peers_key}, not {other}"}, strict=True)
        peers = [_parse_peer(d, e, f"{p}.{peers_key}[{j}]")
                 for j, e in enumerate(d.seq(r.get(peers_key), f"{p}.{peers_key}"))]
        ports = [_parse_port(d, e, f"{p}.ports[{j}]") for j, e in enumerate(d.seq(r.get("ports"), f"{p}.ports"))]
        out.append(PolicyRule(peers, ports))
    return out


def _parse_np(d: _Doc, spec: dict, labels: dict, meta: dict | None = None) -> NetworkPolicy:
    d.check_keys(spec, "spec", NP_SPEC_FIELDS, {
        "matchLabels": "goes inside spec.podSelector", "matchExpressions": "goes inside spec.podSelector",
        "from": "goes in an entry of spec.ingress", "to": "goes in an entry of spec.egress",
        "ports": "goes in an entry of spec.ingress or spec.egress",
        "namespaceSelector": "goes in a peer: spec.ingress[].from[] or spec.egress[].to[]",
        "ipBlock": "goes in a peer: spec.ingress[].from[] or spec.egress[].to[]"})
    pods = d.selector(spec.get("podSelector"), "spec.podSelector",
                      required="use {} for every pod of the namespace")
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") is not None else [])
    for i, t in enumerate(d.seq(types, "spec.policyTypes")):
        if t not in POLICY_TYPES:
            raise d.error(f"spec.policyTypes[{i}]", f"unknown policy type {t!r} (Ingress or Egress)")
    ingress = _parse_rules(d, spec.get("ingress"), "spec.ingress", "from")
    egress = _parse_rules(d, spec.get("egress"), "spec.egress", "to")
    return NetworkPolicy(d.namespace, d.name, labels, pods, list(types), ingress, egress, d.source())


def _ref_text(d: _Doc, part: str, path: str, want: str) -> Key:
    ns, _, name = part.rpartition("/")
    if not name or "/" in ns:
        raise d.error(path, f"bad network {part!r} (want {want})")
    return (ns or d.namespace, name)


def _multus_ips(d: _Doc, v: Any, path: str) -> list[tuple[IPAddress, int | None, str]]:
    out = []
    for k, x in enumerate(d.seq(v, path)):
        at = f"{path}[{k}]"
        s = d.string(x, at, required=True)
        if "/" in s:
            itf = d.field(F.interface, at, s)
            out.append((itf.ip, itf.network.prefixlen, at))
        else:
            out.append((d.field(F.address, at, s), None, at))
    return out


def _parse_networks_annotation(d: _Doc, raw: Any, path: str) -> list[tuple[Key, Attachment]]:
    """Multus' annotation: ``[ns/]vn[@ifname]`` comma-separated, or the JSON list of network selection
    elements (name, namespace, ips, mac, interface)."""
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
            p = f"{path}[{i}]"
            if not isinstance(it, dict) or not isinstance(it.get("name"), str) or not it["name"]:
                raise d.error(p, "needs a string name")
            for k in it:
                if k in MULTUS_NOT_SUPPORTED:
                    raise d.unsupported(f"{p}.{k}")
                if k not in MULTUS_KEYS:
                    close = _close(k, MULTUS_KEYS + MULTUS_NOT_SUPPORTED)
                    raise d.error(f"{p}.{k}", f"unknown key (did you mean {close}?)" if close else
                                  f"unknown key ({', '.join(MULTUS_KEYS)})")
            ns = it.get("namespace") or d.namespace
            if not isinstance(ns, str):
                raise d.error(f"{p}.namespace", "must be a string")
            name = it["name"]
            if "/" in name:       # Multus also takes "ns/name" in name
                ns, name = _ref_text(d, name, f"{p}.name", "<vn> or <namespace>/<vn>")
            att = Attachment(p)
            if it.get("interface") is not None:
                att.ifname = d.field(F.ifname, f"{p}.interface", d.string(it["interface"], f"{p}.interface"))
            if it.get("mac") is not None:
                att.mac = d.field(F.mac, f"{p}.mac", d.string(it["mac"], f"{p}.mac"))
            att.ips = _multus_ips(d, it.get("ips"), f"{p}.ips")
            out.append(((ns, name), att))
        return out
    for i, part in enumerate(p.strip() for p in s.split(",")):
        ref, at, ifname = part.partition("@")
        key = _ref_text(d, ref, f"{path}[{i}]", "[<namespace>/]<vn>[@<ifname>]")
        att = Attachment(f"{path}[{i}]")
        if at:
            att.ifname = d.field(F.ifname, f"{path}[{i}]", ifname)
        out.append((key, att))
    return out


def _parse_pod(d: _Doc, spec: dict, labels: dict, meta: dict) -> Pod:
    node = d.string(spec.get("nodeName"), "spec.nodeName", required=True)
    ann = d.annotations(meta)
    if "net.juniper.contrail.podnetwork.cni-args" in ann:
        raise d.unsupported('metadata.annotations["net.juniper.contrail.podnetwork.cni-args"]')
    nets = _parse_networks_annotation(d, ann.get(NETWORKS_ANNOTATION),
                                      f'metadata.annotations["{NETWORKS_ANNOTATION}"]')
    ips = []
    p = f'metadata.annotations["{IP_ANNOTATION}"]'
    raw = d.string(ann.get(IP_ANNOTATION), p)
    for i, s in enumerate(x.strip() for x in (raw.split(",") if raw else [])):
        where = p if "," not in raw else f"{p}[{i}]"
        ips.append((where, d.field(F.address, where, s)))
    custom = None
    if ann.get(PODNETWORK_ANNOTATION) is not None:
        custom = _ref_text(d, ann[PODNETWORK_ANNOTATION].strip(), f'metadata.annotations["{PODNETWORK_ANNOTATION}"]',
                           "<namespace>/<vn>")
    primary = Attachment(f'metadata.annotations["{PODNETWORK_ANNOTATION}"]', "eth0")
    pp = f'metadata.annotations["{PODNETWORK_IP_ANNOTATION}"]'
    raw = d.string(ann.get(PODNETWORK_IP_ANNOTATION), pp)
    for i, x in enumerate(y.strip() for y in (raw.split(",") if raw else [])):
        where = pp if "," not in raw else f"{pp}[{i}]"
        primary.ips.append((d.field(F.address, where, x), None, where))
    pod = Pod(d.namespace, d.name, labels, node, None, [k for k, _ in nets], {}, d.source(), ips,
              custom_pod_network=custom, attachments=[a for _, a in nets], primary=primary)
    return pod


def _parse_namespace(d: _Doc, labels: dict, meta: dict) -> Namespace:
    iso = labels.get(ISOLATED_LABEL)
    if iso is not None and iso not in ("true", "false"):
        raise d.error(f"metadata.labels.{ISOLATED_LABEL}", f'must be "true" or "false", not {iso!r}')
    ann = d.annotations(meta)
    pn = None
    if ann.get(PODNETWORK_ANNOTATION) is not None:
        pn = _ref_text(d, ann[PODNETWORK_ANNOTATION].strip(), f'metadata.annotations["{PODNETWORK_ANNOTATION}"]',
                       "<namespace>/<vn>")
        if pn[0] is None:
            pn = (d.name, pn[1])
    ff = False
    mode = ann.get(FORWARDING_ANNOTATION)
    fp = f'metadata.annotations["{FORWARDING_ANNOTATION}"]'
    if mode is not None:
        if mode == "fabric-snat":
            raise d.error(fp, NOT_YET_SNAT)
        if mode not in FABRIC_FORWARDING_MODES:
            raise d.error(fp, f"unknown forwarding mode {mode!r} (fabric-forwarding or fabric-snat)")
        if iso != "true":
            raise d.unsupported(fp, "on a namespace that is not isolated: its pod network, "
                                f"{DEFAULT_POD_NETWORK[0]}/{DEFAULT_POD_NETWORK[1]}, is every namespace's "
                                "(set spec.fabricForwarding on a VirtualNetwork instead)")
        if pn is not None:
            raise d.unsupported(fp, f"with a custom pod network ({pn[0]}/{pn[1]}: set spec.fabricForwarding "
                                "on that VirtualNetwork instead)")
        ff = True
    return Namespace(d.name, labels, iso == "true", d.source(), pn, ff, ann)


def _parse_node(d: _Doc, spec: dict, labels: dict, meta: dict | None = None) -> Node:
    fab = d.address(spec.get("fabricAddress"), "spec.fabricAddress")
    ctl = d.string(spec.get("control"), "spec.control")
    mac = d.string(spec.get("fabricMac"), "spec.fabricMac")
    if mac is not None:
        mac = d.field(F.mac, "spec.fabricMac", mac)
    gw = d.string(spec.get("fabricGatewayMac"), "spec.fabricGatewayMac")
    if gw is not None:
        gw = d.field(F.mac, "spec.fabricGatewayMac", gw)
    return Node(d.name, fab, ctl, mac, labels, d.source(), gw)


# The groups the agent reads: versions, the kinds it reads (-> Intent attribute, namespaced, parser) and
# the group's other kinds (real ones it does not use: reported, never taken for a typo of one it reads).
_GROUPS: dict[str, tuple[tuple[str, ...], dict[str, tuple], frozenset[str]]] = {
    CN2_GROUP: (CN2_VERSIONS, {
        "Subnet": ("subnets", True, _parse_subnet), "VirtualNetwork": ("virtual_networks", True, _parse_vn),
        "VirtualNetworkRouter": ("virtual_network_routers", True, _parse_vnr),
        "RouteTable": ("route_tables", True, _parse_route_table)}, frozenset((
            "AddressGroup", "ApplicationPolicySet", "BGPAsAService", "BGPRouter", "ContrailSecurityPolicy",
            "FirewallPolicy", "FirewallRule", "FloatingIP", "GlobalContrailSecurityPolicy", "GlobalSystemConfig",
            "GlobalVrouterConfig", "InstanceIP", "InterfaceRouteTable", "MirrorDestination",
            "RouteTarget", "RoutingInstance", "ServiceGroup", "ServiceHealthCheck", "Tag", "TagType",
            "VirtualMachine", "VirtualMachineInterface", "VirtualRouter"))),
    "": (("v1",), {"Namespace": ("namespaces", False, None), "Pod": ("pods", True, _parse_pod)}, frozenset((
        "Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "List", "Node",
        "PersistentVolume", "PersistentVolumeClaim", "PodTemplate", "ReplicationController", "ResourceQuota",
        "Secret", "Service", "ServiceAccount"))),
    "networking.k8s.io": (("v1",), {"NetworkPolicy": ("network_policies", True, _parse_np)},
                          frozenset(("Ingress", "IngressClass", "IPAddress", "ServiceCIDR"))),
    NAD_GROUP: (("v1",), {"NetworkAttachmentDefinition": ("attachment_definitions", True, _parse_nad)},
                frozenset()),
    OUR_GROUP: (("v1",), {"Node": ("nodes", False, _parse_node)}, frozenset()),
}


def _api(group: str, versions: Iterable[str]) -> str:
    return " or ".join(f"{group}/{v}" if group else v for v in versions)


def _classify(api: str, kind: str) -> tuple[str, Any]:
    """What to do with a document of ``apiVersion``/``kind``: ("read", (attr, namespaced, parser)),
    ("refuse", (field, why)) for an almost certain typo, or ("ignore", why).

    Refused: in a group the agent reads (CN2's, core v1, networking.k8s.io, vrouter.io), a kind that is not
    one of the group's but close to one the agent reads (``Subnett``, ``networkpolicy``, ``Pods``); any other
    kind or version of vrouter.io (ours: there is nothing else), or a version of core v1 (there is only v1)
    with a kind the agent reads; a kind the agent reads under a group one letter or two away from its own
    (``networking.k8s.oi/v1``). Ignored (reported): everything else - other groups, the group's other kinds,
    kinds no closer to the agent's, versions the agent does not read. A kind the agent reads, in another of
    the groups it reads that has no such kind (``v1 NetworkPolicy``), is refused too."""
    group, _, version = api.rpartition("/")
    entry = _GROUPS.get(group)
    if entry is not None:
        versions, reads, others = entry
        if kind in reads:
            if version in versions:
                return "read", reads[kind]
            if group in ("", OUR_GROUP):
                return "refuse", ("apiVersion", f"{kind} is read as apiVersion {_api(group, versions)}, "
                                                f"not {api}")
            return "ignore", f"the agent reads {kind} as {_api(group, versions)}"
        if kind not in others:
            close = _close(kind, reads)
            if close:
                return "refuse", ("kind", f"no kind {kind} in {api} (did you mean {close}?)")
            if group == OUR_GROUP:
                return "refuse", ("kind", f"no kind {kind} in {api} (the agent reads {', '.join(reads)})")
    for g, (versions, reads, _) in _GROUPS.items():
        if kind in reads and g != group:
            if entry is not None and kind not in entry[2]:
                return "refuse", ("apiVersion", f"no kind {kind} in {api} (did you mean apiVersion "
                                                f"{_api(g, versions)}?)")
            if entry is None and g and group and difflib.SequenceMatcher(None, group, g).ratio() >= 0.85:
                return "refuse", ("apiVersion", f"unknown group {group} (did you mean apiVersion "
                                                f"{_api(g, versions)}?)")
            return "ignore", f"not a kind the agent reads; it reads {kind} as {_api(g, versions)}"
    close = None if entry is not None else _close(kind, [k for e in _GROUPS.values() for k in e[1]])
    if close:
        g, (versions, _, _) = next((g, e) for g, e in _GROUPS.items() if close in e[1])
        return "ignore", f"not a kind the agent reads; did you mean {_api(g, versions)} {close}?"
    return "ignore", "not a kind the agent reads"


def _parse_doc(intent: Intent, d: _Doc) -> None:
    body = d.body
    if not isinstance(body, dict):
        raise d.error(None, f"document must be a mapping, not {type(body).__name__}", IntentFormatError)
    api = d.string(body.get("apiVersion"), "apiVersion", required=True, cls=IntentFormatError)
    kind = d.string(body.get("kind"), "kind", required=True, cls=IntentFormatError)
    action, spec_entry = _classify(api, kind)
    meta_raw = body.get("metadata")
    if action != "read":
        meta = meta_raw if isinstance(meta_raw, dict) else {}
        nm, ns = meta.get("name"), meta.get("namespace")
        if action == "refuse":
            d.kind = kind
            d.name = nm if isinstance(nm, str) else None
            d.namespace = ns if isinstance(ns, str) else None
            raise d.error(*spec_entry, IntentFormatError)
        intent.ignored.append(Ignored(d.file, d.index, api, kind, ns if isinstance(ns, str) else None,
                                      nm if isinstance(nm, str) else None, spec_entry))
        return
    attr, namespaced, parser = spec_entry
    d.kind = kind
    meta = d.mapping(meta_raw, "metadata", required=True)
    d.name = d.string(meta.get("name"), "metadata.name", required=True)
    if namespaced:
        d.namespace = d.string(meta.get("namespace"), "metadata.namespace") or "default"
    labels = d.labels(meta.get("labels"), "metadata.labels")
    spec = d.mapping(body.get("spec"), "spec", required=kind not in ("Namespace", "NetworkAttachmentDefinition"))
    if kind == "Namespace":
        obj = _parse_namespace(d, labels, meta)
    else:
        obj = parser(d, spec, labels, meta)
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


def _networks_from_nads(intent: Intent) -> None:
    """Each NetworkAttachmentDefinition with juniper.net/networks becomes its VirtualNetwork and subnets
    (``<name>-v4`` / ``<name>-v6``, as CN2 names them); one without names a declared VirtualNetwork."""
    ann = f'metadata.annotations["{JUNIPER_NETWORKS}"]'
    for nad in intent.attachment_definitions.values():
        src, key = nad.source, nad.key
        vn = intent.virtual_networks.get(key)
        if not nad.annotated:
            if vn is None:
                raise src.error(None, f"not supported: a NetworkAttachmentDefinition without the {JUNIPER_NETWORKS}"
                                f" annotation and no VirtualNetwork {key[0]}/{key[1]} (another CNI plugin's network)")
            continue
        if vn is not None:
            raise src.error(ann, f"VirtualNetwork {key[0]}/{key[1]} is declared too ({vn.source.file} doc "
                            f"{vn.source.doc}): leave out the annotation to use it, or the VirtualNetwork")
        if nad.v4 is None and nad.v6 is None:
            raise src.error(ann, "needs ipamV4Subnet and/or ipamV6Subnet (or leave out the annotation and "
                            f"declare VirtualNetwork {key[0]}/{key[1]})")
        refs = {}
        for fam, cidr in ((4, nad.v4), (6, nad.v6)):
            if cidr is None:
                continue
            sk = (key[0], f"{key[1]}-v{fam}")
            other = intent.subnets.get(sk)
            if other is not None:
                raise src.error(f"{ann}.ipamV{fam}Subnet", f"defines Subnet {sk[0]}/{sk[1]}, declared too "
                                f"({other.source.file} doc {other.source.doc})")
            gw = cidr.network_address + 1 if cidr.num_addresses >= 4 else None
            intent.subnets[sk] = Subnet(sk[0], sk[1], {}, cidr, gw, [], src)
            refs[fam] = sk
        intent.virtual_networks[key] = VirtualNetwork(
            key[0], key[1], dict(nad.labels), refs.get(4), refs.get(6), None, src, pod_network=nad.pod_network,
            route_targets=nad.route_targets, fabric_forwarding=nad.fabric_forwarding, display_name=nad.display_name,
            nad=src)


def _validate_networks(intent: Intent) -> None:
    """Namespaces' custom pod networks and forwarding modes, VirtualNetworks' route tables."""
    for ns in intent.namespaces.values():
        if ns.pod_network is not None:
            vn = intent.virtual_networks.get(ns.pod_network)
            at = f'metadata.annotations["{PODNETWORK_ANNOTATION}"]'
            if vn is None:
                raise ns.source.error(at, f"no VirtualNetwork {ns.pod_network[0]}/{ns.pod_network[1]}")
            if not vn.pod_network:
                raise ns.source.error(at, f"VirtualNetwork {ns.pod_network[0]}/{ns.pod_network[1]} is not a pod "
                                      "network (spec.podNetwork: true)")
        if ns.fabric_forwarding:
            intent.virtual_networks[intent.pod_network_of(ns.name)].fabric_forwarding = True
    for vn in intent.virtual_networks.values():
        for i, ref in enumerate(vn.route_tables):
            if ref not in intent.route_tables:
                raise vn.source.error(f"spec.routeTableReferences[{i}]", f"no RouteTable {ref[0]}/{ref[1]}")
        if vn.route_tables:
            fams = {s.cidr.version for s in intent.vn_subnets(vn)}
            for ref in vn.route_tables:
                for j, r in enumerate(intent.route_tables[ref].routes):
                    if r.prefix.version not in fams:
                        raise intent.route_tables[ref].source.error(
                            f"spec.routes.route[{j}].prefix", f"IPv{r.prefix.version} route, but VirtualNetwork "
                            f"{vn.namespace}/{vn.name} (which references this table) has no IPv{r.prefix.version} subnet")


def _check_fixed(src: Source, fld: str, ip: IPAddress, plen: int | None, sub: Subnet) -> None:
    if plen is not None and plen != sub.cidr.prefixlen:
        raise src.error(fld, f"{ip}/{plen}: the subnet {sub.namespace}/{sub.name} is {sub.cidr}")
    if ip == sub.default_gateway:
        raise src.error(fld, f"{ip} is the gateway of subnet {sub.namespace}/{sub.name}")
    if sub.cidr.num_addresses > 2 and ip == sub.cidr.network_address or (
            sub.cidr.version == 4 and sub.cidr.prefixlen < 31 and ip == sub.cidr.broadcast_address):
        raise src.error(fld, f"{ip} is the network or broadcast address of {sub.cidr}")


def _validate_pod(intent: Intent, pod: Pod, fixed: dict, macs: dict) -> None:
    src = pod.source
    if pod.node not in intent.nodes:
        raise src.error("spec.nodeName", f"no node {pod.node}")
    if pod.custom_pod_network is not None:
        at = f'metadata.annotations["{PODNETWORK_ANNOTATION}"]'
        k = pod.custom_pod_network
        vn = intent.virtual_networks.get(k)
        if vn is None:
            raise src.error(at, f"no VirtualNetwork {k[0]}/{k[1]}")
        if not vn.pod_network:
            raise src.error(at, f"VirtualNetwork {k[0]}/{k[1]} is not a pod network (spec.podNetwork: true)")
        pod.pod_network = k
    else:
        pod.pod_network = intent.pod_network_of(pod.namespace)
    for i, ref in enumerate(pod.networks):
        if ref not in intent.virtual_networks:
            nad = intent.attachment_definitions.get(ref)
            where = pod.attachments[i].path if i < len(pod.attachments) else \
                f'metadata.annotations["{NETWORKS_ANNOTATION}"]'
            raise src.error(where, f"no VirtualNetwork {ref[0]}/{ref[1]}" +
                            (" (nor a NetworkAttachmentDefinition of that name)" if nad is None else ""))
    atts = [pod.primary or Attachment("", "eth0")] + (pod.attachments or [Attachment("") for _ in pod.networks])
    pod.ifnames, pod.macs, pod.iface_ips = {}, {}, {}
    taken: dict[str, str] = {}
    for idx, att in enumerate(atts):
        name = att.ifname or f"eth{idx}"
        if name in taken:
            raise src.error(f"{att.path}.interface" if att.path.endswith("]") else att.path,
                            f"interface {name} is given twice in the pod (also {taken[name]})")
        taken[name] = att.path or "the pod network"
        pod.ifnames[idx] = name
    ifaces = pod.interfaces
    for idx, att in enumerate(atts):
        vk = ifaces[idx]
        subs = intent.vn_subnets(intent.virtual_networks[vk])
        if att.mac is not None:
            other = macs.get((vk, att.mac))
            if other is not None:
                raise src.error(f"{att.path}.mac", f"{att.mac} in {vk[0]}/{vk[1]} already taken by Pod {other}")
            macs[(vk, att.mac)] = f"{pod.namespace}/{pod.name}"
            pod.macs[idx] = att.mac
        for ip, plen, fld in att.ips:
            sub = next((s for s in subs if s.cidr.version == ip.version and ip in s.cidr), None)
            if sub is None:
                raise src.error(fld, f"{ip} is outside the subnets of {vk[0]}/{vk[1]} ("
                                f"{', '.join(str(s.cidr) for s in subs)})")
            _check_fixed(src, fld, ip, plen, sub)
            _take_fixed(src, fld, pod, idx, vk, ip, fixed)
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
        _check_fixed(src, fld, ip, None, sub)
        idx = ifaces.index(vk, 1) if vk in ifaces[1:] else 0
        _take_fixed(src, fld, pod, idx, vk, ip, fixed)
        pod.fixed_ips.setdefault(vk, []).append(ip)


def _take_fixed(src: Source, fld: str, pod: Pod, idx: int, vk: Key, ip: IPAddress, fixed: dict) -> None:
    other = fixed.get((vk, ip))
    if other is not None:
        raise src.error(fld, f"{ip} in {vk[0]}/{vk[1]} already taken by Pod {other.namespace}/{other.name}")
    have = pod.iface_ips.setdefault(idx, [])
    if any(a.version == ip.version for a in have):
        raise src.error(fld, f"interface {pod.ifnames.get(idx, idx)} already has a fixed IPv{ip.version} address "
                        f"({next(a for a in have if a.version == ip.version)})")
    fixed[(vk, ip)] = pod
    have.append(ip)


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
    macs: dict[tuple[Key, str], str] = {}
    for pod in intent.pods.values():
        _validate_pod(intent, pod, fixed, macs)


# ---------------------------------------------------------------------------------------------- entry point


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
            raise IntentFormatError(f"cannot read: {e.strerror or e}", file=str(item)) from None
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
    ndocs, names = 0, []
    for n, item in enumerate(sources, 1):
        name, text = _read(item, n)
        try:
            docs = F.load_yaml(text, multi=True)      # a key given twice is refused, naming its line
        except F.FieldError as e:
            raise IntentFormatError(e.msg, file=name, field=e.path) from None
        for i, body in enumerate(docs, 1):
            if body is None:
                continue
            ndocs += 1
            _parse_doc(intent, _Doc(name, i, body))
        names.append(name)
    if not ndocs:
        raise IntentFormatError(f"no intent: no YAML document in {', '.join(names) or 'no file'}")
    if ndocs == len(intent.ignored):
        raise IntentFormatError(f"no intent: none of the {ndocs} documents is of a kind the agent reads "
                                f"(ignored: {'; '.join(str(i) for i in intent.ignored[:3])}"
                                f"{'; ...' if ndocs > 3 else ''})")
    _networks_from_nads(intent)
    _synthesize_pod_networks(intent, default_pod_cidr, isolated_pool, isolated_prefixlen)
    _validate_networks(intent)
    _validate(intent)
    return intent
