"""An invariant checker for a matching shard, in the spirit of sortedcontainers' ``_check()``.

``check_shard(shard)`` walks every array of a ``MatchingShard``'s state and
raises ``AssertionError`` naming the first broken invariant.  Property tests
call it after every command; it is plain Python over numpy arrays, so it is
slow (O(pool + index + ladders) per call) and meant for tests and debugging,
never for the hot path.

Invariants checked:

* ladders: each (book, side) ladder is strictly sorted, its keys agree with
  its levels' prices (``price`` for bids, ``-price`` for asks), no level is
  listed twice or empty, and no book is crossed (best bid < best ask);
* levels: ``L_QTY`` is the sum of its live orders' displayed quantity,
  ``L_COUNT`` their number, ``L_DEAD`` the number of dead (lazily cancelled)
  rows in its queue;
  ``L_HEAD``/``L_TAIL``/``O_PREV``/``O_NEXT`` form one consistent
  doubly-linked list, every row points back with ``O_LEVEL``, a dead row
  shows no quantity;
* resting orders: displayed quantity > 0, hidden >= 0, an iceberg shows at
  most its peak and only icebergs have a reserve, side/book/price agree with
  the level, no market or stop order rests;
* stops: each book's stop list is a consistent doubly-linked list of
  untriggered stop orders (``O_LEVEL == -1``) whose count and quantity are
  ``B_STOPS`` and ``B_STOP_QTY``, and none of them should already have
  triggered at the book's last trade price;
* counters: ``B_ORDERS`` and ``B_REFILLS`` agree with a recount;
* pools: the order and level free lists are acyclic, hold no live row, and
  together with the live and dead rows cover each pool exactly
  (``M_ORDERS_USED``, ``M_DEAD_ORDERS``);
* index: every live order is in the (account, order id) index exactly once,
  with its key's hash bits, found by a probe from its home slot; the index
  has no stale or duplicate entries, ``M_INDEX_USED`` agrees with a recount
  and ``M_INDEX_TOMB`` is 0 (deletion shifts back, it never leaves tombstones).
"""

from __future__ import annotations

import numpy as np

# The index module's own hash and cell layout, so the checker never drifts from them.
from shardex.book.index import ROW_MASK, index_hash
from shardex.book.layout import (
    B_HAS_LAST, B_LAST, B_ORDERS, B_REFILLS, B_STOP_HEAD, B_STOP_QTY, B_STOP_TAIL, B_STOPS,
    C_BOOK, C_PRICE, C_SIDE, C_STOP, C_TYPE, DEAD,
    H_EMPTY, H_KEY, H_OID,
    L_COUNT, L_DEAD, L_HEAD, L_NEXT, L_PRICE, L_QTY, L_TAIL,
    M_DEAD_ORDERS, M_FREE_LEVEL, M_FREE_ORDER, M_FRESH_LEVEL, M_FRESH_ORDER, M_INDEX_TOMB, M_INDEX_USED, M_ORDERS_USED,
    NIL, O_ACCOUNT, O_HIDDEN, O_LEVEL, O_NEXT, O_OID, O_PEAK, O_PREV, O_QTY,
)

__all__ = ["check_shard", "check_state"]

# Order types, mirrored from shardex.schema.OrderType.
_LIMIT, _MARKET, _STOP_MARKET, _STOP_LIMIT = 0, 1, 2, 3


def _refills(hidden: int, peak: int) -> int:
    if peak <= 0 or hidden <= 0:
        return 0
    return (hidden + peak - 1) // peak


def _walk_free(nxt_col: np.ndarray, head: int, cap: int, what: str) -> set[int]:
    free: set[int] = set()
    r = head
    while r != NIL:
        assert 0 <= r < cap, f"{what} free list: row {r} out of range [0, {cap})"
        assert r not in free, f"{what} free list: cycle at row {r}"
        free.add(r)
        r = int(nxt_col[r])
    return free


def check_shard(shard) -> None:
    """Raise ``AssertionError`` if any invariant of ``shard``'s books is broken.

    Runtime complexity: O(pool rows + index cells + ladder entries).
    """
    check_state(shard.state, getattr(shard, "inst_of_book", None))


def check_state(st, inst_of_book=None) -> None:  # noqa: C901 - one long, flat list of checks
    """``check_shard`` on a bare ``BookState``."""
    orders, ocold, levels = st.orders, st.ocold, st.levels
    books, meta, index = st.books, st.meta, st.index
    lad_key, lad_lv, lad_n = st.lad_key, st.lad_lv, st.lad_n
    cap = len(orders)
    nbooks = books.shape[0]

    def name(b: int) -> str:
        if inst_of_book is not None and b < len(inst_of_book):
            return f"book {b} (instrument {int(inst_of_book[b])})"
        return f"book {b}"

    assert len(ocold) == cap and len(levels) == cap, \
        f"pool arrays disagree in length: orders {cap}, ocold {len(ocold)}, levels {len(levels)}"
    assert lad_key.shape == lad_lv.shape, f"ladder arrays differ in shape: {lad_key.shape} vs {lad_lv.shape}"
    assert lad_key.shape[0] == 2 * nbooks and lad_n.shape[0] == 2 * nbooks, \
        f"ladders have {lad_key.shape[0]} rows and lad_n {lad_n.shape[0]}, expected {2 * nbooks}"
    width = lad_key.shape[1]

    # -- pools -----------------------------------------------------------------
    fresh_o, fresh_l = int(meta[M_FRESH_ORDER]), int(meta[M_FRESH_LEVEL])
    assert 0 <= fresh_o <= cap and 0 <= fresh_l <= cap, \
        f"never-used tails start at order row {fresh_o} and level row {fresh_l}, capacity {cap}"
    # Released rows are on the free lists; rows from M_FRESH_* on were never used.
    free_orders = _walk_free(orders[:, O_NEXT], int(meta[M_FREE_ORDER]), fresh_o, "order")
    free_levels = _walk_free(levels[:, L_NEXT], int(meta[M_FREE_LEVEL]), fresh_l, "level")

    live: dict[int, str] = {}      # order row -> where it lives ("book b side s" / "stops of book b")
    dead: set[int] = set()         # lazily cancelled rows still linked in a queue
    used_levels: set[int] = set()

    # -- ladders and levels ------------------------------------------------------
    for b in range(nbooks):
        bn = name(b)
        resting = 0
        refills = 0
        best = [None, None]
        for side in range(2):
            row = 2 * b + side
            n = int(lad_n[row])
            sname = "bid" if side == 0 else "ask"
            assert 0 <= n <= width, f"{bn} {sname} ladder: lad_n={n} outside [0, {width}]"
            keys = lad_key[row, :n]
            if n > 1:
                bad = np.nonzero(np.diff(keys) <= 0)[0]
                assert len(bad) == 0, (f"{bn} {sname} ladder not strictly sorted at position {int(bad[0])}: "
                                       f"keys {keys[max(0, bad[0] - 1): bad[0] + 3].tolist()}")
            for pos in range(n):
                lv = int(lad_lv[row, pos])
                assert 0 <= lv < cap, f"{bn} {sname} ladder position {pos}: level row {lv} out of range"
                assert lv not in used_levels, f"{bn} {sname} ladder position {pos}: level row {lv} listed twice"
                assert lv not in free_levels, f"{bn} {sname} ladder position {pos}: level row {lv} is on the free list"
                used_levels.add(lv)
                price = int(levels[lv, L_PRICE])
                key = price if side == 0 else -price
                assert int(keys[pos]) == key, (f"{bn} {sname} ladder position {pos}: key {int(keys[pos])} but level "
                                               f"{lv} has price {price} (expected key {key})")
                count = int(levels[lv, L_COUNT])
                assert count > 0, f"{bn} {sname} level {lv} at price {price} is empty (count {count}) but listed"
                n_dead = int(levels[lv, L_DEAD])
                assert n_dead >= 0, f"{bn} {sname} level {lv} at price {price}: L_DEAD={n_dead}"
                # walk the queue
                o = int(levels[lv, L_HEAD])
                prev = NIL
                k = 0
                k_dead = 0
                qty_sum = 0
                while o != NIL:
                    where = f"{bn} {sname} level {lv} @ {price}, queue position {k + k_dead}, order row {o}"
                    assert 0 <= o < cap, f"{where}: row out of range"
                    assert k + k_dead < count + n_dead + 1, f"{where}: queue longer than L_COUNT+L_DEAD={count + n_dead} (cycle?)"
                    assert o not in live and o not in dead, f"{where}: order row already seen"
                    assert o not in free_orders, f"{where}: order row is on the free list"
                    assert int(orders[o, O_PREV]) == prev, \
                        f"{where}: O_PREV={int(orders[o, O_PREV])}, expected {prev}"
                    assert int(orders[o, O_LEVEL]) == lv, f"{where}: O_LEVEL={int(orders[o, O_LEVEL])}, expected {lv}"
                    if int(orders[o, O_ACCOUNT]) == DEAD:
                        assert int(orders[o, O_QTY]) == 0 and int(orders[o, O_HIDDEN]) == 0, \
                            f"{where}: dead row shows qty {int(orders[o, O_QTY])} and hidden {int(orders[o, O_HIDDEN])}"
                        dead.add(o)
                        k_dead += 1
                        prev = o
                        o = int(orders[o, O_NEXT])
                        continue
                    live[o] = f"{bn} {sname} level {lv}"
                    assert int(ocold[o, C_BOOK]) == b, f"{where}: C_BOOK={int(ocold[o, C_BOOK])}"
                    assert int(ocold[o, C_SIDE]) == side, f"{where}: C_SIDE={int(ocold[o, C_SIDE])}"
                    assert int(ocold[o, C_PRICE]) == price, f"{where}: C_PRICE={int(ocold[o, C_PRICE])} != level price"
                    typ = int(ocold[o, C_TYPE])
                    assert typ == _LIMIT, f"{where}: an order of type {typ} rests (only limit orders may)"
                    q = int(orders[o, O_QTY])
                    hidden = int(orders[o, O_HIDDEN])
                    peak = int(orders[o, O_PEAK])
                    assert q > 0, f"{where}: resting with displayed qty {q}"
                    assert hidden >= 0, f"{where}: negative hidden qty {hidden}"
                    assert peak >= 0, f"{where}: negative peak {peak}"
                    if hidden > 0:
                        assert peak > 0, f"{where}: hidden qty {hidden} on an order without a peak"
                    if peak > 0:
                        assert q <= peak, f"{where}: iceberg shows {q} > its peak {peak}"
                    qty_sum += q
                    refills += _refills(hidden, peak)
                    prev = o
                    o = int(orders[o, O_NEXT])
                    k += 1
                where = f"{bn} {sname} level {lv} @ {price}"
                assert k == count, f"{where}: L_COUNT={count} but {k} live orders in its queue"
                assert k_dead == n_dead, f"{where}: L_DEAD={n_dead} but {k_dead} dead rows in its queue"
                assert int(levels[lv, L_TAIL]) == prev, f"{where}: L_TAIL={int(levels[lv, L_TAIL])}, last order is {prev}"
                assert int(levels[lv, L_QTY]) == qty_sum, \
                    f"{where}: L_QTY={int(levels[lv, L_QTY])} but its orders display {qty_sum}"
                resting += k
            if n:
                best[side] = int(levels[int(lad_lv[row, n - 1]), L_PRICE])
        if best[0] is not None and best[1] is not None:
            assert best[0] < best[1], f"{bn} is crossed: best bid {best[0]} >= best ask {best[1]}"
        assert int(books[b, B_ORDERS]) == resting, f"{bn}: B_ORDERS={int(books[b, B_ORDERS])}, recount {resting}"
        assert int(books[b, B_REFILLS]) == refills, f"{bn}: B_REFILLS={int(books[b, B_REFILLS])}, recount {refills}"

        # -- stops -------------------------------------------------------------
        o = int(books[b, B_STOP_HEAD])
        prev = NIL
        k = 0
        stop_qty = 0
        has_last = int(books[b, B_HAS_LAST]) == 1
        last = int(books[b, B_LAST])
        nstops = int(books[b, B_STOPS])
        while o != NIL:
            where = f"{bn} stop list position {k}, order row {o}"
            assert 0 <= o < cap, f"{where}: row out of range"
            assert k <= nstops, f"{where}: stop list longer than B_STOPS={nstops} (cycle?)"
            assert o not in live, f"{where}: order already seen in {live[o]}"
            assert o not in free_orders, f"{where}: order row is on the free list"
            live[o] = f"stops of {bn}"
            assert int(orders[o, O_PREV]) == prev, f"{where}: O_PREV={int(orders[o, O_PREV])}, expected {prev}"
            assert int(orders[o, O_LEVEL]) == NIL, f"{where}: untriggered stop has O_LEVEL={int(orders[o, O_LEVEL])}"
            assert int(ocold[o, C_BOOK]) == b, f"{where}: C_BOOK={int(ocold[o, C_BOOK])}"
            typ = int(ocold[o, C_TYPE])
            assert typ in (_STOP_MARKET, _STOP_LIMIT), f"{where}: type {typ} in the stop list"
            q = int(orders[o, O_QTY])
            assert q > 0, f"{where}: stop with qty {q}"
            assert int(orders[o, O_HIDDEN]) == 0, f"{where}: stop with hidden qty {int(orders[o, O_HIDDEN])}"
            stop = int(ocold[o, C_STOP])
            assert stop > 0, f"{where}: stop price {stop}"
            if has_last:
                side = int(ocold[o, C_SIDE])
                due = last >= stop if side == 0 else last <= stop
                assert not due, f"{where}: side {side} stop at {stop} should have triggered at last price {last}"
            stop_qty += q
            prev = o
            o = int(orders[o, O_NEXT])
            k += 1
        assert k == nstops, f"{bn}: B_STOPS={nstops} but {k} orders in the stop list"
        assert int(books[b, B_STOP_TAIL]) == prev, f"{bn}: B_STOP_TAIL={int(books[b, B_STOP_TAIL])}, last stop is {prev}"
        assert int(books[b, B_STOP_QTY]) == stop_qty, f"{bn}: B_STOP_QTY={int(books[b, B_STOP_QTY])}, recount {stop_qty}"

    # -- pool accounting ---------------------------------------------------------
    used = int(meta[M_ORDERS_USED])
    assert len(live) == used, f"M_ORDERS_USED={used} but {len(live)} orders are live (resting or stops)"
    assert len(dead) == int(meta[M_DEAD_ORDERS]), \
        f"M_DEAD_ORDERS={int(meta[M_DEAD_ORDERS])} but {len(dead)} dead rows are linked"
    assert len(free_orders) + used + len(dead) == fresh_o, \
        f"order pool leaks: {len(free_orders)} free + {used} live + {len(dead)} dead != {fresh_o} rows ever used"
    assert len(free_levels) + len(used_levels) == fresh_l, \
        f"level pool leaks: {len(free_levels)} free + {len(used_levels)} in ladders != {fresh_l} rows ever used"

    # -- index ---------------------------------------------------------------------
    hcap = index.shape[0]
    assert hcap >= 16 and hcap & (hcap - 1) == 0, f"index capacity {hcap} is not a power of two >= 16"
    assert index.ndim == 2 and index.shape[1] == 2, f"index has shape {index.shape}, expected (cells, 2)"
    keys = index[:, H_KEY]
    n_live = int(np.count_nonzero(keys >= 0))
    n_bad = int(np.count_nonzero((keys < 0) & (keys != H_EMPTY)))
    assert n_bad == 0, f"index holds {n_bad} cells with an invalid key code"
    assert n_live == int(meta[M_INDEX_USED]), f"M_INDEX_USED={int(meta[M_INDEX_USED])}, recount {n_live}"
    assert int(meta[M_INDEX_TOMB]) == 0, f"M_INDEX_TOMB={int(meta[M_INDEX_TOMB])}, but the index never holds tombstones"
    assert n_live < hcap, f"index has no empty cell ({n_live} live, {hcap} cells)"
    seen_rows: dict[int, int] = {}
    seen_keys: dict[tuple[int, int, int], int] = {}  # (account, order id, book): ids are unique per book
    for cell in np.nonzero(keys >= 0)[0]:
        cell = int(cell)
        oid, key = int(index[cell, H_OID]), int(index[cell, H_KEY])
        r, h = key & ROW_MASK, key >> 32
        where = f"index cell {cell} (order id {oid}) -> row {r}"
        assert r in live, f"{where}: stale entry, row {r} is not a live order"
        assert r not in seen_rows, f"{where}: row already indexed by cell {seen_rows[r]}"
        acct = int(orders[r, O_ACCOUNT])
        assert int(orders[r, O_OID]) == oid, f"{where}: the row holds order id {int(orders[r, O_OID])}"
        assert h == int(index_hash(acct, oid)), f"{where}: hash bits {h} are not those of (account {acct}, order id {oid})"
        key3 = (acct, oid, int(ocold[r, C_BOOK]))
        assert key3 not in seen_keys, f"{where}: key already in cell {seen_keys[key3]}"
        seen_rows[r] = cell
        seen_keys[key3] = cell
        # The entry must be reachable by a probe from its home slot: no empty cell in between.
        i = h & (hcap - 1)
        steps = 0
        while i != cell:
            assert int(index[i, H_KEY]) != H_EMPTY, f"{where}: unreachable, empty cell {i} on its probe path"
            i = (i + 1) & (hcap - 1)
            steps += 1
            assert steps <= hcap, f"{where}: probe never reaches it"
    missing = sorted(set(live) - set(seen_rows))
    assert not missing, f"live order rows {missing[:5]} ({live[missing[0]]}) are not in the index"
