"""Server side of the venues whose book snapshot comes on the websocket (Bybit v5, OKX v5, Deribit v2).

The capture server plays Binance through its own combined-stream + REST
design; these venues differ only in a few places, which a :class:`Dialect`
names: the websocket path, how a capture message maps to a stream (topic),
the subscribe request and reply formats, and the snapshot message a new
subscriber of a book topic is owed, synthesized from a reference book fed
every book message played so far. Adding a venue of this kind is one more
subclass here and one more handler subclass in ``handler.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import json
import re
from typing import Any, NamedTuple

from shardex.feeds.builders.bybit import BybitBook
from shardex.feeds.builders.deribit import DeribitBook
from shardex.feeds.builders.okx import OkxBook, okx_checksum

__all__ = ["TEST_REQUEST", "HEARTBEAT_CLOSE", "Request", "Dialect", "BybitDialect", "OkxDialect", "DeribitDialect", "DIALECTS"]

_TOPIC = re.compile(rb'"topic"\s*:\s*"([^"]+)"')
_DELTA = re.compile(rb'"type"\s*:\s*"delta"')
_OKX_ARG = re.compile(rb'"arg"\s*:\s*\{\s*"channel"\s*:\s*"([^"]+)"\s*,\s*"instId"\s*:\s*"([^"]+)"')
_OKX_UPDATE = re.compile(rb'"action"\s*:\s*"update"')
_DERIBIT_CHANNEL = re.compile(rb'"channel"\s*:\s*"([^"]+)"')
_DERIBIT_CHANGE = re.compile(rb'"type"\s*:\s*"change"')

#: OKX channels whose messages are books (the builder's list).
OKX_BOOK_CHANNELS = ("books", "books5", "books50-l2-tbt", "books-l2-tbt", "bbo-tbt")


class Request(NamedTuple):
    """One client request as the server acts on it.

    ``op``: ``subscribe``, ``unsubscribe``, ``ping`` (also Deribit's
    ``public/test``, which answers a heartbeat) or ``set_heartbeat``
    (Deribit); ``topics``: the server's stream names; ``rid``: the request id
    to echo; ``interval``: ``set_heartbeat``'s interval in seconds (None when
    absent or not a number).
    """

    op: str
    topics: list[str]
    rid: Any
    interval: float | None = None


class Dialect(ABC):
    """One venue's subscribe protocol and snapshot synthesis (see the module doc)."""

    venue = ""
    #: websocket endpoint path prefix; what follows it (Bybit: the category) filters the connection's messages
    ws_prefix = ""
    #: whether the part of the path after ``ws_prefix`` names a category (a capture connection)
    by_category = False

    def __init__(self) -> None:
        self.books: dict[str, Any] = {}  # "<category>|<topic>" -> reference builder
        self.last: dict[str, dict] = {}  # the same key -> the last decoded book message

    @abstractmethod
    def classify(self, data: bytes) -> tuple[str, bool, bool] | None:
        """(stream, is_book, is_diff) of a capture message, or None for a control message."""

    @abstractmethod
    def parse(self, msg: str | bytes) -> Request:
        """The :class:`Request` of a client message; raises ValueError when malformed."""

    @abstractmethod
    def reply(self, op: str, topics: list[str], bad: list[str], rid: Any, cid: int) -> list[str]:
        """The venue's answers to one request (``bad``: topics refused)."""

    @abstractmethod
    def is_book(self, topic: str) -> bool:
        """True for a topic whose subscriber is owed a snapshot."""

    def refuses(self, topic: str) -> bool:
        """True for a topic the venue has no such stream for (a subscribe is answered with an error)."""
        return False

    def feed(self, key: str, data: bytes, recv_ns: int, where: str) -> None:
        """Feed one played book message to the reference book ``key``."""
        doc = json.loads(data)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = self._new_book(f"reference:{key}")
        book.on_doc(doc, recv_ns, where)
        self.last[key] = doc

    @abstractmethod
    def _new_book(self, key: str) -> Any:
        """Venue-specific; every dialect defines it."""

    def symbol(self, stream: str) -> str:
        """The (lower-case) instrument of a capture stream name."""
        return stream.rsplit(".", 1)[-1].rsplit(":", 1)[-1].lower()

    def client_urls(self, ws_url: str, conns: set[str]) -> list[str]:
        """The websocket URLs a client connects to (``conns``: the capture's connection categories)."""
        return [ws_url]

    @abstractmethod
    def snapshot(self, key: str, topic: str) -> bytes | None:
        """The snapshot message of reference book ``key`` (None while it is not synced)."""


class BybitDialect(Dialect):
    """Bybit v5 public streams: ``/v5/public/<category>``, ``{"op":"subscribe","args":["orderbook.200.BTCUSDT"]}``."""

    venue = "bybit"
    ws_prefix = "/v5/public/"
    by_category = True

    def classify(self, data: bytes) -> tuple[str, bool, bool] | None:
        found = _TOPIC.search(data[:160])
        if not found:
            return None  # a subscription reply: the server answers its clients' own requests
        topic = found.group(1).decode()
        book = topic.startswith("orderbook.")
        return topic, book, book and _DELTA.search(data[:160]) is not None

    def parse(self, msg: str | bytes) -> Request:
        req = json.loads(msg)
        if not isinstance(req, dict):
            raise ValueError("not an object")
        return Request(str(req.get("op", "")), [str(a) for a in req.get("args") or []], req.get("req_id", ""))

    def reply(self, op: str, topics: list[str], bad: list[str], rid: Any, cid: int) -> list[str]:
        if op == "ping":
            return [json.dumps({"success": True, "ret_msg": "pong", "conn_id": str(cid), "req_id": rid, "op": "pong"})]
        msg = f"error: {op} {','.join(bad)}" if bad else ""
        return [json.dumps({"success": not bad, "ret_msg": msg, "conn_id": str(cid), "req_id": rid, "op": op})]

    def is_book(self, topic: str) -> bool:
        return topic.startswith("orderbook.")

    def client_urls(self, ws_url: str, conns: set[str]) -> list[str]:
        return [f"{ws_url}/{c}" for c in sorted(conns) if c] or [f"{ws_url}/linear"]

    def _new_book(self, key: str) -> BybitBook:
        return BybitBook(key)

    def snapshot(self, key: str, topic: str) -> bytes | None:
        book = self.books.get(key)
        if book is None or not book.synced:
            return None
        last = self.last[key]
        d = last.get("data") or {}
        bids, asks = book.top_strings(len(book.bids) + len(book.asks))  # every level, strings as received
        ts = last.get("ts", 0)
        doc = {"topic": topic, "type": "snapshot", "ts": ts,
               "data": {"s": d.get("s", ""), "b": bids, "a": asks, "u": d.get("u"), "seq": d.get("seq")}, "cts": ts}
        return json.dumps(doc, separators=(",", ":")).encode()


class OkxDialect(Dialect):
    """OKX v5 public: ``/ws/v5/public``, ``{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}``.

    Topics are ``"<channel>:<instId>"`` inside the server. Non-book channels
    (``trades``, ``tickers``, ``mark-price``, ``index-tickers``,
    ``funding-rate``) are served as recorded, nothing synthesized: a capture
    without them serves none. ``funding-rate`` off a ``-SWAP`` instrument is
    refused, as OKX does.
    """

    venue = "okx"
    ws_prefix = "/ws/v5/"

    def classify(self, data: bytes) -> tuple[str, bool, bool] | None:
        if data.startswith(b'{"event"'):
            return None  # a subscription reply
        found = _OKX_ARG.search(data[:200])
        if not found:
            return None
        ch = found.group(1).decode()
        book = ch in OKX_BOOK_CHANNELS
        return f"{ch}:{found.group(2).decode()}", book, book and _OKX_UPDATE.search(data[:200]) is not None

    def parse(self, msg: str | bytes) -> Request:
        if msg in ("ping", b"ping"):
            return Request("ping", [], None)
        req = json.loads(msg)
        if not isinstance(req, dict):
            raise ValueError("not an object")
        return Request(str(req.get("op", "")), [f"{a['channel']}:{a['instId']}" for a in req.get("args") or []], req.get("id"))

    def reply(self, op: str, topics: list[str], bad: list[str], rid: Any, cid: int) -> list[str]:
        if op == "ping":
            return ["pong"]
        out = []
        for t in topics:
            ch, _, inst = t.partition(":")
            if t in bad:
                out.append(json.dumps({"event": "error", "code": "60012", "msg": f"{op} refused: {t}", "connId": str(cid)}))
            else:
                out.append(json.dumps({"event": op, "arg": {"channel": ch, "instId": inst}, "connId": str(cid)}))
        return out

    def is_book(self, topic: str) -> bool:
        return topic.partition(":")[0] in OKX_BOOK_CHANNELS

    def refuses(self, topic: str) -> bool:
        ch, _, inst = topic.partition(":")
        return ch == "funding-rate" and not inst.endswith("-SWAP")  # OKX: funding exists for perpetual swaps only

    def client_urls(self, ws_url: str, conns: set[str]) -> list[str]:
        return [f"{ws_url}/public"]

    def _new_book(self, key: str) -> OkxBook:
        return OkxBook(key)

    def snapshot(self, key: str, topic: str) -> bytes | None:
        book = self.books.get(key)
        if book is None or not book.synced:
            return None
        last = self.last[key]
        d = (last.get("data") or [{}])[-1]
        ch, _, inst = topic.partition(":")
        bids, asks = book.top_strings(len(book.bids) + len(book.asks))
        b25, a25 = book.top_strings(25)
        # the builder keeps no order counts: "0" stands for unknown (clients ignore the field)
        data = {"asks": [[p, s, "0", "0"] for p, s in asks], "bids": [[p, s, "0", "0"] for p, s in bids],
                "ts": d.get("ts", "0"), "checksum": okx_checksum(b25, a25)}
        if "seqId" in d:
            data.update(seqId=d["seqId"], prevSeqId=-1)
        doc = {"arg": {"channel": ch, "instId": inst}, "action": "snapshot", "data": [data]}
        return json.dumps(doc, separators=(",", ":")).encode()


#: Deribit's heartbeat ``test_request``: the client must answer with ``public/test`` within the interval.
TEST_REQUEST = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'

#: Close code and reason of a connection that left a ``test_request`` unanswered.
HEARTBEAT_CLOSE = (1008, "heartbeat: no public/test in time")


def _deribit_topic(channel: str) -> str:
    """The server's stream name of a Deribit channel: books keep their interval (``book.X.raw``);
    other channels drop it (``ticker.X.100ms`` and ``ticker.X.raw`` are one stream ``ticker.X``)."""
    if channel.startswith("book."):
        return channel
    kind, _, rest = channel.partition(".")
    return f"{kind}.{rest.rpartition('.')[0] or rest}"


class DeribitDialect(Dialect):
    """Deribit API v2 JSON-RPC: ``/ws/api/v2``, ``{"method":"public/subscribe","params":{"channels":["book.X.raw"]}}``.

    Notifications are ``{"method":"subscription","params":{"channel":..,"data":..}}``;
    a ``book.<instrument>.<interval>`` subscriber first gets a ``type: snapshot``
    notification whose ``change_id`` the next change's ``prev_change_id`` names.
    Non-book channels are served whatever interval is asked (the capture has one).

    ``public/set_heartbeat`` (``{"interval": s}``) is answered ``"ok"``; the
    server then sends :data:`TEST_REQUEST` every ``interval`` seconds and
    closes the connection (:data:`HEARTBEAT_CLOSE`) when no ``public/test``
    comes within ``interval`` of one (the server runs that clock; see
    :class:`~shardex.feeds.live.server.CaptureServer`'s ``min_heartbeat``).
    """

    venue = "deribit"
    ws_prefix = "/ws/api/v2"

    def classify(self, data: bytes) -> tuple[str, bool, bool] | None:
        if b'"method":"subscription"' not in data[:80]:
            return None  # a JSON-RPC reply, a heartbeat
        found = _DERIBIT_CHANNEL.search(data[:200])
        if not found:
            return None
        topic = _deribit_topic(found.group(1).decode())
        book = topic.startswith("book.")
        return topic, book, book and _DERIBIT_CHANGE.search(data[:300]) is not None

    def symbol(self, stream: str) -> str:
        return stream.split(".")[1].lower()

    def parse(self, msg: str | bytes) -> Request:
        req = json.loads(msg)
        if not isinstance(req, dict):
            raise ValueError("not an object")
        method = str(req.get("method", ""))
        params = req.get("params") or {}
        if method == "public/test":
            return Request("ping", [], req.get("id"))
        if method == "public/set_heartbeat":
            interval = params.get("interval")
            ok = isinstance(interval, (int, float)) and not isinstance(interval, bool)
            return Request("set_heartbeat", [], req.get("id"), float(interval) if ok else None)
        op = method.removeprefix("public/")
        chans = params.get("channels") or []
        return Request(op, [_deribit_topic(str(c)) for c in chans], req.get("id"))

    def reply(self, op: str, topics: list[str], bad: list[str], rid: Any, cid: int) -> list[str]:
        if op == "ping":
            return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"version": "capture"}})]
        if op == "set_heartbeat":
            if bad:
                err = {"code": -32602, "message": "Invalid params", "data": {"param": "interval", "reason": bad[0]}}
                return [json.dumps({"jsonrpc": "2.0", "id": rid, "error": err})]
            return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": "ok"})]
        if bad:
            return [json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": 11050, "message": f"bad_request: {op} {','.join(bad)}"}})]
        return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": topics})]

    def is_book(self, topic: str) -> bool:
        return topic.startswith("book.")

    def _new_book(self, key: str) -> DeribitBook:
        return DeribitBook(key)

    def snapshot(self, key: str, topic: str) -> bytes | None:
        book = self.books.get(key)
        if book is None or not book.synced:
            return None
        d = (self.last[key].get("params") or {}).get("data") or {}
        bids, asks = book.top_strings(len(book.bids) + len(book.asks))  # strings as received: JSON number literals
        head = {"type": "snapshot", "timestamp": d.get("timestamp", 0), "instrument_name": d.get("instrument_name", ""),
                "change_id": d.get("change_id")}
        body = json.dumps(head, separators=(",", ":"))[:-1]
        lv = lambda side: ",".join(f'["new",{p},{q}]' for p, q in side)  # noqa: E731
        data = f'{body},"bids":[{lv(bids)}],"asks":[{lv(asks)}]}}'
        return (f'{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":{json.dumps(topic)},"data":{data}}}}}').encode()


#: Reader venue name -> its dialect class.
DIALECTS: dict[str, type[Dialect]] = {"bybit": BybitDialect, "okx": OkxDialect, "deribit": DeribitDialect}
