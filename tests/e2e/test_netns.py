"""control/lab/netns.py's Topology, checked with the `ip` command as an independent witness: veth pairs
(queues, MTU, TX checksum off), bridges, addresses (IPv6 without DAD), routes, permanent neighbours, MACs
and link counters set over netlink; errors that say where and what; remove() and close() leave no
namespace, no process and no file descriptor behind, and a forked child's close() touches nothing."""
import json
import os
import time

import pytest

from control.lab.netns import Topology, TopologyError, list_netns, sh


def ip_json(t, ns, *args):
    return json.loads(t.run(ns, "ip", "-j", *args).stdout)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_links_addresses_routes_neighbours():
    fds = open_fds()
    with Topology("nst") as t:
        a, b, f = t.netns("a"), t.netns("b"), t.netns("f")
        assert set(list_netns()) >= {a, b, f} and a == f"{t.tag}-a"
        t.veth(a, "va", b, "vb", queues=2, mtu=1400)
        t.veth(f, "pa", a, "fa")
        t.bridge(f, "br0")
        t.master(f, "pa", "br0")
        for ns, dev in ((a, "va"), (b, "vb")):
            link = ip_json(t, ns, "-d", "link", "show", dev)[0]
            assert (link["mtu"], link["num_tx_queues"], link["num_rx_queues"]) == (1400, 2, 2), link
            assert "UP" in link["flags"] and link["linkinfo"]["info_kind"] == "veth"
            feats = t.run(ns, "ethtool", "-k", dev).stdout            # tools/bootstrap.sh installs it
            assert "tx-checksumming: off" in feats, feats
        assert ip_json(t, f, "link", "show", "pa")[0]["master"] == "br0"
        assert "UP" in ip_json(t, f, "link", "show", "br0")[0]["flags"]
        assert "UP" in ip_json(t, a, "link", "show", "lo")[0]["flags"]

        assert t.mac(a, "va", "02:00:00:00:00:0a") == "02:00:00:00:00:0a"
        assert t.mac(b, "vb") == ip_json(t, b, "link", "show", "vb")[0]["address"]
        for ns, last in ((a, 1), (b, 2)):
            dev = "va" if ns == a else "vb"
            t.addr(ns, dev, f"10.9.0.{last}/24")
            t.addr(ns, dev, f"fd00:9::{last}/64")
        addrs = {x["local"]: x for x in ip_json(t, a, "addr", "show", "va")[0]["addr_info"]}
        assert addrs["10.9.0.1"]["prefixlen"] == 24 and "broadcast" not in addrs["10.9.0.1"]   # as `ip addr add`
        assert addrs["fd00:9::1"]["prefixlen"] == 64 and addrs["fd00:9::1"].get("nodad")
        assert not addrs["fd00:9::1"].get("tentative")

        t.neigh(a, "va", "10.9.0.99", "02:00:00:00:00:99")
        t.neigh(a, "va", "10.9.0.99", "02:00:00:00:00:98")                  # replaced, not refused
        n = [x for x in ip_json(t, a, "neigh", "show", "dev", "va") if x["dst"] == "10.9.0.99"]
        assert n == [{"dst": "10.9.0.99", "lladdr": "02:00:00:00:00:98", "state": ["PERMANENT"]}], n
        t.route(a, "198.51.100.0/24", kind="unreachable")
        t.route(a, "203.0.113.0/24", via="10.9.0.2", dev="va")
        t.route(a, "192.0.2.0/24", via="10.99.0.1", dev="va", onlink=True)    # a gateway off the subnet
        t.route(a, "2001:db8::/32", via="fd00:9::2")
        routes = {r["dst"]: r for r in ip_json(t, a, "route", "show")}
        assert routes["198.51.100.0/24"]["type"] == "unreachable"
        assert (routes["203.0.113.0/24"]["gateway"], routes["203.0.113.0/24"]["dev"]) == ("10.9.0.2", "va")
        assert routes["192.0.2.0/24"]["gateway"] == "10.99.0.1" and "onlink" in routes["192.0.2.0/24"]["flags"]
        assert {r["dst"]: r for r in ip_json(t, a, "-6", "route", "show")}["2001:db8::/32"]["gateway"] == "fd00:9::2"

        before = t.counters(a, "va")
        assert t.run(a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.9.0.2", check=False).returncode == 0
        after = t.counters(a, "va")
        assert after["tx_packets"] - before["tx_packets"] >= 3 and after["rx_packets"] - before["rx_packets"] >= 3
        assert after["tx_bytes"] > before["tx_bytes"]

        # a refused request names the namespace, the request and the kernel's reason
        with pytest.raises(TopologyError, match=rf"^{a}: addr add 10.9.0.1/24 dev va: File exists$"):
            t.addr(a, "va", "10.9.0.1/24")
        with pytest.raises(TopologyError, match=rf"^{a}: no device nope$"):
            t.up(a, "nope")
        with pytest.raises(TopologyError, match="not a namespace of topology"):   # never created by accident
            t.up(f"{t.tag}-other", "lo")
        assert f"{t.tag}-other" not in list_netns()
        with pytest.raises(TopologyError, match="netns add: File exists"):
            t.netns("a")

        # remove(): the name goes at once; the namespace, and with it the peer of its veth in another
        # namespace, as soon as the kernel's clean-up runs (never, if a socket of ours still held it)
        t.remove(b)
        assert b not in list_netns() and b not in t.namespaces
        deadline = time.monotonic() + 10
        while t.run(a, "ip", "link", "show", "va", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the removed namespace is still alive"
            time.sleep(0.05)
        p = t.popen(a, "sleep", "60")
    assert not [ns for ns in list_netns() if ns.startswith(t.tag)]
    assert p.poll() is not None                                         # killed by PID
    assert open_fds() == fds                                            # every netlink socket closed


def test_close_in_a_forked_child_touches_nothing():
    with Topology("nst") as t:
        a = t.netns("a")
        t.veth(a, "x0", t.netns("b"), "x1")              # a socket open in each namespace
        pid = os.fork()
        if pid == 0:
            t.close()                                    # what an interrupted pyroute2 helper would do
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert {a, f"{t.tag}-b"} <= set(list_netns())
        t.up(a, "x0")                                    # the parent's socket still works
    assert not [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(t.tag)]
