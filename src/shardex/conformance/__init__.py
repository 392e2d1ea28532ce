"""Conformance of shardex against tracebook-conformance, an outside reference engine.

``shardex conformance-adapter`` speaks tracebook's NDJSON candidate protocol
(``protocol``), translating each tracebook event into shardex commands
(``adapter``) on grids derived from the trace's config (``grid``).  Every
place where tracebook's semantics and shardex's differ is listed, with its
translation, in docs/conformance.md.
"""

from shardex.conformance.adapter import AdapterConfig, ConformanceAdapter, Observation
from shardex.conformance.protocol import serve

__all__ = ["AdapterConfig", "ConformanceAdapter", "Observation", "serve"]
