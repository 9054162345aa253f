"""The shipped example intent (control/agent/examples/demo.yaml): it passes the agent's --check as it is,
its Nodes are the demo's node-1 and node-2, and the demo puts its own nodes in their place without
changing anything else (document numbers included); `vrouter demo` refuses an intent naming a node
it does not run (exit 2, saying which)."""
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from control.agent import intent as I
from control.lab import demo as D

REPO = pathlib.Path(__file__).resolve().parent.parent
with open(D.EXAMPLE) as _f:
    EXAMPLE = _f.read()
LAB_NODES = D.node_documents((n, ip, f"02:fa:00:00:00:0{i}", f"ipc:///lab/{n}/control.sock")
                             for i, (n, ip) in enumerate(D.NODES, 1))


def test_the_shipped_example_passes_check():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "control.agent", "--intent", str(REPO / "control/agent/examples/demo.yaml"),
                        "--check"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    nodes = [line.split(":")[0] for line in r.stdout.splitlines() if not line.startswith(("warning:", "ok:"))]
    assert nodes == ["node-1", "node-2"], r.stdout


def test_the_examples_nodes_are_the_demos():
    intent = I.load([("demo.yaml", EXAMPLE)])
    assert {n: str(v.fabric_address) for n, v in intent.nodes.items()} == dict(D.NODES)
    assert {p.node for p in intent.pods.values()} == set(dict(D.NODES))


def test_the_demo_puts_its_nodes_in_place_of_the_intents():
    mine = I.load([("demo.yaml", D.without_nodes("demo.yaml", EXAMPLE)), (D.NODES_FILE, LAB_NODES)])
    theirs = I.load([("demo.yaml", EXAMPLE)])
    assert {n: v.control for n, v in mine.nodes.items()} == {n: f"ipc:///lab/{n}/control.sock" for n, _ in D.NODES}
    assert mine.pods.keys() == theirs.pods.keys() and mine.virtual_networks.keys() == theirs.virtual_networks.keys()
    assert mine.network_policies.keys() == theirs.network_policies.keys()
    # the agent's errors still point at the document as written
    bad = EXAMPLE.replace("cidr: 10.20.0.0/24", "cidr: 10.20.0.0/33")
    with pytest.raises(I.IntentError) as as_written:
        I.load([("demo.yaml", bad)])
    with pytest.raises(I.IntentError) as in_the_demo:
        I.load([("demo.yaml", D.without_nodes("demo.yaml", bad)), (D.NODES_FILE, LAB_NODES)])
    assert str(in_the_demo.value) == str(as_written.value) and "(Subnet demo/green-v4)" in str(as_written.value)


def test_texts_without_nodes_pass_as_they_are_and_foreign_nodes_are_refused():
    no_nodes = "# a comment kept\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"
    assert D.without_nodes("a.yaml", no_nodes) is no_nodes
    assert D.without_nodes("a.yaml", "key: [unclosed\n") == "key: [unclosed\n"      # the agent reports it
    node_3 = EXAMPLE + "---\napiVersion: vrouter.io/v1\nkind: Node\nmetadata: {name: node-3}\n" \
                       "spec: {fabricAddress: 192.0.2.3, control: \"tcp://192.0.2.3:7000\"}\n"
    n = len(list(yaml.safe_load_all(EXAMPLE)))
    with pytest.raises(D.DemoError, match=rf"^x.yaml doc {n + 1}: Node node-3: the demo runs node-1 and node-2 only$"):
        D.without_nodes("x.yaml", node_3)


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo checks for root before it reads the intent")
def test_vrouter_demo_refuses_a_node_it_does_not_run(tmp_path):
    f = tmp_path / "intent.yaml"
    f.write_text("apiVersion: vrouter.io/v1\nkind: Node\nmetadata: {name: node-9}\n"
                 "spec: {fabricAddress: 192.0.2.9, control: \"tcp://192.0.2.9:7000\"}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "control.lab", "--intent", str(f)], capture_output=True, text=True,
                       timeout=60, env=env, cwd=REPO)
    assert r.returncode == 2 and r.stderr.strip() == \
        f"vrouter demo: {f} doc 1: Node node-9: the demo runs node-1 and node-2 only", r.stderr
