"""Events out of the engine, as tables people and tools can read.

``to_frame`` and ``to_arrow`` name the enum columns (``kind``, ``side``,
``reason``) instead of leaving integer codes.
"""

from __future__ import annotations

import numpy as np

from shardex.schema import EVENT_DTYPE, EventKind, Reason, Side

__all__ = ["to_frame", "to_arrow", "describe"]

_FIELDS = [f for f in EVENT_DTYPE.names]


def _named(column: np.ndarray, enum) -> np.ndarray:
    names = {m.value: m.name for m in enum}
    return np.array([names.get(int(v), str(int(v))) for v in column], dtype=object)


def to_frame(events: np.ndarray):
    """A pandas DataFrame of an ``EVENT_DTYPE`` array, enums as their names."""
    import pandas as pd

    data = {name: events[name] for name in _FIELDS}
    data["kind"] = _named(events["kind"], EventKind)
    data["side"] = _named(events["side"], Side)
    data["reason"] = _named(events["reason"], Reason)
    return pd.DataFrame(data, columns=_FIELDS)


def to_arrow(events: np.ndarray):
    """A pyarrow Table of an ``EVENT_DTYPE`` array; enums become dictionary-encoded strings."""
    import pyarrow as pa

    cols = {}
    for name in _FIELDS:
        if name in ("kind", "side", "reason"):
            enum = {"kind": EventKind, "side": Side, "reason": Reason}[name]
            cols[name] = pa.array(_named(events[name], enum), type=pa.string()).dictionary_encode()
        else:
            cols[name] = pa.array(np.ascontiguousarray(events[name]))
    return pa.table(cols)


def describe(event) -> str:
    """One line for one event record, for logs and error messages."""
    kind = EventKind(int(event["kind"])).name
    side = Side(int(event["side"])).name
    text = f"seq={int(event['seq'])} {kind} {side} order={int(event['order_id'])} acct={int(event['account'])}"
    if kind == "TRADE":
        text += (f" {int(event['qty'])}@{int(event['price'])} vs order={int(event['maker_order_id'])}"
                 f" acct={int(event['maker_account'])}")
    else:
        text += f" px={int(event['price'])} qty={int(event['qty'])} leaves={int(event['leaves'])}"
    if int(event["reason"]):
        text += f" reason={Reason(int(event['reason'])).name}"
    return text
