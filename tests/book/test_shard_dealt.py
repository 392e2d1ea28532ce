"""Shards that run only the commands dealt to them (``merge.deal`` and ``process_commands_marked(dealt=True)``).

Rules: a command of an instrument on another shard leaves no trace; one of
an unlisted instrument is rejected exactly once (by shard 0); a mass cancel
of every instrument (-1) runs on every shard and its events come out in
instrument order, as on one shard.
"""

from __future__ import annotations

import numpy as np
import pytest

from shardex import Exchange, Instrument
from shardex.book.shard import MatchingShard
from shardex.engine.commands import batch, cancel, mass_cancel, new_order
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.merge import deal
from shardex.schema import EventKind, Reason

from .helpers import check

SHARDS = (1, 2, 3, 4)


def _stamped(records, first_seq=1):
    cmds = batch(records)
    cmds["seq"] = np.arange(first_seq, first_seq + len(cmds))
    cmds["ts"] = 7
    return cmds


def _two_shards():
    """Shard 0 holds instrument 0, shard 1 instrument 1; ids 2 and up are listed nowhere."""
    return MatchingShard([Instrument(0, "A")]), MatchingShard([Instrument(1, "B")])


def _run(shards, cmds):
    """Deal ``cmds`` as a two-shard engine does (instrument 0 to shard 0, 1 to shard 1) and run each shard's list."""
    todo = np.zeros((2, len(cmds)), np.int64)
    counts = np.zeros(2, np.int64)
    deal(cmds, np.array([0, 1]), todo, counts, 0, 0)
    return [sh.process_into(cmds, todo=todo[s, :counts[s]]) for s, sh in enumerate(shards)]


def test_a_foreign_command_leaves_no_trace():
    a, b = _two_shards()
    cmds = _stamped([new_order(1, "buy", 5, 100, order_id=1, account=1), cancel(1, 1, account=1),
                     new_order(1, "sell", 5, 0, order_id=2, account=1, type="market", tif="ioc")])
    na, nb = _run((a, b), cmds)
    assert na == 0 and nb == 4  # accepted, cancelled, accepted and cancelled (nothing to fill the IOC)
    assert a.book_stats(0)["orders"] == 0


def test_unlisted_instruments_are_rejected_once_by_shard_zero():
    a, b = _two_shards()
    cmds = _stamped([new_order(2, "buy", 5, 100, order_id=1), new_order(99, "buy", 5, 100, order_id=2),
                     new_order(-5, "buy", 5, 100, order_id=3), cancel(-1, 9)])
    n, nb = _run((a, b), cmds)
    ev = a.events_buffer[:n]
    assert [int(e["order_id"]) for e in ev] == [1, 2, 3, 9]
    assert set(ev["kind"].tolist()) == {EventKind.REJECTED}
    assert set(ev["reason"].tolist()) == {Reason.UNKNOWN_INSTRUMENT}
    assert nb == 0


def test_an_invalid_command_kind_is_rejected_by_its_instruments_shard_only():
    a, b = _two_shards()
    cmds = _stamped([new_order(1, "buy", 5, 100, order_id=1)])
    cmds["kind"] = 9
    na, n = _run((a, b), cmds)
    assert na == 0
    assert n == 1 and int(b.events_buffer[0]["reason"]) == Reason.INVALID_COMMAND


def test_a_mass_cancel_of_every_instrument_runs_on_every_shard():
    a, b = _two_shards()
    cmds = _stamped([new_order(0, "buy", 5, 100, order_id=1, account=3),
                     new_order(1, "buy", 5, 100, order_id=2, account=3), mass_cancel(3)])
    na, nb = _run((a, b), cmds)
    assert [EventKind(int(k)).name for k in a.events_buffer[:na]["kind"]] == ["ACCEPTED", "CANCELLED"]
    assert [EventKind(int(k)).name for k in b.events_buffer[:nb]["kind"]] == ["ACCEPTED", "CANCELLED"]
    assert a.book_stats(0)["orders"] == b.book_stats(1)["orders"] == 0


@pytest.mark.parametrize("shards", SHARDS[1:])
def test_every_rule_through_the_exchange_matches_one_shard(shards):
    """Unlisted ids (in the gap, past the end, negative), invalid kinds and mass cancels, 1 shard vs several."""
    listed = [Instrument(i, f"I{i}") for i in (0, 1, 2, 4, 5, 7)]  # 3 and 6 unlisted
    insts = [[0, 1, 2, 3, 4, 5, 6, 7, 8, -3][k % 10] for k in range(40)]
    records = [new_order(inst, "buy" if k % 3 else "sell", 1 + k % 4, 100 + k % 5, order_id=k + 1, account=k % 3)
               for k, inst in enumerate(insts)]
    records += [mass_cancel(1), mass_cancel(2, 4), cancel(3, 1), mass_cancel(0, 6)]
    bad = batch([new_order(5, "buy", 1, 100, order_id=999)])
    bad["kind"] = 0
    outs = {}
    for s in (1, shards):
        with Exchange(listed, shards=s, clock=lambda: 1) as ex:
            events = [ex.process(batch(records)), ex.process(bad.copy())]
            check(ex)
            outs[s] = (np.concatenate(events), ex.state_hash())
    assert np.array_equal(outs[1][0], outs[shards][0]) and outs[1][1] == outs[shards][1]
    ev = outs[shards][0]
    unknown = ev[(ev["kind"] == EventKind.REJECTED) & (ev["reason"] == Reason.UNKNOWN_INSTRUMENT)]
    assert sorted(set(unknown["instrument"].tolist())) == [-3, 3, 6, 8]
    # each exactly once: 16 orders, the cancel on 3 and the mass cancel on 6
    assert len(unknown) == sum(i in (3, 6, 8, -3) for i in insts) + 2
    cancelled = ev[(ev["kind"] == EventKind.CANCELLED) & (ev["reason"] == Reason.MASS_CANCEL)]
    first_all = cancelled[cancelled["account"] == 1]["instrument"]
    assert len(first_all) > 1 and np.all(np.diff(first_all) >= 0)  # every instrument, in id order


@pytest.mark.parametrize("shards", SHARDS)
def test_growing_mid_batch_resumes_at_the_right_command(shards):
    """Tiny pools and buffers: the kernel stops for growth inside its dealt list and resumes where it stopped."""
    cmds = order_flow(6000, n_instruments=5, seed=3)
    cmds[1000]["kind"], cmds[1000]["instrument"] = 4, -1
    outs = {}
    for s in (1, shards):
        with Exchange(instruments(5), shards=s, clock=lambda: 1, order_capacity=4) as ex:
            outs[s] = (np.concatenate([ex.process(b) for b in batches(cmds, 3000)]), ex.state_hash())
            check(ex)
    assert np.array_equal(outs[1][0], outs[shards][0]) and outs[1][1] == outs[shards][1]


def test_the_unsharded_kernel_still_rejects_other_instruments():
    a = MatchingShard([Instrument(0, "A")])
    n = a.process_into(_stamped([new_order(1, "buy", 5, 100, order_id=1)]))
    assert n == 1 and int(a.events_buffer[0]["reason"]) == Reason.UNKNOWN_INSTRUMENT
