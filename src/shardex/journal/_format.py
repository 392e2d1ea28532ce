"""Byte layouts of the journal: the segment header and the record header.

Both headers are 32 bytes, little-endian, and end in a CRC32C.  Records are
aligned: a segment header is 32 bytes, a record header 32 bytes and a payload
a whole number of 16-byte-multiple rows (80 bytes for ``COMMAND_DTYPE``), so
every payload starts 16-byte aligned in the file and in the read buffer.
docs/journal.md is the specification; this module is its only implementation.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import google_crc32c
import numpy as np

#: Format version written in both headers; a reader refuses any other.
VERSION = 1
SEGMENT_MAGIC = b"SXJS"
RECORD_MAGIC = b"SXJR"
SEGMENT_SUFFIX = ".wal"
LOCK_NAME = "LOCK"

# magic, version, record_size, base_seq, schema_crc, reserved[8], header_crc
_SEGMENT = struct.Struct("<4sHHqI8sI")
# magic, version, record_size, first_seq, count, payload_len, reserved, crc
_RECORD = struct.Struct("<4sHHqIIII")
SEGMENT_HEADER_SIZE = _SEGMENT.size
RECORD_HEADER_SIZE = _RECORD.size
#: Bytes of a header covered by its CRC: all but the trailing CRC field.
_CRC_SPAN = 28
#: Records start on multiples of this within a segment (see module docstring).
RECORD_ALIGN = 16
assert SEGMENT_HEADER_SIZE == RECORD_HEADER_SIZE == 32


def crc32c(*chunks: bytes | np.ndarray) -> int:
    """Return the CRC32C of the concatenation of ``chunks`` (bytes or uint8 arrays).

    ``google_crc32c`` only accepts buffers without a release hook (bytes,
    numpy arrays), not memoryviews; callers pass numpy views to avoid copies.
    """
    crc = 0
    for chunk in chunks:
        crc = google_crc32c.extend(crc, chunk)
    return crc


def schema_crc(dtype: np.dtype) -> int:
    """Return a fingerprint of a record dtype, stored in every segment header.

    A change to ``COMMAND_DTYPE`` is a format change; the fingerprint makes an
    old journal fail loudly at open instead of decoding into the wrong fields.
    """
    descr = repr(np.lib.format.dtype_to_descr(np.dtype(dtype)))
    return crc32c(descr.encode())


def segment_name(base_seq: int) -> str:
    """Return the file name of the segment whose first record has ``base_seq``."""
    return f"{base_seq:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """Return the base sequence encoded in a segment file name, or None if it is not one."""
    stem, dot, suffix = name.partition(".")
    if dot and "." + suffix == SEGMENT_SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


class SegmentHeader(NamedTuple):
    """The decoded 32-byte header at offset 0 of every segment file."""

    magic: bytes
    version: int
    record_size: int
    base_seq: int
    schema_crc: int
    crc_ok: bool


def pack_segment_header(base_seq: int, dtype: np.dtype) -> bytes:
    """Return the 32 header bytes of a new segment starting at ``base_seq``."""
    head = _SEGMENT.pack(SEGMENT_MAGIC, VERSION, dtype.itemsize, base_seq, schema_crc(dtype), bytes(8), 0)
    return head[:_CRC_SPAN] + struct.pack("<I", crc32c(head[:_CRC_SPAN]))


def unpack_segment_header(buf: bytes) -> SegmentHeader:
    """Decode a segment header; ``crc_ok`` tells whether its checksum matches."""
    magic, version, record_size, base_seq, fingerprint, _reserved, crc = _SEGMENT.unpack(buf[:SEGMENT_HEADER_SIZE])
    return SegmentHeader(magic, version, record_size, base_seq, fingerprint, crc == crc32c(buf[:_CRC_SPAN]))


class RecordHeader(NamedTuple):
    """The decoded 32-byte header in front of every record (one batch)."""

    magic: bytes
    version: int
    record_size: int
    first_seq: int
    count: int
    payload_len: int
    crc: int


def pack_record_header(first_seq: int, count: int, record_size: int, payload: np.ndarray) -> bytes:
    """Return the 32 header bytes of a record holding ``payload`` (a uint8 view of the batch)."""
    head = _RECORD.pack(RECORD_MAGIC, VERSION, record_size, first_seq, count, payload.nbytes, 0, 0)
    crc = crc32c(head[:_CRC_SPAN], payload)
    return head[:_CRC_SPAN] + struct.pack("<I", crc)


def unpack_record_header(buf: bytes | np.ndarray, offset: int = 0) -> RecordHeader:
    """Decode the record header at ``offset`` of ``buf`` (checksum not checked)."""
    return RecordHeader(*(_RECORD.unpack_from(buf, offset)[i] for i in (0, 1, 2, 3, 4, 5, 7)))


def record_crc_ok(record: np.ndarray) -> bool:
    """Tell whether a whole record (header + payload, uint8 array) matches its CRC."""
    stored = int(record[_CRC_SPAN:RECORD_HEADER_SIZE].view("<u4")[0])
    return stored == crc32c(record[:_CRC_SPAN], record[RECORD_HEADER_SIZE:])
