"""OKX, Deribit and Bybit continuity rules on derived captures (one message dropped or altered)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import zstandard

from shardex.feeds.builders.okx import okx_checksum
from shardex.feeds.replay import replay_files

from .conftest import NT


def _v1_copy(src: Path, dst_dir: Path, keep) -> Path:
    lines = src.read_bytes().split(b"\n")
    out = dst_dir / src.name
    out.write_bytes(b"\n".join(line for i, line in enumerate(lines) if keep(i, line)))
    return out


def _nth(lines: list[bytes], needle: bytes, n: int) -> int:
    return [i for i, line in enumerate(lines) if needle in line][n]


def test_okx_dropped_update_fails_the_checksum(cf: Path, tmp_path: Path):
    src = cf / "OKX.ws.1.0"
    lines = src.read_bytes().split(b"\n")
    drop = _nth(lines, b'"instId":"BTC-USDT"},"action":"update"', 10)
    p = _v1_copy(src, tmp_path, lambda i, _: i != drop)
    books = replay_files([p]).report()["books"]
    b = books["okx:BTC-USDT"]
    assert b["checksum_mismatch"] == 1 and b["gaps"] == 1 and b["synced"] is False
    assert books["okx:UNI-USD-SWAP"]["synced"] is True  # the others are untouched


def test_okx_altered_size_fails_the_checksum(cf: Path, tmp_path: Path):
    src = cf / "OKX.ws.1.0"
    lines = src.read_bytes().split(b"\n")
    i = _nth(lines, b'"instId":"UNI-USD-SWAP"},"action":"update"', 5)
    lines[i] = lines[i].replace(b'","0","', b'1","0","', 1)  # one size gains a digit
    p = tmp_path / "OKX.ws.1.0"
    p.write_bytes(b"\n".join(lines))
    b = replay_files([p]).report()["books"]["okx:UNI-USD-SWAP"]
    assert b["checksum_mismatch"] == 1 and b["synced"] is False


def test_okx_checksum_signed_crc32():
    # a shorter side stops contributing; CRC32 read as a signed 32-bit integer
    assert okx_checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8")]) == okx_checksum(
        [("3366.1", "7")], [("3366.8", "9"), ("3368", "8")]
    )
    v = okx_checksum([("1", "1")], [])
    assert -(1 << 31) <= v < (1 << 31)


def test_deribit_dropped_change_is_a_gap(cf: Path, tmp_path: Path):
    src = cf / "DERIBIT.ws.1.0"
    lines = src.read_bytes().split(b"\n")
    drop = _nth(lines, b'"channel":"book.BTC-24SEP21-8000-P.raw","data":{"type":"change"', 3)
    p = _v1_copy(src, tmp_path, lambda i, _: i != drop)
    b = replay_files([p]).report()["books"]["deribit:BTC-24SEP21-8000-P"]
    assert b["gaps"] == 1 and b["synced"] is False
    assert "prev_change_id" in " ".join(b["problems"])


def test_bybit_dropped_delta_is_a_gap_per_connection(cf: Path, tmp_path: Path):
    raw = zstandard.ZstdDecompressor().decompressobj().decompress((cf / "BYBIT.jsonl.zst").read_bytes())
    lines = raw.split(b"\n")
    drop = [i for i, line in enumerate(lines) if b'"conn":"BYBIT.ws.2"' in line and b'orderbook.200.BTCUSDT\\",\\"type\\":\\"delta' in line][20]
    kept = b"\n".join(line for i, line in enumerate(lines) if i != drop)
    p = tmp_path / "BYBIT.jsonl.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(kept))
    books = replay_files([p]).report()["books"]
    lin = books["bybit:BYBIT.ws.2:orderbook.200.BTCUSDT"]
    assert lin["gaps"] == 1 and lin["synced"] is False
    assert books["bybit:BYBIT.ws.3:orderbook.200.BTCUSDT"]["synced"] is True  # spot shares the topic name


def test_bybit_zip_dropped_delta(shared_data: Path, tmp_path: Path):
    src = shared_data / NT / "bybit/xrpusdt-ob500.data.zip"
    with zipfile.ZipFile(src) as zf:
        name = zf.namelist()[0]
        lines = zf.read(name).split(b"\n")
    del lines[10]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, b"\n".join(lines))
    p = tmp_path / "xrp.data.zip"
    p.write_bytes(buf.getvalue())
    (key, b), = replay_files([p]).report()["books"].items()
    assert b["gaps"] == 1 and b["synced"] is False and "u " in b["problems"][0]
