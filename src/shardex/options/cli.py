"""``shardex options ...``: chain Greeks, smiles and checks against the exchange."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from shardex.errors import MalformedInputError

app = typer.Typer(help="Option pricing, Greeks, implied volatility and smiles.", no_args_is_help=True)

_GREEK_COLS = ("price", "delta", "gamma", "vega", "theta", "rho")


def read_chain(path: Path) -> pd.DataFrame:
    """A chain file as a frame with ``name, forward, strike, t, vol, is_call`` (+ Deribit columns).

    Accepts a Deribit ``get_order_book`` CSV, a Deribit ticker capture, or a plain
    CSV with columns ``forward, strike, t, vol`` and ``is_call`` or ``type``.
    """
    from shardex.options.api import as_is_call
    from shardex.options.deribit import load_deribit

    with path.open() as fh:
        header = fh.readline()
    if "mark_iv" in header or not header.count(","):
        frame = load_deribit(path)
        return frame.assign(name=frame["instrument_name"], vol=frame["mark_iv"])
    raw = pd.read_csv(path)
    missing = {"forward", "strike", "t", "vol"} - set(raw.columns)
    if missing or not ({"is_call", "type"} & set(raw.columns)):
        raise MalformedInputError(f"{path}: need columns forward, strike, t, vol and is_call or type; missing {sorted(missing)}")
    kind = raw["is_call"] if "is_call" in raw else raw["type"]
    raw["is_call"] = as_is_call(kind.to_numpy())
    raw["name"] = raw["name"] if "name" in raw else [f"row{i}" for i in range(len(raw))]
    return raw


@app.command("greeks")
def greeks_cmd(
    chain: Path = typer.Argument(..., exists=True, dir_okay=False, help="Deribit chain CSV / ticker capture, or a plain CSV"),
    parquet: Path | None = typer.Option(None, "--parquet", help="also write the table to this Parquet file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON records instead of a table"),
    limit: int = typer.Option(40, help="rows shown in the table (all are written)"),
) -> None:
    """Black-76 price and Greeks of every option of CHAIN (USD; vega per vol point, theta per day)."""
    from shardex.options.api import greeks

    frame = read_chain(chain)
    g = greeks(frame["forward"].to_numpy(float), frame["strike"].to_numpy(float), frame["t"].to_numpy(float),
               frame["vol"].to_numpy(float), frame["is_call"].to_numpy(bool))
    out = pd.DataFrame({"name": frame["name"], "forward": frame["forward"], "strike": frame["strike"], "t": frame["t"],
                        "vol": frame["vol"], "is_call": frame["is_call"], **{k: g[k] for k in _GREEK_COLS},
                        "code": g.codes})
    if "mark_price" in frame:  # inverse chain: the coin price too
        out["price_coin"] = out["price"] / out["forward"]
    if parquet is not None:
        out.to_parquet(parquet, index=False)
    if as_json:
        sys.stdout.write(out.to_json(orient="records") + "\n")
        return
    table = Table(title=f"{chain.name}: {len(out)} options (price USD, vega /vol pt, theta /day)")
    cols = ["name", "forward", "strike", "t", "vol", *_GREEK_COLS]
    for c in cols:
        table.add_column(c, justify="left" if c == "name" else "right")
    for row in out.head(limit).itertuples(index=False):
        d = row._asdict()
        table.add_row(str(d["name"]), *(f"{d[c]:.6g}" for c in cols[1:]))
    Console().print(table)
    if len(out) > limit:
        Console().print(f"... {len(out) - limit} more rows (use --json or --parquet for all)")


@app.command("check-deribit")
def check_deribit_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Deribit chain CSV or ticker capture (DERIBIT.ws.*)"),
    async_bp: float = typer.Option(5.0, help="forward asynchrony allowed, basis points"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Recompute Deribit's mark price and Greeks from its mark IV and forward; print the worst deviations.

    Exits 1 when any row is outside the tolerance (rounding + asynchrony).
    """
    from shardex.options.deribit import check_deribit, load_deribit

    report = check_deribit(load_deribit(file), async_bp=async_bp)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        con = Console()
        table = Table(title=f"{file.name}: {report.rows} rows vs shardex Black-76")
        for c in ("field", "worst |dev|", "row", "dev/tol", "fails", "convention rows"):
            table.add_column(c)
        for f in report.fields:
            table.add_row(f.name, f"{f.worst_abs:.3g}", f.worst_row, f"{f.worst_ratio:.3f}", str(len(f.failures)),
                          str(len(f.convention_rows)))
        con.print(table)
        for note in report.notes:
            con.print(f"- {note}")
        for f in report.fields:
            if f.convention_rows:
                con.print(f"- {f.name} convention rows: {', '.join(sorted(set(f.convention_rows)))}")
            if f.failures:
                con.print(f"[red]- {f.name} FAILS on: {', '.join(sorted(set(f.failures)))}[/red]")
        con.print("[green]OK: every row within tolerance[/green]" if report.ok else "[red]FAILED[/red]")
    raise typer.Exit(0 if report.ok else 1)


def register_bench(bench_app: typer.Typer) -> None:
    """Add ``shardex bench options`` to the root ``bench`` app."""

    @bench_app.command("options")
    def bench_options(
        n: int = typer.Option(1_000_000, help="options per timed batch"),
        repeats: int = typer.Option(5, help="timed runs; the median is reported"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Greeks and implied vol of N options vs numpy/scipy, QuantLib and vollib (if installed)."""
        from shardex.options._bench import run_bench

        result = run_bench(n=n, repeats=repeats)
        if as_json:
            sys.stdout.write(json.dumps(result) + "\n")
            return
        table = Table(title=f"shardex bench options (n={n:,}, median of {repeats})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result.items():
            table.add_row(k, "n/a" if v is None else (f"{v:,.0f}" if isinstance(v, float) and v > 100 else f"{v:.3g}" if isinstance(v, float) else str(v)))
        Console().print(table)


@app.command("smile")
def smile_cmd(
    chain: Path = typer.Argument(..., exists=True, dir_okay=False, help="Deribit chain CSV or ticker capture"),
    out: Path = typer.Option(Path("smiles"), "--out", help="folder for one PNG per expiry"),
    as_json: bool = typer.Option(False, "--json", help="print the fits as JSON"),
) -> None:
    """Fit an SVI smile per expiry from bid/ask quotes, check butterfly arbitrage, plot each to PNG."""
    from datetime import UTC, datetime

    from shardex.options.deribit import load_deribit
    from shardex.options.smile import butterfly_violations, fit_chain, plot_smile, smile_quotes

    frame = load_deribit(chain)
    fits = fit_chain(frame)
    quotes = smile_quotes(frame)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for expiry, fit in sorted(fits.items()):
        day = datetime.fromtimestamp(expiry / 1000, tz=UTC).strftime("%Y-%m-%d")
        png = plot_smile(fit, quotes[quotes["expiry_ms"] == expiry], out / f"smile_{day}.png",
                         title=f"{chain.name} {day}: SVI, rmse {fit.rmse_vol:.2f} vol pts")
        bad = butterfly_violations(fit)
        rows.append({"expiry": day, **fit.to_dict(), "butterfly_violations": int(bad.size),
                     "violation_k": [float(bad.min()), float(bad.max())] if bad.size else None, "png": str(png)})
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title=f"SVI smiles of {chain.name}")
    for c in ("expiry", "a", "b", "rho", "m", "sigma", "rmse (vol pts)", "quotes", "butterfly"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["expiry"], *(f"{r[x]:.4g}" for x in ("a", "b", "rho", "m", "sigma", "rmse_vol")), str(r["n_quotes"]),
                      "ok" if not r["butterfly_violations"] else f"{r['butterfly_violations']} pts in {r['violation_k']}")
    Console().print(table)
    Console().print(f"plots in {out}/")
