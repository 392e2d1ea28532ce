"""Shared test fixtures: where the real market data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``../shared/data`` beside the checkout; SHARDEX_DATA overrides it.
SHARED_DATA = Path(os.environ.get("SHARDEX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared market-data folder; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared market data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def failing_fsync():
    """A factory: ``failing_fsync(after)`` is an fsync that works ``after`` times, then fails with EIO."""
    import errno

    def make(after: int):
        calls = {"n": 0}

        def fsync(fd: int) -> None:
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.EIO, "Input/output error")
            os.fdatasync(fd)

        return fsync

    return make
