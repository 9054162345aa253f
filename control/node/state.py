"""One node's desired state: ``NodeState`` (the compiler makes it, the pushers send it), its wire form on
the cluster<->node channel, and its digests in the canonical form of control/digest.py.

Wire form (msgpack; no tuple keys, routes as columns)::

    {"name": str,
     "vrfs": [vrf_add body], "vifs": [vif_add body], "nhs": [nh_add body], "labels": [label_add body],
     "vnis": [vni_add body], "policies": [policy_set body],
     "routes": [route_add body: {vrf, family, addrs, lens, nhs}, one or more per VRF and family]}

``from_wire`` checks every body with the vrouter control protocol's own schema for its op (a node agent
refuses a state its vrouter would refuse, naming the field: ``b.state.vifs[3].tap.pod_mac``), refuses an
object given twice, and keeps the bodies as they came (``from_wire(to_wire(s)) == s``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from control import digest as D
from control import protocol as P

# NodeState attribute -> (the op whose body it holds, the body's key field)
TABLES = {"vrfs": ("vrf_add", "vrf"), "vifs": ("vif_add", "id"), "nhs": ("nh_add", "id"),
          "labels": ("label_add", "label"), "vnis": ("vni_add", "vni"), "policies": ("policy_set", "id")}
KIND_OF = {"vrfs": "vrf", "vifs": "vif", "nhs": "nh", "labels": "label", "vnis": "vni", "policies": "policy"}
WIRE_KEYS = ("name",) + tuple(TABLES) + ("routes",)


@dataclass
class NodeState:
    """One node's desired tables, as control-channel bodies keyed by their ids. ``control``: the node's
    vrouter endpoint when the cluster agent pushes it directly (its Node has spec.control), else None."""
    name: str
    control: str | None = None
    vrfs: dict[int, dict] = field(default_factory=dict)               # vrf -> vrf_add body
    vifs: dict[int, dict] = field(default_factory=dict)               # vif id -> vif_add body (with tap)
    nhs: dict[int, dict] = field(default_factory=dict)                # nh id -> nh_add body
    labels: dict[int, dict] = field(default_factory=dict)             # label -> label_add body
    vnis: dict[int, dict] = field(default_factory=dict)               # vni -> vni_add body
    routes: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)   # (vrf, family) -> prefix -> nh
    policies: dict[int, dict] = field(default_factory=dict)           # vif id -> policy_set body (kind vif)

    def tables_equal(self, other: "NodeState | None") -> bool:
        """The same tables (``control`` aside)."""
        return other is not None and all(getattr(self, t) == getattr(other, t) for t in (*TABLES, "routes"))


def _sorted_routes(table: dict[str, int]) -> list[tuple]:
    nets = [(D._net(p), n) for p, n in table.items()]
    nets.sort(key=lambda x: (x[0].network_address, x[0].prefixlen))
    return nets


def route_bodies(vrf: int, family: int, table: dict[str, int]) -> list[dict]:
    """The table as route_add bodies (columns, sorted by address then length), MAX_ROUTES each."""
    nets = _sorted_routes(table)
    out = []
    for k in range(0, len(nets), P.MAX_ROUTES):
        part = nets[k:k + P.MAX_ROUTES]
        out.append(P.pack_routes(family, [n for n, _ in part], [h for _, h in part], vrf=vrf))
    return out


def to_wire(st: NodeState) -> dict:
    out = {"name": st.name}
    for t in TABLES:
        out[t] = [b for _, b in sorted(getattr(st, t).items())]
    out["routes"] = [b for (vrf, fam), table in sorted(st.routes.items()) if table
                     for b in route_bodies(vrf, fam, table)]
    return out


def _bad(path, msg):
    raise P.ProtocolError(P.INVALID, path, msg)


def from_wire(d, path: str = "b.state", control: str | None = None) -> NodeState:
    """A NodeState from its wire form; ProtocolError("invalid", path, why) naming the first bad field."""
    if not isinstance(d, dict):
        _bad(path, f"must be a map, got {type(d).__name__}")
    for k in d:
        if k not in WIRE_KEYS:
            _bad(f"{path}.{k}", "unknown field")
    for k in WIRE_KEYS:
        if k not in d:
            _bad(f"{path}.{k}", "required")
    name = d["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 253:
        _bad(f"{path}.name", "must be a node name (a string of 1..253 characters)")
    st = NodeState(name, control)
    checked: set[bytes] = set()                   # rule lists checked already (every pod of a policy has one)
    for t, (op, key) in TABLES.items():
        items = d[t]
        if not isinstance(items, list):
            _bad(f"{path}.{t}", f"must be a list, got {type(items).__name__}")
        table = getattr(st, t)
        for i, b in enumerate(items):
            p = f"{path}.{t}[{i}]"
            if t == "policies" and isinstance(b, dict) and isinstance(b.get("rules"), list):
                rules = msgpack.packb(b["rules"], use_bin_type=True)
                P.OPS[op](dict(b, rules=[]) if rules in checked else b, p)   # the vrouter's own schema
                checked.add(rules)
            else:
                P.OPS[op](b, p)                   # the vrouter's own schema for this op
            if t == "policies" and b["kind"] != "vif":
                _bad(f"{p}.kind", "a node state holds vif policies only")
            if b[key] in table:
                _bad(f"{p}.{key}", f"{KIND_OF[t]} {b[key]} given twice")
            table[b[key]] = b
    if not isinstance(d["routes"], list):
        _bad(f"{path}.routes", f"must be a list, got {type(d['routes']).__name__}")
    for i, b in enumerate(d["routes"]):
        p = f"{path}.routes[{i}]"
        P.OPS["route_add"](b, p)
        table = st.routes.setdefault((b["vrf"], b["family"]), {})
        for j, (prefix, nh) in enumerate(P.unpack_routes(b)):
            if prefix in table:
                _bad(f"{p}.addrs[{j}]", f"route {prefix} of VRF {b['vrf']} given twice")
            table[prefix] = nh
    return st


# ---------------------------------------------------------------------------------------------- digests

def entries(st: NodeState, kind: str) -> dict[str, list]:
    """``{key: canonical value}`` of one kind of the desired tables (control.digest), each body normalised
    by the protocol's schema first, as the vrouter stores it (policies: the canonical form fills in the
    rules' defaults itself, and checking every rule of every pod's list again would cost seconds)."""
    t = {v: k for k, v in KIND_OF.items()}[kind]
    op = TABLES[t][0]
    if kind == "policy":
        return dict(D.entry(kind, b) for b in getattr(st, t).values())
    return dict(D.entry(kind, P.validate_body(op, b)) for b in getattr(st, t).values())


def route_tables(st: NodeState) -> dict[str, str]:
    """``{"vrf/family": digest}`` of every non-empty route table."""
    out = {}
    for (vrf, fam), table in st.routes.items():
        if not table:
            continue
        nets = _sorted_routes(table)
        body = P.pack_routes(fam, [n for n, _ in nets], [h for _, h in nets])
        out[D.route_key(vrf, fam)] = D.route_table_digest(fam, body["addrs"], body["lens"], body["nhs"])
    return out


def digests(st: NodeState) -> tuple[dict[str, str], dict[str, str]]:
    """(per-kind digests, per-route-table digests) of the desired state, as the ``digest`` op answers."""
    tables = route_tables(st)
    kinds = {k: D.digest(entries(st, k)) for k in D.TABLE_KINDS}
    kinds["route"] = D.routes_digest(tables)
    return kinds, tables
