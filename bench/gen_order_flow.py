"""Write the ``matching-engine`` package's ``order_flow`` workload to CSV.

Run it with the peer's venv (built by ``bench/setup_matching_peers.sh``)::

    bench/.venvs/matching-engine/bin/python bench/gen_order_flow.py \
        [--seed 42] [--count 1000000] [--out bench/out/order_flow_seed42_1000000.csv]

The commands come from ``matching_engine.workload.order_flow`` itself (nothing
is re-implemented here), so the file is exactly the peer's own benchmark flow.

CSV columns ``op,order_id,account,side,type,tif,price,qty``; one row per
command, in order.  Mapping (see docs/bench-matching.md):

==================  ====  ========  =======  ====  ======  ===  =====  ===
peer command        op    order_id  account  side  type    tif  price  qty
==================  ====  ========  =======  ====  ======  ===  =====  ===
NewOrder limit GTC  new   id        account  b/s   limit   gtc  ticks  lots
NewOrder market IOC new   id        account  b/s   market  ioc  0      lots
CancelOrder         cancel victim   owner    ""    ""      ""   0      0
==================  ====  ========  =======  ====  ======  ===  =====  ===

Side, type and tif are written as the peer's enum values (``buy``/``sell``,
``limit``/``market``, ``gtc``/``ioc``/``fok``).  A cancel names the order it
cancels (``order_id``) and that order's owner (``account``); it has no side,
type, tif, price or quantity, so those are empty and 0.  New-order ids are the
1-based command index; a cancel consumes an index without creating an order.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
import time
from pathlib import Path

try:
    from matching_engine.domain import CancelOrder, NewOrder
    from matching_engine.workload import order_flow
except ImportError:  # pragma: no cover - depends on the interpreter used
    sys.exit(
        "gen_order_flow.py needs the 'matching-engine' package (Python >= 3.12): run\n"
        "  bash bench/setup_matching_peers.sh\n"
        "  bench/.venvs/matching-engine/bin/python bench/gen_order_flow.py"
    )

HEADER = ("op", "order_id", "account", "side", "type", "tif", "price", "qty")
DEFAULT_DIR = Path(__file__).resolve().parent / "out"


def default_path(seed: int, count: int) -> Path:
    """Where the workload for ``seed`` and ``count`` is written by default."""
    return DEFAULT_DIR / f"order_flow_seed{seed}_{count}.csv"


def write_workload(path: Path, seed: int, count: int) -> dict[str, int]:
    """Write ``count`` commands of ``order_flow(seed)`` to ``path``; return counts by kind."""
    counts: collections.Counter[str] = collections.Counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(HEADER)
        for cmd in order_flow(seed, count):
            if type(cmd) is NewOrder:
                w.writerow(
                    (
                        "new",
                        cmd.order_id,
                        cmd.account,
                        cmd.side.value,
                        cmd.order_type.value,
                        cmd.tif.value,
                        cmd.price,
                        cmd.qty,
                    )
                )
                counts[f"new {cmd.order_type.value} {cmd.tif.value} {cmd.side.value}"] += 1
                if cmd.post_only or cmd.stp.value != "cancel_taker":
                    counts["new with non-default post_only/stp"] += 1
            elif type(cmd) is CancelOrder:
                w.writerow(("cancel", cmd.order_id, cmd.account, "", "", "", 0, 0))
                counts["cancel"] += 1
            else:  # pragma: no cover - the peer only yields these two
                raise TypeError(f"unexpected command {cmd!r}")
    tmp.replace(path)
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=None, help="CSV path (default: bench/out/...)")
    args = p.parse_args(argv)
    out = args.out or default_path(args.seed, args.count)
    t0 = time.perf_counter()
    counts = write_workload(out, args.seed, args.count)
    print(
        json.dumps(
            {
                "path": str(out),
                "seed": args.seed,
                "commands": args.count,
                "counts": counts,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
