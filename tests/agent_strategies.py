"""Random CN2-style intents for the agent's property tests (test_agent_reach.py, test_agent_diff.py).

An ``IntentSpec`` is plain data (nodes, VNs, VNRs, pods, policies) that ``.yaml()`` renders as the
multi-document YAML a user would write; the tests keep the data to build their own models from it.
Every VN has its own subnets (10.<index>.0.0/24, optionally fd00:<index>::/64), so addresses never
overlap between VNs; VNs live in ``ns-a`` / ``ns-b`` (never ``default``, whose pod network stays apart).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import yaml
from hypothesis import strategies as st

CN2 = "core.contrail.juniper.net/v1alpha1"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NAMESPACES = ("ns-a", "ns-b")
VN_LABELS = {"color": ("red", "green"), "tier": ("web", "db")}
VNR_LABELS = {"grp": ("g1", "g2"), "side": ("left", "right")}
POD_LABELS = {"app": ("a", "b")}
VNR_TYPES = ("mesh", "hub", "spoke")
VN_INDICES = range(10)


@dataclass
class VNSpec:
    index: int
    namespace: str
    labels: dict[str, str]
    v6: bool = False
    vni: int | None = None

    @property
    def name(self) -> str:
        return f"vn{self.index}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def cidr4(self) -> str:
        return f"10.{self.index}.0.0/24"

    @property
    def cidr6(self) -> str:
        return f"fd00:{self.index}::/64"


@dataclass
class ImportSpec:
    selector: dict[str, str]                  # virtualNetworkRouterSelector.matchLabels
    namespace_selector: dict[str, str] | None  # None: not written (the VNR's own namespace)
    expressions: list[dict] = field(default_factory=list)   # virtualNetworkRouterSelector.matchExpressions

    def raw_selector(self) -> dict:
        return _raw(self.selector, self.expressions)


@dataclass
class VNRSpec:
    name: str
    namespace: str
    type: str
    labels: dict[str, str]
    selector: dict[str, str]                  # virtualNetworkSelector.matchLabels ({}: every VN of the ns)
    imports: list[ImportSpec] = field(default_factory=list)
    expressions: list[dict] = field(default_factory=list)   # virtualNetworkSelector.matchExpressions

    def raw_selector(self) -> dict:
        return _raw(self.selector, self.expressions)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass
class PodSpec:
    name: str
    namespace: str
    node: int
    labels: dict[str, str]
    networks: list[tuple[str, str]]           # the annotation's VNs, in order

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass
class PolicySpec:
    name: str
    namespace: str
    pod_selector: dict[str, str]
    from_pod_selector: dict[str, str]


@dataclass
class IntentSpec:
    nodes: list[int]
    vns: list[VNSpec]
    vnrs: list[VNRSpec] = field(default_factory=list)
    pods: list[PodSpec] = field(default_factory=list)
    policies: list[PolicySpec] = field(default_factory=list)

    def docs(self) -> list[dict]:
        out: list[dict] = []
        for n in self.nodes:
            out.append({"apiVersion": "vrouter.io/v1", "kind": "Node", "metadata": {"name": f"node-{n}"},
                        "spec": {"fabricAddress": f"192.0.2.{n}", "control": f"ipc:///tmp/x-{n}",
                                 "fabricMac": f"02:00:00:00:00:{n:02x}"}})
        for vn in self.vns:
            out.append({"apiVersion": CN2, "kind": "Subnet",
                        "metadata": {"name": f"{vn.name}-v4", "namespace": vn.namespace}, "spec": {"cidr": vn.cidr4}})
            spec: dict = {"v4SubnetReference": {"name": f"{vn.name}-v4"}}
            if vn.v6:
                out.append({"apiVersion": CN2, "kind": "Subnet",
                            "metadata": {"name": f"{vn.name}-v6", "namespace": vn.namespace},
                            "spec": {"cidr": vn.cidr6}})
                spec["v6SubnetReference"] = {"name": f"{vn.name}-v6", "namespace": vn.namespace}
            if vn.vni is not None:
                spec["vxlanNetworkIdentifier"] = vn.vni
            out.append({"apiVersion": CN2, "kind": "VirtualNetwork",
                        "metadata": {"name": vn.name, "namespace": vn.namespace, "labels": dict(vn.labels)},
                        "spec": spec})
        for r in self.vnrs:
            spec = {"type": r.type, "virtualNetworkSelector": r.raw_selector()}
            if r.imports:
                imps = []
                for imp in r.imports:
                    e: dict = {"virtualNetworkRouterSelector": imp.raw_selector()}
                    if imp.namespace_selector is not None:
                        e["namespaceSelector"] = ({"matchLabels": dict(imp.namespace_selector)}
                                                  if imp.namespace_selector else {})
                    imps.append(e)
                spec["import"] = {"virtualNetworkRouters": imps}
            out.append({"apiVersion": CN2, "kind": "VirtualNetworkRouter",
                        "metadata": {"name": r.name, "namespace": r.namespace, "labels": dict(r.labels)},
                        "spec": spec})
        for p in self.pods:
            meta: dict = {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels)}
            if p.networks:
                meta["annotations"] = {NETWORKS_ANNOTATION: ", ".join(f"{ns}/{vn}" for ns, vn in p.networks)}
            out.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                        "spec": {"nodeName": f"node-{p.node}", "containers": [{"name": "c", "image": "busybox"}]}})
        for np_ in self.policies:
            out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": np_.name, "namespace": np_.namespace},
                        "spec": {"podSelector": {"matchLabels": dict(np_.pod_selector)}, "policyTypes": ["Ingress"],
                                 "ingress": [{"from": [{"podSelector": {"matchLabels": dict(np_.from_pod_selector)}}]}]}})
        return out

    def yaml(self) -> str:
        return yaml.safe_dump_all(self.docs(), sort_keys=False)

    def vn(self, key) -> VNSpec:
        return next(v for v in self.vns if v.key == tuple(key))


def _raw(match_labels: dict, expressions: list[dict]) -> dict:
    """A LabelSelector's YAML form (matchExpressions only when there are some)."""
    out: dict = {"matchLabels": dict(match_labels)}
    if expressions:
        out["matchExpressions"] = copy.deepcopy(expressions)
    return out


# ---------------------------------------------------------------------------------------------- strategies

def label_sets(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[dict[str, str]]:
    """A random subset of the pool's keys, each with one of its values ({} included)."""
    return st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in pool.items()})


def namespace_selectors(spaces) -> st.SearchStrategy[dict[str, str] | None]:
    return st.one_of(st.none(), st.just({}),
                     st.sampled_from(tuple(spaces) + ("ns-z",)).map(lambda n: {NS_NAME_LABEL: n}))


@st.composite
def expressions(draw, pool: dict[str, tuple[str, ...]]) -> list[dict]:
    """Mostly none; else 1-2 matchExpressions of any operator over the pool's keys and values."""
    if draw(st.integers(0, 3)):
        return []
    out = []
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(sorted(pool)))
        op = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
        e = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            e["values"] = draw(st.lists(st.sampled_from(pool[key]), min_size=1, max_size=2, unique=True))
        out.append(e)
    return out


def sub_labels(labels: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    """A selector matching ``labels``: a subset of them."""
    return st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in labels.items()})


@st.composite
def vnr_specs(draw, name: str, spaces, vns: list[VNSpec]) -> VNRSpec:
    """A VNR without imports; mostly in the namespace of some VN and selecting it (and others alike)."""
    if draw(st.integers(0, 4)):
        vn = draw(st.sampled_from(vns))
        ns, sel = vn.namespace, draw(sub_labels(vn.labels))
        if not sel and vn.labels and draw(st.integers(0, 3)):
            k = draw(st.sampled_from(sorted(vn.labels)))
            sel = {k: vn.labels[k]}
    else:
        ns, sel = draw(st.sampled_from(spaces)), draw(label_sets(VN_LABELS))
    return VNRSpec(name, ns, draw(st.sampled_from(VNR_TYPES)), draw(label_sets(VNR_LABELS)), sel,
                   expressions=draw(expressions(VN_LABELS)))


@st.composite
def import_specs(draw, r: VNRSpec, vnrs: list[VNRSpec], spaces) -> list[ImportSpec]:
    """0-2 imports for ``r``, mostly aimed at another VNR (a subset of its labels, a namespace selector
    that may or may not reach its namespace), sometimes at random."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        if vnrs and draw(st.integers(0, 4)):
            t = draw(st.sampled_from(vnrs))
            sel = draw(sub_labels(t.labels))
            nss = draw(st.sampled_from([None, {}, {NS_NAME_LABEL: t.namespace}, {NS_NAME_LABEL: r.namespace}]))
        else:
            sel, nss = draw(label_sets(VNR_LABELS)), draw(namespace_selectors(spaces))
        out.append(ImportSpec(sel, nss, draw(expressions(VNR_LABELS))))
    return out


@st.composite
def vn_specs(draw, index: int, spaces) -> VNSpec:
    labels = draw(label_sets(VN_LABELS))
    if draw(st.booleans()):
        labels["id"] = str(index)           # lets a selector pick this VN alone
    return VNSpec(index, draw(st.sampled_from(spaces)), labels, draw(st.booleans()),
                  draw(st.one_of(st.none(), st.just(100 + index))))


@st.composite
def pod_specs(draw, name: str, vn: VNSpec, vns: list[VNSpec], nodes: list[int], spaces) -> PodSpec:
    """A pod attached to ``vn`` (and sometimes to a second network, possibly the same one again)."""
    nets = [vn.key]
    if draw(st.integers(0, 3)) == 0:
        nets.append(draw(st.sampled_from(vns)).key)
    return PodSpec(name, draw(st.sampled_from((vn.namespace,) + tuple(spaces))), draw(st.sampled_from(nodes)),
                   draw(label_sets(POD_LABELS)), nets)


@st.composite
def intent_specs(draw, policies: bool = True) -> IntentSpec:
    nodes = list(range(1, draw(st.integers(2, 3)) + 1))
    spaces = NAMESPACES if draw(st.booleans()) else NAMESPACES[:1]
    indices = draw(st.lists(st.sampled_from(VN_INDICES), min_size=2, max_size=6, unique=True))
    vns = [draw(vn_specs(i, spaces)) for i in indices]
    vnrs = [draw(vnr_specs(f"vnr{k}", spaces, vns)) for k in range(draw(st.integers(0, 5)))]
    for r in vnrs:
        r.imports = draw(import_specs(r, vnrs, spaces))
    if len(vnrs) >= 2 and draw(st.booleans()):
        # often a pair whose import is honoured (mesh-mesh, hub-spoke), one way or both
        r, t = draw(st.permutations(vnrs))[:2]
        r.type, t.type = draw(st.sampled_from([("mesh", "mesh"), ("hub", "spoke"), ("spoke", "hub")]))
        for a, b in ((r, t), (t, r))[:draw(st.integers(1, 2))]:
            a.imports.append(ImportSpec(draw(sub_labels(b.labels)),
                                        None if a.namespace == b.namespace else {NS_NAME_LABEL: b.namespace}))
    pods = []
    for vn in vns:
        for _ in range(draw(st.integers(1, 3))):
            pods.append(draw(pod_specs(f"p{len(pods)}", vn, vns, nodes, spaces)))
    pols = []
    if policies:
        for k in range(draw(st.integers(0, 2))):
            pols.append(PolicySpec(f"np{k}", draw(st.sampled_from(spaces)), draw(label_sets(POD_LABELS)),
                                   draw(label_sets(POD_LABELS))))
    return IntentSpec(nodes, vns, vnrs, pods, pols)


MUTATIONS = ("move_pod", "drop_pod", "add_pod", "repoint_pod", "relabel_vn", "drop_vn", "add_vn", "toggle_v6",
             "toggle_vni", "move_vn", "drop_vnr", "add_vnr", "retype_vnr", "relabel_vnr", "add_node", "drop_node",
             "policies")


@st.composite
def mutated(draw, spec: IntentSpec) -> IntentSpec:
    """``spec`` with 1-4 random edits (what a user changing the intent files would do)."""
    s = copy.deepcopy(spec)
    spaces = NAMESPACES
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(MUTATIONS))
        if op == "move_pod" and s.pods:
            draw(st.sampled_from(s.pods)).node = draw(st.sampled_from(s.nodes))
        elif op == "drop_pod" and s.pods:
            s.pods.remove(draw(st.sampled_from(s.pods)))
        elif op == "add_pod":
            names = {p.name for p in s.pods}
            name = next(f"p{i}" for i in range(100) if f"p{i}" not in names)
            s.pods.append(draw(pod_specs(name, draw(st.sampled_from(s.vns)), s.vns, s.nodes, spaces)))
        elif op == "repoint_pod" and s.pods:
            p = draw(st.sampled_from(s.pods))
            p.networks = [v.key for v in draw(st.lists(st.sampled_from(s.vns), max_size=2))]
        elif op == "relabel_vn":
            draw(st.sampled_from(s.vns)).labels = draw(label_sets(VN_LABELS))
        elif op == "drop_vn" and len(s.vns) > 2:
            vn = draw(st.sampled_from(s.vns))
            s.vns.remove(vn)
            for p in s.pods:
                p.networks = [k for k in p.networks if k != vn.key]
        elif op == "add_vn":
            free = [i for i in VN_INDICES if i not in {v.index for v in s.vns}]
            if free:
                s.vns.append(draw(vn_specs(draw(st.sampled_from(free)), spaces)))
        elif op == "toggle_v6":
            vn = draw(st.sampled_from(s.vns))
            vn.v6 = not vn.v6
        elif op == "toggle_vni":
            vn = draw(st.sampled_from(s.vns))
            vn.vni = None if vn.vni is not None else 100 + vn.index
        elif op == "move_vn":       # the same subnet, now a VN of the other namespace
            vn = draw(st.sampled_from(s.vns))
            old = vn.key
            vn.namespace = NAMESPACES[1] if vn.namespace == NAMESPACES[0] else NAMESPACES[0]
            for p in s.pods:
                p.networks = [vn.key if k == old else k for k in p.networks]
        elif op == "drop_vnr" and s.vnrs:
            s.vnrs.remove(draw(st.sampled_from(s.vnrs)))
        elif op == "add_vnr":
            names = {r.name for r in s.vnrs}
            r = draw(vnr_specs(next(f"vnr{i}" for i in range(100) if f"vnr{i}" not in names), spaces, s.vns))
            r.imports = draw(import_specs(r, s.vnrs, spaces))
            s.vnrs.append(r)
        elif op == "retype_vnr" and s.vnrs:
            draw(st.sampled_from(s.vnrs)).type = draw(st.sampled_from(VNR_TYPES))
        elif op == "relabel_vnr" and s.vnrs:
            r = draw(st.sampled_from(s.vnrs))
            r.selector = draw(label_sets(VN_LABELS))
            r.expressions = draw(expressions(VN_LABELS))
            r.labels = draw(label_sets(VNR_LABELS))
        elif op == "add_node" and len(s.nodes) < 3:
            s.nodes.append(next(n for n in range(1, 4) if n not in s.nodes))
        elif op == "drop_node" and len(s.nodes) > 2:
            gone = draw(st.sampled_from(s.nodes))
            s.nodes.remove(gone)
            for p in s.pods:
                if p.node == gone:
                    p.node = draw(st.sampled_from(s.nodes))
        elif op == "policies":
            s.policies = [PolicySpec(f"np{k}", draw(st.sampled_from(spaces)), draw(label_sets(POD_LABELS)),
                                     draw(label_sets(POD_LABELS))) for k in range(draw(st.integers(0, 2)))]
    return s


@st.composite
def spec_pairs(draw) -> tuple[IntentSpec, IntentSpec]:
    """(A, B): B is either an edit of A (mostly) or an unrelated intent sharing its small name pools."""
    a = draw(intent_specs())
    b = draw(intent_specs()) if draw(st.integers(0, 3)) == 0 else draw(mutated(a))
    return a, b
