"""Every shared capture replays; continuations stay synced across the file boundary; the CLI prints the issue's keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shardex.cli import app
from shardex.feeds.replay import REPORT_KEYS, replay_files

from .conftest import CF, HFT, NT

# (file, books expected synced at the end: True / False / None for "no book at all")
FILES = [
    (f"{HFT}/usdm/btcusdt_20240808.gz", True),
    (f"{HFT}/usdm/ethusdt_20240808.gz", True),
    (f"{HFT}/usdm/btcusdt_20240718.gz", True),
    (f"{HFT}/usdm/btcusdt_20240719.gz", False),  # a continuation alone has no snapshot
    (f"{HFT}/usdm/btcusdt_20230404.dat.gz", True),  # snapshot before the diffs, µs stamps
    (f"{HFT}/spot/btcusdt_20240808.gz", True),
    (f"{HFT}/spot/btcusdt_20240809.gz", False),
    (f"{HFT}/spot/ethusdt_20240808.gz", True),
    (f"{HFT}/spot/ethusdt_20240809.gz", False),
    (f"{HFT}/spot/btcusdt_20230405.dat.gz", False),  # never gets a snapshot
    (f"{HFT}/cm/btcusd_perp_20240808.gz", True),
    (f"{HFT}/cm/btcusd_perp_20240809.gz", False),
    (f"{HFT}/cm/ethusd_perp_20240808.gz", True),
    (f"{HFT}/cm/ethusd_perp_20240809.gz", False),
    (f"{HFT}/hyperliquid/btcusd_20250126.gz", True),
    (f"{CF}/BINANCE.ws.1.0", True),
    (f"{CF}/BINANCE.http.0.0", False),  # snapshots with no diff to bridge them
    (f"{CF}/BINANCE.0", None),
    (f"{CF}/BINANCE_FUTURES.ws.1.0", True),
    (f"{CF}/BINANCE_FUTURES.http.0.0", False),
    (f"{CF}/BINANCE_FUTURES.0", None),
    (f"{CF}/OKX.ws.1.0", True),
    (f"{CF}/OKX.0", None),
    (f"{CF}/DERIBIT.ws.1.0", True),
    (f"{CF}/DERIBIT.0", None),
    (f"{CF}/BYBIT.jsonl.zst", True),
    (f"{NT}/binance/btcusdt-depth-snap.csv", False),
    (f"{NT}/binance/btcusdt-depth-update.csv", False),
    (f"{NT}/tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", True),
    (f"{NT}/tardis/binance-futures_book_snapshot_5_BTCUSDT.csv", True),
    (f"{NT}/tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv", True),
    (f"{NT}/tardis/trades.csv", None),
    (f"{NT}/tardis/quotes.csv", None),
    (f"{NT}/bybit/xrpusdt-ob500.data.zip", True),
]


@pytest.mark.parametrize(("rel", "synced"), FILES, ids=[Path(f).name for f, _ in FILES])
def test_every_shared_file_replays(shared_data: Path, rel: str, synced):
    rep = replay_files([shared_data / rel]).report()
    assert rep["malformed_lines"] == 0
    books = rep["books"]
    if synced is None:
        assert books == {}
        return
    assert books
    for key, b in books.items():
        assert b["synced"] is synced, (key, b["problems"])
        assert (b["top10_sha256"] is None) is (not synced)
        for k in ("gaps", "crosscheck_mismatch", "checksum_mismatch", "malformed", "unknown", "crossed", "unrepresentable"):
            assert b[k] == 0, (key, k, b["problems"])
        if synced:
            assert b["applied"] + b["snapshots"] >= 1


@pytest.mark.parametrize(
    "pair",
    [
        ("usdm/btcusdt_20240718.gz", "usdm/btcusdt_20240719.gz"),
        ("spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"),
        ("cm/ethusd_perp_20240808.gz", "cm/ethusd_perp_20240809.gz"),
    ],
)
def test_continuation_stays_synced(hft: Path, pair):
    r = replay_files([hft / p for p in pair])
    (key, b), = r.report()["books"].items()
    assert b["synced"] and b["gaps"] == 0 and b["resyncs"] == 0
    assert b["crosscheck_ok"] > 100 and b["crosscheck_mismatch"] == 0


def test_okx_checksums_all_match(cf: Path):
    books = replay_files([cf / "OKX.ws.1.0"]).report()["books"]
    assert sum(b["checksum_ok"] for b in books.values()) == 290
    assert sum(b["checksum_mismatch"] for b in books.values()) == 0


def test_reference_grid_reports_off_grid_levels_and_keeps_them(cf: Path):
    b = replay_files([cf / "BINANCE.ws.1.0"]).report()["books"]["binance-spot:NKNUSDT"]
    assert b["off_grid"] == 68 and b["synced"]
    assert "BINANCE.http.0.0:1: off_grid" in b["problems"][0]


def test_cli_json_single_book_prints_keys_at_top_level(hft: Path):
    res = CliRunner().invoke(app, ["feeds", "replay", "--json", str(hft / "usdm/btcusdt_20240718.gz"), str(hft / "usdm/btcusdt_20240719.gz")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for k in REPORT_KEYS:
        assert k in out
    assert out["synced"] is True and len(out["top10_sha256"]) == 64


def test_cli_text_and_multi_book(cf: Path):
    res = CliRunner().invoke(app, ["feeds", "replay", "--json", str(cf / "OKX.ws.1.0")])
    assert res.exit_code == 0
    assert set(json.loads(res.output)["books"]) == {"okx:BTC-USD-220527", "okx:UNI-USD-SWAP", "okx:BTC-USDT"}
    res = CliRunner().invoke(app, ["feeds", "replay", str(cf / "DERIBIT.ws.1.0")])
    assert res.exit_code == 0 and "deribit:BTC-24SEP21-8000-P" in res.output


def test_cli_missing_file_is_an_error(tmp_path: Path):
    res = CliRunner().invoke(app, ["feeds", "replay", str(tmp_path / "nope.gz")])
    assert res.exit_code == 2
