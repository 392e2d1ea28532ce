"""What every book builder shares: counters, problem reports, the top-of-book views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from shardex.feeds._decimal import top10_sha256

__all__ = ["Problem", "BookBuilder", "STAT_KEYS", "MAX_PROBLEMS"]

#: Problems kept per book; counts stay exact beyond it.
MAX_PROBLEMS = 200

#: The counters every builder reports, in report order.
STAT_KEYS = (
    "book_messages",
    "applied",
    "stale",
    "buffered",
    "gaps",
    "resyncs",
    "snapshots",
    "snapshot_rejects",
    "crossed",
    "crosscheck_ok",
    "crosscheck_mismatch",
    "checksum_ok",
    "checksum_mismatch",
    "off_grid",
    "malformed",
    "unknown",
)


@dataclass(frozen=True)
class Problem:
    """One reported event: where (``file:line`` or ``conn#n``), what (a short code) and detail."""

    where: str
    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.code}" + (f" ({self.detail})" if self.detail else "")


class BookBuilder(Protocol):
    """The per-message interface of every venue book builder (see docs/feeds.md).

    One builder keeps one book (a venue protocol and a book key). The live
    handler and the replayer both call :meth:`on_message` with each raw
    websocket message (bytes, exactly as received) and its receive time in ns,
    and :meth:`on_snapshot` with each REST snapshot body. Neither raises on bad
    input: problems are counted, reported in :attr:`problems`, and leave the
    book unsynced until the next good snapshot.
    """

    key: str

    @property
    def synced(self) -> bool:
        """True when the book is exact and may be served."""

    def on_message(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """Apply one raw websocket message (any channel; those not about the book are counted)."""

    def on_snapshot(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """Apply one REST depth snapshot body."""

    def stats(self) -> dict[str, int]:
        """Counters under :data:`STAT_KEYS` (and builder-specific extras)."""

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids, asks), best first, as canonical decimal strings; empty when unsynced."""

    def best(self) -> tuple[int, int, int, int] | None:
        """(bid ticks, bid lots, ask ticks, ask lots) of a synced book with both sides, else None."""

    @property
    def problems(self) -> Sequence[Problem]:
        """The first :data:`MAX_PROBLEMS` problems, oldest first."""


def sha_of(builder: "BookBuilder") -> str | None:
    """:func:`top10_sha256` of a synced builder's top 10, None when it is not synced."""
    if not builder.synced:
        return None
    bids, asks = builder.top(10)
    return top10_sha256(bids, asks)
