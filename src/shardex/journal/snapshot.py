"""Snapshots: engine state as named numpy arrays plus JSON metadata, written atomically.

File ``snapshot-<seq:020d>.snap`` (little-endian)::

    0   4  magic b"SXSN"
    4   2  version (1)
    6   2  reserved (0)
    8   8  meta_len: bytes of UTF-8 JSON metadata at offset 32
    16  8  body_len: bytes of array data at body_offset
    24  4  reserved (0)
    28  4  CRC32C of bytes 0..27 and of every byte from 32 to the end
    32     JSON metadata, zero-padded so the body starts on a 64-byte boundary
    body   each array's bytes, each starting on a 64-byte boundary

The JSON holds ``seq`` (last applied command), ``state_hash``, the caller's
``meta`` and, per array, its name, numpy dtype descr, shape and body offset.
A snapshot is written to a temporary file, fsynced, renamed over its final
name and the directory fsynced: a crash leaves the old set or the new one,
never a half-written file under a snapshot name.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shardex.journal import _format as fmt
from shardex.journal.errors import SnapshotError
from shardex.journal.journal import fsync_directory

__all__ = ["Snapshot", "SnapshotStore"]

log = logging.getLogger("shardex.journal")

VERSION = 1
MAGIC = b"SXSN"
_HEADER = struct.Struct("<4sHHQQII")
HEADER_SIZE = _HEADER.size
_ALIGN = 64
_PREFIX, _SUFFIX = "snapshot-", ".snap"
assert HEADER_SIZE == 32


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _snapshot_seq(name: str) -> int | None:
    """Return the seq in a snapshot file name, or None if it is not one."""
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
        digits = name[len(_PREFIX) : -len(_SUFFIX)]
        if len(digits) == 20 and digits.isdigit():
            return int(digits)
    return None


@dataclass
class Snapshot:
    """A loaded snapshot: the state as of command ``seq`` (inclusive)."""

    path: Path
    seq: int
    state_hash: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(repr=False)
    created_ns: int = 0


def _encode(arrays: Mapping[str, np.ndarray], seq: int, state_hash: str, meta: Mapping[str, Any]) -> list[bytes | np.ndarray]:
    """Return the file's bytes as chunks: header (CRC filled in), padded JSON, then arrays and pads."""
    entries: list[dict[str, Any]] = []
    body: list[bytes | np.ndarray] = []
    offset = 0
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.hasobject:
            raise TypeError(f"snapshot array {name!r} has an object dtype ({arr.dtype}); only fixed-size dtypes can be stored")
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        entries.append(
            {"name": name, "descr": np.lib.format.dtype_to_descr(arr.dtype), "shape": list(arr.shape), "offset": offset, "nbytes": flat.nbytes}
        )
        pad = _align(flat.nbytes) - flat.nbytes
        body += [flat, bytes(pad)]
        offset += flat.nbytes + pad
    doc = {
        "format": "shardex-snapshot",
        "seq": int(seq),
        "state_hash": str(state_hash),
        "created_ns": time.time_ns(),
        "meta": dict(meta),
        "arrays": entries,
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    padded = text + bytes(_align(HEADER_SIZE + len(text)) - HEADER_SIZE - len(text))
    head = _HEADER.pack(MAGIC, VERSION, 0, len(text), offset, 0, 0)[:28]
    crc = fmt.crc32c(head, padded, *body)
    return [head + struct.pack("<I", crc), padded, *body]


def _decode(path: Path) -> Snapshot:
    """Read and validate one snapshot file; raise ``SnapshotError`` naming file and offset."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = np.empty(size, dtype=np.uint8)
            got = fh.readinto(buf)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc.strerror or exc}") from exc
    if got != size or size < HEADER_SIZE:
        raise SnapshotError(f"{path}: truncated snapshot ({got} bytes, header needs {HEADER_SIZE}) at byte offset 0")
    magic, version, _r1, meta_len, body_len, _r2, crc = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise SnapshotError(f"{path}: not a shardex snapshot (magic {magic!r} at byte offset 0)")
    if version != VERSION:
        raise SnapshotError(f"{path}: snapshot format version {version} at byte offset 4; this shardex reads version {VERSION}")
    body_off = _align(HEADER_SIZE + meta_len)
    if body_off + body_len != size:
        raise SnapshotError(f"{path}: snapshot is {size} bytes but its header says {body_off + body_len} (truncated?) at byte offset 8")
    if fmt.crc32c(buf[:28], buf[HEADER_SIZE:]) != crc:
        raise SnapshotError(f"{path}: snapshot CRC32C mismatch (header at byte offset 28)")
    try:
        doc = json.loads(buf[HEADER_SIZE : HEADER_SIZE + meta_len].tobytes())
        arrays = {}
        for e in doc["arrays"]:
            dtype = np.lib.format.descr_to_dtype(_tuplify(e["descr"]))
            start = body_off + e["offset"]
            arrays[e["name"]] = buf[start : start + e["nbytes"]].view(dtype).reshape(e["shape"])
        return Snapshot(path, int(doc["seq"]), str(doc["state_hash"]), doc["meta"], arrays, int(doc.get("created_ns", 0)))
    except (KeyError, ValueError, TypeError) as exc:
        raise SnapshotError(f"{path}: snapshot metadata at byte offset {HEADER_SIZE} is inconsistent: {exc}") from exc


def _tuplify(descr: Any) -> Any:
    """JSON turns the tuples of a structured dtype descr into lists; turn them back."""
    if isinstance(descr, list):
        return [tuple(_tuplify(x) for x in field) if isinstance(field, list) else field for field in descr]
    return descr


class SnapshotStore:
    """A directory of snapshot files, newest by ``seq`` first; keeps the last ``keep``.

    Parameters
    ----------
    path
        The snapshot directory; created if missing.
    keep
        How many snapshots ``write`` leaves behind (>= 1).  Keeping more than
        one is what makes falling back past a corrupt newest file possible.
    fsync
        The function used to make files and the directory durable.
    """

    def __init__(self, path: str | os.PathLike[str], *, keep: int = 3, fsync: Callable[[int], None] = os.fsync) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.path = Path(path)
        self.keep = keep
        self._fsync = fsync
        #: (path, reason) of snapshots ``latest`` had to skip as invalid.
        self.skipped: list[tuple[Path, str]] = []

    def list(self) -> list[tuple[int, Path]]:
        """Return ``(seq, path)`` of every snapshot file, newest first (not validated)."""
        if not self.path.is_dir():
            return []
        found = [(seq, Path(e.path)) for e in os.scandir(self.path) if (seq := _snapshot_seq(e.name)) is not None]
        return sorted(found, reverse=True)

    def write(self, arrays: Mapping[str, np.ndarray], *, seq: int, state_hash: str, meta: Mapping[str, Any] | None = None) -> Path:
        """Write a snapshot of ``arrays`` taken after command ``seq``; return its path.

        Temporary file, fsync, rename, directory fsync, then delete all but
        the newest ``keep``.  Raises ``SnapshotError`` (the previous snapshots
        untouched) if any step fails.

        Runtime complexity: O(total bytes of the arrays).
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SnapshotError(f"cannot create snapshot directory {self.path}: {exc.strerror or exc}") from exc
        chunks = _encode(arrays, seq, state_hash, meta or {})
        final = self.path / f"{_PREFIX}{seq:020d}{_SUFFIX}"
        tmp = self.path / f".{final.name}.tmp-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    while view:
                        view = view[os.write(fd, view) :]
                self._fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            fsync_directory(self.path, self._fsync)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SnapshotError(f"cannot write snapshot {final}: {exc.strerror or exc}") from exc
        self._prune()
        log.info("%s: snapshot written at seq %d", final, seq)
        return final

    def _prune(self) -> None:
        """Delete snapshots beyond the newest ``keep`` and temporary files left by crashed writers."""
        for _seq, old in self.list()[self.keep :]:
            old.unlink(missing_ok=True)
        for e in os.scandir(self.path):
            if e.name.startswith(f".{_PREFIX}") and ".tmp-" in e.name and not e.name.endswith(f"-{os.getpid()}"):
                Path(e.path).unlink(missing_ok=True)

    def load(self, path: str | os.PathLike[str]) -> Snapshot:
        """Load and validate one snapshot file (``SnapshotError`` if it is bad)."""
        return _decode(Path(path))

    def latest(self) -> Snapshot | None:
        """Return the newest valid snapshot, falling back past invalid ones; None if none is valid.

        Each invalid file skipped is logged and listed in ``skipped``.
        """
        self.skipped = []
        for _seq, path in self.list():
            try:
                return _decode(path)
            except SnapshotError as exc:
                log.warning("skipping invalid snapshot: %s", exc)
                self.skipped.append((path, str(exc)))
        return None
