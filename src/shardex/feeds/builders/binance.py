"""Binance spot, USDⓈ-M and COIN-M depth books on the byte-level kernel.

Rules (Binance's "How to manage a local order book correctly", spot and
derivatives API docs):

* spot: buffer diffs; with snapshot ``lastUpdateId`` L, drop ``u <= L``; the
  first applied diff has ``U <= L+1 <= u``; then ``U == last_u + 1``.
* futures (USDⓈ-M, COIN-M): drop ``u < L``; the first applied diff has
  ``U <= L <= u``; then ``pu == last_u`` (``U`` has holes on futures).

A break is a gap: the book is discarded, diffs are buffered and the next
snapshot resyncs it. ``bookTicker`` messages whose ``u`` equals the book's
last update id are compared with its best bid and ask.
"""

from __future__ import annotations

import msgspec
import numpy as np

from shardex.errors import MalformedInputError
from shardex.feeds._decimal import Grid, parse_units
from shardex.feeds.builders import _binance_kernel as K
from shardex.feeds.builders._base import MAX_PROBLEMS, Problem, sha_of

__all__ = ["BinanceBook", "grid_from_snapshot"]

_EV_NAMES = {
    K.EV_GAP: "gap",
    K.EV_RESYNC: "resync",
    K.EV_SNAP_REJECT: "snapshot_older_than_buffered_diffs",
    K.EV_CROSSED: "crossed",
    K.EV_XBAD: "bookticker_mismatch",
    K.EV_OFFGRID: "off_grid",
    K.EV_UNREPR: "unrepresentable_decimal",
    K.EV_MALFORMED: "malformed",
    K.EV_UNKNOWN: "unknown_message",
    K.EV_PEND_DROP: "buffer_overflow",
    K.EV_BOOK_DISCARDED: "book_discarded",
}


def grid_from_snapshot(data: bytes | dict, source: str = "snapshot") -> Grid:
    """A grid for a Binance book from one REST depth snapshot (exact, 1e-8 units).

    Tick and lot are the finest decimal the venue prints in the snapshot
    (``"61800.20"`` -> 0.01, ``"0.014"`` -> 0.001, ``"1001"`` -> 1). Not the gcd
    of the values: resting orders placed before a lot-size change sit off the
    current grid (spot BTCUSDT has ``25.426189`` at 200000 under a 0.00001
    lot), and a book must not be thrown away for holding them.
    """
    doc = msgspec.json.decode(data) if isinstance(data, (bytes, bytearray, memoryview, str)) else data
    levels = list(doc.get("bids", [])) + list(doc.get("asks", []))
    for p, q in levels:  # every value must read exactly at 1e-8
        parse_units(p, 8)
        parse_units(q, 8)

    def finest(strings: list[str]) -> int:
        dec = max((len(s.partition(".")[2]) for s in strings), default=8)
        return 10 ** (8 - min(dec, 8))

    return Grid(finest([p for p, _ in levels]), finest([q for _, q in levels]), 8, f"{source} decimals")


def _decimals_of(step_units: int) -> int:
    """Decimals of the finest power of ten that holds a step given in 1e-8 units."""
    d = 8
    while d > 0 and step_units % 10 == 0:
        step_units //= 10
        d -= 1
    return d


class BinanceBook:
    """One Binance depth book (spot or futures rule) kept in int ticks and lots.

    Parameters
    ----------
    key:
        Book key for reports (``"binance-usdm:BTCUSDT"``).
    symbol:
        The symbol whose messages this book takes; others are counted as foreign.
    futures:
        True for USDⓈ-M/COIN-M (``pu`` chaining), False for spot.
    grid:
        The instrument's tick and lot (exchangeInfo), or None. Levels off it
        are counted as ``off_grid`` and reported with file and line; they are
        kept, exactly, because venues do send them (resting orders from before
        a tick change: NKNUSDT ``0.25974`` under a 0.0001 tick in
        cryptofeed's capture), unless ``strict_grid`` discards the book.
    strict_grid:
        Treat a level off the instrument grid like a corrupt message.
    capacity:
        Initial levels per side; grows by doubling as needed.

    The book holds prices and sizes as int ticks and lots of the precision the
    venue prints (from the first snapshot's decimals; 1e-8 when an instrument
    grid is given). A decimal finer than that cannot be held exactly: it is
    counted as ``unrepresentable`` and the book is discarded until the next
    good snapshot.

    Every method is safe on bad input: problems are counted and reported in
    :attr:`problems`, never raised. One message costs O(its bytes + levels x
    distance of each level from the top of the book).
    """

    def __init__(
        self, key: str, symbol: str, futures: bool, grid: Grid | None = None, strict_grid: bool = False, capacity: int = 8192
    ) -> None:
        self.key = key
        self.symbol = symbol
        self.futures = futures
        self.ref_grid = grid
        self.grid: Grid | None = None
        self._sym = np.frombuffer(symbol.lower().encode(), dtype=np.uint8).copy()
        self._st = np.zeros(K.N_STATE, np.int64)
        self._st[K.S_FUTURES] = 1 if futures else 0
        self._st[K.S_TS_MULT] = 1
        self._st[K.S_STRICT] = 1 if strict_grid else 0
        blocks = max(capacity // K.BLOCK, 16)
        self._bk = np.zeros((2, blocks, K.BLOCK), np.int64)
        self._hs = np.zeros((2, 2, 1 << max(int(2 * capacity - 1).bit_length(), 6)), np.int64)
        self._meta = np.zeros((2, 4, blocks), np.int64)
        K._reset_side(self._st, self._meta, 0)
        K._reset_side(self._st, self._meta, 1)
        self._pmeta = np.zeros((4096, 6), np.int64)
        self._plv = np.zeros((1 << 18, 3), np.int64)
        self._lv = np.zeros((4096, 3), np.int64)
        self._ev = np.zeros((1024, 4), np.int64)
        self._early: list[tuple[bytes, int, str]] = []  # diffs seen before the grid is known
        self._problems: list[Problem] = []
        self.problem_count = 0
        if grid is not None:
            self._set_grid(Grid(1, 1, 8, "1e-8 (instrument grid given)"))

    # ---- the per-message interface ------------------------------------------------
    @property
    def synced(self) -> bool:
        """True when the book is exact: a snapshot was bridged and no gap has followed."""
        return int(self._st[K.S_PHASE]) == K.PH_SYNCED

    def on_message(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """Apply one raw websocket message (depthUpdate, bookTicker, or any other, counted)."""
        if self.grid is None:
            if b'"lastUpdateId"' not in data[:64]:
                self._early.append((bytes(data), recv_ns, where))
                return
            self._first_snapshot(data, recv_ns, where)
            return
        self._run_message(data, recv_ns, where)

    def on_snapshot(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """Apply one REST ``depth`` snapshot body (``{"lastUpdateId": ..., "bids": ..., "asks": ...}``)."""
        if self.grid is None:
            self._first_snapshot(data, recv_ns, where)
        else:
            self._run_message(data, recv_ns, where)

    def feed_capture(self, raw: bytes, source: str, ts_mult: int) -> None:
        """Apply a whole capture buffer of ``<receive_ts> <json>`` lines in one nogil kernel call.

        ``ts_mult`` converts the receive stamp to ns (1 for ns, 1000 for µs).
        Line numbers in reports count from 1 within ``source``.
        """
        if self.grid is None:
            self._set_grid(self._grid_from_capture(raw, source))
        buf = np.frombuffer(raw, dtype=np.uint8)
        st = self._st
        st[K.S_PREFIX] = 1
        st[K.S_TS_MULT] = ts_mult
        st[K.S_POS] = 0
        st[K.S_LINE] = 0
        self._run(buf, lambda line: f"{source}:{line}")
        st[K.S_PREFIX] = 0
        st[K.S_TS_MULT] = 1

    # ---- views ---------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counters (see :data:`shardex.feeds.builders._base.STAT_KEYS`) plus Binance extras."""
        st = self._st
        return {
            "book_messages": int(st[K.C_BOOK_MSGS]) + len(self._early),
            "applied": int(st[K.C_APPLIED]),
            "stale": int(st[K.C_STALE]),
            "buffered": int(st[K.C_BUFFERED]) + len(self._early),
            "gaps": int(st[K.C_GAPS]),
            "resyncs": int(st[K.C_RESYNCS]),
            "snapshots": int(st[K.C_SNAPSHOTS]),
            "snapshot_rejects": int(st[K.C_SNAP_REJECT]),
            "crossed": int(st[K.C_CROSSED]),
            "crosscheck_ok": int(st[K.C_XOK]),
            "crosscheck_mismatch": int(st[K.C_XBAD]),
            "checksum_ok": 0,
            "checksum_mismatch": 0,
            "off_grid": int(st[K.C_OFFGRID]),
            "unrepresentable": int(st[K.C_UNREPR]),
            "malformed": int(st[K.C_MALFORMED]),
            "unknown": int(st[K.C_UNKNOWN]),
            "tickers": int(st[K.C_TICKERS]),
            "other": int(st[K.C_OTHER]),
            "foreign": int(st[K.C_FOREIGN]),
            "buffer_dropped": int(st[K.C_PEND_DROP]),
            "snapshots_ignored": int(st[K.C_SNAP_IGNORED]),
            "best_reads": int(st[K.B_READS]),
        }

    @property
    def problems(self) -> list[Problem]:
        """The first problems reported (gaps, resyncs, rejects, off-grid, ...), oldest first."""
        return self._problems

    @property
    def last_update_id(self) -> int:
        """Final update id of the last diff applied (0 before the first)."""
        return int(self._st[K.S_LAST_U])

    def best(self) -> tuple[int, int, int, int] | None:
        """(bid ticks, bid lots, ask ticks, ask lots) of the synced book, None otherwise. O(1)."""
        bids, asks = self._side_arrays(1)
        if len(bids) == 0 or len(asks) == 0:
            return None
        return int(bids[0, 0]), int(bids[0, 1]), int(asks[0, 0]), int(asks[0, 1])

    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """All levels as two (n, 2) int64 arrays [ticks, lots], best first (bids, asks); empty when unsynced."""
        return self._side_arrays(None)

    def _lots_of(self, side: int, keys: np.ndarray) -> np.ndarray:
        hs = self._hs[side]
        used = hs[1] != 0
        order = np.argsort(hs[0][used])
        hk, hq = hs[0][used][order], hs[1][used][order]
        return hq[np.searchsorted(hk, keys)]

    def _side_arrays(self, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for side in (0, 1):
            if not self.synced:
                out.append(np.zeros((0, 2), np.int64))
                continue
            nord = int(self._st[K.S_NORD + side])
            order = self._meta[side, K.M_ORDER, :nord][::-1]
            cnt = self._meta[side, K.M_CNT]
            rows, got = [], 0
            for b in order.tolist():
                c = int(cnt[b])
                rows.append(self._bk[side, b, :c][::-1])
                got += c
                if n is not None and got >= n:
                    break
            keys = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            arr = np.stack([keys, self._lots_of(side, keys)], axis=1) if len(keys) else np.zeros((0, 2), np.int64)
            if side == 1:
                arr[:, 0] = -arr[:, 0]
            out.append(arr if n is None else arr[:n])
        return out[0], out[1]

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids, asks), best first, canonical decimal strings; empty lists when unsynced. O(n)."""
        if not self.synced or self.grid is None:
            return [], []
        g = self.grid
        b, a = self._side_arrays(n)
        return [(g.px_str(p), g.qty_str(q)) for p, q in b.tolist()], [(g.px_str(p), g.qty_str(q)) for p, q in a.tolist()]

    def top10_sha256(self) -> str | None:
        """sha256 of the canonical top-10 JSON (issue 7), None when unsynced."""
        return sha_of(self)

    def _check(self) -> None:
        """Invariant checker: both sides strictly ordered, quantities positive, counts in range."""
        st = self._st
        for side in (0, 1):
            nord = int(st[K.S_NORD + side])
            order = self._meta[side, K.M_ORDER, :nord]
            cnt = self._meta[side, K.M_CNT]
            keys = np.concatenate([self._bk[side, b, : cnt[b]] for b in order]) if nord else np.zeros(0, np.int64)
            hs = self._hs[side]
            assert sorted(hs[0][hs[1] != 0].tolist()) == keys.tolist(), f"side {side}: hash and order disagree"
            qtys = self._lots_of(side, keys)
            assert all(cnt[b] > 0 for b in order), f"side {side} has an empty block in order"
            assert np.all(self._meta[side, K.M_MIN, :nord] == [self._bk[side, b, 0] for b in order]), "stale block minimum"
            assert np.all(np.diff(keys) > 0), f"side {side} not strictly ascending"
            assert np.all(qtys > 0), f"side {side} has a non-positive quantity"
            assert len(keys) == st[K.S_NB + side], f"side {side} level count"
            assert nord + st[K.S_NFREE + side] == self._meta.shape[2], f"side {side} leaks blocks"

    # ---- internals -------------------------------------------------------------------
    def _set_grid(self, grid: Grid) -> None:
        """Hold prices/sizes at ``grid`` (powers of ten in 1e-8 units); check against ``ref_grid``."""
        pdec, qdec = _decimals_of(grid.tick), _decimals_of(grid.lot)
        self.grid = Grid(10 ** (8 - pdec), 10 ** (8 - qdec), 8, grid.source)
        self._st[K.S_PXDEC] = pdec
        self._st[K.S_QDEC] = qdec
        ref = self.ref_grid
        if ref is not None:
            ref8 = Grid(ref.tick * 10**8 // 10**ref.decimals, ref.lot * 10**8 // 10**ref.decimals, 8) if ref.decimals != 8 else ref
            self._st[K.S_VTICK] = ref8.tick // self.grid.tick if ref8.tick % self.grid.tick == 0 else 0
            self._st[K.S_VLOT] = ref8.lot // self.grid.lot if ref8.lot % self.grid.lot == 0 else 0

    def _grid_from_capture(self, raw: bytes, source: str) -> Grid:
        i = raw.find(b'"lastUpdateId"')
        if i < 0:
            return Grid(1, 1, 8, "default (no snapshot)")
        s = raw.rfind(b"{", 0, i)
        e = raw.find(b"\n", i)
        try:
            return grid_from_snapshot(raw[s : e if e >= 0 else len(raw)], "snapshot")
        except (msgspec.DecodeError, MalformedInputError, ValueError, TypeError):
            return Grid(1, 1, 8, "default (unreadable snapshot)")

    def _grow_book(self) -> None:
        """Grow what the message the kernel stopped at lacks: free blocks, hash slots, or both.

        The two grow apart: blocks are reserved for the worst case (every level
        of a message splitting a block), so tying the hash to the block count
        made it 16x the levels held and every probe a cache miss.
        """
        st = self._st
        need = int(st[K.S_NEED])
        if need > min(int(st[K.S_NFREE]), int(st[K.S_NFREE + 1])):
            old = self._meta.shape[2]
            cap = old * 2
            while cap - old + min(int(st[K.S_NFREE]), int(st[K.S_NFREE + 1])) < need:
                cap *= 2
            bk = np.zeros((2, cap, K.BLOCK), np.int64)
            meta = np.zeros((2, 4, cap), np.int64)
            bk[:, :old] = self._bk
            meta[:, :, :old] = self._meta
            for side in (0, 1):
                nf = int(st[K.S_NFREE + side])
                meta[side, K.M_FREE, nf : nf + cap - old] = np.arange(cap - 1, old - 1, -1)
                st[K.S_NFREE + side] = nf + cap - old
            self._bk, self._meta = bk, meta
        size = self._hs.shape[2]
        while 2 * (max(int(st[K.S_NB]), int(st[K.S_NA])) + need) > size:  # keep the hash at most half full
            size *= 2
        if size > self._hs.shape[2]:
            hs = np.zeros((2, 2, size), np.int64)
            K.rehash(self._hs, hs)
            self._hs = hs

    def _first_snapshot(self, data: bytes, recv_ns: int, where: str) -> None:
        try:
            grid = grid_from_snapshot(data, "snapshot")
        except (msgspec.DecodeError, MalformedInputError, ValueError, TypeError, AttributeError) as exc:
            self._report(where, "malformed", f"snapshot: {exc}")
            self._st[K.C_MALFORMED] += 1
            return
        self._set_grid(grid)
        early, self._early = self._early, []
        for d, r, w in early:
            self._run_message(d, r, w)
        self._run_message(data, recv_ns, where)

    def _run_message(self, data: bytes, recv_ns: int, where: str) -> None:
        st = self._st
        st[K.S_POS] = 0
        st[K.S_RECV] = recv_ns
        self._run(np.frombuffer(bytes(data), dtype=np.uint8), lambda line: where or f"message {line}")

    def _run(self, buf: np.ndarray, where_of) -> None:
        st = self._st
        while True:
            rc = K.run_binance(buf, self._sym, st, self._bk, self._hs, self._meta, self._pmeta, self._plv, self._lv, self._ev)
            self._drain(where_of)
            if rc == K.R_DONE:
                return
            if rc == K.R_GROW_BOOK:
                self._grow_book()
            elif rc == K.R_GROW_SCRATCH:
                self._lv = np.zeros((self._lv.shape[0] * 4, 3), np.int64)
            else:  # pragma: no cover - the kernel has no other code
                raise RuntimeError(f"unexpected kernel code {rc}")

    def _drain(self, where_of) -> None:
        st = self._st
        n = int(st[K.S_NEV])
        for line, code, a, b in self._ev[:n].tolist():
            if code == K.EV_SYNC:
                continue
            detail = ""
            if code == K.EV_GAP:
                detail = f"expected {'pu' if self.futures else 'U'}={a}, got {b}"
            elif code == K.EV_RESYNC:
                detail = f"synced at u={a} from snapshot {b}"
            elif code == K.EV_SNAP_REJECT:
                detail = f"lastUpdateId {a} < first buffered U {b}"
            elif code == K.EV_OFFGRID and self.grid is not None:
                detail = f"first level {self.grid.px_str(a)} x {self.grid.qty_str(b)} off the instrument grid"
            elif code == K.EV_CROSSED and self.grid is not None:
                detail = f"bid {self.grid.px_str(a)} >= ask {self.grid.px_str(b)}"
            elif code == K.EV_XBAD:
                detail = f"u={a}"
            elif code == K.EV_PEND_DROP:
                detail = f"{a} buffered diffs dropped"
            elif code == K.EV_BOOK_DISCARDED:
                detail = _EV_NAMES.get(a, str(a))
            self._report(where_of(line), _EV_NAMES.get(code, str(code)), detail)
        st[K.S_NEV] = 0
        if st[K.S_EV_LOST]:
            self.problem_count += int(st[K.S_EV_LOST])
            st[K.S_EV_LOST] = 0

    def _report(self, where: str, code: str, detail: str = "") -> None:
        self.problem_count += 1
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(Problem(where, code, detail))
