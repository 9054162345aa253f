"""Fixtures for the end-to-end tests: namespaces (control/lab/netns.py) and
vrouter processes started with `vrouter run` inside them, stopped by PID."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control.lab.netns import Topology  # noqa: E402
from vrproc import VrouterProc  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="end-to-end tests need root (network namespaces, TAP, AF_XDP)")
        for it in items:
            if "/e2e/" in str(it.fspath):
                it.add_marker(skip)


@pytest.fixture
def topo():
    with Topology() as t:
        yield t


@pytest.fixture
def vrouter(topo):
    procs = []

    def start(ns, conf, name="vr"):
        p = VrouterProc(topo, ns, conf, name)
        procs.append(p)
        return p.wait_started()

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.stop()
