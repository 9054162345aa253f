"""Fixtures shared by the LPM tests: which implementations a test body runs against, and the real table."""
import os
import pathlib
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

import lpm_ref  # noqa: E402


def _widen_batch_impls():
    """Every lookup_batch variant the C module offers (scalar, batch, portable builds, ...) is compared by
    every test: the tests read lpm_ref.BATCH_IMPLS, so widen it before any test module imports it."""
    try:
        from vrouter.lpm import IMPLS
    except Exception:  # noqa: BLE001 - a broken build is reported by the tests themselves
        return
    lpm_ref.BATCH_IMPLS = tuple(dict.fromkeys(lpm_ref.SPEC_IMPLS + tuple(IMPLS)))


_widen_batch_impls()

# Example counts live here, not in the tests: HYPOTHESIS_PROFILE=sanitize (tools/test.sh's ASan run) keeps
# the sanitizer run short, =thorough digs deeper; print_blob makes any failure reproducible from the log.
_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("vrouter", max_examples=60, stateful_step_count=40, **_COMMON)
settings.register_profile("sanitize", max_examples=30, stateful_step_count=30, **_COMMON)
settings.register_profile("thorough", max_examples=1000, stateful_step_count=80, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vrouter"))

REPO = pathlib.Path(__file__).resolve().parent.parent
FULLROUTE_NAME = "tier1-fullroute-prefixes.txt.gz"


def fullroute_file() -> pathlib.Path:
    """The real table: $VROUTER_DATA (the file itself or its folder), else the copy shipped in tests/data/."""
    env = os.environ.get("VROUTER_DATA")
    if env:
        p = pathlib.Path(env)
        return p / FULLROUTE_NAME if p.is_dir() else p
    return REPO / "tests" / "data" / FULLROUTE_NAME


def pytest_configure(config):
    config.addinivalue_line("markers", "nosan: too slow for the sanitizer run (tools/test.sh skips it there)")


@pytest.fixture(scope="session")
def fullroute_path() -> pathlib.Path:
    p = fullroute_file()
    if not p.is_file():
        pytest.fail(f"real routing table not found at {p}: the LPM real-table test needs it "
                    f"(it ships in tests/data/; VROUTER_DATA may name another copy or its folder)",
                    pytrace=False)
    return p


def c_lpm():
    """The module under test; a missing or broken build fails the test (never a skip)."""
    try:
        import vrouter.lpm as lpm
    except Exception as e:  # noqa: BLE001 - report whatever broke the import
        pytest.fail(f"cannot import vrouter.lpm ({type(e).__name__}: {e}); build with "
                    f"`python setup.py build_ext --inplace`", pytrace=False)
    return lpm


def c_testext():
    """vrouter._testext, the C helpers of the tests and benchmarks (never installed); a missing build
    fails the test (never a skip)."""
    try:
        from vrouter import _testext
    except Exception as e:  # noqa: BLE001 - report whatever broke the import
        pytest.fail(f"cannot import vrouter._testext ({type(e).__name__}: {e}); build it with "
                    f"`python setup.py build_testext --inplace` (tools/bootstrap.sh does)", pytrace=False)
    return _testext


class Impl:
    """One implementation of the LPM API: make(family) -> an empty table."""

    def __init__(self, name):
        self.name = name

    @property
    def is_c(self) -> bool:
        return self.name == "c_table"

    def make(self, family: int):
        if self.is_c:
            lpm = c_lpm()
            return lpm.Lpm4() if family == 4 else lpm.Lpm6()
        return lpm_ref.REF_CLASSES[family]()

    def __repr__(self):
        return self.name


# Session scope keeps hypothesis' function-scoped-fixture health check quiet; the object is stateless.
@pytest.fixture(scope="session", params=["c_table", "py_model"])
def impl(request) -> Impl:
    """Every test body runs against the C table and against the Python reference model."""
    return Impl(request.param)


@pytest.fixture(scope="session", params=[4, 6], ids=["ipv4", "ipv6"])
def family(request) -> int:
    return request.param
