"""Book builders, one per venue protocol; each keeps one book through the per-message interface."""
