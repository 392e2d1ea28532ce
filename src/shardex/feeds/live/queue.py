"""A bounded event queue for one slow consumer: book updates conflate, trades are never lost silently.

Three kinds of entries share one FIFO:

* **plain** (trades): each is delivered. They count against ``maxsize``; when
  it is reached the policy decides: ``"block"`` (default) suspends the
  producer until the consumer makes room, so the venue's socket backs up
  (TCP flow control) instead of data being lost; ``"overflow"`` drops the
  trade, counts it in :attr:`ConflatingQueue.trades_dropped` and delivers one
  :class:`~shardex.feeds.live.events.Overflow` event (count and trade ids) at
  the place of the first trade dropped, so the loss is explicit.
* **latest** (book states, best bid/ask, mark price, book invalidations):
  one pending entry per key; a newer value replaces the pending one in place
  (it keeps its place in line, so a busy book is not starved behind its own
  updates). A value may be *lazy*: a callable run when the consumer takes the
  entry, so a book state is built once from the book as it is then, however
  many updates it folds.
* **merged** (book deltas): one pending delta per book; a newer delta's levels
  overwrite the pending one's (exact for absolute-size L2 updates).

Latest and merged entries do not count against ``maxsize``: there is at most
one per key, so the queue holds at most ``maxsize`` plus the number of keys.
Everything runs on one event loop; no method is thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from shardex.errors import ShardexError
from shardex.feeds.live.events import BookDelta, Overflow, Trade

__all__ = ["ConflatingQueue", "QueueClosed", "POLICIES"]

#: What a full queue does with one more trade.
POLICIES = ("block", "overflow")

_PLAIN, _LATEST, _MERGED = 0, 1, 2


class QueueClosed(ShardexError, RuntimeError):
    """The queue was closed: no more events will come (get) or be taken (put)."""


class _Entry:
    __slots__ = ("kind", "key", "value", "folded", "alive")

    def __init__(self, kind: int, key: Any, value: Any) -> None:
        self.kind = kind
        self.key = key
        self.value = value
        self.folded = 1
        self.alive = True


class ConflatingQueue:
    """Bounded FIFO of feed events with per-key conflation (see the module docstring).

    Parameters
    ----------
    maxsize:
        Most plain entries (trades) pending at once; at least 1.
    policy:
        ``"block"``: :meth:`put` waits for room. ``"overflow"``: :meth:`put`
        drops the trade, counts it and queues an :class:`Overflow` event.

    Every operation is O(1) except a merge, O(levels in the newer delta).
    """

    def __init__(self, maxsize: int = 10_000, policy: str = "block") -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.maxsize = maxsize
        self.policy = policy
        self._q: deque[_Entry] = deque()
        self._pending: dict[Any, _Entry] = {}
        self._n_plain = 0
        self._items = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._closed = False
        # counters, for reports and tests
        self.put_count = 0
        self.conflated = 0
        self.delivered = 0
        self.trades_in = 0
        self.trades_out = 0
        self.trades_dropped = 0
        self.producer_waits = 0

    # ---- producer side ------------------------------------------------------------------
    async def put(self, event: Any) -> None:
        """Queue a plain event (a trade); full: wait (``block``) or drop and record (``overflow``)."""
        if self._closed:
            raise QueueClosed("put on a closed queue: the consumer has stopped")
        is_trade = isinstance(event, Trade)
        if self._n_plain >= self.maxsize:
            if self.policy == "overflow":
                self._drop(event)
                return
            self.producer_waits += 1
            while self._n_plain >= self.maxsize:  # ends: get() frees room or close() raises below
                self._space.clear()
                await self._space.wait()
                if self._closed:
                    raise QueueClosed("queue closed while the producer waited for room")
        self.put_count += 1
        if is_trade:
            self.trades_in += 1
        self._n_plain += 1
        self._q.append(_Entry(_PLAIN, None, event))
        self._items.set()

    def put_latest(self, key: Any, value: Any, lazy: bool = False) -> None:
        """Queue ``value`` under ``key``, replacing a pending value of the same key in place.

        With ``lazy`` the value is a callable ``f(folded) -> event | None`` run when
        the consumer takes the entry (None: nothing to deliver).
        """
        if self._closed:
            return
        self.put_count += 1
        e = self._pending.get(key)
        if e is not None:
            e.value = (value, lazy)
            e.folded += 1
            self.conflated += 1
            return
        e = _Entry(_LATEST, key, (value, lazy))
        self._pending[key] = e
        self._q.append(e)
        self._items.set()

    def put_delta(self, key: Any, delta: BookDelta) -> None:
        """Queue a book delta, merged into the pending delta of the same key if there is one."""
        if self._closed:
            return
        self.put_count += 1
        e = self._pending.get(key)
        if e is not None:
            d: BookDelta = e.value
            d.bids.update(delta.bids)
            d.asks.update(delta.asks)
            d.last_id = delta.last_id
            d.exch_ns = delta.exch_ns
            d.recv_ns = delta.recv_ns
            d.merged += delta.merged
            e.folded += 1
            self.conflated += 1
            return
        e = _Entry(_MERGED, key, delta)
        self._pending[key] = e
        self._q.append(e)
        self._items.set()

    def discard(self, *keys: Any) -> int:
        """Withdraw the pending latest/merged entries under ``keys`` (a book gone unsynced); returns how many."""
        n = 0
        for k in keys:
            e = self._pending.pop(k, None)
            if e is not None:
                e.alive = False
                n += 1
        return n

    def close(self) -> None:
        """No more events: a waiting :meth:`get` raises :class:`QueueClosed` once the queue is drained."""
        self._closed = True
        self._items.set()
        self._space.set()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def _drop(self, event: Any) -> None:
        tid = getattr(event, "trade_id", -1)
        self.trades_in += 1
        self.trades_dropped += 1
        e = self._pending.get(("overflow",))
        if e is None:
            e = _Entry(_LATEST, ("overflow",), (Overflow(1, tid, tid), False))
            self._pending[("overflow",)] = e
            self._q.append(e)
            self._items.set()
        else:
            o: Overflow = e.value[0]
            e.value = (Overflow(o.dropped_trades + 1, o.first_dropped_id, tid), False)

    # ---- consumer side ------------------------------------------------------------------
    def __len__(self) -> int:
        """Entries pending (withdrawn ones included until they reach the front)."""
        return len(self._q)

    def get_nowait(self) -> Any | None:
        """The next event, or None when nothing is pending."""
        q = self._q
        while q:  # ends: each turn pops one entry
            e = q.popleft()
            if not e.alive:
                continue
            if e.kind == _PLAIN:
                self._n_plain -= 1
                if not self._space.is_set() and self._n_plain < self.maxsize:
                    self._space.set()
                if isinstance(e.value, Trade):
                    self.trades_out += 1
                self.delivered += 1
                return e.value
            del self._pending[e.key]
            if e.kind == _MERGED:
                self.delivered += 1
                return e.value
            value, lazy = e.value
            if lazy:
                value = value(e.folded)
                if value is None:
                    continue
            self.delivered += 1
            return value
        self._items.clear()
        return None

    async def get(self) -> Any:
        """Wait for the next event; raises :class:`QueueClosed` when closed and drained."""
        while True:  # ends: an event is returned, or the queue is closed and drained
            ev = self.get_nowait()
            if ev is not None:
                return ev
            if self._closed:
                raise QueueClosed("queue closed and drained")
            await self._items.wait()

    def __aiter__(self) -> "ConflatingQueue":
        """``async for ev in queue``: every event until the queue is closed and drained."""
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.get()
        except QueueClosed:
            raise StopAsyncIteration from None

    def stats(self) -> dict[str, int]:
        """Counters: put, conflated, delivered, trades in/out/dropped, producer waits, pending."""
        return {
            "put": self.put_count,
            "conflated": self.conflated,
            "delivered": self.delivered,
            "trades_in": self.trades_in,
            "trades_out": self.trades_out,
            "trades_dropped": self.trades_dropped,
            "producer_waits": self.producer_waits,
            "pending": len(self._q),
        }

