"""Engine commands of the ``shardex`` CLI: demo, replay, bench matching."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the engine's commands to the root app and to ``shardex bench``."""
