"""Engine behaviour found while building the conformance adapter, reported to the kernel's owner.

Each test is a minimal reproduction marked ``xfail(strict=True)``: when the
kernel is fixed it starts passing, fails as XPASS, and the mark comes off.
"""

from __future__ import annotations

import pytest

from shardex import EventKind, Exchange, Instrument, Matching
from shardex.engine.commands import batch, new_order


def test_pro_rata_share_survives_large_lot_counts():
    ex = Exchange([Instrument(0, "P", matching=Matching.PRO_RATA)])
    big = 4 * 10**9  # two makers of 4e9 lots: each is owed exactly half of a 4e9 taker
    events = ex.process(batch([
        new_order(0, "sell", big, 100, order_id=1, account=1),
        new_order(0, "sell", big, 100, order_id=2, account=2),
        new_order(0, "buy", big, 100, order_id=3, account=3, tif="ioc"),
    ]))
    trades = events[events["kind"] == EventKind.TRADE]
    assert [(int(t["maker_order_id"]), int(t["qty"])) for t in trades] == [(1, big // 2), (2, big // 2)]
