"""The funding schedule: perpetuals pay funding when the sequencer's time crosses a funding time."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.engine.commands import batch, new_order
from shardex.risk import funding, mark_price
from shardex.schema import EventKind

from .helpers import MARK, fund, trade, venue

HOUR = 3600 * 10**9
EIGHT_HOURS = 8 * HOUR


class Clock:
    """A settable clock for the sequencer (the only place time enters the engine)."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def scheduled(clock: Clock, **kw):
    rx = venue(clock=clock, funding_interval_ns=EIGHT_HOURS, **kw)
    fund(rx, {1: 10_000, 2: 10_000})
    trade(rx, buyer=1, seller=2, lots=10)
    return rx


def test_funding_is_paid_once_the_clock_passes_the_funding_time():
    clock = Clock(7 * HOUR)  # 07:00: the schedule starts, nothing due yet
    rx = scheduled(clock)
    # premium samples 1001 ppm and 0 ppm: average 500; F = 500 + clamp(100 - 500, -500, 500) = 100 ppm
    ev = rx.process(batch([mark_price(0, MARK, 599_400), mark_price(0, MARK, MARK)]))
    assert EventKind.FUNDING not in ev["kind"].tolist()
    b1, b2 = int(rx.ledger.balances[1, 0]), int(rx.ledger.balances[2, 0])
    clock.t = 8 * HOUR + 5  # 08:00:00.000000005: the 08:00 funding falls due before this batch
    ev = rx.process(batch([new_order(0, "buy", 1, MARK - 1000, order_id=9, account=1)]))
    pay = 10 * MARK * 100 * 100 // 1_000_000
    fund_ev = ev[ev["kind"] == EventKind.FUNDING]
    assert fund_ev["account"].tolist() == [1, 2] and fund_ev["qty"].tolist() == [-pay, pay]
    assert fund_ev["price"].tolist() == [100, 100]
    assert fund_ev["ts"].tolist() == [8 * HOUR] * 2  # stamped with the funding time
    assert ev["kind"][:2].tolist() == [EventKind.FUNDING] * 2  # before the command that crossed it
    assert fund_ev["seq"].tolist() == [ev["seq"][-1]] * 2
    assert int(rx.ledger.balances[1, 0]) == b1 - pay and int(rx.ledger.balances[2, 0]) == b2 + pay
    # the same interval is not paid twice
    ev = rx.process(batch([mark_price(0, MARK, MARK)]))
    assert EventKind.FUNDING not in ev["kind"].tolist()
    rx.check()


def test_the_schedule_pays_what_a_funding_command_at_that_moment_pays():
    clock = Clock(1 * HOUR)
    rx = scheduled(clock)
    manual = venue(clock=Clock(1 * HOUR))
    fund(manual, {1: 10_000, 2: 10_000})
    trade(manual, buyer=1, seller=2, lots=10)
    for r in (rx, manual):
        r.process(batch([mark_price(0, MARK + 2_000, MARK), mark_price(0, MARK + 500, MARK)]))
    clock.t = 9 * HOUR
    got = rx.process(batch([mark_price(0, MARK, MARK)]))
    want = manual.process(batch([funding(0), mark_price(0, MARK, MARK)]))
    cols = ["kind", "account", "instrument", "price", "qty", "leaves"]
    assert [got[c].tolist() for c in cols] == [want[c].tolist() for c in cols]
    assert np.array_equal(rx.ledger.balances, manual.ledger.balances)


def test_each_funding_time_passed_is_paid_and_a_replay_pays_the_same():
    stamped = _stamped_history(Clock(7 * HOUR))
    live = venue(clock=Clock(0), funding_interval_ns=EIGHT_HOURS)
    out = [live.apply(b.copy()) for b in stamped]
    ev = out[-1]  # 08:00, 16:00 and 00:00 passed at once before this batch
    paid = ev[ev["kind"] == EventKind.FUNDING]
    assert paid["ts"].tolist() == [8 * HOUR] * 2 + [16 * HOUR] * 2 + [24 * HOUR] * 2
    # first interval: one 5,000 ppm premium sample, F = 5000 + clamp(100 - 5000, -500, 500) = 4,500 ppm;
    # the next two had no samples: F = 0 + clamp(100, -500, 500) = 100 ppm (the interest)
    assert paid["price"].tolist() == [4_500] * 2 + [100] * 4
    # paid on the notional at the mark in force at each funding time: MARK + 3,000 (the batch's own mark
    # update comes after the funding due before it)
    pay = [10 * (MARK + 3_000) * 100 * r // 1_000_000 for r in (4_500, 100, 100)]
    assert paid["qty"].tolist() == [-pay[0], pay[0], -pay[1], pay[1], -pay[2], pay[2]]
    live.check()
    # a replay of the same sequenced batches (the journal's view) pays at the same commands
    replayed = venue(clock=Clock(0), funding_interval_ns=EIGHT_HOURS)
    again = [replayed.apply(b.copy()) for b in stamped]
    assert all(np.array_equal(x, y) for x, y in zip(out, again))
    assert live.state_hash() == replayed.state_hash()


def _stamped_history(clock: Clock) -> list[np.ndarray]:
    """Batches of the test above, sequenced once (seq and ts filled in) for apply()."""
    from shardex.engine.sequencer import Sequencer
    from shardex.risk import deposit

    seqr = Sequencer(clock=clock)
    out = []
    for t, recs in (
        (7 * HOUR, [deposit(1, 0, 10_000 * 10**6), deposit(2, 0, 10_000 * 10**6)]),
        (7 * HOUR, [new_order(0, "sell", 10, MARK, order_id=1, account=2),
                    new_order(0, "buy", 10, MARK, order_id=1, account=1)]),
        (7 * HOUR, [mark_price(0, MARK + 3_000, MARK)]),
        (7 * HOUR + 3 * EIGHT_HOURS, [mark_price(0, MARK, MARK)]),
    ):
        clock.t = t
        b = batch(recs)
        seqr.stamp(b)
        out.append(b)
    return out


def test_a_schedule_needs_a_positive_interval():
    with pytest.raises(ValueError, match="funding_interval_ns must be positive"):
        venue(funding_interval_ns=0)
