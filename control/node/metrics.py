"""Prometheus metrics of the agents' pushers (``--metrics HOST:PORT`` of the node agent and of the cluster
agent), read from the live counters at each scrape:

    vrouter_agent_pushes_total{node,kind}          snapshots and diffs pushed
    vrouter_agent_push_failures_total{node}        pushes (or audits) that failed
    vrouter_agent_audits_total{node}               audits (digests compared)
    vrouter_agent_audit_repairs_total{node,kind}   objects an audit found differing and repaired, per kind
    vrouter_agent_audit_unrepaired_total{node}     audits after which a kind still differed
    vrouter_agent_in_sync{node}                    1 while the node's vrouter holds the desired state
    vrouter_node_agent_cluster_connected           (node agent) 1 while the cluster agent answers
    vrouter_node_agent_state_generation            (node agent) the generation of the state it holds
"""
from __future__ import annotations

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from control import digest as D


def address(text: str) -> tuple[str, int]:
    """"HOST:PORT" -> (host, port); ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics: must be HOST:PORT (e.g. 127.0.0.1:9101), got {text!r}")
    return host.strip("[]"), int(port)


class PushCollector(Collector):
    """``pushers()``: the NodePushers to report; ``extra()``: more families (the node agent's)."""

    def __init__(self, pushers, extra=None):
        self.pushers, self.extra = pushers, extra

    def collect(self):
        pushes = CounterMetricFamily("vrouter_agent_pushes", "Snapshots and diffs pushed to a node's vrouter.",
                                     labels=["node", "kind"])
        failures = CounterMetricFamily("vrouter_agent_push_failures", "Pushes or audits that failed.",
                                       labels=["node"])
        audits = CounterMetricFamily("vrouter_agent_audits", "Audits of a node's vrouter (digests compared).",
                                     labels=["node"])
        repairs = CounterMetricFamily("vrouter_agent_audit_repairs", "Objects an audit found differing from "
                                      "the desired state and repaired, per kind.", labels=["node", "kind"])
        unrepaired = CounterMetricFamily("vrouter_agent_audit_unrepaired", "Audits after which a kind still "
                                         "differed.", labels=["node"])
        in_sync = GaugeMetricFamily("vrouter_agent_in_sync", "1 while the node's vrouter holds the desired "
                                    "state.", labels=["node"])
        for p in self.pushers():
            for kind in ("snapshot", "diff"):
                pushes.add_metric([p.name, kind], p.counters.get(kind, 0))
            failures.add_metric([p.name], p.counters.get("failed", 0))
            audits.add_metric([p.name], p.counters.get("audit", 0))
            for kind in D.KINDS:
                repairs.add_metric([p.name, kind], p.repairs.get(kind, 0))
            unrepaired.add_metric([p.name], p.counters.get("audit_unrepaired", 0))
            in_sync.add_metric([p.name], 1 if p.pushed is not None and p.last_error is None else 0)
        yield from (pushes, failures, audits, repairs, unrepaired, in_sync)
        if self.extra is not None:
            yield from self.extra()


def serve(text: str, collector: Collector):
    """Serve ``collector`` on http://HOST:PORT/metrics; returns the HTTP server (``shutdown()`` it)."""
    host, port = address(text)
    reg = CollectorRegistry()
    reg.register(collector)
    server, _ = start_http_server(port, addr=host, registry=reg)
    return server


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g
