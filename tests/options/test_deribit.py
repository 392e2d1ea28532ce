"""Against the exchange: Deribit's chain CSV and its live ticker capture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shardex.errors import MalformedInputError
from shardex.options import implied_vol
from shardex.options.cli import app
from shardex.options.deribit import check_deribit, load_deribit, load_deribit_csv, load_deribit_tickers

CSV = "deribit_data_collector/sample_data/btc_options_data.csv"
WS = "cryptofeed/sample_data/DERIBIT.ws.1.0"


@pytest.fixture(scope="module")
def chain(shared_data):
    return load_deribit_csv(shared_data / CSV)


def test_csv_loads_every_row(chain):
    assert len(chain) == 310
    assert set(chain["underlying"]) == {"BTC"}
    assert chain["t"].min() > 0 and chain["mark_iv"].between(0.3, 4.0).all()


def test_every_csv_row_agrees_within_rounding_and_asynchrony(chain):
    report = check_deribit(chain)
    assert report.ok, {f.name: f.failures[:5] for f in report.fields}
    by = {f.name: f for f in report.fields}
    # the near-expiry theta convention is named, not hidden
    assert by["theta"].convention_rows and all("14MAY20" in r or "15MAY20" in r for r in by["theta"].convention_rows)
    # gamma is published to 5 decimals: deviations stay under 5e-6 + propagation
    assert by["gamma"].worst_abs < 6e-6


def test_without_asynchrony_allowance_the_csv_does_not_pass(chain):
    """Documents why the 5 bp allowance exists: rounding alone cannot explain the snapshot."""
    assert not check_deribit(chain, async_bp=0.0).ok


def test_ticker_capture_agrees(shared_data):
    frame = load_deribit_tickers(shared_data / WS)
    assert len(frame) == 89 and {"BTC", "ETH"} <= set(frame["underlying"])
    assert check_deribit(frame).ok


def test_iv_from_mark_price_gives_back_mark_iv(chain):
    f = chain["forward"].to_numpy()
    vol, codes = implied_vol(chain["mark_price"].to_numpy() * f, f, chain["strike"].to_numpy(), chain["t"].to_numpy(),
                             chain["is_call"].to_numpy(), return_codes=True)
    ok = codes == 0
    assert ok.sum() >= 290
    # most rows within 0.05 vol points; the rest are explained by check_deribit's tolerance
    assert np.median(np.abs(vol[ok] - chain["mark_iv"].to_numpy()[ok])) < 5e-4


def test_cli_check_deribit_runs_on_both_sources(shared_data):
    runner = CliRunner()
    for rel in (CSV, WS):
        res = runner.invoke(app, ["check-deribit", str(shared_data / rel), "--json"])
        assert res.exit_code == 0, res.output
        report = json.loads(res.output)
        assert report["ok"] and set(report["fields"]) >= {"mark_price", "delta", "implied_vol"}
    res = runner.invoke(app, ["check-deribit", str(shared_data / CSV), "--async-bp", "0"])
    assert res.exit_code == 1 and "FAILS" in res.output


def test_cli_greeks_table_json_and_parquet(shared_data, tmp_path):
    import pandas as pd

    runner = CliRunner()
    out = tmp_path / "g.parquet"
    res = runner.invoke(app, ["greeks", str(shared_data / CSV), "--parquet", str(out), "--json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.output)
    assert len(records) == 310 and {"price", "delta", "gamma", "vega", "theta", "rho", "price_coin"} <= set(records[0])
    assert len(pd.read_parquet(out)) == 310
    res = runner.invoke(app, ["greeks", str(shared_data / CSV), "--limit", "3"])
    assert res.exit_code == 0 and "more rows" in res.output


def test_cli_greeks_plain_csv(tmp_path):
    path = tmp_path / "chain.csv"
    path.write_text("name,forward,strike,t,vol,type\na,100,100,1,0.2,call\nb,100,90,0.5,0.3,put\n")
    res = CliRunner().invoke(app, ["greeks", str(path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows[0]["price"] == pytest.approx(7.965567455405804, rel=1e-12)
    bad = tmp_path / "bad.csv"
    bad.write_text("forward,strike\n1,2\n")
    res = CliRunner().invoke(app, ["greeks", str(bad)])
    assert res.exit_code != 0 and isinstance(res.exception, MalformedInputError)


def test_load_deribit_rejects_other_files(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    with pytest.raises(MalformedInputError):
        load_deribit(p)
