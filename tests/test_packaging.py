"""The package installs: `pip install .` into a fresh virtual environment (nothing but what pip brings
from PyPI and the apt packages tools/bootstrap.sh installs) gives working console scripts, ships the
example intent, and installs no top-level package but ours."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def _source_tree(dst: pathlib.Path) -> None:
    """The files a fresh clone has (git's list when this is a checkout), without build products."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        files = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    for f in filter(None, files):
        src = REPO / f
        if not src.is_file() or f.startswith(("build/", ".git/")) or f.endswith((".so", ".o")):
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)


@pytest.mark.nosan
@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    src, venv = tmp_path / "src", tmp_path / "venv"
    _source_tree(src)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
                       capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    bin_ = venv / "bin"

    def run(*cmd):
        p = subprocess.run([str(bin_ / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120, env=env,
                           cwd=tmp_path)
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        return p.stdout

    assert run("vrouter", "--version").startswith("vrouter ")
    assert run("vrouter-ctl", "--version").startswith("vrouter-ctl ")
    assert "--intent" in run("vrouter-agent", "--help")
    assert "--encap" in run("vrouter-demo", "--help")
    # the installed package, not the source tree, answers; and it has its data
    code = ("import importlib.util, pathlib, vrouter, control.agent, vrouter._ext;"
            "print(pathlib.Path(vrouter.__file__).parent);"
            "print((pathlib.Path(vrouter.__file__).parent / 'bpf' / 'xdp_tunnel.o').is_file());"
            "print((pathlib.Path(control.agent.__file__).parent / 'examples' / 'demo.yaml').is_file());"
            "print(importlib.util.find_spec('tools') is None)")
    out = subprocess.run([str(bin_ / "python"), "-c", code], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(venv)) and out[1:] == ["True", "True", "True"], out
    # the shipped example intent passes the agent's own check, as the README shows it
    example = venv.glob("lib/python*/site-packages/control/agent/examples/demo.yaml")
    assert "ok" in run("vrouter-agent", "--intent", str(next(example)), "--check").lower()
