"""Shared by the live-handler tests: draining a handler's queue, and the offline books to compare with."""

from __future__ import annotations

from pathlib import Path

from shardex.feeds.live.queue import ConflatingQueue
from shardex.feeds.replay import replay_files


async def drain(queue: ConflatingQueue) -> list:
    """Every event the queue yields until it is closed."""
    return [ev async for ev in queue]


def offline_top10(capture: Path, venue: str, instruments: tuple[str, ...]) -> dict[str, str]:
    """``<venue>:<instrument>`` -> top10_sha256 of ``shardex feeds replay`` on the capture (every book synced)."""
    out = {k: b["top10_sha256"] for k, b in replay_files([capture]).report()["books"].items()}
    assert set(out) == {f"{venue}:{i}" for i in instruments} and all(out.values())
    return out
