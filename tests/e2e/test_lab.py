"""The demo's lab (control/lab/lab.py), for real: two `vrouter run` nodes on a bridged fabric reach
each other; a responder in a pod namespace answers probes (ok / refused / timeout / unreachable, all at
once, within the time bound); close() leaves no namespace, process or directory; Lab(keep=True) leaves
everything until Lab.cleanup(tag)."""
import os
import sys
import time

import pytest

from control.lab.lab import Lab, LabError
from control.lab.netns import sh

UDP_PY = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
print(s.recv(100).decode().strip())
"""


def lab_namespaces(tag):
    return [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(f"{tag}-")]


def gone(pid):
    return not os.path.exists(f"/proc/{pid}")


def test_two_nodes_pods_probes_and_close():
    with Lab() as lab:
        n1, n2 = lab.add_node("n1", "192.0.2.1"), lab.add_node("n2", "192.0.2.2")
        assert (n1.netns, n1.fabric_mac, n2.fabric_mac) == (f"{lab.tag}-n1", "02:fa:00:00:00:01",
                                                            "02:fa:00:00:00:02")
        with pytest.raises(LabError, match="must be new"):
            lab.add_node("n1", "192.0.2.3")
        lab.start_node(n1)
        lab.start_node(n2)
        assert set(lab.node_stats(n1)["vifs"]) == {"0"}                 # empty control plane: the fabric only
        assert n1.control == f"ipc://{n1.run_dir}/control.sock" and os.path.exists(n1.run_dir + "/control.sock")
        assert lab.ping(n1.netns, n2.fabric_ip, 3), n1.log() + n2.log()  # plain IP over fab0 and the bridge
        assert lab.ping(n2.netns, n1.fabric_ip)

        # two pods joined by a plain veth (no vrouter): b serves, a probes
        a, b = lab.add_pod("default", "a"), lab.add_pod("default", "b")
        assert b == lab.netns_format.format(namespace="default", name="b") == f"{lab.tag}-default-b"
        lab.topo.veth(a, "eth0", b, "eth0")
        for ns, last in ((a, 1), (b, 2)):
            lab.topo.addr(ns, "eth0", f"10.9.0.{last}/24")
            lab.topo.addr(ns, "eth0", f"fd00:9::{last}/64")
        lab.topo.neigh(a, "eth0", "10.9.0.99", "02:00:00:00:00:99")     # nobody has this MAC: black hole
        lab.topo.route(a, "198.51.100.0/24", kind="unreachable")
        responder = lab.start_responder(b, "pod-b")
        t = time.monotonic()
        got = lab.probe(a, [("10.9.0.2", 80), ("fd00:9::2", 80), ("10.9.0.2", 81), ("10.9.0.99", 80),
                            ("198.51.100.1", 80)], timeout=1.0)
        assert got == ["ok:pod-b", "ok:pod-b", "refused", "timeout", "unreachable"]
        assert time.monotonic() - t < 15.0           # bounded (the probes' own timeout is 1 s; a loaded machine
        #                                              takes seconds to start the prober process)
        assert lab.probe_many([(a, [("10.9.0.2", 80)]), (b, [("::1", 80), ("10.9.0.1", 80)])], 1.0) == \
            [["ok:pod-b"], ["ok:pod-b", "refused"]]
        udp = lab.topo.run(a, sys.executable, "-c", UDP_PY, "10.9.0.2", 80, timeout=10)
        assert udp.stdout.strip() == "pod-b"

        old = n2.proc.pid
        lab.restart_node(n2)
        assert n2.proc.pid != old and gone(old)
        assert "started" in n2.log() and lab.ping(n1.netns, n2.fabric_ip, 3)
        lab.stop_node(n2)
        with pytest.raises(LabError, match="fabric.io"):                 # a refused config: the log says why
            lab.start_node(n2, extra={"fabric": {"io": "x"}})
        pids = [n1.proc.pid, n2.proc.pid, responder.pid]
    assert lab_namespaces(lab.tag) == []
    assert all(gone(p) for p in pids)
    assert not os.path.exists(lab.dir)


def test_keep_leaves_everything_until_cleanup():
    fds = len(os.listdir("/proc/self/fd"))
    lab = Lab(keep=True)
    try:
        node = lab.add_node("n1", "192.0.2.1")
        lab.start_node(node)
        pod = lab.add_pod("default", "web")
        responder = lab.start_responder(pod, "web")
        lab.close()
        assert len(os.listdir("/proc/self/fd")) == fds      # no netlink socket holds its namespaces alive
        desc = lab.describe()
        assert desc["nodes"]["n1"] == {"netns": node.netns, "fabric_ip": "192.0.2.1",
                                       "fabric_mac": "02:fa:00:00:00:01", "run_dir": node.run_dir,
                                       "control": node.control, "pid": node.proc.pid, "node_agent_pid": None}
        assert desc["pods"] == {"default/web": pod}
        assert sorted(lab_namespaces(lab.tag)) == sorted([desc["fabric_netns"], node.netns, pod])
        assert node.proc.poll() is None and responder.poll() is None
        assert open(os.path.join(node.run_dir, "vrouter.pid")).read().strip() == str(node.proc.pid)
    finally:
        Lab.cleanup(lab.tag)
    assert lab_namespaces(lab.tag) == []
    assert node.proc.wait(timeout=5) == 0                            # SIGTERM: a clean stop
    responder.wait(timeout=5)
    assert not os.path.exists(lab.dir)
    with pytest.raises(LabError, match="not a lab tag"):
        Lab.cleanup("")


def test_responder_port_in_use_is_an_error():
    with Lab() as lab:
        pod = lab.add_pod("default", "p")
        lab.start_responder(pod, "one", 8080)
        with pytest.raises(LabError, match="did not start") as e:
            lab.start_responder(pod, "two", 8080)
        assert "Address already in use" in str(e.value)
