"""The QSBR contract of ext/rcu.h, observed through an LPM table's replaced blocks:
a writer never frees what an online reader might still hold, and frees it once every
online reader has passed a quiescent point."""
import threading

import numpy as np
import pytest

from vrouter import _ext
from vrouter.lpm import Lpm4


def churn(table, n=50):
    """Replace routes in distinct direct slots so every change retires a FIB block."""
    for i in range(n):
        table.insert(0, ((10 << 24) | (i << 16), 24), i + 1)
        table.insert(0, ((10 << 24) | (i << 16), 24), i + 1000)


def test_online_reader_that_never_quiesces_holds_back_every_free():
    dom = _ext.RcuDomain()
    t = Lpm4(domain=dom)
    slot = dom.register()
    dom.online(slot)
    churn(t)
    held = dom.pending
    assert held > 0
    dom.reclaim()
    assert dom.pending == held, "freed memory an online reader may still be reading"
    dom.quiescent(slot)
    dom.reclaim()
    assert dom.pending == 0, "a quiescent reader must release everything retired before it"
    dom.unregister(slot)


def test_offline_and_unregistered_readers_do_not_hold_back_frees():
    dom = _ext.RcuDomain()
    t = Lpm4(domain=dom)
    idle = dom.register()           # registered, never online
    gone = dom.register()
    dom.online(gone)
    dom.offline(gone)
    churn(t)
    assert dom.pending == 0
    dom.unregister(idle)
    dom.unregister(gone)


def test_a_quiescent_point_releases_only_what_was_retired_before_it():
    dom = _ext.RcuDomain()
    t = Lpm4(domain=dom)
    slot = dom.register()
    dom.online(slot)
    churn(t, 50)                    # ~100 blocks retired before the quiescent point
    first = dom.pending
    assert first > 40
    dom.quiescent(slot)
    churn(t, 20)                    # at most 40 retired after it
    dom.reclaim()
    assert 0 < dom.pending <= 40, "freed the newer blocks too early, or kept the older ones"
    dom.quiescent(slot)
    dom.reclaim()
    assert dom.pending == 0
    dom.unregister(slot)


def test_synchronize_waits_for_a_reader_thread_to_pass_a_quiescent_point():
    dom = _ext.RcuDomain()
    t = Lpm4(domain=dom)
    slot = dom.register()
    dom.online(slot)
    churn(t)
    assert dom.pending > 0
    released = threading.Event()

    def reader():
        released.wait(5)
        dom.quiescent(slot)

    th = threading.Thread(target=reader)
    th.start()
    released.set()
    dom.synchronize()               # returns only after the reader's quiescent point
    th.join()
    assert dom.pending == 0
    dom.unregister(slot)


def test_reader_slots_are_bounded_and_reusable():
    dom = _ext.RcuDomain()
    slots = [dom.register() for _ in range(128)]
    assert sorted(slots) == list(range(128))
    with pytest.raises(Exception, match="busy"):
        dom.register()
    dom.unregister(slots[7])
    assert dom.register() == 7
    with pytest.raises(ValueError):
        dom.quiescent(128)


def test_batch_lookup_from_python_counts_as_a_reader_only_while_it_runs():
    dom = _ext.RcuDomain()
    t = Lpm4(domain=dom)
    t.insert(0, "10.0.0.0/8", 1)
    t.lookup_batch(0, np.arange(1000, dtype=np.uint32))
    assert dom.online_readers == 0
    churn(t)
    assert dom.pending == 0
