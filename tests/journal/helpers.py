"""Helpers for the journal tests: deterministic command batches."""

from __future__ import annotations

import numpy as np

from shardex.schema import COMMAND_DTYPE


def make_batch(first_seq: int, n: int) -> np.ndarray:
    """Return ``n`` commands with seq ``first_seq..``; every field derived from seq, so content is checkable."""
    b = np.zeros(n, COMMAND_DTYPE)
    seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
    b["seq"] = seq
    b["ts"] = seq * 1000 + 7
    b["order_id"] = seq * 3
    b["account"] = seq % 97
    b["price"] = 10_000 + seq % 50
    b["qty"] = 1 + seq % 9
    b["instrument"] = seq % 5
    b["kind"] = 1
    b["side"] = seq % 2
    return b


def check_batches(batches, first_seq: int) -> int:
    """Assert ``batches`` continue from ``first_seq`` with the content of ``make_batch``; return the next seq."""
    expect = first_seq
    for b in batches:
        assert b.dtype == COMMAND_DTYPE
        ref = make_batch(expect, len(b))
        assert np.array_equal(b.view(np.uint8), ref.view(np.uint8)), f"content differs in batch at seq {expect}"
        expect += len(b)
    return expect
