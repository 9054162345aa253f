"""node.yaml's tables as control-protocol operations: one write path into a node's tables.

The static part of the configuration (the pods' vifs, ``nexthops``, ``routes``, ``labels``, ``vnis``,
and the fabric vif) is compiled to the same operations the agent sends (``vrf_add``, ``vif_add`` with
its TAP device, ``nh_add``, ``label_add``, ``vni_add``, ``route_add``), validated by the protocol's
schema (control.protocol.validate_body) and applied by the node's control backend under the reserved
generation ``STATIC`` (0: snapshots use 1 and up, and the sweep never removes generation 0). So start-up
and ``vrouter run --check`` refuse exactly what an agent's request would be refused for, and every
error names the configuration's field: ``routes[3].nh: next hop 99 does not exist``.

    ops = compile_static(conf, fabric=FabricLink(mac, mtu))
    apply_static(backend, ops)          # ConfigError naming the field, at the first refusal

Defaults filled in here, as documented in vrouter/config.py: a tunnel next hop's ``vif`` (the fabric,
0), ``src`` (the fabric's address of its family), ``dmac`` (fabric.gateway_mac) and, for VXLAN,
``inner_dmac`` (node.router_mac). A vif makes its interface next hop (id ``nh``, default its id) and
host routes to its addresses. VRFs are declared by use.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from control import protocol as P
from vrouter.config import FABRIC_VIF, ConfigError, NodeConf

STATIC = 0     # the generation of everything applied from the configuration


@dataclass(frozen=True)
class FabricLink:
    """What the fabric interface is: its MAC and MTU (read from the device at start)."""
    mac: str
    mtu: int


@dataclass
class Op:
    """One operation and where it came from: ``where`` is the configuration path of its body
    ("nexthops[2]"); ``fields`` renames body fields (dotted paths) to the configuration's names."""
    op: str
    body: dict
    where: str
    fields: dict | None = None

    def config_field(self, field: str | None) -> str:
        """The configuration path for a protocol error's field ("b.tap.pod_mac" -> "vifs[0].mac")."""
        if not field or field == "b":
            return self.where
        rest = field[2:] if field.startswith("b.") else field
        for key in sorted(self.fields or (), key=len, reverse=True):
            if rest == key or rest.startswith((key + ".", key + "[")):
                rest = self.fields[key] + rest[len(key):]
                break
        return f"{self.where}.{rest}"


class _RouteOp(Op):
    """A route_add batch: ``rows[k]`` says which entry row k of the columns came from: ("routes", i)
    or ("vif", i) for a vif's host route."""

    def __init__(self, body: dict, rows: list):
        super().__init__("route_add", body, "routes")
        self.rows = rows

    def config_field(self, field: str | None) -> str:
        m = re.match(r"b\.(addrs|lens|nhs)\[(\d+)\]", field or "")
        kind, i = self.rows[int(m.group(2))] if m else self.rows[0]
        if kind == "vif":
            return f"vifs[{i}]" + ((".nh" if m.group(1) == "nhs" else ".ip") if m else "")
        col = {"addrs": ".prefix", "lens": ".prefix", "nhs": ".nh"}[m.group(1)] if m else \
            (".vrf" if field == "b.vrf" else "")
        return f"routes[{i}]{col}"


# vif_add body fields -> vifs[i] fields
_VIF_FIELDS = {"tap.name": "name", "tap.netns": "netns", "tap.pod_mac": "mac", "tap.ip": "ip", "tap.ip6": "ip6",
               "gw4": "gateway", "gw6": "gateway6", "prefixes": "ip"}


def _vif_op(i, v, router_mac) -> Op:
    tap = {"name": v.name, "pod_mac": v.mac}
    if v.netns:
        tap["netns"] = v.netns
    if v.ip is not None:
        tap["ip"] = str(v.ip)
    if v.ip6 is not None:
        tap["ip6"] = str(v.ip6)
    body = {"id": v.id, "kind": "virtual", "vrf": v.vrf, "mac": router_mac, "mtu": v.mtu, "policy": v.policy,
            "prefixes": [f"{a.ip}/{a.max_prefixlen}" for a in (v.ip, v.ip6) if a is not None], "tap": tap}
    if v.gateway is not None:
        body["gw4"] = str(v.gateway)
    if v.gateway6 is not None:
        body["gw6"] = str(v.gateway6)
    return Op("vif_add", body, f"vifs[{i}]", _VIF_FIELDS)


def _tunnel_defaults(conf: NodeConf, i: int, x: dict) -> dict:
    """A tunnel entry with the defaults of vrouter/config.py filled in."""
    f, w = conf.fabric, f"nexthops[{i}]"
    if f is None:
        raise ConfigError(f"{w}.type: a tunnel needs the fabric section")
    body = dict(x)
    body.setdefault("vif", FABRIC_VIF)
    fam = 4
    dst = body.get("dst")
    if isinstance(dst, str):
        try:
            fam = ipaddress.ip_address(dst).version
        except ValueError:
            pass            # the protocol's check names it
    if "src" not in body:
        src = f.ip if fam == 4 else f.ip6
        if src is None:
            raise ConfigError(f"{w}.src: missing, and the fabric has no IPv{fam} address to default to")
        body["src"] = str(src)
    if "dmac" not in body:
        if f.gateway_mac is None:
            raise ConfigError(f"{w}.dmac: missing, and fabric.gateway_mac is not set")
        body["dmac"] = f.gateway_mac
    if body.get("encap", "vxlan") == "vxlan" and "inner_dmac" not in body:
        body["inner_dmac"] = conf.router_mac
    return body


def _dupes(items, key, what: str, where: str) -> None:
    seen = {}
    for i, x in enumerate(items):
        k = x.get(key)
        if isinstance(k, (int, str)) and not isinstance(k, bool):
            if k in seen:
                raise ConfigError(f"{where}[{i}].{key}: {what} {k} defined twice (first in {where}[{seen[k]}])")
            seen[k] = i


def compile_static(conf: NodeConf, fabric: FabricLink | None = None) -> list[Op]:
    """The configuration's tables as operations, in an order where every reference exists before it is
    used (the fabric vif, VRFs, vifs, next hops with ECMP groups last, labels, VNIs, routes)."""
    ops: list[Op] = []
    if conf.fabric is not None:
        if fabric is None:
            raise ValueError("compile_static: the fabric section needs the fabric link's MAC and MTU")
        f = conf.fabric
        ops.append(Op("vif_add", {"id": FABRIC_VIF, "kind": "fabric", "mac": fabric.mac, "mtu": fabric.mtu,
                                  "prefixes": [f"{a}/{a.max_prefixlen}" for a in (f.ip, f.ip6) if a is not None]},
                      "fabric", {"mac": "interface", "mtu": "interface", "prefixes": "ip"}))
    # VRFs are declared by use: the first entry that names one is where an error about it points
    vrfs: dict[int, str] = {}
    for i, v in enumerate(conf.vifs):
        vrfs.setdefault(v.vrf, f"vifs[{i}]")
    for name, items in (("vnis", conf.vnis), ("routes", conf.routes),
                        ("nexthops", [x for x in conf.nexthops if x.get("type") == "vrf"])):
        for i, x in enumerate(items):
            vrf = x.get("vrf")
            if isinstance(vrf, int) and not isinstance(vrf, bool):
                vrfs.setdefault(vrf, f"{name}[{i}]")
    for vrf, where in vrfs.items():
        ops.append(Op("vrf_add", {"vrf": vrf}, where, {"vrf": "vrf"}))
    # next-hop ids: the vifs' own and the nexthops section share one space
    nh_ids = {v.nh: f"vifs[{i}].nh" for i, v in enumerate(conf.vifs)}
    for i, x in enumerate(conf.nexthops):
        nid = x.get("id")
        if isinstance(nid, int) and not isinstance(nid, bool):
            if nid in nh_ids:
                raise ConfigError(f"nexthops[{i}].id: next hop {nid} defined twice (first by {nh_ids[nid]})")
            nh_ids[nid] = f"nexthops[{i}]"
    for i, v in enumerate(conf.vifs):
        ops.append(_vif_op(i, v, conf.router_mac))
        ops.append(Op("nh_add", {"id": v.nh, "type": "interface", "vif": v.id, "dmac": v.mac}, f"vifs[{i}]",
                      {"id": "nh", "vif": "id", "dmac": "mac"}))
    # members before the ECMP groups that name them
    order = sorted(range(len(conf.nexthops)), key=lambda i: conf.nexthops[i].get("type") == "ecmp")
    for i in order:
        x = conf.nexthops[i]
        body = _tunnel_defaults(conf, i, x) if x.get("type") == "tunnel" else dict(x)
        ops.append(Op("nh_add", body, f"nexthops[{i}]"))
    _dupes(conf.labels, "label", "label", "labels")
    for i, x in enumerate(conf.labels):
        ops.append(Op("label_add", dict(x), f"labels[{i}]"))
    _dupes(conf.vnis, "vni", "VNI", "vnis")
    for i, x in enumerate(conf.vnis):
        ops.append(Op("vni_add", dict(x), f"vnis[{i}]"))
    ops += _route_ops(conf)
    return ops


def _route_ops(conf: NodeConf) -> list[Op]:
    """Host routes of the vifs, then the routes section, as one route_add per (VRF, family)."""
    batches: dict[tuple, list] = {}
    for i, v in enumerate(conf.vifs):
        for a in (v.ip, v.ip6):
            if a is not None:
                batches.setdefault((v.vrf, a.version), []).append((f"{a.ip}/{a.max_prefixlen}", v.nh, ("vif", i)))
    seen: dict[tuple, int] = {}
    for i, r in enumerate(conf.routes):
        extra = sorted(set(r) - {"vrf", "prefix", "nh"})
        if extra:
            raise ConfigError(f"routes[{i}].{extra[0]}: unknown field (known: nh, prefix, vrf)")
        for k in ("vrf", "prefix", "nh"):
            if k not in r:
                raise ConfigError(f"routes[{i}].{k}: missing")
        try:
            net = P._net(f"routes[{i}].prefix", r["prefix"])
        except P.ProtocolError as e:
            raise ConfigError(f"{e.field}: {e.msg}") from None
        vrf = r["vrf"]
        if not isinstance(vrf, int) or isinstance(vrf, bool):
            raise ConfigError(f"routes[{i}].vrf: must be an integer 0..65535, got {vrf!r}")
        if (vrf, net) in seen:
            raise ConfigError(f"routes[{i}].prefix: {net} in VRF {vrf} given twice (first in routes[{seen[vrf, net]}])")
        seen[(vrf, net)] = i
        batches.setdefault((vrf, net.version), []).append((str(net), r["nh"], ("routes", i)))
    ops = []
    for (vrf, fam), rows in batches.items():
        nhs = [nh for _, nh, _ in rows]
        bad = next((k for k, nh in enumerate(nhs) if not isinstance(nh, int) or isinstance(nh, bool)
                    or not 0 <= nh < P.NO_ROUTE), None)
        if bad is not None:
            raise ConfigError(f"{_row_where(rows[bad][2])}.nh: must be a next-hop id 0..{P.NO_ROUTE - 1}, "
                              f"got {nhs[bad]!r}")
        body = P.pack_routes(fam, [p for p, _, _ in rows], nhs, vrf=vrf)
        ops.append(_RouteOp(body, [src for _, _, src in rows]))
    return ops


def _row_where(src) -> str:
    kind, i = src
    return f"vifs[{i}]" if kind == "vif" else f"routes[{i}]"


def apply_static(backend, ops: list[Op]) -> dict:
    """Validate each operation with the protocol's schema and apply it through the backend under the
    STATIC generation; the first refusal raises ConfigError naming the configuration's field. Returns
    counts per operation."""
    counts: dict[str, int] = {}
    for op in ops:
        try:
            body = P.validate_body(op.op, op.body)
            backend.apply(op.op, body, STATIC)
        except P.ProtocolError as e:
            raise ConfigError(f"{op.config_field(e.field)}: {e.msg}") from None
        counts[op.op] = counts.get(op.op, 0) + 1
    return counts
