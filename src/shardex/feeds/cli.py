"""``shardex feeds ...``: replay, serve and normalize exchange market-data captures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

from shardex.errors import ShardexError

app = typer.Typer(help="Exchange feeds to exact L2 books with gap detection and resync.", no_args_is_help=True)


@app.command("replay")
def replay_cmd(
    files: List[Path] = typer.Argument(..., help="Capture files, replayed in order as one stream."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one book: its keys at the top level)."),
    slow: bool = typer.Option(False, "--per-message", help="Feed Binance captures message by message (no whole-file kernel)."),
) -> None:
    """Replay captures into exact L2 books and print, per book, counts and the top-10 hash."""
    from shardex.feeds.replay import REPORT_KEYS, replay_files

    try:
        r = replay_files(files, fast=not slow)
    except ShardexError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rep = r.report()
    if as_json:
        books = rep["books"]
        if len(books) == 1:
            (key, book), = books.items()
            out = {**book, "book": key, "files": rep["files"], "messages": rep["messages"]}
        else:
            out = rep
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"{len(rep['files'])} file(s), {rep['messages']} messages, {rep['non_book_messages']} not for a book, "
               f"{rep['malformed_lines']} malformed")
    for p in rep["problems"][:5]:
        typer.echo(f"  {p}")
    for key, book in rep["books"].items():
        typer.echo(f"{key}")
        typer.echo("  " + "  ".join(f"{k}={book[k]}" for k in REPORT_KEYS))
        extras = {k: v for k, v in book.items() if k not in REPORT_KEYS and isinstance(v, int) and v}
        if extras:
            typer.echo("  " + "  ".join(f"{k}={v}" for k, v in extras.items()))
        for p in book["problems"][:5]:
            typer.echo(f"  ! {p}")


@app.command("normalize")
def normalize_cmd(
    files: List[Path] = typer.Argument(..., help="Capture files, read in order."),
    out: Path = typer.Option(..., "--out", help="Folder for book_deltas/trades/bbo/mark_price/funding .parquet."),
) -> None:
    """Write normalized Parquet tables (exchange and receive stamps on every row)."""
    from shardex.feeds.normalize import normalize_files

    try:
        n = normalize_files(files, out)
    except ShardexError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for table, rows in n.counts().items():
        typer.echo(f"{out / (table + '.parquet')}: {rows} rows")
    if n.malformed:
        typer.echo(f"{n.malformed} messages could not be read", err=True)
        for p in n.problems[:5]:
            typer.echo(f"  {p}", err=True)


def bench_command(
    files: List[Path] = typer.Argument(..., help="Capture files, replayed in order as one stream."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    repeat: int = typer.Option(5, "--repeat", min=1, help="Runs; the median is reported."),
) -> None:
    """Replay captures end to end with every check on; messages/s = book messages / median seconds."""
    from shardex.feeds.bench import bench_feeds

    res = bench_feeds(files, repeat=repeat)
    if as_json:
        typer.echo(json.dumps(res))
        return
    typer.echo(
        f"{res['book_messages']} book messages in {res['seconds']:.4f} s (median of {repeat}): "
        f"{res['messages_per_second']:,.0f} msgs/s  [read {res['read_seconds']:.3f} s, compile {res['compile_seconds']:.2f} s]"
    )
    typer.echo(f"top10_sha256: {res['top10_sha256']}")


# part 4 (live handler, loopback capture server): the commands live in shardex.feeds.live.cli_live
from shardex.feeds.live.cli_live import live_cmd as _live_cmd  # noqa: E402
from shardex.feeds.live.cli_live import serve_capture_cmd as _serve_capture_cmd  # noqa: E402

app.command("serve-capture")(_serve_capture_cmd)
app.command("live")(_live_cmd)
