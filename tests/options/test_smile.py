"""SVI smiles: fit, butterfly check, marks, PNG plots."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from shardex.options.cli import app
from shardex.options.deribit import load_deribit_csv
from shardex.options.smile import SviFit, butterfly_violations, fit_chain, fit_svi, mark_from_fits

CSV = "deribit_data_collector/sample_data/btc_options_data.csv"


def test_fit_recovers_known_parameters():
    true = SviFit(a=0.02, b=0.1, rho=-0.4, m=0.05, sigma=0.2, t=0.5)
    k = np.linspace(-0.8, 0.6, 25)
    fit = fit_svi(k, true.implied_vol(k), 0.5)
    assert fit.rmse_vol < 1e-3
    np.testing.assert_allclose(fit.implied_vol(k), true.implied_vol(k), rtol=1e-4)


def test_butterfly_check_flags_an_arbitrageable_smile():
    good = SviFit(a=0.02, b=0.1, rho=-0.4, m=0.05, sigma=0.2, t=0.5)
    assert butterfly_violations(good).size == 0
    bad = SviFit(a=0.0, b=2.5, rho=0.9, m=0.0, sigma=0.05, t=0.5)  # far too steep a wing
    assert butterfly_violations(bad).size > 0


def test_real_chain_fits_and_marks(shared_data):
    frame = load_deribit_csv(shared_data / CSV)
    fits = fit_chain(frame)
    assert len(fits) == 7
    long_dated = [f for f in fits.values() if f.t > 0.05]
    assert all(f.rmse_vol < 2.0 for f in long_dated)  # vol points
    marks = mark_from_fits(frame, fits)
    assert (marks["code"] == 0).all() and len(marks) == 310
    # our marks sit near the exchange's on the longer expiries
    sel = frame["t"].to_numpy() > 0.05
    assert np.median(np.abs(marks["mark_iv"].to_numpy()[sel] - frame["mark_iv"].to_numpy()[sel])) < 0.02


def test_cli_smile_writes_pngs(shared_data, tmp_path):
    res = CliRunner().invoke(app, ["smile", str(shared_data / CSV), "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 7
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 7 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
