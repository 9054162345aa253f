"""The agent object without vrouters: what "converged" means, nodes that do not answer (typed failure,
backoff, the others not held up), a refused intent keeping the last good one, the state file."""
import json
import time

from control.agent.agent import BACKOFF_MAX, Agent

NODES = """
apiVersion: vrouter.io/v1
kind: Node
metadata: {{name: {name}}}
spec: {{fabricAddress: {ip}, control: "ipc://{sock}", fabricMac: "02:fa:00:00:00:0{n}"}}
"""
POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {nodeName: n1}
"""


def write_intent(tmp_path, pods=POD):
    text = "---".join(NODES.format(name=f"n{i}", ip=f"192.0.2.{i}", sock=tmp_path / f"none-{i}.sock", n=i)
                      for i in (1, 2))
    (tmp_path / "intent.yaml").write_text(text + pods)


def test_nobody_answers(tmp_path):
    write_intent(tmp_path)
    a = Agent([tmp_path], str(tmp_path / "state.json"), timeout=0.5)
    try:
        assert a.compile()
        assert set(a.nodes) == {"n1", "n2"} and not a.converged()     # compiled is not pushed
        t0 = time.monotonic()
        assert not a.round()
        took = time.monotonic() - t0
        assert took < 2.5, took            # the two nodes in parallel, each hello given up after ~1 s
        for ns in a.nodes.values():
            assert ns.last_error.startswith("Timeout") and ns.failures == 1 and ns.pushed is None
            assert 0 < ns.retry_at - time.monotonic() <= BACKOFF_MAX
        t0 = time.monotonic()
        assert not a.round()               # in backoff: not tried again at once
        assert time.monotonic() - t0 < 0.2 and all(ns.failures == 1 for ns in a.nodes.values())
        assert not a.converged()
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["addresses"]["default/default-podnetwork-v4"] == {"default/web#0": "10.244.0.2"}
    finally:
        a.close()


def test_refused_intent_keeps_the_last_good_one(tmp_path):
    write_intent(tmp_path)
    a = Agent([tmp_path], None)
    try:
        assert a.compile()
        good = a.cluster
        (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {nodeName: n9}\n")
        assert not a.compile()
        assert a.cluster is good and "bad.yaml doc 1 (Pod default/x): spec.nodeName: no node n9" in a.intent_error
        (tmp_path / "bad.yaml").unlink()
        assert a.compile() and a.intent_error is None
    finally:
        a.close()


def test_the_node_agent_subcommand_refuses_bad_arguments(capsys):
    import pytest

    from control.agent.agent import main
    for argv, why in ((["node", "--cluster", "ipc:///x"], "--node"),
                      (["node", "--node", "n1", "--cluster", "tcp://127.0.0.1:7001"], "needs CurveZMQ client keys"),
                      (["node", "--node", "n1", "--cluster", "http://x"], "must be ipc://PATH or tcp://HOST:PORT"),
                      (["node", "--node", "n1", "--cluster", "ipc:///x", "--audit-interval", "-1"], "--audit-interval"),
                      (["--intent", "x", "--listen", "tcp://127.0.0.1:7002"], "--listen-keys")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and why in capsys.readouterr().err, argv


def test_check_says_how_each_node_is_programmed(tmp_path, capsys):
    from control.agent.agent import main
    write_intent(tmp_path)
    text = (tmp_path / "intent.yaml").read_text()
    (tmp_path / "intent.yaml").write_text(text.replace(f', control: "ipc://{tmp_path / "none-2.sock"}"', ""))
    assert main(["--intent", str(tmp_path), "--check"]) == 0
    out = capsys.readouterr().out
    assert f"n1: 1 VRFs, 1 vifs, 1 next hops, 1 routes, 0 policies; pushed to ipc://{tmp_path}/none-1.sock" in out
    assert "n2: 0 VRFs, 0 vifs, 0 next hops, 0 routes, 0 policies; served to its node agent" in out, out
