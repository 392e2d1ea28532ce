"""``SyncBeside``: make a batch durable on a thread of its own while the caller works on it.

Under the ``batch`` fsync policy an engine's batch costs a checksum and a
write (CPU, on the caller) and then an fsync, which only waits on the disk.
The batch may be matched and settled during that wait, as long as nothing of
it is handed out before the fsync has returned: the write-ahead rule is about
acknowledgements, not about the order of the work.  ``SyncBeside.run`` does
exactly that: it starts the fsync on its thread, runs the caller's work, and
returns the work's result only once the fsync has returned, raising the
fsync's error instead where it failed.

>>> import tempfile
>>> from shardex.journal import Journal
>>> from shardex.schema import COMMAND_DTYPE
>>> import numpy as np
>>> batch = np.zeros(3, dtype=COMMAND_DTYPE); batch["seq"] = [1, 2, 3]
>>> with Journal(tempfile.mkdtemp()) as log, SyncBeside() as beside:
...     _ = log.append(batch, sync=False)      # written, not yet durable
...     beside.run(log.sync, len, batch), log.durable_seq
(3, 3)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

__all__ = ["SyncBeside"]

T = TypeVar("T")


class SyncBeside:
    """One thread that runs a log's ``sync`` while the calling thread runs the batch's work."""

    def __init__(self, name: str = "shardex-journal") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def run(self, sync: Callable[[], Any], work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` here while ``sync()`` runs on the thread; the work's result once both are done.

        Raises the work's error (after waiting for ``sync``, so that no fsync
        of this batch is left running past the call), else ``sync``'s.
        """
        pending = self._pool.submit(sync)
        try:
            result = work(*args)
        except BaseException:
            pending.exception()
            raise
        pending.result()
        return result

    def close(self) -> None:
        """Stop the thread once a sync in flight is done; idempotent."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "SyncBeside":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
