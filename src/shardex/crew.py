"""A crew of threads that each make one call per round while the caller makes its own.

The matching shards (``Exchange.apply``) and the settlement workers
(``shardex.ledger.executor``) hand a call to each thread of a ``Crew`` per
batch and wait for all of them; a round trip costs microseconds where a
``ThreadPoolExecutor`` takes tens (see ``Crew``).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Callable

import numpy as np
from numba import njit

from shardex.sync import cpu_pause, cpu_yield, load_acquire, store_seq_cst

__all__ = ["Crew", "NO_WAIT", "STARTED", "await_all"]

#: The go flag ``Crew.stage`` hands back for a round that has already started: an array of
#: its own that nobody waits on, so that a caller sets "its" flag from compiled code all the same.
STARTED = (np.zeros(1, dtype=np.int64), 0, 0)


@njit(cache=True, nogil=True)
def _await(flags, slot, want, wake, spins):
    """Poll until ``flags[slot] >= want`` (1), or ``flags[wake]`` is set (-1), at most ``spins`` times (0).

    Releases the GIL.  Between polls the CPU's pause hint, and every 16th
    time ``sched_yield``: a poller that shares its CPU with a thread that has
    work (a loaded machine) gives the CPU up instead of burning it.
    """
    for k in range(spins):
        if load_acquire(flags, slot) >= want:
            return 1
        if load_acquire(flags, wake) != 0:
            return -1
        if k & 15 == 15:
            cpu_yield()
        else:
            cpu_pause()
    return 1 if load_acquire(flags, slot) >= want else 0


@njit(cache=True, nogil=True)
def _post_then_await(flags, post, value, slot, want, wake, spins):
    """``flags[post] = value`` once the GIL is released, then ``_await``."""
    store_seq_cst(flags, post, value)
    return _await(flags, slot, want, wake, spins)


# Slots of a crew's flags array: the round posted, one that stays 0 (on the same cache line),
# whether the caller sleeps, then the round each thread finished, each on a line of its own.
_GO, _ZERO, _CALLER_SLEEPS = 0, 1, 8


@njit(cache=True, nogil=True)
def await_all(flags, slots, want, spins):
    """Poll until ``flags[slot] >= want`` for every slot of ``slots``, each for at most ``spins`` polls; True if all were.

    For a caller's kernel that ends a round (``Crew.finish_line``): see there.
    """
    for t in range(slots.shape[0]):
        if _await(flags, slots[t], want, _ZERO, spins) != 1:
            return False
    return True


#: ``Crew.finish_line`` of a call that waits for no thread (``await_all`` returns at once).
NO_WAIT = (np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int64), 0, 0)


#: Polls per pass of a thread waiting for a round already staged (the GIL is taken between passes).
_STAGED_SPINS = 4096


def _done_slot(t: int) -> int:
    return 16 + 8 * t


_spins_per_second = 0.0


def _spins(seconds: float) -> int:
    """Polls of ``_await`` in about ``seconds`` (measured once per process: ``pause`` takes 10 to 150 cycles)."""
    global _spins_per_second
    if seconds <= 0:
        return 0
    if not _spins_per_second:
        flags = np.zeros(16, dtype=np.int64)
        _await(flags, _GO, 1, _ZERO, 10)  # compile or load
        n = 20_000
        t0 = time.perf_counter()
        _await(flags, _GO, 1, _ZERO, n)
        _spins_per_second = n / max(time.perf_counter() - t0, 1e-6)
    return max(1, int(seconds * _spins_per_second))


class _Channel:
    """What a ``Crew`` and its threads share."""

    def __init__(self, threads: int, spins: int) -> None:
        self.flags = np.zeros(_done_slot(threads), dtype=np.int64)
        self.spins = spins
        self.cond = threading.Condition()
        self.calls: list[tuple[Callable[..., Any], tuple] | None] = [None] * threads
        self.outcomes: list[tuple[BaseException | None, Any]] = [(None, None)] * threads
        self.sleeping = [False] * threads
        self.pokes = 0  # Crew.wake: sleepers go back to polling for a round not yet staged
        self.stop = False

    def serve(self, t: int) -> None:
        """Thread ``t``'s loop: wait for a round, make its call, publish the outcome."""
        flags, cond, spins = self.flags, self.cond, self.spins
        done = _done_slot(t)
        r = 1
        seen = _await(flags, _GO, r, _CALLER_SLEEPS, spins) == 1
        while True:
            if not seen:
                with cond:
                    # A staged round starts with a flag set from compiled code, which wakes no
                    # one, and the caller may wait for this thread's work before it could wake it
                    # (a merge, a settlement level): so sleep only while nothing is staged.
                    # stage() decides under the same lock whether it must wake a sleeper.
                    staged = self.calls[t] is not None
                    poked = False
                    if not staged:
                        self.sleeping[t] = True
                        poke = self.pokes
                        # _await (no spins) after the flag: its GIL release orders the two
                        while _await(flags, _GO, r, _CALLER_SLEEPS, 0) != 1 and not self.stop and self.pokes == poke:
                            cond.wait()
                        self.sleeping[t] = False
                        poked = self.pokes != poke
                if staged:
                    while _await(flags, _GO, r, _ZERO, _STAGED_SPINS) != 1 and not self.stop:
                        pass
                elif poked and not self.stop and _await(flags, _GO, r, _ZERO, 0) != 1:
                    # woken ahead of a round (Crew.wake): poll for it, and sleep again if none comes
                    seen = _await(flags, _GO, r, _CALLER_SLEEPS, spins) == 1
                    continue
            if self.stop:
                return
            fn, args = self.calls[t]
            self.calls[t] = None
            try:
                self.outcomes[t] = (None, fn(*args))
            except BaseException as exc:  # handed to the caller, which raises it
                self.outcomes[t] = (exc, None)
            fn = args = None  # hold nothing of the round past it (its arrays: Exchange._output)
            # Publish outside the GIL: a caller that sees it never finds this thread holding the GIL.
            got = _post_then_await(flags, done, r, _GO, r + 1, _CALLER_SLEEPS, spins)
            seen = got == 1
            if flags[_CALLER_SLEEPS]:
                with cond:
                    cond.notify_all()
            r += 1

    def close(self) -> None:
        with self.cond:
            self.stop = True
            self.flags[_GO] += 1 << 40  # ends every spin at once
            self.cond.notify_all()


class Crew:
    """Threads that each make one call per round while the caller makes its own; then the caller waits for all.

    ``run(calls)`` makes ``calls[0]`` on the calling thread and ``calls[t + 1]``
    on thread ``t``, and returns their results in order.  This is
    ``Exchange``'s per-batch hand-off, 244 rounds per million commands in
    4096-command batches, and the settlement executor's.

    Why not a ``ThreadPoolExecutor``: it puts a call on a queue and wakes a
    worker blocked on a lock, and the caller then blocks on the future's lock.
    On a virtual machine each wake of a blocked thread costs tens of
    microseconds; a round trip took 55-70 us on the reference 2-core VM.
    Here both sides spin instead: a thread polls for its next round for
    ``spin`` seconds after each call, and the caller polls for ``spin``
    seconds for the results; only then do they block on a condition
    variable.  Polling runs in a compiled loop that releases the GIL and
    issues the CPU's pause hint; it is bounded, so an idle engine costs at
    most ``spin`` seconds of each thread's core after each round.  With
    ``spin=0`` every wait blocks at once (for more threads than cores, where
    a spinning thread would take a core from a working one).

    The GIL is the other cost: a thread that asks for it while another holds
    it sleeps, and is woken as slowly.  So the flags a spinning side waits on
    are set with the GIL released: a thread publishes its result from
    compiled code, and the caller may start the round from compiled code too
    (``stage`` returns the flag to set; ``MatchingShard.process_into(go=...)``
    and ``ledger._kernels.run_worker_go`` set it as their kernels start).  A
    thread that sees its round start then takes a GIL that nobody holds.

    The threads stop on ``close()``, or when the crew is garbage collected.
    """

    def __init__(self, threads: int, spin: float = 0.001, name: str = "shardex-crew") -> None:
        self._ch = _Channel(threads, _spins(spin))
        self._round = 0
        self._done_slots = np.array([_done_slot(t) for t in range(threads)], dtype=np.int64)
        self._threads = [threading.Thread(target=self._ch.serve, args=(t,), name=f"{name}-{t + 1}", daemon=True)
                         for t in range(threads)]
        for th in self._threads:
            th.start()
        self._finalizer = weakref.finalize(self, self._ch.close)

    def stage(self, calls: list[tuple[Callable[..., Any], tuple]]) -> tuple[np.ndarray, int, int]:
        """Hand ``calls[t]`` (function, arguments) to thread ``t`` for the next round; what starts it.

        Returns ``(flags, slot, value)``: the round starts when compiled code
        sets ``flags[slot] = value`` (with ``shardex.sync.store_seq_cst``),
        which the caller does as it starts its own call, and ``go()`` does if
        it has not.
        Returns ``STARTED`` where the round has already started (a thread
        sleeps, or the crew does not spin: it had to be woken from here anyway).
        """
        ch = self._ch
        if ch.stop:
            raise RuntimeError("Crew: the threads are stopped")
        if len(calls) != len(ch.calls):
            raise ValueError(f"Crew.stage: {len(calls)} calls for {len(ch.calls)} threads")
        if any(c is not None for c in ch.calls):
            raise RuntimeError("Crew.stage: the previous round was not collected")
        with ch.cond:  # against serve()'s choice to sleep: a thread asleep now is woken below
            ch.calls[:] = calls
            wake = ch.spins == 0 or any(ch.sleeping)
        self._round += 1
        if wake:
            self.go()
            return STARTED
        return ch.flags, _GO, self._round

    def finish_line(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(flags, slots, round, spins)``: what ``await_all`` polls to see every thread of the staged round finished.

        A thread finishes its call with Python work (its result, its frame)
        before it posts, from compiled code, that it is done.  A caller whose
        kernel ends when the threads' kernels do (a merge that waits for
        every shard) would return from it while a thread holds the GIL, and
        sleep until the GIL is handed over, which on a virtual machine takes
        as long as a small batch (~20 us measured).  Polling these flags at
        the end of its kernel, with the GIL released, it takes the GIL once
        the threads have let it go; ``collect()`` then finds them done.
        """
        ch = self._ch
        return ch.flags, self._done_slots, self._round, ch.spins

    def wake(self) -> None:
        """Get threads that sleep polling again, ahead of a round the caller is about to stage.

        A sleeping thread is woken by the round itself, which on a virtual
        machine takes ~100 us, all of it on the round's clock.  A caller
        with work of its own to do first (the settlement plan, ~140 us)
        calls this before it: the threads wake meanwhile and poll for up to
        ``spin`` seconds, then sleep again if no round comes.  A no-op when
        no thread sleeps, or the crew does not spin.
        """
        ch = self._ch
        if ch.spins and any(ch.sleeping):
            with ch.cond:
                ch.pokes += 1
                ch.cond.notify_all()

    @property
    def threads(self) -> int:
        """Threads of the crew (the caller's not counted)."""
        return len(self._threads)

    @property
    def spinning(self) -> bool:
        """Whether the threads poll between rounds (as many threads as cores or fewer), rather than block."""
        return self._ch.spins > 0

    def go(self) -> None:
        """Start the staged round if it has not started, and wake any thread asleep."""
        ch = self._ch
        if ch.flags[_GO] < self._round:
            ch.flags[_GO] = self._round
        if any(ch.sleeping):
            with ch.cond:
                ch.cond.notify_all()

    def collect(self) -> list:
        """Wait for every thread's call of this round; their results, or the first exception raised."""
        ch = self._ch
        flags, r = ch.flags, self._round
        self.go()  # a no-op unless the round's first call failed to start it
        for t, th in enumerate(self._threads):
            slot = _done_slot(t)
            # Already posted (a caller's kernel that waited at the finish line): a plain read, no
            # compiled call, whose dispatch cost 1.7 us right after the shards' kernels.
            if flags[slot] >= r or _await(flags, slot, r, _ZERO, ch.spins) == 1:
                continue
            with ch.cond:
                flags[_CALLER_SLEEPS] = 1
                try:
                    while _await(flags, slot, r, _ZERO, 0) != 1:
                        if not th.is_alive():
                            raise RuntimeError(f"Crew: thread {th.name} is gone")
                        if any(ch.sleeping):  # should a wake-up have been missed
                            ch.cond.notify_all()
                        ch.cond.wait(0.05)
                finally:
                    flags[_CALLER_SLEEPS] = 0
        outcomes, ch.outcomes = ch.outcomes, [(None, None)] * len(ch.outcomes)
        for exc, _ in outcomes:
            if exc is not None:
                raise exc
        return [value for _, value in outcomes]

    def run(self, calls: list[tuple[Callable[..., Any], tuple]]) -> list:
        """``calls[0]`` here and the others on the threads, at once; every result, in order.

        Every call is waited for, even when one raises; then the first exception is raised.
        """
        self.stage(calls[1:])
        self.go()  # a Python caller starts the round here: waiting for collect() would run the calls in turn
        fn, args = calls[0]
        try:
            first = fn(*args)
        finally:
            rest = self.collect()
        return [first, *rest]

    def __enter__(self) -> "Crew":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads once their current calls (if any) are done (also on leaving a ``with`` block)."""
        self._finalizer()
        for th in self._threads:
            if th is not threading.current_thread():
                th.join()
