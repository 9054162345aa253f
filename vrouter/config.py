"""The node configuration (``vrouter run --config node.yaml``), validated whole.

    node:
      name: node-a
      workers: auto                   # worker threads: a number, or auto (default) = one per
                                      # core, as many as the fabric has queues (AF_PACKET: 1)
      cpus: [1]                       # pin worker i to cpus[i] (optional)
      flow_table_size: 65536          # flow entries (pairs x 2), fixed at start
      nexthops: 65536                 # next-hop ids this node holds (0..nexthops-1), fixed at start;
                                      # 1..16777216 (the protocol's 2**24 ids), 12 bytes each
      router_mac: 00:00:5e:00:01:00   # the gateway MAC every pod sees
      log_format: text                # text | json
      run_dir: /run/vrouter           # stats.json and the control socket live here
      control: ipc:///run/vrouter/control.sock   # default ipc://<run_dir>/control.sock; "off": none;
                                      # tcp://host:port needs control_keys (CurveZMQ)
      control_keys: /etc/vrouter/keys # server.key_secret + clients/*.key (python -m control.keys)
      stats_interval: 1.0             # seconds between stats.json updates (0: never)
      metrics: 127.0.0.1:9100         # Prometheus /metrics, /healthz, /readyz (HOST:PORT, [v6]:PORT);
                                      # default 127.0.0.1:9100 (localhost only); "off": none
    fabric:                           # optional: a node with pods only needs none
      interface: eth1
      io: auto                        # xdp | afpacket | auto (xdp, else afpacket with a warning)
      xdp_mode: native                # native | skb
      ip: 192.0.2.1                   # the node's underlay addresses (tunnels end here)
      ip6: 2001:db8:f::1
      gateway_mac: 02:fa:00:00:00:fe  # the underlay next hop (default for tunnel next hops)
    vifs:                             # pods: a TAP device each, moved into the pod's namespace
      - id: 1
        name: tap-pod1
        netns: pod1                   # optional; must exist
        vrf: 1
        mac: 02:00:00:00:01:02        # the pod's MAC
        ip: 10.1.0.2/24               # the pod's address and subnet
        gateway: 10.1.0.1
        ip6: fd00:1::2/64             # optional, with gateway6
        gateway6: fd00:1::1
        mtu: 1500
        policy: false
        nh: 1                         # the next hop made for it (default: its id)
    nexthops:                         # everything else (tunnels, ECMP, discard, ...)
      - {id: 100, type: tunnel, encap: vxlan, dst: 192.0.2.2, vni: 100}
    routes:
      - {vrf: 1, prefix: 10.2.0.0/16, nh: 100}
    labels: [{label: 6001, nh: 1}]
    vnis: [{vni: 100, vrf: 1}]

A tunnel next hop's src, vif and dmac default to the fabric's address of its
family, the fabric vif (id 0) and fabric.gateway_mac. Every error names the
field: ``vifs[1].ip: ...``.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from control import fields as F
from vrouter.nexthop import NH_DEFAULT_CAPACITY, NH_MAX_CAPACITY   # ext/nexthop.h: node.nexthops' bounds

FABRIC_VIF = 0
DEFAULT_ROUTER_MAC = "00:00:5e:00:01:00"


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the field."""


@dataclass
class VifConf:
    id: int
    name: str
    vrf: int
    mac: str
    ip: ipaddress.IPv4Interface | None
    gateway: ipaddress.IPv4Address | None
    ip6: ipaddress.IPv6Interface | None
    gateway6: ipaddress.IPv6Address | None
    netns: str | None
    mtu: int
    policy: bool
    nh: int


@dataclass
class FabricConf:
    interface: str
    io: str
    xdp_mode: str
    ip: ipaddress.IPv4Address | None
    ip6: ipaddress.IPv6Address | None
    gateway_mac: str | None


@dataclass
class NodeConf:
    name: str
    workers: int                      # 0 = auto (resolved by the node at start)
    cpus: list[int]
    flow_table_size: int
    router_mac: str
    log_format: str
    run_dir: str
    control: str                      # "" = no control channel
    control_keys: str | None
    stats_interval: float
    fabric: FabricConf | None
    metrics: str = "127.0.0.1:9100"   # "" = no metrics endpoint; metrics_address() splits it
    nexthop_capacity: int = NH_DEFAULT_CAPACITY   # node.nexthops: next-hop ids 0..nexthop_capacity-1
    vifs: list[VifConf] = field(default_factory=list)
    nexthops: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    vnis: list[dict] = field(default_factory=list)


def _section(d, name: str, where: str) -> dict:
    v = d.get(name)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{where}{name}: must be a mapping, got {type(v).__name__}")
    return v


def _list(d, name: str) -> list:
    v = d.get(name, [])
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(f"{name}: must be a list, got {type(v).__name__}")
    return v


def _items(d, name: str) -> list[dict]:
    """A list of mappings (the static tables' entries)."""
    out = _list(d, name)
    for i, x in enumerate(out):
        if not isinstance(x, dict):
            raise ConfigError(f"{name}[{i}]: must be a mapping, got {type(x).__name__}")
    return out


def _unknown(d: dict, allowed, where: str) -> None:
    extra = sorted(set(d) - set(allowed), key=str)
    if extra:
        raise ConfigError(f"{where}{extra[0]}: unknown field (known: {', '.join(sorted(allowed))})")


def _get(d, name, where, default=None):
    v = d.get(name, default)
    if v is None:
        raise ConfigError(f"{where}{name}: missing")
    return v


def _int(d, name, where, lo, hi, default=None):
    return F.integer(f"{where}{name}", _get(d, name, where, default), lo, hi)


def _str(d, name, where, default=None, choices=None):
    v = F.string(f"{where}{name}", _get(d, name, where, default), 1, 4096, what="a non-empty string")
    return F.choice(f"{where}{name}", v, choices) if choices else v


def _mac(d, name, where, default=None, required=True):
    v = d.get(name, default)
    if v is None and not required:
        return None
    return F.mac(f"{where}{name}", _get(d, name, where, default))


def _bool(d, name, where, default=False) -> bool:
    return F.boolean(f"{where}{name}", d.get(name, default))


def _addr(d, name, where, version):
    v = d.get(name)
    return None if v is None else F.address(f"{where}{name}", str(v), version)


def _iface(d, name, where, version):
    v = d.get(name)
    if v is None:
        return None
    if "/" not in str(v):
        raise ConfigError(f"{where}{name}: give the subnet's prefix length too, e.g. {v}/24")
    return F.interface(f"{where}{name}", str(v), version)


NODE_FIELDS = ("name", "workers", "cpus", "flow_table_size", "router_mac", "log_format", "run_dir", "control",
               "control_keys",
               "stats_interval", "metrics", "nexthops")
FABRIC_FIELDS = ("interface", "io", "xdp_mode", "ip", "ip6", "gateway_mac")
VIF_FIELDS = ("id", "name", "netns", "vrf", "mac", "ip", "gateway", "ip6", "gateway6", "mtu", "policy", "nh")
TOP_FIELDS = ("node", "fabric", "vifs", "nexthops", "routes", "labels", "vnis")


def parse(doc) -> NodeConf:
    """Validate a loaded YAML document; raise ConfigError naming the first bad field. The node and
    fabric sections and the vifs are checked here; the static tables (nexthops, routes, labels, vnis)
    are checked by compiling them to control-protocol operations (vrouter.static), as the node does
    at start, so ``vrouter run --check`` refuses exactly what start-up would."""
    try:
        return _parse(doc)
    except F.FieldError as e:
        raise ConfigError(str(e)) from None


def _parse(doc) -> NodeConf:
    if not isinstance(doc, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(doc).__name__}")
    _unknown(doc, TOP_FIELDS, "")
    n = _section(doc, "node", "")
    _unknown(n, NODE_FIELDS, "node.")
    cpus = n.get("cpus", [])
    if not isinstance(cpus, list) or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 4096
                                             for c in cpus):
        raise ConfigError(f"node.cpus: must be a list of CPU numbers, got {cpus!r}")
    workers = 0 if n.get("workers", "auto") == "auto" else _int(n, "workers", "node.", 1, 64)
    if cpus and workers and len(cpus) != workers:
        raise ConfigError(f"node.cpus: {len(cpus)} CPUs for {workers} workers")
    ncpu = os.cpu_count() or 1
    for c in cpus:
        if c >= ncpu:
            raise ConfigError(f"node.cpus: CPU {c} does not exist (this machine has {ncpu})")
    interval = n.get("stats_interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 <= interval <= 3600:
        raise ConfigError(f"node.stats_interval: must be 0..3600 seconds, got {interval!r}")
    conf = NodeConf(
        name=_str(n, "name", "node.", "vrouter"),
        workers=workers, cpus=cpus,
        flow_table_size=_int(n, "flow_table_size", "node.", 16, 1 << 28, 65536),
        router_mac=_mac(n, "router_mac", "node.", DEFAULT_ROUTER_MAC),
        log_format=_str(n, "log_format", "node.", "text", ("text", "json")),
        run_dir=_str(n, "run_dir", "node.", "/run/vrouter"),
        control=_control(n),
        control_keys=_control_keys(n),
        stats_interval=float(interval),
        fabric=None,
        metrics=_metrics(n),
        nexthop_capacity=_int(n, "nexthops", "node.", 1, NH_MAX_CAPACITY, NH_DEFAULT_CAPACITY),
    )
    f = _section(doc, "fabric", "")
    if f:
        _unknown(f, FABRIC_FIELDS, "fabric.")
        conf.fabric = FabricConf(
            interface=F.ifname("fabric.interface", _get(f, "interface", "fabric.")),
            io=_str(f, "io", "fabric.", "auto", ("auto", "xdp", "afpacket")),
            xdp_mode=_str(f, "xdp_mode", "fabric.", "native", ("native", "skb")),
            ip=_addr(f, "ip", "fabric.", 4), ip6=_addr(f, "ip6", "fabric.", 6),
            gateway_mac=_mac(f, "gateway_mac", "fabric.", required=False))
        if conf.fabric.ip is None and conf.fabric.ip6 is None:
            raise ConfigError("fabric.ip: the fabric needs an IPv4 (ip) or IPv6 (ip6) address")
    ids, names = set(), set()
    for i, v in enumerate(_items(doc, "vifs")):
        w = f"vifs[{i}]."
        _unknown(v, VIF_FIELDS, w)
        vid = _int(v, "id", w, 1, F.VIF_MAX)
        if vid in ids:
            raise ConfigError(f"{w}id: vif {vid} defined twice")
        ids.add(vid)
        name = F.ifname(f"{w}name", _get(v, "name", w))
        if name in names:
            raise ConfigError(f"{w}name: {name} used twice")
        names.add(name)
        ip, ip6 = _iface(v, "ip", w, 4), _iface(v, "ip6", w, 6)
        gw, gw6 = _addr(v, "gateway", w, 4), _addr(v, "gateway6", w, 6)
        for a, g, gname in ((ip, gw, "gateway"), (ip6, gw6, "gateway6")):
            if g is not None and a is None:
                raise ConfigError(f"{w}{gname}: given without the pod's address")
            if g is not None and g not in a.network:
                raise ConfigError(f"{w}{gname}: {g} is outside the pod's subnet {a.network}")
            if g is not None and g == a.ip:
                raise ConfigError(f"{w}{gname}: {g} is the pod's own address")
        netns = v.get("netns")
        conf.vifs.append(VifConf(
            id=vid, name=name, vrf=_int(v, "vrf", w, 0, F.VRF_MAX), mac=_mac(v, "mac", w), ip=ip, gateway=gw,
            ip6=ip6, gateway6=gw6, netns=None if netns is None else F.netns_name(f"{w}netns", netns),
            mtu=_int(v, "mtu", w, 1280 if ip6 else 68, 9000, 1500), policy=_bool(v, "policy", w),
            nh=_int(v, "nh", w, 0, F.NH_MAX, vid)))
    # the static tables: their entries are checked as the control-protocol operations they compile to
    conf.nexthops = [dict(x) for x in _items(doc, "nexthops")]
    conf.routes = [dict(x) for x in _items(doc, "routes")]
    conf.labels = [dict(x) for x in _items(doc, "labels")]
    conf.vnis = [dict(x) for x in _items(doc, "vnis")]
    return conf


def _control_keys(n: dict) -> str | None:
    """node.control_keys: a directory made by ``python -m control.keys``: the server's key pair
    (server.key_secret) and the allowed clients' public keys (clients/)."""
    v = n.get("control_keys")
    if v is None:
        return None
    path = F.string("node.control_keys", v, 1, 4096, what="a directory")
    if not os.path.isdir(path):
        raise ConfigError(f"node.control_keys: {path} is not a directory (make one with python -m control.keys "
                          f"{path})")
    if not os.path.isfile(os.path.join(path, "server.key_secret")):
        raise ConfigError(f"node.control_keys: {os.path.join(path, 'server.key_secret')} is missing "
                          f"(python -m control.keys makes it)")
    if not os.path.isdir(os.path.join(path, "clients")):
        raise ConfigError(f"node.control_keys: {os.path.join(path, 'clients')} is missing: the allowed clients' "
                          f"public keys")
    load_server_keys(path)
    return path


def load_server_keys(path: str) -> tuple[bytes, bytes]:
    """The control endpoint's CurveZMQ key pair (public, secret) from ``path``/server.key_secret."""
    import zmq.auth
    secret = os.path.join(path, "server.key_secret")
    try:
        pub, sec = zmq.auth.load_certificate(secret)
    except (OSError, ValueError) as e:
        raise ConfigError(f"node.control_keys: cannot read {secret}: {e}") from None
    if not pub or not sec:
        raise ConfigError(f"node.control_keys: {secret} has no secret key (python -m control.keys makes one)")
    return pub, sec


def _control(n: dict) -> str:
    run_dir = n.get("run_dir", "/run/vrouter")
    v = n.get("control", f"ipc://{run_dir}/control.sock")
    if v == "off":
        return ""
    if not isinstance(v, str) or not v.startswith(("ipc://", "tcp://")):
        raise ConfigError(f"node.control: must be ipc://PATH, tcp://HOST:PORT or off, got {v!r}")
    if v.startswith("tcp://") and not n.get("control_keys"):
        raise ConfigError("node.control_keys: a tcp:// control endpoint needs CurveZMQ keys "
                          "(a directory made by python -m control.keys)")
    return v


DEFAULT_METRICS = "127.0.0.1:9100"


def metrics_address(v: str) -> tuple[str, int]:
    """Split node.metrics (HOST:PORT, [IPv6]:PORT) into (host, port); ConfigError naming the field."""
    bad = ConfigError(f"node.metrics: must be HOST:PORT (an IP address and a port 1..65535, IPv6 as "
                      f"[ADDR]:PORT) or off, got {v!r}")
    if not isinstance(v, str) or ":" not in v:
        raise bad
    host, _, port = v.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise bad from None
        a, version = ipaddress.ip_address("127.0.0.1"), 4
    if a.version != version or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad
    return str(a), int(port)


def _metrics(n: dict) -> str:
    v = n.get("metrics", DEFAULT_METRICS)
    if v == "off" or v is False:      # YAML reads a bare off as false
        return ""
    host, port = metrics_address(v)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load(path: str) -> NodeConf:
    """Read and validate node.yaml (a key given twice is refused, naming its line)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        doc = F.load_yaml(text)
    except F.FieldError as e:
        raise ConfigError(str(e)) from None     # "line 4: bad YAML: duplicate key 'routes' ..."
    return parse(doc)
