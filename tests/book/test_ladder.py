"""ladder_search against numpy's searchsorted, on dense, sparse and mixed ladders of every size."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.book.ladder import ladder_search


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.integers(-200, 200), max_size=150, unique=True),
    dense_top=st.integers(0, 40),
    probe=st.integers(-260, 260),
)
def test_search_finds_the_first_key_not_below_the_probe(keys, dense_top, probe):
    # A run of consecutive keys at the top (where the position follows from
    # the distance to the best key) above arbitrary sparse ones.
    top = max(keys, default=0)
    keys = sorted(set(keys) | set(range(top + 1, top + 1 + dense_top)))
    row = np.zeros((2, max(len(keys), 1) + 3), dtype=np.int64)
    row[1, : len(keys)] = keys
    row[1, len(keys):] = 10**9  # stale entries past the end must not matter
    assert ladder_search(row, 1, len(keys), probe) == np.searchsorted(np.array(keys, dtype=np.int64), probe)
