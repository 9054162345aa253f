"""The agent's command line: ``--check`` lists the documents it ignores, refuses what a round refuses (the
same loading) with rc 2 and words that say whether the intent is wrong (naming its field) or not intent at
all (none, a typo'd kind); the agent itself stops with rc 2 on the latter at startup, and keeps the last
good intent when the directory is emptied while it runs."""
import os
import pathlib
import subprocess
import sys

import pytest

from control.agent.agent import Agent, main

REPO = pathlib.Path(__file__).resolve().parent.parent
NODES = """\
apiVersion: vrouter.io/v1
kind: Node
metadata: {name: n1}
spec: {fabricAddress: 192.0.2.1, control: "ipc:///nonexistent/n1"}
"""
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo}
spec: {nodeName: n1}
"""
FOREIGN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec: {replicas: 2}
---
apiVersion: core.contrail.juniper.net/v1
kind: RoutingInstance
metadata: {name: ri, namespace: demo}
---
apiVersion: apps/v1
kind: Pods
metadata: {name: p}
"""


def _files(d: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def check(d, capsys) -> tuple[int, str, str]:
    rc = main(["--intent", str(d), "--check"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_lists_ignored_documents_and_passes(tmp_path, capsys):
    d = _files(tmp_path / "i", {"a.yaml": NODES + "---\n" + POD, "b.yaml": FOREIGN})
    rc, out, err = check(d, capsys)
    assert rc == 0, err
    assert out.splitlines()[:3] == [
        f"ignored: {d}/b.yaml doc 1: apps/v1 Deployment demo/web ignored (not a kind the agent reads)",
        f"ignored: {d}/b.yaml doc 2: core.contrail.juniper.net/v1 RoutingInstance demo/ri ignored "
        f"(not a kind the agent reads)",
        f"ignored: {d}/b.yaml doc 3: apps/v1 Pods p ignored (not a kind the agent reads; did you mean v1 Pod?)"]
    assert "n1: 1 VRFs, 1 vifs, 1 next hops, 1 routes, 0 policies" in out


@pytest.mark.parametrize("files,rc,text", [
    ({}, 2, "error: no intent: no *.yaml or *.yml file in {d}"),
    ({"a.yaml": "", "b.yml": "# nothing yet\n---\n"}, 2, "error: no intent: no YAML document in {d}/a.yaml, {d}/b.yml"),
    ({"a.yaml": FOREIGN}, 2, "error: no intent: none of the 3 documents is of a kind the agent reads"),
    ({"a.yaml": NODES + "---\napiVersion: core.contrail.juniper.net/v1\nkind: Subnett\n"
                        "metadata: {name: s, namespace: demo}\nspec: {cidr: 10.1.0.0/24}\n"}, 2,
     "error: {d}/a.yaml doc 2 (Subnett demo/s): kind: no kind Subnett in core.contrail.juniper.net/v1 "
     "(did you mean Subnet?)"),
    ({"a.yaml": NODES + "---\napiVersion: v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: demo}\n"}, 2,
     "(did you mean apiVersion networking.k8s.io/v1?)"),
    ({"a.yaml": NODES + "---\n" + POD + "---\nbad: [\n"}, 2, "bad YAML"),
    ({"a.yaml": NODES + "---\n" + POD.replace("n1", "n9")}, 2,
     "error: {d}/a.yaml doc 2 (Pod demo/web): spec.nodeName: no node n9"),
    ({"a.yaml": NODES + "---\napiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n"
                        "metadata: {name: r, namespace: demo}\nspec: {type: mesh}\n"}, 2,
     "spec.virtualNetworkSelector: missing (use {{}} for every VirtualNetwork of the namespace)"),
    ({"a.yaml": NODES + "---\n" + POD + "---\napiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n"
                        "metadata: {name: r, namespace: demo}\nspec:\n  type: mesh\n  virtualNetworkSelector:\n"
                        "    matchExpressions: [{key: vn, operator: In, values: [web, db]}]\n"}, 0, "n1: "),
], ids=["no-file", "no-document", "only-foreign", "typo-kind", "kind-in-wrong-group", "bad-yaml", "bad-field",
        "vnr-no-selector", "vnr-match-expressions"])
def test_check_refuses_exactly_what_a_round_refuses(tmp_path, capsys, files, rc, text):
    d = _files(tmp_path / "i", files)
    got, out, err = check(d, capsys)
    assert got == rc and text.format(d=d) in (err if rc else out), (got, out, err)
    a = Agent([d], None)
    try:
        assert a.compile() == (rc == 0)
        if rc:
            assert err == f"error: {a.intent_error}\n"        # word for word what the agent logs and keeps
    finally:
        a.close()


def _run(args, timeout=30):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "control.agent", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO))


@pytest.mark.parametrize("once", [False, True], ids=["run", "once"])
def test_the_agent_stops_with_rc_2_on_no_intent_or_a_typo_at_startup(tmp_path, once):
    d = _files(tmp_path / "i", {})
    r = _run(["--intent", str(d)] + (["--once"] if once else []))
    assert r.returncode == 2 and f"error: no intent: no *.yaml or *.yml file in {d}" in r.stderr, r
    _files(d, {"a.yaml": NODES + "---\napiVersion: vrouter.io/v1\nkind: Nodes\nmetadata: {name: n2}\n"})
    r = _run(["--intent", str(d)] + (["--once"] if once else []))
    assert r.returncode == 2 and "kind: no kind Nodes in vrouter.io/v1 (did you mean Node?)" in r.stderr, r


def test_once_with_wrong_intent_is_rc_1(tmp_path):
    d = _files(tmp_path / "i", {"a.yaml": NODES + "---\n" + POD.replace("n1", "n9")})
    r = _run(["--intent", str(d), "--once"])
    assert r.returncode == 1 and "spec.nodeName: no node n9" in r.stderr, r


def test_a_running_agent_keeps_the_last_good_intent_when_the_directory_empties(tmp_path):
    d = _files(tmp_path / "i", {"a.yaml": NODES + "---\n" + POD})
    a = Agent([d], None)
    try:
        assert a.compile()
        good = a.cluster
        (d / "a.yaml").unlink()
        assert not a.compile() and a.cluster is good
        assert a.intent_error == f"no intent: no *.yaml or *.yml file in {d}"
        (d / "a.yaml").write_text("# emptied by an editor\n")
        assert not a.compile() and a.cluster is good and a.intent_error.startswith("no intent: no YAML document")
        (d / "a.yaml").write_text(NODES + "---\n" + POD)
        assert a.compile() and a.intent_error is None
    finally:
        a.close()
