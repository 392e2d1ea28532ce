"""The invariant checker passes on healthy books and names each kind of corruption."""

from __future__ import annotations

import pytest

from shardex.book import layout as L
from shardex.book.index import ROW_MASK
from shardex.book.check import check_shard

from .helpers import make_exchange, new, run


def healthy():
    ex = make_exchange()
    run(ex,
        new("buy", 3, 99, oid=1, acct=1), new("buy", 4, 99, oid=2, acct=2), new("buy", 2, 98, oid=3, acct=1),
        new("sell", 9, 101, oid=4, acct=1, display_qty=3), new("sell", 5, 102, oid=5, acct=2),
        new("buy", 1, oid=6, acct=3, type="stop_market", tif="ioc", stop_price=150),
        new("sell", 2, 95, oid=7, acct=3, type="stop_limit", stop_price=90))
    shard = ex.shards[0]
    check_shard(shard)
    return shard, shard.state


def lv_at(st, side, pos_from_top=0):
    return int(st.lad_lv[side, st.lad_n[side] - 1 - pos_from_top])


def row_of(st, acct, oid):
    from shardex.book.index import index_find
    return int(index_find(st.index, st.orders, acct, oid))


CORRUPTIONS = {
    "crossed": (lambda st: (st.levels.__setitem__((lv_at(st, 1), L.L_PRICE), 99),
                            st.ocold.__setitem__((row_of(st, 1, 4), L.C_PRICE), 99),
                            st.lad_key.__setitem__((1, st.lad_n[1] - 1), -99)), "crossed"),
    "unsorted": (lambda st: st.lad_key.__setitem__((0, 0), 10**6), "not strictly sorted"),
    "key vs price": (lambda st: st.levels.__setitem__((lv_at(st, 0), L.L_PRICE), 97), "key"),
    "level qty": (lambda st: st.levels.__setitem__((lv_at(st, 0), L.L_QTY), 8), "L_QTY"),
    "level count": (lambda st: st.levels.__setitem__((lv_at(st, 0), L.L_COUNT), 3), "L_COUNT"),
    "tail": (lambda st: st.levels.__setitem__((lv_at(st, 0), L.L_TAIL), row_of(st, 1, 1)), "L_TAIL"),
    "prev link": (lambda st: st.orders.__setitem__((row_of(st, 2, 2), L.O_PREV), L.NIL), "O_PREV"),
    "order level": (lambda st: st.orders.__setitem__((row_of(st, 1, 1), L.O_LEVEL), lv_at(st, 0, 1)), "O_LEVEL"),
    "zero qty": (lambda st: (st.orders.__setitem__((row_of(st, 2, 5), L.O_QTY), 0),
                             st.levels.__setitem__((lv_at(st, 1, 1), L.L_QTY), 0)), "displayed qty 0"),
    "market rests": (lambda st: st.ocold.__setitem__((row_of(st, 1, 1), L.C_TYPE), 1), "type 1 rests"),
    "book orders": (lambda st: st.books.__setitem__((0, L.B_ORDERS), 4), "B_ORDERS"),
    "book stops": (lambda st: st.books.__setitem__((0, L.B_STOPS), 3), "B_STOPS"),
    "stop qty": (lambda st: st.books.__setitem__((0, L.B_STOP_QTY), 7), "B_STOP_QTY"),
    "refills": (lambda st: st.books.__setitem__((0, L.B_REFILLS), 0), "B_REFILLS"),
    "orders used": (lambda st: st.meta.__setitem__(L.M_ORDERS_USED, 6), "M_ORDERS_USED"),
    "index used": (lambda st: st.meta.__setitem__(L.M_INDEX_USED, 8), "M_INDEX_USED"),
    "free and live": (lambda st: st.meta.__setitem__(L.M_FREE_ORDER, row_of(st, 1, 1)), "free list"),
    "stale index": (lambda st: _stale(st), "stale"),
    "missing index": (lambda st: _drop_index(st, 2, 5), "not in the index"),
    "stop due": (lambda st: (st.books.__setitem__((0, L.B_HAS_LAST), 1),
                             st.books.__setitem__((0, L.B_LAST), 200)), "should have triggered"),
}


def _find_cell(st, acct, oid):
    row = row_of(st, acct, oid)
    for i in range(len(st.index)):
        if st.index[i, L.H_KEY] >= 0 and st.index[i, L.H_KEY] & ROW_MASK == row:
            return i
    raise LookupError


def _stale(st):
    cell = _find_cell(st, 2, 5)
    free = int(st.meta[L.M_FREE_ORDER])
    if free == L.NIL:  # nothing released yet: point at a never-used row instead
        free = int(st.meta[L.M_FRESH_ORDER])
    st.index[cell, L.H_KEY] = (int(st.index[cell, L.H_KEY]) >> 32) << 32 | free


def _drop_index(st, acct, oid):
    from shardex.book.index import index_delete

    index_delete(st.index, st.meta, acct, oid, row_of(st, acct, oid))


@pytest.mark.parametrize("what", list(CORRUPTIONS))
def test_checker_names_the_corruption(what):
    shard, st = healthy()
    corrupt, message = CORRUPTIONS[what]
    corrupt(st)
    with pytest.raises(AssertionError, match=message):
        check_shard(shard)


def test_checker_passes_on_an_empty_shard():
    ex = make_exchange()
    check_shard(ex.shards[0])
