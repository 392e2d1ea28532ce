"""Engine commands of the ``shardex`` CLI: ``demo`` and ``bench matching``."""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shardex.schema import EventKind

_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                    TimeElapsedColumn(), console=console, transient=True)


def run_batches(ex, cmds: np.ndarray, batch: int, progress: Progress | None = None, label: str = "") -> dict:
    """Feed ``cmds`` to ``ex.process`` in batches; count trades and traded lots. Returns timing and counts."""
    trades = 0
    traded = 0
    task = progress.add_task(label, total=len(cmds)) if progress else None
    t0 = time.perf_counter()
    for start in range(0, len(cmds), batch):
        ev = ex.process(cmds[start:start + batch])
        is_trade = ev["kind"] == EventKind.TRADE
        trades += int(is_trade.sum())
        traded += int(ev["qty"][is_trade].sum())
        if progress:
            progress.update(task, advance=min(batch, len(cmds) - start))
    seconds = time.perf_counter() - t0
    return {"commands": len(cmds), "seconds": seconds, "commands_per_second": len(cmds) / seconds if seconds else 0.0,
            "trades": trades, "traded_qty": traded}


def demo(
    commands: int = typer.Option(1_000_000, help="Commands in the generated multi-instrument flow."),
    instruments: int = typer.Option(8, help="Instruments in the generated flow."),
    shards: int = typer.Option(2, help="Matching shards (threads)."),
    path: Path = typer.Option(None, help="Engine directory (journal, snapshots); default: a temporary one."),
    lobster: bool = typer.Option(True, help="Also replay a real LOBSTER day from ../shared/data (or a built-in sample)."),
    marks: bool = typer.Option(True, help="Also drive the risk engine with Binance's real BTCUSDT mark prices."),
) -> None:
    """Replay a real LOBSTER day and real Binance marks, then run a generated flow through the durable engine.

    The flow goes through ``Exchange.open``: every batch is journaled (one
    fsync per batch) before it is matched.  At the end the engine is closed,
    reopened from its journal and snapshots, and the recovered state hash is
    compared with the live one.
    """
    import tempfile

    from shardex import Exchange
    from shardex.engine.loadgen import instruments as make_instruments
    from shardex.engine.loadgen import order_flow

    console = Console()
    if lobster:
        _demo_lobster(console)
    if marks:
        _demo_marks(console)
    cmds = order_flow(commands, n_instruments=instruments)
    listed = make_instruments(instruments)
    with tempfile.TemporaryDirectory(prefix="shardex-demo-") as tmp:
        where = Path(path) if path is not None else Path(tmp)
        ex = Exchange.open(where, listed, shards=shards)
        with _progress(console) as progress:
            res = run_batches(ex, cmds, 65536, progress, "journal + match")
        table = Table(title=f"Generated flow: {commands:,} commands over {instruments} instruments, "
                            f"{shards} shard(s), journaled in {where}")
        for col in ("instrument", "trades", "volume (lots)", "resting orders", "best bid", "best ask"):
            table.add_column(col, justify="right")
        for ins in ex.instruments:
            st = ex.stats(ins.id)
            bid, ask = ex.top(ins.id)
            table.add_row(ins.symbol, f"{st['trades']:,}", f"{st['volume']:,}", f"{st['orders']:,}",
                          f"{bid[0]} x {bid[1]}" if bid else "-", f"{ask[0]} x {ask[1]}" if ask else "-")
        live_hash = ex.state_hash()
        ex.close()
        t0 = time.perf_counter()
        with console.status("recovering from the journal and snapshots ..."):
            again = Exchange.open(where, shards=1)
            recovered_hash = again.state_hash()
            again.close()
        recovery_s = time.perf_counter() - t0
    console.print(table)
    console.print(f"[bold]{res['commands_per_second'] / 1e6:.2f} M commands/s[/bold] journaled and matched "
                  f"({res['commands']:,} commands in {res['seconds']:.2f} s, fsync per batch of 65,536), "
                  f"{res['trades']:,} trades")
    verdict = "[green]equal[/green]" if recovered_hash == live_hash else "[red]DIFFERENT[/red]"
    console.print(f"state hash {live_hash[:16]}...; recovered with 1 shard in {recovery_s:.2f} s: {verdict}")
    if recovered_hash != live_hash:
        raise typer.Exit(1)


def _demo_lobster(console: Console) -> None:
    from shardex.feeds.lobster import replay_lobster, sample_pair

    folder = Path(os.environ.get("SHARDEX_DATA", _DATA)) / "lobster"
    msg = folder / "AMZN_2012-06-21_34200000_57600000_message_5.csv"
    book = folder / "AMZN_2012-06-21_34200000_57600000_orderbook_5.csv"
    if msg.is_file() and book.is_file():
        label = f"LOBSTER {msg.name} (NASDAQ AMZN, 2012-06-21, 5 levels)"
    else:
        console.print(f"[yellow]{folder} not found: replaying a built-in synthetic LOBSTER sample instead[/yellow]")
        msg, book = sample_pair()
        label = "built-in LOBSTER-format sample"
    with console.status(f"replaying {label} ..."):
        res = replay_lobster(msg, book)
    table = Table(title=f"Replay of {label}: top of book checked after every message")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("messages", f"{res.messages:,}")
    for name, count in res.by_type.items():
        table.add_row(f"  {name}", f"{count:,}")
    table.add_row("visible executions matched", f"{res.executions_matched:,} / {res.executions:,}")
    table.add_row("placeholder hits", f"{res.placeholder_hits:,}")
    table.add_row("top-of-book mismatches", f"{res.mismatches:,}")
    table.add_row("messages/s (replay)", f"{res.messages_per_second:,.0f}")
    table.add_row("state hash", res.state_hash[:16] + "...")
    console.print(table)


def _demo_marks(console: Console) -> None:
    """Binance's real markPrice@1s stream through ``RiskExchange``: margins and liquidations at every update."""
    from datetime import datetime, timezone
    from decimal import ROUND_HALF_EVEN, Decimal

    from shardex.risk.mark_replay import BTCUSDT_PERP, replay_marks
    from shardex.risk.marks import read_binance_marks, sample_path

    capture = Path(os.environ.get("SHARDEX_DATA", _DATA)) / "hftbacktest/examples/usdm/btcusdt_20230404.dat.gz"
    if capture.is_file():
        source, label = capture, f"{capture.name} (Binance USDⓈ-M, 2023-04-04)"
    else:
        console.print(f"[yellow]{capture} not found: using the built-in copy of its 99 mark updates[/yellow]")
        source, label = sample_path(), "built-in copy of btcusdt_20230404.dat.gz's marks"
    stream = read_binance_marks(source, BTCUSDT_PERP, rounding=ROUND_HALF_EVEN)
    with _progress(console) as progress:
        task = progress.add_task("real marks -> risk engine", total=len(stream))
        res = replay_marks(stream, on_update=lambda k: progress.update(task, completed=k + 1))

    px = BTCUSDT_PERP.ticks_to_price
    btc = BTCUSDT_PERP.lots_to_qty
    usdt = lambda v: f"{Decimal(v).scaleb(-6):,.2f}"  # noqa: E731 -- minor units to USDT
    utc = lambda ns: datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%H:%M:%S")  # noqa: E731
    rounded = int((stream["mark"] * 10**7 != stream["mark_e8"]).sum())
    table = Table(title=f"Real marks: Binance BTCUSDT markPrice@1s from {label}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("updates applied, one batch each", f"{res.updates:,} ({utc(int(stream['event_ns'][0]))} - "
                                                     f"{utc(int(stream['event_ns'][-1]))} UTC)")
    table.add_row("mark range (USDT)", f"{px(res.low)} - {px(res.high)}")
    table.add_row("marks off the 0.1 tick, rounded half-even", f"{rounded}")
    table.add_row("funding rate in the stream (per 8 h)", f"{Decimal(int(stream['funding_e8'][-1])).scaleb(-8)}")
    table.add_row("liquidations", f"{len(res.liquidations)}")
    table.add_row("insurance fund / fee pool (USDT)", f"{usdt(res.insurance_fund)} / {usdt(res.fee_pool)}")
    table.add_row("updates/s", f"{res.updates / res.seconds:,.0f}")
    console.print(table)
    acc = Table(title=f"Accounts at the last mark, {px(res.last_mark)}: USDT, Binance brackets, IM/MM initial/"
                      f"maintenance margin; carried: opened 200 USDT below the window")
    for col in ("account", "BTC", "entry", "equity", "IM", "MM"):
        acc.add_column(col, justify="left" if col == "account" else "right")
    for a in res.accounts:
        entry = f"{Decimal(a.cost) / a.qty / 10:.1f}" if a.qty else "-"
        acc.add_row(a.role, f"{btc(a.qty)}", entry, usdt(a.equity), usdt(a.initial), usdt(a.maintenance))
    console.print(acc)
    for x in res.liquidations:
        console.print(f"[bold red]liquidation[/bold red] at {utc(x.event_ns)} UTC (update {x.update}, mark "
                      f"{px(x.mark)}): {res.accounts[x.account - 1].role}, equity {usdt(x.equity)} < maintenance "
                      f"{usdt(x.maintenance)} USDT; {btc(x.book_lots)} BTC closed in the book, "
                      f"{btc(x.adl_lots)} BTC auto-deleveraged, insurance fund {x.insurance / 1e6:+,.6f} USDT")


def bench_matching(
    workload: Path = typer.Option(..., exists=False, help="CSV with columns op,order_id,account,side,type,tif,price,qty."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    per_command: bool = typer.Option(False, "--per-command", help="One engine call per command, as a client would."),
    batch: int = typer.Option(65536, help="Commands per engine call in batch mode."),
    repeat: int = typer.Option(3, help="Runs on a fresh book; the median is reported."),
    warmup: int = typer.Option(
        0, min=0, help="Untimed runs on a fresh book first (steady state: memory faulted in, allocator warm)."
    ),
    prefault_mb: int = typer.Option(
        0, "--prefault-mb", min=0,
        help="Before each run, untimed: touch and free this many MB, so the run's memory is resident in the VM's host "
             "(see docs/bench-matching.md, 'Memory the host took back').",
    ),
) -> None:
    """Commands/s, latency percentiles, trades, traded quantity and the state hash on a workload file."""
    from shardex import Exchange, Instrument
    from shardex.engine.workload import read_workload_csv
    from shardex.errors import MalformedInputError
    from shardex.lowlevel import prefault

    console = Console(stderr=True)
    try:
        wl = read_workload_csv(workload)
    except MalformedInputError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for err in wl.errors[:20]:
        console.print(f"[yellow]skipped {err}[/yellow]")
    cmds = wl.commands
    warm = Exchange([Instrument(0, "BENCH")])
    warm.process(cmds[:64].copy())  # compile (or load) the kernels outside the timings
    del warm
    runs = []
    for k in range(warmup + max(1, repeat)):
        prefault(prefault_mb)
        ex = Exchange([Instrument(0, "BENCH")])
        run = _per_command(ex, cmds) if per_command else _batched(ex, cmds, batch)
        if k >= warmup:  # a warm-up run is neither hashed nor kept
            run["state_hash"] = ex.state_hash()
            runs.append(run)
        # Free this run's books before the next run allocates its own, so that
        # every run starts from the same memory state.
        del ex
        gc.collect()
    runs.sort(key=lambda r: r["seconds"])
    best = runs[len(runs) // 2]
    out = {
        "commands": len(cmds), "seconds": best["seconds"], "commands_per_second": len(cmds) / best["seconds"],
        "trades": best["trades"], "traded_qty": best["traded_qty"], "state_hash": best["state_hash"],
        "mode": "per-command" if per_command else f"batch of {batch}",
        "latency_ns": best["latency_ns"], "runs_seconds": [r["seconds"] for r in runs], "warmup": warmup,
        "prefault_mb": prefault_mb,
        "skipped_rows": len(wl.errors),
    }
    if as_json:
        print(json.dumps(out))
        return
    table = Table(title=f"shardex matching on {workload.name} ({out['mode']}, median of {len(runs)})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("commands", f"{out['commands']:,}")
    table.add_row("commands/s", f"{out['commands_per_second']:,.0f}")
    for k, v in out["latency_ns"].items():
        table.add_row(f"latency {k} (ns/command)", f"{v:,.0f}")
    table.add_row("trades", f"{out['trades']:,}")
    table.add_row("traded qty (lots)", f"{out['traded_qty']:,}")
    table.add_row("state hash", out["state_hash"][:32] + "...")
    Console().print(table)


def _batched(ex, cmds: np.ndarray, batch: int) -> dict:
    """Time the engine calls only, as the peers' runners time only their processing loop.

    The commands are sequenced before the clock starts (the sequencer is
    timed by ``shardex bench pipeline``); trades are counted from each
    batch's events between engine calls, off the clock.
    """
    shard = ex.shards[0]
    stamped = ex.sequencer.stamp(cmds.copy())
    trades = traded = 0
    per_batch = []
    clock = time.perf_counter_ns
    for start in range(0, len(stamped), batch):
        part = stamped[start:start + batch]
        t = clock()
        n = shard.process_into(part)
        per_batch.append((clock() - t, len(part)))
        ev = shard.events_buffer[:n]
        is_trade = ev["kind"] == EventKind.TRADE
        trades += int(is_trade.sum())
        traded += int(ev["qty"][is_trade].sum())
    seconds = sum(ns for ns, _ in per_batch) / 1e9
    pct = np.percentile([ns / k for ns, k in per_batch], [50, 99, 100])
    return {"seconds": seconds, "trades": trades, "traded_qty": traded,
            "latency_ns": {"p50 per batch": float(pct[0]), "p99 per batch": float(pct[1]), "max per batch": float(pct[2])}}


def _per_command(ex, cmds: np.ndarray) -> dict:
    shard = ex.shards[0]
    trades = traded = 0
    lat = np.empty(len(cmds), dtype=np.int64)
    stamped = ex.sequencer.stamp(cmds.copy())
    t0 = time.perf_counter()
    clock = time.perf_counter_ns
    for i in range(len(stamped)):
        t = clock()
        n = shard.process_into(stamped[i:i + 1])
        lat[i] = clock() - t
        if n > 1:
            ev = shard.events_buffer[:n]
            is_trade = ev["kind"] == EventKind.TRADE
            trades += int(is_trade.sum())
            traded += int(ev["qty"][is_trade].sum())
    seconds = time.perf_counter() - t0
    pct = np.percentile(lat, [50, 99, 99.9])
    return {"seconds": seconds, "trades": trades, "traded_qty": traded,
            "latency_ns": {"p50": float(pct[0]), "p99": float(pct[1]), "p99.9": float(pct[2])}}


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the engine's commands to the root app and to ``shardex bench``."""
    app.command("demo")(demo)
    bench_app.command("matching")(bench_matching)
