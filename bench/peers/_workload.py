"""Shared by the peer runners: read the workload CSV and print the result.

Standard library only: each runner runs in its peer's own venv (see
``bench/setup_matching_peers.sh``), on Python 3.12 or 3.13.

The CSV (``bench/gen_order_flow.py``) has columns
``op,order_id,account,side,type,tif,price,qty``.  ``load`` turns it into
plain parallel lists of ints *before* any timing starts, so a runner's timed
loop measures the engine and its binding, never CSV parsing.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NEW, CANCEL = 0, 1
BUY, SELL = 0, 1
LIMIT, MARKET = 0, 1
GTC, IOC, FOK = 0, 1, 2

_OPS = {"new": NEW, "cancel": CANCEL}
_SIDES = {"buy": BUY, "sell": SELL, "": -1}
_TYPES = {"limit": LIMIT, "market": MARKET, "": -1}
_TIFS = {"gtc": GTC, "ioc": IOC, "fok": FOK, "": -1}


@dataclass
class Workload:
    """The commands as parallel lists; ``-1`` marks a field a cancel does not have."""

    path: Path
    op: list[int] = field(default_factory=list)
    order_id: list[int] = field(default_factory=list)
    account: list[int] = field(default_factory=list)
    side: list[int] = field(default_factory=list)
    type: list[int] = field(default_factory=list)
    tif: list[int] = field(default_factory=list)
    price: list[int] = field(default_factory=list)
    qty: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.op)

    def rows(self) -> zip:
        """Iterate ``(op, order_id, account, side, type, tif, price, qty)`` tuples."""
        return zip(
            self.op, self.order_id, self.account, self.side,
            self.type, self.tif, self.price, self.qty, strict=True,
        )

    def counts(self) -> dict[str, int]:
        """How many commands of each (op, type, tif) the workload holds."""
        names = {v: k for k, v in _TYPES.items()}, {v: k for k, v in _TIFS.items()}
        out: dict[str, int] = {}
        for op, ty, tif in zip(self.op, self.type, self.tif, strict=True):
            key = "cancel" if op == CANCEL else f"new {names[0][ty]} {names[1][tif]}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


def load(path: Path) -> Workload:
    """Parse the workload CSV; raise ``ValueError`` naming the file and line on a bad row."""
    w = Workload(path)
    with path.open(newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        expected = ["op", "order_id", "account", "side", "type", "tif", "price", "qty"]
        if header != expected:
            raise ValueError(f"{path}:1: expected header {','.join(expected)}, got {header}")
        for line, r in enumerate(rows, start=2):
            try:
                op, oid, acct, side, ty, tif, price, qty = r
                w.op.append(_OPS[op])
                w.order_id.append(int(oid))
                w.account.append(int(acct))
                w.side.append(_SIDES[side])
                w.type.append(_TYPES[ty])
                w.tif.append(_TIFS[tif])
                w.price.append(int(price or 0))
                w.qty.append(int(qty or 0))
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{line}: malformed row {r!r} ({exc!r})") from None
    return w


def parse_args(description: str) -> argparse.Namespace:
    """The runners' common command line: ``WORKLOAD.csv [--repeat N] [--warmup N]``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("workload", type=Path)
    p.add_argument("--repeat", type=int, default=1, help="runs on a fresh book; the median is reported")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs on a fresh book before the timed ones")
    p.add_argument("--limit", type=int, default=0, help="only the first N commands (0: all)")
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def run(
    engine: str,
    version: str,
    once: Callable[[Workload], dict],
    description: str,
    notes: list[str] | None = None,
) -> int:
    """Load the workload, call ``once`` ``--warmup`` times untimed, then ``--repeat`` times, and print one JSON object.

    ``once(workload)`` builds a fresh book, times only its processing loop and
    returns a dict with at least ``seconds``, ``trades`` and ``traded_qty``
    (``None`` where the peer cannot report them) and optionally ``notes`` and
    ``extra``.  Trades and traded quantity must be the same on every run.
    """
    args = parse_args(description)
    w = load(args.workload)
    if args.limit:
        for name in ("op", "order_id", "account", "side", "type", "tif", "price", "qty"):
            setattr(w, name, getattr(w, name)[: args.limit])
    for _ in range(args.warmup):
        once(w)  # steady state: the process's memory is faulted in, caches and allocators are warm
    results = [once(w) for _ in range(args.repeat)]
    first = results[0]
    for r in results[1:]:
        if (r["trades"], r["traded_qty"]) != (first["trades"], first["traded_qty"]):
            raise RuntimeError(f"{engine}: runs disagree: {r} vs {first}")
    secs = [r["seconds"] for r in results]
    median = statistics.median(secs)
    out = {
        "engine": engine,
        "version": version,
        "python": platform.python_version(),
        "workload": str(args.workload),
        "commands": len(w),
        "repeat": args.repeat,
        "warmup": args.warmup,
        "seconds": median,
        "seconds_all": secs,
        "commands_per_second": len(w) / median if median > 0 else None,
        "trades": first["trades"],
        "traded_qty": first["traded_qty"],
        "notes": list(notes or []) + list(first.get("notes", [])),
    }
    if "extra" in first:
        out["extra"] = first["extra"]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


def timer() -> Callable[[], float]:
    """The clock the runners time their loops with."""
    return time.perf_counter
