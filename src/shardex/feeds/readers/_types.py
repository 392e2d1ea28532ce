"""The one record every reader yields: a raw message with its receive time and origin."""

from __future__ import annotations

import msgspec

__all__ = ["RawMessage", "VENUES"]

#: Venue protocols a reader can name (the builder that understands the bytes).
VENUES = (
    "binance-spot",
    "binance-futures",  # USDⓈ-M and COIN-M share the pu rule
    "okx",
    "deribit",
    "bybit",
    "hyperliquid",
    "tardis-book-snapshot",  # synthesized {"timestamp", "bids", "asks"} from a tardis CSV row
    "tardis-l2",  # synthesized incremental_book_L2 message (one timestamp's rows)
    "tardis-trades",
    "tardis-quotes",
    "reference",  # REST reference data (exchangeInfo, instruments): no book
)


class RawMessage(msgspec.Struct, frozen=True):
    """One message as it came off the wire (or one CSV record, re-encoded as JSON).

    Attributes
    ----------
    venue:
        Protocol name from :data:`VENUES`: which builder reads ``data``.
    data:
        The message bytes exactly as received (websocket text or REST body).
    recv_ns:
        The collector's receive clock, ns since the Unix epoch (converted from
        the capture's own unit: ns, µs or float seconds). Exchange stamps stay
        inside ``data`` (Binance ``E``/``T`` ms, OKX/Bybit ``ts`` ms, Deribit
        ``timestamp`` ms, tardis ``timestamp`` µs).
    source, line:
        File and 1-based line (record) number, for reports.
    conn:
        Connection id within the capture (``"BYBIT.ws.2"``), "" when one.
    kind:
        ``"ws"`` for a stream message, ``"rest"`` for a REST response.
    key:
        Book hint: the symbol of a REST snapshot (taken from its URL) or of a
        single-symbol capture; "" when the message itself names it.
    """

    venue: str
    data: bytes
    recv_ns: int
    source: str
    line: int
    conn: str = ""
    kind: str = "ws"
    key: str = ""

    @property
    def where(self) -> str:
        """``file:line`` for reports."""
        return f"{self.source}:{self.line}"
