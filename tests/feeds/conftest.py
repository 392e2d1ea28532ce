"""Fixtures for the feed tests: paths into the shared captures and small derived captures."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

HFT = "hftbacktest/examples"
CF = "cryptofeed/sample_data"
NT = "nautilus_trader/tests/test_data"


@pytest.fixture(scope="session")
def hft(shared_data: Path) -> Path:
    """The hftbacktest examples folder."""
    return shared_data / HFT


@pytest.fixture(scope="session")
def cf(shared_data: Path) -> Path:
    """cryptofeed's sample_data folder."""
    return shared_data / CF


def gz_lines(path: Path) -> list[bytes]:
    """Decompressed lines of a capture, without their newlines."""
    return gzip.decompress(path.read_bytes()).split(b"\n")


def write_gz(path: Path, lines: list[bytes]) -> Path:
    """Write lines as a gzip capture (the hftbacktest layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines), compresslevel=1))
    return path
