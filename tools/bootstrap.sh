#!/usr/bin/env bash
# Installs everything vrouter needs on a fresh Debian 12 machine (as root) and
# builds the extension in place. Safe to run again; skips what is present.
# It says what it does, one line a step (a fresh machine takes a minute or two).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v gcc >/dev/null || need_apt+=(build-essential)
command -v "$PY" >/dev/null || need_apt+=(python3)
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null \
    || need_apt+=(python3-dev)
"$PY" -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# tests/test_packaging.py installs the package into a fresh venv, as a user would
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# tshark: the pipeline tests dissect encapsulated frames with it (Wireshark's
# dissectors are the reference for VXLAN / MPLSoUDP); --no-install-recommends
# keeps it to the command-line tools.
command -v tshark >/dev/null || need_apt+=(tshark)
# the end-to-end tests: ping and ethtool in namespaces, iperf3 for TCP where installed
command -v ping >/dev/null || need_apt+=(iputils-ping)
command -v ethtool >/dev/null || need_apt+=(ethtool)
command -v ip >/dev/null || need_apt+=(iproute2)
# sysctl (the AF_PACKET e2e tests set per-namespace knobs); git (the packaging test lists the tree)
command -v sysctl >/dev/null || need_apt+=(procps)
command -v git >/dev/null || need_apt+=(git)
# AF_XDP back-end (ext/io_xsk.c): libxdp / libbpf to link against; clang and
# llvm compile its XDP program (ext/xdp_tunnel.bpf.c) for the BPF target.
[ -e /usr/include/xdp/xsk.h ] || need_apt+=(libxdp-dev)
[ -e /usr/include/bpf/libbpf.h ] || need_apt+=(libbpf-dev)
command -v clang >/dev/null || need_apt+=(clang)
command -v llc >/dev/null || need_apt+=(llvm)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${need_apt[*]} (missing here)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --break-system-packages: Debian's own python3 refuses pip installs without
# it (PEP 668); we are root on a machine dedicated to this node.
PIP=("$PY" -m pip install -q --disable-pip-version-check --break-system-packages)
echo "bootstrap: pip install -r requirements.txt (Python packages: $(grep -cE '^[a-zA-Z]' requirements.txt))"
"${PIP[@]}" -r requirements.txt
echo "bootstrap: building the C extension and the XDP program (pip install -e .)"
"${PIP[@]}" --no-build-isolation -e . >/dev/null
# The tests' and benchmarks' C helpers (flow stress, LPM reader thread, pipeline
# benchmark loop): a module of their own, vrouter._testext, built in place and
# never installed.
echo "bootstrap: building the test helpers in place (vrouter._testext, never installed)"
"$PY" setup.py -q build_testext --inplace >/dev/null
echo "bootstrap: ready: vrouter $("$PY" -c 'from control.version import __version__; print(__version__)') with $("$PY" --version)"
