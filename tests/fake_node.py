"""An in-process vrouter without devices, for tests that need the real control backend and server but
no root: ``FakeNode`` is what vrouter.control_backend.NodeBackend needs of a Node (real tables in a
Datapath; pod devices recorded, never made); ``fake_vrouter(dir)`` serves it on an ipc:// control
channel with the fabric vif applied under the STATIC generation, as node.yaml would."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

from control import protocol as P
from control.server import ControlServer
from vrouter.control_backend import NodeBackend
from vrouter.pipeline import Datapath
from vrouter.static import STATIC

FABRIC = {"id": 0, "kind": "fabric", "mac": "02:fa:00:00:00:01", "prefixes": ["192.0.2.1/32"]}


class FakeNode:
    def __init__(self, name: str = "fake"):
        self.conf = SimpleNamespace(name=name)
        self.dp = Datapath(workers=1, flow_capacity=1024)
        self.taps: dict[int, list] = {}
        self.tap_specs: dict[int, dict] = {}
        self.workers: list = []

    def add_tap(self, vid, tap, mtu, gw4=None, gw6=None):
        self.taps[vid] = []
        self.tap_specs[vid] = dict(tap, gw4=gw4 if tap.get("ip") else None, gw6=gw6 if tap.get("ip6") else None)

    def update_tap_routes(self, vid, tap, gw4=None, gw6=None):
        self.tap_specs[vid] = dict(self.tap_specs[vid], default_route=tap.get("default_route", True),
                                   routes=list(tap.get("routes") or ()))

    def remove_tap(self, vid):
        self.taps.pop(vid, None)
        self.tap_specs.pop(vid, None)


def backend(name: str = "fake", static: list[tuple[str, dict]] = ()) -> NodeBackend:
    """A backend over a FakeNode holding the fabric vif (and ``static`` ops) under STATIC."""
    b = NodeBackend(FakeNode(name))
    for op, body in [("vif_add", FABRIC), *static]:
        b.apply(op, P.validate_body(op, body), STATIC)
    return b


def apply(b: NodeBackend, ops, generation=None) -> None:
    """Ops as control.node.push.diff makes them (route ops with prefix lists), applied in process."""
    for op, body in ops:
        if op in ("route_add", "route_del"):
            for fam in (4, 6):
                idx = [i for i, p in enumerate(body["prefixes"]) if (":" in p) == (fam == 6)]
                if idx:
                    w = P.pack_routes(fam, [body["prefixes"][i] for i in idx],
                                      [body["nhs"][i] for i in idx] if op == "route_add" else None,
                                      vrf=body["vrf"])
                    b.apply(op, P.validate_body(op, w), generation)
        else:
            b.apply(op, P.validate_body(op, body), generation)


@contextlib.contextmanager
def fake_vrouter(directory, name: str = "fake", static=()):
    """(endpoint, backend): a ControlServer over a fresh backend on ipc://<directory>/<name>.sock."""
    b = backend(name, static)
    srv = ControlServer(f"ipc://{directory}/{name}.sock", b)
    srv.start()
    try:
        yield srv.endpoint, b
    finally:
        srv.stop()
