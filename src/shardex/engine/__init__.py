"""The Exchange facade, shards, the staged pipeline and the state hash."""
