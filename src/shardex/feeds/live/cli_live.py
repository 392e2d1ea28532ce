"""``shardex feeds serve-capture`` and ``shardex feeds live`` (mounted on the feeds app in cli.py)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlsplit

import typer

from shardex.errors import ShardexError

__all__ = ["serve_capture_cmd", "live_cmd", "parse_speed"]


def parse_speed(text: str) -> float:
    """``"1"``, ``"10"``, ``"2.5"`` or ``"max"`` (math.inf) -> a speed factor > 0."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        v = float(text)
    except ValueError:
        raise typer.BadParameter(f"speed must be a number > 0 or 'max', got {text!r}") from None
    if not v > 0:
        raise typer.BadParameter(f"speed must be > 0 or 'max', got {text!r}")
    return v


def serve_capture_cmd(
    files: List[Path] = typer.Argument(..., help="Capture(s) of one venue (Binance, Bybit, OKX, Deribit), played in order as one stream."),
    speed: str = typer.Option("1", "--speed", help="1, 10, ... times the recorded pacing, or 'max'."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind (127.0.0.1, ::1, localhost)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port for websocket and REST (0: any free one)."),
    drop_every: int = typer.Option(0, "--drop-every", min=0, help="Lose every K-th depth diff."),
    drop: str = typer.Option("", "--drop", help="Depth-diff ordinals to lose, comma-separated (1-based)."),
    disconnect_after: int = typer.Option(0, "--disconnect-after", min=0, help="Abort a connection after N messages sent on it."),
    max_disconnects: int = typer.Option(0, "--max-disconnects", min=0, help="Most injected disconnects (0: no limit)."),
    outage: int = typer.Option(20, "--outage", min=0, help="Capture messages that pass unsent after an injected disconnect."),
    idle_timeout: float = typer.Option(300.0, "--idle-timeout", min=0.1, help="Stop after this many seconds with no client."),
) -> None:
    """Serve a capture on loopback as the venue would: websocket combined streams + REST depth snapshots.

    Stops by itself at the end of the capture (or when no client came for --idle-timeout seconds).
    """
    from shardex.feeds.live.server import Faults, serve_capture

    try:
        dropped = frozenset(int(x) for x in drop.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"--drop takes comma-separated integers, got {drop!r}") from None
    faults = Faults(drop_every, dropped, disconnect_after, max_disconnects, outage)

    def ready(srv) -> None:
        syms = sorted(set(srv.capture.symbol))
        streams = sorted({s for s in srv.capture.stream if s})
        typer.echo(f"serving {len(srv.capture)} messages ({srv.capture.venue}, {', '.join(s.upper() for s in syms)}) at speed {speed}")
        if srv.dialect is not None:  # the snapshot comes on the socket: subscribe there, no REST
            for u in srv.dialect.client_urls(srv.ws_url, set(srv.capture.conn)):
                typer.echo(f"  websocket: {u}")
            venue = {"bybit": "bybit-<category>"}.get(srv.capture.venue, srv.capture.venue)
            typer.echo(f"  follow it: shardex feeds live --venue {venue} --url <websocket> --symbol <instrument>")
        else:
            typer.echo(f"  websocket: {srv.ws_url}?streams={'/'.join(streams)}")
            typer.echo(f"  REST:      {srv.rest_url}/fapi/v1/depth?symbol={syms[0].upper()}&limit=1000  (any .../depth path)")
        typer.echo("  waiting for a client (the capture's clock runs only while one is connected)")

    try:
        srv = asyncio.run(
            serve_capture(files, parse_speed(speed), host, port, faults, idle_timeout, on_ready=ready)
        )
    except ShardexError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot serve on {host}:{port}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"done: {srv.end_reason}")
    typer.echo(json.dumps(srv.stats))


def live_cmd(
    url: str = typer.Option(..., "--url", help="Websocket endpoint, e.g. ws://127.0.0.1:8765/stream (as serve-capture prints it)."),
    venue: str = typer.Option(
        "binance-usdm", "--venue", help="binance-spot, binance-usdm, binance-cm, bybit-linear, bybit-spot, bybit-inverse, okx or deribit."
    ),
    symbol: List[str] = typer.Option(["BTCUSDT"], "--symbol", help="Symbol(s) to follow (repeat the option for more)."),
    rest: Optional[str] = typer.Option(None, "--rest", help="Binance REST base URL (default: http:// on the websocket's host and port)."),
    duration: float = typer.Option(30.0, "--duration", min=0.1, help="Stop after this many seconds."),
    depth: int = typer.Option(10, "--depth", min=1, max=50, help="Levels a side shown."),
    channels: str = typer.Option("trade,bookTicker", "--channels", help="Streams besides depth (add markPrice@1s on futures)."),
    as_json: bool = typer.Option(False, "--json", help="No live table: print the final report as JSON."),
) -> None:
    """Follow a venue (or serve-capture) live: exact books, gaps, resyncs and reconnects, in a live table."""
    from shardex.feeds.live.handler import LiveConfig, handler_for

    if rest is None:
        u = urlsplit(url)
        rest = f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}"
    try:
        cfg = LiveConfig(
            url, rest, venue, tuple(symbol), channels=tuple(c for c in channels.split(",") if c), depth=depth, duration=duration
        )
        handler = handler_for(cfg)
    except ShardexError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rep = asyncio.run(_follow(handler, as_json))
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
    else:
        typer.echo(f"ended: {rep['end']}; {rep['messages']} messages in {rep['seconds']} s ({rep['messages_per_second']:,.0f}/s)")
        for key, b in rep["books"].items():
            typer.echo(f"{key}: synced={b['synced']} gaps={b['gaps']} resyncs={b['resyncs']} top10_sha256={b['top10_sha256']}")


async def _follow(handler, quiet: bool) -> dict:
    """Run the handler and a consumer that keeps the latest view; draw it with rich unless quiet."""
    from shardex.feeds.live.events import BestBidAsk, BookInvalid, BookState, MarkPrice, Overflow, Trade

    view: dict = {"states": {}, "bbo": {}, "mark": {}, "trades": 0, "last_trade": None, "invalid": 0, "overflow": 0}

    async def consume() -> None:
        async for ev in handler.queue:
            if isinstance(ev, BookState):
                view["states"][ev.key] = ev
            elif isinstance(ev, Trade):
                view["trades"] += 1
                view["last_trade"] = ev
            elif isinstance(ev, BestBidAsk):
                view["bbo"][ev.symbol] = ev
            elif isinstance(ev, MarkPrice):
                view["mark"][ev.symbol] = ev
            elif isinstance(ev, BookInvalid):
                view["states"].pop(ev.key, None)  # never show a book that is not exact
                view["invalid"] += 1
            elif isinstance(ev, Overflow):
                view["overflow"] += ev.dropped_trades

    consumer = asyncio.ensure_future(consume())
    runner = asyncio.ensure_future(handler.run())
    if quiet:
        rep = await runner
        await consumer
        return rep
    from rich.live import Live

    with Live(_render(handler, view), refresh_per_second=8, transient=False) as live:
        t_end = time.monotonic() + (handler.cfg.duration or 0) + 30
        while not runner.done() and time.monotonic() < t_end:  # bounded by the handler's duration
            await asyncio.sleep(0.125)
            live.update(_render(handler, view))
        rep = await runner
        await consumer
        live.update(_render(handler, view))
    return rep


def _render(handler, view: dict):
    from rich.console import Group
    from rich.table import Table

    parts = []
    for slot in handler.slots.values():
        st = view["states"].get(slot.key)
        t = Table(title=f"{slot.key}  " + ("synced" if st is not None else ("stopped" if handler.end else "[red]not synced[/red]")), show_lines=False)
        for col in ("bid qty", "bid", "ask", "ask qty"):
            t.add_column(col, justify="right")
        if st is not None:
            for i in range(max(len(st.bids), len(st.asks))):
                b = st.bids[i] if i < len(st.bids) else ("", "")
                a = st.asks[i] if i < len(st.asks) else ("", "")
                t.add_row(b[1], f"[green]{b[0]}[/green]", f"[red]{a[0]}[/red]", a[1])
            t.caption = f"update id {st.update_id}  (folded {st.folded} updates)"
        parts.append(t)
    c = handler.counts
    counters = Table(title="counters", show_header=False)
    counters.add_column("k")
    counters.add_column("v", justify="right")
    for k in ("messages", "depth", "trades", "tickers", "marks", "gaps_detected", "resyncs_done", "reconnects",
              "disconnects", "snapshot_requests", "snapshot_errors"):
        counters.add_row(k, f"{c[k]:,}")
    q = handler.queue.stats()
    counters.add_row("queue conflated", f"{q['conflated']:,}")
    counters.add_row("trades delivered", f"{view['trades']:,}")
    counters.add_row("trades dropped (overflow)", f"{view['overflow']:,}")
    for slot in handler.slots.values():
        s = slot.book.stats()  # this connection's builder
        counters.add_row(f"{slot.key} crosscheck ok/bad", f"{s['crosscheck_ok']}/{s['crosscheck_mismatch']}")
    parts.append(counters)
    return Group(*parts)
