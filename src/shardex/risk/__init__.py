"""Pre-trade checks, tiered margin, options, portfolio margin, liquidation with insurance fund and ADL, funding, expiry.

``RiskExchange`` wraps the matching ``Exchange`` and the settlement
``Ledger``: every batch goes through pre-trade risk, matching and parallel
settlement.  See docs/risk.md.
"""

from shardex.risk.engine import (
    LiqStep,
    RiskExchange,
    RiskInvariantError,
    deposit,
    expire,
    funding,
    margin_mode,
    mark_price,
    withdraw,
)
from shardex.risk.durable import DurableRiskExchange, RiskConfigError, open_risk
from shardex.risk.margin import BINANCE_BTCUSDT_BRACKETS, MarginTiers
from shardex.risk.marks import mark_batches, mark_commands, read_binance_marks
from shardex.risk.options import OptionMargin
from shardex.risk.portfolio import MARGIN_MODES, PortfolioMargin
from shardex.risk.pretrade import RESERVED_ORDER_ID

__all__ = [
    "BINANCE_BTCUSDT_BRACKETS",
    "DurableRiskExchange",
    "MARGIN_MODES",
    "RESERVED_ORDER_ID",
    "LiqStep",
    "MarginTiers",
    "OptionMargin",
    "PortfolioMargin",
    "RiskConfigError",
    "RiskExchange",
    "RiskInvariantError",
    "deposit",
    "expire",
    "funding",
    "margin_mode",
    "mark_batches",
    "mark_commands",
    "mark_price",
    "open_risk",
    "read_binance_marks",
    "withdraw",
]
