"""The curated public surface of shardex.options."""

import shardex.options as opt


def test_public_names_are_exactly_these():
    assert sorted(opt.__all__) == sorted([
        "GreeksResult", "InvalidOptionInputError", "MCResult", "NoArbitrageBoundError", "OptionChain", "OptionCode",
        "OptionError", "OptionSpec", "POSITION_DTYPE", "ScenarioGrid", "Settlement", "StandardMargin", "SviFit",
        "black76_price", "butterfly_violations", "code_message", "fit_svi", "greeks", "implied_vol", "mc_price",
        "portfolio_greeks", "portfolio_margin",
    ])
    for name in opt.__all__:
        obj = getattr(opt, name)
        assert obj.__doc__ or name == "POSITION_DTYPE", name


def test_errors_refine_builtins():
    from shardex.errors import ShardexError

    assert issubclass(opt.InvalidOptionInputError, ValueError)
    assert issubclass(opt.NoArbitrageBoundError, opt.InvalidOptionInputError)
    assert issubclass(opt.OptionError, ShardexError)
