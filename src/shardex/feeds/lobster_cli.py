"""``shardex replay lobster``: replay a LOBSTER day through the engine and check every book row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from shardex.errors import MalformedInputError

replay_app = typer.Typer(help="Replay real market data through the matching engine and check the book.",
                         no_args_is_help=True)


@replay_app.command("lobster")
def lobster_cmd(
    message: Path = typer.Argument(..., help="LOBSTER message file (TICKER_date_start_end_message_N.csv)."),
    orderbook: Path = typer.Option(..., "--orderbook", help="The paired orderbook file (.csv or .csv.gz)."),
    levels: Optional[int] = typer.Option(None, "--levels", help="Levels per side; default: the orderbook file's."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Replay MESSAGE through an Exchange; compare the top N levels with ORDERBOOK after every message.

    Exits 1 on any mismatch or execution that did not consume the named order, 2 on a bad file.
    """
    from shardex.feeds.lobster import replay_lobster

    try:
        r = replay_lobster(message, orderbook, levels)
    except (MalformedInputError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(r.to_dict(), indent=2))
    else:
        _print_tables(r)
    if not r.ok:
        raise typer.Exit(1)


def _print_tables(r) -> None:
    """The rich summary: messages by type, execution checks, placeholders, speed, verdict."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"LOBSTER replay: {r.symbol} {r.date or ''}, {r.levels} level(s), tick ${r.tick_size}")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("messages", f"{r.messages:,}")
    for name, count in r.by_type.items():
        t.add_row(f"  {name.replace('_', ' ')}", f"{count:,}")
    t.add_section()
    t.add_row("visible executions", f"{r.executions:,}")
    t.add_row("  matched (named order or placeholder consumed)", f"{r.executions_matched:,}")
    t.add_row("  of a named order", f"{r.executions_of_named_orders:,}")
    t.add_row("  placeholder hits (order never seen)", f"{r.placeholder_hits:,}")
    t.add_row("  mismatched", f"{r.execution_mismatches:,}")
    t.add_row("hidden executions (counted, no book change)", f"{r.hidden_executions:,}")
    t.add_row("halts", f"{r.halts:,}")
    t.add_section()
    t.add_row("seed placeholders (levels / shares)", f"{r.seed_levels} / {r.seed_shares:,}")
    for k in ("window_refills", "window_refill_shares", "window_cleared_shares", "stale_orders_removed",
              "unknown_id_cancels", "requeued_orders", "size_disagreements", "forced_removals", "engine_rejects"):
        t.add_row(k.replace("_", " "), f"{r.details.get(k, 0):,}")
    t.add_section()
    style = "green" if r.mismatches == 0 else "bold red"
    t.add_row("top-N mismatches (rows)", f"[{style}]{r.mismatches:,}[/{style}]")
    t.add_row("elapsed (read + replay)", f"{r.elapsed_s:.2f} s ({r.read_s:.2f} + {r.replay_s:.2f})")
    t.add_row("messages/s (replay and compare)", f"{r.messages_per_second:,.0f}")
    t.add_row("state hash", r.state_hash[:16])
    con.print(t)
    for m in r.first_mismatches[:5]:
        con.print(f"[red]mismatch at {r.message_file}:{m['line']}[/red] message {m['message']}\n"
                  f"  file   bids {m['file_bids']} asks {m['file_asks']}\n"
                  f"  engine bids {m['engine_bids']} asks {m['engine_asks']}")
    for m in r.first_execution_mismatches[:5]:
        con.print(f"[red]execution at {r.message_file}:{m['line']}[/red]: {m['why']} (filled {m['filled']}) {m['message']}")
    con.print("[green]OK[/green]: every row matched" if r.ok else "[bold red]FAILED[/bold red]")
