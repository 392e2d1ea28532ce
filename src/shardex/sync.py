"""Memory-ordering primitives for threads that share arrays, as numba intrinsics.

The settlement workers (``shardex.ledger``) and the matching shards' crew
(``shardex.crew.Crew``) hand work to each other through int64
flag and counter arrays.  numba has no atomics on the CPU target, and a plain
load in a spin loop may be hoisted out of the loop by LLVM.  These
intrinsics emit LLVM atomic instructions directly, so that one thread's
writes are visible to another once it has observed the publishing flag:

* ``load_acquire(arr, i)``  -- ``load atomic acquire`` of ``arr[i]`` (int64)
* ``store_release(arr, i, v)`` -- ``store atomic release`` of ``v`` to ``arr[i]``
* ``store_seq_cst(arr, i, v)`` -- a sequentially consistent store (``xchg``
  on x86): what the thread reads afterwards is read after the store is seen
* ``fetch_add(arr, i, v)`` -- ``atomicrmw add acq_rel``; returns the old value
* ``cycles()`` -- the CPU's cycle counter (``llvm.readcyclecounter``), to
  tell a short wait for a neighbour from a thread that lost its core;
* ``cpu_pause()`` -- the CPU's spin-wait hint (x86 ``pause``; nothing elsewhere);
* ``cpu_yield()`` -- ``sched_yield()``: a spinning thread gives its core back,
  which matters when more threads than cores run (the tests use 4 threads on
  a 2-core machine); nothing where the C library has no such call.

No bounds checks: callers index arrays they allocated themselves.
"""

from __future__ import annotations

import os
import platform
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

__all__ = ["cpu_pause", "cpu_yield", "cycles", "fetch_add", "load_acquire", "store_release", "store_seq_cst",
           "usable_cores"]

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_HAS_SCHED_YIELD = sys.platform.startswith(("linux", "darwin", "freebsd"))


def _element_ptr(context, builder, aryty, ary_val, idx):
    ary = context.make_array(aryty)(context, builder, ary_val)
    return builder.gep(ary.data, [idx])


@intrinsic
def load_acquire(typingctx, arr, idx):
    """Atomically read ``arr[idx]`` (a C-contiguous int64 array) with acquire order."""

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return types.int64(arr, types.intp), codegen


@intrinsic
def store_release(typingctx, arr, idx, val):
    """Atomically write ``val`` to ``arr[idx]`` (int64) with release order."""

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.int64), codegen


@intrinsic
def fetch_add(typingctx, arr, idx, val):
    """Atomically add ``val`` to ``arr[idx]`` (int64), acquire-release order; return the old value."""

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "acq_rel")

    return types.int64(arr, types.intp, types.int64), codegen


@intrinsic
def store_seq_cst(typingctx, arr, idx, val):
    """Atomically write ``val`` to ``arr[idx]`` (int64), sequentially consistent."""

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, ptr, ordering="seq_cst", align=8)
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.int64), codegen


@intrinsic
def cpu_pause(typingctx):
    """The CPU's spin-wait hint: x86 ``pause``, nothing on other machines."""

    def codegen(context, builder, sig, args):
        if _X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause"), [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def cpu_yield(typingctx):
    """Call the C library's ``sched_yield()`` to let another thread run (nothing where there is none)."""

    def codegen(context, builder, sig, args):
        if _HAS_SCHED_YIELD:
            fnty = ir.FunctionType(ir.IntType(32), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def cycles(typingctx):
    """Read the CPU cycle counter (TSC on x86); only differences are meaningful."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one): how many threads can spin at once."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
