"""Normalized events the live feed handler publishes (venue-neutral, exact decimal strings).

Prices and sizes stay the venue's decimal strings (canonical for book levels),
never floats: a consumer that needs integers converts them with the book's
grid. Every event carries ``recv_ns`` (the handler's receive clock, ns since
the Unix epoch); those that the venue stamps also carry ``exch_ns``.
"""

from __future__ import annotations

import msgspec

__all__ = ["Trade", "BestBidAsk", "MarkPrice", "BookState", "BookDelta", "BookInvalid", "Overflow", "Event"]


class Trade(msgspec.Struct, frozen=True):
    """One trade (Binance ``trade``/``aggTrade``, Bybit ``publicTrade``); never conflated, never dropped silently.

    ``buyer_maker`` is True when the buyer was the maker (a sell-initiated trade).
    ``trade_id`` is the venue's id: an int on Binance, the string as received
    on Bybit (a UUID on linear).
    """

    venue: str
    symbol: str
    trade_id: int | str
    price: str
    qty: str
    buyer_maker: bool
    exch_ns: int
    recv_ns: int


class BestBidAsk(msgspec.Struct, frozen=True):
    """The venue's own best bid/ask stream (Binance ``bookTicker``); conflated per symbol (latest wins)."""

    venue: str
    symbol: str
    update_id: int
    bid_px: str
    bid_qty: str
    ask_px: str
    ask_qty: str
    exch_ns: int
    recv_ns: int


class MarkPrice(msgspec.Struct, frozen=True):
    """Mark price, index price and funding of one instrument; conflated per symbol (latest wins).

    From Binance ``markPrice@1s``, Bybit ``tickers``, Deribit ``ticker`` and OKX
    ``mark-price`` + ``index-tickers`` + ``funding-rate`` (three channels merged
    per instrument: each message updates its own fields and publishes the
    whole). A field the venue has not sent (yet) is ``""`` (``0`` for
    ``next_funding_ns``). ``funding_rate`` is the decimal rate of the current
    funding interval, settled at ``next_funding_ns`` (ns since the epoch);
    ``next_funding_rate`` is the venue's forecast for the interval after it
    (OKX ``nextFundingRate``; ``""`` elsewhere).
    """

    venue: str
    symbol: str
    mark: str
    index: str
    funding_rate: str
    next_funding_ns: int
    exch_ns: int
    recv_ns: int
    next_funding_rate: str = ""


class BookState(msgspec.Struct, frozen=True):
    """The top of a synced book (``depth`` levels a side, best first); conflated per book.

    Built when the consumer takes it, from the book as it is then, so a slow
    consumer gets the latest state and ``folded`` says how many book updates
    it stands for. ``update_id`` is the final update id of the last diff in it
    (Bybit ``u``, OKX ``seqId``; None where the venue sends none, as OKX
    captures from before ``seqId``).
    ``resync`` is True for the first state after a (re)sync.
    """

    key: str
    update_id: int | None
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    recv_ns: int
    folded: int
    resync: bool


class BookDelta(msgspec.Struct):
    """Levels changed by one or more applied diffs (absolute sizes, ``"0"`` deletes); merged per book.

    Merging is exact for absolute-size L2 updates: the newest size of each
    price wins, ``first_id`` is the oldest diff's first id and ``last_id`` the
    newest diff's final id. A consumer that holds a :class:`BookState` applies a
    delta only when ``last_id > state.update_id`` (applying it to any state from
    ``first_id - 1`` on gives the state at ``last_id``).
    """

    key: str
    first_id: int
    last_id: int
    bids: dict[str, str]
    asks: dict[str, str]
    exch_ns: int
    recv_ns: int
    merged: int = 1


class BookInvalid(msgspec.Struct, frozen=True):
    """The book is no longer exact (gap, disconnect): drop your copy until the next :class:`BookState`."""

    key: str
    reason: str
    where: str
    recv_ns: int


class Overflow(msgspec.Struct, frozen=True):
    """Trades the queue dropped under the ``"overflow"`` policy since the last Overflow event.

    Delivered in order, where the first dropped trade would have been.
    """

    dropped_trades: int
    first_dropped_id: int | str
    last_dropped_id: int | str


Event = Trade | BestBidAsk | MarkPrice | BookState | BookDelta | BookInvalid | Overflow
