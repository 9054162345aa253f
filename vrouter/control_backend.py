"""The node's side of the control channel: control.server.Backend over a Node's tables.

Each op checks what it refers to before it changes anything (a message is
applied whole or not at all): a route's next hops, a vif's VRF, a label's next
hop, a next hop's vif, ECMP members or VRF, a VNI's VRF, a policy's vif or VRF
must exist (``not_found`` naming the field: "b.members[1]"); a next-hop id must
fit this node's table (0..node.nexthops-1, ``invalid`` naming the field: the
protocol allows 2**24 ids, a node holds what it was configured for); a next hop
still used by a route, a label or an ECMP group, a vif still used by a next
hop, a VRF still used by a vif, a next hop, a route or a VNI are not deleted
(``in_use``). Errors are control.protocol.ProtocolError naming the field.

Generations: objects written while a snapshot is in progress are marked with
its generation; ``sweep(g)`` removes what the agent did not re-push (marked
older), routes included (compared as packed keys with numpy). The node's
static configuration is applied through this same backend (vrouter.static)
under the reserved generation STATIC (0), which the sweep never removes: it is
the bootstrap.
"""
from __future__ import annotations

import ipaddress
import logging

import numpy as np

from control import digest as D
from control import fields as F
from control import protocol as P
from vrouter.lpm import NO_ROUTE
from vrouter.nexthop import InUseError
from vrouter.static import STATIC

log = logging.getLogger("vrouter.control")


def _err(code, field, msg):
    return P.ProtocolError(code, field, msg)


class NodeBackend:
    def __init__(self, node):
        self.node = node
        self.dp = node.dp
        self.vrfs: dict[int, str] = {}
        self.gen: dict[tuple, int] = {}                 # (kind, id) -> generation of the last write
        self.pushed: dict[tuple, list] = {}             # (vrf, family) -> [keys arrays] in this snapshot
        self.static: dict[tuple, list] = {}             # (vrf, family) -> [keys arrays] of STATIC routes
        self.policies: dict[tuple, dict] = {}           # (kind, id) -> what policy_set gave

    def node_name(self) -> str:
        return self.node.conf.name

    def limits(self) -> dict:
        """What this node holds beyond the protocol's own ranges (hello's reply "limits")."""
        return {"nexthops": int(self.dp.nh.capacity)}

    # ------------------------------------------------------------------ dispatch
    def apply(self, op: str, body: dict, generation: int | None) -> dict:
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            raise _err(P.UNKNOWN_OP, "op", f"{op}: not supported by this vrouter")
        return fn(body, generation) or {}

    def _mark(self, kind, ident, generation):
        if generation is not None:
            self.gen[(kind, ident)] = generation
        elif (kind, ident) not in self.gen:
            self.gen[(kind, ident)] = -1            # written outside a snapshot: kept until one sweeps it

    # ------------------------------------------------------------------ references (checked before any change)
    def _need_vrf(self, vrf, field):
        if vrf not in self.vrfs:
            raise _err(P.NOT_FOUND, field, f"VRF {vrf} does not exist (vrf_add it first)")

    def _nh_id(self, nid, field):
        """A next-hop id this node's table holds, else ``invalid`` naming the field."""
        cap = self.dp.nh.capacity
        if not 0 <= nid < cap:
            raise _err(P.INVALID, field, f"next hop {nid} is beyond this node's next-hop table (ids 0..{cap - 1}, "
                                         f"node.nexthops)")
        return nid

    def _need_nh(self, nid, field) -> dict:
        item = self.dp.nh.nh(self._nh_id(nid, field))
        if item is None:
            raise _err(P.NOT_FOUND, field, f"next hop {nid} does not exist")
        return item

    def _need_vif(self, vid, field) -> dict:
        item = self.dp.nh.vif(vid)
        if item is None:
            raise _err(P.NOT_FOUND, field, f"vif {vid} does not exist")
        return item

    def _nh_refs(self, b):
        """What an nh_add / nh_update body refers to: its own id in range, its vif, its ECMP members
        (in range, not itself, existing, not ECMP), its VRF."""
        self._nh_id(b["id"], "b.id")
        t = b["type"]
        if t in ("interface", "tunnel"):
            self._need_vif(b["vif"], "b.vif")
        elif t == "vrf":
            self._need_vrf(b["vrf"], "b.vrf")
        elif t == "ecmp":
            for i, m in enumerate(b["members"]):
                if m is None:
                    continue
                f = f"b.members[{i}]"
                self._nh_id(m, f)
                if m == b["id"]:
                    raise _err(P.INVALID, f, f"next hop {m} is the ECMP next hop itself")
                if self._need_nh(m, f)["type"] == "ecmp":
                    raise _err(P.INVALID, f, f"next hop {m} is itself ECMP (members cannot be ECMP)")

    # ------------------------------------------------------------------ VRFs
    def op_vrf_add(self, b, g):
        self.vrfs[b["vrf"]] = b.get("name") or ""
        self._mark("vrf", b["vrf"], g)

    def op_vrf_del(self, b, g):
        vrf = b["vrf"]
        if vrf not in self.vrfs:
            raise _err(P.NOT_FOUND, "b.vrf", f"VRF {vrf} does not exist")
        users = [f"vif {i}" for i in self.dp.nh.vifs() if (self.dp.nh.vif(i) or {}).get("vrf") == vrf
                 and (self.dp.nh.vif(i) or {}).get("kind") != "fabric"]
        users += [f"vni {k}" for k, v in self.dp.nh.vnis().items() if v == vrf]
        users += [f"nh {i}" for i in self.dp.nh.nhs()
                  if (x := self.dp.nh.nh(i)) is not None and x["type"] == "vrf" and x["vrf"] == vrf]
        n = self.dp.lpm4.count(vrf) + self.dp.lpm6.count(vrf)
        if n:
            users.append(f"{n} routes")
        if users:
            raise _err(P.IN_USE, "b.vrf", f"VRF {vrf} in use by {', '.join(users[:8])}")
        del self.vrfs[vrf]
        self.gen.pop(("vrf", vrf), None)

    # ------------------------------------------------------------------ vifs
    def op_vif_add(self, b, g):
        return self._vif_set(b, g, add=True)

    def op_vif_update(self, b, g):
        if self.dp.nh.vif(b["id"]) is None:
            raise _err(P.NOT_FOUND, "b.id", f"vif {b['id']} does not exist")
        return self._vif_set(b, g, add=False)

    def _vif_set(self, b, g, add):
        vid = b["id"]
        if b["kind"] != "fabric":
            self._need_vrf(b["vrf"], "b.vrf")
        kw = {k: b[k] for k in ("kind", "vrf", "mac", "mtu", "vlan", "policy", "admin_down", "gw4", "gw6",
                                "prefixes") if k in b}
        tap = b.get("tap")
        had_tap = vid in self.node.taps
        if tap and had_tap and not self._same_device(vid, tap):
            self.node.remove_tap(vid)    # another device (address, namespace, ...): made anew below
            had_tap = False
        if tap and had_tap:
            self._tap_routes(vid, tap, b)
        existed = self.dp.nh.vif(vid) is not None
        try:
            self.dp.nh.set_vif(vid, **kw)
        except (ValueError, TypeError) as e:
            raise _err(P.INVALID, "b", str(e)) from None
        except InUseError as e:
            raise _err(P.IN_USE, "b.kind", str(e)) from None
        if tap and not had_tap:     # the vif first: the device's first frames find it
            try:
                self.node.add_tap(vid, tap, b.get("mtu", 1500), b.get("gw4"), b.get("gw6"))
            except Exception as e:  # noqa: BLE001 - device set-up fails in many ways (OSError, netlink, ...)
                if not existed:
                    self.dp.nh.del_vif(vid)
                if isinstance(e, F.FieldError):
                    raise _err(P.INVALID, e.path, e.msg) from None
                raise _err(P.INVALID, "b.tap", f"cannot set up the device: {e}") from None
        self._mark("vif", vid, g)

    def _same_device(self, vid, tap) -> bool:
        """A vif_add/vif_update for a vif with a device: True if ``tap`` names that device (then only
        the pod's routes may have to change); False if it is another one (the old is replaced)."""
        old = self.node.tap_specs.get(vid)
        if old is None:
            return True                  # a device of the static configuration: not ours to change
        return all(old.get(k) == tap.get(k) for k in ("name", "netns", "pod_mac", "ip", "ip6"))

    def _tap_routes(self, vid, tap, b):
        old = self.node.tap_specs.get(vid)
        if old is None:
            return
        gw4 = b.get("gw4") if tap.get("ip") else None
        gw6 = b.get("gw6") if tap.get("ip6") else None
        if (old.get("default_route", True), list(old.get("routes") or ()), old.get("gw4"), old.get("gw6")) != \
                (tap.get("default_route", True), list(tap.get("routes") or ()), gw4, gw6):
            try:
                self.node.update_tap_routes(vid, tap, b.get("gw4"), b.get("gw6"))
            except Exception as e:  # noqa: BLE001 - pyroute2's errors (the pod's namespace may be gone)
                raise _err(P.INVALID, "b.tap.routes", f"cannot set the routes of vif {vid}'s device: {e}") from None

    def op_vif_del(self, b, g):
        vid = b["id"]
        if self.dp.nh.vif(vid) is None:
            raise _err(P.NOT_FOUND, "b.id", f"vif {vid} does not exist")
        try:
            self.dp.nh.del_vif(vid)
        except InUseError as e:
            raise _err(P.IN_USE, "b.id", str(e)) from None
        if vid in self.node.taps:
            self.node.remove_tap(vid)
        self.gen.pop(("vif", vid), None)

    # ------------------------------------------------------------------ next hops
    def op_nh_add(self, b, g):
        return self._nh_set(b, g)

    def op_nh_update(self, b, g):
        self._need_nh(b["id"], "b.id")
        return self._nh_set(b, g)

    def _nh_set(self, b, g):
        self._nh_refs(b)
        kw = {k: v for k, v in b.items() if k not in ("id", "type")}
        try:
            self.dp.nh.set_nh(b["id"], b["type"], **kw)
        except InUseError as e:
            raise _err(P.IN_USE, "b.type", str(e)) from None
        except KeyError as e:
            raise _err(P.NOT_FOUND, "b", str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise _err(P.INVALID, _nh_field(e, b["id"]), str(e)) from None
        self._mark("nh", b["id"], g)

    def _routes_using(self, nh_id) -> str | None:
        for vrf in sorted(set(self.dp.lpm4.vrfs()) | set(self.dp.lpm6.vrfs())):
            for fam, t in ((4, self.dp.lpm4), (6, self.dp.lpm6)):
                _, _, nhs = t.dump(vrf)
                n = int(np.count_nonzero(nhs == nh_id))
                if n:
                    return f"{n} IPv{fam} routes of VRF {vrf}"
        return None

    def op_nh_del(self, b, g):
        nid = b["id"]
        self._need_nh(nid, "b.id")
        used = self._routes_using(nid)
        if used:
            raise _err(P.IN_USE, "b.id", f"next hop {nid} in use by {used}")
        try:
            self.dp.nh.del_nh(nid)
        except InUseError as e:
            raise _err(P.IN_USE, "b.id", str(e)) from None
        self.gen.pop(("nh", nid), None)

    # ------------------------------------------------------------------ routes
    def _table(self, family):
        return self.dp.lpm4 if family == 4 else self.dp.lpm6

    def op_route_add(self, b, g):
        vrf, fam = b["vrf"], b["family"]
        self._need_vrf(vrf, "b.vrf")
        nhs = b["nhs"]
        cap = self.dp.nh.capacity
        beyond = np.flatnonzero(nhs >= cap)
        if beyond.size:
            i = int(beyond[0])
            self._nh_id(int(nhs[i]), f"b.nhs[{i}]")
        absent = [int(u) for u in np.unique(nhs) if self.dp.nh.nh(int(u)) is None]
        if absent:
            i = int(np.flatnonzero(np.isin(nhs, absent))[0])          # the first route naming one
            raise _err(P.NOT_FOUND, f"b.nhs[{i}]", f"next hop {int(nhs[i])} does not exist")
        try:
            n = self._table(fam).insert_batch(vrf, b["addrs"], b["lens"], nhs)
        except (ValueError, TypeError) as e:
            raise _err(P.INVALID, "b.addrs", str(e)) from None
        if g is not None:
            (self.static if g == STATIC else self.pushed).setdefault((vrf, fam), []).append(
                _route_keys(fam, b["addrs"], b["lens"]))
        moved = self.dp.revalidate_flows(vrf) if n else 0
        return {"changed": int(n), "routes": int(len(nhs)), "flows_moved": int(moved)}

    def op_route_del(self, b, g):
        vrf, fam = b["vrf"], b["family"]
        try:
            n = self._table(fam).delete_batch(vrf, b["addrs"], b["lens"])
        except KeyError as e:
            raise _err(P.NOT_FOUND, "b.addrs", str(e).strip("'\"")) from None
        except (ValueError, TypeError) as e:
            raise _err(P.INVALID, "b.addrs", str(e)) from None
        moved = self.dp.revalidate_flows(vrf) if n else 0
        return {"deleted": int(n), "flows_moved": int(moved)}

    # ------------------------------------------------------------------ labels, VNIs, policy
    def op_label_add(self, b, g):
        self._need_nh(b["nh"], "b.nh")
        try:
            self.dp.nh.set_label(b["label"], b["nh"])
        except (ValueError, KeyError) as e:
            raise _err(P.INVALID, "b", str(e).strip("'\"")) from None
        self._mark("label", b["label"], g)

    def op_label_del(self, b, g):
        try:
            self.dp.nh.del_label(b["label"])
        except KeyError:
            raise _err(P.NOT_FOUND, "b.label", f"label {b['label']} does not exist") from None
        self.gen.pop(("label", b["label"]), None)

    def op_vni_add(self, b, g):
        self._need_vrf(b["vrf"], "b.vrf")
        self.dp.nh.set_vni(b["vni"], b["vrf"])
        self._mark("vni", b["vni"], g)

    def op_vni_del(self, b, g):
        try:
            self.dp.nh.del_vni(b["vni"])
        except KeyError:
            raise _err(P.NOT_FOUND, "b.vni", f"VNI {b['vni']} does not exist") from None
        self.gen.pop(("vni", b["vni"]), None)

    def op_policy_set(self, b, g):
        kind, ident = b["kind"], b["id"]
        try:
            if kind == "vrf":
                self._need_vrf(ident, "b.id")
                self.dp.policy.set_vrf_policy(ident, b["rules"], b.get("default", "pass"))
            else:
                self._need_vif(ident, "b.id")
                self.dp.policy.set_vif_policy(ident, b["rules"], b.get("default", "pass"))
        except (ValueError, TypeError) as e:
            raise _err(P.INVALID, "b.rules", str(e)) from None
        self._mark(f"policy_{kind}", ident, g)
        self.policies[(kind, ident)] = {"kind": kind, "id": ident, "rules": b["rules"],
                                        "default": b.get("default", "pass")}

    def op_policy_del(self, b, g):
        if (b["kind"], b["id"]) not in self.policies:
            raise _err(P.NOT_FOUND, "b.id", f"no policy on {b['kind']} {b['id']}")
        self.policies.pop((b["kind"], b["id"]))
        if b["kind"] == "vrf":
            self.dp.policy.clear_vrf_policy(b["id"])
        else:
            self.dp.policy.clear_vif_policy(b["id"])
        self.gen.pop((f"policy_{b['kind']}", b["id"]), None)

    # ------------------------------------------------------------------ reads
    def op_stats(self, b, g):
        return {"datapath": self.dp.stats(), "node": self.node.conf.name,
                "workers": [w.stats() for w in self.node.workers],
                "vifs": {str(v): self.dp.vif_stats(v) for v in self.dp.nh.vifs()}}

    def op_drop_stats(self, b, g):
        vifs = {str(v): self.dp.vif_stats(v)["drops"] for v in self.dp.nh.vifs()}
        return {"reasons": self.dp.drop_stats(), "vifs": vifs}

    def op_get(self, b, g):
        t, i = b["table"], b["id"]
        got = {"vif": self.dp.nh.vif, "nh": self.dp.nh.nh, "label": self.dp.nh.label,
               "vni": self.dp.nh.vni}.get(t)
        if t == "vrf":
            if i not in self.vrfs:
                raise _err(P.NOT_FOUND, "b.id", f"VRF {i} does not exist")
            return {"item": {"vrf": i, "name": self.vrfs[i], "routes4": self.dp.lpm4.count(i),
                             "routes6": self.dp.lpm6.count(i)}}
        if t == "policy":
            pol = self.policies.get((b.get("kind"), i))
            if pol is None:
                raise _err(P.NOT_FOUND, "b.id", f"no policy on {b.get('kind')} {i}")
            return {"item": _plain(pol)}
        if got is None:
            raise _err(P.INVALID, "b.table", f"get of {t} is not supported")
        if t == "nh":
            self._nh_id(i, "b.id")
        item = got(i)
        if item is None:
            raise _err(P.NOT_FOUND, "b.id", f"{t} {i} does not exist")
        if t in ("label", "vni"):       # the key with its value, as label_add / vni_add take them
            item = {t: i, "nh" if t == "label" else "vrf": item}
        elif t == "vif" and i in self.node.tap_specs:     # its device, as vif_add gave it
            item = dict(item, tap={k: v for k, v in self.node.tap_specs[i].items() if k not in ("gw4", "gw6")})
        return {"item": _plain(item)}

    def op_dump(self, b, g):
        t, limit = b["table"], b["limit"]
        cursor = b.get("cursor") or 0
        static = b.get("static", True)
        if t == "route":
            vrf, fam = b["vrf"], b.get("family", 4)
            addrs, lens, nhs = self._routes(vrf, fam, static)
            start = int(cursor)
            end = min(start + limit, len(lens))
            items = []
            for k in range(start, end):
                a = ipaddress.ip_address(int(addrs[k]) if fam == 4 else bytes(addrs[k]))
                items.append({"prefix": f"{a}/{int(lens[k])}", "nh": int(nhs[k])})
            return {"items": items, "cursor": end if end < len(lens) else None, "total": int(len(lens))}
        if t == "flow":
            return self._dump_flows(int(cursor), limit)
        if t == "policy":
            keys = sorted(k for k in self.policies if static or self.gen.get((f"policy_{k[0]}", k[1])) != STATIC)
            start = int(cursor)
            page = keys[start:start + limit]
            return {"items": [_plain(self.policies[k]) for k in page],
                    "cursor": start + limit if start + limit < len(keys) else None}
        ids = {"vif": self.dp.nh.vifs, "nh": self.dp.nh.nhs, "label": lambda: sorted(self.dp.nh.labels()),
               "vni": lambda: sorted(self.dp.nh.vnis()), "vrf": lambda: sorted(self.vrfs)}.get(t)
        if ids is None:
            raise _err(P.INVALID, "b.table", f"dump of {t} is not supported")
        all_ids = [i for i in ids() if i >= int(cursor) and (static or self.gen.get((t, i)) != STATIC)]
        page = all_ids[:limit]
        items = [self.op_get({"table": t, "id": i}, g)["item"] for i in page]
        nxt = all_ids[limit] if len(all_ids) > limit else None
        return {"items": items, "cursor": nxt}

    def _routes(self, vrf, fam, static=True):
        """The VRF's routes as the LPM dumps them; without ``static``, less those of the configuration."""
        addrs, lens, nhs = self._table(fam).dump(vrf)
        known = self.static.get((vrf, fam))
        if not static and known and len(lens):
            keep = ~np.isin(_route_keys(fam, addrs, lens), np.concatenate(known))
            addrs, lens, nhs = addrs[keep], lens[keep], nhs[keep]
        return addrs, lens, nhs

    def _dump_flows(self, cursor, limit):
        rows, nxt = self.dp.flows.dump_page(cursor, limit)
        return {"items": rows, "cursor": nxt}

    def op_flow_delete(self, b, g):
        if b.get("all"):
            return {"deleted": int(self.dp.flows.flush())}
        from vrouter.flow import make_key
        key = make_key(b["vrf"], b["proto"], b["src"], b["dst"], b.get("sport", 0), b.get("dport", 0))
        if not self.dp.flows.delete(key):
            raise _err(P.NOT_FOUND, "b", "no such flow")
        return {"deleted": 1}

    def op_route_lookup(self, b, g):
        a = ipaddress.ip_address(str(b["address"]))
        t = self._table(a.version)
        nh = t.lookup(b["vrf"], str(a))
        if nh == NO_ROUTE:
            raise _err(P.NOT_FOUND, "b.address", f"no route to {a} in VRF {b['vrf']}")
        for ln in range(a.max_prefixlen, -1, -1):      # the prefix that matched (the longest)
            net = ipaddress.ip_network(f"{a}/{ln}", strict=False)
            if t.get(b["vrf"], str(net)) is not None:
                return {"prefix": str(net), "nh": int(nh), "next_hop": _plain(self.dp.nh.nh(int(nh)))}
        return {"prefix": None, "nh": int(nh)}

    def op_capture_start(self, b, g):
        if self.dp.nh.vif(b["vif"]) is None:
            raise _err(P.NOT_FOUND, "b.vif", f"vif {b['vif']} does not exist")
        for w in self.node.workers:
            w.capture_set(b["vif"], b["snaplen"])
        return {"vif": b["vif"]}

    def op_capture_read(self, b, g):
        frames, dropped = [], 0
        for w in self.node.workers:
            recs, d = w.capture_read()
            dropped += d
            frames += [{"ts": ts, "vif": vif, "dir": d_, "len": ln, "frame": fr} for ts, vif, d_, ln, fr in recs]
        frames.sort(key=lambda f: f["ts"])
        return {"frames": frames, "dropped": dropped}

    def op_capture_stop(self, b, g):
        for w in self.node.workers:
            w.capture_set(-1)
        return {}

    def op_trace(self, b, g):
        t = self.dp.trace(b["frame"], b["vif"])
        r = t.result
        return {"steps": t.steps, "result": {"verdict": r.verdict, "out_vif": r.out_vif, "reason": r.reason,
                                             "frame": r.frame}}

    # ------------------------------------------------------------------ digests (the agent's audit)
    def op_digest(self, b, g):
        """Per kind, the digest of what the tables hold (control/digest.py), the configuration's
        objects left out; routes per table from the LPM dumps."""
        digests, counts, routes = {}, {}, {}
        for kind in b.get("kinds") or D.KINDS:
            if kind == "route":
                n = 0
                for vrf in sorted(set(self.dp.lpm4.vrfs()) | set(self.dp.lpm6.vrfs())):
                    for fam in (4, 6):
                        addrs, lens, nhs = self._routes(vrf, fam, static=False)
                        if len(lens):
                            a = addrs.astype(">u4") if fam == 4 else np.ascontiguousarray(addrs, np.uint8)
                            routes[D.route_key(vrf, fam)] = D.route_table_digest(
                                fam, a.tobytes(), lens.astype(np.uint8).tobytes(), nhs.astype("<u4").tobytes())
                            n += len(lens)
                digests[kind], counts[kind] = D.routes_digest(routes), n
            else:
                ents = self._digest_entries(kind)
                digests[kind], counts[kind] = D.digest(ents), len(ents)
        return {"digests": digests, "counts": counts, "routes": routes}

    def _digest_entries(self, kind) -> dict:
        def mine(k, i):
            return self.gen.get((k, i)) != STATIC
        nh = self.dp.nh
        if kind == "vrf":
            objs = [{"vrf": v, "name": n} for v, n in self.vrfs.items() if mine("vrf", v)]
        elif kind == "vif":
            objs = [dict(nh.vif(i), tap=self.node.tap_specs.get(i)) for i in nh.vifs() if mine("vif", i)]
        elif kind == "nh":
            objs = [nh.nh(i) for i in nh.nhs() if mine("nh", i)]
        elif kind == "label":
            objs = [{"label": k, "nh": v} for k, v in nh.labels().items() if mine("label", k)]
        elif kind == "vni":
            objs = [{"vni": k, "vrf": v} for k, v in nh.vnis().items() if mine("vni", k)]
        else:
            objs = [p for (k, i), p in self.policies.items() if mine(f"policy_{k}", i)]
        return dict(D.entry(kind, o if kind == "policy" else _plain(o)) for o in objs)   # policies: plain already

    # ------------------------------------------------------------------ sweep
    def begin(self, generation: int) -> None:
        self.pushed.clear()   # what an abandoned snapshot pushed counts for nothing now

    def sweep(self, generation: int) -> dict:
        swept = {"routes": 0}
        # routes first: nothing else can go while a route still names it
        for vrf in sorted(set(self.dp.lpm4.vrfs()) | set(self.dp.lpm6.vrfs())):
            for fam in (4, 6):
                t = self._table(fam)
                addrs, lens, _ = t.dump(vrf)
                if not len(lens):
                    continue
                have = _route_keys(fam, addrs, lens)
                known = self.pushed.get((vrf, fam), []) + self.static.get((vrf, fam), [])
                keep = np.isin(have, np.concatenate(known)) if known else np.zeros(len(have), bool)
                stale = np.flatnonzero(~keep)
                if len(stale):
                    t.delete_batch(vrf, addrs[stale], lens[stale])
                    swept["routes"] += int(len(stale))
                    self.dp.revalidate_flows(vrf)
        self.pushed.clear()
        stale = sorted(((k, v) for k, v in self.gen.items() if v != STATIC and v < generation),
                       key=lambda kv: _SWEEP_ORDER.index(kv[0][0]))
        for (kind, ident), _ in stale:
            try:
                {"label": lambda i: self.dp.nh.del_label(i), "vni": lambda i: self.dp.nh.del_vni(i),
                 "policy_vrf": lambda i: (self.dp.policy.clear_vrf_policy(i), self.policies.pop(("vrf", i), None)),
                 "policy_vif": lambda i: (self.dp.policy.clear_vif_policy(i), self.policies.pop(("vif", i), None)),
                 "nh": self.dp.nh.del_nh, "vif": self._sweep_vif,
                 "vrf": lambda i: self.vrfs.pop(i, None)}[kind](ident)
                self.gen.pop((kind, ident), None)
                swept[kind] = swept.get(kind, 0) + 1
            except (InUseError, KeyError, ValueError) as e:
                log.warning("sweep kept an object still in use", extra={"fields": {"object": f"{kind} {ident}",
                                                                                   "why": str(e)}})
        return swept

    def _sweep_vif(self, i):
        self.dp.nh.del_vif(i)
        if i in self.node.taps:
            self.node.remove_tap(i)


_SWEEP_ORDER = ["label", "vni", "policy_vrf", "policy_vif", "nh", "vif", "vrf"]


def _nh_field(e: Exception, nid: int) -> str:
    """The body field a next-hop facade error names ("nh 5 members[2]: ..." -> "b.members[2]")."""
    head = f"nh {nid} "
    msg = str(e)
    if msg.startswith(head):
        name = msg[len(head):].split(":", 1)[0]
        if name and " " not in name:
            return f"b.{name}"
    return "b"


def _route_keys(family: int, addrs, lens) -> np.ndarray:
    """One comparable key per route: (address, length) packed."""
    lens = np.asarray(lens, np.uint64)
    if family == 4:
        return (np.asarray(addrs, np.uint64) << np.uint64(8)) | lens
    a = np.ascontiguousarray(addrs, np.uint8).reshape(-1, 16)
    raw = np.concatenate([a, lens.astype(np.uint8).reshape(-1, 1)], axis=1)
    return raw.view(np.dtype((np.void, 17))).ravel()


def _plain(x):
    """Replies carry plain types: numpy scalars and records become ints / dicts."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (bytes, str, int, float, bool)) or x is None:
        return x
    return str(x)

