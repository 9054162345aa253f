"""A C reader thread (vrouter._testext.LpmProbe: registered RCU reader, no GIL) loops batch lookups while this
thread makes >= 20,000 inserts / deletes / replaces (and a few batches) on nested prefix chains covering
the probe keys. Every answer the reader saw must be the reference answer of some table state within the
generation window of its round: gen_before[i] <= g <= gen_after[i] + 1. Lpm4 and Lpm6."""
import sys
import threading
import time

import numpy as np
import pytest

import lpm_ref
from conftest import c_lpm, c_testext
from lpm_ref import BITS, NO_ROUTE, keys_array, net_mask

N_OPS = 20_000
SEGMENTS = 4
MAX_ROUNDS = 300_000        # x 48 keys x 4 bytes = 58 MB of answers per segment at most
N_KEYS = 48
SEED = 7


def probe_setup(family, rng):
    """Probe keys in a few tight clusters under one base, and the chain of prefixes covering each key, so
    one write changes the answer of several keys and deletes hand keys back to shorter routes."""
    bits = BITS[family]
    base_len = 8 if family == 4 else 32
    base = (0x0A << 24) if family == 4 else (0x20010DB8 << 96)
    step = 2 if family == 4 else 8
    chain_lens = [0] + list(range(base_len, bits + 1, step))
    keys = []
    for _ in range(N_KEYS // 8):
        cluster = base | int.from_bytes(rng.bytes((bits - base_len) // 8), "big")
        for _ in range(8):
            flip = int(rng.integers(0, 1 << min(12, bits - base_len)))     # keys share long prefixes
            keys.append((cluster ^ flip) & ((1 << bits) - 1))
    pool = sorted({(k & net_mask(bits, plen), plen) for k in keys for plen in chain_lens})
    return keys, pool


class Writer:
    """Applies random changes as fast as it can, keeping the op log and the generation after each op."""

    def __init__(self, table, family, pool, rng):
        self.table, self.family, self.pool, self.rng = table, family, pool, rng
        self.present, self.log, self.gens, self.nh = {}, [], [], 0

    def run(self, n_ops):
        table, family, pool, rng, present = self.table, self.family, self.pool, self.rng, self.present
        for _ in range(n_ops):
            key = pool[int(rng.integers(0, len(pool)))]
            self.nh = (self.nh + 1) % lpm_ref.MAX_NH          # always a new next hop: every op changes
            if len(self.log) % 97 == 0:                        # now and then a batch of several changes
                chunk = [pool[j] for j in rng.integers(0, len(pool), 6).tolist()]
                addrs = keys_array(family, [k[0] for k in chunk])
                lens = np.array([k[1] for k in chunk], dtype=np.uint8)
                if rng.random() < 0.5:
                    nhs = (np.arange(len(chunk), dtype=np.uint32) + self.nh).astype(np.uint32)
                    self.nh += len(chunk)
                    table.insert_batch(0, addrs, lens, nhs)
                    self.log.append(("insert_batch", addrs, lens, nhs))
                    present.update({k: int(n) for k, n in zip(chunk, nhs)})
                else:
                    table.delete_batch(0, addrs, lens)
                    self.log.append(("delete_batch", addrs, lens))
                    for k in chunk:
                        present.pop(k, None)
            elif key in present and rng.random() < 0.5:
                assert table.delete(0, key) is True
                self.log.append(("delete", key))
                del present[key]
            else:                                              # insert, or replace
                assert table.insert(0, key, self.nh) is (key not in present)
                self.log.append(("insert", key, self.nh))
                present[key] = self.nh
            self.gens.append(table.generation)


def reference_states(family, keys, log, gens, gen0):
    """Answer vector of every generation gen0..gens[-1], replaying the log on the reference model; a
    generation an op skipped over (a batch counting several) keeps the state before that op."""
    bits = BITS[family]
    model = lpm_ref.REF_CLASSES[family]()
    states = np.empty((gens[-1] - gen0 + 1, len(keys)), dtype=np.uint32)
    now = np.full(len(keys), NO_ROUTE, dtype=np.uint32)
    states[0] = now
    prev = gen0
    for op, gen in zip(log, gens):
        assert gen >= prev, "generation went backwards"
        states[prev - gen0 + 1:gen - gen0 + 1] = now
        getattr(model, op[0])(0, *op[1:])
        # Only keys under a changed prefix can change answer; recompute those from the model.
        touched = [op[1]] if op[0] in ("insert", "delete") else list(zip(
            (op[1].tolist() if family == 4 else lpm_ref.v6_bytes_to_ints(op[1])), op[2].tolist()))
        for j, k in enumerate(keys):
            if any(k & net_mask(bits, plen) == net for net, plen in touched):
                now[j] = model.lookup(0, k)
        states[gen - gen0] = now
        prev = gen
    return states


def check_answers(gen_before, gen_after, answers, states, gen0):
    """Each answers[i, j] equals states[g, j] for some g in [gen_before[i], gen_after[i] + 1]."""
    top = gen0 + len(states) - 1
    lo = gen_before.astype(np.int64) - gen0
    hi = np.minimum(gen_after.astype(np.int64) + 1, top) - gen0
    assert (lo >= 0).all() and (hi >= lo).all(), "reader saw a generation outside the run"
    ok = np.zeros(answers.shape, dtype=bool)
    width = hi - lo
    narrow = width <= 32
    for d in range(int(width[narrow].max(initial=0)) + 1):
        rows = np.nonzero(narrow & (width >= d))[0]
        ok[rows] |= answers[rows] == states[lo[rows] + d]
    for i in np.nonzero(~narrow)[0]:                      # a round the scheduler stretched: check it whole
        ok[i] = (states[lo[i]:hi[i] + 1] == answers[i]).any(axis=0)
    bad = np.argwhere(~ok)
    if bad.size:
        i, j = bad[0]
        window = states[lo[i]:hi[i] + 1, j]
        pytest.fail(f"{len(bad)} impossible answers; first: round {i} key {j} saw {answers[i, j]:#x}, "
                    f"window gen {gen_before[i]}..{gen_after[i] + 1} allows {sorted(set(window.tolist()))[:8]}")


@pytest.mark.parametrize("family", [4, 6], ids=["lpm4", "lpm6"])
def test_concurrent_reader_sees_only_states_inside_its_generation_window(family):
    lpm = c_lpm()
    rng = np.random.default_rng(SEED + family)
    table = lpm.Lpm4() if family == 4 else lpm.Lpm6()
    keys, pool = probe_setup(family, rng)
    # A route in another VRF, so the reader's VRF is not alone in the table.
    table.insert(1, (keys[0] & net_mask(BITS[family], 16), 16), 1)
    gen0 = table.generation
    writer = Writer(table, family, pool, rng)
    # The reader keeps a ring of its last max_rounds rounds; a fresh reader per segment of the writes keeps
    # every segment observed without holding hundreds of MB of answers.
    seen = []
    for _ in range(SEGMENTS):
        first_gen = table.generation
        reader = c_testext().LpmProbe(table._t, 0, table._batch_keys(keys_array(family, keys), "keys"),
                                    max_rounds=MAX_ROUNDS)
        try:
            writer.run(N_OPS // SEGMENTS)
        finally:
            gen_before, gen_after, answers = reader.stop()
        seen.append((first_gen, table.generation, gen_before, gen_after, answers))
    assert len(writer.log) >= N_OPS and writer.gens[-1] > gen0
    states = reference_states(family, keys, writer.log, writer.gens, gen0)
    for first_gen, last_gen, gen_before, gen_after, answers in seen:
        assert answers.shape == (len(gen_before), len(keys)) and answers.dtype == np.uint32
        overlapping = int(((gen_before > first_gen) & (gen_before < last_gen)).sum())
        assert overlapping > 100, f"only {overlapping} reader rounds overlapped gens {first_gen}..{last_gen}"
        distinct = len({tuple(r) for r in answers[:: max(1, len(answers) // 2000)].tolist()})
        assert distinct > 10, "the reader saw almost no change: the writes do not cover the probe keys"
        check_answers(gen_before, gen_after, answers, states, gen0)


def test_answer_check_rejects_an_answer_from_outside_the_window():
    """The checker itself: an answer only valid two generations later is caught, one generation later is not."""
    states = np.array([[1, 1], [2, 1], [3, 1], [4, 1]], dtype=np.uint32)
    gb, ga = np.array([0, 1], np.uint64), np.array([0, 1], np.uint64)
    check_answers(gb, ga, np.array([[2, 1], [3, 1]], np.uint32), states, gen0=0)     # +1 tolerance
    with pytest.raises(pytest.fail.Exception, match="impossible"):
        check_answers(gb, ga, np.array([[3, 1], [3, 1]], np.uint32), states, gen0=0)


@pytest.mark.parametrize("family", [4, 6], ids=["lpm4", "lpm6"])
def test_python_thread_batch_lookups_during_writes_see_only_window_states(family):
    """The other reader path: lookup_batch from a Python thread (GIL released, ephemeral RCU slot) while
    this thread writes. Same window rule, with the generation read around each call."""
    lpm = c_lpm()
    rng = np.random.default_rng(SEED + 10 * family)
    table = lpm.Lpm4() if family == 4 else lpm.Lpm6()
    keys, pool = probe_setup(family, rng)
    copies = 40                                           # long enough a batch for writes to land inside it
    karr = keys_array(family, keys * copies)
    gen0 = table.generation
    rounds, stop = [], threading.Event()

    def read():
        while not stop.is_set() and len(rounds) < 3000:
            gb = table.generation
            ans = table.lookup_batch(0, karr, impl=lpm_ref.BATCH_IMPLS[len(rounds) % len(lpm_ref.BATCH_IMPLS)])
            rounds.append((gb, table.generation, ans))

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)                           # hand the GIL over often, so reads interleave
    reader = threading.Thread(target=read)
    reader.start()
    try:
        writer = Writer(table, family, pool, rng)
        writer.run(5_000)
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(old_interval)
    gb = np.array([r[0] for r in rounds], dtype=np.uint64)
    ga = np.array([r[1] for r in rounds], dtype=np.uint64)
    answers = np.stack([r[2] for r in rounds]).reshape(len(rounds) * copies, len(keys))
    during = int(((gb > gen0) & (gb < writer.gens[-1])).sum())
    assert during > 20, f"only {during} Python-thread batches ran during the writes"
    states = reference_states(family, keys, writer.log, writer.gens, gen0)
    check_answers(np.repeat(gb, copies), np.repeat(ga, copies), answers, states, gen0)


@pytest.mark.parametrize("impl", lpm_ref.BATCH_IMPLS)
@pytest.mark.parametrize("family", [4, 6], ids=["lpm4", "lpm6"])
def test_lookup_batch_releases_the_gil(family, impl):
    """While a long batch runs in another thread, this thread keeps running Python code."""
    lpm = c_lpm()
    table = lpm.Lpm4() if family == 4 else lpm.Lpm6()
    rng = np.random.default_rng(1)
    # Routes deep enough that every key walks the trie, and a batch sized to last >= ~0.2 s:
    # a scheduler gap on a busy machine (a few ms) must stay far below half of it.
    if family == 4:
        nets = (rng.integers(0, 1 << 24, 4000, dtype=np.uint64).astype(np.uint32) << np.uint32(8))
        table.insert_batch(0, nets, np.full(len(nets), 24, np.uint8), np.arange(len(nets), dtype=np.uint32))
        make = lambda n: nets[rng.integers(0, len(nets), n)] | rng.integers(0, 256, n).astype(np.uint32)
    else:
        nets = rng.integers(0, 256, (4000, 16), dtype=np.uint8)
        nets[:, 6:] = 0
        table.insert_batch(0, nets, np.full(len(nets), 48, np.uint8), np.arange(len(nets), dtype=np.uint32))

        def make(n):
            k = nets[rng.integers(0, len(nets), n)].copy()
            k[:, 6:] = rng.integers(0, 256, (n, 10), dtype=np.uint8)
            return k
    probe = make(1_000_000)
    t0 = time.perf_counter()
    table.lookup_batch(0, probe, impl=impl)
    per_key = (time.perf_counter() - t0) / len(probe)
    keys = make(int(min(40_000_000 if family == 4 else 10_000_000, max(1_000_000, 0.25 / per_key))))
    done = threading.Event()
    span = []

    def batch():
        t0 = time.perf_counter()
        table.lookup_batch(0, keys, impl=impl)
        span.extend([t0, time.perf_counter()])
        done.set()

    th = threading.Thread(target=batch)
    ticks = []
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    th.join()
    # Had the C call kept the GIL, this thread could not tick at all during it (Python threads only run
    # while holding it). A count, not a timing: a loaded machine may deschedule this thread for most of the
    # batch, but it still runs some of the time.
    t0, t1 = span
    inside = [t for t in ticks if t0 < t < t1]
    assert len(inside) >= 3, (f"this thread ticked {len(inside)} times during a {1e3 * (t1 - t0):.0f} ms "
                              f"batch: GIL held?")
