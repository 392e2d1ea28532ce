"""The ``shardex`` command line: one root app, one sub-app per domain package."""

from __future__ import annotations

import typer

from shardex.conformance.cli import register as _register_conformance
from shardex.engine.cli import register as _register_engine
from shardex.engine.benchmarks import register as _register_engine_bench
from shardex.feeds.cli import app as _feeds_app
from shardex.feeds.cli import bench_command as _bench_feeds
from shardex.feeds.lobster_cli import replay_app as _replay_app
from shardex.journal.cli import app as _journal_app
from shardex.ledger.bench import settlement as _bench_settlement
from shardex.risk.bench import risk as _bench_risk
from shardex.options.cli import app as _options_app
from shardex.options.cli import register_bench as _register_options_bench

app = typer.Typer(
    name="shardex",
    help="A parallel matching, risk and settlement engine for crypto derivatives.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks; each prints commands/s (or options/s, messages/s) and --json for scripts.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(_options_app, name="options")
app.add_typer(_feeds_app, name="feeds")
app.add_typer(_journal_app, name="journal")
app.add_typer(_replay_app, name="replay")
_register_engine(app, bench_app)
_register_engine_bench(app, bench_app)
_register_conformance(app)
_register_options_bench(bench_app)
bench_app.command("settlement")(_bench_settlement)
bench_app.command("risk")(_bench_risk)
bench_app.command("feeds")(_bench_feeds)


def main() -> None:
    """Entry point of the ``shardex`` console script."""
    app()


if __name__ == "__main__":
    main()
