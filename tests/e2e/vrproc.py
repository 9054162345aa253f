"""A `vrouter run` process in a namespace, for the end-to-end tests and perf/bench_e2e.py."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from control.lab.netns import Topology


class VrouterProc:
    """A `vrouter run` process in a namespace; its stderr (the log) goes to a file."""

    def __init__(self, topo: Topology, ns: str, conf: dict, name: str = "vr"):
        self.dir = tempfile.mkdtemp(prefix=f"vrouter-{name}-")
        conf.setdefault("node", {})
        conf["node"].setdefault("name", name)
        conf["node"]["run_dir"] = self.dir
        conf["node"].setdefault("stats_interval", 0.2)
        self.conf_path = os.path.join(self.dir, "node.yaml")
        with open(self.conf_path, "w") as f:
            yaml.safe_dump(conf, f)
        self.log_path = os.path.join(self.dir, "vrouter.log")
        self.log = open(self.log_path, "w")
        self.proc = topo.popen(ns, sys.executable, "-m", "vrouter", "run", "--config", self.conf_path,
                               stdout=self.log, stderr=subprocess.STDOUT)
        self.ns = ns

    def wait_started(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vrouter exited with {self.proc.returncode}:\n{self.text()}")
            if " started " in self.text() or '"msg": "started"' in self.text():
                return self
            time.sleep(0.05)
        raise AssertionError(f"vrouter did not start in {timeout} s:\n{self.text()}")

    def text(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stats(self, fresh=True) -> dict:
        path = os.path.join(self.dir, "stats.json")
        if fresh:
            before = os.path.getmtime(path) if os.path.exists(path) else 0
            deadline = time.time() + 5
            while time.time() < deadline and (not os.path.exists(path) or os.path.getmtime(path) == before):
                time.sleep(0.05)
        with open(path) as f:
            return json.load(f)

    def stop(self, timeout=20.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
        return rc
