#!/usr/bin/env bash
# Installs everything vrouter needs on a fresh Debian 12 machine (as root) and
# builds the extension in place. Safe to run again; skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v gcc >/dev/null || need_apt+=(build-essential)
command -v "$PY" >/dev/null || need_apt+=(python3)
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null \
    || need_apt+=(python3-dev)
"$PY" -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# tshark: the pipeline tests dissect encapsulated frames with it (Wireshark's
# dissectors are the reference for VXLAN / MPLSoUDP); --no-install-recommends
# keeps it to the command-line tools.
command -v tshark >/dev/null || need_apt+=(tshark)
# the end-to-end tests: ping and ethtool in namespaces, iperf3 for TCP where installed
command -v ping >/dev/null || need_apt+=(iputils-ping)
command -v ethtool >/dev/null || need_apt+=(ethtool)
command -v ip >/dev/null || need_apt+=(iproute2)
# AF_XDP back-end (ext/io_xsk.c): libxdp / libbpf to link against; clang and
# llvm compile its XDP program (ext/xdp_tunnel.bpf.c) for the BPF target.
[ -e /usr/include/xdp/xsk.h ] || need_apt+=(libxdp-dev)
[ -e /usr/include/bpf/libbpf.h ] || need_apt+=(libbpf-dev)
command -v clang >/dev/null || need_apt+=(clang)
command -v llc >/dev/null || need_apt+=(llvm)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --break-system-packages: Debian's own python3 refuses pip installs without
# it (PEP 668); we are root on a machine dedicated to this node.
PIP=("$PY" -m pip install -q --disable-pip-version-check --break-system-packages)
"${PIP[@]}" -r requirements.txt
"${PIP[@]}" --no-build-isolation -e . >/dev/null
# The tests' and benchmarks' C helpers (flow stress, LPM reader thread, pipeline
# benchmark loop): a module of their own, vrouter._testext, built in place and
# never installed.
"$PY" setup.py -q build_testext --inplace >/dev/null
echo "bootstrap: vrouter built and installed (editable) with $("$PY" --version); test helpers built in place"
