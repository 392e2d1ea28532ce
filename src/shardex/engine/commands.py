"""Building command batches: from keyword arguments, from records, from enums by name.

The engine takes ``COMMAND_DTYPE`` arrays.  These helpers build them so that
user code never has to remember field layouts or enum values.

>>> from shardex.engine.commands import new_order, cancel, batch
>>> b = batch([new_order(0, "buy", 5, 100, order_id=1), cancel(0, 1)])
>>> b["kind"].tolist(), b["qty"].tolist()
([1, 2], [5, 0])
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

import numpy as np

from shardex.schema import COMMAND_DTYPE, CommandKind, OrderFlag, OrderType, SelfTradePrevention, Side, TimeInForce

__all__ = ["new_order", "cancel", "amend", "mass_cancel", "batch", "parse_enum"]


def parse_enum(enum: type[IntEnum], value: object, what: str) -> int:
    """An enum member's value from a member, an int, or a case-insensitive name ("buy", "stop_limit")."""
    if isinstance(value, enum):
        return int(value)
    if isinstance(value, str):
        try:
            return int(enum[value.strip().upper().replace("-", "_")])
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum)
            raise ValueError(f"{what} {value!r} is not one of: {names}") from None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        try:
            return int(enum(int(value)))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a valid {enum.__name__}") from None
    raise TypeError(f"{what} must be a {enum.__name__}, its name or its value, not {value!r}")


def new_order(
    instrument: int,
    side: object,
    qty: int,
    price: int = 0,
    *,
    order_id: int,
    account: int = 0,
    type: object = OrderType.LIMIT,
    tif: object = TimeInForce.GTC,
    post_only: bool = False,
    reduce_only: bool = False,
    display_qty: int = 0,
    stop_price: int = 0,
    stp: object = SelfTradePrevention.NONE,
) -> tuple:
    """One NEW command as a record tuple; price, qty in integer ticks and lots."""
    flags = (OrderFlag.POST_ONLY if post_only else 0) | (OrderFlag.REDUCE_ONLY if reduce_only else 0)
    return _record(
        CommandKind.NEW, instrument, account, order_id, price=price, qty=qty, stop_price=stop_price,
        display_qty=display_qty, side=parse_enum(Side, side, "side"), otype=parse_enum(OrderType, type, "order type"),
        tif=parse_enum(TimeInForce, tif, "time in force"), flags=int(flags),
        stp=parse_enum(SelfTradePrevention, stp, "self-trade prevention"),
    )


def cancel(instrument: int, order_id: int, *, account: int = 0) -> tuple:
    """One CANCEL command as a record tuple."""
    return _record(CommandKind.CANCEL, instrument, account, order_id)


def amend(instrument: int, order_id: int, *, account: int = 0, price: int = 0, qty: int) -> tuple:
    """One AMEND command: ``qty`` is the new open quantity, ``price`` 0 keeps the price."""
    return _record(CommandKind.AMEND, instrument, account, order_id, price=price, qty=qty)


def mass_cancel(account: int, instrument: int = -1) -> tuple:
    """One MASS_CANCEL command: every order of ``account`` on ``instrument`` (-1: on all)."""
    return _record(CommandKind.MASS_CANCEL, instrument, account, 0)


def batch(records: Iterable[tuple]) -> np.ndarray:
    """A ``COMMAND_DTYPE`` array from record tuples."""
    return np.array(list(records), dtype=COMMAND_DTYPE)


def _record(kind, instrument, account, order_id, *, price=0, qty=0, stop_price=0, display_qty=0, side=0, otype=0,
            tif=0, flags=0, stp=0) -> tuple:
    return (0, 0, int(order_id), int(account), int(price), int(qty), int(stop_price), int(display_qty),
            int(instrument), int(kind), int(side), int(otype), int(tif), int(flags), int(stp), 0, 0)
