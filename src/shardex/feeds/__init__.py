"""Market-data feeds: venue readers, L2 book builders with gap detection, live handlers.

Public names: the readers' :class:`RawMessage` and :func:`read`, the book
builders (one per venue protocol, same per-message interface), the replayer
and the normalizer. See docs/feeds.md.
"""

from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.builders.bybit import BybitBook
from shardex.feeds.builders.deribit import DeribitBook
from shardex.feeds.builders.okx import OkxBook
from shardex.feeds.builders.snapshots import SnapshotBook, TardisL2Book
from shardex.feeds.readers import RawMessage, read
from shardex.feeds.replay import Replay, replay_files

__all__ = [
    "RawMessage",
    "read",
    "BinanceBook",
    "OkxBook",
    "DeribitBook",
    "BybitBook",
    "SnapshotBook",
    "TardisL2Book",
    "Replay",
    "replay_files",
]
