"""tracebook-conformance's NDJSON candidate protocol (version 1) on a pair of text streams.

The runner writes one JSON object per line and reads one back for each:

==========================================  ===========================================
runner sends                                 adapter answers
==========================================  ===========================================
``hello`` (protocol, protocol_version,       ``ready`` (protocol, protocol_version,
config)                                      engine: name, version, language)
``event`` (index 1, 2, ..., event)           ``observation`` (index, outcome, trades,
                                             state_hash, resting_order_count)
``snapshot`` (index of the last event)       ``snapshot`` (index, state: books)
``finish`` (event_count)                     ``complete`` (event_count), then exit 0
==========================================  ===========================================

Anything else is answered with ``error`` (``PROTOCOL_ERROR`` for a message
that breaks the protocol, ``ADAPTER_ERROR`` for a failure of ours) and exit
status 2.  stdout carries protocol messages only; diagnostics go to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, TextIO

from shardex.conformance.adapter import AdapterConfig, AdapterConfigError, ConformanceAdapter
from shardex.conformance.trace import TraceEvent, TraceEventError

__all__ = ["ENGINE", "PROTOCOL_NAME", "PROTOCOL_VERSION", "ProtocolError", "serve"]

PROTOCOL_NAME = "tracebook.conformance"
PROTOCOL_VERSION = 1


def _engine() -> dict:
    from shardex import __version__

    return {"name": "shardex", "version": __version__, "language": "Python"}


#: The engine identity reported in ``ready``.
ENGINE = _engine()


class ProtocolError(ValueError):
    """The runner sent a message the protocol does not allow at this point."""


def _write(sink: TextIO, payload: dict) -> None:
    sink.write(json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n")
    sink.flush()


def _read(line: str) -> dict:
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"a protocol line is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a protocol message must be a JSON object")
    return message


def _hello(line: str) -> AdapterConfig:
    if not line:
        raise ProtocolError("the stream ended before the hello message")
    hello = _read(line)
    if hello.get("type") != "hello":
        raise ProtocolError(f"the first message must be hello, got {hello.get('type')!r}")
    if hello.get("protocol") != PROTOCOL_NAME:
        raise ProtocolError(f"protocol must be {PROTOCOL_NAME!r}, got {hello.get('protocol')!r}")
    if hello.get("protocol_version") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol_version must be {PROTOCOL_VERSION}, got {hello.get('protocol_version')!r}")
    return AdapterConfig.from_mapping(hello.get("config", {}))


def serve(source: TextIO | None = None, sink: TextIO | None = None,
          factory: Callable[[AdapterConfig], ConformanceAdapter] = ConformanceAdapter) -> int:
    """Serve one runner session; return the process exit status (0 after ``finish``, 2 on error)."""
    source = source if source is not None else sys.stdin
    sink = sink if sink is not None else sys.stdout
    adapter = None
    try:
        adapter = factory(_hello(source.readline()))
        _write(sink, {"type": "ready", "protocol": PROTOCOL_NAME, "protocol_version": PROTOCOL_VERSION,
                      "engine": ENGINE})
        last = 0
        for line in source:
            if not line.strip():
                continue
            message = _read(line)
            kind = message.get("type")
            if kind == "event":
                index = message.get("index")
                if isinstance(index, bool) or index != last + 1:
                    raise ProtocolError(f"event index must be {last + 1}, got {index!r}")
                observation = adapter.apply(TraceEvent.from_mapping(message.get("event", {})))
                last = index
                _write(sink, observation.to_dict(index))
            elif kind == "snapshot":
                if message.get("index") != last:
                    raise ProtocolError(f"snapshot index must be the last event's, {last}, got {message.get('index')!r}")
                _write(sink, {"type": "snapshot", "index": last, "state": adapter.snapshot()})
            elif kind == "finish":
                if message.get("event_count") != last:
                    raise ProtocolError(f"finish event_count must be {last}, got {message.get('event_count')!r}")
                _write(sink, {"type": "complete", "event_count": last})
                return 0
            else:
                raise ProtocolError(f"unsupported message type {kind!r}")
        raise ProtocolError("the stream ended before finish")
    except (ProtocolError, TraceEventError, AdapterConfigError) as exc:
        return _fail(sink, "PROTOCOL_ERROR", str(exc))
    except BrokenPipeError:
        return 2
    except Exception as exc:  # noqa: BLE001 - the runner must hear about any failure of ours
        return _fail(sink, "ADAPTER_ERROR", f"{type(exc).__name__}: {exc}")
    finally:
        if adapter is not None:
            adapter.close()


def _fail(sink: TextIO, code: str, message: str) -> int:
    print(f"shardex conformance-adapter: {code}: {message}", file=sys.stderr)
    try:
        _write(sink, {"type": "error", "code": code, "message": message})
    except BrokenPipeError:
        pass
    return 2
