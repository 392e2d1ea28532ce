"""A seeded multi-instrument order flow, for the demo and for scaling runs.

Each instrument gets its own mid price; orders are limit GTC around it (some
crossing), market IOC, and cancels of earlier orders, from many accounts,
with cancel-taker self-trade prevention.  The same seed gives the same flow.
"""

from __future__ import annotations

import numpy as np

from shardex.schema import COMMAND_DTYPE, CommandKind, OrderType, SelfTradePrevention, TimeInForce

__all__ = ["generate_flow"]


def generate_flow(commands: int, instruments: int = 8, *, seed: int = 42, accounts: int = 1000,
                  cancel_share: float = 0.25, market_share: float = 0.05) -> np.ndarray:
    """``commands`` random commands (``COMMAND_DTYPE``) over instrument ids ``0..instruments-1``.

    Order ids are the 1-based row numbers; a cancel names a random earlier
    limit order of the same instrument with its owner (it may have filled:
    then the engine rejects it, as a venue would).
    """
    if commands < 0 or instruments < 1 or accounts < 1:
        raise ValueError("commands must be >= 0, instruments and accounts >= 1")
    rng = np.random.default_rng(seed)
    cmds = np.zeros(commands, dtype=COMMAND_DTYPE)
    ids = np.arange(1, commands + 1, dtype=np.int64)
    roll = rng.random(commands)
    inst = rng.integers(0, instruments, commands)
    side = rng.integers(0, 2, commands)
    mid = 100_000 + 1_000 * inst
    offset = rng.integers(-5, 51, commands)
    cmds["kind"] = CommandKind.NEW
    cmds["order_id"] = ids
    cmds["account"] = rng.integers(1, accounts + 1, commands)
    cmds["instrument"] = inst
    cmds["side"] = side
    cmds["qty"] = rng.integers(1, 101, commands)
    cmds["price"] = np.where(side == 0, mid - offset, mid + offset)
    cmds["stp"] = SelfTradePrevention.CANCEL_TAKER
    market = roll < market_share
    cmds["otype"][market] = OrderType.MARKET
    cmds["tif"][market] = TimeInForce.IOC
    cmds["price"][market] = 0
    # Cancels name an earlier row; that row's id, account and instrument.
    cancel = (roll >= market_share) & (roll < market_share + cancel_share) & (ids > 1)
    rows = np.nonzero(cancel)[0]
    target = (rng.random(len(rows)) * rows).astype(np.int64)
    cmds["kind"][rows] = CommandKind.CANCEL
    cmds["order_id"][rows] = ids[target]
    cmds["account"][rows] = cmds["account"][target]
    cmds["instrument"][rows] = cmds["instrument"][target]
    for field in ("side", "otype", "tif", "price", "qty", "stp"):
        cmds[field][rows] = 0
    return cmds
