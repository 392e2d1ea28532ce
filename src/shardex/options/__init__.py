"""Options: Black-76 pricing, Greeks, implied volatility, smiles and portfolio risk."""
