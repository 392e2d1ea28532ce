"""Commands, events and their codes: the fixed binary contract of shardex.

Every stage of the engine takes a batch of commands and returns a batch of
events, both numpy structured arrays with the layouts below.  The layouts are
part of the journal format, so a change here is a format change.

Units: prices are integer *ticks* of the instrument, quantities integer
*lots*, times nanoseconds since the Unix epoch, money integer minor units.

Command layout (``COMMAND_DTYPE``, 80 bytes, little-endian, aligned)::

    seq          i8   sequence number (set by the sequencer; 0 before)
    ts           i8   timestamp, ns (set by the sequencer)
    order_id     i8   client order id, unique among the account's open orders on the instrument
    account      i8   account id (>= 0)
    price        i8   limit price in ticks (amend: the new price)
    qty          i8   quantity in lots (amend: the new total quantity)
    stop_price   i8   stop trigger price in ticks (stop orders)
    display_qty  i8   iceberg peak in lots; 0 means fully displayed
    instrument   i4   instrument id
    kind         u1   CommandKind
    side         u1   Side
    otype        u1   OrderType
    tif          u1   TimeInForce
    flags        u1   OrderFlag bits
    stp          u1   SelfTradePrevention
    _reserved16  u2   reserved, 0
    _reserved32  u4   reserved, 0

Event layout (``EVENT_DTYPE``, 96 bytes)::

    seq, ts           of the command that caused the event
    order_id, account the order the event is about (the taker for trades)
    price, qty        trade price/qty; order price/qty for accepted/amended;
                      the cancelled quantity for cancels
    leaves            the order's remaining open quantity after the event
    maker_order_id    trades: the resting order; otherwise 0
    maker_account     trades: the resting order's account; otherwise 0
    maker_leaves      trades: the resting order's remaining quantity
    trade_id          trades: a per-instrument, gap-free trade number
    instrument  i4
    kind        u1    EventKind
    side        u1    Side of ``order_id``
    reason      u2    Reason (rejects and cancels; OK otherwise)
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np

__all__ = [
    "COMMAND_DTYPE",
    "EVENT_DTYPE",
    "CommandKind",
    "EventKind",
    "OrderFlag",
    "OrderType",
    "Reason",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "reason_message",
]


class CommandKind(IntEnum):
    """What a command asks the engine to do."""

    NEW = 1
    CANCEL = 2
    AMEND = 3
    MASS_CANCEL = 4
    DEPOSIT = 10
    WITHDRAW = 11
    MARK_PRICE = 12
    FUNDING = 13
    EXPIRE = 14
    MARGIN_MODE = 15


class Side(IntEnum):
    """Order side."""

    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    """Order type; stop orders wait for the last trade price to reach ``stop_price``."""

    LIMIT = 0
    MARKET = 1
    STOP_MARKET = 2
    STOP_LIMIT = 3


class TimeInForce(IntEnum):
    """How long an order may rest: GTC rests, IOC and FOK never do."""

    GTC = 0
    IOC = 1
    FOK = 2


class OrderFlag(IntFlag):
    """Order instruction bits in ``COMMAND_DTYPE.flags``."""

    NONE = 0
    POST_ONLY = 1
    REDUCE_ONLY = 2


class SelfTradePrevention(IntEnum):
    """What happens when an order would trade against its own account.

    The taker's mode decides.  ``DECREMENT`` reduces both orders by the
    smaller quantity and cancels whichever reaches zero (both when equal).
    """

    NONE = 0
    CANCEL_TAKER = 1
    CANCEL_MAKER = 2
    CANCEL_BOTH = 3
    DECREMENT = 4


class EventKind(IntEnum):
    """What an event reports."""

    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELLED = 4
    AMENDED = 5
    TRIGGERED = 6
    REPLENISHED = 7
    BALANCE = 10
    POSITION = 11
    LIQUIDATION = 12
    FUNDING = 13
    SETTLEMENT = 14
    MARGIN_MODE = 15


class Reason(IntEnum):
    """Reject and cancel reason codes; ``reason_message`` explains each."""

    OK = 0
    # rejects: the command changed nothing
    UNKNOWN_INSTRUMENT = 1
    PRICE_OFF_TICK = 2
    QTY_OFF_LOT = 3
    QTY_NOT_POSITIVE = 4
    QTY_BELOW_MIN = 5
    QTY_ABOVE_MAX = 6
    PRICE_OUT_OF_BAND = 7
    DUPLICATE_ORDER_ID = 8
    UNKNOWN_ORDER = 9
    MARKET_GTC = 10
    POST_ONLY_WOULD_TAKE = 11
    FOK_NOT_FILLABLE = 12
    INVALID_SIDE = 13
    INVALID_ORDER_TYPE = 14
    INVALID_TIF = 15
    INVALID_STP = 16
    INVALID_DISPLAY_QTY = 17
    INVALID_STOP_PRICE = 18
    INVALID_COMMAND = 19
    INVALID_PRICE = 20
    INVALID_ACCOUNT = 21
    AMEND_STOP_ORDER = 22
    INSUFFICIENT_MARGIN = 30
    REDUCE_ONLY_VIOLATION = 31
    INSUFFICIENT_BALANCE = 32
    UNKNOWN_ACCOUNT = 33
    UNKNOWN_CURRENCY = 34
    INVALID_MARK_PRICE = 35
    MALFORMED_DECLARATION = 36
    ENGINE_HALTED = 40
    # cancel reasons: an order left the book without trading
    USER_CANCEL = 50
    IOC_REMAINDER = 51
    STP_CANCEL = 52
    MASS_CANCEL = 53
    NO_LIQUIDITY = 54
    LIQUIDATION = 55
    EXPIRY = 56


_MESSAGES = {
    Reason.OK: "accepted",
    Reason.UNKNOWN_INSTRUMENT: "the instrument id is not listed; list it with Exchange.add_instrument first",
    Reason.PRICE_OFF_TICK: "the price is not a multiple of the instrument's tick size",
    Reason.QTY_OFF_LOT: "the quantity is not a multiple of the instrument's lot size",
    Reason.QTY_NOT_POSITIVE: "the quantity must be at least one lot",
    Reason.QTY_BELOW_MIN: "the quantity is below the instrument's minimum order size",
    Reason.QTY_ABOVE_MAX: "the quantity is above the instrument's maximum order size",
    Reason.PRICE_OUT_OF_BAND: "the price is outside the instrument's price band",
    Reason.DUPLICATE_ORDER_ID: "the account already has an open order with this order id on this instrument",
    Reason.UNKNOWN_ORDER: "the account has no open order with this order id on this instrument",
    Reason.MARKET_GTC: "market orders cannot rest: use IOC or FOK",
    Reason.POST_ONLY_WOULD_TAKE: "the post-only order would have traded on entry",
    Reason.FOK_NOT_FILLABLE: "the fill-or-kill order cannot be filled in full right now",
    Reason.INVALID_SIDE: "side must be BUY (0) or SELL (1)",
    Reason.INVALID_ORDER_TYPE: "order type must be LIMIT, MARKET, STOP_MARKET or STOP_LIMIT",
    Reason.INVALID_TIF: "time in force must be GTC, IOC or FOK",
    Reason.INVALID_STP: "self-trade prevention mode is not one of SelfTradePrevention",
    Reason.INVALID_DISPLAY_QTY: "iceberg display quantity must be positive, on the lot grid and below the order quantity, on a GTC limit order",
    Reason.INVALID_STOP_PRICE: "stop orders need a positive stop price on the tick grid",
    Reason.INVALID_COMMAND: "the command kind is not one of CommandKind",
    Reason.INVALID_PRICE: "limit prices must be positive",
    Reason.INVALID_ACCOUNT: "account ids must be non-negative",
    Reason.AMEND_STOP_ORDER: "untriggered stop orders cannot be amended; cancel and resubmit",
    Reason.INSUFFICIENT_MARGIN: "the order needs more initial margin than the account has free",
    Reason.REDUCE_ONLY_VIOLATION: "a reduce-only order must reduce the position, not open or flip it",
    Reason.INSUFFICIENT_BALANCE: "the account's free balance does not cover this",
    Reason.UNKNOWN_ACCOUNT: "the account does not exist; deposit into it first",
    Reason.UNKNOWN_CURRENCY: "the currency is not known to the ledger",
    Reason.INVALID_MARK_PRICE: "mark prices must be positive and on the tick grid",
    Reason.MALFORMED_DECLARATION: "a settlement transaction must declare every account it writes, each once",
    Reason.ENGINE_HALTED: "the engine stopped accepting commands after a durability failure",
    Reason.USER_CANCEL: "cancelled by its owner",
    Reason.IOC_REMAINDER: "the unfilled remainder of an immediate-or-cancel order",
    Reason.STP_CANCEL: "cancelled by self-trade prevention",
    Reason.MASS_CANCEL: "cancelled by a mass cancel",
    Reason.NO_LIQUIDITY: "the market order found no liquidity",
    Reason.LIQUIDATION: "cancelled by the liquidation of its account",
    Reason.EXPIRY: "the instrument expired",
}


def reason_message(code: int) -> str:
    """Return the human-readable explanation of a reason code."""
    try:
        return _MESSAGES[Reason(code)]
    except ValueError:
        return f"unknown reason code {code}"


COMMAND_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("ts", "<i8"),
        ("order_id", "<i8"),
        ("account", "<i8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("stop_price", "<i8"),
        ("display_qty", "<i8"),
        ("instrument", "<i4"),
        ("kind", "u1"),
        ("side", "u1"),
        ("otype", "u1"),
        ("tif", "u1"),
        ("flags", "u1"),
        ("stp", "u1"),
        ("_reserved16", "<u2"),
        ("_reserved32", "<u4"),
    ]
)

EVENT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("ts", "<i8"),
        ("order_id", "<i8"),
        ("account", "<i8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("leaves", "<i8"),
        ("maker_order_id", "<i8"),
        ("maker_account", "<i8"),
        ("maker_leaves", "<i8"),
        ("trade_id", "<i8"),
        ("instrument", "<i4"),
        ("kind", "u1"),
        ("side", "u1"),
        ("reason", "<u2"),
    ]
)

assert COMMAND_DTYPE.itemsize == 80
assert EVENT_DTYPE.itemsize == 96
