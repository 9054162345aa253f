"""Build and install vrouter.

All C in ext/ links into one extension module, ``vrouter._ext``: one Cython
file (ext/vrouter_ext.pyx) includes a thin wrapper (.pxi) per component and
each component's C file is compiled separately with the strict flags below.
Cython's own generated C is compiled with the same flags minus the warnings it
cannot avoid (it is not our code).

The AF_XDP back-end links against libxdp and libbpf, and its XDP program
(ext/xdp_tunnel.bpf.c) is compiled with clang for the BPF target into
vrouter/bpf/xdp_tunnel.o, installed as package data (build_ext and build_py
both make it; it is never committed).

Tests and benchmarks have C helpers of their own (ext/testext/: the flow
stress test, the LPM reader thread, the pipeline benchmark loop) in a second
module, ``vrouter._testext``, built on request only and never installed:

  python3 setup.py build_testext --inplace

It links its own copy of the same objects and takes the product's tables as
capsules. Both modules export PyInit_* alone (ext/exports.map).

Environment:
  VROUTER_SANITIZE=1   build with AddressSanitizer + UBSan (tests/sanitize.sh)
  VROUTER_DEBUG=1      -O0 -g, argument checks compiled in (VR_DEBUG)
  CLANG=path           the clang that compiles the XDP program (default: clang on PATH)
"""
import glob
import os
import shutil
import subprocess
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZE = os.environ.get("VROUTER_SANITIZE") == "1"
DEBUG = os.environ.get("VROUTER_DEBUG") == "1" or SANITIZE

WARN = ["-Wall", "-Wextra", "-Werror"]
OPT = ["-O1", "-g", "-fno-omit-frame-pointer", "-DVR_DEBUG=1"] if DEBUG else ["-O3"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if SANITIZE else []
COMMON = ["-std=gnu11", "-pthread", "-fvisibility=hidden"] + OPT + SAN
# Warnings Cython-generated code trips over; our own C gets none of these.
CYTHON_RELAX = ["-Wno-unused-function", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-Wno-unreachable-code"]


BPF_SRC = os.path.join(HERE, "ext", "xdp_tunnel.bpf.c")
BPF_OBJ = os.path.join(HERE, "vrouter", "bpf", "xdp_tunnel.o")


def build_bpf(force=False):
    """ext/xdp_tunnel.bpf.c -> vrouter/bpf/xdp_tunnel.o (clang -O2 -g -target bpf)."""
    if not force and os.path.exists(BPF_OBJ) and os.path.getmtime(BPF_OBJ) >= os.path.getmtime(BPF_SRC):
        return
    clang = os.environ.get("CLANG") or shutil.which("clang")
    if not clang:
        raise SystemExit("error: clang not found: it compiles the XDP program ext/xdp_tunnel.bpf.c for the AF_XDP "
                         "back-end (tools/bootstrap.sh installs clang, llvm, libxdp-dev and libbpf-dev; or set CLANG)")
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch and os.path.isdir(f"/usr/include/{multiarch}"):
        cmd.append(f"-I/usr/include/{multiarch}")   # <asm/types.h> of the host, for linux/bpf.h
    os.makedirs(os.path.dirname(BPF_OBJ), exist_ok=True)
    cmd += ["-c", BPF_SRC, "-o", BPF_OBJ]
    print(" ".join(cmd))
    r = subprocess.run(cmd)
    if r.returncode:
        raise SystemExit(f"error: compiling the XDP program failed ({' '.join(cmd)})")


class BuildPy(build_py):
    """Make the XDP object before copying package data."""

    def run(self):
        build_bpf()
        super().run()


TESTEXT_DIR = os.path.join(HERE, "ext", "testext")


def c_sources(folder):
    """Our C files in folder (not Cython's generated ones, not the XDP program)."""
    srcs = sorted(glob.glob(os.path.join(folder, "*.c")))
    cython_out = ("vrouter_ext.c", "vrouter_testext.c")
    return [s for s in srcs if os.path.basename(s) not in cython_out and not s.endswith(".bpf.c")]


class BuildExt(build_ext):
    """Compile ext/*.c with -Wall -Wextra -Werror, then link with the Cython module
    (vrouter._testext: ext/testext/*.c as well)."""

    def run(self):
        build_bpf(force=self.force)
        super().run()

    def build_extension(self, ext):
        folders = [os.path.join(HERE, "ext")] + ([TESTEXT_DIR] if ext.name == TESTEXT_NAME else [])
        objects = []
        for folder in folders:
            objects += self.compiler.compile(
                c_sources(folder), output_dir=self.build_temp, include_dirs=folders,
                extra_postargs=COMMON + WARN, depends=glob.glob(os.path.join(folder, "*.h")))
        ext.extra_objects = objects
        super().build_extension(ext)


class BuildTestExt(BuildExt):
    """build_testext: build vrouter._testext (test and benchmark helpers) only."""

    description = "build the test / benchmark helper module vrouter._testext (never installed)"

    def finalize_options(self):
        # build_ext takes its list from the distribution (and sets each one up): lend it ours
        product = self.distribution.ext_modules
        self.distribution.ext_modules = cythonize(
            [testext_extension()], include_path=["ext", "ext/testext"], language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False})
        try:
            super().finalize_options()
        finally:
            self.distribution.ext_modules = product


LINK = ["-pthread", "-Wl,--version-script=" + os.path.join(HERE, "ext", "exports.map")] + SAN
TESTEXT_NAME = "vrouter._testext"


def testext_extension():
    return Extension(
        TESTEXT_NAME,
        sources=["ext/testext/vrouter_testext.pyx"],
        include_dirs=["ext", "ext/testext", numpy.get_include()],
        extra_compile_args=COMMON + WARN + CYTHON_RELAX,
        extra_link_args=LINK,
        libraries=["xdp", "bpf"],   # it links the product's objects too, io_xsk.c's among them
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=sorted(glob.glob("ext/*.[ch]") + glob.glob("ext/*.p*") + glob.glob("ext/testext/*")),
    )


ext = Extension(
    "vrouter._ext",
    sources=["ext/vrouter_ext.pyx"],
    include_dirs=["ext", numpy.get_include()],
    extra_compile_args=COMMON + WARN + CYTHON_RELAX,
    extra_link_args=LINK,
    libraries=["xdp", "bpf"],   # AF_XDP back-end (ext/io_xsk.c)
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    # Every C file too: they are linked in as extra objects, so a change to one
    # alone must relink the module.
    depends=sorted(glob.glob("ext/*.c") + glob.glob("ext/*.h") + glob.glob("ext/*.pxd") + glob.glob("ext/*.pxi") +
                   glob.glob("ext/*.def") + ["ext/exports.map"]),
)

def _version() -> str:
    """control/version.py is the one place the version is written."""
    ns = {}
    with open(os.path.join(HERE, "control", "version.py")) as f:
        exec(f.read(), ns)
    return ns["__version__"]


# What a node needs at run time; the tests' own (pytest, hypothesis, pytricia) are the "test" extra.
INSTALL_REQUIRES = [
    "numpy>=1.24",
    "pyyaml>=6.0",            # node.yaml, the intent
    "pyroute2>=0.7",          # TAP set-up, namespaces, the fabric interface
    "pyzmq>=25",              # the control channel (ROUTER / DEALER, CurveZMQ)
    "msgpack>=1.0",           # the control channel's encoding
    "prometheus-client>=0.17",  # /metrics
    "scapy>=2.5",             # vrouter-ctl trace builds its frames with it
]

setup(
    name="vrouter",
    version=_version(),
    description="Userspace overlay vRouter data plane (VRFs, LPM, flows, VXLAN/MPLSoUDP)",
    packages=find_packages(include=["vrouter", "vrouter.*", "control", "control.*"]),
    ext_modules=cythonize([ext], include_path=["ext"], language_level=3,
                          compiler_directives={"boundscheck": False, "wraparound": False}),
    package_data={"vrouter": ["bpf/xdp_tunnel.o"], "control.agent": ["examples/*.yaml"]},
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "build_testext": BuildTestExt},
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=7", "hypothesis>=6.80", "pytricia>=1.0"]},
    entry_points={"console_scripts": [
        "vrouter=vrouter.__main__:main",               # the node process (vrouter run), vrouter demo
        "vrouter-ctl=control.ctl.cli:main",            # the operator's view over the control channel
        "vrouter-agent=control.agent.agent:main",      # the agent: intent -> every node's tables
        "vrouter-demo=control.lab.demo:main",          # the two-node cluster demo in namespaces
    ]},
)
