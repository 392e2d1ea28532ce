"""``shardex options ...``: chain Greeks, smiles and checks against the exchange."""

from __future__ import annotations

import typer

app = typer.Typer(help="Option pricing, Greeks, implied volatility and smiles.", no_args_is_help=True)
