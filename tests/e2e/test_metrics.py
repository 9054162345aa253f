"""node.metrics: a real `vrouter run` with three pods (two in VRF 1, one in VRF 2)
serves /metrics, /healthz and /readyz inside its namespace; the counters follow
real pings, every drop reason is exported, and SIGTERM takes the endpoint away."""
import json
import socket
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_node_local import pods_conf
from vrouter.config import ConfigError, parse
from vrouter.pipeline import DROP_REASONS

N = 5            # pings pod 1 -> pod 2
M = 3            # pings pod 1 -> an address with no route

FETCH = """
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except OSError as e:
    print(json.dumps({"status": None, "body": str(e)}))
"""


def free_port() -> int:
    # a free port on the host's loopback: the node's namespace is empty, so any port is free there too;
    # a random one just keeps the test from relying on the 9100 default
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf(p1, p2, p3, port):
    """test_node_local's three pods, a discard route, and the metrics endpoint on `port`."""
    c = pods_conf()
    c["node"].update(metrics=f"127.0.0.1:{port}", flow_table_size=4096)
    for v, ns in zip(c["vifs"], (p1, p2, p3)):
        v["netns"] = ns
    c["nexthops"] = [{"id": 100, "type": "discard"}]
    c["routes"] = [{"vrf": 1, "prefix": "10.5.0.0/16", "nh": 100}]
    return c


def fetch(topo, ns, port, path):
    r = topo.run(ns, sys.executable, "-c", FETCH, f"http://127.0.0.1:{port}{path}")
    return json.loads(r.stdout)


def scrape(topo, ns, port) -> dict:
    """{(name, frozenset(labels)): value} over every sample of /metrics, and the families' types/help."""
    r = fetch(topo, ns, port, "/metrics")
    assert r["status"] == 200, r
    samples, fams = {}, {}
    for fam in text_string_to_metric_families(r["body"]):
        fams[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, fams, r["body"]


def val(samples, name, **labels):
    return samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]


def ping(topo, ns, addr, count):
    return topo.run(ns, "ping", "-c", count, "-i", "0.2", "-W", "1", addr, check=False, timeout=30)


def test_metrics_health_and_ready_follow_the_node(topo, vrouter):
    node = topo.netns("node")
    p1, p2, p3 = topo.netns("p1"), topo.netns("p2"), topo.netns("p3")
    port = free_port()
    vr = vrouter(node, conf(p1, p2, p3, port))
    assert "metrics listening" in vr.text() and f"127.0.0.1:{port}" in vr.text(), vr.text()

    assert fetch(topo, node, port, "/healthz") == {"status": 200, "body": "ok\n"}
    assert fetch(topo, node, port, "/readyz")["status"] == 200
    assert fetch(topo, node, port, "/nope")["status"] == 404

    before, _, _ = scrape(topo, node, port)
    r = ping(topo, p1, "10.1.0.3", N)
    assert r.returncode == 0, r.stdout + r.stderr + vr.text()
    assert ping(topo, p1, "10.9.9.9", M).returncode != 0          # VRF 1 has no route: no_route
    after, fams, body = scrape(topo, node, port)

    # every family documented
    for name, fam in fams.items():
        assert fam.documentation, name
    # per vif: the pings went 1 -> 2 and back
    assert val(after, "vrouter_vif_rx_packets_total", vif=1) >= N + M
    assert val(after, "vrouter_vif_tx_packets_total", vif=2) >= N
    assert val(after, "vrouter_vif_rx_packets_total", vif=2) >= N
    assert val(after, "vrouter_vif_tx_packets_total", vif=1) >= N
    assert val(after, "vrouter_vif_rx_bytes_total", vif=1) >= (N + M) * 98     # ICMP echo frames: 98 B
    assert val(after, "vrouter_vif_tx_bytes_total", vif=2) >= N * 98
    assert val(after, "vrouter_vif_tx_packets_total", vif=3) == 0
    assert val(after, "vrouter_vif_drops_total", vif=1) - val(before, "vrouter_vif_drops_total", vif=1) >= M
    # every drop reason, zeros included; the provoked one exact
    reasons = [r for r in DROP_REASONS if r != "none"]
    for reason in reasons:
        assert ("vrouter_drops_total", frozenset({("reason", reason)})) in after, reason
    got = {k for k in after if k[0] == "vrouter_drops_total"}
    assert len(got) == len(reasons)
    assert val(after, "vrouter_drops_total", reason="no_route") - \
        val(before, "vrouter_drops_total", reason="no_route") == M
    assert val(after, "vrouter_drops_total", reason="policy_deny") == 0
    # datapath totals
    assert val(after, "vrouter_packets_total") >= 2 * N + M
    assert val(after, "vrouter_forwarded_total") >= 2 * N
    assert val(after, "vrouter_flow_hits_total") + val(after, "vrouter_flow_misses_total") > 0
    # flows
    assert val(after, "vrouter_flow_capacity") == 4096
    assert val(after, "vrouter_flow_entries") > 0             # the ICMP flow (30 s idle timeout)
    assert val(after, "vrouter_flow_inserts_total") > 0
    assert ("vrouter_flow_evictions_total", frozenset()) in after
    assert fams["vrouter_flow_entries"].type == "gauge" and fams["vrouter_flow_inserts"].type == "counter"
    # routes per VRF and family: VRF 1 = two pods' /32 + 10.5.0.0/16, two /128; VRF 2 = one /32
    assert val(after, "vrouter_routes", vrf=1, family=4) == 3
    assert val(after, "vrouter_routes", vrf=1, family=6) == 2
    assert val(after, "vrouter_routes", vrf=2, family=4) == 1
    assert val(after, "vrouter_routes", vrf=2, family=6) == 0
    assert fams["vrouter_routes"].type == "gauge"
    # workers
    workers = [dict(k[1])["worker"] for k in after if k[0] == "vrouter_worker_rx_packets_total"]
    assert workers and "0" in workers                     # workers: auto (one per core)
    assert sum(val(after, "vrouter_worker_rx_packets_total", worker=w) for w in workers) >= 2 * N
    assert sum(val(after, "vrouter_worker_busy_seconds_total", worker=w) for w in workers) > 0
    # the control channel (ipc:// by default)
    assert val(after, "vrouter_control_sessions") == 0
    assert val(after, "vrouter_control_requests_total", result="ok") == 0
    assert ("vrouter_control_errors_total", frozenset({("code", "invalid")})) in after
    assert "# HELP vrouter_vif_rx_packets_total" in body

    # real control requests: one session, two answered, one refused (not_found)
    from control import client as C
    with C.Client(f"ipc://{vr.dir}/control.sock") as c:
        c.hello("metrics-test")
        c.ping()
        with pytest.raises(C.NotFoundError):
            c.call("route_lookup", {"vrf": 1, "address": "10.77.0.1"})
    ctl, _, _ = scrape(topo, node, port)
    assert val(ctl, "vrouter_control_sessions") == 1
    assert val(ctl, "vrouter_control_requests_total", result="ok") == 2
    assert val(ctl, "vrouter_control_requests_total", result="error") == 1
    assert val(ctl, "vrouter_control_requests_total", result="busy") == 0
    assert val(ctl, "vrouter_control_errors_total", code="not_found") == 1
    assert val(ctl, "vrouter_control_errors_total", code="invalid") == 0

    rc = vr.stop()
    assert rc == 0, vr.text()
    r = fetch(topo, node, port, "/metrics")
    assert r["status"] is None and "refused" in r["body"].lower(), r


def test_metrics_off_and_a_taken_port(topo, vrouter):
    node = topo.netns("node")
    port = free_port()
    vr = vrouter(node, {"node": {"name": "n1", "metrics": "off", "workers": 1}})
    assert "metrics listening" not in vr.text()
    assert fetch(topo, node, 9100, "/healthz")["status"] is None
    vr.stop()
    # the port taken inside the node's namespace: refused at start, naming the field
    holder = topo.popen(node, sys.executable, "-c",
                        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); "
                        "s.listen(); print('bound', flush=True); time.sleep(60)",
                        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "bound"
    with pytest.raises(AssertionError, match="node.metrics: cannot listen on 127.0.0.1"):
        vrouter(node, {"node": {"name": "n2", "metrics": f"127.0.0.1:{port}", "workers": 1}}, name="vr2")


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "example.com:9100",
                                   ":9100", "::1:9100", "[127.0.0.1]:9100", "127.0.0.1:http", 9100, True, ""])
def test_config_refuses_a_bad_metrics_address_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"^node\.metrics: "):
        parse({"node": {"metrics": value}})


def test_config_metrics_default_and_forms():
    assert parse({}).metrics == "127.0.0.1:9100"
    assert parse({"node": {"metrics": "off"}}).metrics == ""
    assert parse({"node": {"metrics": False}}).metrics == ""          # YAML's bare off
    assert parse({"node": {"metrics": "0.0.0.0:9200"}}).metrics == "0.0.0.0:9200"
    assert parse({"node": {"metrics": "[::1]:9200"}}).metrics == "[::1]:9200"
    assert parse({"node": {"metrics": "localhost:9300"}}).metrics == "127.0.0.1:9300"


class _FakeWorker:
    def __init__(self, i, running):
        self.id, self.running = i, running


class _FakeNode:
    """What the HTTP handler reads of a Node: workers, ready, dp (None: an empty /metrics)."""
    def __init__(self):
        self.workers, self.ready, self.dp, self.conf, self.control = [], False, None, None, None


def _get(port, path):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_healthz_names_a_stopped_worker_and_readyz_follows_ready():
    from vrouter.metrics import MetricsServer
    node = _FakeNode()
    port = free_port()
    m = MetricsServer(node, f"127.0.0.1:{port}")
    m.start()
    try:
        assert _get(port, "/readyz") == (503, "not ready\n")             # before start() completed
        assert _get(port, "/healthz")[0] == 503                            # no workers yet
        node.workers = [_FakeWorker(0, True), _FakeWorker(1, True)]
        node.ready = True
        assert _get(port, "/healthz") == (200, "ok\n")
        assert _get(port, "/readyz") == (200, "ready\n")
        node.workers[1].running = False
        assert _get(port, "/healthz") == (503, "worker 1 stopped\n")
        node.ready = False                                                 # stop() began
        assert _get(port, "/readyz")[0] == 503
        assert _get(port, "/metrics")[0] == 200
    finally:
        m.stop()
    with pytest.raises(OSError):
        _get(port, "/healthz")
