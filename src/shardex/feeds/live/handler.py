"""The live feed handlers: one asyncio client per venue websocket connection, books kept exact.

:class:`FeedHandler` holds what every venue shares (below, described for
Binance). :class:`BybitFeedHandler`, :class:`OkxFeedHandler` and
:class:`DeribitFeedHandler` get their snapshot on the socket when they subscribe, so they resync by resubscribing
(``_ResubscribeHandler``); see docs/feeds-live.md.

For each connection: connect (combined streams ``<sym>@depth…/<sym>@trade/
<sym>@bookTicker[/<sym>@markPrice@1s]``), start one fresh
:class:`~shardex.feeds.builders.binance.BinanceBook` per symbol, fetch each
REST depth snapshot while the diffs flow (the builder buffers them and
applies the venue's rule: spot ``U == last_u + 1``, futures ``pu == last_u``),
and publish normalized events to a :class:`~shardex.feeds.live.queue.ConflatingQueue`.

* **Gap** (the builder turns unsynced): publish :class:`BookInvalid`, withdraw
  the book's pending states, fetch a new snapshot; diffs keep flowing into the
  builder, which buffers them and resyncs when the snapshot bridges them.
* **Snapshot that cannot bridge** (older than every buffered diff: the
  builder counts a ``snapshot_reject``), or one still waiting for its bridging
  diff after ``resync_timeout`` s: fetch again, with the backoff delays.
* **Disconnect** (any close but the server's end-of-stream reason, a
  refused connect, a handshake error): every book is invalidated (what was
  missed while away is unknown), and the handler reconnects after
  ``Backoff.next_delay()`` (exponential, capped; jitter only if asked, so tests
  are deterministic), at most ``max_reconnects`` times; the delays reset after
  a session that synced a book.
* A book is published (:class:`BookState`) only while its builder is synced.

Everything the loops do is bounded: messages by the connection, reconnects
by ``max_reconnects``, snapshot retries by ``snapshot_retries``, the whole run
by ``duration`` when given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shardex.errors import ShardexError
from shardex.feeds.builders._base import STAT_KEYS, Problem
from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.builders.bybit import BybitBook
from shardex.feeds.builders.deribit import DeribitBook
from shardex.feeds.builders.okx import OkxBook
from shardex.feeds.live._http import HttpError, http_get
from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BestBidAsk, BookDelta, BookInvalid, BookState, MarkPrice, Trade
from shardex.feeds.live.queue import ConflatingQueue, QueueClosed
from shardex.feeds.live.server import END_REASON

__all__ = [
    "LiveConfig",
    "FeedHandler",
    "BinanceFeedHandler",
    "BybitFeedHandler",
    "OkxFeedHandler",
    "DeribitFeedHandler",
    "HANDLERS",
    "handler_for",
    "VENUE_PROFILES",
    "BYBIT_CATEGORIES",
    "LiveConfigError",
]

#: Per venue: futures rule or spot rule, the depth stream name, the REST depth path.
VENUE_PROFILES: dict[str, tuple[bool, str, str]] = {
    "binance-spot": (False, "depth@100ms", "/api/v3/depth"),
    "binance-usdm": (True, "depth@0ms", "/fapi/v1/depth"),
    "binance-cm": (True, "depth@0ms", "/dapi/v1/depth"),
}

#: Bybit v5 venues of this handler and their public-stream category (``wss://stream.bybit.com/v5/public/<category>``).
BYBIT_CATEGORIES: dict[str, str] = {"bybit-linear": "linear", "bybit-spot": "spot", "bybit-inverse": "inverse"}

#: Builder buffering before the first snapshot, in messages; beyond it the builder starts over.
MAX_EARLY = 200_000

_HEAD = re.compile(rb'\{\s*"stream"\s*:\s*"([^"@]+)@([^"]*)"')


class LiveConfigError(ShardexError, ValueError):
    """A live handler setting is invalid; the message names it."""


@dataclass(frozen=True)
class LiveConfig:
    """Settings of one handler (one websocket connection).

    ``ws_url``: the combined-stream endpoint (``wss://fstream.binance.com/stream``
    or ``ws://127.0.0.1:PORT/stream``; Bybit: the full public endpoint,
    ``wss://stream.bybit.com/v5/public/linear``); ``rest_url``: the REST base (unused by Bybit, which may pass "")
    (``https://fapi.binance.com`` or ``http://127.0.0.1:PORT``); ``venue``: a key
    of :data:`VENUE_PROFILES`; ``symbols``: e.g. ``("BTCUSDT",)``.
    ``channels``: streams per symbol besides depth (``trade``, ``aggTrade``,
    ``bookTicker``, ``markPrice@1s``). ``depth``: levels a side in each
    :class:`BookState`. ``deltas``: also publish :class:`BookDelta` events
    (decodes every diff once more in Python). Seconds everywhere.
    """

    ws_url: str
    rest_url: str
    venue: str
    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("trade", "bookTicker")
    depth: int = 10
    snapshot_limit: int = 1000
    deltas: bool = False
    max_reconnects: int = 20
    snapshot_retries: int = 8
    resync_timeout: float = 5.0
    duration: float | None = None
    open_timeout: float = 5.0
    http_timeout: float = 10.0
    end_reason: str | None = END_REASON
    depth_stream: str | None = None  # None: the venue profile's

    def __post_init__(self) -> None:
        venues = sorted(VENUE_PROFILES) + sorted(BYBIT_CATEGORIES) + ["deribit", "okx"]
        if self.venue not in venues:
            raise LiveConfigError(f"venue must be one of {venues}, got {self.venue!r}")
        if not self.symbols or not all(isinstance(s, str) and s.replace("_", "").replace("-", "").isalnum() for s in self.symbols):
            raise LiveConfigError(f"symbols must be non-empty venue symbols such as ('BTCUSDT',), got {self.symbols!r}")
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise LiveConfigError(f"ws_url must start with ws:// or wss://, got {self.ws_url!r}")
        if self.venue in VENUE_PROFILES and not self.rest_url.startswith(("http://", "https://")):
            raise LiveConfigError(f"rest_url must start with http:// or https://, got {self.rest_url!r}")
        if self.depth < 1 or self.snapshot_limit < 1 or self.max_reconnects < 0 or self.snapshot_retries < 1:
            raise LiveConfigError("depth, snapshot_limit and snapshot_retries must be >= 1 and max_reconnects >= 0")
        if self.duration is not None and self.duration <= 0:
            raise LiveConfigError(f"duration must be > 0 seconds, got {self.duration}")

    def stream_url(self) -> str:
        """The websocket URL with every stream of every symbol in ``?streams=``."""
        depth = self.depth_stream or VENUE_PROFILES[self.venue][1]
        streams = []
        for s in self.symbols:
            s = s.lower()
            streams.append(f"{s}@{depth}")
            streams.extend(f"{s}@{c}" for c in self.channels)
        sep = "&" if "?" in self.ws_url else "?"
        return f"{self.ws_url}{sep}streams={'/'.join(streams)}"

    def snapshot_url(self, symbol: str) -> str:
        """The REST depth URL for one symbol."""
        return f"{self.rest_url.rstrip('/')}{VENUE_PROFILES[self.venue][2]}?symbol={symbol.upper()}&limit={self.snapshot_limit}"


# ---- decoders for the non-book messages (msgspec, typed: a few µs each) ----------------------
class _Trade(msgspec.Struct):
    p: str
    q: str
    T: int = 0
    m: bool = False
    t: int = -1
    a: int = -1


class _Ticker(msgspec.Struct):
    u: int
    b: str
    B: str
    a: str
    A: str
    E: int = 0
    T: int = 0


class _Mark(msgspec.Struct):
    p: str
    i: str = ""
    r: str = ""
    T: int = 0
    E: int = 0


class _Diff(msgspec.Struct):
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    E: int = 0


def _env(t: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(msgspec.defstruct(f"Env{t.__name__}", [("data", t)]))


_DEC_TRADE, _DEC_TICKER, _DEC_MARK, _DEC_DIFF = _env(_Trade), _env(_Ticker), _env(_Mark), _env(_Diff)


@dataclass
class _BookSlot:
    """The handler's view of one symbol: its current builder and the counts of retired ones."""

    key: str
    book: Any  # the venue's builder (BinanceBook, BybitBook, ...)
    retired: dict[str, int] = field(default_factory=dict)
    rejects_seen: int = 0
    snapshot_at: float = 0.0
    fetch: asyncio.Task | None = None
    last_recv_ns: int = 0
    resync_flag: bool = False
    maker: Callable[[int], BookState | None] | None = None
    problems: list[Problem] = field(default_factory=list)
    update_id: int | None = None  # venues whose builder keeps no public id (Bybit ``u``): set by the handler

    def last_id(self) -> int | None:
        """The final update id of the last message applied to the book (None when unknown)."""
        return self.update_id if self.update_id is not None else getattr(self.book, "last_update_id", None)


class FeedHandler(ABC):
    """What every venue's live handler shares: connection loop, book slots, publishing, report.

    A venue subclass supplies five hooks: :meth:`_url` (what to connect to),
    :meth:`_new_book` (a builder for one book route), :meth:`_on_open` (subscribe
    and ask for snapshots once connected), :meth:`_on_raw` (route one message)
    and :meth:`_resync` (how a book that lost sync gets a new snapshot: a REST
    fetch on Binance, a resubscribe on Bybit). Everything else (reconnects with
    backoff, invalidation, lazy :class:`BookState`, the report) is here, once.

    Parameters
    ----------
    config:
        :class:`LiveConfig`.
    queue:
        Where events go; a new ``ConflatingQueue()`` when None.
    backoff:
        Reconnect and snapshot-retry delays; ``Backoff()`` (0.1 s doubling to
        5 s, no jitter) when None.
    sleep:
        ``asyncio.sleep`` by default; tests may pass a recorder.
    close_queue:
        Close the queue when :meth:`run` returns, so ``async for`` consumers end.
    """

    def __init__(
        self,
        config: LiveConfig,
        queue: ConflatingQueue | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        close_queue: bool = True,
    ) -> None:
        self.cfg = config
        self.queue = queue if queue is not None else ConflatingQueue()
        self.backoff = backoff if backoff is not None else Backoff()
        self._sleep = sleep
        self.close_queue = close_queue
        self.venue = config.venue
        self.slots: dict[str, _BookSlot] = {}
        for route, key in self._routes():
            self.slots[route] = _BookSlot(key, self._new_book(route))
        self.counts = {
            "messages": 0,
            "depth": 0,
            "tickers": 0,
            "trades": 0,
            "marks": 0,
            "other": 0,
            "undecodable": 0,
            "connections": 0,
            "reconnects": 0,
            "disconnects": 0,
            "connect_failures": 0,
            "snapshot_requests": 0,
            "snapshot_errors": 0,
            "snapshot_retries": 0,
            "gaps_detected": 0,
            "resyncs_done": 0,
            "invalidations": 0,
            "states_published": 0,
        }
        self.delays: list[float] = []
        self.end = ""
        self.problems: list[Problem] = []
        self.seconds = 0.0
        self._ws = None
        self._conn_id = ""
        self._synced_this_session = False

    # ---- public -------------------------------------------------------------------------
    def book(self, route: str) -> Any:
        """The current builder of a book route (serve it only while ``.synced``)."""
        return self.slots[route].book

    def top10_sha256(self, route: str) -> str | None:
        """The issue-7 top-10 hash of a book; None while unsynced."""
        return self.book(route).top10_sha256()

    async def run(self) -> dict[str, Any]:
        """Connect, keep the books, reconnect on failure; return :meth:`report` when done.

        Ends on the server's end-of-stream close (``config.end_reason``), after
        ``config.duration`` seconds, or after ``max_reconnects`` failed reconnects.
        """
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.cfg.duration):
                await self._connect_loop()
        except TimeoutError:
            self.end = f"duration {self.cfg.duration} s reached"
        finally:
            for slot in self.slots.values():
                if slot.fetch is not None and not slot.fetch.done():
                    slot.fetch.cancel()
            self.seconds = time.perf_counter() - t0
            if self.close_queue:
                self.queue.close()
        return self.report()

    def report(self) -> dict[str, Any]:
        """Handler counters, per-book builder counters (all connections summed), hashes, queue counters."""
        books = {}
        for sym, slot in self.slots.items():
            s = slot.book.stats()
            summed = {k: s.get(k, 0) + slot.retired.get(k, 0) for k in STAT_KEYS}
            books[slot.key] = {
                "synced": slot.book.synced,
                "top10_sha256": slot.book.top10_sha256(),
                "last_update_id": slot.last_id(),
                **summed,
                "problems": [str(p) for p in (slot.problems + list(slot.book.problems))[:20]],
            }
        secs = self.seconds or 1e-9
        return {
            "end": self.end,
            "seconds": round(self.seconds, 4),
            "messages_per_second": round(self.counts["messages"] / secs, 1),
            **self.counts,
            "reconnect_delays": [round(d, 4) for d in self.delays],
            "queue": self.queue.stats(),
            "books": books,
            "problems": [str(p) for p in self.problems[:20]],
        }

    # ---- connections --------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        url = self._url()
        for attempt in range(self.cfg.max_reconnects + 1):  # bounded by max_reconnects
            if attempt:
                self.counts["reconnects"] += 1
            self._conn_id = f"conn{attempt + 1}"
            self._synced_this_session = False
            ended = False
            try:
                async with connect(
                    url,
                    proxy=None,
                    compression=None,
                    open_timeout=self.cfg.open_timeout,
                    max_size=1 << 22,
                    max_queue=64,
                ) as ws:
                    self.counts["connections"] += 1
                    self._ws = ws
                    await self._session(ws)
            except ConnectionClosed as exc:
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                if self.cfg.end_reason is not None and reason == self.cfg.end_reason:
                    self.end = f"server closed: {reason}"
                    await self._finish_fetches()
                    ended = True  # the stream is over, not broken: the books are final, keep them served
                    return
                self.counts["disconnects"] += 1
                self._problem(f"{self._conn_id}", "disconnect", str(exc))
            except InvalidURI as exc:
                raise LiveConfigError(f"bad websocket URL {url!r}: {exc}") from None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.counts["connect_failures"] += 1
                self._problem(self._conn_id, "connect_failed", f"{type(exc).__name__}: {exc}")
            except QueueClosed:
                self.end = "queue closed by the consumer"
                return
            finally:
                self._ws = None
                if not ended:
                    self._invalidate_all("disconnect")
            if self._synced_this_session:
                self.backoff.reset()
            if attempt == self.cfg.max_reconnects:
                break
            delay = self.backoff.next_delay()
            self.delays.append(delay)
            await self._sleep(delay)
        self.end = f"gave up after {self.cfg.max_reconnects} reconnects"

    async def _session(self, ws) -> None:
        for sym, slot in self.slots.items():
            self._fresh_book(sym, slot)
        await self._on_open(ws)
        n = 0
        recv = ws.recv
        on = self._on_raw
        while True:  # ends when the connection closes (recv raises ConnectionClosed)
            data = await recv(decode=False)
            n += 1
            await on(data, n)

    async def _finish_fetches(self) -> None:
        """At the end of the stream, let snapshot requests in flight land (the diffs they bridge are buffered)."""
        tasks = [s.fetch for s in self.slots.values() if s.fetch is not None and not s.fetch.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.cfg.http_timeout)

    def _fresh_book(self, sym: str, slot: _BookSlot) -> None:
        """A new connection: the old book cannot be trusted; keep its counters, start a new builder."""
        old = slot.book.stats()
        if old.get("book_messages") or old.get("snapshots"):
            for k in STAT_KEYS:
                slot.retired[k] = slot.retired.get(k, 0) + old.get(k, 0)
            slot.problems.extend(slot.book.problems[: max(0, 200 - len(slot.problems))])
            slot.book = self._new_book(sym)
        slot.rejects_seen = 0
        slot.snapshot_at = 0.0
        slot.maker = None
        slot.update_id = None

    # ---- venue hooks ------------------------------------------------------------------------
    @abstractmethod
    def _routes(self) -> list[tuple[str, str]]:
        """(route, published key) per book: the route is what :meth:`_on_raw` finds in a message."""

    @abstractmethod
    def _new_book(self, route: str) -> Any:
        """A fresh builder for one route."""

    @abstractmethod
    def _url(self) -> str:
        """The websocket URL to connect to."""

    @abstractmethod
    async def _on_open(self, ws) -> None:
        """Once connected: subscribe, ask for snapshots."""

    @abstractmethod
    async def _on_raw(self, data: bytes, n: int) -> None:
        """Handle one raw websocket message (the ``n``-th of this connection)."""

    @abstractmethod
    def _resync(self, route: str, slot: _BookSlot) -> None:
        """Get a new snapshot for a book that lost sync (or whose snapshot cannot bridge)."""

    def _publish_delta(self, slot: _BookSlot, data: bytes, recv_ns: int) -> None:
        """Publish a :class:`BookDelta` for an applied message (venues that support ``deltas``)."""

    def _after_book(self, sym: str, slot: _BookSlot, was: bool, where: str, recv_ns: int, data: bytes | None) -> None:
        book = slot.book
        if book.synced:
            if not was:
                self.counts["resyncs_done"] += 1
                self._synced_this_session = True
                slot.resync_flag = True
                slot.maker = self._maker(slot, book)
            self.counts["states_published"] += 1
            self.queue.put_latest(("book", slot.key), slot.maker, lazy=True)
            if self.cfg.deltas and was and data is not None:
                self._publish_delta(slot, data, recv_ns)
            return
        if was:  # a gap: the builder discarded the book and buffers from here
            self.counts["gaps_detected"] += 1
            self._invalidate(slot, "gap", where, recv_ns)
            self._resync(sym, slot)
            return
        st = book.stats()
        if st["snapshot_rejects"] > slot.rejects_seen:  # the snapshot can never bridge the buffered diffs
            slot.rejects_seen = st["snapshot_rejects"]
            self._resync(sym, slot)
        elif slot.snapshot_at and time.monotonic() - slot.snapshot_at > self.cfg.resync_timeout:
            slot.snapshot_at = 0.0
            self._resync(sym, slot)
        elif book.grid is None and st["buffered"] > MAX_EARLY:
            self._problem(where, "no_snapshot", f"{st['buffered']} messages buffered before any snapshot: starting over")
            self._fresh_book(sym, slot)

    def _maker(self, slot: _BookSlot, book: Any) -> Callable[[int], BookState | None]:
        depth = self.cfg.depth

        def make(folded: int) -> BookState | None:
            # built when the consumer takes it: the latest state, never an unsynced one
            if slot.book is not book or not book.synced:
                return None
            bids, asks = book.top(depth)
            resync, slot.resync_flag = slot.resync_flag, False
            return BookState(slot.key, slot.last_id(), bids, asks, slot.last_recv_ns, folded, resync)

        return make

    def _invalidate(self, slot: _BookSlot, reason: str, where: str, recv_ns: int) -> None:
        self.counts["invalidations"] += 1
        self.queue.discard(("book", slot.key), ("delta", slot.key))
        self.queue.put_latest(("invalid", slot.key), BookInvalid(slot.key, reason, where, recv_ns))

    def _invalidate_all(self, reason: str) -> None:
        for slot in self.slots.values():
            if slot.fetch is not None and not slot.fetch.done():
                slot.fetch.cancel()
            if slot.book.synced:
                self._invalidate(slot, reason, self._conn_id, time.time_ns())

    # ---- reports ----------------------------------------------------------------------------
    def _undecodable(self, n: int, exc: Exception) -> None:
        self.counts["undecodable"] += 1
        self._problem(f"{self._conn_id}#{n}", "malformed", str(exc))

    def _problem(self, where: str, code: str, detail: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(Problem(where, code, detail))


class BinanceFeedHandler(FeedHandler):
    """Keep exact Binance books from a live (or replayed) websocket connection; publish to a queue.

    Parameters are :class:`FeedHandler`'s. Books are keyed by lower-case
    symbol; a gap is healed by a REST snapshot the builder bridges with its
    buffered diffs. :meth:`run` returns :meth:`report`. One message costs one
    builder kernel call (depth, bookTicker) or one msgspec decode (trade,
    markPrice) plus an O(1) queue operation.
    """

    def __init__(self, config: LiveConfig, *args: Any, **kwargs: Any) -> None:
        if config.venue not in VENUE_PROFILES:
            raise LiveConfigError(f"BinanceFeedHandler needs a venue in {sorted(VENUE_PROFILES)}, got {config.venue!r}")
        self.futures = VENUE_PROFILES[config.venue][0]
        super().__init__(config, *args, **kwargs)

    def book(self, symbol: str) -> BinanceBook:
        """The current builder of ``symbol`` (serve it only while ``.synced``)."""
        return self.slots[symbol.lower()].book

    def top10_sha256(self, symbol: str) -> str | None:
        """The issue-7 top-10 hash of a symbol's book; None while unsynced."""
        return self.book(symbol).top10_sha256()

    def _routes(self) -> list[tuple[str, str]]:
        return [(s.lower(), f"{self.cfg.venue}:{s.upper()}") for s in self.cfg.symbols]

    def _new_book(self, sym: str) -> BinanceBook:
        return BinanceBook(f"{self.venue}:{sym.upper()}", sym, self.futures)

    def _url(self) -> str:
        return self.cfg.stream_url()

    async def _on_open(self, ws) -> None:
        # the streams are in the URL; the snapshots are fetched while the diffs flow
        for sym, slot in self.slots.items():
            self._want_snapshot(sym, slot)

    def _resync(self, route: str, slot: _BookSlot) -> None:
        self._want_snapshot(route, slot)

    # ---- one message ----------------------------------------------------------------------------
    async def _on_raw(self, data: bytes, n: int) -> None:
        self.counts["messages"] += 1
        recv_ns = time.time_ns()
        h = _HEAD.match(data)
        if h is None:
            self.counts["other"] += 1  # subscription replies and the like
            return
        sym = h.group(1).decode()
        chan = h.group(2)
        slot = self.slots.get(sym)
        if slot is None:
            self.counts["other"] += 1
            return
        if chan.startswith(b"depth"):
            self.counts["depth"] += 1
            book = slot.book
            was = book.synced
            book.on_message(data, recv_ns, f"{self._conn_id}#{n}")
            slot.last_recv_ns = recv_ns
            self._after_book(sym, slot, was, f"{self._conn_id}#{n}", recv_ns, data)
        elif chan == b"bookTicker":
            self.counts["tickers"] += 1
            slot.book.on_message(data, recv_ns, f"{self._conn_id}#{n}")  # cross-checked against the book
            try:
                t = _DEC_TICKER.decode(data).data
            except msgspec.DecodeError as exc:
                self._undecodable(n, exc)
                return
            self.queue.put_latest(
                ("bbo", slot.key),
                BestBidAsk(self.venue, sym.upper(), t.u, t.b, t.B, t.a, t.A, (t.T or t.E) * 1_000_000, recv_ns),
            )
        elif chan == b"trade" or chan == b"aggTrade":
            self.counts["trades"] += 1
            try:
                t = _DEC_TRADE.decode(data).data
            except msgspec.DecodeError as exc:
                self._undecodable(n, exc)
                return
            tid = t.t if t.t >= 0 else t.a
            await self.queue.put(Trade(self.venue, sym.upper(), tid, t.p, t.q, t.m, t.T * 1_000_000, recv_ns))
        elif chan.startswith(b"markPrice"):
            self.counts["marks"] += 1
            try:
                m = _DEC_MARK.decode(data).data
            except msgspec.DecodeError as exc:
                self._undecodable(n, exc)
                return
            self.queue.put_latest(
                ("mark", slot.key), MarkPrice(self.venue, sym.upper(), m.p, m.i, m.r, m.T * 1_000_000, m.E * 1_000_000, recv_ns)
            )
        else:
            self.counts["other"] += 1

    def _publish_delta(self, slot: _BookSlot, data: bytes, recv_ns: int) -> None:
        try:
            d = _DEC_DIFF.decode(data).data
        except msgspec.DecodeError:
            return  # the builder already counted and reported it
        self.queue.put_delta(
            ("delta", slot.key), BookDelta(slot.key, d.U, d.u, dict(d.b), dict(d.a), d.E * 1_000_000, recv_ns)
        )

    # ---- snapshots ----------------------------------------------------------------------------
    def _want_snapshot(self, sym: str, slot: _BookSlot) -> None:
        if slot.fetch is None or slot.fetch.done():
            slot.fetch = asyncio.get_running_loop().create_task(self._fetch_snapshot(sym, slot, slot.book))

    async def _fetch_snapshot(self, sym: str, slot: _BookSlot, book: BinanceBook) -> None:
        url = self.cfg.snapshot_url(sym)
        retry = Backoff(self.backoff.initial, self.backoff.factor, self.backoff.cap, self.backoff.jitter, self.backoff.seed)
        for attempt in range(self.cfg.snapshot_retries):  # bounded
            if slot.book is not book or book.synced:
                return  # reconnected meanwhile, or already healed
            if attempt:
                self.counts["snapshot_retries"] += 1
                await self._sleep(retry.next_delay())
            self.counts["snapshot_requests"] += 1
            where = f"{self._conn_id} GET depth #{self.counts['snapshot_requests']}"
            try:
                body = await http_get(url, self.cfg.http_timeout)
            except HttpError as exc:
                self.counts["snapshot_errors"] += 1
                self._problem(where, "snapshot_error", str(exc))
                continue
            if slot.book is not book:
                return
            was = book.synced
            book.on_snapshot(body, time.time_ns(), where)
            slot.snapshot_at = time.monotonic()
            rejects = book.stats()["snapshot_rejects"]
            if book.synced:
                slot.rejects_seen = rejects
                self._after_book(sym, slot, was, where, slot.last_recv_ns, None)
                return
            if rejects > slot.rejects_seen:
                slot.rejects_seen = rejects
                continue  # older than the buffered diffs: ask again
            return  # loaded; waiting for the diff that bridges it (the message path watches the time)
        self._problem(url, "snapshot_gave_up", f"no usable snapshot after {self.cfg.snapshot_retries} requests")



#: Binance channel names in :attr:`LiveConfig.channels` and the Bybit v5 topic that carries the same events.
_BYBIT_CHANNELS = {"trade": "publicTrade", "aggTrade": "publicTrade", "publicTrade": "publicTrade",
                   "bookTicker": "tickers", "markPrice@1s": "tickers", "tickers": "tickers"}


class _ResubscribeHandler(FeedHandler):
    """Venues whose snapshot comes on the websocket when a book is subscribed: resync = resubscribe.

    Subclasses give :meth:`_request` (one subscribe/unsubscribe request for
    one topic) and :meth:`_topics` (every topic to subscribe, books first).
    """

    #: The venues (``LiveConfig.venue``) a subclass speaks for.
    VENUES: tuple[str, ...] = ()

    def __init__(self, config: LiveConfig, *args: Any, **kwargs: Any) -> None:
        self.check_config(config)
        super().__init__(config, *args, **kwargs)
        self._ws_send: Callable[[str], Awaitable[Any]] | None = None
        self.counts.update(resubscribes=0, sub_errors=0)

    @classmethod
    def check_config(cls, config: LiveConfig) -> None:
        """Refuse a config for another venue, or one asking for BookDelta events."""
        if config.venue not in cls.VENUES:
            raise LiveConfigError(f"{cls.__name__} needs a venue in {sorted(cls.VENUES)}, got {config.venue!r}")
        if config.deltas:
            raise LiveConfigError("deltas: BookDelta events are published for Binance venues only")

    @abstractmethod
    def _request(self, op: str, topic: str) -> str:
        """The venue's ``op`` ("subscribe" / "unsubscribe") request for one topic."""

    @abstractmethod
    def _topics(self) -> list[str]:
        """Every topic of this connection: the book routes, then the other channels."""

    def _url(self) -> str:
        return self.cfg.ws_url

    async def _on_open(self, ws) -> None:
        self._ws_send = ws.send
        for t in self._topics():  # one topic per request: Bybit spot takes at most 10 args per request
            await ws.send(self._request("subscribe", t))
        now = time.monotonic()
        for slot in self.slots.values():
            slot.snapshot_at = now  # resubscribe if no snapshot comes within resync_timeout

    def _resync(self, route: str, slot: _BookSlot) -> None:
        if self._ws_send is None or (slot.fetch is not None and not slot.fetch.done()):
            return
        self.counts["resubscribes"] += 1
        slot.snapshot_at = time.monotonic()
        slot.fetch = asyncio.get_running_loop().create_task(self._resubscribe(route, self._ws_send))

    async def _resubscribe(self, topic: str, send: Callable[[str], Awaitable[Any]]) -> None:
        try:  # in this order, on one socket: the venue answers the subscribe with a fresh snapshot
            await send(self._request("unsubscribe", topic))
            await send(self._request("subscribe", topic))
        except ConnectionClosed:
            pass  # the connection loop reconnects and subscribes afresh

    def _on_book(self, route: str, slot: _BookSlot, doc: dict, recv_ns: int, where: str, update_id: Any) -> None:
        """One decoded book message to its builder, then the shared gap/resync/publish logic."""
        self.counts["depth"] += 1
        book = slot.book
        was = book.synced
        book.on_doc(doc, recv_ns, where)
        if isinstance(update_id, int):
            slot.update_id = update_id
        slot.last_recv_ns = recv_ns
        self._after_book(route, slot, was, where, recv_ns, None)

    def _decode(self, data: bytes, n: int) -> dict | None:
        self.counts["messages"] += 1
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            self._undecodable(n, exc)
            return None
        if not isinstance(doc, dict):
            self._undecodable(n, ValueError("not a JSON object"))
            return None
        return doc


class BybitFeedHandler(_ResubscribeHandler):
    """Keep exact Bybit v5 books (one category's public connection) and publish to a queue.

    Bybit sends the book's snapshot on the websocket when a topic is
    subscribed (``orderbook.<depth>.<SYMBOL>``), then deltas with ``u`` growing
    by one per message and ``seq`` never going back (the rule is
    :class:`~shardex.feeds.builders.bybit.BybitBook`'s). There is no REST
    snapshot to fetch, so a gap is healed by **resubscribing** the topic
    (``unsubscribe`` then ``subscribe``), which makes the venue send a fresh
    snapshot; deltas still in flight meanwhile are dropped by the unsynced
    builder. ``LiveConfig.channels`` maps Binance names onto Bybit topics
    (``trade`` -> ``publicTrade``, ``bookTicker``/``markPrice@1s`` -> ``tickers``).

    Books are routed by topic and keyed ``<venue>:<SYMBOL>``
    (``bybit-linear:BTCUSDT``): linear and spot use the same topic names, so
    the category (one connection each) is part of the key. One message costs
    one msgspec decode and one builder call (``on_doc``).
    """

    VENUES = tuple(BYBIT_CATEGORIES)

    def __init__(self, config: LiveConfig, *args: Any, **kwargs: Any) -> None:
        self._depth_topic = config.depth_stream or "orderbook.200"
        super().__init__(config, *args, **kwargs)
        self._tickers: dict[str, dict[str, Any]] = {}  # tickers deltas carry changed fields only: merge them

    def book(self, symbol: str) -> BybitBook:
        """The current builder of ``symbol`` (serve it only while ``.synced``)."""
        return self.slots[f"{self._depth_topic}.{symbol.upper()}"].book

    def _routes(self) -> list[tuple[str, str]]:
        return [(f"{self._depth_topic}.{s.upper()}", f"{self.cfg.venue}:{s.upper()}") for s in self.cfg.symbols]

    def _new_book(self, route: str) -> BybitBook:
        return BybitBook(f"{self.venue}:{route}")

    def _topics(self) -> list[str]:
        topics = list(self.slots)
        for ch in dict.fromkeys(_BYBIT_CHANNELS.get(c, c) for c in self.cfg.channels):
            topics.extend(f"{ch}.{s.upper()}" for s in self.cfg.symbols)
        return topics

    def _request(self, op: str, topic: str) -> str:
        return json.dumps({"op": op, "args": [topic]})

    async def _on_raw(self, data: bytes, n: int) -> None:
        recv_ns = time.time_ns()
        where = f"{self._conn_id}#{n}"
        doc = self._decode(data, n)
        if doc is None:
            return
        topic = doc.get("topic")
        if topic is None:
            if doc.get("success") is False:  # a refused (un)subscribe: say so, it may leave a book without data
                self.counts["sub_errors"] += 1
                self._problem(where, "subscribe_error", str(doc.get("ret_msg", "")))
            self.counts["other"] += 1  # subscribe replies, pongs
            return
        slot = self.slots.get(topic)
        if slot is not None:
            d = doc.get("data")
            self._on_book(topic, slot, doc, recv_ns, where, d.get("u") if isinstance(d, dict) else None)
            return
        kind, _, sym = topic.rpartition(".")
        try:
            if kind == "publicTrade":
                for t in doc["data"]:
                    self.counts["trades"] += 1
                    # Bybit trade ids are strings (a UUID on linear): kept as received
                    await self.queue.put(
                        Trade(self.venue, t["s"], t["i"], t["p"], t["v"], t["S"] == "Sell", int(t["T"]) * 1_000_000, recv_ns)
                    )
            elif kind == "tickers":
                self._on_ticker(sym, doc, recv_ns)
            else:
                self.counts["other"] += 1
        except (KeyError, TypeError, ValueError) as exc:
            self._undecodable(n, exc)

    def _on_ticker(self, sym: str, doc: dict, recv_ns: int) -> None:
        d = doc.get("data") or {}
        tk = self._tickers.setdefault(sym, {})
        if doc.get("type") == "snapshot":
            tk.clear()
        tk.update(d)
        exch_ns = int(doc.get("ts", 0)) * 1_000_000
        key = f"{self.venue}:{sym}"
        if "bid1Price" in d or "ask1Price" in d:
            self.counts["tickers"] += 1
            self.queue.put_latest(
                ("bbo", key),
                BestBidAsk(self.venue, sym, int(doc.get("cs", 0)), tk.get("bid1Price", ""), tk.get("bid1Size", ""),
                           tk.get("ask1Price", ""), tk.get("ask1Size", ""), exch_ns, recv_ns),
            )
        if "markPrice" in d or "fundingRate" in d or "indexPrice" in d:
            self.counts["marks"] += 1
            self.queue.put_latest(
                ("mark", key),
                MarkPrice(self.venue, sym, tk.get("markPrice", ""), tk.get("indexPrice", ""), tk.get("fundingRate", ""),
                          int(tk.get("nextFundingTime") or 0) * 1_000_000, exch_ns, recv_ns),
            )


#: OKX v5 channels whose messages make up :class:`MarkPrice` (merged per instrument).
_OKX_MARK_CHANNELS = ("mark-price", "index-tickers", "funding-rate")

#: Binance channel names in :attr:`LiveConfig.channels` and the OKX v5 channels that carry the same events.
_OKX_CHANNELS: dict[str, tuple[str, ...]] = {
    "trade": ("trades",), "aggTrade": ("trades",), "trades": ("trades",),
    "bookTicker": ("tickers",), "tickers": ("tickers",),
    "markPrice@1s": _OKX_MARK_CHANNELS,
}


def _okx_index_id(inst: str) -> str:
    """The OKX index (``index-tickers`` instId) an instrument is marked against: its first two parts.

    ``BTC-USD-220527`` and ``BTC-USD-SWAP`` -> ``BTC-USD``; spot ``BTC-USDT`` -> ``BTC-USDT``.
    """
    return "-".join(inst.split("-")[:2])


def _okx_topic(channel: str, inst: str) -> str | None:
    """The topic of ``channel`` for ``inst``; None where OKX has no such channel (funding off swaps)."""
    if channel == "index-tickers":
        return f"{channel}:{_okx_index_id(inst)}"
    if channel == "funding-rate" and not inst.endswith("-SWAP"):
        return None  # OKX refuses funding-rate for anything but perpetual swaps
    return f"{channel}:{inst}"


# OKX mark/index/funding entries: every field a string, stamps in ms (msgspec-checked, a few µs each)
class _OkxMarkPx(msgspec.Struct):
    instId: str
    markPx: str
    ts: str = "0"


class _OkxIndex(msgspec.Struct):
    instId: str
    idxPx: str
    ts: str = "0"


class _OkxFunding(msgspec.Struct):
    instId: str
    fundingRate: str
    fundingTime: str = "0"
    nextFundingRate: str = ""
    ts: str = "0"


_OKX_MARK_TYPES = {"mark-price": list[_OkxMarkPx], "index-tickers": list[_OkxIndex], "funding-rate": list[_OkxFunding]}


class OkxFeedHandler(_ResubscribeHandler):
    """Keep exact OKX v5 ``books`` books (``wss://ws.okx.com:8443/ws/v5/public``) and publish to a queue.

    OKX sends a ``snapshot`` on subscribe, then ``update`` messages; after
    each one the builder (:class:`~shardex.feeds.builders.okx.OkxBook`) checks
    the CRC32 of the top 25 levels and ``seqId``/``prevSeqId`` where present.
    A mismatch is a gap, healed by **resubscribing** the instrument's ``books``
    channel, which makes OKX send a fresh snapshot. Symbols are instIds
    (``BTC-USDT``, ``UNI-USD-SWAP``); books are keyed ``okx:<instId>``, as in
    the offline replay. ``depth_stream`` picks the book channel (``books``).

    ``markPrice@1s`` in ``channels`` subscribes ``mark-price`` per instrument,
    ``index-tickers`` per index (:func:`_okx_index_id`, shared by the
    instruments on it) and ``funding-rate`` per swap (OKX has none for
    others); the native names select one channel each. The three are merged
    per instrument into one :class:`MarkPrice`, published (latest wins) on
    each message; fields not received yet are ``""``.
    """

    VENUES = ("okx",)

    def __init__(self, config: LiveConfig, *args: Any, **kwargs: Any) -> None:
        self._channel = config.depth_stream or "books"
        super().__init__(config, *args, **kwargs)
        # per instrument: [mark, index, funding_rate, next_funding_ns, next_funding_rate], as last received
        self._marks: dict[str, list[Any]] = {}
        self._on_index: dict[str, list[str]] = {}  # index instId -> the instruments marked against it
        for s in config.symbols:
            self._on_index.setdefault(_okx_index_id(s), []).append(s)

    def book(self, symbol: str) -> OkxBook:
        """The current builder of instrument ``symbol`` (serve it only while ``.synced``)."""
        return self.slots[f"{self._channel}:{symbol}"].book

    def _routes(self) -> list[tuple[str, str]]:
        return [(f"{self._channel}:{s}", f"okx:{s}") for s in self.cfg.symbols]

    def _new_book(self, route: str) -> OkxBook:
        return OkxBook(f"okx:{route.partition(':')[2]}")

    def _topics(self) -> list[str]:
        topics = list(self.slots)
        for ch in dict.fromkeys(ch for c in self.cfg.channels for ch in _OKX_CHANNELS.get(c, (c,))):
            topics.extend(t for s in self.cfg.symbols if (t := _okx_topic(ch, s)) is not None)
        return list(dict.fromkeys(topics))  # instruments on one index share its topic: subscribe it once

    def _request(self, op: str, topic: str) -> str:
        ch, _, inst = topic.partition(":")
        return json.dumps({"op": op, "args": [{"channel": ch, "instId": inst}]})

    async def _on_raw(self, data: bytes, n: int) -> None:
        recv_ns = time.time_ns()
        where = f"{self._conn_id}#{n}"
        if data == b"pong":
            self.counts["messages"] += 1
            self.counts["other"] += 1
            return
        doc = self._decode(data, n)
        if doc is None:
            return
        arg = doc.get("arg")
        if "event" in doc or not isinstance(arg, dict):
            if doc.get("event") == "error":  # a refused (un)subscribe: say so, it may leave a book without data
                self.counts["sub_errors"] += 1
                self._problem(where, "subscribe_error", str(doc.get("msg", "")))
            self.counts["other"] += 1
            return
        ch, inst = arg.get("channel", ""), arg.get("instId", "")
        route = f"{ch}:{inst}"
        slot = self.slots.get(route)
        try:
            if slot is not None:
                last = (doc.get("data") or [{}])[-1]
                self._on_book(route, slot, doc, recv_ns, where, last.get("seqId") if isinstance(last, dict) else None)
            elif ch == "trades":
                for t in doc["data"]:
                    self.counts["trades"] += 1
                    await self.queue.put(
                        Trade(self.venue, inst, t["tradeId"], t["px"], t["sz"], t["side"] == "sell", int(t["ts"]) * 1_000_000, recv_ns)
                    )
            elif ch == "tickers":
                for t in doc["data"]:
                    self.counts["tickers"] += 1
                    self.queue.put_latest(
                        ("bbo", f"okx:{inst}"),
                        BestBidAsk(self.venue, inst, 0, t.get("bidPx", ""), t.get("bidSz", ""), t.get("askPx", ""),
                                   t.get("askSz", ""), int(t.get("ts") or 0) * 1_000_000, recv_ns),
                    )
            elif ch in _OKX_MARK_TYPES:
                self._on_mark(ch, doc.get("data"), recv_ns)
            else:
                self.counts["other"] += 1
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # msgspec.ValidationError is a ValueError
            self._undecodable(n, exc)

    def _on_mark(self, ch: str, data: Any, recv_ns: int) -> None:
        """Merge ``mark-price`` / ``index-tickers`` / ``funding-rate`` entries into each instrument's MarkPrice."""
        for e in msgspec.convert(data, _OKX_MARK_TYPES[ch]):  # all checked before any is published
            self.counts["marks"] += 1
            exch_ns = int(e.ts) * 1_000_000
            if isinstance(e, _OkxIndex):
                for inst in self._on_index.get(e.instId, ()):
                    self._mark_of(inst)[1] = e.idxPx
                    self._publish_mark(inst, exch_ns, recv_ns)
                continue
            m = self._mark_of(e.instId)
            if isinstance(e, _OkxMarkPx):
                m[0] = e.markPx
            else:
                m[2], m[3], m[4] = e.fundingRate, int(e.fundingTime) * 1_000_000, e.nextFundingRate
            self._publish_mark(e.instId, exch_ns, recv_ns)

    def _mark_of(self, inst: str) -> list[Any]:
        m = self._marks.get(inst)
        if m is None:
            m = self._marks[inst] = ["", "", "", 0, ""]
        return m

    def _publish_mark(self, inst: str, exch_ns: int, recv_ns: int) -> None:
        mark, index, rate, next_ns, next_rate = self._marks[inst]
        self.queue.put_latest(
            ("mark", f"okx:{inst}"), MarkPrice(self.venue, inst, mark, index, rate, next_ns, exch_ns, recv_ns, next_rate)
        )


#: Binance channel names in :attr:`LiveConfig.channels` and the Deribit channel kind that carries the same events.
_DERIBIT_CHANNELS = {"trade": "trades", "aggTrade": "trades", "trades": "trades",
                     "bookTicker": "ticker", "markPrice@1s": "ticker", "ticker": "ticker"}


def _num(x: Any) -> str:
    """A Deribit JSON number as a decimal string (floats through their shortest repr); "" for None."""
    if x is None:
        return ""
    return repr(x) if isinstance(x, float) else str(x)


class DeribitFeedHandler(_ResubscribeHandler):
    """Keep exact Deribit books (``wss://www.deribit.com/ws/api/v2``, JSON-RPC) and publish to a queue.

    Subscribes with ``public/subscribe`` to ``book.<instrument>.raw`` (the
    interval is ``depth_stream``, default ``raw``) and, for ``bookTicker`` /
    ``markPrice@1s`` / ``trade`` in ``channels``, ``ticker.<instrument>.100ms``
    and ``trades.<instrument>.100ms``. The first book notification is a
    snapshot; each change's ``prev_change_id`` must equal the last
    ``change_id`` (:class:`~shardex.feeds.builders.deribit.DeribitBook`). A
    mismatch is a gap, healed by **resubscribing** (``public/unsubscribe`` then
    ``public/subscribe``): Deribit answers a subscribe with a fresh snapshot.
    Tickers publish :class:`BestBidAsk` and :class:`MarkPrice` (mark, index,
    ``current_funding`` on perpetuals). Books are keyed ``deribit:<instrument>``,
    as in the offline replay.

    On open, before subscribing, it sends ``public/set_heartbeat`` with
    ``heartbeat`` seconds; Deribit then sends a heartbeat ``test_request``
    at that interval and closes the connection unless ``public/test`` comes
    within it, so a connection that went silent is noticed by both sides.
    Every ``test_request`` is answered at once from the receive loop
    (counted in ``heartbeats``); a refused ``set_heartbeat`` is reported
    (``heartbeat_error``).

    Parameters
    ----------
    config, queue, backoff, sleep, close_queue:
        :class:`FeedHandler`'s.
    heartbeat:
        The heartbeat interval in seconds; Deribit's minimum is 10 (the
        default). Smaller values are for tests against a server that allows
        them (``CaptureServer(min_heartbeat=...)``); None sends no
        ``set_heartbeat``.
    """

    #: interval of the ticker and trades channels (``raw`` needs an authorized connection on Deribit)
    channel_interval = "100ms"

    #: Deribit's smallest ``public/set_heartbeat`` interval, seconds (the default).
    MIN_HEARTBEAT = 10.0

    VENUES = ("deribit",)

    def __init__(self, config: LiveConfig, *args: Any, heartbeat: float | None = MIN_HEARTBEAT, **kwargs: Any) -> None:
        if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or not heartbeat > 0):
            raise LiveConfigError(f"heartbeat must be a number of seconds > 0, or None, got {heartbeat!r}")
        self._interval = config.depth_stream or "raw"
        self._rid = 0
        self._hb_rid: int | None = None
        self.heartbeat = heartbeat
        super().__init__(config, *args, **kwargs)
        self.counts.update(heartbeats=0)

    def book(self, symbol: str) -> DeribitBook:
        """The current builder of instrument ``symbol`` (serve it only while ``.synced``)."""
        return self.slots[f"book.{symbol}.{self._interval}"].book

    def _routes(self) -> list[tuple[str, str]]:
        return [(f"book.{s}.{self._interval}", f"deribit:{s}") for s in self.cfg.symbols]

    def _new_book(self, route: str) -> DeribitBook:
        return DeribitBook(f"deribit:{route.split('.')[1]}")

    def _topics(self) -> list[str]:
        topics = list(self.slots)
        for ch in dict.fromkeys(_DERIBIT_CHANNELS.get(c, c) for c in self.cfg.channels):
            topics.extend(f"{ch}.{s}.{self.channel_interval}" for s in self.cfg.symbols)
        return topics

    def _request(self, op: str, topic: str) -> str:
        return self._rpc(f"public/{op}", {"channels": [topic]})

    def _rpc(self, method: str, params: dict[str, Any]) -> str:
        self._rid += 1
        return json.dumps({"jsonrpc": "2.0", "id": self._rid, "method": method, "params": params})

    async def _on_open(self, ws) -> None:
        if self.heartbeat is not None:
            # an integral interval goes out as an integer, as Deribit documents it
            hb = int(self.heartbeat) if float(self.heartbeat).is_integer() else self.heartbeat
            await ws.send(self._rpc("public/set_heartbeat", {"interval": hb}))
            self._hb_rid = self._rid
        await super()._on_open(ws)

    async def _on_raw(self, data: bytes, n: int) -> None:
        recv_ns = time.time_ns()
        where = f"{self._conn_id}#{n}"
        doc = self._decode(data, n)
        if doc is None:
            return
        params = doc.get("params")
        if doc.get("method") == "heartbeat":
            if isinstance(params, dict) and params.get("type") == "test_request" and self._ws_send is not None:
                # answered here in the receive loop, not queued behind other work: a late answer makes Deribit close
                self.counts["heartbeats"] += 1
                await self._ws_send(self._rpc("public/test", {}))
            self.counts["other"] += 1
            return
        if doc.get("method") != "subscription" or not isinstance(params, dict):
            if "error" in doc and doc.get("id") == self._hb_rid:
                err = doc["error"]
                self._problem(where, "heartbeat_error", str(err.get("message", err) if isinstance(err, dict) else err))
            elif "error" in doc:  # a refused (un)subscribe: say so, it may leave a book without data
                self.counts["sub_errors"] += 1
                err = doc["error"]
                self._problem(where, "subscribe_error", str(err.get("message", err) if isinstance(err, dict) else err))
            self.counts["other"] += 1  # subscribe, set_heartbeat and test replies
            return
        ch = str(params.get("channel", ""))
        slot = self.slots.get(ch)
        d = params.get("data")
        try:
            if slot is not None:
                self._on_book(ch, slot, doc, recv_ns, where, d.get("change_id") if isinstance(d, dict) else None)
                return
            kind, _, rest = ch.partition(".")
            inst = rest.partition(".")[0]
            if kind == "trades":
                for t in d:
                    self.counts["trades"] += 1
                    await self.queue.put(
                        Trade(self.venue, inst, str(t["trade_id"]), _num(t["price"]), _num(t["amount"]),
                              t["direction"] == "sell", int(t["timestamp"]) * 1_000_000, recv_ns)
                    )
            elif kind == "ticker":
                self._on_ticker(inst, d, recv_ns)
            else:
                self.counts["other"] += 1
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._undecodable(n, exc)

    def _on_ticker(self, inst: str, d: dict, recv_ns: int) -> None:
        key = f"deribit:{inst}"
        exch_ns = int(d.get("timestamp") or 0) * 1_000_000
        self.counts["tickers"] += 1
        self.queue.put_latest(
            ("bbo", key),
            BestBidAsk(self.venue, inst, 0, _num(d.get("best_bid_price")), _num(d.get("best_bid_amount")),
                       _num(d.get("best_ask_price")), _num(d.get("best_ask_amount")), exch_ns, recv_ns),
        )
        if "mark_price" in d or "index_price" in d:
            self.counts["marks"] += 1
            self.queue.put_latest(
                ("mark", key),
                MarkPrice(self.venue, inst, _num(d.get("mark_price")), _num(d.get("index_price")),
                          _num(d.get("current_funding")), 0, exch_ns, recv_ns),
            )


#: ``--venue`` -> the handler class that follows it.
HANDLERS: dict[str, type[FeedHandler]] = {
    **{v: BinanceFeedHandler for v in VENUE_PROFILES},
    **{v: BybitFeedHandler for v in BYBIT_CATEGORIES},
    "okx": OkxFeedHandler,
    "deribit": DeribitFeedHandler,
}


def handler_for(config: LiveConfig, *args: Any, **kwargs: Any) -> FeedHandler:
    """The venue's handler for ``config`` (:data:`HANDLERS`)."""
    return HANDLERS[config.venue](config, *args, **kwargs)
