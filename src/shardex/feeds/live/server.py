"""``shardex feeds serve-capture``: a loopback websocket + REST server that plays a capture back.

Binance captures are served as described below. Bybit v5 (``BYBIT.jsonl.zst``)
OKX v5 (``OKX.ws.1.0``) and Deribit v2 (``DERIBIT.ws.1.0``) send their book snapshot on the socket: for them
the server speaks the venue's own ``op`` subscribe protocol on
``/v5/public/<category>`` (Bybit; each category gets its capture connection's
messages), ``/ws/v5/public`` (OKX) or ``/ws/api/v2`` (Deribit, JSON-RPC), and a subscriber of a book topic gets a
snapshot synthesized from a reference book right before its next message
(:mod:`shardex.feeds.live._dialects`); there is no REST endpoint for them.
Their other channels (trades, tickers, OKX ``mark-price``/``index-tickers``/
``funding-rate``) are served as recorded. A Deribit client that calls
``public/set_heartbeat`` gets a ``test_request`` every interval and is closed
(1008) when it does not answer with ``public/test`` within the interval
(``min_heartbeat``: the smallest interval accepted, 10 s as on Deribit).

It stands in for the venue so the live handler can be tested for real with no
internet: a combined-stream websocket endpoint (``/stream?streams=a/b/c``, or
``SUBSCRIBE`` requests on the socket) sends the capture's raw messages, byte
for byte, with their recorded pacing divided by ``speed`` (or as fast as the
client reads, ``speed=inf``); a REST endpoint (any path ending in ``/depth``:
``/api/v3/depth``, ``/fapi/v1/depth``, ``/dapi/v1/depth``, ``?symbol=&limit=``)
on the same port answers depth snapshots.

The capture is one timeline (several files play as one stream). Its clock runs
only while a client is subscribed, so a test does not depend on how long a
connect takes; after an injected disconnect, ``outage`` messages pass unsent
(the venue moved on while the client was away) before the clock waits again.

**Which snapshot a REST request gets.** The server keeps a *reference book*
per symbol, built with the same :class:`~shardex.feeds.builders.binance.BinanceBook`
as the offline replay from every message up to the playback position,
including those a fault kept from the client (the venue sent them). Once
that book is synced, a request gets a snapshot **synthesized** from it:
``lastUpdateId`` = the final id of the last diff played, levels printed at
the book's own decimals, at most ``limit`` (default 1000, at most 5000) a
side. Before that (the capture's own snapshot not yet reached, or not yet
bridged), the request gets the capture's recorded snapshot (the next one at
or after the position, else the last one), exactly as the collector got it.
A capture with no snapshot answers 503.

Faults: ``drop_every`` K drops every K-th depth diff of the capture (1-based
count), ``drop`` names diff ordinals to drop, ``disconnect_after`` N aborts a
connection's TCP stream (no close frame) after N messages sent on it, at most
``max_disconnects`` times (0: no limit).

Every loop is bounded: playback ends at the end of the capture (connections
are then closed with code 1000 and reason ``"end of capture"``) or after
``idle_timeout`` seconds with no client. The server binds loopback addresses
only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from shardex.errors import MalformedInputError, ShardexError
from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.live._dialects import DIALECTS, HEARTBEAT_CLOSE, TEST_REQUEST, Dialect
from shardex.feeds.readers import read

__all__ = ["CaptureServer", "Faults", "load_capture", "Capture", "END_REASON", "ServeError", "SERVED_VENUES"]

#: Close reason sent at the end of the capture; the handler stops on it instead of reconnecting.
END_REASON = "end of capture"

_STREAM = re.compile(rb'"stream"\s*:\s*"(([^"@]+)@[^"]*)"')
#: Bybit, OKX: 20 ms turns at the end of the capture in which owed snapshots are still sent.
END_GRACE_TURNS = 5

#: Venues (reader names) whose captures the server plays.
SERVED_VENUES = ("binance-spot", "binance-futures", *DIALECTS)
_log = logging.getLogger("shardex.feeds.serve")


class ServeError(ShardexError, ValueError):
    """The capture server cannot start as asked (not loopback, nothing to serve)."""


@dataclass(frozen=True)
class Faults:
    """Faults to inject; all off by default.

    ``drop_every``: drop every K-th depth diff (counted over the capture, from 1).
    ``drop``: depth-diff ordinals (from 1) to drop. ``disconnect_after``: abort a
    connection after N messages sent on it. ``max_disconnects``: most injected
    disconnects (0: no limit). ``outage``: capture messages that pass unsent
    after an injected disconnect.
    """

    drop_every: int = 0
    drop: frozenset[int] = frozenset()
    disconnect_after: int = 0
    max_disconnects: int = 0
    outage: int = 20

    def drops(self, diff_no: int) -> bool:
        """True when the ``diff_no``-th depth diff (1-based) is to be lost."""
        return (self.drop_every > 0 and diff_no % self.drop_every == 0) or diff_no in self.drop


@dataclass
class Capture:
    """A capture as one timeline: per message its bytes, receive stamp (ns), stream, symbol, kind."""

    venue: str  # binance-spot | binance-futures | bybit | okx | deribit
    data: list[bytes] = field(default_factory=list)
    recv_ns: list[int] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)  # "" for a REST snapshot line
    symbol: list[str] = field(default_factory=list)  # lower case
    depth: list[bool] = field(default_factory=list)  # a book diff (what the drop faults count)
    rest: list[bool] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    conn: list[str] = field(default_factory=list)  # Bybit: the connection's category (linear, spot); else ""
    book: list[bool] = field(default_factory=list)  # any book message (diff or in-stream snapshot)

    def __len__(self) -> int:
        return len(self.data)


def load_capture(paths: Iterable[str | Path]) -> Capture:
    """Read captures as one timeline: Binance (hftbacktest ``*.gz``, cryptofeed ``BINANCE*.ws.1.0``), Bybit v5 (``BYBIT.jsonl.zst``), OKX (``OKX.ws.1.0``).

    Raises :class:`MalformedInputError` for a file of another venue.
    O(total bytes).
    """
    cap: Capture | None = None
    category: dict[str, str] = {}  # Bybit connection -> category, from its connect record
    dialects: dict[str, Dialect] = {}
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise MalformedInputError(f"{p}: no such file")
        n0 = len(cap) if cap else 0
        for m in read(p):
            if m.kind == "connect":
                category[m.conn] = m.data.decode(errors="replace").rstrip("/").rsplit("/", 1)[-1]
                continue
            if m.venue not in SERVED_VENUES or m.kind not in ("ws", "rest"):
                continue
            if cap is None:
                cap = Capture(m.venue)
            elif m.venue != cap.venue:
                raise MalformedInputError(f"{p}:{m.line}: {m.venue} message in a {cap.venue} capture")
            conn, is_book = "", False
            if m.venue in DIALECTS:
                dialect = dialects.setdefault(m.venue, DIALECTS[m.venue]())
                found_topic = dialect.classify(m.data)
                if found_topic is None:
                    continue  # a subscription reply: the server answers its clients' own requests
                stream, is_book, is_diff = found_topic
                sym = dialect.symbol(stream)
                conn = category.get(m.conn, m.conn) if dialect.by_category else ""
            elif m.kind == "rest":
                stream, sym = "", m.key.lower()
                is_diff = False
            else:
                found = _STREAM.search(m.data[:160])
                if not found:
                    continue  # a subscription reply or other control message: not part of the stream
                stream, sym = found.group(1).decode(), found.group(2).decode().lower()
                is_diff = is_book = "@depth" in stream
            cap.data.append(m.data)
            cap.recv_ns.append(m.recv_ns)
            cap.stream.append(stream)
            cap.symbol.append(sym)
            cap.depth.append(is_diff)
            cap.rest.append(m.kind == "rest")
            cap.conn.append(conn)
            cap.book.append(is_book or m.kind == "rest")
        if cap is None or len(cap) == n0:
            raise MalformedInputError(f"{p}: no stream messages of a served venue ({', '.join(SERVED_VENUES)})")
        cap.files.append(str(p))
    if cap is None:
        raise MalformedInputError("no capture files given")
    return cap


def _fixed(units: int, dec: int) -> str:
    """``units * 10**-dec`` with exactly ``dec`` decimals (as the venue prints it)."""
    if dec == 0:
        return str(units)
    s = str(units).rjust(dec + 1, "0")
    return f"{s[:-dec]}.{s[-dec:]}"


def _decimals(step_units: int) -> int:
    """Decimals of a power-of-ten step given in 1e-8 units (1 -> 8, 10**8 -> 0)."""
    return 8 - (len(str(step_units)) - 1)


class _Sub:
    __slots__ = ("ws", "streams", "sent", "cid", "category", "pending", "heartbeat", "answered")

    def __init__(self, ws: ServerConnection, streams: set[str] | None, cid: int, category: str | None = None) -> None:
        self.ws = ws
        self.streams = streams  # None: every stream
        self.sent = 0
        self.cid = cid
        self.category = category  # Bybit: only this connection's messages (linear, spot)
        self.pending: list[str] = []  # Bybit book topics subscribed, owed a snapshot before their next delta
        self.heartbeat: asyncio.Task | None = None  # Deribit: the test_request loop after public/set_heartbeat
        self.answered = asyncio.Event()  # set by the client's public/test


class CaptureServer:
    """Serve a capture on loopback: websocket combined streams and REST depth snapshots (see the module doc).

    Use as ``async with CaptureServer(files, speed=math.inf) as srv:`` then
    connect to ``srv.ws_url`` / ``srv.rest_url``; ``await srv.wait_done()``
    returns when playback has ended. ``port=0`` picks a free port.

    ``min_heartbeat``: the smallest Deribit ``public/set_heartbeat`` interval
    accepted, in seconds (the venue's is 10; tests lower it to exercise
    heartbeats in fractions of a second). A smaller one is refused with a
    JSON-RPC error.
    """

    def __init__(
        self,
        files: Iterable[str | Path] | Capture,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        idle_timeout: float = 120.0,
        min_heartbeat: float = 10.0,
    ) -> None:
        if not (speed > 0):
            raise ServeError(f"speed must be > 0 (math.inf for max), got {speed}")
        if not _is_loopback(host):
            raise ServeError(f"serve-capture binds loopback addresses only (127.0.0.1, ::1, localhost), got {host!r}")
        self.capture = files if isinstance(files, Capture) else load_capture(files)
        self.speed = speed
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self.idle_timeout = idle_timeout
        self.min_heartbeat = min_heartbeat
        self.cursor = 0  # messages of the timeline played so far
        self.futures = self.capture.venue == "binance-futures"
        # Bybit, OKX: subscribe requests on the socket, snapshots synthesized from reference books
        self.dialect: Dialect | None = DIALECTS[self.capture.venue]() if self.capture.venue in DIALECTS else None
        self._ref: dict[str, BinanceBook] = {}
        self._ref_pos = 0
        self._subs: list[_Sub] = []
        self._have_sub = asyncio.Event()
        self._done = asyncio.Event()
        self._server: Server | None = None
        self._task: asyncio.Task | None = None
        self._outage_left = 0
        self._next_cid = 0
        self._snapshots: dict[str, list[int]] = {}
        for i, (r, s) in enumerate(zip(self.capture.rest, self.capture.symbol)):
            if r:
                self._snapshots.setdefault(s, []).append(i)
        self.stats = {
            "connections": 0,
            "sent": 0,
            "dropped_diffs": 0,
            "disconnects": 0,
            "unsent_outage": 0,
            "snapshots_recorded": 0,
            "snapshots_synthesized": 0,
            "snapshot_unavailable": 0,
            "http_requests": 0,
            "test_requests": 0,
            "heartbeat_timeouts": 0,
        }
        self.end_reason = ""

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> "CaptureServer":
        """Bind and start playback (which waits for the first client)."""
        self._server = await serve(
            self._on_ws,
            self.host,
            self.port,
            process_request=self._on_http,
            compression=None,  # Binance streams are not deflated; compression would dominate the cost
            ping_interval=None,
            max_size=1 << 20,
            logger=_log,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._playback())
        return self

    async def __aenter__(self) -> "CaptureServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop playback, close every connection and the listening socket."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._done.set()

    async def wait_done(self, timeout: float | None = None) -> None:
        """Wait until playback has ended (end of capture or idle timeout)."""
        await asyncio.wait_for(self._done.wait(), timeout)

    @property
    def done(self) -> bool:
        """True once playback has ended."""
        return self._done.is_set()

    @property
    def ws_url(self) -> str:
        """Base websocket URL: Binance's combined-stream endpoint (append ``?streams=...``),
        Bybit's ``/v5/public`` (append ``/linear``), OKX's ``/ws/v5`` (append ``/public``), Deribit's ``/ws/api/v2``
        (:meth:`Dialect.client_urls` gives the full ones)."""
        if self.dialect is not None:
            return f"ws://{self._hostport()}{self.dialect.ws_prefix.rstrip('/')}"
        return f"ws://{self._hostport()}/stream"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST endpoint (the handler appends ``/fapi/v1/depth?...``)."""
        return f"http://{self._hostport()}"

    def _hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # ---- websocket side ---------------------------------------------------------------------
    async def _on_ws(self, ws: ServerConnection) -> None:
        u = urlsplit(ws.request.path)
        streams: set[str] | None = None
        category: str | None = None
        if self.dialect is not None:
            if self.dialect.by_category:
                category = u.path.rstrip("/").rsplit("/", 1)[-1]
            streams = set()  # nothing is streamed until subscribed
        if u.path.startswith("/ws/") and len(u.path) > 4:
            streams = set(u.path[4:].split("/"))
        q = parse_qs(u.query).get("streams")
        if q:
            streams = {s for s in q[0].split("/") if s}
        self._next_cid += 1
        sub = _Sub(ws, streams, self._next_cid, category)
        self.stats["connections"] += 1
        self._subs.append(sub)
        self._have_sub.set()
        try:
            async for msg in ws:  # ends when the connection closes
                self._on_client_message(sub, msg)
        except ConnectionClosed:
            pass
        finally:
            if sub.heartbeat is not None:
                sub.heartbeat.cancel()
            if sub in self._subs:
                self._subs.remove(sub)

    def _on_client_message(self, sub: _Sub, msg: str | bytes) -> None:
        """Binance's SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS requests (Bybit's, OKX's: :meth:`_on_sub_message`)."""
        if self.dialect is not None:
            self._on_sub_message(self.dialect, sub, msg)
            return
        try:
            req = json.loads(msg)
            method, rid, params = req.get("method"), req.get("id"), req.get("params") or []
        except (ValueError, AttributeError):
            asyncio.ensure_future(_safe_send(sub.ws, json.dumps({"error": {"code": 2, "msg": "Invalid JSON"}})))
            return
        result: object = None
        if method == "SUBSCRIBE":
            sub.streams = (sub.streams or set()) | set(params)
        elif method == "UNSUBSCRIBE":
            sub.streams = (sub.streams or set()) - set(params)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(sub.streams or [])
        else:
            asyncio.ensure_future(_safe_send(sub.ws, json.dumps({"error": {"code": 1, "msg": f"unknown method {method!r}"}, "id": rid})))
            return
        asyncio.ensure_future(_safe_send(sub.ws, json.dumps({"result": result, "id": rid})))

    def _on_sub_message(self, dialect: Dialect, sub: _Sub, msg: str | bytes) -> None:
        """``subscribe`` / ``unsubscribe`` / ``ping`` / ``set_heartbeat`` in the venue's format (:class:`Dialect`).

        A subscribed book topic is owed a snapshot: playback sends it
        (synthesized from the reference book at that point) right before the
        next message on that connection, so no diff can slip in between.
        ``set_heartbeat`` (Deribit) starts :meth:`_heartbeat` on the
        connection; a ``ping`` (``public/test``) answers its test request.
        """
        try:
            op, topics, rid, interval = dialect.parse(msg)
        except (ValueError, KeyError, TypeError, AttributeError):
            for r in dialect.reply("error", ["?"], ["?"], None, sub.cid):
                asyncio.ensure_future(_safe_send(sub.ws, r))
            return
        streams = sub.streams if sub.streams is not None else set()
        sub.streams = streams
        bad: list[str] = []
        if op == "subscribe":
            for t in topics:
                if t in streams or t in sub.pending:
                    bad.append(t)  # already subscribed: the venues refuse it
                elif dialect.refuses(t):
                    bad.append(t)
                elif dialect.is_book(t):
                    sub.pending.append(t)
                else:
                    streams.add(t)
        elif op == "unsubscribe":
            for t in topics:
                if t in sub.pending:
                    sub.pending.remove(t)
                elif t in streams:
                    streams.discard(t)
                else:
                    bad.append(t)
        elif op == "ping":
            sub.answered.set()
        elif op == "set_heartbeat":
            if interval is None or not interval >= self.min_heartbeat:
                bad = [f"interval must be a number >= {self.min_heartbeat:g}, got {interval}"]
            else:
                if sub.heartbeat is not None:
                    sub.heartbeat.cancel()  # a new interval replaces the old one, as on Deribit
                sub.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(sub, interval))
        else:
            bad = topics or [op]
        for r in dialect.reply(op, topics, bad, rid, sub.cid):
            asyncio.ensure_future(_safe_send(sub.ws, r))

    async def _heartbeat(self, sub: _Sub, interval: float) -> None:
        """Every ``interval`` s send a test request; close the connection if no ``public/test`` comes within ``interval``.

        Bounded by the connection: cancelled when it ends (:meth:`_on_ws`),
        returns when a send finds it closed or after closing it.
        """
        while True:
            await asyncio.sleep(interval)
            sub.answered.clear()  # only an answer sent after this request counts
            try:
                await sub.ws.send(TEST_REQUEST)
            except ConnectionClosed:
                return
            self.stats["test_requests"] += 1
            try:
                await asyncio.wait_for(sub.answered.wait(), interval)
            except asyncio.TimeoutError:
                self.stats["heartbeat_timeouts"] += 1
                if sub in self._subs:
                    self._subs.remove(sub)  # playback sends it nothing more
                try:
                    await asyncio.wait_for(sub.ws.close(*HEARTBEAT_CLOSE), 2.0)
                except (ConnectionClosed, asyncio.TimeoutError, OSError):
                    pass
                return

    async def _flush_pending(self, sub: _Sub, upto: int) -> None:
        """Send the snapshots a Bybit/OKX client is owed, as of capture position ``upto`` (exclusive)."""
        while sub.pending:  # bounded: one topic leaves per turn
            topic = sub.pending.pop(0)
            snap = self._synth_snapshot(sub.category or "", topic, upto)
            if snap is not None:
                self.stats["snapshots_synthesized"] += 1
                try:
                    await sub.ws.send(snap, text=True)
                except ConnectionClosed:
                    return
                sub.sent += 1
                self.stats["sent"] += 1
            # no synced reference yet: the capture's own snapshot for the topic is still to come
            if sub.streams is not None:
                sub.streams.add(topic)

    def _synth_snapshot(self, category: str, topic: str, upto: int) -> bytes | None:
        """The snapshot message of the reference book of ``topic`` at position ``upto``: every level, strings as received.

        O(book messages since the last call + levels).
        """
        cap, dialect = self.capture, self.dialect
        assert dialect is not None
        for i in range(self._ref_pos, upto):  # bounded by the capture
            if cap.book[i]:
                dialect.feed(f"{cap.conn[i]}|{cap.stream[i]}", cap.data[i], cap.recv_ns[i], f"capture#{i + 1}")
        self._ref_pos = max(self._ref_pos, upto)
        return dialect.snapshot(f"{category}|{topic}", topic)

    async def _playback(self) -> None:
        cap, faults, loop = self.capture, self.faults, asyncio.get_running_loop()
        n = len(cap)
        data, recv, stream, depth, rest = cap.data, cap.recv_ns, cap.stream, cap.depth, cap.rest
        finite = math.isfinite(self.speed)
        t0 = base = 0.0
        clock_on = False
        diff_no = 0
        i = 0
        try:
            while i < n:  # bounded: i grows every turn, or the idle timeout returns
                if not self._subs and self._outage_left <= 0:
                    self._have_sub.clear()
                    try:
                        await asyncio.wait_for(self._have_sub.wait(), self.idle_timeout)
                    except asyncio.TimeoutError:
                        self.end_reason = f"no client for {self.idle_timeout} s"
                        return
                    clock_on = False  # the clock was stopped: rebase it
                if finite:
                    if not clock_on:
                        t0, base, clock_on = loop.time(), recv[i], True
                    delay = t0 + (recv[i] - base) / 1e9 / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif (i & 31) == 0:
                    await asyncio.sleep(0)  # at max speed, still let REST requests and readers in
                self.cursor = i + 1
                if rest[i]:
                    i += 1
                    continue  # a REST line is what the venue would answer, not a stream message
                if depth[i]:
                    diff_no += 1
                    if faults.drops(diff_no):
                        self.stats["dropped_diffs"] += 1
                        i += 1
                        continue
                if not self._subs:
                    self._outage_left -= 1
                    self.stats["unsent_outage"] += 1
                    i += 1
                    continue
                s = stream[i]
                conn = cap.conn[i]
                for sub in tuple(self._subs):
                    if sub.pending:
                        await self._flush_pending(sub, i)
                    if sub.category is not None and conn != sub.category:
                        continue
                    if sub.streams is not None and s not in sub.streams:
                        continue
                    try:
                        await sub.ws.send(data[i], text=True)
                    except ConnectionClosed:
                        if sub in self._subs:
                            self._subs.remove(sub)
                        continue
                    sub.sent += 1
                    self.stats["sent"] += 1
                    if (
                        faults.disconnect_after
                        and sub.sent >= faults.disconnect_after
                        and (not faults.max_disconnects or self.stats["disconnects"] < faults.max_disconnects)
                    ):
                        self._inject_disconnect(sub)
                i += 1
            if self.dialect is not None:
                # a real venue answers a (re)subscribe at any time: before the end-of-capture close,
                # give requests in flight (a resync after a late gap) a short grace, bounded
                for _ in range(END_GRACE_TURNS):
                    await asyncio.sleep(0.02)
                    for sub in tuple(self._subs):
                        if sub.pending:
                            await self._flush_pending(sub, n)
            self.end_reason = END_REASON
        finally:
            self.cursor = max(self.cursor, i)
            for sub in tuple(self._subs):
                try:
                    await asyncio.wait_for(sub.ws.close(1000, END_REASON), 2.0)
                except (ConnectionClosed, asyncio.TimeoutError, OSError):
                    pass
            self._done.set()

    def _inject_disconnect(self, sub: _Sub) -> None:
        """Drop the TCP stream with no close frame, as a network failure would."""
        self.stats["disconnects"] += 1
        if sub in self._subs:
            self._subs.remove(sub)
        self._outage_left = self.faults.outage
        transport = sub.ws.transport
        if transport is not None:
            transport.abort()

    # ---- REST side --------------------------------------------------------------------------
    def _on_http(self, conn: ServerConnection, request: Request) -> Response | None:
        u = urlsplit(request.path)
        ws_paths = (self.dialect.ws_prefix,) if self.dialect is not None else ("/stream", "/ws/")
        if u.path.startswith(ws_paths) and "upgrade" in request.headers.get("Connection", "").lower():
            return None  # a websocket handshake: go on
        self.stats["http_requests"] += 1
        if self.dialect is not None:  # these books come with their snapshot on the socket: no REST depth here
            return _json(conn, 404, {"code": "404", "msg": f"no such endpoint {u.path}; connect to {self.dialect.ws_prefix}..."})
        if not u.path.endswith("/depth"):
            return _json(conn, 404, {"code": -1, "msg": f"no such endpoint {u.path}; try /fapi/v1/depth?symbol=BTCUSDT"})
        q = parse_qs(u.query)
        sym = (q.get("symbol") or [""])[0].lower()
        try:
            limit = min(max(int((q.get("limit") or ["1000"])[0]), 1), 5000)
        except ValueError:
            return _json(conn, 400, {"code": -1100, "msg": "limit must be an integer"})
        if sym not in set(self.capture.symbol):
            return _json(conn, 400, {"code": -1121, "msg": f"Invalid symbol {sym.upper()!r}: not in the capture"})
        body = self.snapshot(sym, limit)
        if body is None:
            self.stats["snapshot_unavailable"] += 1
            return _json(conn, 503, {"code": -1, "msg": "no snapshot available at this point of the capture"})
        resp = conn.respond(200, "")
        resp = Response(200, "OK", resp.headers, body)
        del resp.headers["Content-Length"]
        del resp.headers["Content-Type"]
        resp.headers["Content-Length"] = str(len(body))
        resp.headers["Content-Type"] = "application/json"
        return resp

    def snapshot(self, symbol: str, limit: int = 1000) -> bytes | None:
        """The REST depth body for ``symbol`` at the playback position (see the module doc), or None. O(messages since the last call + limit)."""
        book = self._catch_up(symbol)
        if book is not None and book.synced and book.grid is not None:
            self.stats["snapshots_synthesized"] += 1
            bids, asks = book.levels()
            pd, qd = _decimals(book.grid.tick), _decimals(book.grid.lot)
            doc = {
                "lastUpdateId": book.last_update_id,
                "bids": [[_fixed(p, pd), _fixed(q, qd)] for p, q in bids[:limit].tolist()],
                "asks": [[_fixed(p, pd), _fixed(q, qd)] for p, q in asks[:limit].tolist()],
            }
            return json.dumps(doc, separators=(",", ":")).encode()
        idx = self._snapshots.get(symbol)
        if not idx:
            return None
        later = [i for i in idx if i >= self.cursor]
        self.stats["snapshots_recorded"] += 1
        return self.capture.data[later[0] if later else idx[-1]]

    def _catch_up(self, symbol: str) -> BinanceBook | None:
        """Feed the reference books every depth/snapshot message played since the last call."""
        cap = self.capture
        for i in range(self._ref_pos, self.cursor):  # bounded by the capture
            if not (cap.depth[i] or cap.rest[i]):
                continue
            s = cap.symbol[i]
            book = self._ref.get(s)
            if book is None:
                book = self._ref[s] = BinanceBook(f"reference:{s.upper()}", s, self.futures)
            if cap.rest[i]:
                book.on_snapshot(cap.data[i], cap.recv_ns[i], f"capture#{i + 1}")
            else:
                book.on_message(cap.data[i], cap.recv_ns[i], f"capture#{i + 1}")
        self._ref_pos = max(self._ref_pos, self.cursor)
        return self._ref.get(symbol)


def _json(conn: ServerConnection, status: int, doc: dict) -> Response:
    resp = conn.respond(status, json.dumps(doc))
    del resp.headers["Content-Type"]
    resp.headers["Content-Type"] = "application/json"
    return resp


async def _safe_send(ws: ServerConnection, text: str) -> None:
    try:
        await ws.send(text)
    except ConnectionClosed:
        pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_capture(
    files: list[Path], speed: float, host: str, port: int, faults: Faults, idle_timeout: float, on_ready=None
) -> CaptureServer:
    """Run a :class:`CaptureServer` until its playback ends; ``on_ready(server)`` is called once bound."""
    srv = CaptureServer(files, speed=speed, host=host, port=port, faults=faults, idle_timeout=idle_timeout)
    t0 = time.perf_counter()
    async with srv:
        if on_ready is not None:
            on_ready(srv)
        await srv.wait_done()
    srv.stats["seconds"] = round(time.perf_counter() - t0, 3)  # type: ignore[assignment]
    return srv
