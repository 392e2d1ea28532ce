"""Margin-mode switches are commands: sequenced, journaled, replayed at the same point, rejected with a code."""

from __future__ import annotations

import numpy as np

from shardex.engine.commands import batch
from shardex.risk import PortfolioMargin
from shardex.risk.durable import open_risk
from shardex.risk.engine import _rec, margin_mode
from shardex.schema import CommandKind, EventKind

from .helpers import reasons
from .option_helpers import CALL, INSTRUMENTS, PERP, USD, fund, option_venue, venue_options
from .test_portfolio_margin import _hedge, pm_venue, portfolio_and_standard


def test_the_command_switches_the_mode_and_reports_it():
    rx = pm_venue()
    ev = rx.process(batch([margin_mode(1, "portfolio")]))
    assert ev["kind"].tolist() == [EventKind.MARGIN_MODE] and int(ev["account"][0]) == 1 and int(ev["qty"][0]) == 1
    assert rx.margin_mode(1) == "portfolio"
    ev = rx.process(batch([margin_mode(1, "standard")]))
    assert ev["kind"].tolist() == [EventKind.MARGIN_MODE] and rx.margin_mode(1) == "standard"


def test_bad_switches_are_rejected_with_a_code_and_change_nothing():
    rx = portfolio_and_standard(500, accounts=(1,))  # enough for the hedge under portfolio margin only
    assert reasons(_hedge(rx, 1)) == []
    cases = [
        (margin_mode(1, "standard"), "INSUFFICIENT_MARGIN"),  # would leave account 1 short of initial margin
        (margin_mode(99, "portfolio"), "UNKNOWN_ACCOUNT"),
        (_rec(CommandKind.MARGIN_MODE, 2, qty=7), "INVALID_COMMAND"),  # no such mode
    ]
    for rec, why in cases:
        before = rx.ledger.state_hash(), rx.pm_mode.copy()
        assert reasons(rx.process(batch([rec]))) == [why]
        assert (rx.ledger.state_hash(), rx.pm_mode.tolist()) == (before[0], before[1].tolist())
    assert rx.margin_mode(1) == "portfolio"
    plain = option_venue()  # built without PortfolioMargin: portfolio margin cannot be chosen
    assert reasons(plain.process(batch([margin_mode(1, "portfolio")]))) == ["INVALID_COMMAND"]
    rx.check()


def test_a_durable_switch_is_journaled_and_replayed_at_the_same_point(tmp_path):
    def reopen():
        return open_risk(tmp_path, INSTRUMENTS, 6, snapshot_every=0, snapshot_on_close=False,
                         **venue_options(portfolio=PortfolioMargin(vol=0.6)))

    with reopen() as rx:
        fund(rx, 5, usdt=10**6 * USD)
        fund(rx, 1, usdt=500 * USD)
        rx.set_margin_mode(1, "portfolio")  # a command: journaled
        assert reasons(_hedge(rx, 1)) == []  # accepted only because account 1 is on portfolio margin now
        want = rx.state_hash()
    with reopen() as again:  # no snapshot: everything comes back from the journal
        assert again.recovered_commands > 0
        assert again.margin_mode(1) == "portfolio"
        assert again.state_hash() == want
        assert int(np.count_nonzero(again.ledger.positions[1, [CALL.id, PERP.id], 0])) == 2
        again.check()
