"""tracebook's order-level events (``MarketEvent``), parsed into a small value type.

The runner sends every event as the JSON object of ``MarketEvent.to_dict()``:
``op`` (``new``/``submit``, ``cancel``, ``reduce``, ``replace``, ``clear``),
``symbol``, ``order_id``, ``side`` (``BUY``/``SELL``), ``order_type``
(``LIMIT``, ``MARKET``, ``IOC``, ``FOK``), ``price`` and ``quantity`` (JSON
numbers), ``owner`` (an int64; -1 means anonymous) and ``timestamp_ns``.

>>> e = TraceEvent.from_mapping({"op": "submit", "symbol": " T ", "order_id": 3, "side": "buy", "price": 1.5, "quantity": 2})
>>> (e.op, e.symbol, e.side, e.order_type, e.owner)
('new', 'T', 'BUY', 'LIMIT', -1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Mapping

__all__ = ["NO_OWNER", "ORDER_TYPES", "TraceEvent", "TraceEventError"]

#: tracebook's owner id for anonymous orders: they never meet self-trade prevention.
NO_OWNER = -1

#: tracebook order types; each maps to a shardex (type, time in force) pair in ``adapter``.
ORDER_TYPES = ("LIMIT", "MARKET", "IOC", "FOK")

_OPS = {"new", "submit", "cancel", "reduce", "replace", "clear"}
_SIDES = {"BUY": "BUY", "SELL": "SELL", "1": "BUY", "-1": "SELL"}
_TYPE_CODES = {"1": "MARKET", "2": "LIMIT", "3": "IOC", "4": "FOK"}
_INT = re.compile(r"^[+-]?\d+$")


class TraceEventError(ValueError):
    """An event the protocol delivered cannot be a tracebook ``MarketEvent``."""


def _int(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise TraceEventError(f"{name} must be an integer, not a boolean")
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    raise TraceEventError(f"{name} must be an integer, got {value!r}")


def _name(value: Any, table: Mapping[str, str], allowed: tuple[str, ...] | set[str], name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    key = str(value).strip().upper()
    if key in allowed:
        return key
    if key in table:
        return table[key]
    raise TraceEventError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


@dataclass(frozen=True)
class TraceEvent:
    """One tracebook event; numbers stay as the JSON gave them (the adapter puts them on grids)."""

    op: str
    symbol: str
    order_id: int | None = None
    side: str | None = None
    order_type: str = "LIMIT"
    price: Any = None
    quantity: Any = None
    owner: int = NO_OWNER

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "TraceEvent":
        """Parse one event object; ``TraceEventError`` names the field that is wrong."""
        if not isinstance(data, Mapping):
            raise TraceEventError(f"an event must be a JSON object, got {type(data).__name__}")
        op = str(data.get("op", "")).strip().lower()
        if op not in _OPS:
            raise TraceEventError(f"op must be one of {sorted(_OPS)}, got {data.get('op')!r}")
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise TraceEventError(f"symbol must be a non-empty string, got {symbol!r}")
        owner = _int(data.get("owner"), "owner")
        order_type = _name(data.get("order_type"), _TYPE_CODES, ORDER_TYPES, "order_type") or "LIMIT"
        return cls(
            op="new" if op == "submit" else op,
            symbol=symbol.strip(),
            order_id=_int(data.get("order_id"), "order_id"),
            side=_name(data.get("side"), _SIDES, {"BUY", "SELL"}, "side"),
            order_type=order_type,
            price=data.get("price"),
            quantity=data.get("quantity"),
            owner=NO_OWNER if owner is None else owner,
        )
