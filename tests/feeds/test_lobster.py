"""LOBSTER replay: every shared file pair with zero top-N mismatches, bad input, exact execution makers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shardex.errors import MalformedInputError
from shardex.feeds.lobster import PLACEHOLDER, REAL, read_lobster, replay_lobster, sample_pair

STEM = "{sym}_2012-06-21_34200000_57600000_{kind}_{lv}.csv"
PAIRS = [("AMZN", 1), ("AMZN", 5), ("GOOG", 1), ("GOOG", 5), ("GOOG", 10)]


def _pair(root: Path, sym: str, lv: int) -> tuple[Path, Path]:
    msg = root / STEM.format(sym=sym, kind="message", lv=lv)
    book = root / STEM.format(sym=sym, kind="orderbook", lv=lv)
    if not book.exists():
        book = book.with_name(book.name + ".gz")  # the one gzipped orderbook
    return msg, book


@pytest.fixture(scope="session")
def lobster(shared_data: Path) -> Path:
    """The shared LOBSTER folder."""
    return shared_data / "lobster"


def _sio(text: str, name: str) -> io.StringIO:
    s = io.StringIO(text)
    s.name = name
    return s


# -- the real files -----------------------------------------------------------
@pytest.mark.parametrize("sym,lv", PAIRS, ids=[f"{s}_{lv}" for s, lv in PAIRS])
def test_every_shared_file_replays_without_a_mismatch(lobster: Path, sym: str, lv: int) -> None:
    msg, book = _pair(lobster, sym, lv)
    r = replay_lobster(msg, book)
    assert r.levels == lv and r.symbol == sym and r.date == "2012-06-21"
    assert r.messages == sum(r.by_type.values())
    assert r.mismatches == 0, r.first_mismatches[:2]
    assert r.execution_mismatches == 0, r.first_execution_mismatches[:2]
    assert r.executions == r.by_type["visible_execution"]
    assert r.executions_matched == r.executions
    assert r.executions_of_named_orders + r.placeholder_hits == r.executions
    assert r.hidden_executions == r.by_type["hidden_execution"]
    assert r.details["engine_rejects"] == 0
    assert r.ok


def test_executions_are_identical_across_levels(lobster: Path) -> None:
    # SOURCES.md: executions appear in every level's file; the replay must count them all.
    counts = {lv: int(np.sum(read_lobster(*_pair(lobster, "GOOG", lv)).mtype == 4)) for lv in (1, 5, 10)}
    assert len(set(counts.values())) == 1


def test_a_named_execution_consumes_exactly_that_order(lobster: Path) -> None:
    msg, book = _pair(lobster, "AMZN", 5)
    data = read_lobster(msg, book)
    # The first visible execution of an order the file showed being submitted.
    sub = data.mtype == 1
    seen = dict(zip(data.order_id[sub].tolist(), data.size[sub].tolist()))
    # One that leaves other orders at its level, so "nothing else changed" says something.
    i = next(k for k in range(len(data)) if data.mtype[k] == 4 and int(data.order_id[k]) in seen
             and ((data.direction[k] == -1 and data.ask_price[k, 0] == data.price[k]
                   and data.ask_size[k, 0] > seen[int(data.order_id[k])])
                  or (data.direction[k] == 1 and data.bid_price[k, 0] == data.price[k]
                      and data.bid_size[k, 0] > seen[int(data.order_id[k])])))
    before = replay_lobster(msg, book, until=i, keep_exchange=True)
    after = replay_lobster(msg, book, until=i + 1, keep_exchange=True)
    oid, size = int(data.order_id[i]), int(data.size[i])
    l3b, l3a = before.exchange.l3(before.symbol), after.exchange.l3(after.symbol)

    def qty(l3: np.ndarray) -> int:
        rows = l3[(l3[:, 2] == oid) & (l3[:, 3] == REAL)]
        return int(rows[:, 4].sum())

    assert qty(l3b) - qty(l3a) == size
    # Nothing else at that price changed: the other orders there are the same rows.
    # (Deeper levels may change after the message: the window reconciliation.)
    side, price = (0 if data.direction[i] == 1 else 1), int(data.price[i]) // 100

    def others(l3: np.ndarray) -> set:
        at = l3[(l3[:, 0] == side) & (l3[:, 1] == price)]
        return {tuple(r) for r in at[~((at[:, 2] == oid) & (at[:, 3] == REAL))].tolist()}

    assert others(l3b) and others(l3b) == others(l3a)
    assert after.executions_of_named_orders == before.executions_of_named_orders + 1


# -- the built-in sample --------------------------------------------------------
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_the_synthetic_sample_replays_clean(levels: int) -> None:
    m, b = sample_pair(levels=levels, seed=levels)
    r = replay_lobster(m, b)
    assert r.ok and r.messages > 50 and r.executions > 5


def test_an_unseen_order_execution_hits_placeholder_liquidity() -> None:
    # The seed: 100 shares at $10.00 that no message submitted; message 1 executes 40 of them.
    msg = "34200.1,4,999,40,100000,-1\n34200.2,1,5,10,99900,1\n"
    book = "100000,60,99800,10\n100000,60,99900,10\n"
    r = replay_lobster(_sio(msg, "m.csv"), _sio(book, "b.csv"), keep_exchange=True)
    assert r.ok and r.placeholder_hits == 1 and r.seed_shares == 110
    l3 = r.exchange.l3(r.symbol)
    asks = l3[l3[:, 0] == 1]
    assert asks[:, 3].tolist() == [PLACEHOLDER] and asks[:, 4].tolist() == [60]


def test_a_deliberately_wrong_book_row_is_a_mismatch_and_the_cli_exits_1(tmp_path: Path) -> None:
    msg = "34200.1,1,1,10,100000,-1\n34200.2,3,1,10,100000,-1\n"
    book = "100000,10,99900,5\n100000,7,99900,5\n"  # the delete should have emptied the ask
    (tmp_path / "m.csv").write_text(msg)
    (tmp_path / "b.csv").write_text(book)
    r = replay_lobster(tmp_path / "m.csv", tmp_path / "b.csv")
    assert r.mismatches == 1 and not r.ok and r.first_mismatches[0]["line"] == 2
    from shardex.cli import app

    res = CliRunner().invoke(app, ["replay", "lobster", str(tmp_path / "m.csv"), "--orderbook", str(tmp_path / "b.csv"),
                                   "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["mismatches"] == 1


def test_cli_prints_the_summary_and_exits_0(tmp_path: Path) -> None:
    from shardex.cli import app

    m, b = sample_pair(levels=2)
    (tmp_path / "m.csv").write_text(m.getvalue())
    (tmp_path / "b.csv").write_text(b.getvalue())
    res = CliRunner().invoke(app, ["replay", "lobster", str(tmp_path / "m.csv"), "--orderbook", str(tmp_path / "b.csv")])
    assert res.exit_code == 0, res.stdout
    assert "placeholder hits" in res.stdout and "messages/s" in res.stdout and "OK" in res.stdout


# -- bad input --------------------------------------------------------------------
@pytest.mark.parametrize("bad_line,why", [
    ("34200.3,1,7,10,100000\n", "columns"),
    ("34200.3,1,7,ten,100000,-1\n", "not a number"),
    ("34200.3,9,7,10,100000,-1\n", "unknown message type"),
    ("34200.3,1,7,10,100000,0\n", "direction"),
    ("34200.3,1,7,0,100000,-1\n", "size must be positive"),
    ("34200.0,1,7,10,100000,-1\n", "time goes backwards"),
])
def test_a_malformed_message_row_names_file_and_line(bad_line: str, why: str) -> None:
    msg = "34200.1,1,1,10,100000,-1\n34200.2,1,2,10,99900,1\n" + bad_line
    book = "100000,10,0,0\n100000,10,99900,10\n100000,10,99900,10\n"
    with pytest.raises(MalformedInputError, match=rf"m\.csv:3: .*{why}"):
        replay_lobster(_sio(msg, "m.csv"), _sio(book, "b.csv"))


def test_a_malformed_orderbook_row_and_unpaired_files_are_rejected() -> None:
    msg = "34200.1,1,1,10,100000,-1\n34200.2,1,2,10,99900,1\n"
    with pytest.raises(MalformedInputError, match=r"b\.csv:2: .*columns"):
        read_lobster(_sio(msg, "m.csv"), _sio("100000,10,0,0\n100000,10,99900\n", "b.csv"))
    with pytest.raises(MalformedInputError, match="must pair up"):
        read_lobster(_sio(msg, "m.csv"), _sio("100000,10,0,0\n", "b.csv"))
    with pytest.raises(MalformedInputError, match="--levels 5"):
        read_lobster(_sio(msg, "m.csv"), _sio("100000,10,0,0\n100000,10,99900,10\n", "b.csv"), levels=5)


def test_a_missing_file_is_reported_and_the_cli_exits_2(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        replay_lobster(tmp_path / "nope.csv", tmp_path / "nope_book.csv")
    from shardex.cli import app

    res = CliRunner().invoke(app, ["replay", "lobster", str(tmp_path / "nope.csv"), "--orderbook", str(tmp_path / "b.csv")])
    assert res.exit_code == 2
