"""Live feeds: the asyncio Binance, Bybit, OKX and Deribit handlers, their conflating queue, and the loopback capture server.

See docs/feeds-live.md. Public names:

* :class:`BinanceFeedHandler`, :class:`BybitFeedHandler`, :class:`OkxFeedHandler`,
  :class:`DeribitFeedHandler`, :class:`LiveConfig` — keep exact books
  from a websocket connection (:class:`FeedHandler` is their shared base).
* :class:`ConflatingQueue` — bounded; book updates conflate, trades are never lost silently.
* :class:`CaptureServer`, :class:`Faults` — ``shardex feeds serve-capture`` as a library.
* :class:`Backoff` — reconnect delays.
* the events: :class:`Trade`, :class:`BestBidAsk`, :class:`MarkPrice`, :class:`BookState`,
  :class:`BookDelta`, :class:`BookInvalid`, :class:`Overflow`.
"""

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BestBidAsk, BookDelta, BookInvalid, BookState, MarkPrice, Overflow, Trade
from shardex.feeds.live.handler import (
    BinanceFeedHandler,
    BybitFeedHandler,
    DeribitFeedHandler,
    FeedHandler,
    LiveConfig,
    LiveConfigError,
    OkxFeedHandler,
)
from shardex.feeds.live.queue import ConflatingQueue, QueueClosed
from shardex.feeds.live.server import CaptureServer, Faults, ServeError

__all__ = [
    "Backoff",
    "BestBidAsk",
    "BinanceFeedHandler",
    "BybitFeedHandler",
    "BookDelta",
    "BookInvalid",
    "BookState",
    "CaptureServer",
    "ConflatingQueue",
    "DeribitFeedHandler",
    "FeedHandler",
    "Faults",
    "LiveConfig",
    "LiveConfigError",
    "MarkPrice",
    "OkxFeedHandler",
    "Overflow",
    "QueueClosed",
    "ServeError",
    "Trade",
]
