"""``shardex journal verify``: read-only, reports torn tails and corruption, exit status."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from shardex.cli import app
from shardex.journal import Journal, SnapshotStore

from .helpers import make_batch

runner = CliRunner()


def make_engine_dir(root):
    with Journal(root / "journal", segment_bytes=8192) as j:
        seq = 1
        for _ in range(12):
            j.append(make_batch(seq, 20))
            seq += 20
        segs = j.segments
    SnapshotStore(root / "snapshots").write({"a": np.arange(3)}, seq=100, state_hash="cafe")
    return segs


def test_verify_clean(tmp_path):
    make_engine_dir(tmp_path)
    res = runner.invoke(app, ["journal", "verify", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ok"] and doc["first_seq"] == 1 and doc["last_seq"] == 240
    assert len(doc["segments"]) == 3 and doc["torn_tail"] is None
    assert doc["snapshots"] == [{"file": "snapshot-00000000000000000100.snap", "seq": 100, "valid": True, "state_hash": "cafe", "problem": None}]
    text = runner.invoke(app, ["journal", "verify", str(tmp_path / "journal")])
    assert text.exit_code == 0 and "result    ok" in text.output and "seq       1..240" in text.output


def test_verify_reports_torn_tail_without_cutting(tmp_path):
    segs = make_engine_dir(tmp_path)
    size = segs[-1].stat().st_size
    with open(segs[-1], "r+b") as fh:
        fh.truncate(size - 100)
    res = runner.invoke(app, ["journal", "verify", str(tmp_path)])
    assert res.exit_code == 0 and "torn tail" in res.output
    assert segs[-1].stat().st_size == size - 100


def test_verify_corruption_exits_nonzero_naming_file_and_offset(tmp_path):
    segs = make_engine_dir(tmp_path)
    data = bytearray(segs[0].read_bytes())
    data[32 + 32 + 5] ^= 1  # payload of the first record
    segs[0].write_bytes(bytes(data))
    before = segs[0].read_bytes()
    res = runner.invoke(app, ["journal", "verify", str(tmp_path), "--json"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert not doc["ok"] and doc["corruption"][0]["file"] == str(segs[0]) and doc["corruption"][0]["offset"] == 32
    assert segs[0].read_bytes() == before


def test_verify_missing_directory(tmp_path):
    res = runner.invoke(app, ["journal", "verify", str(tmp_path / "nope")])
    assert res.exit_code == 2
