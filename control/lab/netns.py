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
Every command runs with a timeout; a failing one raises CalledProcessError.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid


def sh(*args, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)


class Topology:
    def __init__(self, tag: str = "vr"):
        self.tag = f"{tag}-{uuid.uuid4().hex[:6]}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()

    def netns(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def run(self, ns: str, *cmd, check=True, timeout=30) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout)

    def popen(self, ns: str, *cmd, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, cmd)], **kw)
        self.procs.append(p)
        return p

    def veth(self, ns_a: str, a: str, ns_b: str, b: str, *, queues: int = 1, mtu: int = 1500) -> None:
        """A veth pair a (in ns_a) <-> b (in ns_b), up, TX checksum offload off (frames reach AF_XDP /
        AF_PACKET with complete checksums)."""
        sh("ip", "-n", ns_a, "link", "add", a, "numtxqueues", queues, "numrxqueues", queues, "mtu", mtu,
           "type", "veth", "peer", "name", b, "netns", ns_b, "numtxqueues", queues, "numrxqueues", queues,
           "mtu", mtu)
        for ns, dev in ((ns_a, a), (ns_b, b)):
            self.run(ns, "ethtool", "-K", dev, "tx", "off", check=False)
            self.up(ns, dev)

    def up(self, ns: str, dev: str) -> None:
        sh("ip", "-n", ns, "link", "set", dev, "up")

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev, *(["nodad"] if ":" in cidr else []))

    def mac(self, ns: str, dev: str, mac: str | None = None) -> str:
        if mac:
            sh("ip", "-n", ns, "link", "set", dev, "address", mac)
        out = sh("ip", "-n", ns, "-br", "link", "show", dev).stdout.split()
        return out[2]

    def route(self, ns: str, *args) -> None:
        sh("ip", "-n", ns, "route", "add", *args)

    def neigh(self, ns: str, dev: str, ip: str, mac: str) -> None:
        sh("ip", "-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent")

    def counters(self, ns: str, dev: str) -> dict:
        import json
        info = json.loads(sh("ip", "-n", ns, "-j", "-s", "link", "show", dev).stdout)[0]["stats64"]
        return {"rx_packets": info["rx"]["packets"], "tx_packets": info["tx"]["packets"],
                "rx_bytes": info["rx"]["bytes"], "tx_bytes": info["tx"]["bytes"]}
