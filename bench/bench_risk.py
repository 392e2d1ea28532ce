"""Full pipeline with risk on vs matching alone on the matching benchmark's workload.

    python bench/bench_risk.py [--json] [--commands N]

Same as ``shardex bench risk``; see src/shardex/risk/bench.py and docs/risk.md.
"""

from __future__ import annotations

import typer

from shardex.risk.bench import risk

if __name__ == "__main__":
    typer.run(risk)
