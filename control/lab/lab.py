"""The lab: a cluster of vrouter nodes in network namespaces, for the demo and the end-to-end tests.

    with Lab() as lab:                                   # tag vrdemo-<6 hex>; close() removes everything
        n1 = lab.add_node("n1", "192.0.2.1")             # netns <tag>-n1, fab0 = 192.0.2.1/24 on the fabric
        n2 = lab.add_node("n2", "192.0.2.2")
        lab.start_node(n1); lab.start_node(n2)           # `vrouter run` in each, control at n.control
        lab.start_node(n3, node_agent=True)              # and a node agent (python -m control.node) beside it
        web = lab.add_pod("default", "web")              # netns <tag>-default-web (lab.netns_format)
        ...                                              # the agent gives the pods their TAPs
        lab.start_responder(web, "web")                  # TCP and UDP :80 answer "web\\n"
        lab.probe(client, [("10.244.0.3", 80)])          # ["ok:web"] | timeout | refused | unreachable | error:E...

Layout: every node namespace has one veth `fab0` (TX checksum offload off, MAC 02:fa:00:00:00:NN for the
N-th node) whose peer is a port of the bridge `br0` in the namespace `<tag>-fabric`: one L2 segment for
all nodes. Files live in the lab directory `<tmp>/<tag>/`: one run dir per node (node.yaml, vrouter.log,
vrouter.pid, stats.json, control.sock) and the responder and prober scripts. A vrouter starts with an
empty control plane (only the fabric vif); ``fabric.gateway_mac`` is the MAC of the first other node, a
default only, since the tunnel next hops the agent pushes carry the remote node's MAC.

Node agents: ``start_node(node, node_agent=True)`` (or ``start_node_agent(node)`` later) runs `python -m
control.node` in the node's namespace, polling the cluster agent at ``lab.cluster_endpoint`` (an ipc
socket in the lab directory: ipc sockets are files, reachable from every namespace) and pushing to the
node's vrouter; its log is node-agent.log in the node's run dir. Stopping a vrouter leaves its node agent
running (it resyncs the vrouter when it is back); ``close()`` stops both.

``Lab(keep=True)``: ``close()`` leaves namespaces, processes and files as they are (``describe()`` says
where); ``Lab.cleanup(tag)`` removes them later, from any process. Namespaces, links and addresses are
set over netlink (control/lab/netns.py); processes in a namespace start with `ip netns exec`. Every command
runs with a timeout; a failure raises LabError naming the command or request and why it failed.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import yaml

from control.lab.netns import Topology, TopologyError, delete_netns, list_netns

TAG_PREFIX = "vrdemo"
STOP_TIMEOUT = 10.0          # SIGTERM, then SIGKILL after this many seconds
START_TIMEOUT = 20.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TAG = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{6}$")

RESPONDER_PY = r'''
"""Answer every TCP connection and UDP datagram on [::]:port (dual-stack) with identity + newline."""
import selectors, socket, sys

answer = (sys.argv[1] + "\n").encode()
port = int(sys.argv[2])
tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for s in (tcp, udp):
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.setblocking(False)
tcp.listen(128)
sel = selectors.DefaultSelector()
sel.register(tcp, selectors.EVENT_READ)
sel.register(udp, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            if key.fileobj is tcp:
                c, _ = tcp.accept()
                with c:              # a fresh socket's send buffer takes the answer whole
                    c.setblocking(False)
                    c.send(answer)
                    c.shutdown(socket.SHUT_WR)
            else:
                _, peer = udp.recvfrom(2048)
                udp.sendto(answer, peer)
        except OSError:
            pass                     # the peer went away; serve the next one
'''

PROBER_PY = r'''
"""Connect to every ADDR:PORT at once (a thread each); print a JSON list of outcomes, within TIMEOUT."""
import errno, json, os, socket, sys, threading, time

timeout = float(sys.argv[1])
targets = [(a.rsplit(":", 1)[0].strip("[]"), int(a.rsplit(":", 1)[1])) for a in sys.argv[2:]]
deadline = time.monotonic() + timeout
out = ["timeout"] * len(targets)


def probe(i, addr, port):
    try:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            s.connect((addr, port))
            got = b""
            while True:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        out[i] = "ok:" + got.decode(errors="replace").rstrip("\n")
    except TimeoutError:
        out[i] = "timeout"
    except ConnectionRefusedError:
        out[i] = "refused"
    except OSError as e:
        if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            out[i] = "unreachable"
        else:
            out[i] = "error:" + errno.errorcode.get(e.errno, type(e).__name__)
    except Exception as e:
        out[i] = "error:" + type(e).__name__


for i, (a, p) in enumerate(targets):
    threading.Thread(target=probe, args=(i, a, p), daemon=True).start()
for t in threading.enumerate():
    if t is not threading.main_thread():
        t.join(max(deadline + 0.2 - time.monotonic(), 0))
print(json.dumps(out), flush=True)
os._exit(0)
'''


class LabError(RuntimeError):
    """A lab operation failed; the message names the command and what it printed."""


@contextlib.contextmanager
def _commands():
    """Turn a failed or timed-out command, or a refused netlink request, into a LabError."""
    try:
        yield
    except TopologyError as e:
        raise LabError(str(e)) from e
    except subprocess.CalledProcessError as e:
        raise LabError(f"{shlex.join(map(str, e.cmd))} failed with {e.returncode}: "
                       f"{(e.stderr or '').strip()}") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{shlex.join(map(str, e.cmd))} timed out after {e.timeout} s") from e


@dataclass
class LabNode:
    """One node: its namespace, fabric address and run dir; `proc` is its `vrouter run` while started."""
    name: str
    index: int
    netns: str
    fabric_ip: str
    fabric_mac: str
    run_dir: str
    proc: subprocess.Popen | None = field(default=None, repr=False)
    start_args: dict = field(default_factory=dict, repr=False)
    log_offset: int = field(default=0, repr=False)
    agent_proc: subprocess.Popen | None = field(default=None, repr=False)     # its node agent, if any
    agent_args: dict = field(default_factory=dict, repr=False)
    agent_log_offset: int = field(default=0, repr=False)

    @property
    def control(self) -> str:
        return f"ipc://{self.run_dir}/control.sock"

    @property
    def log_path(self) -> str:
        return os.path.join(self.run_dir, "vrouter.log")

    def log(self) -> str:
        """What the current (or last) vrouter run wrote."""
        with open(self.log_path, errors="replace") as f:
            f.seek(self.log_offset)
            return f.read()

    @property
    def agent_log_path(self) -> str:
        return os.path.join(self.run_dir, "node-agent.log")

    def agent_log(self) -> str:
        """What the current (or last) node agent wrote."""
        with open(self.agent_log_path, errors="replace") as f:
            f.seek(self.agent_log_offset)
            return f.read()


class Lab:
    """Nodes, pods, responders and probes in namespaces named `<tag>-...`; a context manager."""

    def __init__(self, *, keep: bool = False):
        self.topo = Topology(TAG_PREFIX)
        self.tag = self.topo.tag
        self.keep = keep
        self.netns_format = f"{self.tag}-{{namespace}}-{{name}}"
        self.dir = os.path.join(tempfile.gettempdir(), self.tag)
        os.mkdir(self.dir, 0o700)
        for name, text in (("responder.py", RESPONDER_PY), ("prober.py", PROBER_PY)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.nodes: dict[str, LabNode] = {}
        self.pods: dict[str, str] = {}            # "namespace/name" -> netns
        self.responders: list[subprocess.Popen] = []
        self.pod_responders: dict[str, list[subprocess.Popen]] = {}   # netns -> its responders
        self.fabric: str | None = None            # the bridge's namespace, made with the first node
        self._closed = False
        self._owner = os.getpid()

    def __enter__(self) -> "Lab":
        return self

    @property
    def cluster_endpoint(self) -> str:
        """Where the lab's cluster agent serves node agents (Agent(listen=...))."""
        return f"ipc://{self.dir}/cluster.sock"

    def __exit__(self, *exc) -> None:
        self.close()

    # --- topology -------------------------------------------------------------------------------

    def add_node(self, name: str, fabric_ip: str) -> LabNode:
        """A node namespace `<tag>-<name>` with `fab0` = fabric_ip/24 on the fabric bridge."""
        if not _NAME.match(name) or name == "fabric" or name in self.nodes:
            raise LabError(f"node name {name!r}: must be new, not 'fabric', and [A-Za-z0-9_.-]")
        try:
            ip = ipaddress.IPv4Address(fabric_ip)
        except ValueError as e:
            raise LabError(f"node {name}: fabric_ip: {e}") from None
        index = len(self.nodes) + 1
        if index > 254:
            raise LabError("a lab holds at most 254 nodes")
        run_dir = os.path.join(self.dir, name)
        os.mkdir(run_dir)
        with _commands():
            if self.fabric is None:
                self.fabric = self.topo.netns("fabric")
                self.topo.bridge(self.fabric, "br0")
            ns = self.topo.netns(name)
            port = f"p{index}"
            self.topo.veth(self.fabric, port, ns, "fab0")
            self.topo.master(self.fabric, port, "br0")
            mac = self.topo.mac(ns, "fab0", f"02:fa:00:00:00:{index:02x}")
            self.topo.addr(ns, "fab0", f"{ip}/24")
        node = LabNode(name, index, ns, str(ip), mac, run_dir)
        self.nodes[name] = node
        return node

    def add_host(self, name: str, ip: str) -> tuple[str, str]:
        """A plain host on the fabric (no vrouter): netns `<tag>-<name>` with `eth0` = ip/24 on the fabric
        bridge, MAC 02:fa:00:00:00:fe. It stands for the underlay's gateway (the nodes' fabricGatewayMac)
        reaching pods of fabric-forwarding networks as plain IP; ``route`` gives it their addresses.
        Returns (netns, MAC)."""
        if not _NAME.match(name) or name == "fabric" or name in self.nodes:
            raise LabError(f"host name {name!r}: must be new, not 'fabric', and [A-Za-z0-9_.-]")
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError as e:
            raise LabError(f"host {name}: ip: {e}") from None
        with _commands():
            if self.fabric is None:
                self.fabric = self.topo.netns("fabric")
                self.topo.bridge(self.fabric, "br0")
            ns = self.topo.netns(name)
            self.topo.veth(self.fabric, f"h-{name}"[:15], ns, "eth0")
            self.topo.master(self.fabric, f"h-{name}"[:15], "br0")
            mac = self.topo.mac(ns, "eth0", "02:fa:00:00:00:fe")
            self.topo.addr(ns, "eth0", f"{addr}/24")
        return ns, mac

    def route(self, netns: str, dst: str, via: str) -> None:
        """A route in any lab namespace (a host's routes to pods through their nodes)."""
        with _commands():
            self.topo.route(netns, dst, via=via)

    def enable_forwarding(self, netns: str) -> None:
        """Make a pod a router: IPv4 and IPv6 forwarding on, reverse-path filter off, written to /proc/sys
        from inside its namespace."""
        script = ("echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
                  " && for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done")
        with _commands():
            self.topo.run(netns, "sh", "-c", script)

    def add_pod(self, namespace: str, name: str) -> str:
        """The pod's namespace, `netns_format` filled in; its interfaces are the vrouter's business."""
        for what, v in (("namespace", namespace), ("name", name)):
            if not _NAME.match(v):
                raise LabError(f"pod {what} {v!r}: must be [A-Za-z0-9_.-], at most 63 characters")
        key = f"{namespace}/{name}"
        if key in self.pods:
            raise LabError(f"pod {key}: already added")
        with _commands():
            ns = self.topo.netns(f"{namespace}-{name}")
        self.pods[key] = ns
        return ns

    def remove_pod(self, namespace: str, name: str) -> None:
        """Kill the pod's responders and delete its namespace (and whatever device is still in it)."""
        ns = self.pods.pop(f"{namespace}/{name}", None)
        if ns is None:
            raise LabError(f"pod {namespace}/{name}: not in the lab")
        for p in self.pod_responders.pop(ns, []):
            _terminate(p, 0)
        with _commands():
            self.topo.remove(ns)

    # --- vrouters -------------------------------------------------------------------------------

    def start_node(self, node: LabNode, *, workers=1, io: str = "auto", extra: dict | None = None,
                   node_agent: bool = False, audit_interval: float | None = None) -> None:
        """Write node.yaml and run `vrouter run` in the node's namespace until its log says started;
        with `node_agent`, then its node agent (start_node_agent).

        `extra` is merged into node.yaml one section deep: {"node": {"flow_table_size": 4096}} adds a
        key to `node:`, a top-level key that is not a mapping on both sides replaces the section."""
        if node.proc is not None and node.proc.poll() is None:
            raise LabError(f"node {node.name}: already running (pid {node.proc.pid})")
        others = [n for n in self.nodes.values() if n is not node]
        conf = {
            "node": {"name": node.name, "run_dir": node.run_dir, "workers": workers, "control": node.control,
                     "stats_interval": 0.2, "metrics": "off"},
            "fabric": {"interface": "fab0", "io": io, "ip": node.fabric_ip},
        }
        if others:
            conf["fabric"]["gateway_mac"] = others[0].fabric_mac
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(conf.get(k), dict):
                conf[k].update(v)
            else:
                conf[k] = v
        conf_path = os.path.join(node.run_dir, "node.yaml")
        with open(conf_path, "w") as f:
            yaml.safe_dump(conf, f, sort_keys=False)
        node.start_args = {"workers": workers, "io": io, "extra": extra}
        node.log_offset = os.path.getsize(node.log_path) if os.path.exists(node.log_path) else 0
        with open(node.log_path, "a") as log:
            node.proc = self.topo.popen(node.netns, sys.executable, "-m", "vrouter", "run", "--config",
                                        conf_path, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        _write_pid(os.path.join(node.run_dir, "vrouter.pid"), node.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = node.log()
            if node.proc.poll() is not None:
                raise LabError(f"node {node.name}: vrouter exited with {node.proc.returncode}:\n{text}")
            if " started " in text or '"msg": "started"' in text:
                if node_agent:
                    self.start_node_agent(node, audit_interval=audit_interval)
                return
            time.sleep(0.05)
        self.stop_node(node)
        raise LabError(f"node {node.name}: vrouter did not start in {START_TIMEOUT} s:\n{node.log()}")

    def start_node_agent(self, node: LabNode, *, audit_interval: float | None = None) -> None:
        """Run the node's agent (`python -m control.node`) in its namespace, polling the cluster agent at
        `cluster_endpoint` and pushing to the node's vrouter; returns once it runs (the cluster agent
        need not be up: the node agent retries it)."""
        if node.agent_proc is not None and node.agent_proc.poll() is None:
            raise LabError(f"node {node.name}: its node agent already runs (pid {node.agent_proc.pid})")
        args = ["--node", node.name, "--cluster", self.cluster_endpoint, "--vrouter", node.control]
        if audit_interval is not None:
            args += ["--audit-interval", str(audit_interval)]
        node.agent_args = {"audit_interval": audit_interval}
        node.agent_log_offset = os.path.getsize(node.agent_log_path) if os.path.exists(node.agent_log_path) else 0
        with open(node.agent_log_path, "a") as log:
            node.agent_proc = self.topo.popen(node.netns, sys.executable, "-m", "control.node", *args,
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)
        _write_pid(os.path.join(node.run_dir, "node-agent.pid"), node.agent_proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if node.agent_proc.poll() is not None:
                raise LabError(f"node {node.name}: its node agent exited with {node.agent_proc.returncode}:\n"
                               f"{node.agent_log()}")
            if "node agent" in node.agent_log():
                return
            time.sleep(0.05)
        self.stop_node_agent(node)
        raise LabError(f"node {node.name}: its node agent did not start in {START_TIMEOUT} s:\n{node.agent_log()}")

    def stop_node_agent(self, node: LabNode, timeout: float = STOP_TIMEOUT, kill: bool = False) -> int:
        """SIGTERM the node's agent by PID (SIGKILL after `timeout` s, or at once with `kill`); its exit
        status. The vrouter keeps forwarding with what it has."""
        if node.agent_proc is None:
            raise LabError(f"node {node.name}: no node agent started")
        if kill and node.agent_proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.agent_proc.pid, signal.SIGKILL)
        rc = _terminate(node.agent_proc, timeout)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(node.run_dir, "node-agent.pid"))
        return rc

    def restart_node_agent(self, node: LabNode, kill: bool = False) -> None:
        """Stop the node's agent (SIGKILL with `kill`) and start it again with the same arguments."""
        self.stop_node_agent(node, kill=kill)
        self.start_node_agent(node, **node.agent_args)

    def stop_node(self, node: LabNode, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the node's vrouter by PID (SIGKILL after `timeout` s); its exit status."""
        if node.proc is None:
            raise LabError(f"node {node.name}: not started")
        rc = _terminate(node.proc, timeout)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(node.run_dir, "vrouter.pid"))
        return rc

    def restart_node(self, node: LabNode) -> None:
        """Stop the node's vrouter and start it again with the same arguments."""
        self.stop_node(node)
        self.start_node(node, **node.start_args)

    def node_stats(self, node: LabNode, fresh: bool = True) -> dict:
        """The node's run_dir/stats.json; with `fresh`, one written after this call (within 5 s)."""
        path = os.path.join(node.run_dir, "stats.json")
        before = os.stat(path).st_mtime_ns if os.path.exists(path) else 0
        deadline = time.monotonic() + 5
        while fresh or not os.path.exists(path):
            if os.path.exists(path) and os.stat(path).st_mtime_ns != before:
                break
            if time.monotonic() > deadline:
                raise LabError(f"node {node.name}: no fresh {path} in 5 s")
            time.sleep(0.05)
        with open(path) as f:
            return json.load(f)

    # --- traffic --------------------------------------------------------------------------------

    def start_responder(self, pod_netns: str, identity: str, port: int = 80) -> subprocess.Popen:
        """A process in pod_netns answering TCP and UDP on [::]:port (IPv4 too) with identity + newline;
        returns once it listens."""
        if "\n" in identity:
            raise LabError("responder identity: one line")
        log_path = os.path.join(self.dir, f"responder-{len(self.responders) + 1}.log")
        with open(log_path, "w") as log:
            p = self.topo.popen(pod_netns, sys.executable, os.path.join(self.dir, "responder.py"), identity,
                                port, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                start_new_session=True)
        self.responders.append(p)
        self.pod_responders.setdefault(pod_netns, []).append(p)
        _write_pid(os.path.join(self.dir, f"responder-{len(self.responders)}.pid"), p.pid)
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=10) and p.stdout.readline() == b"ready\n"
        sel.close()
        p.stdout.close()             # it never writes again
        if not ready:
            _terminate(p, 0)
            with open(log_path) as f:
                raise LabError(f"responder {identity!r} in {pod_netns} (port {port}) did not start:\n{f.read()}")
        return p

    def probe(self, src_netns: str, targets: list[tuple[str, int]], timeout: float = 1.5) -> list[str]:
        """Connect from src_netns to every (address, port) at once: for each, "ok:<identity>",
        "timeout", "refused", "unreachable" or "error:<errno name>"; takes at most about timeout + 1 s."""
        return self.probe_many([(src_netns, targets)], timeout)[0]

    def probe_many(self, probes: list[tuple[str, list[tuple[str, int]]]], timeout: float = 1.5) -> list[list[str]]:
        """`probe` from several namespaces in parallel (one prober process each); results in order."""
        prober = os.path.join(self.dir, "prober.py")
        procs: list[tuple[list[str], subprocess.Popen]] = []
        try:
            for ns, targets in probes:
                cmd = ["ip", "netns", "exec", ns, sys.executable, prober, str(timeout),
                       *(f"[{a}]:{p}" for a, p in targets)]
                procs.append((cmd, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True)))
            results = []
            # a safety net, not a measurement: each prober gives up after `timeout` by itself; starting a
            # dozen Python processes at once on a loaded 2-core machine takes seconds
            deadline = time.monotonic() + timeout + 30
            for cmd, p in procs:
                try:
                    out, err = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    raise LabError(f"{shlex.join(cmd)} timed out") from None
                if p.returncode != 0:
                    raise LabError(f"{shlex.join(cmd)} failed with {p.returncode}: {err.strip()}")
                results.append(json.loads(out))
            return results
        finally:
            for _, p in procs:
                _terminate(p, 0)

    def ping(self, src_netns: str, addr: str, count: int = 1, timeout: float = 1) -> bool:
        """True if `addr` answered at least one of `count` echo requests (each waited for `timeout` s)."""
        with _commands():
            r = self.topo.run(src_netns, "ping", "-c", count, "-i", "0.2", "-W", timeout, addr, check=False,
                              timeout=count * 0.2 + timeout + 5)
        return r.returncode == 0

    # --- lifetime -------------------------------------------------------------------------------

    def describe(self) -> dict:
        """Where everything is: namespaces, run dirs, PIDs."""
        return {
            "tag": self.tag,
            "dir": self.dir,
            "fabric_netns": self.fabric,
            "nodes": {n.name: {"netns": n.netns, "fabric_ip": n.fabric_ip, "fabric_mac": n.fabric_mac,
                               "run_dir": n.run_dir, "control": n.control,
                               "pid": n.proc.pid if n.proc and n.proc.poll() is None else None,
                               "node_agent_pid": n.agent_proc.pid if n.agent_proc and n.agent_proc.poll() is None
                               else None}
                      for n in self.nodes.values()},
            "pods": dict(self.pods),
        }

    def close(self) -> None:
        """Stop the vrouters (SIGTERM, then SIGKILL), kill the responders, delete every namespace and the
        lab directory. With keep=True: nothing (see `cleanup`)."""
        if self._closed or os.getpid() != self._owner:     # not in a forked child (netns.py)
            return
        if self.keep:
            self.topo.release()      # our sockets must not keep its namespaces alive past `cleanup`
            return
        self._closed = True
        try:
            for node in self.nodes.values():
                if node.agent_proc is not None:
                    self.stop_node_agent(node)
            for node in self.nodes.values():
                if node.proc is not None:
                    self.stop_node(node)
            for p in self.responders:
                _terminate(p, 0)
        finally:
            self.topo.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def cleanup(cls, tag: str) -> None:
        """Remove what a Lab(keep=True) left: stop the processes whose PIDs it wrote (those still running
        from its directory), delete the namespaces `<tag>-*` and the lab directory."""
        if not _TAG.match(tag):
            raise LabError(f"tag {tag!r}: not a lab tag (like {TAG_PREFIX}-1a2b3c)")
        root = os.path.join(tempfile.gettempdir(), tag)
        pids = []
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.endswith(".pid"):
                    with open(os.path.join(dirpath, f)) as fh:
                        pid = int(fh.read())
                    if root in _cmdline(pid):          # not a reused PID
                        pids.append(pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in filter(_alive, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with _commands():
            for ns in list_netns():
                if ns.startswith(f"{tag}-"):
                    delete_netns(ns)
        shutil.rmtree(root, ignore_errors=True)


def _write_pid(path: str, pid: int) -> None:
    with open(path, "w") as f:
        f.write(f"{pid}\n")


def _terminate(p: subprocess.Popen, timeout: float) -> int:
    """SIGTERM (none if timeout is 0), SIGKILL after `timeout` s; reaps the process; its exit status."""
    if p.poll() is None and timeout > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return p.wait(timeout=timeout)
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    return p.wait(timeout=10)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
