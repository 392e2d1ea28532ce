"""The conformance adapter: tracebook events in, shardex commands through an ``Exchange``, observations out.

One ``ConformanceAdapter`` is one candidate session.  For every tracebook
event it

1. validates the event the way tracebook's reference does (which checks come
   first decides the reject code), using only the adapter's own bookkeeping;
2. translates it into a batch of shardex commands (see the table in
   docs/conformance.md) and runs them through ``Exchange.process``;
3. reads the outcome and trades back from the events, and the resting state
   from ``Exchange.l3``, in tracebook's identifiers and decimal strings.

Identifiers.  tracebook order ids are per symbol and may be reused once an
order is gone, and a replace gives the order a new identity while keeping
its source id.  So every shardex order gets a fresh engine-wide order id, and
the adapter keeps ``source id -> resting order`` per symbol, rebuilt from
L3 after each event.  tracebook owners map to shardex accounts one to one;
anonymous orders (owner -1) each get an account of their own, so self-trade
prevention never fires between them.

Cost: each event is one ``process`` call plus one L3 read of its symbol, both
O(orders in that book); the state digest re-serialises every book, O(all
resting orders).  Traces are short, so clarity wins over speed here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import numpy as np

from shardex.conformance import reasons
from shardex.conformance.grid import (
    MAX_ORDER_LOTS,
    canonical,
    exact_decimal,
    is_positive_finite,
    lot_size_for,
    snap_to_tick,
    to_units,
)
from shardex.conformance.trace import NO_OWNER, TraceEvent, TraceEventError
from shardex.engine.commands import amend, batch, cancel, mass_cancel, new_order
from shardex.engine.exchange import Exchange
from shardex.instruments import Instrument, Matching
from shardex.schema import EventKind, Reason, SelfTradePrevention, reason_message

__all__ = ["AdapterConfig", "ConformanceAdapter", "Observation", "STP_MODES"]

#: tracebook's self-trade policies and the shardex taker mode that behaves the same.
#: CANCEL_RESTING removes the same-owner resting order and keeps matching;
#: CANCEL_INCOMING drops the incoming remainder at the first same-owner order.
STP_MODES = {
    "NONE": SelfTradePrevention.NONE,
    "CANCEL_RESTING": SelfTradePrevention.CANCEL_MAKER,
    "CANCEL_INCOMING": SelfTradePrevention.CANCEL_TAKER,
}
_STP_BY_NUMBER = {0: "NONE", 1: "CANCEL_RESTING", 2: "CANCEL_INCOMING"}

#: tracebook order type -> (shardex order type, time in force).  MARKET is IOC:
#: a tracebook market order never rests, and shardex rejects a GTC market order.
ORDER_TYPE_MAP = {
    "LIMIT": ("limit", "gtc"),
    "IOC": ("limit", "ioc"),
    "FOK": ("limit", "fok"),
    "MARKET": ("market", "ioc"),
}

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class AdapterConfigError(ValueError):
    """The hello message's ``config`` is not one tracebook could have sent."""


@dataclass(frozen=True)
class AdapterConfig:
    """tracebook's ``ConformanceConfig``, read from the hello message.

    ``tick_size`` keeps both forms: the decimal for output, the float for
    tracebook's snapping arithmetic.
    """

    matching_algorithm: str = "fifo"
    tick_size: Decimal = Decimal("0.01")
    self_trade_policy: str = "NONE"
    quantity_decimal_places: int = 12

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "AdapterConfig":
        """Parse and check a hello ``config`` object; defaults are tracebook's."""
        if not isinstance(data, Mapping):
            raise AdapterConfigError("config must be a JSON object")
        algorithm = str(data.get("matching_algorithm", "fifo")).strip().lower()
        if algorithm not in ("fifo", "pro_rata"):
            raise AdapterConfigError(f"matching_algorithm must be 'fifo' or 'pro_rata', got {algorithm!r}")
        tick = exact_decimal(data.get("tick_size", "0.01"))
        if tick is None or tick <= 0:
            raise AdapterConfigError(f"tick_size must be a positive number, got {data.get('tick_size')!r}")
        policy = data.get("self_trade_policy", "NONE")
        if isinstance(policy, int) and not isinstance(policy, bool):
            policy = _STP_BY_NUMBER.get(policy, str(policy))
        policy = str(policy).strip().upper()
        if policy not in STP_MODES:
            raise AdapterConfigError(f"self_trade_policy must be one of {sorted(STP_MODES)}, got {policy!r}")
        places = data.get("quantity_decimal_places", 12)
        if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 18:
            raise AdapterConfigError(f"quantity_decimal_places must be an integer in [0, 18], got {places!r}")
        return cls(algorithm, tick, policy, places)

    @property
    def pro_rata(self) -> bool:
        """Whether books share a level pro rata."""
        return self.matching_algorithm == "pro_rata"


@dataclass(frozen=True)
class Observation:
    """What tracebook compares after one event (its ``Observation`` without the index)."""

    status: str
    reason: str | None
    message: str | None
    trades: tuple[dict, ...]
    state_hash: str
    resting_order_count: int

    def to_dict(self, index: int) -> dict:
        """The protocol's ``observation`` message for event ``index``."""
        return {
            "type": "observation",
            "index": index,
            "outcome": {"status": self.status, "reason": self.reason, "message": self.message},
            "trades": list(self.trades),
            "state_hash": self.state_hash,
            "resting_order_count": self.resting_order_count,
        }


@dataclass
class _Resting:
    side: int
    oid: int
    account: int
    owner: int
    ticks: int
    lots: int


@dataclass
class _Book:
    """The adapter's view of one symbol: its instrument and its resting source orders."""

    instrument: Instrument
    live: dict[int, _Resting] = field(default_factory=dict)
    bids: list[dict] = field(default_factory=list)
    asks: list[dict] = field(default_factory=list)


class _Reject(Exception):
    """A tracebook reject found by the adapter's own checks, before any command is sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConformanceAdapter:
    """One shardex ``Exchange`` driven by tracebook events; see the module docstring."""

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.exchange = Exchange()
        self._books: dict[str, _Book] = {}
        self._tick_float = float(config.tick_size)
        self._lot = lot_size_for(config.quantity_decimal_places)
        self._stp = STP_MODES[config.self_trade_policy]
        self._accounts: dict[int, int] = {}
        self._next_account = 1
        self._next_oid = 1
        # shardex order id -> (source order id, owner) for orders resting or
        # created by the current event; trades and L3 rows are read through it.
        self._origin: dict[int, tuple[int, int]] = {}

    # -- the one entry point ---------------------------------------------------
    def apply(self, event: TraceEvent) -> Observation:
        """Apply one event and observe its outcome, trades and the resting state."""
        book = self._books.get(event.symbol)
        if book is None and event.op in ("cancel", "reduce", "replace"):
            # tracebook creates a book only for new orders and clears.
            return self._observe("rejected", reasons.ORDER_NOT_ACTIVE,
                                 f"order {event.order_id} is not active in {event.symbol}", ())
        if book is None:
            book = self._open(event.symbol)
        if event.op != "clear" and (event.order_id is None or event.order_id <= 0):
            raise TraceEventError(f"{event.op} needs a positive order_id, got {event.order_id!r}")
        handler = getattr(self, f"_{event.op}")
        try:
            commands, created = handler(book, event)
        except _Reject as rej:
            return self._observe("rejected", rej.code, str(rej), ())
        events = self.exchange.process(batch(commands)) if commands else None
        status, code, message = "applied", None, None
        if events is not None:
            rejected = events[events["kind"] == EventKind.REJECTED]
            for reason in rejected["reason"]:
                if int(reason) == Reason.FOK_NOT_FILLABLE:
                    # tracebook accepts an unfillable FOK and reports it as applied
                    # with no trades; shardex rejects it before any change.  Same book.
                    continue
                status, code, message = "rejected", reasons.tracebook_code(int(reason), event.op), reason_message(int(reason))
                break
        trades = self._trades(book, events) if events is not None else ()
        self._refresh(event.symbol, book, created)
        return self._observe(status, code, message, trades)

    def snapshot(self) -> dict:
        """tracebook's ``BookState`` as a dict: every known symbol, bids and asks in priority order."""
        return {"books": [{"symbol": s, "bids": self._books[s].bids, "asks": self._books[s].asks}
                          for s in sorted(self._books)]}

    def close(self) -> None:
        """Stop the exchange's shard threads."""
        self.exchange.close()

    # -- operations: each returns (commands, shardex order ids it creates) -------
    def _new(self, book: _Book, ev: TraceEvent) -> tuple[list[tuple], list[int]]:
        if ev.order_id in book.live:
            raise _Reject(reasons.DUPLICATE_ORDER_ID, f"order {ev.order_id} is already active in {ev.symbol}")
        if ev.side is None:
            raise TraceEventError("a new order needs a side")
        market = ev.order_type == "MARKET"
        if not market and not is_positive_finite(ev.price):
            raise _Reject(reasons.INVALID_ORDER, f"order price must be positive, got {ev.price!r}")
        lots = self._lots(ev.quantity, reasons.INVALID_ORDER)
        if not _INT64_MIN <= ev.owner <= _INT64_MAX:
            raise _Reject(reasons.INVALID_ORDER, f"owner {ev.owner} is out of the int64 range")
        ticks = 0 if market else self._ticks(ev.price, reasons.INVALID_ORDER)
        otype, tif = ORDER_TYPE_MAP[ev.order_type]
        oid = self._new_oid(ev.order_id, ev.owner)
        account = self._account(ev.owner)
        cmd = new_order(book.instrument.id, ev.side.lower(), lots, ticks, order_id=oid, account=account,
                        type=otype, tif=tif, stp=self._stp)
        return [cmd], [oid]

    def _cancel(self, book: _Book, ev: TraceEvent) -> tuple[list[tuple], list[int]]:
        rest = self._resting(book, ev)
        return [cancel(book.instrument.id, rest.oid, account=rest.account)], []

    def _reduce(self, book: _Book, ev: TraceEvent) -> tuple[list[tuple], list[int]]:
        rest = self._resting(book, ev)
        lots = self._lots(ev.quantity, reasons.INVALID_ORDER)
        if lots > rest.lots:
            raise _Reject(reasons.INVALID_ORDER,
                          f"reduction {ev.quantity} exceeds the remaining quantity of order {ev.order_id}")
        inst = book.instrument.id
        if lots == rest.lots:
            return [cancel(inst, rest.oid, account=rest.account)], []
        # An amend that only lowers the quantity keeps queue priority, as reduce does.
        return [amend(inst, rest.oid, account=rest.account, qty=rest.lots - lots)], []

    def _replace(self, book: _Book, ev: TraceEvent) -> tuple[list[tuple], list[int]]:
        rest = self._resting(book, ev)
        code = reasons.INVALID_REPLACEMENT
        if ev.price is not None and not is_positive_finite(ev.price):
            raise _Reject(code, f"replacement price must be positive, got {ev.price!r}")
        lots = rest.lots if ev.quantity is None else self._lots(ev.quantity, code)
        inst = book.instrument.id
        side = "buy" if rest.side == 0 else "sell"
        ticks = rest.ticks if ev.price is None else snap_to_tick(ev.price, self._tick_float)
        if ticks <= 0:
            # tracebook cancels the original, fails to snap the replacement and
            # re-rests the original at the back of its level; so do we.
            oid = self._new_oid(ev.order_id, rest.owner)
            cmds = [cancel(inst, rest.oid, account=rest.account),
                    new_order(inst, side, rest.lots, rest.ticks, order_id=oid, account=rest.account, stp=self._stp)]
            self.exchange.process(batch(cmds))
            self._refresh(ev.symbol, book, [oid])
            raise _Reject(code, f"replacement price {ev.price!r} snaps to a non-positive tick")
        if ticks != rest.ticks or lots > rest.lots:
            # shardex's amend loses priority here and re-enters as a taker: tracebook's cancel-and-new.
            return [amend(inst, rest.oid, account=rest.account, price=ticks, qty=lots)], []
        # A replace always loses priority in tracebook; an amend that keeps the
        # price and does not raise the size would keep it, so cancel and re-enter.
        oid = self._new_oid(ev.order_id, rest.owner)
        return [cancel(inst, rest.oid, account=rest.account),
                new_order(inst, side, lots, ticks, order_id=oid, account=rest.account, stp=self._stp)], [oid]

    def _clear(self, book: _Book, ev: TraceEvent) -> tuple[list[tuple], list[int]]:
        inst = book.instrument.id
        return [mass_cancel(acct, inst) for acct in sorted({r.account for r in book.live.values()})], []

    # -- helpers ---------------------------------------------------------------
    def _open(self, symbol: str) -> _Book:
        ins = Instrument(len(self._books), symbol, tick_size=self.config.tick_size, lot_size=self._lot,
                         matching=Matching.PRO_RATA if self.config.pro_rata else Matching.FIFO)
        self.exchange.add_instrument(ins)
        book = self._books[symbol] = _Book(ins)
        return book

    def _resting(self, book: _Book, ev: TraceEvent) -> _Resting:
        rest = book.live.get(ev.order_id)
        if rest is None:
            raise _Reject(reasons.ORDER_NOT_ACTIVE, f"order {ev.order_id} is not active in {ev.symbol}")
        return rest

    def _lots(self, quantity: Any, code: str) -> int:
        if not is_positive_finite(quantity):
            raise _Reject(code, f"quantity must be positive, got {quantity!r}")
        lots = to_units(quantity, self._lot)
        if lots is None:
            raise _Reject(code, f"quantity {quantity!r} is not a multiple of the adapter's lot {self._lot}")
        if lots > MAX_ORDER_LOTS:
            raise _Reject(code, f"quantity {quantity!r} exceeds the adapter's limit of {MAX_ORDER_LOTS} lots")
        return lots

    def _ticks(self, price: Any, code: str) -> int:
        ticks = snap_to_tick(price, self._tick_float)
        if ticks <= 0:
            raise _Reject(code, f"price {price!r} snaps to a non-positive tick")
        return ticks

    def _new_oid(self, source_id: int, owner: int) -> int:
        oid = self._next_oid
        self._next_oid += 1
        self._origin[oid] = (source_id, owner)
        return oid

    def _account(self, owner: int) -> int:
        if owner == NO_OWNER:
            account = self._next_account
            self._next_account += 1
            return account
        account = self._accounts.get(owner)
        if account is None:
            account = self._accounts[owner] = self._next_account
            self._next_account += 1
        return account

    def _trades(self, book: _Book, events: np.ndarray) -> tuple[dict, ...]:
        tick, lot = self.config.tick_size, self._lot
        out = []
        for e in events[events["kind"] == EventKind.TRADE]:
            taker = self._origin[int(e["order_id"])][0]
            maker = self._origin[int(e["maker_order_id"])][0]
            buy, sell = (taker, maker) if int(e["side"]) == 0 else (maker, taker)
            out.append({"symbol": book.instrument.symbol, "buy_order_id": buy, "sell_order_id": sell,
                        "price": canonical(int(e["price"]) * tick), "quantity": canonical(int(e["qty"]) * lot)})
        return tuple(out)

    def _refresh(self, symbol: str, book: _Book, created: list[int]) -> None:
        """Rebuild the symbol's resting orders from L3; forget shardex ids that left the book."""
        tick, lot = self.config.tick_size, self._lot
        before = {r.oid for r in book.live.values()} | set(created)
        live: dict[int, _Resting] = {}
        bids: list[dict] = []
        asks: list[dict] = []
        # L3 columns: side, price, order_id, account, qty, hidden, ...
        for side, price, oid, account, qty, hidden, *_ in self.exchange.l3(symbol).tolist():
            source, owner = self._origin[oid]
            lots = qty + hidden
            live[source] = _Resting(side, oid, account, owner, price, lots)
            row = {"order_id": source, "price": canonical(price * tick), "remaining_quantity": canonical(lots * lot),
                   "owner": owner, "order_type": "LIMIT"}
            (bids if side == 0 else asks).append(row)
        for oid in before - {r.oid for r in live.values()}:
            self._origin.pop(oid, None)
        book.live, book.bids, book.asks = live, bids, asks

    def _observe(self, status: str, code: str | None, message: str | None, trades: tuple[dict, ...]) -> Observation:
        state = self.snapshot()
        digest = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                           allow_nan=False).encode("utf-8")).hexdigest()
        count = sum(len(b["bids"]) + len(b["asks"]) for b in state["books"])
        return Observation(status, code, message, trades, digest, count)
