"""The public surface of ``shardex`` is deliberate: this list changes only on purpose."""

import shardex

PUBLIC = {
    "COMMAND_DTYPE", "EVENT_DTYPE", "CommandKind", "EventKind", "Exchange", "Instrument", "InstrumentKind",
    "InvalidInstrumentError", "JournalError", "MalformedInputError", "Matching", "OffGridError", "OptionType", "OrderFlag",
    "OrderRejected", "OrderType", "Reason", "SelfTradePrevention", "ShardexError", "Side", "TimeInForce", "Trade",
    "UnknownInstrumentError", "to_arrow", "to_frame",
}


def test_public_names_are_exactly_the_documented_ones():
    assert set(shardex.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(shardex, name).__doc__, f"shardex.{name} has no docstring"


def test_every_reason_has_an_actionable_message():
    for code in shardex.Reason:
        msg = shardex.schema.reason_message(code)
        assert msg and not msg.startswith("unknown reason"), code
