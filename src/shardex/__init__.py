"""shardex: a parallel matching, risk and settlement engine for crypto derivatives."""

from shardex.errors import (
    InvalidInstrumentError,
    JournalError,
    MalformedInputError,
    OffGridError,
    OrderRejected,
    ShardexError,
    UnknownInstrumentError,
)
from shardex.instruments import Instrument, InstrumentKind, Matching, OptionType
from shardex.engine.exchange import Exchange, Trade
from shardex.engine.events import to_arrow, to_frame
from shardex.schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandKind,
    EventKind,
    OrderFlag,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

__version__ = "0.1.0"

__all__ = [
    "COMMAND_DTYPE",
    "EVENT_DTYPE",
    "CommandKind",
    "EventKind",
    "Exchange",
    "Instrument",
    "InstrumentKind",
    "InvalidInstrumentError",
    "JournalError",
    "MalformedInputError",
    "Matching",
    "OffGridError",
    "OptionType",
    "OrderFlag",
    "OrderRejected",
    "OrderType",
    "Reason",
    "SelfTradePrevention",
    "ShardexError",
    "Side",
    "TimeInForce",
    "Trade",
    "UnknownInstrumentError",
    "to_arrow",
    "to_frame",
]
