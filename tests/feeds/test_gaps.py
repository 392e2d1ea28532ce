"""Binance continuity: dropped diffs, holes healed by a fresh snapshot, and bad input, on derived captures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.readers import read_hftbacktest
from shardex.feeds.replay import replay_files

from .conftest import gz_lines, write_gz

CASES = {
    "futures": ("usdm/btcusdt_20240718.gz", True, "btcusdt"),
    "spot": ("spot/ethusdt_20240808.gz", False, "ethusdt"),
}


def _depth_indices(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if b"depthUpdate" in line]


def _only_book(path_list) -> dict:
    (key, b), = replay_files(path_list).report()["books"].items()
    return b


@pytest.mark.parametrize("case", sorted(CASES))
def test_dropped_diff_is_a_gap_and_the_book_stays_unsynced(hft: Path, tmp_path: Path, case: str):
    rel, _, _ = CASES[case]
    lines = gz_lines(hft / rel)
    depth = _depth_indices(lines)
    drop = depth[200]
    cut = write_gz(tmp_path / "cut.gz", lines[:drop] + lines[drop + 1 :])
    for fast in (True, False):
        (key, b), = replay_files([cut], fast=fast).report()["books"].items()
        assert b["gaps"] == 1 and b["synced"] is False and b["top10_sha256"] is None
        assert b["resyncs"] == 0
        gap = [p for p in b["problems"] if ": gap" in p]
        # reported at the next diff: 0-based index depth[201] in the original is 1-based line depth[201] once one line is gone
        assert gap and gap[0].startswith(f"{cut}:{depth[201]}: gap")


def _snapshot_line(book: BinanceBook, stamp: bytes) -> bytes:
    bids, asks = book.levels()
    g = book.grid
    doc = {
        "lastUpdateId": book.last_update_id,
        "bids": [[g.px_str(p), g.qty_str(q)] for p, q in bids.tolist()],
        "asks": [[g.px_str(p), g.qty_str(q)] for p, q in asks.tolist()],
    }
    return stamp + b" " + json.dumps(doc, separators=(",", ":")).encode()


@pytest.mark.parametrize("case", sorted(CASES))
def test_hole_then_fresh_snapshot_resyncs_to_the_ungapped_book(hft: Path, tmp_path: Path, case: str):
    rel, futures, sym = CASES[case]
    path = hft / rel
    lines = gz_lines(path)
    depth = _depth_indices(lines)
    hole = set(depth[300:305])  # five diffs lost
    k = depth[400]  # the fresh snapshot is the true book after this diff ...
    arrive = depth[404] + 1  # ... and arrives four diffs later (those are buffered, then replayed)
    truth = BinanceBook("truth", sym, futures)
    for m in read_hftbacktest(path).messages():
        if m.line - 1 > k:
            break
        truth.on_message(m.data, m.recv_ns, m.where)
    assert truth.synced
    snap = _snapshot_line(truth, lines[arrive].partition(b" ")[0])
    derived = [line for i, line in enumerate(lines[:arrive]) if i not in hole] + [snap] + lines[arrive:]
    healed = write_gz(tmp_path / "healed.gz", derived)

    full = replay_files([path])
    (key, want), = full.report()["books"].items()
    for fast in (True, False):
        r = replay_files([healed], fast=fast)
        (_, got), = r.report()["books"].items()
        assert got["gaps"] == 1 and got["resyncs"] == 1 and got["synced"] is True
        assert got["top10_sha256"] == want["top10_sha256"]
        b_got, a_got = r.books[key].levels()
        b_want, a_want = full.books[key].levels()
        assert np.array_equal(b_got, b_want) and np.array_equal(a_got, a_want)
        r.books[key]._check()


def test_snapshot_older_than_buffered_diffs_is_rejected(hft: Path, tmp_path: Path):
    lines = gz_lines(hft / "usdm/btcusdt_20240718.gz")
    snap_i = next(i for i, line in enumerate(lines) if b'"lastUpdateId"' in line)
    stamp, _, body = lines[snap_i].partition(b" ")
    doc = json.loads(body)
    doc["lastUpdateId"] -= 10**9  # far before every buffered diff
    lines[snap_i] = stamp + b" " + json.dumps(doc).encode()
    b = _only_book([write_gz(tmp_path / "old.gz", lines)])
    assert b["snapshot_rejects"] == 1 and b["synced"] is False and b["applied"] == 0
    assert any("snapshot_older_than_buffered_diffs" in p for p in b["problems"])


def test_truncated_line_is_reported_and_unsyncs(hft: Path, tmp_path: Path):
    lines = gz_lines(hft / "usdm/btcusdt_20240718.gz")
    i = _depth_indices(lines)[100]
    lines[i] = lines[i][: len(lines[i]) // 2]
    p = write_gz(tmp_path / "trunc.gz", lines)
    b = _only_book([p])
    assert b["malformed"] == 1 and b["synced"] is False
    assert b["problems"][0].startswith(f"{p}:{i + 1}: malformed")


def test_unknown_message_is_counted_and_harmless(hft: Path, tmp_path: Path):
    lines = gz_lines(hft / "usdm/btcusdt_20240718.gz")
    lines.insert(200, b"1721347020000000000 {\"foo\":1}")
    b = _only_book([write_gz(tmp_path / "unk.gz", lines)])
    assert b["unknown"] == 1 and b["synced"] is True and b["gaps"] == 0


def test_decimal_finer_than_the_book_unsyncs(hft: Path, tmp_path: Path):
    lines = gz_lines(hft / "usdm/btcusdt_20240718.gz")
    i = _depth_indices(lines)[100]
    stamp, _, body = lines[i].partition(b" ")
    doc = json.loads(body)
    doc["data"]["b"].append([doc["data"]["b"][0][0] + "5", "1.000"])  # a third decimal on a 2-decimal book
    lines[i] = stamp + b" " + json.dumps(doc, separators=(",", ":")).encode()
    b = _only_book([write_gz(tmp_path / "fine.gz", lines)])
    assert b["unrepresentable"] == 1 and b["synced"] is False


def test_fast_path_equals_per_message_path(hft: Path):
    files = [hft / "usdm/btcusdt_20240718.gz", hft / "usdm/btcusdt_20240719.gz"]
    fast = replay_files(files, fast=True).report()["books"]
    slow = replay_files(files, fast=False).report()["books"]
    assert fast == slow
