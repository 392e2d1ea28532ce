"""shardex.lowlevel: the cache-line aligned allocator and page pretouching."""

from __future__ import annotations

import mmap
import resource
import sys

import numpy as np
import pytest

from shardex.lowlevel import PAGE, aligned, is_aligned, pretouch


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


@pytest.mark.parametrize("shape", [0, 1, (PAGE // 8 + 3,), (5000, 8), (3, PAGE + 1)])
def test_pretouch_leaves_every_value_as_it_was(shape):
    rng = np.random.default_rng(7)
    a = aligned(shape, np.int64)
    a[...] = rng.integers(-(2**62), 2**62, size=a.shape)
    before = a.copy()
    pretouch(a)
    assert np.array_equal(a, before)


def test_pretouch_refuses_a_strided_view():
    with pytest.raises(ValueError, match="contiguous"):
        pretouch(np.zeros((64, 64))[:, ::2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RUSAGE_THREAD is Linux's")
def test_a_pretouched_array_takes_no_page_fault_when_written():
    def faults_writing(a):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        a.fill(1)
        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

    def fresh():  # anonymous pages of its own, mapped by the OS on first touch (numpy's may be recycled heap)
        return np.frombuffer(mmap.mmap(-1, 8 << 20), dtype=np.int64)

    lazy, touched = fresh(), fresh()
    pretouch(touched)
    assert faults_writing(lazy) >= 1
    assert faults_writing(touched) == 0
