"""An in-process bridge from tracebook's runner to the adapter, for fast tests.

tracebook's ``run_conformance`` takes any object with ``metadata``,
``apply``, ``snapshot`` and ``close``; this one round-trips every message
through the same dicts the NDJSON protocol carries, so what it proves holds
for ``shardex conformance-adapter`` too (the CLI tests run that for real).
"""

from __future__ import annotations

from tracebook.conformance.model import BookState, EngineMetadata, Observation

from shardex.conformance.adapter import AdapterConfig, ConformanceAdapter
from shardex.conformance.protocol import ENGINE
from shardex.conformance.trace import TraceEvent


class InProcessCandidate:
    """tracebook ``EngineAdapter`` around a ``ConformanceAdapter``; build one per trace with the config."""

    def __init__(self, config) -> None:
        self.adapter = ConformanceAdapter(AdapterConfig.from_mapping(config.to_dict()))
        self.metadata = EngineMetadata.from_dict(ENGINE)

    def apply(self, event, index: int) -> Observation:
        """Apply a tracebook ``MarketEvent`` as the protocol would deliver it."""
        return Observation.from_dict(self.adapter.apply(TraceEvent.from_mapping(event.to_dict())).to_dict(index))

    def snapshot(self) -> BookState:
        """The adapter's state, parsed by tracebook's own model (which validates it)."""
        return BookState.from_dict(self.adapter.snapshot())

    def close(self) -> None:
        """Release the exchange."""
        self.adapter.close()
