"""The blocked sorted book of the Binance kernel against a dict, under random operations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.feeds.builders import _binance_kernel as K
from shardex.feeds.builders.binance import BinanceBook

ops = st.lists(
    st.tuples(st.integers(0, 1), st.integers(1, 2000), st.integers(0, 3)),  # side, price, qty (0 deletes)
    min_size=1,
    max_size=2500,
)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_blocked_book_matches_a_dict(seq):
    book = BinanceBook("t", "x", True, capacity=64)  # 1 block per side at first: splits and frees are exercised
    st_ = book._st
    st_[K.S_PHASE] = K.PH_SYNCED  # views read a synced book
    ref: list[dict[int, int]] = [{}, {}]
    for side, px, qty in seq:
        key = px if side == 0 else -px
        if st_[K.S_NFREE + side] < 2 or 2 * (st_[K.S_NB + side] + 1) > book._hs.shape[2]:
            st_[K.S_NEED] = 2  # what the kernel asks for before a level that may split a block
            book._grow_book()
        assert st_[K.S_NFREE + side] >= 2 and 2 * (st_[K.S_NB + side] + 1) <= book._hs.shape[2]
        K._upsert(book._bk, book._hs, book._meta, st_, side, key, qty)
        if qty:
            ref[side][px] = qty
        else:
            ref[side].pop(px, None)
        book._check()
    bids, asks = book.levels()
    assert bids.tolist() == [[p, q] for p, q in sorted(ref[0].items(), reverse=True)]
    assert asks.tolist() == [[p, q] for p, q in sorted(ref[1].items())]


def test_message_interface_grows_and_reports():
    b = BinanceBook("binance-futures:X", "x", True, capacity=64)
    bids = ",".join(f'["{100 - i * 0.5:.1f}","1"]' for i in range(150))
    asks = ",".join(f'["{101 + i * 0.5:.1f}","2"]' for i in range(150))
    b.on_snapshot(f'{{"lastUpdateId":10,"bids":[{bids}],"asks":[{asks}]}}'.encode(), 1, "rest#1")
    assert not b.synced  # loaded, waiting for the diff that bridges it
    b.on_message(b'{"e":"depthUpdate","s":"X","U":9,"u":12,"pu":8,"b":[["100.0","0"]],"a":[]}', 2, "ws#1")
    assert b.synced and b.best() == (995, 1, 1010, 2)
    b.on_message(b'{"e":"depthUpdate","s":"X","U":14,"u":15,"pu":13,"b":[],"a":[]}', 3, "ws#2")
    assert not b.synced and b.stats()["gaps"] == 1
    assert str(b.problems[-1]).startswith("ws#2: gap")
    assert np.all(b.levels()[0] == np.zeros((0, 2)))
