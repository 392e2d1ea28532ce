"""Self-trade prevention in FIFO and pro-rata books, and the pro-rata allocation numbers."""

from __future__ import annotations

import pytest

from .helpers import PRO_RATA, batch, l3_rows, make_exchange, new, run


def fifo_book():
    """Asks at 100: 2:1 2, 1:2 3 (own), 2:3 4; at 101: 1:4 5 (own).  Taker: account 1."""
    ex = make_exchange()
    run(ex, new("sell", 2, 100, oid=1, acct=2), new("sell", 3, 100, oid=2, acct=1), new("sell", 4, 100, oid=3, acct=2),
        new("sell", 5, 101, oid=4, acct=1))
    return ex


FIFO_EXPECTED = {
    "none": [
        "ACCEPTED B 1:9 px=101 q=10 lv=10",
        "TRADE B 1:9 px=100 q=2 lv=8 vs 2:1 mlv=0 t=1",
        "TRADE B 1:9 px=100 q=3 lv=5 vs 1:2 mlv=0 t=2",
        "TRADE B 1:9 px=100 q=4 lv=1 vs 2:3 mlv=0 t=3",
        "TRADE B 1:9 px=101 q=1 lv=0 vs 1:4 mlv=4 t=4",
    ],
    "cancel_taker": [
        "ACCEPTED B 1:9 px=101 q=10 lv=10",
        "TRADE B 1:9 px=100 q=2 lv=8 vs 2:1 mlv=0 t=1",
        "CANCELLED B 1:9 px=101 q=8 lv=0 STP_CANCEL",
    ],
    "cancel_maker": [
        "ACCEPTED B 1:9 px=101 q=10 lv=10",
        "TRADE B 1:9 px=100 q=2 lv=8 vs 2:1 mlv=0 t=1",
        "CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL",
        "TRADE B 1:9 px=100 q=4 lv=4 vs 2:3 mlv=0 t=2",
        "CANCELLED S 1:4 px=101 q=5 lv=0 STP_CANCEL",
    ],
    "cancel_both": [
        "ACCEPTED B 1:9 px=101 q=10 lv=10",
        "TRADE B 1:9 px=100 q=2 lv=8 vs 2:1 mlv=0 t=1",
        "CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL",
        "CANCELLED B 1:9 px=101 q=8 lv=0 STP_CANCEL",
    ],
    "decrement": [
        "ACCEPTED B 1:9 px=101 q=10 lv=10",
        "TRADE B 1:9 px=100 q=2 lv=8 vs 2:1 mlv=0 t=1",
        "CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL",
        "CANCELLED B 1:9 px=101 q=3 lv=5 STP_CANCEL",
        "TRADE B 1:9 px=100 q=4 lv=1 vs 2:3 mlv=0 t=2",
        "CANCELLED S 1:4 px=101 q=1 lv=4 STP_CANCEL",
        "CANCELLED B 1:9 px=101 q=1 lv=0 STP_CANCEL",
    ],
}

FIFO_LEFT = {
    "none": [(1, 101, 4, 1, 4, 0)],
    "cancel_taker": [(1, 100, 2, 1, 3, 0), (1, 100, 3, 2, 4, 0), (1, 101, 4, 1, 5, 0)],
    "cancel_maker": [(0, 101, 9, 1, 4, 0)],
    "cancel_both": [(1, 100, 3, 2, 4, 0), (1, 101, 4, 1, 5, 0)],
    "decrement": [(1, 101, 4, 1, 4, 0)],
}


@pytest.mark.parametrize("mode", list(FIFO_EXPECTED))
def test_stp_fifo(mode):
    ex = fifo_book()
    assert run(ex, new("buy", 10, 101, oid=9, acct=1, stp=mode)) == FIFO_EXPECTED[mode]
    assert l3_rows(ex) == FIFO_LEFT[mode]


def test_stp_only_applies_to_the_same_account():
    ex = fifo_book()
    out = run(ex, new("buy", 4, 100, oid=9, acct=3, stp="cancel_taker"))
    assert out[1:] == ["TRADE B 3:9 px=100 q=2 lv=2 vs 2:1 mlv=0 t=1", "TRADE B 3:9 px=100 q=2 lv=0 vs 1:2 mlv=1 t=2"]


def test_stp_decrement_partial_maker_shrinks_its_reserve_first_and_keeps_priority():
    ex = make_exchange()
    run(ex, new("sell", 9, 100, oid=1, acct=1, display_qty=3), new("sell", 2, 100, oid=2, acct=2))
    assert run(ex, new("buy", 4, 100, oid=9, acct=1, stp="decrement")) == [
        "ACCEPTED B 1:9 px=100 q=4 lv=4",
        "CANCELLED S 1:1 px=100 q=4 lv=5 STP_CANCEL",
        "CANCELLED B 1:9 px=100 q=4 lv=0 STP_CANCEL",
    ]
    assert l3_rows(ex) == [(1, 100, 1, 1, 3, 2), (1, 100, 2, 2, 2, 0)]


def test_stp_decrement_equal_sizes_cancels_both():
    ex = make_exchange()
    run(ex, new("sell", 3, 100, oid=1, acct=1))
    assert run(ex, new("buy", 3, 100, oid=9, acct=1, stp="decrement")) == [
        "ACCEPTED B 1:9 px=100 q=3 lv=3",
        "CANCELLED S 1:1 px=100 q=3 lv=0 STP_CANCEL",
        "CANCELLED B 1:9 px=100 q=3 lv=0 STP_CANCEL",
    ]
    assert l3_rows(ex) == []


def test_stp_decrement_reports_every_lot_of_the_taker():
    ex = make_exchange()
    run(ex, new("sell", 3, 100, oid=1, acct=1), new("sell", 4, 100, oid=2, acct=2))
    out = ex.process(batch([new("buy", 10, 100, oid=9, acct=1, stp="decrement")]))
    taker = out[(out["account"] == 1) & (out["order_id"] == 9)]
    # 10 accepted = 4 traded + 3 removed by STP + 3 resting; the 3 STP lots must show in a taker event
    kinds = taker["kind"].tolist()
    traded = int(taker["qty"][taker["kind"] == 3].sum())
    cancelled = int(taker["qty"][taker["kind"] == 4].sum())
    resting = sum(r[4] + r[5] for r in l3_rows(ex) if r[2] == 9 and r[3] == 1)
    assert (traded, resting) == (4, 3), kinds
    assert traded + cancelled + resting == 10


FOK_STP = [("cancel_taker", "REJECTED"), ("cancel_both", "REJECTED"), ("decrement", "REJECTED"), ("cancel_maker", "ACCEPTED")]


@pytest.mark.parametrize("mode, first", FOK_STP)
def test_fok_counts_own_liquidity_as_unavailable(mode, first):
    ex = fifo_book()
    out = run(ex, new("buy", 6, 100, oid=9, acct=1, tif="fok", stp=mode))
    assert out[0].startswith(first)
    if first == "ACCEPTED":
        assert out[1:] == [
            "TRADE B 1:9 px=100 q=2 lv=4 vs 2:1 mlv=0 t=1",
            "CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL",
            "TRADE B 1:9 px=100 q=4 lv=0 vs 2:3 mlv=0 t=2",
        ]


# -- pro-rata ---------------------------------------------------------------------------
def prorata_book():
    """Asks at 100: 2:1 6, 1:2 3 (own), 2:3 1; at 101: 1:4 5 (own)."""
    ex = make_exchange(PRO_RATA)
    run(ex, new("sell", 6, 100, oid=1, acct=2), new("sell", 3, 100, oid=2, acct=1), new("sell", 1, 100, oid=3, acct=2),
        new("sell", 5, 101, oid=4, acct=1))
    return ex


@pytest.mark.parametrize("qty, fills", [
    (5, [(1, 3), (2, 1), (3, 1)]),            # 5*6//10=3, 5*3//10=1, the last the remainder 1
    (7, [(1, 4), (2, 2), (3, 1)]),            # 42//10=4, 21//10=2, 1
    (10, [(1, 6), (2, 3), (3, 1)]),           # the whole level
    (2, [(1, 1), (3, 1)]),                    # 12//10=1, 6//10=0 (no trade), last 1
])
def test_prorata_allocation(qty, fills):
    ex = prorata_book()
    out = run(ex, new("buy", qty, 100, oid=9, acct=3))
    trades = [line for line in out if line.startswith("TRADE")]
    assert [(int(t.split(" vs ")[1].split(":")[1].split()[0]), int(t.split(" q=")[1].split()[0])) for t in trades] == fills


def test_prorata_revisits_a_level_while_the_taker_still_crosses():
    ex = make_exchange(PRO_RATA)
    run(ex, new("sell", 1, 100, oid=1, acct=1), new("sell", 1, 100, oid=2, acct=1), new("sell", 1, 100, oid=3, acct=1))
    # pass 1: 2*1//3 = 0, 0, last gets 1 (order 3); pass 2 over (1, 2): 0, last gets 1 (order 2)
    assert run(ex, new("buy", 2, 100, oid=9, acct=2)) == [
        "ACCEPTED B 2:9 px=100 q=2 lv=2",
        "TRADE B 2:9 px=100 q=1 lv=1 vs 1:3 mlv=0 t=1",
        "TRADE B 2:9 px=100 q=1 lv=0 vs 1:2 mlv=0 t=2",
    ]
    assert l3_rows(ex) == [(1, 100, 1, 1, 1, 0)]


def test_prorata_then_next_level():
    ex = prorata_book()
    assert run(ex, new("buy", 12, 101, oid=9, acct=3)) == [
        "ACCEPTED B 3:9 px=101 q=12 lv=12",
        "TRADE B 3:9 px=100 q=6 lv=6 vs 2:1 mlv=0 t=1",
        "TRADE B 3:9 px=100 q=3 lv=3 vs 1:2 mlv=0 t=2",
        "TRADE B 3:9 px=100 q=1 lv=2 vs 2:3 mlv=0 t=3",
        "TRADE B 3:9 px=101 q=2 lv=0 vs 1:4 mlv=3 t=4",
    ]


def test_prorata_iceberg_shares_by_displayed_size_and_refills_after_the_pass():
    ex = make_exchange(PRO_RATA)
    run(ex, new("sell", 8, 100, oid=1, acct=1, display_qty=2), new("sell", 2, 100, oid=2, acct=2))
    assert run(ex, new("buy", 3, 100, oid=9, acct=3)) == [
        "ACCEPTED B 3:9 px=100 q=3 lv=3",
        "TRADE B 3:9 px=100 q=1 lv=2 vs 1:1 mlv=7 t=1",   # 3*2//4 = 1
        "TRADE B 3:9 px=100 q=2 lv=0 vs 2:2 mlv=0 t=2",   # last: min(2, 2)
    ]
    assert l3_rows(ex) == [(1, 100, 1, 1, 1, 6)]


PRORATA_EXPECTED = {
    "none": (["TRADE B 1:9 px=100 q=3 lv=2 vs 2:1 mlv=3 t=1", "TRADE B 1:9 px=100 q=1 lv=1 vs 1:2 mlv=2 t=2",
              "TRADE B 1:9 px=100 q=1 lv=0 vs 2:3 mlv=0 t=3"],
             [(1, 100, 1, 2, 3, 0), (1, 100, 2, 1, 2, 0), (1, 101, 4, 1, 5, 0)]),
    # own orders are left out of the share: 5 over 7 lots of others (6, 1)
    "cancel_taker": (["TRADE B 1:9 px=100 q=4 lv=1 vs 2:1 mlv=2 t=1", "TRADE B 1:9 px=100 q=1 lv=0 vs 2:3 mlv=0 t=2"],
                     [(1, 100, 1, 2, 2, 0), (1, 100, 2, 1, 3, 0), (1, 101, 4, 1, 5, 0)]),
    "cancel_maker": (["CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL", "TRADE B 1:9 px=100 q=4 lv=1 vs 2:1 mlv=2 t=1",
                      "TRADE B 1:9 px=100 q=1 lv=0 vs 2:3 mlv=0 t=2"],
                     [(1, 100, 1, 2, 2, 0), (1, 101, 4, 1, 5, 0)]),
    "cancel_both": (["CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL", "TRADE B 1:9 px=100 q=4 lv=1 vs 2:1 mlv=2 t=1",
                     "TRADE B 1:9 px=100 q=1 lv=0 vs 2:3 mlv=0 t=2"],
                    [(1, 100, 1, 2, 2, 0), (1, 101, 4, 1, 5, 0)]),
    "decrement": (["TRADE B 1:9 px=100 q=4 lv=1 vs 2:1 mlv=2 t=1", "TRADE B 1:9 px=100 q=1 lv=0 vs 2:3 mlv=0 t=2"],
                  [(1, 100, 1, 2, 2, 0), (1, 100, 2, 1, 3, 0), (1, 101, 4, 1, 5, 0)]),
}


@pytest.mark.parametrize("mode", list(PRORATA_EXPECTED))
def test_stp_prorata(mode):
    ex = prorata_book()
    events, left = PRORATA_EXPECTED[mode]
    assert run(ex, new("buy", 5, 101, oid=9, acct=1, stp=mode)) == ["ACCEPTED B 1:9 px=101 q=5 lv=5"] + events
    assert l3_rows(ex) == left


@pytest.mark.parametrize("mode, tail", [
    ("cancel_taker", ["CANCELLED B 1:9 px=101 q=3 lv=0 STP_CANCEL"]),
    ("cancel_both", ["CANCELLED B 1:9 px=101 q=3 lv=0 STP_CANCEL"]),
    # decrement: the rest of the taker meets the own order 1:2 (3 lots): both go
    ("decrement", ["CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL", "CANCELLED B 1:9 px=101 q=3 lv=0 STP_CANCEL"]),
])
def test_stp_prorata_taker_larger_than_the_others(mode, tail):
    ex = prorata_book()
    out = run(ex, new("buy", 10, 101, oid=9, acct=1, stp=mode))
    pre = ["CANCELLED S 1:2 px=100 q=3 lv=0 STP_CANCEL"] if mode == "cancel_both" else []
    assert out == ["ACCEPTED B 1:9 px=101 q=10 lv=10"] + pre + [
        "TRADE B 1:9 px=100 q=6 lv=4 vs 2:1 mlv=0 t=1",
        "TRADE B 1:9 px=100 q=1 lv=3 vs 2:3 mlv=0 t=2",
    ] + tail
