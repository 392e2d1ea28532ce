"""The durable RiskExchange: journal before apply, replay == live, SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import doctest
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from shardex.engine.commands import batch, new_order
from shardex.engine.loadgen import order_flow
from shardex.risk import RiskExchange, deposit, mark_price, withdraw
from shardex.risk.durable import RiskConfigError, open_risk

from .helpers import FUT, MARK, PERP, USD

HOUR = 3600 * 10**9


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        self.t += HOUR // 2  # time moves: the funding schedule pays along the way
        return self.t


def _options(clock=None) -> dict:
    from shardex.risk import MarginTiers

    return dict(tiers=MarginTiers.flat(1000, 500), marks=[MARK, MARK], clock=clock or Clock(),
                funding_interval_ns=8 * HOUR, taker_fee_bps=5, maker_fee_bps=-1)


def _history(seed: int = 5, n: int = 40) -> list[np.ndarray]:
    """Deposits, then batches of orders on both instruments with marks and a withdrawal now and then."""
    rng = np.random.default_rng(seed)
    out = [batch([deposit(a, 0, 10**6 * USD) for a in range(1, 9)])]
    flow = order_flow(n * 64, n_instruments=2, seed=seed, accounts=8)
    flow["account"] += 1
    flow["price"] = MARK + (flow["price"] - 100_000)  # around the marks
    for k in range(n):
        b = flow[k * 64:(k + 1) * 64].copy()
        extra = [mark_price(int(rng.integers(0, 2)), MARK + int(rng.integers(-3000, 3000)), MARK)]
        if k % 7 == 3:
            extra.append(withdraw(int(rng.integers(1, 9)), 0, 1_000 * USD))
        out.append(np.concatenate([b, batch(extra)]))
    return out


def test_module_doctest():
    import shardex.risk.durable as mod

    assert doctest.testmod(mod).failed == 0


@pytest.mark.parametrize("snapshots", ["journal only", "on close", "periodic"])
def test_reopen_recovers_the_live_state_and_goes_on_like_a_never_closed_engine(tmp_path, snapshots):
    hist = _history()
    ref = RiskExchange([PERP, FUT], 10, **_options())
    want = [ref.process(b.copy()) for b in hist]
    durable = {"journal only": dict(snapshot_every=0, snapshot_on_close=False),
               "on close": dict(snapshot_every=0), "periodic": dict(snapshot_every=500, snapshot_on_close=False)}
    with open_risk(tmp_path, [PERP, FUT], 10, **durable[snapshots], **_options()) as rx:
        got = [rx.process(b.copy()) for b in hist[:25]]
        live = rx.state_hash()
        clock_at = rx.exchange.sequencer.last_ts
        taken = [seq for seq, _ in rx.snapshots.list()]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    done = sum(len(b) for b in hist[:25])
    replayed = {"journal only": done, "on close": 0, "periodic": done - (taken[0] if taken else 0)}[snapshots]
    assert (len(taken) >= 2) == (snapshots == "periodic")
    clock = Clock()
    clock.t = clock_at
    with open_risk(tmp_path, [PERP, FUT], 10, **durable[snapshots], **_options(clock)) as again:
        assert again.state_hash() == live
        assert again.recovered_commands == replayed
        rest = [again.process(b.copy()) for b in hist[25:]]
        assert all(np.array_equal(g, w) for g, w in zip(rest, want[25:]))
        assert again.state_hash() == ref.state_hash()
        again.check()


def test_a_journal_is_not_replayed_under_another_configuration(tmp_path):
    with open_risk(tmp_path, [PERP, FUT], 10, **_options()) as rx:
        rx.process(_history()[0])
    with pytest.raises(RiskConfigError, match="another configuration"):
        open_risk(tmp_path, [PERP, FUT], 11, **_options())
    opts = _options()
    opts["taker_fee_bps"] = 7
    with pytest.raises(RiskConfigError):
        open_risk(tmp_path, [PERP, FUT], 10, **opts)
    with open_risk(tmp_path, [PERP, FUT], 10, **_options()) as rx:  # the clock is not configuration
        assert rx.state_hash() != RiskExchange([PERP, FUT], 10, **_options()).state_hash()  # the deposits are back
    with pytest.raises(RiskConfigError):  # margin modes at creation are configuration too
        open_risk(tmp_path, [PERP, FUT], 10, margin_modes={1: "standard"}, **_options())


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.risk.test_durable_risk import _history, _options
    from tests.risk.helpers import FUT, PERP
    from shardex.risk.durable import open_risk
    rx = open_risk({path!r}, [PERP, FUT], 10, snapshot_every={every}, **_options())
    for k, b in enumerate(_history(n=400)):
        rx.process(b.copy())
        print(k, flush=True)  # acknowledged: journaled (fsync per batch) and applied
""")


def test_sigkill_loses_no_acknowledged_batch(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hist = _history(n=400)
    # an early kill with the journal alone, a later one with snapshots every ~5 batches (and the journal cut
    # back behind them), each on a fresh path
    for kill_after, every in ((3, 0), (40, 300)):
        path = str(tmp_path / f"risk-{kill_after}")
        proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(root=root, path=path, every=every)],
                                stdout=subprocess.PIPE, text=True, cwd=root)
        acked = -1
        try:
            for line in proc.stdout:  # bounded: the writer stops after its 401 batches
                acked = int(line)
                if acked >= kill_after:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
        assert acked >= kill_after
        with open_risk(path, [PERP, FUT], 10, snapshot_every=every, **_options()) as rx:
            n = rx.exchange.sequencer.next_seq - 1  # commands in the state: snapshot + replayed tail
            assert (rx.recovered_commands < n) == (every > 0)
            # the replay equals an in-memory engine fed the same leading batches
            sizes = np.cumsum([len(b) for b in hist])
            done = int(np.searchsorted(sizes, n, side="right"))
            assert sizes[done - 1] == n and done >= acked + 1  # whole batches, every acknowledged one
            ref = RiskExchange([PERP, FUT], 10, **_options())
            for b in hist[:done]:
                ref.process(b.copy())
            assert rx.state_hash() == ref.state_hash()


def test_new_order_is_not_applied_when_the_journal_refuses_it(tmp_path):
    with open_risk(tmp_path, [PERP, FUT], 10, **_options()) as rx:
        rx.process(_history()[0])
        before = rx.state_hash()
        rx.log.close()  # a journal that can no longer append: nothing may be applied or acknowledged
        with pytest.raises(Exception):
            rx.process(batch([new_order(0, "buy", 1, MARK, order_id=1, account=1)]))
        assert rx.state_hash() == before


def _big_batches() -> list[np.ndarray]:
    """The history joined into batches large enough to be applied while their fsync runs."""
    hist = _history(n=64)
    return [hist[0]] + [np.concatenate(hist[k:k + 20]) for k in range(1, len(hist), 20)]


def test_large_batches_are_applied_while_their_fsync_runs_with_the_same_events_and_state(tmp_path):
    from shardex.engine.durable import JOURNAL_ALONGSIDE_FROM

    big = _big_batches()
    assert max(len(b) for b in big) >= JOURNAL_ALONGSIDE_FROM
    ref = RiskExchange([PERP, FUT], 10, **_options())
    want = [ref.process(b.copy()) for b in big]
    syncs = []
    with open_risk(tmp_path, [PERP, FUT], 10, snapshot_every=0, snapshot_on_close=False, **_options()) as rx:
        append = rx.log.append

        def spy(cmds, *, sync=True):
            syncs.append(sync)
            return append(cmds, sync=sync)

        rx.log.append = spy
        got = []
        for b in big:
            got.append(rx.process(b.copy()))
            assert rx.log.durable_seq == rx.exchange.sequencer.next_seq - 1  # handed out: durable
        live = rx.state_hash()
    assert True in syncs and False in syncs  # both paths ran
    assert all(np.array_equal(g, w) for g, w in zip(got, want)) and live == ref.state_hash()
    with open_risk(tmp_path, [PERP, FUT], 10, **_options()) as again:
        assert again.state_hash() == live


def test_a_failed_fsync_beside_apply_hands_out_nothing_and_takes_no_snapshot(tmp_path, failing_fsync):
    from shardex.journal import JournalFailedError

    big = _big_batches()
    rx = open_risk(tmp_path, [PERP, FUT], 10, snapshot_every=0, **_options())
    rx.log._fsync = failing_fsync(1)
    rx.process(big[0].copy())  # a small batch: fsynced before it is applied
    with pytest.raises(JournalFailedError, match="fsync failed"):
        rx.process(big[1].copy())  # fsynced beside apply: the fsync fails
    with pytest.raises(JournalFailedError, match="not durable"):
        rx.snapshot()
    with pytest.raises(JournalFailedError):
        rx.process(big[2].copy())
    rx.close()  # takes no snapshot of a state that may hold the failed batch
    with open_risk(tmp_path, [PERP, FUT], 10, snapshot_on_close=False, **_options()) as again:
        assert again.recovered_commands >= len(big[0])
