"""``shardex bench options --json`` reports the keys the issue names (tiny n: no timing asserted)."""

import json

from typer.testing import CliRunner

from shardex.cli import app


def test_bench_options_json_keys():
    res = CliRunner().invoke(app, ["bench", "options", "--n", "2000", "--repeats", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("greeks_options_per_second", "numpy_options_per_second", "iv_options_per_second",
                "quantlib_options_per_second", "vollib_options_per_second", "max_rel_error_vs_quantlib"):
        assert key in out
    assert out["greeks_options_per_second"] > 0 and out["iv_max_abs_error"] < 1e-10
