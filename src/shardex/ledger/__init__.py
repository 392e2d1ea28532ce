"""Balances, positions, fees, funding, expiry and the parallel settlement executor."""
