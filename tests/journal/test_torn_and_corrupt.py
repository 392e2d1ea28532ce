"""Reopen after damage: torn tails are cut, corruption and missing segments are refused with file + offset."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardex.journal import Journal, JournalCorruptError, verify_journal
from shardex.journal._format import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE

from .helpers import check_batches, make_batch

SMALL = 8192


def build(path, sizes, segment_bytes=SMALL):
    """Write batches of ``sizes``; return (last segment path, offset of last record, seq of last record)."""
    seq = 1
    with Journal(path, segment_bytes=segment_bytes) as j:
        for n in sizes:
            j.append(make_batch(seq, n))
            seq += n
        last = j._segments[-1]
        return last.path, last.offsets[-1], last.first_seqs[-1]


def reopen_after_cut(path, seg, cut, last_first):
    with open(seg, "r+b") as fh:
        fh.truncate(cut)
    with Journal(path, segment_bytes=SMALL) as j:
        j._check()
        assert j.next_seq == last_first, "the torn record must be cut, all earlier ones kept"
        if cut > j._segments[-1].end or cut == 0:
            assert j.torn_tail is not None and j.torn_tail.path == seg
        assert check_batches(j.read(), 1) == last_first
        # the log is usable again: re-append the lost batch
        j.append(make_batch(last_first, 3))
        assert check_batches(j.read(), 1) == last_first + 3
    with Journal(path, segment_bytes=SMALL) as j:
        assert j.torn_tail is None and j.next_seq == last_first + 3


def test_torn_tail_cut_at_every_truncation_point(tmp_path):
    master = tmp_path / "master"
    seg, off, last_first = build(master, [4, 7, 3])
    size = seg.stat().st_size
    assert size - off == RECORD_HEADER_SIZE + 3 * 80
    for cut in range(off, size):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(master, work)
        reopen_after_cut(work, work / seg.name, cut, last_first)
        shutil.rmtree(work)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12), frac=st.floats(0, 1, exclude_max=True))
def test_torn_tail_property(tmp_path_factory, sizes, frac):
    path = tmp_path_factory.mktemp("torn")
    seg, off, last_first = build(path, sizes)
    size = seg.stat().st_size
    reopen_after_cut(path, seg, off + int(frac * (size - off)), last_first)


def test_garbage_last_record_is_a_torn_tail(tmp_path):
    # A complete-length last record with a bad checksum: what a power loss can
    # leave when the size reached the disk but the data did not.
    seg, off, last_first = build(tmp_path, [5, 5])
    data = bytearray(seg.read_bytes())
    data[off + RECORD_HEADER_SIZE + 17] ^= 0xFF
    seg.write_bytes(bytes(data))
    report = verify_journal(tmp_path)
    assert report.ok and report.torn_tail["offset"] == off
    with Journal(tmp_path) as j:
        assert j.torn_tail.offset == off and j.next_seq == last_first


def test_flipped_byte_in_middle_of_last_segment_refused(tmp_path):
    seg, _, _ = build(tmp_path, [5, 5, 5])
    with Journal(tmp_path) as j:
        bad_off = j._segments[-1].offsets[1]
    data = bytearray(seg.read_bytes())
    data[bad_off + RECORD_HEADER_SIZE + 40] ^= 0x01
    seg.write_bytes(bytes(data))
    size = len(data)
    with pytest.raises(JournalCorruptError) as err:
        Journal(tmp_path)
    assert err.value.path == seg and err.value.offset == bad_off
    assert str(seg) in str(err.value) and f"byte offset {bad_off}" in str(err.value)
    assert seg.stat().st_size == size, "a refused journal must not be modified"
    report = verify_journal(tmp_path)
    assert not report.ok and report.corruption[0]["offset"] == bad_off


def test_flipped_byte_in_older_segment_refused_on_read(tmp_path):
    build(tmp_path, [20] * 12)  # three segments
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        first = j._segments[0]
        bad_off = first.offsets[2]
    data = bytearray(first.path.read_bytes())
    data[bad_off + RECORD_HEADER_SIZE + 3] ^= 0x10
    first.path.write_bytes(bytes(data))
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        assert check_batches(j.read(first.next_seq), first.next_seq) == j.next_seq  # later data still readable
        with pytest.raises(JournalCorruptError) as err:
            list(j.read())
        assert err.value.path == first.path and err.value.offset == bad_off
    with pytest.raises(JournalCorruptError):
        Journal(tmp_path, segment_bytes=SMALL, verify_on_open=True)
    report = verify_journal(tmp_path)
    assert not report.ok and report.segments[0].status == "corrupt" and report.segments[0].offset == bad_off


@pytest.mark.parametrize("field_offset", [0, 9, 16, 20])  # magic, first_seq, count, payload_len
def test_damaged_header_in_older_segment_refused_at_open(tmp_path, field_offset):
    build(tmp_path, [20] * 12)
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        first = j._segments[0]
        bad_off = first.offsets[1]
    data = bytearray(first.path.read_bytes())
    data[bad_off + field_offset] ^= 0x04
    first.path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as err:
        Journal(tmp_path, segment_bytes=SMALL)
    assert err.value.path == first.path and err.value.offset == bad_off


def test_missing_middle_segment_refused(tmp_path):
    build(tmp_path, [20] * 12)
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        middle = j._segments[1]
    middle.path.unlink()
    with pytest.raises(JournalCorruptError, match=f"segment {middle.path.name} is missing") as err:
        Journal(tmp_path, segment_bytes=SMALL)
    assert err.value.offset == 0
    report = verify_journal(tmp_path)
    assert not report.ok and middle.path.name in report.corruption[0]["problem"]


def test_torn_segment_header_is_rewritten(tmp_path):
    build(tmp_path, [20] * 6)  # rolls once: the second segment holds one record
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        last = j._segments[-1]
        base = last.base_seq
    last.path.write_bytes(last.path.read_bytes()[:SEGMENT_HEADER_SIZE - 5])  # crash while creating it
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        j._check()
        assert j.torn_tail.offset == 0 and j.next_seq == base
        j.append(make_batch(base, 2))
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        assert check_batches(j.read(), 1) == base + 2


def test_header_of_a_sealed_segment_must_be_valid(tmp_path):
    build(tmp_path, [20] * 12)
    with Journal(tmp_path, segment_bytes=SMALL) as j:
        first = j._segments[0].path
    data = bytearray(first.read_bytes())
    data[3] ^= 1
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="invalid segment header") as err:
        Journal(tmp_path, segment_bytes=SMALL)
    assert err.value.offset == 0
