"""shardex.lowlevel: the cache-line aligned allocator."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.lowlevel import aligned, is_aligned


@pytest.mark.parametrize("shape", [0, 1, 7, (3, 8), (1000, 3), (2, 5, 3)])
@pytest.mark.parametrize("fill", [None, 0, -1])
def test_aligned_arrays_start_on_a_cache_line_with_their_fill(shape, fill):
    a = aligned(shape, np.int64, fill)
    assert is_aligned(a) and a.flags.c_contiguous and a.flags.writeable
    assert a.shape == ((shape,) if np.isscalar(shape) else shape) and a.dtype == np.int64
    if fill is not None:
        assert (a == fill).all()


def test_is_aligned_sees_an_offset_view():
    a = aligned(16, np.int64, 0)
    assert is_aligned(a) and not is_aligned(a[1:])
