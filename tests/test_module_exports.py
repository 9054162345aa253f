"""The product module vrouter._ext carries no test or benchmark code and exports nothing but its init
function: the flow stress test, the LPM reader thread and the pipeline benchmark loop live in
vrouter._testext (ext/testext/), built only for tests and benchmarks (setup.py build_testext)."""
import subprocess

from conftest import c_testext
from vrouter import _ext

HELPERS = ("flow_stress", "lpm_probe_start", "lpm_probe_stop", "pl_bench_loop", "pl_tsc")


def nm(path: str, *flags: str) -> set[str]:
    out = subprocess.run(["nm", *flags, path], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_product_module_exports_only_its_init_function():
    assert nm(_ext.__file__, "-D", "--defined-only") == {"PyInit__ext"}


def test_product_module_links_none_of_the_test_helpers():
    symbols = nm(_ext.__file__)
    assert "pl_process" in symbols and "flow_insert_pair" in symbols   # a symbol table to look in
    assert not [s for s in symbols if s.startswith(HELPERS)]
    for name in ("LpmProbe", "flow_stress", "pl_bench", "pl_tsc", "tsc"):
        assert not hasattr(_ext, name), name
    for cls, method in ((_ext.Pipeline, "bench"), (_ext.FlowTable, "stress")):
        assert not hasattr(cls, method), f"{cls.__name__}.{method}"


def test_helper_module_has_them_and_exports_only_its_init_function():
    t = c_testext()
    assert {s for s in nm(t.__file__) if s.startswith(HELPERS)} >= set(HELPERS)
    assert nm(t.__file__, "-D", "--defined-only") == {"PyInit__testext"}
    for name in ("LpmProbe", "flow_stress", "pl_bench", "tsc"):
        assert hasattr(t, name), name
