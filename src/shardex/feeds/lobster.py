"""LOBSTER replay: real NASDAQ order flow through the matching engine, checked level by level.

A LOBSTER pair is a *message* file (one event per row: time, type, order id,
size, price, direction) and an *orderbook* file (the top N occupied levels
after each message).  ``replay_lobster`` drives every message through an
``Exchange`` and, after every single message, compares the engine's top N
levels (price and size, both sides) with the orderbook row.

>>> from shardex.feeds.lobster import replay_lobster, sample_pair
>>> msg, book = sample_pair()
>>> r = replay_lobster(msg, book)
>>> r.ok, r.mismatches, r.executions_matched == r.executions
(True, 0, True)

How messages become commands (accounts: ``REAL`` for orders seen in the file,
``PLACEHOLDER`` for liquidity the file never showed being submitted,
``AGGRESSOR`` for the takers of executions):

* type 1 (submission): a GTC limit order of ``REAL`` keyed by the LOBSTER id;
* type 2 (partial cancel): an amend to a smaller quantity (keeps priority);
* type 3 (deletion): a cancel;
* type 4 (visible execution): an IOC limit order from the other side at the
  message price for the message size.  The named order (or, for an id never
  seen, placeholder liquidity) is brought to the head of its level first, and
  the TRADE events' maker ids prove that exactly it was consumed;
* type 5 (hidden execution) and 7 (halt): counted, no command (they do not
  change the visible book).

Placeholders (the design, see docs/lobster.md):

* **Seed.**  Row 1 is the book *after* message 1, so the seed is row 1 with
  message 1 undone (a submission's size taken off its level; a cancel's,
  delete's or execution's size put back), one placeholder order per level.
  Seeds are the oldest orders at their level, so they sit at the head.
* **Unknown ids.**  Cancels, deletes and executions of orders never seen
  submitted (they rested before 09:30, or arrived while their level was
  outside the N visible levels) take from placeholder liquidity at that
  price.
* **The window.**  A level-N file holds only messages touching the top N
  levels.  When a level leaves the top N, its later changes are invisible;
  when the window moves deeper (a visible level empties), the levels it
  uncovers are described by no message.  Only that *newly uncovered price
  range* (deeper than the previous row's last level, up to the current
  row's last level) is set from the orderbook row: a placeholder is added
  (at the back: its orders are newer than the known ones) or placeholder
  and then stale known orders are removed.  Stale known orders are chosen
  with the file's own lookahead: an order that no later message names
  ended invisibly, so it goes first.  Everything else in the window must
  match from the messages alone, and is compared after every message.

The whole day runs in one numba kernel that calls the engine's own
``process_commands`` once per command and compares the ladders with the row
in place, so a 150k-message file takes well under a second once compiled.
"""

from __future__ import annotations

import gzip
import io
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numba import njit

from shardex.book.index import index_find
from shardex.book.ladder import ladder_search
from shardex.book.layout import (
    BookState,
    C_PRICE, C_SIDE, DEAD, L_COUNT, L_HEAD, L_PRICE, L_QTY, L_TAIL, M_DEAD_ORDERS, M_INDEX_TOMB, M_INDEX_USED, M_ORDERS_USED, NIL, O_ACCOUNT, O_NEXT, O_OID,
    O_PREV, O_QTY, ST_DONE,
)
from shardex.book.matching import process_commands
from shardex.engine.exchange import Exchange
from shardex.errors import MalformedInputError
from shardex.instruments import Instrument
from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE

__all__ = [
    "AGGRESSOR",
    "PLACEHOLDER",
    "REAL",
    "LobsterData",
    "ReplayResult",
    "read_lobster",
    "replay_lobster",
    "sample_pair",
]

#: Account of the orders the message file shows being submitted (order id = LOBSTER id).
REAL = 1
#: Account of placeholder liquidity: orders the file never showed being submitted.
PLACEHOLDER = 2
#: Account of the IOC takers that replay visible executions.
AGGRESSOR = 3

#: LOBSTER's price unit: US dollars x 10,000.
PRICE_SCALE = 10_000
#: Filler LOBSTER writes for an empty level (ask; the bid filler is its negative).
EMPTY_PRICE = 9_999_999_999

_MESSAGE_TYPES = (1, 2, 3, 4, 5, 6, 7)
_NAME_RE = re.compile(r"(?P<sym>[A-Za-z0-9.]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_(?:message|orderbook)_(?P<lv>\d+)")


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LobsterData:
    """One parsed LOBSTER pair, in LOBSTER's own units (prices $ x 10,000, sizes shares).

    Attributes
    ----------
    time
        Seconds after midnight, New York time (float64), per message.
    mtype, order_id, size, price, direction
        The message columns (int64); ``direction`` 1 is a resting buy, -1 a resting sell.
    ask_price, ask_size, bid_price, bid_size
        (messages x levels) int64 arrays of the orderbook file, best first.
    symbol, date
        From the file name when it follows LOBSTER's pattern ("LOBSTER", None otherwise).
    """

    message_path: str
    orderbook_path: str
    time: np.ndarray
    mtype: np.ndarray
    order_id: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray
    ask_price: np.ndarray
    ask_size: np.ndarray
    bid_price: np.ndarray
    bid_size: np.ndarray
    symbol: str = "LOBSTER"
    date: str | None = None

    @property
    def levels(self) -> int:
        """Levels per side in the orderbook file."""
        return int(self.ask_price.shape[1])

    def __len__(self) -> int:
        return len(self.mtype)


def _open_text(path: Path | str | io.StringIO) -> tuple[str, str]:
    """(name, text) of a path (``.gz`` is decompressed) or an in-memory text buffer."""
    if isinstance(path, io.StringIO):
        return getattr(path, "name", "<memory>"), path.getvalue()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"LOBSTER file not found: {p}") from None
    if p.suffix == ".gz":
        raw = gzip.decompress(raw)
    return str(p), raw.decode("ascii", errors="replace")


def _first_bad_line(name: str, text: str, ncols: int, what: str, float_first: bool) -> MalformedInputError:
    """The error for the first row that is not ``ncols`` numbers (slow path, only on failure)."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.strip().split(",")
        if len(parts) != ncols:
            return MalformedInputError(f"{name}:{lineno}: {what} row has {len(parts)} columns, expected {ncols}: {line[:80]!r}")
        for j, cell in enumerate(parts):
            try:
                float(cell) if (float_first and j == 0) else int(cell)
            except ValueError:
                return MalformedInputError(f"{name}:{lineno}: column {j + 1} of the {what} row is not a number: {cell!r}")
    return MalformedInputError(f"{name}: cannot parse the {what} file")


def _parse(name: str, text: str, ncols: int | None, what: str, float_first: bool) -> np.ndarray:
    """Parse a headerless all-numeric CSV quickly; on any problem name the first bad line."""
    if not text.strip():
        raise MalformedInputError(f"{name}:1: the {what} file is empty")
    first = text.split("\n", 1)[0].strip()
    width = len(first.split(","))
    if ncols is None:
        ncols = width
    if width != ncols:
        raise MalformedInputError(f"{name}:1: {what} row has {width} columns, expected {ncols}: {first[:80]!r}")
    # One C pass with numpy; every value goes through float64 first, which
    # is exact for LOBSTER's integers (all below 2**53).
    try:
        arr = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        raise _first_bad_line(name, text, ncols, what, float_first) from None
    if arr.shape[1] != ncols:
        raise _first_bad_line(name, text, ncols, what, float_first)
    if not float_first:
        bad = np.flatnonzero(np.any(arr != np.floor(arr), axis=1))
        if len(bad):
            raise MalformedInputError(f"{name}:{bad[0] + 1}: the {what} row holds a non-integer value")
    return arr


def read_lobster(message_path: Path | str | io.StringIO, orderbook_path: Path | str | io.StringIO,
                 levels: int | None = None) -> LobsterData:
    """Read and validate a LOBSTER message/orderbook pair.

    Raises ``FileNotFoundError`` for a missing file and
    ``shardex.errors.MalformedInputError`` (naming file and line) for a row
    with the wrong column count, a non-number, an unknown message type, a bad
    direction, a non-positive size or price, row counts that differ, or a
    ``levels`` that disagrees with the orderbook's columns.

    Runtime: O(rows); parsing dominates (about 1 s per 100 MB of text).
    """
    mname, mtext = _open_text(message_path)
    bname, btext = _open_text(orderbook_path)
    m = _parse(mname, mtext, 6, "message", True)
    b = _parse(bname, btext, None, "orderbook", False)
    if b.shape[1] % 4:
        raise MalformedInputError(f"{bname}:1: an orderbook row has 4 columns per level, found {b.shape[1]}")
    nlev = b.shape[1] // 4
    if levels is not None and levels != nlev:
        raise MalformedInputError(f"{bname}:1: --levels {levels} but the orderbook file has {nlev} levels per row")
    if len(m) != len(b):
        raise MalformedInputError(f"{mname}: {len(m)} messages but {bname} has {len(b)} rows; they must pair up")
    mtype = m[:, 1].astype(np.int64)
    oid = m[:, 2].astype(np.int64)
    size = m[:, 3].astype(np.int64)
    price = m[:, 4].astype(np.int64)
    direction = m[:, 5].astype(np.int64)
    if np.any(m[:, 1:] != np.floor(m[:, 1:])):
        bad = int(np.flatnonzero(np.any(m[:, 1:] != np.floor(m[:, 1:]), axis=1))[0])
        raise MalformedInputError(f"{mname}:{bad + 1}: message columns 2-6 must be integers")
    checks = (
        (~np.isin(mtype, _MESSAGE_TYPES), "unknown message type (expected 1-7)"),
        ((mtype <= 5) & (direction != 1) & (direction != -1), "direction must be 1 (buy) or -1 (sell)"),
        ((mtype <= 4) & (size <= 0), "size must be positive"),
        ((mtype <= 4) & (price <= 0), "price must be positive"),
        (np.r_[False, np.diff(m[:, 0]) < 0], "time goes backwards"),
    )
    for mask, why in checks:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise MalformedInputError(f"{mname}:{i + 1}: {why}: {mtext.splitlines()[i][:80]!r}")
    bi = b.astype(np.int64)
    ask_p, ask_q, bid_p, bid_q = bi[:, 0::4], bi[:, 1::4], bi[:, 2::4], bi[:, 3::4]
    bad = (ask_q < 0) | (bid_q < 0) | ((ask_q > 0) & (ask_p <= 0)) | ((bid_q > 0) & (bid_p <= 0))
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise MalformedInputError(f"{bname}:{i + 1}: negative size or non-positive price on an occupied level")
    sym, date = "LOBSTER", None
    hit = _NAME_RE.search(Path(mname).name) if not isinstance(message_path, io.StringIO) else None
    if hit:
        sym, date = hit["sym"], hit["date"]
    return LobsterData(mname, bname, m[:, 0].copy(), mtype, oid, size, price, direction,
                       np.ascontiguousarray(ask_p), np.ascontiguousarray(ask_q),
                       np.ascontiguousarray(bid_p), np.ascontiguousarray(bid_q), sym, date)


# ---------------------------------------------------------------------------
# the replay kernel
# ---------------------------------------------------------------------------
# stats slots (one int64 array shared with the kernel)
(S_SEQ, S_NEXT_PH, S_NEXT_AGG, S_EXEC, S_EXEC_NAMED, S_EXEC_PH, S_EXEC_BAD, S_MISMATCH, S_REQUEUE, S_REFILL,
 S_REFILL_LOTS, S_CLEAR_LOTS, S_STALE, S_STALE_LOTS, S_UNKNOWN_CANCEL, S_UNKNOWN_CANCEL_LOTS, S_SIZE_DISAGREE,
 S_FORCED, S_REJECT, S_DUPLICATE, S_NSTATS) = range(21)

_STAT_NAMES = {
    S_EXEC_NAMED: "executions_of_named_orders",
    S_EXEC_PH: "placeholder_hits",
    S_EXEC_BAD: "execution_mismatches",
    S_REQUEUE: "requeued_orders",
    S_REFILL: "window_refills",
    S_REFILL_LOTS: "window_refill_shares",
    S_CLEAR_LOTS: "window_cleared_shares",
    S_STALE: "stale_orders_removed",
    S_STALE_LOTS: "stale_shares_removed",
    S_UNKNOWN_CANCEL: "unknown_id_cancels",
    S_UNKNOWN_CANCEL_LOTS: "unknown_id_cancel_shares",
    S_SIZE_DISAGREE: "size_disagreements",
    S_FORCED: "forced_removals",
    S_REJECT: "engine_rejects",
    S_DUPLICATE: "duplicate_submissions",
}

K_NEW, K_CANCEL, K_AMEND = 1, 2, 3
TIF_GTC, TIF_IOC = 0, 1
E_REJECTED, E_TRADE = 2, 3
# kernel return codes
RC_DONE, RC_GROW = 0, 1
# why an execution did not consume exactly the named liquidity
X_NAMED_SHORT, X_PLACEHOLDER_SHORT, X_WRONG_MAKER = 1, 2, 3
_X_WHY = {X_NAMED_SHORT: "the named order holds fewer shares than executed",
          X_PLACEHOLDER_SHORT: "an unseen order executed but the level holds too little unseen liquidity",
          X_WRONG_MAKER: "the taker met another order than the one named"}
#: Spare order rows, index cells and ladder slots required before a message starts.
_HEADROOM = 64


# The engine's kernel is called straight from the replay kernel (no Python
# between messages).  Its calling convention is the engine's business: the
# state travels either as the tuple of arrays or as a handle table
# (``BookState.handles``), whichever this engine offers.
_USES_HANDLES = hasattr(BookState, "handles")

if _USES_HANDLES:
    @njit(cache=True, nogil=True)
    def _engine(eng, book_of, inst_of_book, cmd, ev):
        status, _, n = process_commands(eng, book_of, inst_of_book, cmd, 0, ev, 0)
        return status, n
else:  # pragma: no cover - the engine before handle tables
    @njit(cache=True, nogil=True)
    def _engine(eng, book_of, inst_of_book, cmd, ev):
        status, _, n = process_commands(eng[0], eng[1], eng[2], eng[3], eng[4], eng[5], eng[6], eng[7], eng[8],
                                        eng[9], eng[10], book_of, inst_of_book, cmd, 0, ev, 0)
        return status, n


def _kernel_state(state: BookState) -> tuple:
    """The arrays the replay kernel reads (``BookState.arrays()`` order) plus the engine kernel's state handle."""
    arrays = state.arrays()
    return arrays + ((state.handles() if _USES_HANDLES else arrays),)


@njit(cache=True, nogil=True)
def _send(st, book_of, inst_of_book, cmd, ev, stats, kind, side, oid, acct, price, qty, tif, ts):
    """Run one command through the engine's own kernel; return the event count (events in ``ev``)."""
    c = cmd[0]
    stats[S_SEQ] += 1
    c.seq = stats[S_SEQ]
    c.ts = ts
    c.kind = kind
    c.side = side
    c.order_id = oid
    c.account = acct
    c.price = price
    c.qty = qty
    c.tif = tif
    status, n = _engine(st[11], book_of, inst_of_book, cmd, ev)
    if status != ST_DONE:  # headroom is checked per message, so this is a sizing bug
        stats[S_REJECT] += 1000000
    for j in range(n):
        if ev[j].kind == E_REJECTED:
            stats[S_REJECT] += 1
    return n


@njit(cache=True, nogil=True)
def _level(st, b, side, price):
    """Level row of ``price`` on ``side`` of book ``b``, or -1."""
    lad_key, lad_lv, lad_n = st[3], st[4], st[5]
    row = 2 * b + side
    n = lad_n[row]
    key = price if side == 0 else -price
    pos = ladder_search(lad_key, row, n, key)
    if pos < n and lad_key[row, pos] == key:
        return lad_lv[row, pos]
    return -1


@njit(cache=True, nogil=True)
def _level_qty(st, b, side, price):
    lv = _level(st, b, side, price)
    return 0 if lv < 0 else st[2][lv, L_QTY]


@njit(cache=True, nogil=True)
def _reduce_order(st, book_of, inst_of_book, cmd, ev, stats, o, d, side, ts):
    """Take ``d`` lots off resting order row ``o``: an amend (keeps priority) or, for all of it, a cancel."""
    orders = st[0]
    q = orders[o, O_QTY]
    if d >= q:
        _send(st, book_of, inst_of_book, cmd, ev, stats, K_CANCEL, side, orders[o, O_OID], orders[o, O_ACCOUNT], 0, 0, 0, ts)
        return q
    _send(st, book_of, inst_of_book, cmd, ev, stats, K_AMEND, side, orders[o, O_OID], orders[o, O_ACCOUNT], 0, q - d, 0, ts)
    return d


@njit(cache=True, nogil=True)
def _referenced_after(ref_ids, ref_last, oid, i):
    """Whether a message after ``i`` names LOBSTER order ``oid`` (lookahead over the whole file)."""
    k = np.searchsorted(ref_ids, oid)
    return k < ref_ids.shape[0] and ref_ids[k] == oid and ref_last[k] > i


@njit(cache=True, nogil=True)
def _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, q, ts, i, ref_ids, ref_last,
                    first=0, last=2):
    """Remove ``q`` lots at a level that no message explains; return the lots still missing.

    Placeholders go first (head first: the oldest unknown orders), then known
    orders no later message names (newest first: they ended out of view),
    then, as a last resort counted in ``forced_removals``, any known order.
    ``first``/``last`` pick which of these three rounds run.
    """
    orders = st[0]
    levels = st[2]
    for rnd in range(first, last + 1):
        if q <= 0:
            break
        lv = _level(st, b, side, price)
        if lv < 0:
            break
        o = levels[lv, L_HEAD] if rnd == 0 else levels[lv, L_TAIL]
        while o != NIL and q > 0:
            acct = orders[o, O_ACCOUNT]
            take = False
            if rnd == 0:
                take = acct == PLACEHOLDER
            elif acct == REAL:
                take = rnd == 2 or not _referenced_after(ref_ids, ref_last, orders[o, O_OID], i)
            if take:
                d = _reduce_order(st, book_of, inst_of_book, cmd, ev, stats, o, q, side, ts)
                q -= d
                if rnd >= 1:
                    stats[S_STALE] += 1
                    stats[S_STALE_LOTS] += d
                if rnd == 2:
                    stats[S_FORCED] += 1
                if levels[lv, L_COUNT] == 0:
                    break  # the level closed, freeing the cancelled rows still in its queue
            # The neighbour is read only now: a cancel leaves the order linked
            # (dead) but may have compacted the level, freeing the dead rows
            # that were next to it (shardex.book.layout, "Lazy cancels").
            o = orders[o, O_NEXT] if rnd == 0 else orders[o, O_PREV]
    return q


@njit(cache=True, nogil=True)
def _add_placeholder(st, book_of, inst_of_book, cmd, ev, stats, side, price, q, ts):
    stats[S_NEXT_PH] += 1
    _send(st, book_of, inst_of_book, cmd, ev, stats, K_NEW, side, stats[S_NEXT_PH], PLACEHOLDER, price, q, TIF_GTC, ts)


@njit(cache=True, nogil=True)
def _requeue_front(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, target, q, ts):
    """Make the first ``q`` lots of the level belong to order row ``target`` (or, with -1, to placeholders).

    Orders in the way go to the back of the level in their own order, as a
    FIFO venue would have had them queued behind the liquidity the file says
    traded first.
    """
    orders = st[0]
    levels = st[2]
    lv = _level(st, b, side, price)
    if lv < 0:
        return
    if target < 0:
        # Never ask for more placeholder liquidity than the level holds, or the
        # loop would cycle; the execution check reports the shortfall.
        q = min(q, _placeholder_qty(st, b, side, price))
    else:
        if st[1][target, C_PRICE] != price or st[1][target, C_SIDE] != side:
            return
    guard = 0
    limit = st[2][lv, L_COUNT] + 1
    while guard < limit:
        guard += 1
        lv = _level(st, b, side, price)
        o = levels[lv, L_HEAD]
        acc = 0
        blocker = NIL
        while o != NIL and acc < q:
            if orders[o, O_ACCOUNT] == DEAD:  # a cancelled row not yet unlinked: not in the way
                o = orders[o, O_NEXT]
                continue
            ok = (o == target) if target >= 0 else (orders[o, O_ACCOUNT] == PLACEHOLDER)
            if ok:
                acc += orders[o, O_QTY]
                if target >= 0:
                    break
            else:
                blocker = o
                break
            o = orders[o, O_NEXT]
        if blocker == NIL:
            return
        oid = orders[blocker, O_OID]
        acct = orders[blocker, O_ACCOUNT]
        qty = orders[blocker, O_QTY]
        # An increase sends the order to the back (same row, same id, no index
        # churn); the decrease that follows keeps that new place.
        _send(st, book_of, inst_of_book, cmd, ev, stats, K_AMEND, side, oid, acct, 0, qty + 1, 0, ts)
        _send(st, book_of, inst_of_book, cmd, ev, stats, K_AMEND, side, oid, acct, 0, qty, 0, ts)
        stats[S_REQUEUE] += 1


@njit(cache=True, nogil=True)
def _placeholder_qty(st, b, side, price):
    orders = st[0]
    lv = _level(st, b, side, price)
    if lv < 0:
        return 0
    tot = 0
    o = st[2][lv, L_HEAD]
    while o != NIL:
        if orders[o, O_ACCOUNT] == PLACEHOLDER:
            tot += orders[o, O_QTY]
        o = orders[o, O_NEXT]
    return tot


@njit(cache=True, nogil=True)
def _execute(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, oid, q, ts, i, ref_ids, ref_last, xbad):
    """A visible execution of ``q`` lots of resting order ``oid``: bring it to the front, take it, check the makers."""
    orders = st[0]
    index = st[8]
    o = index_find(index, orders, REAL, oid)
    named = o >= 0
    why = 0
    if named and orders[o, O_QTY] < q:
        why = X_NAMED_SHORT
    if named:
        _requeue_front(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, o, q, ts)
    else:
        # An order never seen submitted: placeholder liquidity must cover it.
        # If it does not, known orders no later message names stand in (they
        # ended out of view, and this unseen order is what really rested).
        short = q - _placeholder_qty(st, b, side, price)
        if short > 0:
            left = _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, short, ts, i,
                                   ref_ids, ref_last, 1, 1)
            if short - left > 0:
                _add_placeholder(st, book_of, inst_of_book, cmd, ev, stats, side, price, short - left, ts)
            if left > 0:
                why = X_PLACEHOLDER_SHORT
        _requeue_front(st, book_of, inst_of_book, cmd, ev, stats, b, side, price, -1, q, ts)
    stats[S_NEXT_AGG] += 1
    n = _send(st, book_of, inst_of_book, cmd, ev, stats, K_NEW, 1 - side, stats[S_NEXT_AGG], AGGRESSOR, price, q,
              TIF_IOC, ts)
    filled = 0
    good = True
    for j in range(n):
        e = ev[j]
        if e.kind == E_TRADE:
            filled += e.qty
            if named:
                good = good and e.maker_account == REAL and e.maker_order_id == oid
            else:
                good = good and e.maker_account == PLACEHOLDER
    stats[S_EXEC] += 1
    if good and filled == q:
        if named:
            stats[S_EXEC_NAMED] += 1
        else:
            stats[S_EXEC_PH] += 1
    else:
        k = stats[S_EXEC_BAD]
        if k < xbad.shape[0]:
            xbad[k, 0] = i
            xbad[k, 1] = why if why else X_WRONG_MAKER
            xbad[k, 2] = filled
        stats[S_EXEC_BAD] += 1


@njit(cache=True, nogil=True)
def _reconcile_side(st, book_of, inst_of_book, cmd, ev, stats, b, side, fp, fq, prev_full, prev_last, ts, i,
                    ref_ids, ref_last):
    """Set the price range the window just uncovered on one side from the file row (no message describes it)."""
    nlev = fp.shape[0]
    if not prev_full:
        # The previous row showed the whole side: nothing was out of view.
        return
    sgn = 1 if side == 0 else -1          # bids: deeper = lower price
    cur_full = fq[nlev - 1] > 0
    cur_last = fp[nlev - 1]
    if cur_full and sgn * cur_last >= sgn * prev_last:
        return                             # the window did not move deeper: the fast path
    # File levels in the uncovered range.
    for j in range(nlev):
        if fq[j] <= 0:
            break
        p = fp[j]
        if sgn * p >= sgn * prev_last:
            continue
        have = _level_qty(st, b, side, p)
        if have < fq[j]:
            _add_placeholder(st, book_of, inst_of_book, cmd, ev, stats, side, p, fq[j] - have, ts)
            stats[S_REFILL] += 1
            stats[S_REFILL_LOTS] += fq[j] - have
        elif have > fq[j]:
            stats[S_CLEAR_LOTS] += have - fq[j]
            _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, p, have - fq[j], ts, i, ref_ids,
                            ref_last)
    # Engine levels in the uncovered range that the file does not show are gone.
    lad_lv, lad_n = st[4], st[5]
    levels = st[2]
    row = 2 * b + side
    k = 0
    while k < lad_n[row]:
        p = levels[lad_lv[row, lad_n[row] - 1 - k], L_PRICE]
        if cur_full and sgn * p < sgn * cur_last:
            break
        found = sgn * p >= sgn * prev_last
        for j in range(nlev):
            if fq[j] > 0 and fp[j] == p:
                found = True
        if not found:
            q = levels[lad_lv[row, lad_n[row] - 1 - k], L_QTY]
            stats[S_CLEAR_LOTS] += q
            left = _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, p, q, ts, i, ref_ids, ref_last)
            if left < q:
                continue                    # the level shrank or went: look at position k again
        k += 1


@njit(cache=True, nogil=True)
def _compare(st, b, ap, aq, bp, bq, i, eng):
    """Whether the engine's top levels equal row ``i``; writes the engine's row into ``eng`` (4 x N)."""
    levels, lad_lv, lad_n = st[2], st[4], st[5]
    nlev = ap.shape[1]
    same = True
    for side in range(2):
        row = 2 * b + side
        n = lad_n[row]
        for j in range(nlev):
            if j < n:
                lv = lad_lv[row, n - 1 - j]
                p = levels[lv, L_PRICE]
                q = levels[lv, L_QTY]
            else:
                p = 0
                q = 0
            eng[2 * side, j] = p
            eng[2 * side + 1, j] = q
            if side == 0:
                fp, fq = bp[i, j], bq[i, j]
            else:
                fp, fq = ap[i, j], aq[i, j]
            if fq <= 0:
                same = same and q == 0
            else:
                same = same and p == fp and q == fq
    return same


@njit(cache=True, nogil=True)
def _replay_kernel(st, book_of, inst_of_book, b, cmd, ev, mtype, moid, msize, mprice, mside, mts, ap, aq, bp, bq,
                   ref_ids, ref_last, start, stats, mism, mism_rows, xbad):
    """Replay messages ``start..`` and compare after each; return (code, next message).

    ``RC_GROW`` means the next message might not fit in the state arrays:
    the caller grows them and calls again from that message (nothing of it
    has happened yet).  Prices are ticks, sizes lots; ``side`` 0 is a
    resting bid.  Mismatching message indices go to ``mism`` (the first
    ``len(mism)`` of them, with the engine's rows in ``mism_rows``).
    """
    orders, levels, lad_key, lad_n, index, meta = st[0], st[2], st[3], st[5], st[8], st[9]
    nmsg = mtype.shape[0]
    nlev = ap.shape[1]
    eng = np.zeros((4, nlev), dtype=np.int64)
    for i in range(start, nmsg):
        # Room for the worst case of one message, checked before it starts.
        need = _HEADROOM + 4 * nlev
        if (orders.shape[0] - meta[M_ORDERS_USED] - meta[M_DEAD_ORDERS] < need
                or 2 * (meta[M_INDEX_USED] + meta[M_INDEX_TOMB] + need + (meta[M_ORDERS_USED] >> 2)) > index.shape[0]
                or max(lad_n[2 * b], lad_n[2 * b + 1]) + need >= lad_key.shape[1]
                or ev.shape[0] < 2 * orders.shape[0] + 64):
            return RC_GROW, i
        t = mtype[i]
        side = mside[i]
        p = mprice[i]
        q = msize[i]
        oid = moid[i]
        ts = mts[i]
        if t == 1:
            if index_find(index, orders, REAL, oid) >= 0:
                stats[S_DUPLICATE] += 1
            else:
                _send(st, book_of, inst_of_book, cmd, ev, stats, K_NEW, side, oid, REAL, p, q, TIF_GTC, ts)
        elif t == 2 or t == 3:
            o = index_find(index, orders, REAL, oid)
            if o >= 0:
                have = orders[o, O_QTY]
                if (t == 3 and have != q) or (t == 2 and have <= q):
                    stats[S_SIZE_DISAGREE] += 1
                if t == 3:
                    _reduce_order(st, book_of, inst_of_book, cmd, ev, stats, o, have, side, ts)
                    # A deletion names the order's true remaining size.  Any
                    # difference is liquidity whose history left the window:
                    # the level total (matched before) stays right only if
                    # the surplus turns into unseen liquidity, or a shortfall
                    # is taken from it.
                    if have > q:
                        _add_placeholder(st, book_of, inst_of_book, cmd, ev, stats, side, p, have - q, ts)
                    elif have < q:
                        _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, p, q - have, ts, i,
                                        ref_ids, ref_last, 0, 1)
                else:
                    _reduce_order(st, book_of, inst_of_book, cmd, ev, stats, o, q, side, ts)
            else:
                stats[S_UNKNOWN_CANCEL] += 1
                stats[S_UNKNOWN_CANCEL_LOTS] += q
                _take_liquidity(st, book_of, inst_of_book, cmd, ev, stats, b, side, p, q, ts, i, ref_ids, ref_last)
        elif t == 4:
            _execute(st, book_of, inst_of_book, cmd, ev, stats, b, side, p, oid, q, ts, i, ref_ids, ref_last, xbad)
        # 5 (hidden execution), 6 (cross) and 7 (halt) leave the visible book alone.
        if i > 0:
            pb_full = bq[i - 1, nlev - 1] > 0
            pa_full = aq[i - 1, nlev - 1] > 0
            _reconcile_side(st, book_of, inst_of_book, cmd, ev, stats, b, 0, bp[i], bq[i], pb_full,
                            bp[i - 1, nlev - 1], ts, i, ref_ids, ref_last)
            _reconcile_side(st, book_of, inst_of_book, cmd, ev, stats, b, 1, ap[i], aq[i], pa_full,
                            ap[i - 1, nlev - 1], ts, i, ref_ids, ref_last)
        if not _compare(st, b, ap, aq, bp, bq, i, eng):
            k = stats[S_MISMATCH]
            if k < mism.shape[0]:
                mism[k] = i
                mism_rows[k] = eng
            stats[S_MISMATCH] += 1
    return RC_DONE, nmsg


# ---------------------------------------------------------------------------
# the Python face
# ---------------------------------------------------------------------------
@dataclass
class ReplayResult:
    """What a LOBSTER replay did and found.

    ``ok`` is True when no message left the engine's top N levels different
    from the orderbook file and every visible execution consumed exactly the
    order (or placeholder liquidity) the file names.  Counts are messages;
    ``*_shares`` are shares (= lots: the instrument's lot is one share).
    """

    symbol: str
    date: str | None
    message_file: str
    orderbook_file: str
    levels: int
    messages: int
    by_type: dict[str, int]
    executions: int
    executions_matched: int
    executions_of_named_orders: int
    placeholder_hits: int
    execution_mismatches: int
    hidden_executions: int
    halts: int
    mismatches: int
    first_mismatches: list[dict]
    first_execution_mismatches: list[dict]
    seed_levels: int
    seed_shares: int
    details: dict[str, int]
    elapsed_s: float
    read_s: float
    replay_s: float
    messages_per_second: float
    state_hash: str
    tick_size: str
    exchange: Exchange | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No top-N mismatch, no execution that consumed anything but the named liquidity, no engine reject."""
        return (self.mismatches == 0 and self.execution_mismatches == 0
                and self.details.get("engine_rejects", 0) == 0)

    def to_dict(self) -> dict:
        """JSON-ready dict (no engine object), ``ok`` included."""
        d = asdict(self) if self.exchange is None else {k: v for k, v in asdict(
            ReplayResult(**{**self.__dict__, "exchange": None})).items()}
        d.pop("exchange", None)
        d["ok"] = self.ok
        return d


_TYPE_NAMES = {1: "submission", 2: "partial_cancel", 3: "deletion", 4: "visible_execution",
               5: "hidden_execution", 6: "cross_trade", 7: "halt"}


def _tick_units(data: LobsterData) -> int:
    """LOBSTER price units per engine tick: 100 ($0.01) when every price is on the cent grid."""
    prices = np.concatenate([data.price[data.mtype <= 4], data.ask_price[data.ask_size > 0],
                             data.bid_price[data.bid_size > 0]])
    for unit in (100, 10, 1):
        if not np.any(prices % unit):
            return unit
    return 1


def _seed(data: LobsterData, unit: int) -> list[tuple[int, int, int]]:
    """Placeholder (side, price ticks, shares) per level: row 1 with message 1 undone."""
    levels: dict[tuple[int, int], int] = {}
    for side, (pp, qq) in ((0, (data.bid_price[0], data.bid_size[0])), (1, (data.ask_price[0], data.ask_size[0]))):
        for p, q in zip(pp.tolist(), qq.tolist()):
            if q > 0:
                levels[(side, p)] = q
    t = int(data.mtype[0])
    if t <= 4:
        key = (0 if data.direction[0] == 1 else 1, int(data.price[0]))
        q = int(data.size[0])
        # A submission added q that was not there before; anything else took q away.
        levels[key] = levels.get(key, 0) + (-q if t == 1 else q)
        if levels[key] <= 0:
            del levels[key]
    return [(side, p // unit, q) for (side, p), q in sorted(levels.items())]


def _epoch_ns(date: str | None) -> int:
    """Nanoseconds since the epoch at midnight New York time of ``date`` (0 without a date)."""
    if not date:
        return 0
    d = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=ZoneInfo("America/New_York"))
    return int(d.timestamp()) * 1_000_000_000


def replay_lobster(message_path: Path | str | io.StringIO, orderbook_path: Path | str | io.StringIO,
                   levels: int | None = None, *, keep_exchange: bool = False, max_reported: int = 20,
                   until: int | None = None) -> ReplayResult:
    """Replay a LOBSTER pair through an ``Exchange`` and compare the top N levels after every message.

    Parameters
    ----------
    message_path, orderbook_path
        The pair (``.gz`` is read transparently; ``io.StringIO`` works too).
    levels
        Expected levels per side; None takes the orderbook file's.
    keep_exchange
        Keep the ``Exchange`` in the result (for views such as ``l3``).
    max_reported
        How many mismatching messages to describe in ``first_mismatches``.
    until
        Stop after this many messages (1-based line of the last one replayed),
        to inspect the book at a point; the lookahead still sees the whole file.

    Raises ``FileNotFoundError`` and ``MalformedInputError`` (file and line).
    Runtime: O(messages + orders touched); one numba kernel runs the day.
    """
    t0 = time.perf_counter()
    data = read_lobster(message_path, orderbook_path, levels)
    t1 = time.perf_counter()
    n = len(data)
    nlev = data.levels
    unit = _tick_units(data)
    tick = f"{unit / PRICE_SCALE:f}".rstrip("0")
    ins = Instrument(0, data.symbol, tick_size=tick, lot_size="1")
    ex = Exchange([ins], order_capacity=4096)
    shard = ex.shards[0]
    b = shard.book(ins.id)

    # Arrays in engine units: ticks and lots, resting side 0 = bid.
    mside = np.where(data.direction == 1, 0, 1).astype(np.int64)
    mprice = np.where(data.mtype <= 4, data.price // unit, 0).astype(np.int64)
    base = _epoch_ns(data.date)
    mts = base + np.round(data.time * 1e9).astype(np.int64)
    ap = np.where(data.ask_size > 0, data.ask_price // unit, 0)
    bp = np.where(data.bid_size > 0, data.bid_price // unit, 0)
    aq = np.ascontiguousarray(data.ask_size)
    bq = np.ascontiguousarray(data.bid_size)
    # Lookahead: the last message naming each order id.
    named = data.mtype <= 4
    ids = data.order_id[named]
    idx = np.flatnonzero(named)
    order = np.lexsort((idx, ids))
    ids_sorted = ids[order]
    last = np.r_[ids_sorted[1:] != ids_sorted[:-1], True] if len(ids_sorted) else np.zeros(0, dtype=bool)
    ref_ids = np.ascontiguousarray(ids_sorted[last])
    ref_last = np.ascontiguousarray(idx[order][last])

    stop = n if until is None else max(0, min(int(until), n))
    seed = _seed(data, unit)
    stats = np.zeros(S_NSTATS, dtype=np.int64)
    if seed:
        from shardex.engine.commands import batch, new_order

        recs = [new_order(ins.id, side, q, p, order_id=k + 1, account=PLACEHOLDER) for k, (side, p, q) in enumerate(seed)]
        cmds = batch(recs)
        cmds["seq"] = np.arange(1, len(cmds) + 1)
        cmds["ts"] = int(mts[0]) if n else 0
        shard.process(cmds)
        stats[S_NEXT_PH] = len(seed)
        stats[S_SEQ] = len(seed)

    cmd = np.zeros(1, dtype=COMMAND_DTYPE)
    cmd[0]["instrument"] = ins.id
    ev = np.zeros(2 * shard.state.capacity + 64, dtype=EVENT_DTYPE)
    mism = np.zeros(max_reported, dtype=np.int64)
    mism_rows = np.zeros((max_reported, 4, nlev), dtype=np.int64)
    xbad = np.zeros((max_reported, 3), dtype=np.int64)
    start = 0
    t2 = time.perf_counter()
    while True:
        code, start = _replay_kernel(_kernel_state(shard.state), shard.book_of, shard.inst_of_book, b, cmd, ev,
                                     data.mtype[:stop], data.order_id, data.size, mprice, mside, mts, ap, aq, bp, bq,
                                     ref_ids, ref_last, start, stats, mism, mism_rows, xbad)
        if code == RC_DONE:
            break
        _grow(shard.state, _HEADROOM + 4 * nlev)
        if len(ev) < 2 * shard.state.capacity + 64:
            ev = np.zeros(2 * shard.state.capacity + 64, dtype=EVENT_DTYPE)
    t3 = time.perf_counter()
    # The sequencer continues after the replayed commands, as after a journal replay.
    ex.sequencer.next_seq = int(stats[S_SEQ]) + 1
    ex.sequencer.last_ts = int(mts[-1]) if n else 0

    counts = np.bincount(data.mtype[:stop], minlength=8)
    by_type = {_TYPE_NAMES[t]: int(counts[t]) for t in _MESSAGE_TYPES if counts[t] or t <= 5}
    first = []
    for k in range(min(int(stats[S_MISMATCH]), max_reported)):
        i = int(mism[k])
        first.append({
            "line": i + 1,
            "message": [float(data.time[i]), int(data.mtype[i]), int(data.order_id[i]), int(data.size[i]),
                        int(data.price[i]), int(data.direction[i])],
            "file_bids": [[int(p), int(q)] for p, q in zip(data.bid_price[i], data.bid_size[i])],
            "engine_bids": [[int(p) * unit, int(q)] for p, q in zip(mism_rows[k, 0], mism_rows[k, 1])],
            "file_asks": [[int(p), int(q)] for p, q in zip(data.ask_price[i], data.ask_size[i])],
            "engine_asks": [[int(p) * unit, int(q)] for p, q in zip(mism_rows[k, 2], mism_rows[k, 3])],
        })
    bad_execs = [{"line": int(xbad[k, 0]) + 1, "why": _X_WHY.get(int(xbad[k, 1]), "?"), "filled": int(xbad[k, 2]),
                  "message": [float(data.time[xbad[k, 0]]), int(data.mtype[xbad[k, 0]]), int(data.order_id[xbad[k, 0]]),
                              int(data.size[xbad[k, 0]]), int(data.price[xbad[k, 0]]), int(data.direction[xbad[k, 0]])]}
                 for k in range(min(int(stats[S_EXEC_BAD]), max_reported))]
    details = {name: int(stats[s]) for s, name in _STAT_NAMES.items()}
    replay_s = t3 - t2
    elapsed = time.perf_counter() - t0
    return ReplayResult(
        symbol=data.symbol, date=data.date, message_file=data.message_path, orderbook_file=data.orderbook_path,
        levels=nlev, messages=stop, by_type=by_type, executions=int(stats[S_EXEC]),
        executions_matched=int(stats[S_EXEC_NAMED] + stats[S_EXEC_PH]),
        executions_of_named_orders=int(stats[S_EXEC_NAMED]), placeholder_hits=int(stats[S_EXEC_PH]),
        execution_mismatches=int(stats[S_EXEC_BAD]), hidden_executions=int(counts[5]), halts=int(counts[7]),
        mismatches=int(stats[S_MISMATCH]), first_mismatches=first, first_execution_mismatches=bad_execs, seed_levels=len(seed),
        seed_shares=sum(q for _, _, q in seed), details=details, elapsed_s=elapsed, read_s=t1 - t0,
        replay_s=replay_s, messages_per_second=stop / replay_s if replay_s > 0 else float("inf"),
        state_hash=ex.state_hash(), tick_size=tick, exchange=ex if keep_exchange else None,
    )


def _grow(state, need: int) -> None:
    """Grow whichever state array lacks ``need`` spare rows (pool, index or ladder)."""
    meta = state.meta
    if state.capacity - meta[M_ORDERS_USED] - meta[M_DEAD_ORDERS] < need:  # dead rows hold pool rows too
        state.grow_pool()
    if 2 * (meta[M_INDEX_USED] + meta[M_INDEX_TOMB] + need + (meta[M_ORDERS_USED] >> 2)) > len(state.index):
        state.grow_index(4 * (int(meta[M_INDEX_USED]) + need + int(meta[M_ORDERS_USED] >> 2)))
    if int(state.lad_n.max(initial=0)) + need >= state.lad_key.shape[1]:
        state.grow_ladder()


# ---------------------------------------------------------------------------
# built-in sample (no shared data needed)
# ---------------------------------------------------------------------------
def sample_pair(levels: int = 2, seed: int = 7, steps: int = 400) -> tuple[io.StringIO, io.StringIO]:
    """A small synthetic LOBSTER pair (message, orderbook) generated in memory.

    It is written by a tiny reference book that follows LOBSTER's rules: a
    level-N file keeps only the messages that touch the top N levels, the
    book holds orders before the first message, executions hit the head of
    the best level, and some orders live and die out of view.  Used by the
    demo and the tests when ``../shared/data`` is absent; no real data.
    """
    rng = np.random.default_rng(seed)
    # side -> price -> list of [oid, qty] in FIFO order
    book: dict[int, dict[int, list[list[int]]]] = {1: {}, -1: {}}
    oid = 1000

    def top(d: int, k: int) -> list[tuple[int, int]]:
        prices = sorted(book[d], reverse=(d == 1))[:k]
        return [(p, sum(q for _, q in book[d][p])) for p in prices]

    def add(d: int, p: int, q: int) -> int:
        nonlocal oid
        oid += 1
        book[d].setdefault(p, []).append([oid, q])
        return oid

    mid = 1_000_000  # $100.00
    for d in (1, -1):  # orders resting before the session opens
        for k in range(1, 2 * levels + 3):
            for _ in range(int(rng.integers(1, 3))):
                add(d, mid - d * 100 * k, int(rng.integers(1, 5)) * 10)
    msgs: list[str] = []
    rows: list[str] = []
    t = 34200.0
    for _ in range(steps):
        t += float(rng.exponential(0.5))
        d = 1 if rng.random() < 0.5 else -1
        before = [p for p, _ in top(d, levels)]
        r = rng.random()
        best_bid, best_ask = top(1, 1)[0][0], top(-1, 1)[0][0]
        if r < 0.45 or len(book[d]) <= levels + 1:
            lo, hi = (best_ask - 100 * (levels + 3), best_ask - 100) if d == 1 else (best_bid + 100, best_bid + 100 * (levels + 3))
            p = int(rng.integers(lo // 100, hi // 100 + 1)) * 100
            q = int(rng.integers(1, 6)) * 10
            i = add(d, p, q)
            m = (1, i, q, p)
        else:
            p = int(rng.choice(sorted(book[d])[-(levels + 2):] if d == 1 else sorted(book[d])[: levels + 2]))
            queue = book[d][p]
            if r < 0.7:
                k = int(rng.integers(0, len(queue)))
                i, q = queue.pop(k)
                m = (3, i, q, p)
            elif r < 0.8:
                k = int(rng.integers(0, len(queue)))
                if queue[k][1] <= 10:
                    continue
                queue[k][1] -= 10
                m = (2, queue[k][0], 10, p)
            else:
                p = top(d, 1)[0][0]
                queue = book[d][p]
                i, have = queue[0]
                q = min(have, int(rng.integers(1, 4)) * 10)
                queue[0][1] -= q
                if queue[0][1] == 0:
                    queue.pop(0)
                m = (4, i, q, p)
            if not queue:
                del book[d][p]
        after = [p for p, _ in top(d, levels)]
        # The level-N rule: a message is written only when it touches a visible level.
        if m[3] not in before and m[3] not in after:
            continue
        msgs.append(f"{t:.9f},{m[0]},{m[1]},{m[2]},{m[3]},{d}")
        cells = []
        a, bb = top(-1, levels), top(1, levels)
        for k in range(levels):
            ap_, aq_ = a[k] if k < len(a) else (EMPTY_PRICE, 0)
            bp_, bq_ = bb[k] if k < len(bb) else (-EMPTY_PRICE, 0)
            cells += [ap_, aq_, bp_, bq_]
        rows.append(",".join(map(str, cells)))
        if rng.random() < 0.02:  # a hidden execution now and then
            t += 0.001
            msgs.append(f"{t:.9f},5,0,10,{best_ask},-1")
            rows.append(rows[-1])
    mio, bio = io.StringIO("\n".join(msgs) + "\n"), io.StringIO("\n".join(rows) + "\n")
    mio.name = f"SAMPLE_{levels}_message"
    bio.name = f"SAMPLE_{levels}_orderbook"
    return mio, bio
