"""The node process: ``vrouter run --config node.yaml``.

One ``Node`` owns the datapath tables (vrouter.pipeline.Datapath), a frame
pool and a C worker thread per configured worker, the pods' TAP devices
(created here, set up with pyroute2 and moved into the pods' namespaces) and
the fabric port (AF_XDP with our XDP program, which hands the kernel everything
that is not a tunnel to this node; or AF_PACKET as the fallback). One write
path fills the tables: the static part of the configuration is compiled to
control-protocol operations (vrouter.static) and applied by the same backend
(vrouter.control_backend) that serves the control channel at run time.
``CheckNode`` (``vrouter run --check``) runs that compile and apply on
in-memory tables, looking at devices without creating any.

Stopping (SIGTERM / SIGINT) stops the workers, closes every TAP queue (the
devices disappear with their last queue) and detaches the XDP program: nothing
is left behind. stats.json in the run directory holds the counters, rewritten
every ``node.stats_interval`` seconds; ``node.metrics`` (default 127.0.0.1:9100)
serves them to Prometheus with /healthz and /readyz (vrouter.metrics).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time

from control import fields as F
from vrouter import _ext
from vrouter.config import FABRIC_VIF, ConfigError, NodeConf
from vrouter.pipeline import Datapath
from vrouter.static import FabricLink, apply_static, compile_static

log = logging.getLogger("vrouter")

NETNS_DIR = "/run/netns"    # where `ip netns` (and pyroute2) keep named namespaces
POOL_FRAMES = 8192          # per worker: rx bursts, TAP queues, AF_XDP fill + completion rings


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, msg, the record's fields (one named like those keys gets a
    trailing underscore: it never hides them), and for a record with an exception (log.exception) its
    traceback as "exc" (one string, newlines escaped: still one line)."""

    RESERVED = ("ts", "level", "msg", "exc")

    def format(self, r: logging.LogRecord) -> str:
        d = {"ts": round(r.created, 6), "level": r.levelname.lower(), "msg": r.getMessage()}
        for k, v in getattr(r, "fields", {}).items():
            d[f"{k}_" if k in self.RESERVED else k] = v
        if r.exc_info:
            d["exc"] = self.formatException(r.exc_info)
        return json.dumps(d, sort_keys=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level msg k=v ...``; a record with an exception is followed by its traceback, each line
    indented so that a reader (or grep) sees where the record ends."""

    def format(self, r: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(r, "fields", {}).items())
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.created)) + f".{int(r.msecs):03d}Z"
        line = f"{t} {r.levelname.lower():5s} {r.getMessage()}" + (f" {fields}" if fields else "")
        if r.exc_info:
            line += "\n" + "\n".join("    " + x for x in self.formatException(r.exc_info).splitlines())
        return line


def setup_logging(fmt: str) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    log.handlers[:] = [h]
    log.setLevel(logging.INFO)
    log.propagate = False


def event(level: int, msg: str, **fields) -> None:
    log.log(level, msg, extra={"fields": fields})


def _bpf_object() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "xdp_tunnel.o")


def _pod_routes(ns, idx: int, gw, gw6, default_route: bool, routes, replace: bool = False) -> None:
    """Routes through a pod's device ``idx``: the defaults (if asked) and ``routes``, each via the
    gateway of its family (a family without a gateway gets none). ``replace``: also remove the
    gatewayed routes through the device that are no longer wanted."""
    want: dict[str, str] = {}
    for g, default in ((gw, "0.0.0.0/0"), (gw6, "::/0")):
        if g is not None and default_route:
            want[default] = str(g)
    for r in routes:
        net = ipaddress.ip_network(r)
        g = gw if net.version == 4 else gw6
        if g is not None:
            want[str(net)] = str(g)
    if replace:
        for fam in (2, 10):
            for rt in ns.get_routes(family=fam, table=254, oif=idx):
                if rt.get_attr("RTA_GATEWAY") is None:
                    continue
                dst = rt.get_attr("RTA_DST") or ("0.0.0.0" if fam == 2 else "::")
                key = str(ipaddress.ip_network(f"{dst}/{rt['dst_len']}"))
                if key not in want:
                    ns.route("del", dst=key, oif=idx, family=fam, table=254)
    for dst, g in want.items():
        ns.route("replace", dst=dst, gateway=g, oif=idx, family=10 if ":" in dst else 2)


def check_tap(tap: dict) -> None:
    """What makes a pod's device impossible before trying: its namespace missing, or (staying in this
    namespace) its name taken by another device."""
    netns = tap.get("netns")
    if netns:
        if not os.path.exists(os.path.join(NETNS_DIR, netns)):
            raise F.FieldError("b.tap.netns", f"no network namespace {netns} ({NETNS_DIR}/{netns})")
    elif os.path.exists(os.path.join("/sys/class/net", tap["name"])) and \
            not os.path.exists(os.path.join("/sys/class/net", tap["name"], "tun_flags")):
        raise F.FieldError("b.tap.name", f"{tap['name']} already exists here and is not a TAP device")


class Node:
    def __init__(self, conf: NodeConf):
        self.conf = conf
        self.dp: Datapath | None = None
        self.pools: list = []
        self.workers: list = []
        self.taps: dict[int, list] = {}          # vif id -> [port per worker]
        self.tap_specs: dict[int, dict] = {}     # vif id -> its device as vif_add gave it (control channel)
        self.fabric_ports: list = []
        self.fabric_io: str | None = None
        self.fabric_queues = 1
        self.xdp_attached = False
        self._stop = threading.Event()
        self._stats_thread: threading.Thread | None = None
        self.control = None
        self.metrics = None                      # vrouter.metrics.MetricsServer
        self.ready = False                       # /readyz: start() completed, stop() not begun

    # ------------------------------------------------------------------ start
    def _resolve_workers(self) -> None:
        """workers: auto = one per core, no more than the fabric has receive queues (each worker owns
        one); with `cpus` given, one per listed CPU."""
        c = self.conf
        if c.workers:
            return
        n = len(c.cpus) if c.cpus else (os.cpu_count() or 1)
        if c.fabric:
            if c.fabric.io == "afpacket":
                n = 1
            else:
                from pyroute2 import IPRoute
                with IPRoute() as ipr:
                    idx = ipr.link_lookup(ifname=c.fabric.interface)
                    if idx:
                        n = min(n, ipr.get_links(idx[0])[0].get_attr("IFLA_NUM_RX_QUEUES") or 1)
        c.workers = max(1, min(n, 64))
        if c.cpus and len(c.cpus) != c.workers:
            raise ConfigError(f"node.cpus: {len(c.cpus)} CPUs for {c.workers} workers (the fabric's queues)")

    def start(self) -> None:
        c = self.conf
        self._resolve_workers()
        os.makedirs(c.run_dir, exist_ok=True)
        self.dp = Datapath(workers=c.workers, flow_capacity=c.flow_table_size, nh_capacity=c.nexthop_capacity)
        self.pools = [_ext.IoPool(POOL_FRAMES) for _ in range(c.workers)]
        try:
            link = self.fabric_link() if c.fabric else None
            self._apply_static(link)
            if c.fabric:
                self._start_fabric(link)
            for i in range(c.workers):
                w = _ext.Worker(i, self.dp._pl, self.pools[i], c.cpus[i] if c.cpus else -1)
                self.workers.append(w)
                self._wire(i)
                w.start()
            if c.metrics:
                self._start_metrics()
            if c.control:
                self._start_control()
        except BaseException:
            self.stop()
            raise
        self.ready = True
        event(logging.INFO, "started", node=c.name, workers=c.workers, vifs=len(c.vifs),
              fabric=self.fabric_io or "none", control=c.control or "none")
        if c.stats_interval > 0:
            self._stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
            self._stats_thread.start()

    def _apply_static(self, link: FabricLink | None) -> dict:
        """The configuration's tables, through the control backend (the one write path)."""
        from vrouter.control_backend import NodeBackend
        self.backend = NodeBackend(self)
        counts = apply_static(self.backend, compile_static(self.conf, link))
        event(logging.INFO, "static configuration applied", **counts)
        return counts

    def fabric_link(self) -> FabricLink:
        """The fabric interface's MAC and MTU (ConfigError if there is no such interface here)."""
        from pyroute2 import IPRoute
        f = self.conf.fabric
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=f.interface)
            if not idx:
                raise ConfigError(f"fabric.interface: no interface {f.interface} in this namespace")
            link = ipr.get_links(idx[0])[0]
            self.fabric_queues = link.get_attr("IFLA_NUM_RX_QUEUES") or 1
            mac = link.get_attr("IFLA_ADDRESS")
            if not mac or mac == "00:00:00:00:00:00":
                raise ConfigError(f"fabric.interface: {f.interface} has no Ethernet address")
            return FabricLink(mac, link.get_attr("IFLA_MTU"))

    def _wire(self, i: int) -> None:
        rx, tx = [], {}
        for vif, ports in self.taps.items():
            rx.append(ports[i])
            tx[vif] = ports[i]
        if self.fabric_ports:
            port = self.fabric_ports[i]
            if port is not None:
                rx.append(port)
                tx[FABRIC_VIF] = port
        self.workers[i].set_ports(rx, tx)

    def _start_fabric(self, link: FabricLink) -> None:
        f, c = self.conf.fabric, self.conf
        mac, mtu, queues = link.mac, link.mtu, self.fabric_queues
        self.fabric_mac = mac
        mode = f.io
        if mode in ("xdp", "auto"):
            try:
                if queues < c.workers:
                    raise OSError(0, f"{f.interface} has {queues} receive queues for {c.workers} workers")
                _ext.xsk_attach(f.interface, _bpf_object(), f.xdp_mode == "skb")
                self.xdp_attached = True
                self.fabric_ports = [_ext.IoPort.open_xsk(self.pools[i], f.interface, i, FABRIC_VIF,
                                                          f.xdp_mode == "skb") for i in range(c.workers)]
                self.fabric_io = f"xdp-{f.xdp_mode}"
            except OSError as e:
                self._close_fabric()
                if mode == "xdp":
                    raise ConfigError(f"fabric.io: AF_XDP on {f.interface} failed: {e}") from None
                event(logging.WARNING, "AF_XDP unavailable, falling back to AF_PACKET", interface=f.interface,
                      error=str(e))
        if not self.fabric_ports:
            if c.workers != 1:
                raise ConfigError(f"fabric.io: the AF_PACKET fallback runs one worker (node.workers is "
                                  f"{c.workers})")
            try:
                self.fabric_ports = [_ext.IoPort.open_packet(self.pools[0], f.interface, FABRIC_VIF)]
            except OSError as e:
                raise ConfigError(f"fabric.interface: AF_PACKET on {f.interface} failed: {e}") from None
            self.fabric_io = "afpacket"
        event(logging.INFO, "fabric up", interface=f.interface, io=self.fabric_io, mac=mac, mtu=mtu,
              queues=queues)

    def _open_tap(self, vid: int, name: str, mac: str, mtu: int, netns, ip=None, gateway=None, ip6=None,
                  gateway6=None, default_route: bool = True, routes=()) -> None:
        """A TAP device for vif vid (a queue per worker), set up with pyroute2: the pod's MAC and MTU,
        moved into its namespace, up, with its addresses, default routes via the gateways (unless
        default_route is false) and routes to ``routes`` (prefixes) via the gateway of their family."""
        from pyroute2 import IPRoute, NetNS
        c = self.conf
        ports = []
        # bound for another namespace: made under a name of its own here (the pod's eth0 must not meet
        # the node's eth0), renamed as it moves
        here = f"vrtap{vid}" if netns else name
        try:
            for i in range(c.workers):
                ports.append(_ext.IoPort.open_tap(self.pools[i], here, vid, c.workers > 1, i))
        except OSError as e:
            for p in ports:
                p.close()
            raise F.FieldError("b.tap.name", f"cannot create TAP {here}: {e}") from None
        self.taps[vid] = ports
        try:
            with IPRoute() as ipr:
                idx = ipr.link_lookup(ifname=here)[0]
                ipr.link("set", index=idx, address=mac, mtu=mtu)
                if netns:
                    try:
                        ipr.link("set", index=idx, net_ns_fd=netns, ifname=name)
                    except Exception as e:  # noqa: BLE001 - pyroute2 raises several kinds
                        raise F.FieldError("b.tap.netns", f"cannot move {here} into {netns} as {name}: {e}") \
                            from None
            ns = NetNS(netns) if netns else IPRoute()
            try:
                idx = ns.link_lookup(ifname=name)[0]
                ns.link("set", index=idx, state="up")
                if ip is not None:
                    ns.addr("add", index=idx, address=str(ip.ip), prefixlen=ip.network.prefixlen)
                if ip6 is not None:
                    ns.addr("add", index=idx, address=str(ip6.ip), prefixlen=ip6.network.prefixlen,
                            flags=0x02)   # IFA_F_NODAD: the vrouter does not answer DAD
                _pod_routes(ns, idx, gateway, gateway6, default_route, routes)
            finally:
                ns.close()
        except BaseException:
            for p in self.taps.pop(vid):
                p.close()
            raise

    def add_tap(self, vid: int, tap: dict, mtu: int, gw4=None, gw6=None) -> None:
        """The control channel's vif_add with a device: the TAP (its routes via the vif's gateways),
        then every worker polls it. A refusal raises control.fields.FieldError naming the field of the
        request ("b.tap.netns")."""
        check_tap(tap)
        ip = ipaddress.ip_interface(tap["ip"]) if tap.get("ip") else None
        ip6 = ipaddress.ip_interface(tap["ip6"]) if tap.get("ip6") else None
        gw = gw4 if ip is not None else None
        gw6 = gw6 if ip6 is not None else None
        self._open_tap(vid, tap["name"], tap["pod_mac"], mtu, tap.get("netns"), ip, gw, ip6, gw6,
                       tap.get("default_route", True), tap.get("routes") or ())
        self.tap_specs[vid] = dict(tap, gw4=gw, gw6=gw6)
        for i in range(len(self.workers)):
            self._wire(i)
        event(logging.INFO, "vif device added", vif=vid, name=tap["name"], netns=tap.get("netns") or "-")

    def update_tap_routes(self, vid: int, tap: dict, gw4=None, gw6=None) -> None:
        """vif_update of a vif with a device: make the pod's routes through it what ``tap`` says (the
        device itself, its addresses and namespace do not change)."""
        from pyroute2 import IPRoute, NetNS
        old = self.tap_specs[vid]
        gw = gw4 if old.get("ip") else None
        gw6 = gw6 if old.get("ip6") else None
        ns = NetNS(old["netns"]) if old.get("netns") else IPRoute()
        try:
            idx = ns.link_lookup(ifname=old["name"])[0]
            _pod_routes(ns, idx, gw, gw6, tap.get("default_route", True), tap.get("routes") or (), replace=True)
        finally:
            ns.close()
        self.tap_specs[vid] = dict(old, default_route=tap.get("default_route", True),
                                   routes=list(tap.get("routes") or ()), gw4=gw, gw6=gw6)
        event(logging.INFO, "vif device routes set", vif=vid, routes=len(tap.get("routes") or ()))

    def remove_tap(self, vid: int) -> None:
        ports = self.taps.pop(vid, None)
        self.tap_specs.pop(vid, None)
        if ports is None:
            return
        for i in range(len(self.workers)):
            self._wire(i)              # the workers let go of the ports first
        for p in ports:
            p.close()
        event(logging.INFO, "vif device removed", vif=vid)

    def _start_metrics(self) -> None:
        from vrouter.metrics import MetricsServer
        m = MetricsServer(self, self.conf.metrics)
        try:
            m.start()
        except OSError as e:
            raise ConfigError(f"node.metrics: cannot listen on {m.address}: {e.strerror or e}") from None
        self.metrics = m
        event(logging.INFO, "metrics listening", address=m.address,
              paths="/metrics /healthz /readyz")

    def _start_control(self) -> None:
        from control.server import ControlServer
        from vrouter.config import load_server_keys
        c = self.conf
        keys = {}
        if c.control.startswith("tcp://"):
            pub, sec = load_server_keys(c.control_keys)
            keys = dict(curve_secret=sec, curve_public=pub,
                        allowed_keys_dir=os.path.join(c.control_keys, "clients"))
        self.control = ControlServer(c.control, self.backend, **keys)
        try:
            self.control.start()
        except Exception as e:  # noqa: BLE001 - zmq raises several kinds
            self.control = None
            raise ConfigError(f"node.control: cannot listen on {c.control}: {e}") from None

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        dp = self.dp
        out = {"node": self.conf.name, "time": time.time(), "datapath": dp.stats(),
               "workers": [w.stats() for w in self.workers], "vifs": {}, "ports": {}}
        vif_ids = [FABRIC_VIF] if self.conf.fabric else []
        vif_ids += [v.id for v in self.conf.vifs]
        for v in vif_ids:
            out["vifs"][str(v)] = dp.vif_stats(v)
        for vif, ports in self.taps.items():
            out["ports"][f"tap:{vif}"] = [p.stats() for p in ports]
        if self.fabric_ports:
            out["ports"]["fabric"] = [p.stats() for p in self.fabric_ports if p is not None]
        out["flows"] = self.dp.flows.stats()
        return out

    def write_stats(self) -> None:
        path = os.path.join(self.conf.run_dir, "stats.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats(), f, default=int)
        os.replace(tmp, path)

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.conf.stats_interval):
            try:
                self.write_stats()
            except Exception as e:  # noqa: BLE001 - a stats failure must not stop forwarding
                event(logging.WARNING, "stats write failed", error=str(e))

    # ------------------------------------------------------------------ stop
    def _close_fabric(self) -> None:
        for p in self.fabric_ports:
            if p is not None:
                p.close()
        self.fabric_ports = []
        if self.xdp_attached:
            _ext.xsk_detach(self.conf.fabric.interface)
            self.xdp_attached = False

    def stop(self) -> None:
        self.ready = False
        self._stop.set()
        if getattr(self, "control", None) is not None:
            self.control.stop()
            self.control = None
        for w in self.workers:
            w.stop()
        if self._stats_thread is not None:
            self._stats_thread.join(timeout=5)
        if self.workers and self.dp is not None:
            try:
                self.write_stats()
            except OSError:
                pass
        for ports in self.taps.values():
            for p in ports:
                p.close()
        self.taps.clear()
        self._close_fabric()
        self.workers.clear()
        if self.metrics is not None:       # last: /readyz and /healthz answer 503 while stopping
            self.metrics.stop()
            self.metrics = None
        event(logging.INFO, "stopped", node=self.conf.name)


class CheckNode(Node):
    """``vrouter run --check``: what start() applies, compiled and applied the same way (the same
    backend, schema and reference checks) on in-memory tables. Devices are looked at (the fabric
    interface, the pods' namespaces, TAP names), never created."""

    CHECK_FLOWS = 1024

    def check(self) -> dict:
        """Counts of the operations the configuration compiles to; ConfigError for the first refusal."""
        self._resolve_workers()
        self.dp = Datapath(workers=1, flow_capacity=min(self.conf.flow_table_size, self.CHECK_FLOWS),
                           nh_capacity=self.conf.nexthop_capacity)
        return self._apply_static(self.fabric_link() if self.conf.fabric else None)

    def add_tap(self, vid: int, tap: dict, mtu: int, gw4=None, gw6=None) -> None:
        check_tap(tap)
        self.tap_specs[vid] = dict(tap, gw4=gw4, gw6=gw6)


def run(conf: NodeConf) -> int:
    setup_logging(conf.log_format)
    node = Node(conf)
    stop = threading.Event()

    me = os.getpid()

    def on_signal(signum, _frame):
        if os.getpid() != me:
            # a child forked by a library (pyroute2's NetNS) inherited this
            # handler: let it die as it was told to
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        event(logging.INFO, "signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        node.start()
    except ConfigError as e:
        event(logging.ERROR, f"refused: {e}")
        return 2
    except OSError as e:
        event(logging.ERROR, f"start failed: {e}")
        return 1
    try:
        while not stop.wait(0.5):
            pass
    finally:
        node.stop()
    return 0
