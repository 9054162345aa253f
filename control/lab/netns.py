"""Network namespaces for packet tests and labs: unique names, always removed.

    from control.lab.netns import Topology
    with Topology() as t:
        a, b = t.netns("a"), t.netns("b")
        t.veth(a, "va", b, "vb")            # a veth pair between two namespaces
        t.addr(a, "va", "10.0.0.1/24"); t.up(a, "va")
        t.run(a, "ping", "-c1", "10.0.0.2")

Every namespace gets a random suffix (two runs never collide); leaving the
block (test passed, failed or was interrupted) deletes them, and with them
every interface inside. Processes started with `popen` are killed by PID.

Links, addresses, routes and neighbours are set over netlink with pyroute2:
one socket per namespace, opened on first use and closed before the namespace
is deleted (an open socket would keep the namespace, and its interfaces,
alive). A failed call raises TopologyError naming the namespace and the
request. Only processes started inside a namespace (`run`, `popen`) go through
`ip netns exec`; they run with a timeout, a failing one raises
CalledProcessError. Not thread-safe: one thread builds a topology.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import signal
import subprocess
import uuid

from pyroute2 import NetNS
from pyroute2 import netns as _netns
from pyroute2.ethtool.ioctl import ETHTOOL_STXCSUM, SIOCETHTOOL, EthtoolValue, IfReq
from pyroute2.netlink.exceptions import NetlinkError

IFA_F_NODAD = 0x02           # the address is usable at once (no duplicate address detection)
NUD_PERMANENT = 0x80
RTNH_F_ONLINK = 0x04
IFNAMSIZ = 16


class TopologyError(RuntimeError):
    """A namespace, link, address, route or neighbour request failed; says where, what and why."""


def sh(*args, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)


def list_netns() -> list[str]:
    """The names of the namespaces in /run/netns (`ip netns list`)."""
    return sorted(_netns.listnetns())


def delete_netns(name: str) -> None:
    """Unmount and unlink /run/netns/NAME (`ip netns del`); the namespace goes once nothing holds it."""
    with _asking(name, "netns del"):
        _netns.remove(name)


@contextlib.contextmanager
def _asking(ns: str, what: str):
    try:
        yield
    except NetlinkError as e:
        raise TopologyError(f"{ns}: {what}: {os.strerror(e.code)}") from e
    except OSError as e:
        raise TopologyError(f"{ns}: {what}: {e.strerror or e}") from e


class Topology:
    """Namespaces `<tag>-<name>`, what is set up in them and the processes started there; a context
    manager whose exit removes them all."""

    def __init__(self, tag: str = "vr"):
        self.tag = f"{tag}-{uuid.uuid4().hex[:6]}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._sockets: dict[str, NetNS] = {}
        self._owner = os.getpid()

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if os.getpid() != self._owner:
            # pyroute2 forks a child to open a socket in a namespace; one interrupted there (Ctrl-C)
            # unwinds a copy of our stack: cleaning up is the parent's business
            return
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        self.release()
        for ns in reversed(self.namespaces):
            with contextlib.suppress(TopologyError):
                delete_netns(ns)
        self.namespaces.clear()

    # --- namespaces ---------------------------------------------------------------------------------

    def netns(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        with _asking(ns, "netns add"):
            _netns.create(ns)
        self.namespaces.append(ns)
        self.up(ns, "lo")
        return ns

    def remove(self, ns: str) -> None:
        """Delete one namespace of this topology now (its interfaces go with it)."""
        if ns not in self.namespaces:
            raise TopologyError(f"{ns}: not a namespace of topology {self.tag}")
        self._forget(ns)
        delete_netns(ns)
        self.namespaces.remove(ns)

    def _nl(self, ns: str) -> NetNS:
        s = self._sockets.get(ns)
        if s is None:
            if ns not in self.namespaces:
                # NetNS would create a missing namespace (or leak its event loop on failure)
                raise TopologyError(f"{ns}: not a namespace of topology {self.tag}")
            with _asking(ns, "netlink socket"):
                # flags=0: never create it; groups=0: no event subscriptions to fill the socket's buffer
                s = self._sockets[ns] = NetNS(ns, flags=0, groups=0)
        return s

    def release(self) -> None:
        """Close the netlink sockets, leaving the namespaces as they are (a kept lab): a socket would keep
        its namespace alive after someone else deletes it. The next request opens one again."""
        for ns in list(self._sockets):
            self._forget(ns)

    def _forget(self, ns: str) -> None:
        s = self._sockets.pop(ns, None)
        if s is not None:
            s.close()

    def _index(self, ns: str, dev: str) -> int:
        found = self._nl(ns).link_lookup(ifname=dev)
        if not found:
            raise TopologyError(f"{ns}: no device {dev}")
        return found[0]

    # --- processes inside a namespace ---------------------------------------------------------------

    def run(self, ns: str, *cmd, check=True, timeout=30) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout)

    def popen(self, ns: str, *cmd, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, cmd)], **kw)
        self.procs.append(p)
        return p

    # --- links --------------------------------------------------------------------------------------

    def veth(self, ns_a: str, a: str, ns_b: str, b: str, *, queues: int = 1, mtu: int = 1500) -> None:
        """A veth pair a (in ns_a) <-> b (in ns_b), up, TX checksum offload off (frames reach AF_XDP /
        AF_PACKET with complete checksums)."""
        shape = {"num_tx_queues": queues, "num_rx_queues": queues, "mtu": mtu}
        nl = self._nl(ns_a)
        if ns_b not in self.namespaces:
            raise TopologyError(f"{ns_b}: not a namespace of topology {self.tag}")
        with _asking(ns_a, f"link add {a} type veth peer {b} netns {ns_b}"):
            fd = os.open(f"/run/netns/{ns_b}", os.O_RDONLY)
            try:
                nl.link("add", ifname=a, kind="veth", **shape, peer={"ifname": b, "net_ns_fd": fd, **shape})
            finally:
                os.close(fd)
        for ns, dev in ((ns_a, a), (ns_b, b)):
            self._tx_checksum_off(ns, dev)
            self.up(ns, dev)

    def _tx_checksum_off(self, ns: str, dev: str) -> None:
        """`ethtool -K dev tx off`: the legacy ethtool ioctl, on the namespace's netlink socket (any socket
        reaches the devices of its namespace; ethtool itself falls back on a netlink one)."""
        req = IfReq()
        req.ifr_name = (ctypes.c_uint8 * IFNAMSIZ)(*dev.encode().ljust(IFNAMSIZ, b"\0"))
        value = EthtoolValue(cmd=ETHTOOL_STXCSUM, data=0)
        req.value = ctypes.pointer(value)
        with _asking(ns, f"ethtool -K {dev} tx off"):
            fcntl.ioctl(self._nl(ns).fileno(), SIOCETHTOOL, req)

    def bridge(self, ns: str, name: str) -> None:
        """A bridge, up."""
        with _asking(ns, f"link add {name} type bridge"):
            self._nl(ns).link("add", ifname=name, kind="bridge")
        self.up(ns, name)

    def master(self, ns: str, dev: str, bridge: str) -> None:
        """Make dev a port of bridge."""
        with _asking(ns, f"link set {dev} master {bridge}"):
            self._nl(ns).link("set", index=self._index(ns, dev), master=self._index(ns, bridge))

    def up(self, ns: str, dev: str) -> None:
        with _asking(ns, f"link set {dev} up"):
            self._nl(ns).link("set", index=self._index(ns, dev), state="up")

    def mac(self, ns: str, dev: str, mac: str | None = None) -> str:
        """Set dev's MAC address (when given); its MAC address."""
        with _asking(ns, f"link set {dev} address {mac}" if mac else f"link show {dev}"):
            idx = self._index(ns, dev)
            if mac:
                self._nl(ns).link("set", index=idx, address=mac)
            return self._nl(ns).get_links(idx)[0].get("address")

    def counters(self, ns: str, dev: str) -> dict:
        with _asking(ns, f"link show {dev}"):
            s = self._nl(ns).get_links(self._index(ns, dev))[0].get("stats64")
        return {"rx_packets": s["rx_packets"], "tx_packets": s["tx_packets"],
                "rx_bytes": s["rx_bytes"], "tx_bytes": s["tx_bytes"]}

    # --- addresses, routes, neighbours --------------------------------------------------------------

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        """Add an address (IPv6 ones without duplicate address detection: usable at once)."""
        itf = ipaddress.ip_interface(cidr)
        extra = {"flags": IFA_F_NODAD} if itf.version == 6 else {}
        with _asking(ns, f"addr add {cidr} dev {dev}"):
            self._nl(ns).addr("add", index=self._index(ns, dev), address=str(itf.ip),
                              prefixlen=itf.network.prefixlen, **extra)

    def route(self, ns: str, dst: str, *, via: str | None = None, dev: str | None = None,
              kind: str = "unicast", onlink: bool = False) -> None:
        """Add a route: `route(ns, "10.2.0.0/16", via="10.99.0.2", dev="vx0", onlink=True)`,
        `route(ns, "198.51.100.0/24", kind="unreachable")`."""
        what = " ".join(x for x in ("route add", kind if kind != "unicast" else "", dst, via and f"via {via}",
                                    dev and f"dev {dev}", "onlink" if onlink else "") if x)
        with _asking(ns, what):
            req = {"dst": dst, "type": kind}
            if via is not None:
                req["gateway"] = via
            if dev is not None:
                req["oif"] = self._index(ns, dev)
            if onlink:
                req["flags"] = RTNH_F_ONLINK
            self._nl(ns).route("add", **req)

    def neigh(self, ns: str, dev: str, ip: str, mac: str) -> None:
        """A permanent neighbour entry (added or replaced)."""
        with _asking(ns, f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"):
            self._nl(ns).neigh("replace", dst=ip, lladdr=mac, ifindex=self._index(ns, dev), state=NUD_PERMANENT)
