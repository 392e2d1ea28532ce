"""Command workloads from CSV files: ``op,order_id,account,side,type,tif,price,qty``.

``op`` is ``new`` or ``cancel``; ``side`` ``buy``/``sell``; ``type``
``limit``/``market``; ``tif`` ``gtc``/``ioc``/``fok``; ``price`` in integer
ticks and ``qty`` in integer lots.  Cancel rows may leave side, type and tif
empty.  A malformed row does not stop the file: it is reported with its file
and line, and the rest is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shardex.errors import MalformedInputError
from shardex.schema import COMMAND_DTYPE, CommandKind, OrderType, SelfTradePrevention, TimeInForce

__all__ = ["Workload", "read_workload_csv"]

_COLUMNS = ["op", "order_id", "account", "side", "type", "tif", "price", "qty"]
_OPS = {"new": CommandKind.NEW, "cancel": CommandKind.CANCEL}
_SIDES = {"buy": 0, "sell": 1}
_TYPES = {"limit": OrderType.LIMIT, "market": OrderType.MARKET}
_TIFS = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}


@dataclass
class Workload:
    """Commands read from a file, and the rows that could not be read."""

    commands: np.ndarray
    errors: list[str] = field(default_factory=list)


def read_workload_csv(path: str | Path, *, instrument: int = 0,
                      stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER) -> Workload:
    """Read a workload CSV into ``COMMAND_DTYPE`` commands for one instrument.

    Every new order gets self-trade prevention ``stp`` (cancel-taker by
    default, as most venues and the common benchmark engines do).  Raises
    ``MalformedInputError`` if the file is missing or its header is wrong;
    bad rows are skipped and listed in ``Workload.errors`` as ``file:line: why``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise MalformedInputError(f"{path}: no such workload file")
    with path.open() as fh:
        header = fh.readline().strip().split(",")
    if header != _COLUMNS:
        raise MalformedInputError(f"{path}:1: header must be {','.join(_COLUMNS)}, found {','.join(header)}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    n = len(df)
    line = np.arange(2, n + 2)
    bad = np.zeros(n, dtype=bool)
    errors: list[str] = []

    def complain(mask: np.ndarray, why: str) -> None:
        fresh = mask & ~bad
        for ln in line[fresh][:1000]:
            errors.append(f"{path}:{ln}: {why}")
        if fresh.sum() > 1000:
            errors.append(f"{path}: ... and {int(fresh.sum()) - 1000} more rows: {why}")
        bad[:] |= mask

    def codes(col: str, table: dict, allow_empty: np.ndarray) -> np.ndarray:
        text = df[col].str.strip().str.lower()
        out = text.map(table)
        missing = out.isna().to_numpy() & ~(allow_empty & (text == "").to_numpy())
        complain(missing, f"{col} must be one of {'|'.join(table)}")
        return out.fillna(0).to_numpy(dtype=np.int64)

    def integers(col: str) -> np.ndarray:
        num = pd.to_numeric(df[col].str.strip(), errors="coerce")
        ok = num.notna().to_numpy() & (num.fillna(0) % 1 == 0).to_numpy()
        complain(~ok, f"{col} must be an integer")
        return num.fillna(0).to_numpy(dtype=np.int64)

    ops = codes("op", _OPS, np.zeros(n, dtype=bool))
    is_cancel = ops == CommandKind.CANCEL
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["kind"] = ops
    cmds["order_id"] = integers("order_id")
    cmds["account"] = integers("account")
    cmds["side"] = codes("side", _SIDES, is_cancel)
    cmds["otype"] = codes("type", _TYPES, is_cancel)
    cmds["tif"] = codes("tif", _TIFS, is_cancel)
    cmds["price"] = integers("price")
    cmds["qty"] = integers("qty")
    cmds["instrument"] = instrument
    cmds["stp"] = np.where(is_cancel, 0, int(stp))
    return Workload(cmds[~bad], errors)
