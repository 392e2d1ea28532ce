"""tracebook's reject codes, and how shardex's reason codes translate to them.

tracebook's reference reports five stable codes; which one depends on the
operation as much as on the cause (a bad price is ``INVALID_ORDER`` on a new
order but ``INVALID_REPLACEMENT`` on a replace).  shardex has one code per
cause (``shardex.Reason``); ``tracebook_code`` folds them.

>>> from shardex.schema import Reason
>>> tracebook_code(Reason.UNKNOWN_ORDER, "replace"), tracebook_code(Reason.QTY_NOT_POSITIVE, "replace")
('ORDER_NOT_ACTIVE', 'INVALID_REPLACEMENT')
"""

from __future__ import annotations

from shardex.schema import Reason

__all__ = [
    "DUPLICATE_ORDER_ID",
    "INVALID_CANCEL",
    "INVALID_ORDER",
    "INVALID_REPLACEMENT",
    "ORDER_NOT_ACTIVE",
    "invalid_for",
    "tracebook_code",
]

#: The order id is not resting in this symbol (never seen, filled, cancelled, cleared).
ORDER_NOT_ACTIVE = "ORDER_NOT_ACTIVE"
#: A new order reuses a source id that is still resting in this symbol.
DUPLICATE_ORDER_ID = "DUPLICATE_ORDER_ID"
#: A replace whose price or quantity is invalid (the original stays, see docs/conformance.md).
INVALID_REPLACEMENT = "INVALID_REPLACEMENT"
#: A cancel that fails for a reason other than an inactive order.
INVALID_CANCEL = "INVALID_CANCEL"
#: Any other invalid new order or reduction (bad price, quantity, owner, off-grid size).
INVALID_ORDER = "INVALID_ORDER"


def invalid_for(op: str) -> str:
    """The catch-all code tracebook uses for an invalid ``op``."""
    if op == "replace":
        return INVALID_REPLACEMENT
    if op == "cancel":
        return INVALID_CANCEL
    return INVALID_ORDER


def tracebook_code(reason: int, op: str) -> str:
    """The tracebook reject code for a shardex reject ``reason`` met while applying ``op``."""
    if reason == Reason.UNKNOWN_ORDER:
        return ORDER_NOT_ACTIVE
    if reason == Reason.DUPLICATE_ORDER_ID:
        return DUPLICATE_ORDER_ID
    return invalid_for(op)
