"""Order pool, price ladders and the matching kernels."""
