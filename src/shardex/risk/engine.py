"""``RiskExchange``: pre-trade risk, matching and settlement of every batch, plus liquidation, funding, expiry.

>>> from shardex.instruments import Instrument, InstrumentKind
>>> from shardex.risk import RiskExchange, MarginTiers, deposit
>>> from shardex.schema import Reason
>>> from shardex.engine.commands import batch, new_order
>>> perp = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
>>> rx = RiskExchange([perp], n_accounts=3, tiers=MarginTiers.flat(1000, 500), marks=[600_000], clock=lambda: 1)
>>> ev = rx.process(batch([deposit(1, 0, 10_000_000_000), deposit(2, 0, 10_000_000_000)]))
>>> ev = rx.process(batch([new_order(0, "sell", 5, 600_000, order_id=1, account=1),
...                        new_order(0, "buy", 5, 600_000, order_id=1, account=2)]))
>>> rx.ledger.positions[1:, 0, 0].tolist()
[-5, 5]
>>> ev = rx.process(batch([new_order(0, "buy", 10**9, 600_000, order_id=2, account=2)]))
>>> Reason(int(ev["reason"][0])).name
'INSUFFICIENT_MARGIN'
>>> rx.check()

A batch is cut at its risk commands (DEPOSIT, WITHDRAW, MARK_PRICE,
FUNDING, EXPIRE), which run one at a time in sequence order; each run of
order commands between them goes through ``pretrade`` (reject with a reason
code, reserve the rest), matching (``Exchange.apply``) and settlement of its
trades through the ledger's parallel executor (the same state whatever the
thread count).  Risk command fields (all integers):

========== ============ ============================= =======================
command    ``account``  ``instrument``                ``price`` / ``qty`` / ``stop_price``
========== ============ ============================= =======================
DEPOSIT    account      currency index                qty = amount, minor units
WITHDRAW   account      currency index                qty = amount, minor units
MARK_PRICE --           instrument                    price = mark ticks; stop_price = index ticks (0: none)
FUNDING    --           perpetual                     (rate from the premium samples)
EXPIRE     --           dated future                  price = settlement price, ticks
EXPIRE     --           option                        price = the underlying's settlement price, its ticks
MARGIN_MODE account     --                            qty = 0 standard, 1 portfolio margin
========== ============ ============================= =======================

docs/risk.md lists the events each one emits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum

import numpy as np

from shardex.engine.commands import batch as _batch
from shardex.engine.commands import mass_cancel, new_order
from shardex.engine.exchange import Exchange
from shardex.errors import OffGridError, OrderRejected, ShardexError
from shardex.instruments import Instrument, InstrumentKind
from shardex.ledger import AuditCause, Ledger, LinearPerp, TxnKind, empty_txns, funding_txns, trade_txns
from shardex.ledger import INSURANCE_FUND, PremiumContract, deposit_txns, option_expiry_txns, withdraw_txns
from shardex.ledger.txn import FLAG_MARGIN_CHECKED, spot_trade_txns
from shardex.ledger.margin import INST_MULT, POS_QTY
from shardex.risk.expiry import pair_positions
from shardex.risk.funding import DEFAULT_INTEREST_PPM, PREMIUM_CLAMP_PPM, default_cap_ppm, funding_rate_ppm, holders
from shardex.risk.funding import premium_ppm
from shardex.risk.liquidation import adl_ranking, below_maintenance, close_prices, pool_below
from shardex.risk.margin import MarginTiers, account_margin, pool_equity, tier_table
from shardex.risk.options import O_BASE_BPS, O_CCY, O_FLOOR_BPS, O_INV, O_MM_BPS, O_NUM, O_UNDER, OptionMargin
from shardex.risk.options import expiry_value, option_table
from shardex.risk.orders import OrderTable, table_find
from shardex.risk.portfolio import MARGIN_MODES, PortfolioBook, PortfolioMargin
from shardex.risk.pretrade import RESERVED_ORDER_ID, ST_EXPIRED, apply_order_events, pretrade, spot_free
from shardex.risk.spot import MODE_OPTION, MODE_SPOT, S_BASE, S_BASE_LOT, S_MODE, S_QUOTE, S_QUOTE_TL, hold_amount
from shardex.risk.spot import option_hold_rows, spot_table
from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, EventKind, Reason, Side, TimeInForce

__all__ = ["LiqStep", "RiskExchange", "RiskInvariantError", "deposit", "withdraw", "mark_price", "funding", "expire",
           "margin_mode"]

_RISK_KINDS = (CommandKind.DEPOSIT, CommandKind.WITHDRAW, CommandKind.MARK_PRICE, CommandKind.FUNDING,
               CommandKind.EXPIRE, CommandKind.MARGIN_MODE)
_EMPTY_EVENTS = np.zeros(0, EVENT_DTYPE)


class RiskInvariantError(ShardexError, AssertionError):
    """``RiskExchange.check`` found the risk state inconsistent (a bug, never bad input)."""


class LiqStep(IntEnum):
    """Step of a liquidation, in ``maker_order_id`` of its ``LIQUIDATION`` events."""

    START = 1  # qty: equity, leaves: maintenance margin (minor units)
    ORDER = 2  # instrument, side, price: IOC limit (ticks), qty: lots, leaves: bankruptcy price
    ADL = 3  # account: the deleveraged counterparty, maker_account: the liquidated one, price: bankruptcy, qty: lots
    INSURANCE = 4  # qty: the insurance fund's change (> 0 surplus taken, < 0 deficit paid), leaves: fund after
    DONE = 5  # qty: the account's balance after, leaves: deficit the fund could not cover


# -- command builders (records for shardex.engine.commands.batch) ---------------------------------
def _rec(kind, account=0, instrument=0, price=0, qty=0, stop_price=0):
    return (0, 0, 0, int(account), int(price), int(qty), int(stop_price), 0, int(instrument), int(kind), 0, 0, 0, 0,
            0, 0, 0)


def deposit(account: int, currency: int, amount: int) -> tuple:
    """A DEPOSIT command record: ``amount`` minor units of currency index ``currency``."""
    return _rec(CommandKind.DEPOSIT, account, currency, qty=amount)


def withdraw(account: int, currency: int, amount: int) -> tuple:
    """A WITHDRAW command record: ``amount`` minor units, at most the free balance."""
    return _rec(CommandKind.WITHDRAW, account, currency, qty=amount)


def margin_mode(account: int, mode: str) -> tuple:
    """A MARGIN_MODE command record: switch ``account`` to ``"standard"`` or ``"portfolio"`` margin.

    As a command the switch is sequenced and journaled like any other, so a
    replay makes it at the same point; ``RiskExchange.set_margin_mode`` sends one.
    """
    if mode not in MARGIN_MODES:
        raise ValueError(f"margin mode must be one of {tuple(MARGIN_MODES)}, got {mode!r}")
    return _rec(CommandKind.MARGIN_MODE, account, qty=MARGIN_MODES[mode])


def mark_price(instrument: int, mark: int, index: int = 0) -> tuple:
    """A MARK_PRICE command record: mark (and optionally index) price in ticks."""
    return _rec(CommandKind.MARK_PRICE, 0, instrument, price=mark, stop_price=index)


def funding(instrument: int) -> tuple:
    """A FUNDING command record: pay the perpetual's funding for the interval now ending."""
    return _rec(CommandKind.FUNDING, 0, instrument)


def expire(instrument: int, settlement_price: int) -> tuple:
    """An EXPIRE command record: settle a dated future at ``settlement_price`` ticks.

    For an option, ``settlement_price`` is the underlying's settlement price
    in the underlying's ticks.
    """
    return _rec(CommandKind.EXPIRE, 0, instrument, price=settlement_price)


def _as_tiers(tiers, n: int) -> list[MarginTiers]:
    if tiers is None:
        return [MarginTiers.flat(1000, 500)] * n
    if isinstance(tiers, MarginTiers):
        return [tiers] * n
    tiers = list(tiers)
    if len(tiers) != n or not all(isinstance(t, MarginTiers) for t in tiers):
        raise ValueError(f"tiers must be one MarginTiers or one per instrument ({n}), got {len(tiers)}")
    return tiers


class RiskExchange:
    """An ``Exchange`` with accounts, margin, liquidation, funding and expiry around it.

    Parameters
    ----------
    instruments
        Linear perpetuals and dated futures (``InstrumentKind.PERPETUAL`` /
        ``FUTURE``), settled in ``margin_currency``; spot instruments
        (``InstrumentKind.SPOT``, ``base``/``quote`` naming two ledger
        currencies); European options (``InstrumentKind.OPTION`` with
        ``strike``, ``option_type``, ``underlying`` and ``expiry_ns``):
        linear (premium in ``margin_currency``) or inverse (premium in the
        coin ``base``); ids ``0 .. n-1``.  Spot orders hold their payment at
        entry and settle base against quote (see ``shardex.risk.spot`` and
        docs/risk.md, "Spot"); options are described in
        ``shardex.risk.options`` and docs/risk.md, "Options".
    n_accounts
        Accounts are ``0 .. n_accounts - 1``.
    currencies, margin_currency, currency_decimals
        Ledger currencies; the collateral currency; the minor units of each
        currency (one int for all, or one per currency; USDT in 1e-6: 6).
        A spot instrument whose lot or tick·lot is not a whole number of
        minor units is refused (``ValueError``).
    tiers
        ``MarginTiers`` for every instrument, or one per instrument
        (default: flat 10 % / 5 %).
    marks
        Initial mark prices, ticks (default: 1 tick each -- set real marks
        before trading).
    taker_fee_bps, maker_fee_bps
        Trading fees (a negative maker fee is a rebate); spot fees are
        charged in the quote currency.  At most 10,000 bps either way.
    threads, settle_mode
        Settlement executor threads and mode (``"auto"``, ``"parallel"``,
        ``"sequential"``): any choice gives the same state.
    shards, clock, order_capacity
        Passed to ``Exchange``.
    interest_ppm, funding_cap_ppm
        Funding interest per interval and rate cap (default: BitMEX's 75 %
        of the first tier's initial minus maintenance rate).
    funding_interval_ns, funding_offset_ns
        The funding schedule: every perpetual pays funding each time the
        command timestamps cross ``offset + k * interval`` (Binance and
        Bybit: 8 hours from 00:00 UTC, ``8 * 3600 * 10**9``, offset 0).
        Default ``None``: funding only on ``FUNDING`` commands.  The
        timestamps are the sequencer's, so a replay pays at the same
        commands.
    keep_audit
        Keep every settlement's audit records in ``audit`` (tests).
    option_margin
        ``OptionMargin`` rates of short options (default: Deribit's 15 % /
        10 % / 7.5 %).
    portfolio
        ``PortfolioMargin`` (volatility, scenario grid) for the accounts
        switched to portfolio margin with ``set_margin_mode`` (default:
        none; every account has standard margin).
    """

    def __init__(self, instruments: Iterable[Instrument], n_accounts: int, *, currencies: Sequence[str] = ("USDT",),
                 margin_currency: str | int = 0, currency_decimals: int | Sequence[int] = 6,
                 tiers: MarginTiers | Sequence[MarginTiers] | None = None, marks: Sequence[int] | None = None,
                 taker_fee_bps: int = 0, maker_fee_bps: int = 0, threads: int | None = None,
                 settle_mode: str = "auto", shards: int = 1, clock: Callable[[], int] = time.time_ns,
                 order_capacity: int = 1024, interest_ppm: int = DEFAULT_INTEREST_PPM,
                 funding_cap_ppm: int | None = None, funding_interval_ns: int | None = None,
                 funding_offset_ns: int = 0, keep_audit: bool = False,
                 option_margin: OptionMargin = OptionMargin(), portfolio: PortfolioMargin | None = None) -> None:
        ins = sorted(instruments, key=lambda x: x.id)
        if [x.id for x in ins] != list(range(len(ins))) or not ins:
            raise ValueError(f"instrument ids must be 0..n-1, got {[x.id for x in ins]}")
        for x in ins:
            if x.inverse and x.kind != InstrumentKind.OPTION:
                raise ValueError(f"{x.symbol}: the risk layer handles linear perpetuals and futures only, not inverse "
                                 f"ones (see docs/risk.md, 'What is missing')")
        for bps in (taker_fee_bps, maker_fee_bps):
            if not -10_000 <= bps <= 10_000:
                raise ValueError(f"fee rates must be within +-10000 bps, got {bps}")
        currencies = tuple(currencies)
        decimals = ([currency_decimals] * len(currencies) if isinstance(currency_decimals, (int, np.integer))
                    else [int(d) for d in currency_decimals])
        if len(decimals) != len(currencies) or any(d < 0 for d in decimals):
            raise ValueError(f"currency_decimals: one int >= 0, or one per currency {currencies}")
        self.instruments = ins
        self.tier_specs = _as_tiers(tiers, len(ins))
        mccy = _ccy_index(currencies, margin_currency)
        self.option_margin = option_margin
        self.opt = option_table(ins, currencies, decimals, mccy, option_margin)
        # The ledger keeps a row per instrument id; a spot row is a placeholder
        # (no position ever moves in it, so it adds no margin).
        specs = [LinearPerp(1, 0, 0) if x.kind == InstrumentKind.SPOT else
                 _premium_spec(x, int(self.opt[x.id, O_CCY]), decimals) if x.kind == InstrumentKind.OPTION else
                 LinearPerp.from_instrument(x, decimals[mccy], t.im_bps[0], t.mm_bps[0])
                 for x, t in zip(ins, self.tier_specs)]
        self.ledger = Ledger(n_accounts, currencies, specs, margin_currency)
        self.spot = spot_table(ins, currencies, decimals, taker_fee_bps, maker_fee_bps)
        option_hold_rows(self.spot, ins, self.opt[:, O_CCY], self.ledger.inst[:, INST_MULT], taker_fee_bps,
                         maker_fee_bps)
        self.holds = np.zeros_like(self.ledger.balances)
        self.exchange = Exchange(ins, shards=shards, clock=clock, order_capacity=order_capacity)
        self.mult = np.ascontiguousarray(self.ledger.inst[:, INST_MULT])
        self.tiers, self.n_tiers = tier_table(self.tier_specs)
        self.inst_state = np.zeros(len(ins), np.int64)
        self.pm_mode = np.zeros(n_accounts, np.int64)  # MARGIN_MODES code per account
        self.portfolio = (None if portfolio is None else
                          PortfolioBook(portfolio, ins, self.opt, mccy, decimals[mccy]))
        self._is_option = np.array([x.kind == InstrumentKind.OPTION for x in ins], bool)
        self._now = 0  # the latest command timestamp seen (years to expiry under portfolio margin)
        self.open_lots = np.zeros((n_accounts, len(ins), 2), np.int64)
        self.orders = OrderTable(max(1024, order_capacity))
        self.taker_fee = np.full(len(ins), taker_fee_bps, np.int64)
        self.maker_fee = np.full(len(ins), maker_fee_bps, np.int64)
        self.threads = threads
        self.settle_mode = settle_mode
        self.interest_ppm = interest_ppm
        self.funding_cap = np.array([funding_cap_ppm if funding_cap_ppm is not None
                                     else default_cap_ppm(t.im_bps[0], t.mm_bps[0]) for t in self.tier_specs], np.int64)
        if funding_interval_ns is not None and funding_interval_ns <= 0:
            raise ValueError(f"funding_interval_ns must be positive (or None: no schedule), got {funding_interval_ns}")
        self.funding_interval_ns = funding_interval_ns
        self.funding_offset_ns = int(funding_offset_ns)
        self._perps = [x.id for x in ins if x.kind == InstrumentKind.PERPETUAL]
        self._funding_epoch: int | None = None  # index of the last funding time passed (schedule on)
        self.premium_sum = np.zeros(len(ins), np.int64)
        self.premium_n = np.zeros(len(ins), np.int64)
        self.keep_audit = keep_audit
        self.audit: list[np.ndarray] = []
        self.settle_modes: dict[str, int] = {}
        self._next_liq_oid = RESERVED_ORDER_ID
        self._band = np.array([[x.min_price, x.max_price if x.max_price is not None else np.iinfo(np.int64).max]
                               for x in ins], np.int64)
        self._cap_option_prices()
        if marks is not None:
            over = [i for i, m in enumerate(marks) if int(m) > self._band[i, 1]]
            if over:
                raise ValueError(f"initial marks above the highest price the engine accepts for instruments {over} "
                                 f"(max_price, or the bound that keeps option margin in int64)")
            self.ledger.set_marks(marks)

    # -- the batch path ---------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return self.ledger.n_accounts

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Sequence and run a batch of ``COMMAND_DTYPE`` commands; return its events in sequence order.

        Rejected commands (risk or matching) get a ``REJECTED`` event with a
        reason code and change nothing; the rest of the batch goes on.
        """
        cmds = self.exchange._as_commands(cmds)
        self.exchange.sequencer.stamp(cmds)
        return self.apply(cmds)

    def apply(self, cmds: np.ndarray) -> np.ndarray:
        """Run an already sequenced batch (replay path)."""
        cmds = self.exchange._as_commands(cmds)
        risk = np.isin(cmds["kind"], _RISK_KINDS)
        due = self._funding_due(cmds)
        if not risk.any() and not due:
            ev = self._orders(cmds)
            self._advance_clock(cmds)
            return ev
        out = []
        start = 0
        for r in sorted(set(np.flatnonzero(risk).tolist()) | due.keys()):
            if r > start:
                out.append(self._orders(cmds[start:r]))
                start = r
            for when in due.get(r, ()):
                out.extend(self._scheduled_funding(cmds[r], when))
            if risk[r]:
                # a risk command reads the time at its own timestamp, wherever the batch boundaries fall
                self._now = max(self._now, int(cmds["ts"][r]))
                out.append(self._risk_command(cmds[r]))
                start = r + 1
        if start < len(cmds):
            out.append(self._orders(cmds[start:]))
        self._advance_clock(cmds)
        out = [e for e in out if len(e)]
        return np.concatenate(out) if out else _EMPTY_EVENTS.copy()

    def _advance_clock(self, cmds: np.ndarray) -> None:
        """After a batch: the time the public reads (``free_balance``, ``margin_of``) use.  Order checks
        inside a batch use each command's own timestamp, risk commands theirs (see ``apply``)."""
        if len(cmds):
            self._now = max(self._now, int(cmds["ts"][-1]))

    def _orders(self, cmds: np.ndarray) -> np.ndarray:
        """Pre-trade risk, matching, reservations and settlement of a run of order commands."""
        n = len(cmds)
        self.orders.reserve(n)
        codes = np.empty(n, np.int64)
        led = self.ledger
        t = self.orders
        pm = self._portfolio_rows(cmds)
        if pm is None:
            n_rej = self._pretrade(cmds, codes, np.full((n, 2), -1, np.int64))
        else:
            # Portfolio-margin accounts: the other accounts' orders are checked in one kernel call; each
            # portfolio order then alone, with its account's initial margin (before and after it) computed
            # from the scenario grid on the state its earlier orders left.  An order's check reads only its
            # own account's state, so this gives the same answers as one pass in sequence order.
            rest = np.flatnonzero(~pm)
            sub = np.empty(len(rest), np.int64)
            n_rej = self._pretrade(cmds[rest], sub, np.full((len(rest), 2), -1, np.int64))
            codes[rest] = sub
            one = np.empty(1, np.int64)
            for r in np.flatnonzero(pm).tolist():
                n_rej += self._pretrade(cmds[r:r + 1], one, np.array([self._pm_override(cmds[r])], np.int64))
                codes[r] = one[0]
        t.filled += n - n_rej
        if n_rej:
            ok = codes == 0
            rejects = _reject_events(cmds[~ok], codes[~ok])
            cmds = cmds[ok]
        events = self._match(cmds) if len(cmds) else _EMPTY_EVENTS
        self._settle_trades(events)
        if n_rej:
            events = np.concatenate([events, rejects])
            events = events[np.argsort(events["seq"], kind="stable")]
        return events

    def _pretrade(self, cmds: np.ndarray, codes: np.ndarray, im_over: np.ndarray) -> int:
        led = self.ledger
        t = self.orders
        return int(pretrade(cmds, codes, t.tab, t.used, t.leaves, self.open_lots, led.positions, led.margin, led.marks,
                            self.mult, self.tiers, self.n_tiers, self.inst_state, led.n_accounts, self.spot,
                            led.balances, self.holds, led.mccy, self.opt, im_over))

    # -- portfolio margin ----------------------------------------------------------------------
    def set_margin_mode(self, account: int, mode: str) -> None:
        """Switch ``account`` to ``"portfolio"`` or ``"standard"`` margin (see ``shardex.risk.portfolio``).

        Portfolio margin replaces the margin of the account's margin-currency
        pool (perpetuals, futures, linear options) by the scenario grid of
        ``shardex.options.portfolio.portfolio_margin``; it needs the exchange
        to be built with ``portfolio=PortfolioMargin(...)``.  A switch that
        would leave the account's free equity negative under the new mode is
        refused with ``OrderRejected(INSUFFICIENT_MARGIN)`` and changes
        nothing.  The switch runs as a MARGIN_MODE command (``margin_mode``),
        sequenced like any other, so a durable engine journals it and a
        replay makes it at the same point.
        """
        self._check_margin_mode(account, mode)
        ev = self.process(_batch([margin_mode(account, mode)]))
        rejected = ev[ev["kind"] == EventKind.REJECTED]
        if len(rejected):
            led = self.ledger
            eq, im, _mm = self._margin_under(account, MARGIN_MODES[mode])
            raise OrderRejected(int(rejected["reason"][0]),
                                f"account {account}: {mode} margin would need {im} of equity {eq} (holds "
                                f"{int(self.holds[account, led.mccy])})")

    def _configure_margin_mode(self, account: int, mode: str) -> None:
        """Set ``account``'s mode as configuration, before any command (``open_risk``'s ``margin_modes``).

        Not a command: nothing is sequenced or journaled, so it is only for a
        fresh engine, whose accounts hold nothing yet.
        """
        self._check_margin_mode(account, mode)
        self.pm_mode[account] = MARGIN_MODES[mode]

    def _check_margin_mode(self, account: int, mode: str) -> None:
        """Raise for a mode name, an account or a portfolio choice that this exchange cannot take."""
        if mode not in MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {tuple(MARGIN_MODES)}, got {mode!r}")
        if not 0 <= account < self.n_accounts:
            raise KeyError(f"unknown account {account}")
        if mode == "portfolio" and self.portfolio is None:
            raise ValueError("portfolio margin needs RiskExchange(..., portfolio=PortfolioMargin(...))")

    def _margin_under(self, account: int, code: int) -> tuple[int, int, int]:
        """``margin_of(account)`` as it would be under margin mode ``code`` (nothing changes)."""
        old = int(self.pm_mode[account])
        self.pm_mode[account] = code
        try:
            return self.margin_of(account)
        finally:
            self.pm_mode[account] = old

    def _margin_mode_command(self, c: np.void) -> np.ndarray:
        """Run a MARGIN_MODE command: switch the account's mode unless its free equity would go negative."""
        a, code = int(c["account"]), int(c["qty"])
        if not 0 <= a < self.n_accounts:
            return _reject_one(c, Reason.UNKNOWN_ACCOUNT)
        if code not in MARGIN_MODES.values() or (code == MARGIN_MODES["portfolio"] and self.portfolio is None):
            return _reject_one(c, Reason.INVALID_COMMAND)
        led = self.ledger
        eq, im, _mm = self._margin_under(a, code)
        if eq - int(self.holds[a, led.mccy]) - im < 0 and (
                led.positions[a, :, POS_QTY].any() or self.open_lots[a].any()):
            return _reject_one(c, Reason.INSUFFICIENT_MARGIN)
        self.pm_mode[a] = code
        return _event(c, EventKind.MARGIN_MODE, account=a, qty=code)

    def margin_mode(self, account: int) -> str:
        """``"standard"`` or ``"portfolio"``."""
        return "portfolio" if self.pm_mode[account] else "standard"

    def _portfolio_rows(self, cmds: np.ndarray) -> np.ndarray | None:
        """Mask of the NEW/AMEND commands of portfolio-margin accounts, or None when there are none."""
        if self.portfolio is None or not self.pm_mode.any():
            return None
        acc = cmds["account"]
        ok = (acc >= 0) & (acc < self.n_accounts)
        pm = np.zeros(len(cmds), bool)
        pm[ok] = self.pm_mode[acc[ok]] != 0
        pm &= (cmds["kind"] == CommandKind.NEW) | (cmds["kind"] == CommandKind.AMEND)
        return pm if pm.any() else None

    def _pm_margins(self, a: int, now: int, extra: tuple[int, int, int] | None = None) -> tuple[int, int]:
        """``(initial, maintenance)`` of account ``a``'s margin-currency pool under portfolio margin.

        ``extra = (instrument, buy_lots, sell_lots)`` adds an order to the open orders.
        """
        led = self.ledger
        q = led.positions[a, :, POS_QTY]
        buys = self.open_lots[a, :, 0].copy()
        sells = self.open_lots[a, :, 1].copy()
        if extra is not None:
            buys[extra[0]] += extra[1]
            sells[extra[0]] += extra[2]
        buys[self._is_option] = 0  # an option buy holds its premium, all it can lose: not a scenario
        req = self.portfolio.requirements(np.stack([q + buys, q - sells, q]), led.marks, now)
        mm = int(np.ceil(req[2] * self.portfolio.config.maintenance_ratio))
        return int(max(req[0], req[1])), mm

    def _pm_override(self, c: np.void) -> tuple[int, int]:
        """The margin-currency initial margin of ``c``'s account before and after ``c``; -1 for standard."""
        a, i = int(c["account"]), int(c["instrument"])
        if not 0 <= i < len(self.instruments):
            return -1, -1
        spot = self.spot[i, S_MODE] == MODE_SPOT
        if not spot and self.opt[i, O_CCY] != self.ledger.mccy:
            return -1, -1  # an inverse option: its coin's pool keeps the standard rule
        now = int(c["ts"])
        im0, _ = self._pm_margins(a, now)
        extra = None
        if not spot and int(c["kind"]) == CommandKind.NEW and c["qty"] > 0 and c["side"] in (Side.BUY, Side.SELL):
            extra = (i, int(c["qty"]), 0) if c["side"] == Side.BUY else (i, 0, int(c["qty"]))
        elif not spot and int(c["kind"]) == CommandKind.AMEND:
            t = self.orders
            s = table_find(t.tab, t.used, a, i, int(c["order_id"]))
            if s >= 0 and c["qty"] > t.leaves[s]:
                more = int(c["qty"] - t.leaves[s])
                extra = (i, more, 0) if t.tab[s, 3] == Side.BUY else (i, 0, more)
        im1 = self._pm_margins(a, now, extra)[0] if extra is not None else im0
        return im0, im1

    def _match(self, cmds: np.ndarray) -> np.ndarray:
        events = self.exchange.apply(cmds)
        t = self.orders
        apply_order_events(events, np.ascontiguousarray(cmds["seq"]), np.ascontiguousarray(cmds["kind"]).astype(np.int64),
                           t.tab, t.used, t.leaves, self.open_lots, self.spot, self.holds)
        return events

    def _settle(self, txns: np.ndarray):
        res = self.ledger.settle(txns, threads=self.threads, mode=self.settle_mode)
        if res.codes.any():
            bad = int(np.flatnonzero(res.codes)[0])
            raise RiskInvariantError(f"settlement refused transaction {bad} ({txns[bad]}) with "
                                     f"{Reason(int(res.codes[bad])).name}: the risk layer built it wrong")
        self.settle_modes[res.mode] = self.settle_modes.get(res.mode, 0) + 1
        if self.keep_audit:
            self.audit.append(res.audit)
        return res

    def _settle_trades(self, events: np.ndarray) -> None:
        tr = events[events["kind"] == EventKind.TRADE]
        if not len(tr):
            return
        # A self-trade (allowed with STP NONE) moves nothing between accounts: no settlement.
        tr = tr[tr["account"] != tr["maker_account"]]
        if not len(tr):
            return
        i = tr["instrument"].astype(np.int64)
        qty = np.where(tr["side"] == Side.BUY, tr["qty"], -tr["qty"])
        spot = self.spot[i, S_MODE] == MODE_SPOT
        if not spot.any():
            self._settle(trade_txns(tr["account"], tr["maker_account"], i, tr["price"], qty,
                                    taker_fee_bps=self.taker_fee[i], maker_fee_bps=self.maker_fee[i],
                                    trade_id=tr["trade_id"], seq=tr["seq"]))
            return
        # One batch in event order: spot and derivative fills of one account
        # may share the margin currency, and the audit trail follows the tape.
        txns = np.empty(len(tr), trade_txns(0, 1, 0, 1, 1).dtype)
        d = ~spot
        txns[d] = trade_txns(tr["account"][d], tr["maker_account"][d], i[d], tr["price"][d], qty[d],
                             taker_fee_bps=self.taker_fee[i[d]], maker_fee_bps=self.maker_fee[i[d]],
                             trade_id=tr["trade_id"][d], seq=tr["seq"][d])
        row = self.spot[i[spot]]
        txns[spot] = spot_trade_txns(tr["account"][spot], tr["maker_account"][spot], row[:, S_BASE], row[:, S_QUOTE],
                                     qty[spot] * row[:, S_BASE_LOT],
                                     tr["price"][spot] * tr["qty"][spot] * row[:, S_QUOTE_TL], tr["price"][spot],
                                     taker_fee_bps=self.taker_fee[i[spot]], maker_fee_bps=self.maker_fee[i[spot]],
                                     trade_id=tr["trade_id"][spot], seq=tr["seq"][spot])
        self._settle(txns)

    # -- risk commands --------------------------------------------------------------------
    def _risk_command(self, c: np.void) -> np.ndarray:
        kind = int(c["kind"])
        if kind in (CommandKind.DEPOSIT, CommandKind.WITHDRAW):
            return self._transfer(c, kind)
        if kind == CommandKind.MARGIN_MODE:
            return self._margin_mode_command(c)
        i = int(c["instrument"])
        if not 0 <= i < len(self.instruments):
            return _reject_one(c, Reason.UNKNOWN_INSTRUMENT)
        if self.inst_state[i] == ST_EXPIRED:
            return _reject_one(c, Reason.EXPIRY)
        if kind == CommandKind.MARK_PRICE:
            return self._mark(c, i)
        if kind == CommandKind.FUNDING:
            if self.funding_interval_ns is not None:
                return _reject_one(c, Reason.INVALID_COMMAND)  # the schedule pays: a command would pay twice
            return self._funding(c, i)
        return self._expire(c, i)

    def free_balance(self, account: int, currency: int) -> int:
        """What ``account`` may withdraw of ``currency`` (or hold for a spot order), minor units.

        ``balance - holds``, and no more than ``equity - initial margin
        including open orders - holds`` of the currency's margin pool (the
        margin currency: tiered margin of perpetuals and futures, linear
        options; a coin: its inverse options).
        """
        led = self.ledger
        im_over = -1
        if self.pm_mode[account] and currency == led.mccy:
            im_over = self._pm_margins(account, self._now)[0]
        return int(spot_free(account, currency, led.balances, self.holds, led.positions, self.open_lots, led.margin,
                             led.marks, self.mult, self.tiers, self.n_tiers, self.opt, led.mccy, im_over))

    def margin_of(self, account: int, currency: int | str | None = None) -> tuple[int, int, int]:
        """``(equity, initial, maintenance)`` of one account's margin pool, minor units.

        ``currency``: the pool (default: the margin currency; an inverse
        option's coin has its own).  The initial margin counts open orders;
        spot holds and option-buy holds are not in it (they are spent
        equity: see ``free_balance``).
        """
        led = self.ledger
        ccy = led.mccy if currency is None else led.currency_index(currency)
        if not 0 <= account < self.n_accounts:
            raise KeyError(f"unknown account {account}")
        im, mm = self._pool_margin(account, ccy)
        return self._pool_equity(account, ccy), im, mm

    def _pool_margin(self, a: int, ccy: int) -> tuple[int, int]:
        led = self.ledger
        if ccy == led.mccy and self.pm_mode[a]:
            return self._pm_margins(a, self._now)
        im, mm = account_margin(led.positions[a], self.open_lots[a], led.marks, self.mult, self.tiers, self.n_tiers,
                                self.opt, ccy, -1, 0, 0)
        return int(im), int(mm)

    def _transfer(self, c: np.void, kind: int) -> np.ndarray:
        a, ccy, amount = int(c["account"]), int(c["instrument"]), int(c["qty"])
        if not 0 <= a < self.n_accounts:
            return _reject_one(c, Reason.UNKNOWN_ACCOUNT)
        if not 0 <= ccy < len(self.ledger.currencies):
            return _reject_one(c, Reason.UNKNOWN_CURRENCY)
        if amount <= 0:
            return _reject_one(c, Reason.QTY_NOT_POSITIVE)
        if kind == CommandKind.WITHDRAW:
            if amount > self.free_balance(a, ccy):
                return _reject_one(c, Reason.INSUFFICIENT_BALANCE)
            txns = withdraw_txns(a, ccy, amount, seq=c["seq"])
            txns["flags"] = FLAG_MARGIN_CHECKED  # checked above under this account's own margin model
        else:
            txns = deposit_txns(a, ccy, amount, seq=c["seq"])
        self._settle(txns)
        return _event(c, EventKind.BALANCE, account=a, instrument=ccy,
                      qty=amount if kind == CommandKind.DEPOSIT else -amount, leaves=self.ledger.balances[a, ccy])

    def _mark(self, c: np.void, i: int) -> np.ndarray:
        p, index = int(c["price"]), int(c["stop_price"])
        if not self._in_band(i, p) or index < 0:
            return _reject_one(c, Reason.INVALID_MARK_PRICE)
        marks = self.ledger.marks.copy()
        marks[i] = p
        self.ledger.set_marks(marks)
        if index > 0:
            self.premium_sum[i] += premium_ppm(p, index)
            self.premium_n[i] += 1
        return self._liquidations(c)

    def _liquidations(self, c: np.void) -> np.ndarray:
        """Liquidate every account pool below maintenance margin, in account order, until none is left."""
        led = self.ledger
        out: list[np.ndarray] = []
        for _ in range(self.n_accounts):
            cands = below_maintenance(led.positions, self.open_lots, led.balances, led.margin, led.marks, self.mult,
                                      self.tiers, self.n_tiers, self.opt, led.mccy, self.pm_mode)
            pm = [a for a in np.flatnonzero(self.pm_mode).tolist() if self._pool_maintenance(a, led.mccy)[0]]
            if pm:
                cands = np.union1d(cands, pm)
            if not len(cands):
                break
            for a in cands.tolist():
                for ccy in range(len(led.currencies)):
                    below, _eq, mm = self._pool_maintenance(a, ccy)  # earlier liquidations may have changed it
                    if below:
                        self._liquidate(a, ccy, mm, c, out)
        return np.concatenate(out) if out else _EMPTY_EVENTS.copy()

    def _pool_maintenance(self, a: int, ccy: int) -> tuple[bool, int, int]:
        """``(below, equity, maintenance)`` of account ``a``'s ``ccy`` pool; ``below`` needs a position in it."""
        led = self.ledger
        if ccy == led.mccy and self.pm_mode[a]:
            eq = self._pool_equity(a, ccy)
            if not (led.positions[a, :, POS_QTY] * self.portfolio.members).any():
                return False, eq, 0
            mm = self._pm_margins(a, self._now)[1]
            return eq < mm, eq, mm
        below, eq, mm = pool_below(a, ccy, led.positions, self.open_lots, led.balances, led.margin, led.marks,
                                   self.mult, self.tiers, self.n_tiers, self.opt, led.mccy)
        return bool(below), int(eq), int(mm)

    def _pool_equity(self, a: int, ccy: int) -> int:
        led = self.ledger
        return int(pool_equity(a, ccy, led.balances, led.positions, led.margin, led.marks, self.mult, self.opt,
                               led.mccy))

    def _liquidate(self, a: int, ccy: int, mm: int, c: np.void, out: list[np.ndarray]) -> None:
        """Liquidate account ``a``'s ``ccy`` pool: cancel, close into the book, ADL, insurance fund."""
        led = self.ledger
        in_pool = self.opt[:, O_CCY] == ccy
        equity = self._pool_equity(a, ccy)
        out.append(_event(c, EventKind.LIQUIDATION, account=a, instrument=-1, qty=equity, leaves=mm,
                          step=LiqStep.START, trade_id=ccy))
        # 1. cancel the account's orders in this pool (and, for the margin currency's pool, its spot orders:
        #    their holds go back); orders settling in another pool are left alone
        mine = in_pool | (self.opt[:, O_CCY] == -1) if ccy == led.mccy else in_pool
        if self.open_lots[a].any() or self.holds[a].any():
            ev = self._match(self._synthetic(c, [mass_cancel(a, int(i)) for i in np.flatnonzero(mine)]))
            ev["reason"][ev["kind"] == EventKind.CANCELLED] = Reason.LIQUIDATION
            out.append(ev)
        # 2. IOC limit orders at the bankruptcy price, past it by what the fund can absorb
        bp, lim = close_prices(led.positions[a] * in_pool[:, None], equity, int(led.insurance[ccy]), led.marks,
                               self.mult)
        recs = []
        for i in np.flatnonzero(led.positions[a, :, POS_QTY] * in_pool).tolist():
            q = int(led.positions[a, i, POS_QTY])
            price = int(min(max(lim[i], self._band[i, 0]), self._band[i, 1]))
            side = Side.SELL if q > 0 else Side.BUY
            oid = self._next_liq_oid
            self._next_liq_oid += 1
            recs.append(new_order(i, side, abs(q), price, order_id=oid, account=a, tif=TimeInForce.IOC))
            out.append(_event(c, EventKind.LIQUIDATION, account=a, instrument=i, price=price, qty=abs(q),
                              leaves=int(bp[i]), side=side, order_id=oid, step=LiqStep.ORDER, trade_id=ccy))
        if recs:
            ev = self._match(self._synthetic(c, recs))
            self._settle_trades(ev)
            out.append(ev)
        # 3. auto-deleverage what the book did not take, at the bankruptcy price
        bp, _ = close_prices(led.positions[a] * in_pool[:, None], self._pool_equity(a, ccy), 0, led.marks, self.mult)
        for i in np.flatnonzero(led.positions[a, :, POS_QTY] * in_pool).tolist():
            q = int(led.positions[a, i, POS_QTY])
            ranked = adl_ranking(led.positions, led.margin, led.marks, self.mult, i, -1 if q > 0 else 1, a)
            left = abs(q)
            cps, lots = [], []
            for cp in ranked.tolist():
                k = min(left, abs(int(led.positions[cp, i, POS_QTY])))
                cps.append(cp)
                lots.append(k)
                left -= k
                if left == 0:
                    break
            sign = -1 if q > 0 else 1  # the liquidated account's side: sells a long
            self._settle(trade_txns(np.full(len(cps), a), np.array(cps, np.int64), i, int(bp[i]),
                                    sign * np.array(lots, np.int64), trade_id=-int(c["seq"]), seq=c["seq"]))
            for cp, k in zip(cps, lots):
                out.append(_event(c, EventKind.LIQUIDATION, account=cp, instrument=i, price=int(bp[i]), qty=k,
                                  maker_account=a, side=Side.BUY if sign < 0 else Side.SELL, step=LiqStep.ADL,
                                  trade_id=ccy))
        # 4. the insurance fund takes the surplus (up to the maintenance margin) or covers the deficit
        bal = self._pool_equity(a, ccy)
        fund = int(led.insurance[ccy])
        delta = min(bal, int(mm)) if bal > 0 else -min(-bal, fund)
        if delta:
            txn = empty_txns(1)
            txn["kind"] = TxnKind.INSURANCE
            txn["seq"] = c["seq"]
            txn["a"] = a
            txn["decl"][0, 0] = a
            txn["currency"] = ccy
            txn["amount"] = delta
            txn["ref"] = -int(c["seq"])
            self._settle(txn)
            out.append(_event(c, EventKind.LIQUIDATION, account=a, instrument=-1, qty=delta,
                              leaves=int(led.insurance[ccy]), step=LiqStep.INSURANCE, trade_id=ccy))
        bal = self._pool_equity(a, ccy)
        out.append(_event(c, EventKind.LIQUIDATION, account=a, instrument=-1, qty=bal, leaves=max(-bal, 0),
                          step=LiqStep.DONE, trade_id=ccy))

    def _funding(self, c: np.void, i: int) -> np.ndarray:
        if self.instruments[i].kind != InstrumentKind.PERPETUAL:
            return _reject_one(c, Reason.INVALID_COMMAND)
        led = self.ledger
        rate = int(funding_rate_ppm(self.premium_sum[i], self.premium_n[i], self.interest_ppm, PREMIUM_CLAMP_PPM,
                                    self.funding_cap[i]))
        self.premium_sum[i] = 0
        self.premium_n[i] = 0
        who = holders(led.positions, i)
        if rate == 0 or not len(who):
            return _EMPTY_EVENTS.copy()
        res = self._settle(funding_txns(who, i, rate, seq=c["seq"]))
        aud = res.audit[(res.audit["account"] >= 0) & (res.audit["cause"] == AuditCause.FUNDING)]
        ev = np.zeros(len(aud), EVENT_DTYPE)
        ev["seq"], ev["ts"], ev["instrument"], ev["kind"] = c["seq"], c["ts"], i, EventKind.FUNDING
        ev["account"], ev["qty"], ev["leaves"], ev["price"] = aud["account"], aud["delta"], aud["balance_after"], rate
        # A payment can take a payer below maintenance margin: check now, as a
        # mark would, rather than leave the account standing until the next mark.
        return np.concatenate([ev, self._liquidations(c)])

    def _in_band(self, i: int, p: int) -> bool:
        """Whether ``p`` ticks is a price the engine accepts for instrument ``i`` (marks, settlement prices)."""
        lo, hi = self._band[i]
        return 0 < p and lo <= p <= hi

    def _cap_option_prices(self) -> None:
        """Lower the accepted price band of options and their underlyings to what the margin and expiry
        arithmetic holds in int64 (numba does not check overflow): ``bps * S * O_NUM`` for a linear option,
        ``S * O_NUM`` for an inverse one, ``mark * mult * 10_000`` for the option's own value."""
        limit = 2**62
        for x in self.instruments:
            if x.kind != InstrumentKind.OPTION:
                continue
            row = self.opt[x.id]
            num = max(int(row[O_NUM]), 1)
            bps = max(int(row[O_BASE_BPS]), int(row[O_FLOOR_BPS]), int(row[O_MM_BPS]), 10_000)
            u = int(row[O_UNDER])
            cap_u = limit // num if row[O_INV] else limit // (bps * num)
            self._band[u, 1] = min(self._band[u, 1], cap_u)
            self._band[x.id, 1] = min(self._band[x.id, 1], limit // (10_000 * max(int(self.mult[x.id]), 1)))

    def _funding_due(self, cmds: np.ndarray) -> dict[int, list[int]]:
        """Rows of ``cmds`` at which funding times fall due: row -> the funding times passed before it.

        A funding time ``t`` is paid before the first command with ``ts >= t``.
        The first command ever seen only starts the schedule.
        """
        iv = self.funding_interval_ns
        if iv is None or not len(cmds) or not self._perps:
            return {}
        epoch = (cmds["ts"].astype(np.int64) - self.funding_offset_ns) // iv
        if self._funding_epoch is None:
            self._funding_epoch = int(epoch[0])
        prev = np.maximum.accumulate(np.concatenate(([self._funding_epoch], epoch[:-1])))
        rows = np.flatnonzero(epoch > prev)
        self._funding_epoch = max(self._funding_epoch, int(epoch.max()))
        return {int(r): [int(k) * iv + self.funding_offset_ns for k in range(int(prev[r]) + 1, int(epoch[r]) + 1)]
                for r in rows}

    def _scheduled_funding(self, c: np.void, when: int) -> list[np.ndarray]:
        """Every perpetual's funding for the interval ending at ``when``; events carry that time and c's seq."""
        out = []
        for i in self._perps:
            f = np.zeros(1, COMMAND_DTYPE)[0]
            f["kind"], f["instrument"], f["seq"], f["ts"] = CommandKind.FUNDING, i, c["seq"], when
            ev = self._funding(f, i)
            if len(ev):
                out.append(ev)
        return out

    def _expire(self, c: np.void, i: int) -> np.ndarray:
        if self.instruments[i].kind == InstrumentKind.OPTION:
            return self._expire_option(c, i)
        if self.instruments[i].kind != InstrumentKind.FUTURE:
            return _reject_one(c, Reason.INVALID_COMMAND)
        p = int(c["price"])
        if not self._in_band(i, p):
            return _reject_one(c, Reason.INVALID_MARK_PRICE)
        led = self.ledger
        out = self._cancel_for_expiry(c, i)
        marks = led.marks.copy()
        marks[i] = p
        led.set_marks(marks)
        self.inst_state[i] = ST_EXPIRED
        before = led.positions[:, i, POS_QTY].copy()
        longs, shorts, lots = pair_positions(led.positions, i)
        if len(lots):
            self._settle(trade_txns(longs, shorts, i, p, -lots, trade_id=-int(c["seq"]), seq=c["seq"]))
        who = np.flatnonzero(before)
        ev = np.zeros(len(who), EVENT_DTYPE)
        ev["seq"], ev["ts"], ev["instrument"], ev["kind"] = c["seq"], c["ts"], i, EventKind.SETTLEMENT
        ev["account"], ev["price"], ev["qty"], ev["leaves"] = who, p, before[who], led.balances[who, led.mccy]
        out.append(ev)
        out.append(self._liquidations(c))  # a settled loss can leave an account's other positions under-margined
        return np.concatenate(out)

    def _cancel_for_expiry(self, c: np.void, i: int) -> list[np.ndarray]:
        accts = np.flatnonzero(self.open_lots[:, i].any(axis=1))
        if not len(accts):
            return []
        ev = self._match(self._synthetic(c, [mass_cancel(int(a), i) for a in accts]))
        ev["reason"][ev["kind"] == EventKind.CANCELLED] = Reason.EXPIRY
        return [ev]

    def _expire_option(self, c: np.void, i: int) -> np.ndarray:
        """Settle option ``i`` in cash at the underlying's settlement price ``c["price"]`` (its ticks).

        Open orders are cancelled (``EXPIRY``), the option refuses further
        orders and marks, and every position is closed against the insurance
        fund at its intrinsic value per lot (``shardex.risk.options.expiry_value``):
        longs receive it rounded down, shorts pay it rounded up, the fund keeps
        the residue.  One ``SETTLEMENT`` event per account (``maker_leaves`` =
        the cash it received, negative when it paid), and one for the
        insurance fund (account ``INSURANCE_FUND``) when the residue is not 0.
        """
        p = int(c["price"])
        if not self._in_band(int(self.opt[i, O_UNDER]), p):
            return _reject_one(c, Reason.INVALID_MARK_PRICE)
        led = self.ledger
        ccy = int(self.opt[i, O_CCY])
        out = self._cancel_for_expiry(c, i)
        self.inst_state[i] = ST_EXPIRED
        before = led.positions[:, i, POS_QTY].copy()
        who = np.flatnonzero(before)
        paid = np.zeros(len(who), np.int64)
        if len(who):
            num, den = expiry_value(self.opt[i], p)
            res = self._settle(option_expiry_txns(who, i, num, den, seq=c["seq"]))
            aud = res.audit[(res.audit["account"] >= 0) & (res.audit["cause"] == AuditCause.OPTION_EXPIRY)]
            paid[np.searchsorted(who, aud["account"])] = aud["delta"]
        ev = np.zeros(len(who), EVENT_DTYPE)
        ev["seq"], ev["ts"], ev["instrument"], ev["kind"] = c["seq"], c["ts"], i, EventKind.SETTLEMENT
        ev["account"], ev["price"], ev["qty"], ev["leaves"] = who, p, before[who], led.balances[who, ccy]
        ev["maker_leaves"] = paid
        out.append(ev)
        residue = -int(paid.sum())
        if residue:
            out.append(_event(c, EventKind.SETTLEMENT, account=INSURANCE_FUND, instrument=i, price=p,
                              leaves=int(led.insurance[ccy]), maker_leaves=residue))
        out.append(self._liquidations(c))  # a settled loss can leave an account's other positions under-margined
        return np.concatenate(out)

    def _synthetic(self, c: np.void, recs: list[tuple]) -> np.ndarray:
        """Commands the risk layer issues (cancels, liquidation orders), stamped with ``c``'s seq and ts."""
        cmds = _batch(recs)
        cmds["seq"] = c["seq"]
        cmds["ts"] = c["ts"]
        return cmds

    # -- decimal conveniences ---------------------------------------------------------------
    def set_mark(self, instrument: int | str, mark: object, index: object = None) -> np.ndarray:
        """Apply a mark price given as a decimal; return the events (liquidations).

        Raises ``OrderRejected`` with ``Reason.INVALID_MARK_PRICE`` for a mark
        that is off the tick grid, zero or negative.
        """
        ins = self.exchange.instrument(instrument)
        try:
            m = ins.price_to_ticks(mark)
            x = 0 if index is None else ins.price_to_ticks(index)
        except OffGridError as exc:
            raise OrderRejected(Reason.INVALID_MARK_PRICE, f"mark price rejected: {exc}") from None
        events = self.process(_batch([mark_price(ins.id, m, x)]))
        rej = events[events["kind"] == EventKind.REJECTED]
        if len(rej):
            code = int(rej["reason"][0])
            raise OrderRejected(code, f"mark price {mark} for {ins.symbol} rejected: {Reason(code).name}")
        return events

    # -- identity and invariants -------------------------------------------------------------
    def state_hash(self) -> str:
        """SHA-256 over the books, the ledger and the reservations."""
        import hashlib

        h = hashlib.sha256()
        h.update(self.exchange.state_hash().encode())
        h.update(self.ledger.state_hash().encode())
        h.update(self.open_lots.tobytes())
        h.update(self.holds.tobytes())
        h.update(self.orders.live_orders().tobytes())
        h.update(self.inst_state.tobytes())
        h.update(self.pm_mode.tobytes())
        # (the latest timestamp seen, ``_now``, is the sequencer's: not state of its own)
        h.update(np.array([-1 if self._funding_epoch is None else self._funding_epoch, self._next_liq_oid],
                          np.int64).tobytes())
        h.update(self.premium_sum.tobytes())
        h.update(self.premium_n.tobytes())
        return h.hexdigest()

    def check(self) -> None:
        """Validate the invariants; raise ``LedgerInvariantError`` / ``RiskInvariantError``.

        * the ledger's (money conserved, positions net to zero, margins)
        * ``open_lots`` is the sum of the live reservations
        * every resting order of the books is reserved at its open quantity
        * ``holds`` is the sum of the live spot orders' and option buys' holds, and no hold
          exceeds its balance (except for an account holding a derivative
          position, whose losses may eat the margin currency)

        Complexity: O(accounts * instruments + orders).
        """
        self.ledger.check()
        live = self.orders.live_orders()
        mode = self.spot[live[:, 1], S_MODE]
        is_spot = mode == MODE_SPOT
        holding = is_spot | ((mode == MODE_OPTION) & (live[:, 3] == Side.BUY))
        held = np.zeros_like(self.holds)
        for a, i, _oid, side, price, lots in live[holding].tolist():
            row = self.spot[i]
            held[a, row[S_QUOTE] if side == Side.BUY else row[S_BASE]] += hold_amount(row, side, price, lots)
        if not np.array_equal(held, self.holds):
            a, c = np.argwhere(held != self.holds)[0]
            raise RiskInvariantError(f"holds of account {a} in currency {c}: {self.holds[a, c]} != the live spot "
                                     f"orders' {held[a, c]}")
        # A balance can go negative through a liquidation deficit (no socialized
        # loss yet); that is not a hold problem, so only accounts that hold
        # something are checked.
        over = ((self.holds > 0) & (self.holds > self.ledger.balances)
                & ~self.ledger.positions[:, :, POS_QTY].any(axis=1)[:, None])
        if over.any():
            a, c = np.argwhere(over)[0]
            raise RiskInvariantError(f"account {a} holds {self.holds[a, c]} of currency {c} but has only "
                                     f"{self.ledger.balances[a, c]}")
        live = live[~is_spot]
        want = np.zeros_like(self.open_lots)
        np.add.at(want, (live[:, 0], live[:, 1], live[:, 3]), live[:, 5])
        if not np.array_equal(want, self.open_lots):
            a, i, s = np.argwhere(want != self.open_lots)[0]
            raise RiskInvariantError(f"open lots of account {a} on {i} side {s}: {self.open_lots[a, i, s]} "
                                     f"!= reserved {want[a, i, s]}")
        keys = {(int(r[0]), int(r[1]), int(r[2])): int(r[5]) for r in self.orders.live_orders()}
        for ins in self.instruments:
            for row in self.exchange.l3(ins.id):
                key = (int(row[3]), ins.id, int(row[2]))
                if keys.get(key) != int(row[4] + row[5]):
                    raise RiskInvariantError(f"resting order {key} has {int(row[4] + row[5])} lots open but "
                                             f"{keys.get(key)} reserved")

    @classmethod
    def open(cls, path, instruments: Iterable[Instrument], n_accounts: int, **options) -> RiskExchange:
        """The durable form: journal under ``path``, recovered on open (``shardex.risk.durable.open_risk``)."""
        from shardex.risk.durable import open_risk

        return open_risk(path, instruments, n_accounts, **options)

    def close(self) -> None:
        """Stop the matching shard threads."""
        self.exchange.close()

    def __enter__(self) -> RiskExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ccy_index(currencies: Sequence[str], currency: str | int) -> int:
    return currency if isinstance(currency, (int, np.integer)) else list(currencies).index(currency)


def _premium_spec(x: Instrument, ccy: int, decimals: Sequence[int]) -> PremiumContract:
    """The ledger's spec of option ``x``: one tick on one lot in minor units of its settlement currency."""
    mult = LinearPerp.from_instrument(x, decimals[ccy]).multiplier  # same rule: tick * lot * size * 10**dec
    return PremiumContract(mult, ccy)


def _event(c: np.void, kind: int, *, account: int = 0, instrument: int = 0, price: int = 0, qty: int = 0,
           leaves: int = 0, maker_account: int = 0, side: int = 0, order_id: int = 0, step: int = 0,
           trade_id: int = 0, maker_leaves: int = 0) -> np.ndarray:
    ev = np.zeros(1, EVENT_DTYPE)
    ev["seq"], ev["ts"], ev["kind"] = c["seq"], c["ts"], kind
    ev["account"], ev["instrument"], ev["price"], ev["qty"], ev["leaves"] = account, instrument, price, qty, leaves
    ev["maker_account"], ev["side"], ev["order_id"], ev["maker_order_id"] = maker_account, side, order_id, step
    ev["trade_id"], ev["maker_leaves"] = trade_id, maker_leaves
    if kind == EventKind.LIQUIDATION:
        ev["reason"] = Reason.LIQUIDATION
    return ev


def _reject_one(c: np.void, reason: int) -> np.ndarray:
    return _reject_events(np.array([c], COMMAND_DTYPE), np.array([int(reason)]))


def _reject_events(cmds: np.ndarray, codes: np.ndarray) -> np.ndarray:
    ev = np.zeros(len(cmds), EVENT_DTYPE)
    for f in ("seq", "ts", "order_id", "account", "price", "qty", "instrument", "side"):
        ev[f] = cmds[f]
    ev["kind"] = EventKind.REJECTED
    ev["reason"] = codes
    return ev
