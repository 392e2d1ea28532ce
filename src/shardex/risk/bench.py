"""``shardex bench risk``: the full pipeline with risk on, against matching alone, same workload, same run.

The workload is the matching benchmark's (``bench/out/order_flow_seed42_1000000.csv``
when present, else ``shardex.engine.flowgen.generate_flow`` or ``loadgen.order_flow``), on linear
perpetuals with every account funded at start.  Each batch goes through the
sequencer, pre-trade risk, matching and parallel settlement
(``RiskExchange.process``); the peer is ``Exchange.process`` on the same
batches (sequencer and matching only).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import typer

from shardex.engine.exchange import Exchange
from shardex.instruments import Instrument, InstrumentKind
from shardex.schema import EventKind

__all__ = ["DEFAULT_WORKLOAD", "bench_risk", "risk"]

DEFAULT_WORKLOAD = Path(__file__).resolve().parents[3] / "bench" / "out" / "order_flow_seed42_1000000.csv"
#: Each account's deposit: 10 M USDT, so that margin rejects stay rare and the
#: benchmark measures the checks, not a reject storm.
FUNDING_USDT = 10_000_000


def _perps(n: int) -> list[Instrument]:
    # tick 0.01, lot 0.001: 10 minor units of USDT (1e-6) per tick per lot; mid 100,000 ticks = 1,000 USDT
    return [Instrument(i, f"P{i:03d}", tick_size="0.01", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
            for i in range(n)]


def bench_venue(n_instruments: int, n_accounts: int) -> tuple[list[Instrument], dict, np.ndarray]:
    """The benchmarks' risk venue: its perpetuals, ``RiskExchange`` options, and the batch that funds every account.

    Marks at 1,000 USDT plus 10 USDT per instrument id, taker fee 5 bp,
    maker rebate 1 bp, order pools of 65,536 rows, ``FUNDING_USDT`` per
    account: shared by ``bench_risk`` and ``bench/durable_process.py``.
    """
    from shardex.engine.commands import batch
    from shardex.risk import deposit

    options = dict(marks=[100_000 + 1_000 * i for i in range(n_instruments)], taker_fee_bps=5, maker_fee_bps=-1,
                   order_capacity=1 << 16)
    funding = batch([deposit(a, 0, FUNDING_USDT * 10**6) for a in range(n_accounts)])
    return _perps(n_instruments), options, funding


def load_workload(path: Path | None, commands: int, instruments: int) -> tuple[np.ndarray, str]:
    """The benchmark commands and a description of where they came from."""
    path = DEFAULT_WORKLOAD if path is None else Path(path)
    if path.is_file():
        from shardex.engine.workload import read_workload_csv

        cmds = read_workload_csv(path).commands[:commands]
        return cmds, f"{path.name} (1 instrument)"
    try:
        from shardex.engine.flowgen import generate_flow
    except ImportError:  # flowgen is newer than some checkouts; loadgen makes the same kind of flow
        from shardex.engine.loadgen import order_flow

        return order_flow(commands, n_instruments=instruments, seed=42), f"loadgen.order_flow({commands}, {instruments})"
    return generate_flow(commands, instruments), f"generate_flow({commands}, {instruments}, seed=42)"


def bench_risk(commands: int = 1_000_000, batch: int = 4096, repeat: int = 3, threads: int | None = None,
               workload: Path | None = None, instruments: int = 8) -> dict:
    """Commands/s with risk on (``RiskExchange``) and off (``Exchange``), medians of ``repeat`` runs."""
    from shardex.risk import RiskExchange

    cmds, source = load_workload(workload, commands, instruments)
    n_inst = int(cmds["instrument"].max()) + 1
    n_acc = int(cmds["account"].max()) + 1
    perps, options, funding = bench_venue(n_inst, n_acc)
    parts = [cmds[k : k + batch] for k in range(0, len(cmds), batch)]

    def fresh_risk() -> RiskExchange:
        rx = RiskExchange(perps, n_acc, threads=threads, clock=lambda: 1, **options)
        rx.process(funding.copy())
        return rx

    # compile every kernel on a small slice first (numba compiles cold in a fresh process)
    t0 = time.perf_counter()
    warm = fresh_risk()
    warm.process(cmds[:2000].copy())
    Exchange(perps, clock=lambda: 1).process(cmds[:2000].copy())
    warm_s = time.perf_counter() - t0
    risk_s, plain_s, stats = [], [], {}
    for _ in range(repeat):
        rx = fresh_risk()
        t0 = time.perf_counter()
        rejects = trades = 0
        for b in parts:
            ev = rx.process(b.copy())
            rejects += int(np.count_nonzero(ev["kind"] == EventKind.REJECTED))
            trades += int(np.count_nonzero(ev["kind"] == EventKind.TRADE))
        risk_s.append(time.perf_counter() - t0)
        rx.ledger.check()
        stats = {"rejects": rejects, "trades": trades, "settle_modes": dict(rx.settle_modes)}
        ex = Exchange(perps, clock=lambda: 1, order_capacity=1 << 16)
        t0 = time.perf_counter()
        for b in parts:
            ex.process(b.copy())
        plain_s.append(time.perf_counter() - t0)
    n = len(cmds)
    med_r, med_p = statistics.median(risk_s), statistics.median(plain_s)
    return {
        "benchmark": "risk",
        "peer": "Exchange.process (sequencer + matching, no risk, no settlement), same batches, same run",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "loadavg_at_end": os.getloadavg()},
        "workload": source, "commands": n, "batch": batch, "accounts": n_acc, "instruments": n_inst,
        "commands_per_second": round(n / med_r), "seconds": [round(x, 3) for x in risk_s],
        "matching_only_commands_per_second": round(n / med_p), "matching_only_seconds": [round(x, 3) for x in plain_s],
        "risk_overhead": round(med_r / med_p, 3), "warmup_seconds": round(warm_s, 2), **stats,
    }


def risk(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    commands: int = typer.Option(1_000_000, help="Commands from the workload."),
    batch: int = typer.Option(4096, help="Commands per batch."),
    repeat: int = typer.Option(3, help="Runs; medians are reported."),
    threads: int = typer.Option(0, help="Settlement threads (0: the cores this process may use)."),
    workload: Path = typer.Option(None, help="Workload CSV (default: the matching benchmark's, else generated)."),
) -> None:
    """Full pipeline with risk on (pre-trade, matching, settlement) vs matching alone, commands/s."""
    r = bench_risk(commands, batch, repeat, threads or None, workload)
    if json_out:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo(f"risk on: {r['commands_per_second']:,} commands/s; matching only: "
               f"{r['matching_only_commands_per_second']:,} commands/s (x{r['risk_overhead']} time); "
               f"{r['trades']:,} trades, {r['rejects']:,} rejects; {r['workload']}")
