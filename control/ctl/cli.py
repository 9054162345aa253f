"""vrouter-ctl: the operator's view of a running vrouter, over its control channel only.

    vrouter-ctl vif list                      vrouter-ctl vif show 1
    vrouter-ctl vrf list                      vrouter-ctl nh list / nh show 2
    vrouter-ctl route list --vrf 1 [--family 4|6] [--prefix 10.1.0.0/16]
    vrouter-ctl route lookup --vrf 1 10.1.0.3
    vrouter-ctl flow list [--vrf V] [--proto P] [--addr A] [--vif N]     vrouter-ctl flow flush
    vrouter-ctl drops [--all]
    vrouter-ctl stats [--watch [--interval S] [--count N]]
    vrouter-ctl trace --vif 1 'udp 10.1.0.2:1234 > 10.2.0.3:80'   (tcp|udp|icmp; [fd00::1]:80 for IPv6)

Global options (before or after the command): --socket ENDPOINT (default $VROUTER_CONTROL, else
ipc:///run/vrouter/control.sock), --keys DIR (CurveZMQ client keys, for tcp://), -o table|json,
--timeout S.

Exit codes: 0 ok; 1 the object does not exist / no route; 2 bad usage or a request the vrouter
refused; 3 the vrouter is not running or does not answer. Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
import time

from control import fields as F
from control.protocol import VERSION as PROTOCOL
from control.version import __version__

DEFAULT_SOCKET = "ipc:///run/vrouter/control.sock"
PROTO_NAMES = {n: name for name, n in reversed(F.PROTOCOLS.items())}     # 58: icmp6, not ipv6-icmp
DEFAULT_SMAC = "02:00:00:00:00:01"
DEFAULT_DMAC = "00:00:5e:00:01:00"

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_DOWN = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command line: exit 2."""


class Down(Exception):
    """The vrouter is not running / not answering: exit 3."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, no usage dump; main() turns it into exit 2
        raise UsageError(f"{self.prog}: {message}")


# ------------------------------------------------------------------ output helpers

def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).hex()
    return x


def emit_json(obj) -> None:
    print(json.dumps(_jsonable(obj), indent=2, sort_keys=False))


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ",".join(_cell(x) for x in v) or "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def table(headers, rows) -> str:
    """Aligned columns: numbers right-aligned, the rest left-aligned."""
    cells = [[_cell(v) for v in r] for r in rows]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows) and rows
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(vals):
        out = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths))]
        return "  ".join(out).rstrip()
    return "\n".join([line(headers)] + [line(r) for r in cells])


def kv_block(d: dict, indent: str = "") -> str:
    width = max((len(str(k)) for k in d), default=0)
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{indent}{k}:")
            lines.append(kv_block(v, indent + "  "))
        else:
            lines.append(f"{indent}{str(k) + ':':<{width + 1}} {_cell(_jsonable(v))}")
    return "\n".join(x for x in lines if x)


# ------------------------------------------------------------------ connection

def connect(args):
    from control import client as C
    ep = args.socket
    if ep.startswith("ipc://"):
        path = ep[len("ipc://"):]
        if not os.path.exists(path):
            raise Down(f"vrouter not running: no control socket at {path}")
    curve = None
    if ep.startswith("tcp://"):
        if not args.keys:
            raise UsageError(f"{ep}: tcp:// needs CurveZMQ client keys (--keys DIR)")
        try:
            curve = C.load_curve(args.keys)
        except (OSError, ValueError) as e:
            raise UsageError(f"--keys {args.keys}: cannot load the client keys ({e})") from None
    elif args.keys:
        pass   # keys are only for tcp://; ipc:// is protected by the file's mode
    try:
        return C.Client(ep, timeout=args.timeout, retries=1, curve=curve)
    except Exception as e:  # noqa: BLE001 - zmq refuses a malformed endpoint in several ways
        raise UsageError(f"--socket {ep}: {e}") from None


# ------------------------------------------------------------------ commands

def _vif_stats(c) -> dict:
    return c.call("stats").get("vifs", {})


def cmd_vif_list(c, a):
    items = list(c.dump("vif"))
    st = _vif_stats(c)
    for it in items:
        it["stats"] = st.get(str(it["id"]))
    if a.output == "json":
        return emit_json(items)
    rows = []
    for it in items:
        s = it.get("stats") or {}
        rows.append([it["id"], it["kind"], it["vrf"], it["mac"], it["mtu"],
                     "down" if it.get("admin_down") else "up", it.get("prefixes") or [],
                     s.get("rx_packets"), s.get("tx_packets"), s.get("drops")])
    print(table(["ID", "KIND", "VRF", "MAC", "MTU", "STATE", "PREFIXES", "RX_PKTS", "TX_PKTS", "DROPS"], rows))


def cmd_vif_show(c, a):
    item = c.call("get", {"table": "vif", "id": a.id})["item"]
    item["stats"] = _vif_stats(c).get(str(a.id))
    if a.output == "json":
        return emit_json(item)
    print(kv_block(item))


def cmd_vrf_list(c, a):
    items = list(c.dump("vrf"))
    if a.output == "json":
        return emit_json(items)
    print(table(["VRF", "NAME", "ROUTES4", "ROUTES6"],
                [[i["vrf"], i.get("name"), i.get("routes4"), i.get("routes6")] for i in items]))


def _arg(check, what, text, *args, **kw):
    """A command-line argument through a control.fields checker; its refusal is a UsageError."""
    try:
        return check(what, text, *args, **kw)
    except F.FieldError as e:
        raise UsageError(str(e)) from None


def _network(text, what):
    """A prefix to filter by; host bits are allowed (10.1.2.3/16 means 10.1.0.0/16)."""
    return _arg(F.interface, what, text, unicast=False).network


def cmd_route_list(c, a):
    within = a.prefix
    fams = [a.family] if a.family else ([within.version] if within else [4, 6])
    items = []
    for fam in fams:
        for it in c.dump("route", vrf=a.vrf, family=fam):
            if within is not None:
                net = ipaddress.ip_network(it["prefix"])
                if net.version != within.version or not net.subnet_of(within):
                    continue
            items.append({"vrf": a.vrf, "family": fam, **it})
    if a.output == "json":
        return emit_json(items)
    print(table(["PREFIX", "NH"], [[i["prefix"], i["nh"]] for i in items]))


def cmd_route_lookup(c, a):
    addr = a.address
    r = c.call("route_lookup", {"vrf": a.vrf, "address": str(addr)})
    if a.output == "json":
        return emit_json(r)
    out = {"address": str(addr), "vrf": a.vrf, "prefix": r.get("prefix"), "nh": r.get("nh")}
    nh = r.get("next_hop")
    if nh:
        out["next_hop"] = _nh_summary(nh)
    print(kv_block(out))


_NH_HIDDEN = ("hdr", "l3_off", "ip_csum_base", "udp_csum_base", "live")


def _nh_summary(nh: dict) -> str:
    t = nh.get("type")
    extra = {k: v for k, v in nh.items() if k not in ("id", "type") + _NH_HIDDEN and v is not None}
    return " ".join([str(t)] + [f"{k}={_cell(v)}" for k, v in extra.items()])


def cmd_nh_list(c, a):
    items = list(c.dump("nh"))
    if a.output == "json":
        return emit_json(items)
    rows = []
    for n in items:
        rest = {k: v for k, v in n.items() if k not in ("id", "type", "vif") + _NH_HIDDEN and v is not None}
        rows.append([n["id"], n["type"], n.get("vif"), " ".join(f"{k}={_cell(v)}" for k, v in rest.items())])
    print(table(["ID", "TYPE", "VIF", "DETAILS"], rows))


def cmd_nh_show(c, a):
    item = c.call("get", {"table": "nh", "id": a.id})["item"]
    if a.output == "json":
        return emit_json(item)
    print(kv_block(item))


def _proto_num(text):
    if text is None:
        return None
    return _arg(F.proto, "--proto", int(text) if str(text).isdigit() else str(text))


def cmd_flow_list(c, a):
    proto, addr = a.proto, a.addr
    items = []
    for f in c.dump("flow"):
        if a.vrf is not None and f["vrf"] != a.vrf:
            continue
        if proto is not None and f["proto"] != proto:
            continue
        if a.vif is not None and f["vif"] != a.vif:
            continue
        if addr is not None and addr not in (ipaddress.ip_address(f["src"]), ipaddress.ip_address(f["dst"])):
            continue
        items.append(f)
    if a.output == "json":
        return emit_json(items)
    rows = [[f["index"], f["vrf"], PROTO_NAMES.get(f["proto"], f["proto"]), f["src"], f["sport"], f["dst"],
             f["dport"], f["action"], f["nh"], f["vif"], f["packets"], f["bytes"]] for f in items]
    print(table(["INDEX", "VRF", "PROTO", "SRC", "SPORT", "DST", "DPORT", "ACTION", "NH", "VIF", "PACKETS",
                 "BYTES"], rows))
    print(f"{len(items)} flow entries")


def cmd_flow_show(c, a):
    """One flow entry by its index (from flow list), with its pair's other end."""
    from control import client as C
    found = [f for f in c.dump("flow") if f["index"] in (a.index, a.index ^ 1)]
    this = [f for f in found if f["index"] == a.index]
    if not this:
        raise C.NotFoundError(f"no active flow entry {a.index}", None, "not_found")
    other = [f for f in found if f["index"] != a.index]
    if a.output == "json":
        return emit_json({**this[0], "reverse": other[0] if other else None})
    f = this[0]
    for k in ("index", "vrf", "proto", "src", "sport", "dst", "dport", "action", "rule", "nh", "vif",
              "packets", "bytes"):
        print(f"{k + ':':10s} {PROTO_NAMES.get(f[k], f[k]) if k == 'proto' else f[k]}")
    if other:
        o = other[0]
        print(f"{'reverse:':10s} entry {o['index']}: {o['src']}:{o['sport']} > {o['dst']}:{o['dport']} "
              f"nh {o['nh']}, {o['packets']} packets")


def cmd_flow_flush(c, a):
    r = c.call("flow_delete", {"all": True})
    if a.output == "json":
        return emit_json(r)
    print(f"deleted {r.get('deleted', 0)} flow pairs")


def cmd_drops(c, a):
    r = c.call("drop_stats")
    reasons = {k: v for k, v in r.get("reasons", {}).items() if a.all or v}
    vifs = {k: v for k, v in r.get("vifs", {}).items() if a.all or v}
    if a.output == "json":
        return emit_json({"reasons": reasons, "vifs": vifs})
    rows = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    print(table(["REASON", "PACKETS"], rows) if rows else "no drops")
    print()
    vrows = sorted(((int(k), v) for k, v in vifs.items()))
    print(table(["VIF", "DROPS"], vrows) if vrows else "no drops on any vif")


def _flat_counters(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _print_stats(st: dict) -> None:
    dp = st.get("datapath", {})
    print(f"node {st.get('node', '?')}")
    print(table(["COUNTER", "VALUE"], list(_flat_counters(dp).items())))
    vifs = st.get("vifs", {})
    if vifs:
        print()
        print(table(["VIF", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES", "DROPS"],
                    [[int(k), v["rx_packets"], v["rx_bytes"], v["tx_packets"], v["tx_bytes"], v["drops"]]
                     for k, v in sorted(vifs.items(), key=lambda kv: int(kv[0]))]))
    ctl = st.get("control")
    if ctl:
        print()
        print("control  " + " ".join(f"{k}={_cell(v)}" for k, v in ctl.items()))


def _rates(prev: dict, cur: dict, dt: float) -> dict:
    vifs = {}
    for k, v in cur.get("vifs", {}).items():
        p = prev.get("vifs", {}).get(k)
        if p is None:
            continue
        vifs[k] = {f"{f}_per_s": max(0, v[f] - p[f]) / dt
                   for f in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "drops")}
    dp, pdp = _flat_counters(cur.get("datapath", {})), _flat_counters(prev.get("datapath", {}))
    totals = {f"{k}_per_s": max(0, v - pdp[k]) / dt for k, v in dp.items() if k in pdp}
    totals["rx_packets_per_s"] = sum(v["rx_packets_per_s"] for v in vifs.values())
    totals["tx_packets_per_s"] = sum(v["tx_packets_per_s"] for v in vifs.values())
    return {"time": time.time(), "interval": dt, "vifs": vifs, "totals": totals}


def cmd_stats(c, a):
    if not a.watch:
        st = c.call("stats")
        if a.output == "json":
            return emit_json(st)
        return _print_stats(st)
    if a.interval <= 0:
        raise UsageError("--interval: must be > 0")
    prev, t0 = c.call("stats"), time.monotonic()
    n = 0
    try:
        while a.count is None or n < a.count:
            time.sleep(a.interval)
            cur, t1 = c.call("stats"), time.monotonic()
            r = _rates(prev, cur, t1 - t0)
            prev, t0 = cur, t1
            n += 1
            if a.output == "json":
                print(json.dumps(r), flush=True)      # one JSON object per line and sample
                continue
            rows = [[int(k), v["rx_packets_per_s"], v["tx_packets_per_s"], v["drops_per_s"]]
                    for k, v in sorted(r["vifs"].items(), key=lambda kv: int(kv[0]))]
            tt = r["totals"]
            rows.append(["total", tt["rx_packets_per_s"], tt["tx_packets_per_s"],
                         sum(v["drops_per_s"] for v in r["vifs"].values())])
            print(f"-- {time.strftime('%H:%M:%S')}  over {r['interval']:.2f} s")
            print(table(["VIF", "RX_PPS", "TX_PPS", "DROP_PPS"], rows), flush=True)
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------ trace

_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<p6>\d+))?"
                       r"|(?P<v4>\d{1,3}(?:\.\d{1,3}){3})(?::(?P<p4>\d+))?"
                       r"|(?P<bare6>[0-9A-Fa-f]*:[0-9A-Fa-f:.]*))$")


def _endpoint(text: str, proto: str, side: str):
    m = _ENDPOINT.match(text)
    if not m:
        raise UsageError(f"trace: {side} {text!r}: expected a.b.c.d[:port] or [x::y][:port]")
    addr = m["v6"] or m["v4"] or m["bare6"]
    port = m["p6"] or m["p4"]
    ip = _arg(F.address, f"trace: {side}", addr)
    if port is not None:
        if proto == "icmp":
            raise UsageError(f"trace: icmp has no ports ({side} {text!r})")
        port = int(port)
        if not 0 <= port <= 65535:
            raise UsageError(f"trace: {side} port {port} is not 0..65535")
    elif proto != "icmp":
        raise UsageError(f"trace: {proto} needs a {side} port ({text!r})")
    return ip, port


def parse_spec(spec: str):
    """'udp 10.1.0.2:1234 > 10.2.0.3:80' -> (proto, src, sport, dst, dport)."""
    m = re.match(r"^\s*(\S+)\s+(\S+)\s*>\s*(\S+)\s*$", spec)
    if not m:
        raise UsageError(f"trace: bad spec {spec!r}: expected 'PROTO SRC[:PORT] > DST[:PORT]'")
    proto = m[1].lower()
    if proto not in ("tcp", "udp", "icmp"):
        raise UsageError(f"trace: protocol {m[1]!r}: tcp, udp or icmp")
    src, sport = _endpoint(m[2], proto, "source")
    dst, dport = _endpoint(m[3], proto, "destination")
    if src.version != dst.version:
        raise UsageError(f"trace: source {src} and destination {dst} are not of the same family")
    return proto, src, sport, dst, dport


def _mac(text, what):
    return _arg(F.mac, what, text, unicast=False)


def build_frame(spec: str, smac: str = DEFAULT_SMAC, dmac: str = DEFAULT_DMAC) -> bytes:
    proto, src, sport, dst, dport = parse_spec(spec)
    smac, dmac = _mac(smac, "--smac"), _mac(dmac, "--dmac")
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether
    l3 = IP(src=str(src), dst=str(dst), ttl=64) if src.version == 4 else IPv6(src=str(src), dst=str(dst), hlim=64)
    if proto == "tcp":
        l4 = TCP(sport=sport, dport=dport, flags="S")
    elif proto == "udp":
        l4 = UDP(sport=sport, dport=dport)
    else:
        l4 = ICMP(type=8, id=1, seq=1) if src.version == 4 else ICMPv6EchoRequest(id=1, seq=1)
    return bytes(Ether(src=smac, dst=dmac) / l3 / l4 / b"vrouter-ctl trace")


def cmd_trace(c, a):
    frame = build_frame(a.spec, a.smac, a.dmac)
    r = c.call("trace", {"vif": a.vif, "frame": frame})
    if a.output == "json":
        return emit_json(r)
    print(f"trace of {a.spec.strip()} received on vif {a.vif} ({len(frame)} bytes)")
    for i, step in enumerate(r.get("steps", []), 1):
        print(f"{i:>2}. {step.get('stage', '?')}")
        for k, v in step.items():
            if k != "stage":
                if k == "proto" and v in PROTO_NAMES:
                    v = f"{v} ({PROTO_NAMES[v]})"
                print(f"      {k + ':':<10} {_cell(_jsonable(v))}")
    res = r.get("result", {})
    verdict = res.get("verdict")
    if verdict == "forward":
        what = f"forward to vif {res.get('out_vif')}"
    elif verdict == "reply":
        what = f"reply ({res.get('reason')}) out of vif {res.get('out_vif')}"
    elif verdict == "drop":
        what = f"drop ({res.get('reason')})"
    else:
        what = str(verdict)
    print(f"result: {what}")


# ------------------------------------------------------------------ parser

def _nonneg_int(text):
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _global_options(p, suppress: bool):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--socket", default=d(None), metavar="ENDPOINT",
                   help=f"control endpoint (default: $VROUTER_CONTROL, else {DEFAULT_SOCKET})")
    p.add_argument("--keys", default=d(None), metavar="DIR", help="CurveZMQ client keys (for tcp://)")
    p.add_argument("-o", "--output", choices=("table", "json"), default=d("table"), help="output format")
    p.add_argument("--timeout", type=_positive_float, default=d(3.0), metavar="S",
                   help="seconds to wait for each answer (default 3)")


def cmd_capture(c, a):
    """Copy the frames a vif receives and is sent into a pcap file (tcpdump / tshark read it)."""
    import time as _time
    from control.ctl.pcap import PcapWriter
    c.call("capture_start", {"vif": a.vif, "snaplen": a.snaplen})
    got = dropped = 0
    deadline = _time.monotonic() + a.seconds if a.seconds else None
    try:
        with PcapWriter(a.write, a.snaplen) as w:
            while (a.count is None or got < a.count) and (deadline is None or _time.monotonic() < deadline):
                r = c.call("capture_read")
                dropped = r.get("dropped", 0)
                for f in r.get("frames", []):
                    if a.count is not None and got >= a.count:
                        break
                    w.write(f["ts"], f["frame"], f["len"])
                    got += 1
                if not r.get("frames"):
                    _time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        c.call("capture_stop")
    if a.output == "json":
        return emit_json({"file": a.write, "frames": got, "dropped": dropped})
    print(f"{got} frames of vif {a.vif} written to {a.write}" + (f" ({dropped} dropped)" if dropped else ""))


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    _global_options(common, suppress=True)
    p = _Parser(prog="vrouter-ctl", description="Inspect a running vrouter over its control channel.")
    p.add_argument("--version", action="version", version=f"vrouter-ctl {__version__} (control protocol v{PROTOCOL})")
    _global_options(p, suppress=False)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    def add(parent, name, fn, help_):
        sp = parent.add_parser(name, parents=[common], help=help_)
        sp.set_defaults(fn=fn)
        return sp

    vif = sub.add_parser("vif", help="virtual interfaces").add_subparsers(dest="sub", required=True,
                                                                          parser_class=_Parser)
    add(vif, "list", cmd_vif_list, "every vif with its counters")
    add(vif, "show", cmd_vif_show, "one vif").add_argument("id", type=_nonneg_int)
    vrf = sub.add_parser("vrf", help="VRFs").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    add(vrf, "list", cmd_vrf_list, "every VRF and its route counts")
    route = sub.add_parser("route", help="routes").add_subparsers(dest="sub", required=True,
                                                                  parser_class=_Parser)
    rl = add(route, "list", cmd_route_list, "the routes of a VRF")
    rl.add_argument("--vrf", type=_nonneg_int, required=True)
    rl.add_argument("--family", type=int, choices=(4, 6))
    rl.add_argument("--prefix", help="only the routes inside this prefix")
    rk = add(route, "lookup", cmd_route_lookup, "the route an address takes")
    rk.add_argument("--vrf", type=_nonneg_int, required=True)
    rk.add_argument("address")
    nh = sub.add_parser("nh", help="next hops").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    add(nh, "list", cmd_nh_list, "every next hop")
    add(nh, "show", cmd_nh_show, "one next hop").add_argument("id", type=_nonneg_int)
    flow = sub.add_parser("flow", help="flows").add_subparsers(dest="sub", required=True, parser_class=_Parser)
    fl = add(flow, "list", cmd_flow_list, "active flow entries (both directions)")
    fl.add_argument("--vrf", type=_nonneg_int)
    fl.add_argument("--proto", help="tcp, udp, icmp, icmp6 or a number")
    fl.add_argument("--addr", help="source or destination address")
    fl.add_argument("--vif", type=_nonneg_int, help="the vif the flow started on (both entries of its pair)")
    add(flow, "show", cmd_flow_show, "one flow entry and its reverse").add_argument("index", type=_nonneg_int)
    add(flow, "flush", cmd_flow_flush, "delete every flow")
    dr = add(sub, "drops", cmd_drops, "drop counters per reason and per vif")
    dr.add_argument("--all", action="store_true", help="also the reasons that never dropped")
    st = add(sub, "stats", cmd_stats, "datapath and per-vif counters")
    st.add_argument("--watch", action="store_true", help="print rates between samples")
    st.add_argument("--interval", type=_positive_float, default=1.0, metavar="S")
    st.add_argument("--count", type=_nonneg_int, metavar="N", help="stop after N samples")
    tr = add(sub, "trace", cmd_trace, "every pipeline stage's decision for a made-up packet")
    tr.add_argument("--vif", type=_nonneg_int, required=True, help="the vif the packet arrives on")
    tr.add_argument("--smac", default=DEFAULT_SMAC)
    tr.add_argument("--dmac", default=DEFAULT_DMAC)
    tr.add_argument("spec", help="'udp 10.1.0.2:1234 > 10.2.0.3:80', 'icmp [fd00::1] > [fd00::2]'")
    cp = add(sub, "capture", cmd_capture, "write a vif's frames (both directions) to a pcap file")
    cp.add_argument("--vif", type=_nonneg_int, required=True)
    cp.add_argument("-w", "--write", required=True, metavar="FILE.pcap")
    cp.add_argument("--count", type=_nonneg_int, metavar="N", help="stop after N frames")
    cp.add_argument("--seconds", type=_positive_float, metavar="S", help="stop after S seconds")
    cp.add_argument("--snaplen", type=_nonneg_int, default=65535, metavar="BYTES")
    return p


def check_args(a) -> None:
    """Every value argument through its field checker, before any connection: a bad one is a usage
    error (exit 2) whether or not a vrouter runs."""
    if getattr(a, "prefix", None):
        a.prefix = _network(a.prefix, "--prefix")
    if getattr(a, "address", None) is not None:
        a.address = _arg(F.address, "route lookup: address", a.address)
    if getattr(a, "proto", None) is not None:
        a.proto = _proto_num(a.proto)
    if getattr(a, "addr", None):
        a.addr = _arg(F.address, "--addr", a.addr)
    if a.cmd == "trace":
        build_frame(a.spec, a.smac, a.dmac)


def main(argv=None) -> int:
    from control import client as C
    try:
        args = build_parser().parse_args(argv)
        args.socket = args.socket or os.environ.get("VROUTER_CONTROL") or DEFAULT_SOCKET
        check_args(args)
        with connect(args) as c:
            args.fn(c, args)
        return EXIT_OK
    except UsageError as e:
        print(str(e) if str(e).startswith("vrouter-ctl") else f"vrouter-ctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Down as e:
        print(f"vrouter-ctl: {e}", file=sys.stderr)
        return EXIT_DOWN
    except C.Timeout:
        print(f"vrouter-ctl: vrouter not answering at {args.socket} (no reply in {args.timeout} s)",
              file=sys.stderr)
        return EXIT_DOWN
    except C.BusyError as e:
        print(f"vrouter-ctl: vrouter busy: {e}", file=sys.stderr)
        return EXIT_DOWN
    except C.NotFoundError as e:
        print(f"vrouter-ctl: not found: {e.msg}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except C.ControlError as e:
        print(f"vrouter-ctl: refused ({e.code}): {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
