"""Fixtures of the ledger tests."""

from __future__ import annotations

import pytest

from shardex.ledger import executor


@pytest.fixture(scope="module")
def monkeypatch_takeover():
    """Make every wait for another thread count as a stall (``TAKEOVER_CYCLES = 0``)."""
    saved = executor.TAKEOVER_CYCLES
    executor.TAKEOVER_CYCLES = 0
    yield
    executor.TAKEOVER_CYCLES = saved
