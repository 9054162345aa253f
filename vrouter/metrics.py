"""Prometheus metrics and health endpoints for the node process.

One small HTTP server (``node.metrics``, default 127.0.0.1:9100; "off": none)
serves, on the same port:

    /metrics   the node's counters in the Prometheus text format, read at scrape
               time by NodeCollector (no background thread, nothing cached)
    /healthz   200 "ok" while every worker thread runs, else 503 naming the stopped one
    /readyz    200 "ready" once Node.start() completed (fabric, vifs, static
               configuration, workers, control), 503 before that and during stop

Node.start() starts it after the workers; Node.stop() stops it last.
"""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vrouter.config import FABRIC_VIF, metrics_address


def _c(name: str, doc: str, labels=()) -> CounterMetricFamily:
    # prometheus_client appends _total to a counter family's samples
    return CounterMetricFamily(name, doc, labels=list(labels))


def _g(name: str, doc: str, labels=()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class NodeCollector(Collector):
    """Every family is built from the node's live counters at each collect()."""

    def __init__(self, node):
        self.node = node

    def _vif_ids(self) -> list[int]:
        n = self.node
        ids = {v.id for v in n.conf.vifs}
        if n.conf.fabric:
            ids.add(FABRIC_VIF)
        ids.update(int(v) for v in n.dp.nh.vifs())      # vifs the control channel added
        return sorted(ids)

    def collect(self):
        n = self.node
        dp = n.dp
        if dp is None:
            return
        s = dp.stats()

        # -- per vif
        vif_fams = {
            "rx_packets": _c("vrouter_vif_rx_packets", "Frames received on the vif.", ["vif"]),
            "rx_bytes": _c("vrouter_vif_rx_bytes", "Bytes received on the vif.", ["vif"]),
            "tx_packets": _c("vrouter_vif_tx_packets", "Frames sent on the vif.", ["vif"]),
            "tx_bytes": _c("vrouter_vif_tx_bytes", "Bytes sent on the vif.", ["vif"]),
            "drops": _c("vrouter_vif_drops", "Frames received on the vif and dropped.", ["vif"]),
        }
        for vid in self._vif_ids():
            vs = dp.vif_stats(vid)
            for k, fam in vif_fams.items():
                fam.add_metric([str(vid)], vs.get(k, 0))
        yield from vif_fams.values()

        # -- datapath totals
        drops = _c("vrouter_drops", "Frames dropped by the pipeline, per reason.", ["reason"])
        for reason, v in s["drops"].items():
            if reason != "none":
                drops.add_metric([reason], v)
        yield drops
        for key, name, doc in (
                ("packets", "vrouter_packets", "Frames the pipeline processed."),
                ("forwarded", "vrouter_forwarded", "Frames forwarded."),
                ("flow_hits", "vrouter_flow_hits", "Frames that hit an installed flow."),
                ("flow_misses", "vrouter_flow_misses", "Frames that missed the flow table.")):
            f = _c(name, doc)
            f.add_metric([], s.get(key, 0))
            yield f

        # -- flow table
        fs = dp.flows.stats()
        f = _g("vrouter_flow_entries", "Flow entries in use.")
        f.add_metric([], fs["entries"])
        yield f
        f = _g("vrouter_flow_capacity", "Flow entries the table holds (fixed at start).")
        f.add_metric([], fs["capacity"])
        yield f
        f = _c("vrouter_flow_inserts", "Flows installed.")
        f.add_metric([], fs["inserts"])
        yield f
        f = _c("vrouter_flow_evictions", "Flows taken out of the table: aged out plus removed.")
        f.add_metric([], fs["aged"] + fs["removed"])
        yield f

        # -- routes per VRF and family
        routes = _g("vrouter_routes", "Routes in the VRF's table, per address family.", ["vrf", "family"])
        vrfs = set(int(v) for v in dp.lpm4.vrfs()) | set(int(v) for v in dp.lpm6.vrfs())
        vrfs.update(v.vrf for v in n.conf.vifs)
        for vrf in sorted(vrfs):
            routes.add_metric([str(vrf), "4"], dp.lpm4.count(vrf))
            routes.add_metric([str(vrf), "6"], dp.lpm6.count(vrf))
        yield routes

        # -- workers
        rx = _c("vrouter_worker_rx_packets", "Frames the worker received.", ["worker"])
        tx = _c("vrouter_worker_tx_packets", "Frames the worker sent.", ["worker"])
        busy = _c("vrouter_worker_busy_seconds", "Time the worker spent processing frames.", ["worker"])
        for i, w in enumerate(list(n.workers)):
            ws = w.stats()
            rx.add_metric([str(i)], ws["rx_packets"])
            tx.add_metric([str(i)], ws["tx_packets"])
            busy.add_metric([str(i)], ws["busy_ns"] / 1e9)
        yield rx
        yield tx
        yield busy

        # -- control channel
        ctl = getattr(n, "control", None)
        if ctl is not None:
            from control import protocol as P
            counters = dict(ctl.counters)
            f = _g("vrouter_control_sessions", "Agent sessions the control server knows.")
            f.add_metric([], len(ctl.sessions))
            yield f
            f = _c("vrouter_control_requests", "Control requests answered, per result.", ["result"])
            f.add_metric(["ok"], counters.get("ok", 0))
            f.add_metric(["error"], counters.get("errors", 0) + counters.get("internal", 0))
            f.add_metric(["busy"], counters.get("busy", 0))
            yield f
            f = _c("vrouter_control_errors", "Control requests refused, per error code.", ["code"])
            for code in sorted(P.ERROR_CODES):
                v = counters.get(f"error_{code}", 0)
                if code == P.INTERNAL:
                    v += counters.get("internal", 0)
                f.add_metric([code], v)
            yield f


class _Handler(BaseHTTPRequestHandler):
    server_version = "vrouter-metrics"
    node = None                    # set per server (a subclass per MetricsServer)
    registry = None

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body, code, ctype = generate_latest(self.registry), 200, CONTENT_TYPE_LATEST
            except Exception as e:  # noqa: BLE001 - answer the scrape, never kill the server
                body, code, ctype = f"collect failed: {type(e).__name__}: {e}\n".encode(), 500, "text/plain"
        elif path == "/healthz":
            stopped = [str(getattr(w, "id", i)) for i, w in enumerate(list(self.node.workers)) if not w.running]
            if not self.node.workers:
                body, code = b"no workers\n", 503
            elif stopped:
                body, code = f"worker {', '.join(stopped)} stopped\n".encode(), 503
            else:
                body, code = b"ok\n", 200
            ctype = "text/plain; charset=utf-8"
        elif path == "/readyz":
            body, code = (b"ready\n", 200) if self.node.ready else (b"not ready\n", 503)
            ctype = "text/plain; charset=utf-8"
        else:
            body, code, ctype = b"not found: try /metrics, /healthz or /readyz\n", 404, "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):   # no access log on stderr (the node's log)
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MetricsServer:
    """The HTTP endpoint of one node; start() binds (OSError when it cannot), stop() closes."""

    def __init__(self, node, address: str):
        self.host, self.port = metrics_address(address)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        self.handler = type("Handler", (_Handler,), {"node": node, "registry": self.registry})
        self.httpd: _Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        cls = type("Server", (_Server,), {"address_family": socket.AF_INET6 if ":" in self.host
                                          else socket.AF_INET})
        self.httpd = cls((self.host, self.port), self.handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        self.httpd = self.thread = None
