"""``shardex feeds ...``: replay, serve and normalize exchange market-data captures."""

from __future__ import annotations

import typer

app = typer.Typer(help="Exchange feeds to exact L2 books with gap detection and resync.", no_args_is_help=True)
