"""Pre-trade checks, margin models and liquidation."""
