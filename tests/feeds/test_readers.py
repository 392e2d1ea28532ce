"""Readers: every family yields raw messages with receive stamps in ns; errors name file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from shardex.errors import MalformedInputError
from shardex.feeds.readers import family, read, read_hftbacktest, reference_for

from .conftest import CF, HFT, NT


def test_hftbacktest_units_and_snapshot(shared_data: Path):
    ns = read_hftbacktest(shared_data / HFT / "usdm/btcusdt_20240718.gz")
    us = read_hftbacktest(shared_data / HFT / "usdm/btcusdt_20230404.dat.gz")
    assert (ns.venue, ns.symbol, ns.ts_mult) == ("binance-futures", "btcusdt", 1)
    assert (us.ts_mult, us.venue) == (1000, "binance-futures")
    m_ns = next(iter(ns.messages()))
    m_us = next(iter(us.messages()))
    # both collector clocks land in ns of the right year
    assert 1_721_000_000e9 < m_ns.recv_ns < 1_722_000_000e9
    assert 1_680_000_000e9 < m_us.recv_ns < 1_681_000_000e9
    rest = [m for m in ns.messages() if m.kind == "rest"]
    assert len(rest) == 1 and rest[0].line == 14 and rest[0].key == "btcusdt"
    spot = read_hftbacktest(shared_data / HFT / "spot/btcusdt_20240808.gz")
    assert spot.venue == "binance-spot"


def test_cryptofeed_v1_merges_snapshots_by_receive_time(shared_data: Path):
    msgs = list(read(shared_data / CF / "BINANCE_FUTURES.ws.1.0"))
    rest = [m for m in msgs if m.kind == "rest"]
    assert sorted(m.key for m in rest) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    stamps = [m.recv_ns for m in msgs]
    assert stamps == sorted(stamps)
    ref = reference_for(shared_data / CF / "BINANCE_FUTURES.ws.1.0")
    assert ref["binance-futures:SUSHIUSDT"].px_str(1) == "0.001"


def test_bybit_zst_keeps_connections(shared_data: Path):
    msgs = list(read(shared_data / CF / "BYBIT.jsonl.zst"))
    conns = {m.conn for m in msgs if m.kind == "ws"}
    assert conns == {"BYBIT.ws.2", "BYBIT.ws.3"}
    assert sum(1 for m in msgs if m.kind == "connect") == 2


@pytest.mark.parametrize(
    ("rel", "fam", "n"),
    [
        ("binance/btcusdt-depth-snap.csv", "binance-csv", 1),
        ("binance/btcusdt-depth-update.csv", "binance-csv", 1),
        ("tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", "tardis-csv", 10),
        ("tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv", "tardis-csv", 1),
        ("tardis/trades.csv", "tardis-csv", 9999),
        ("bybit/xrpusdt-ob500.data.zip", "bybit-zip", 50),
    ],
)
def test_nautilus_files(shared_data: Path, rel, fam, n):
    p = shared_data / NT / rel
    assert family(p) == fam
    msgs = list(read(p))
    assert len(msgs) == n
    assert all(m.recv_ns > 1_500_000_000e9 for m in msgs)


def test_errors_name_file_and_line(tmp_path: Path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"1723161255030314667 {}\n")[:-6])
    with pytest.raises(MalformedInputError, match="x.gz"):
        read_hftbacktest(bad)
    csvp = tmp_path / "t.csv"
    csvp.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nbinance,BTC,1,2,3\n")
    with pytest.raises(MalformedInputError, match=r"t.csv:2"):
        list(read(csvp))
