"""``shardex conformance-adapter``: the candidate program tracebook-conformance runs."""

from __future__ import annotations

import os
import sys

import typer

__all__ = ["conformance_adapter", "register"]


def conformance_adapter() -> None:
    """Speak tracebook-conformance's NDJSON candidate protocol on stdin/stdout.

    Run it through tracebook's runner, for example
    ``tracebook-conformance suite SUITE_DIR --timeout 120 --candidate shardex conformance-adapter``.
    """
    from shardex.conformance.protocol import serve  # the engine loads only when the adapter runs

    status = serve()
    sys.stdout.flush()
    sys.stderr.flush()
    # The runner kills a candidate that has not exited 0.5 s after "complete";
    # interpreter teardown with numba and pandas loaded takes longer than that
    # on a busy machine, and there is nothing left to clean up.
    os._exit(status)


def register(app: typer.Typer) -> None:
    """Add ``conformance-adapter`` to the root ``shardex`` app."""
    app.command("conformance-adapter")(conformance_adapter)
