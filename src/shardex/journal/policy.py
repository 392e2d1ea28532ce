"""When the journal calls fsync: the durability/throughput trade-off as a value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FsyncPolicy"]

_MODES = ("batch", "interval", "off")


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """How often appended batches are forced to stable storage.

    ``batch``
        one fsync per appended batch, before ``append`` returns: an
        acknowledged batch survives power loss (group commit).
    ``interval``
        a background thread fsyncs every ``interval_ms`` milliseconds when
        something was written: ``append`` returns once the batch is in the OS
        page cache, which survives a process crash but not a power loss of
        the last ``interval_ms`` (see ``Journal.durable_seq``).
    ``off``
        never fsync (only on ``close``): the OS writes back when it likes,
        typically within 30 s; for tests and benchmarks of other stages.

    Parameters
    ----------
    mode
        One of ``"batch"``, ``"interval"``, ``"off"``.
    interval_ms
        Milliseconds between fsyncs in ``interval`` mode; must be > 0 there.
    """

    mode: Literal["batch", "interval", "off"] = "batch"
    interval_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"fsync policy mode must be one of {', '.join(_MODES)}, not {self.mode!r}")
        if self.mode == "interval" and not self.interval_ms > 0:
            raise ValueError(f"fsync policy 'interval' needs interval_ms > 0, not {self.interval_ms!r}")
        if self.mode != "interval" and self.interval_ms:
            raise ValueError(f"interval_ms only applies to the 'interval' policy, not {self.mode!r}")

    @classmethod
    def parse(cls, text: str | FsyncPolicy) -> FsyncPolicy:
        """Parse ``"batch"``, ``"off"`` or ``"interval:MS"`` (e.g. ``"interval:5"``).

        >>> FsyncPolicy.parse("interval:5")
        FsyncPolicy(mode='interval', interval_ms=5.0)
        """
        if isinstance(text, FsyncPolicy):
            return text
        mode, _, arg = text.partition(":")
        if mode == "interval":
            try:
                return cls("interval", float(arg))
            except ValueError:
                raise ValueError(f"fsync policy {text!r}: write 'interval:MS' with MS a positive number") from None
        if arg:
            raise ValueError(f"fsync policy {text!r}: only 'interval' takes an argument")
        return cls(mode)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"interval:{self.interval_ms:g}" if self.mode == "interval" else self.mode
