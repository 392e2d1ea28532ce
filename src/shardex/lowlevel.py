"""Low-level helpers shared by every package's kernels: software prefetch, borrowed array views, handle tables.

``borrow`` serves the matching, settlement, risk and feed kernels alike: a
public kernel hands its worker borrowed views, so that the helpers it calls
per order, transaction or level cost no atomic reference counting.

With a few hundred thousand resting orders, a cancel's order row and a new
order's index cell are cache misses (~150 ns each on the reference machine),
and the naive loop waits for each in turn.  A batch tells us which rows the
next commands will need, so the kernel prefetches them a few commands ahead
and the misses overlap instead of adding up.  A prefetch is only a hint: it
never faults and never changes a result.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _prefetch(builder, ptr, write):
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(1 if write else 0), i32(3), i32(1)])


@intrinsic
def prefetch_row(typingctx, arr, row):
    """Prefetch the first cache line of ``arr[row, 0]`` (a 2-D array) for reading."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
        return None
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer2(context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
                                        strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
                                        inds=[idx, zero], wraparound=False, boundscheck=False)
        _prefetch(builder, ptr, False)
        return context.get_dummy_value()

    return sig, codegen


def _prefetch_flat(write):
    def typer(typingctx, arr, flat):
        if not (isinstance(arr, types.Array) and arr.layout == "C" and isinstance(flat, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            idx = context.cast(builder, args[1], signature.args[1], types.intp)
            _prefetch(builder, builder.gep(ary.data, [idx]), write)
            return context.get_dummy_value()

        return types.void(arr, flat), codegen

    return typer


@intrinsic
def prefetch_read(typingctx, arr, flat):
    """Prefetch the cache line holding element ``flat`` of a C-contiguous array, for reading.

    ``flat`` counts elements from the start of the data, whatever the
    array's shape (``a * n_inst * 3`` is account ``a``'s first position field).
    """
    return _prefetch_flat(False)(typingctx, arr, flat)


@intrinsic
def prefetch_write(typingctx, arr, flat):
    """As ``prefetch_read``, with intent to write: the line arrives exclusive, ready for a store."""
    return _prefetch_flat(True)(typingctx, arr, flat)


@intrinsic
def borrow(typingctx, arr):
    """The same array without its reference-count handle (valid while the caller's array lives).

    numba increments and decrements an array's reference count, with an
    atomic operation, every time the array is passed to a function that is
    not inlined.  The matching kernel passes a dozen state arrays down every
    call, so those atomics cost more than the matching itself.  A borrowed
    view carries a null handle, which the runtime skips.  The arrays belong to
    the Python caller for the whole kernel call, so the view cannot outlive them.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        src = context.make_array(aryty)(context, builder, args[0])
        dst = context.make_array(aryty)(context, builder)
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        dst.nitems = src.nitems
        dst.itemsize = src.itemsize
        dst.data = src.data
        dst.shape = src.shape
        dst.strides = src.strides
        return dst._getvalue()

    return sig, codegen


#: Width of one entry of a handle table: data pointer, rows, columns.
HANDLE_WIDTH = 3


def _view_codegen(ndim):
    def codegen(context, builder, signature, args):
        tabty, kty = signature.args[:2]
        retty = signature.return_type
        tab = context.make_array(tabty)(context, builder, args[0])
        k = context.cast(builder, args[1], kty, types.intp)
        base = builder.mul(k, context.get_constant(types.intp, HANDLE_WIDTH))

        def word(j):
            ptr = builder.gep(tab.data, [builder.add(base, context.get_constant(types.intp, j))])
            return builder.load(ptr)

        out = context.make_array(retty)(context, builder)
        dtype = context.get_data_type(retty.dtype)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(dtype))
        rows = word(1)
        if ndim == 1:
            shape = [rows]
            strides = [itemsize]
            nitems = rows
        else:
            cols = word(2)
            shape = [rows, cols]
            strides = [builder.mul(cols, itemsize), itemsize]
            nitems = builder.mul(rows, cols)
        context.populate_array(
            out,
            data=builder.inttoptr(word(0), dtype.as_pointer()),
            shape=cgutils.pack_array(builder, shape),
            strides=cgutils.pack_array(builder, strides),
            itemsize=itemsize,
            meminfo=None,
        )
        out.nitems = nitems
        return out._getvalue()

    return codegen


@intrinsic
def view2d(typingctx, table, k):
    """Borrowed C-contiguous int64 2-D array of handle ``k`` of ``table`` (see ``handles``).

    Passing one handle table instead of a dozen arrays keeps calls between
    kernels cheap: numba passes every array as nine words and touches its
    reference count on each call.
    """
    if not (isinstance(table, types.Array) and isinstance(k, types.Integer)):
        return None
    return types.Array(types.int64, 2, "C")(table, k), _view_codegen(2)


@intrinsic
def view1d(typingctx, table, k):
    """Borrowed C-contiguous int64 1-D array of handle ``k`` of ``table``."""
    if not (isinstance(table, types.Array) and isinstance(k, types.Integer)):
        return None
    return types.Array(types.int64, 1, "C")(table, k), _view_codegen(1)


@intrinsic
def view_like(typingctx, table, k, like):
    """Borrowed 1-D array of handle ``k`` of ``table``, of ``like``'s dtype (``like`` itself is not read).

    For a table of record arrays (``handles(arrays, dtype)``): a kernel
    handed a list of batches as one table reads each in place, where a typed
    list would cost a conversion per call and compiling its methods per process.
    """
    if not (isinstance(table, types.Array) and isinstance(k, types.Integer) and isinstance(like, types.Array)):
        return None
    return types.Array(like.dtype, 1, "C")(table, k, like), _view_codegen(1)


def handles(arrays, dtype=np.int64) -> np.ndarray:
    """The handle table of C-contiguous arrays of ``dtype`` (1-D or 2-D): pointer, rows, columns each.

    The arrays must stay alive, unmoved, while a kernel uses the table.
    """
    table = np.zeros(HANDLE_WIDTH * len(arrays), dtype=np.int64)
    for k, a in enumerate(arrays):
        if a.dtype != dtype or not a.flags.c_contiguous or a.ndim not in (1, 2):
            raise TypeError(f"handle {k}: expected a C-contiguous 1-D or 2-D array of the table's dtype")
        table[HANDLE_WIDTH * k] = a.ctypes.data
        table[HANDLE_WIDTH * k + 1] = a.shape[0]
        table[HANDLE_WIDTH * k + 2] = a.shape[1] if a.ndim == 2 else 1
    return table


#: Cache-line size the aligned allocations below start on.
CACHE_LINE = 64


def aligned(shape, dtype, fill=None) -> np.ndarray:
    """A C-contiguous array whose first element starts a 64-byte cache line.

    numpy's large allocations come from ``malloc``, which puts the data 16
    bytes past a page boundary, so a 64-byte row of an ``(n, 8)`` int64 array
    straddles two cache lines: every random row costs two misses, and a
    prefetch of the row's first byte warms only part of it.  ``fill`` is
    the initial value (``None``: uninitialized, as ``np.empty``).  A fill of
    0 comes from ``np.zeros``, whose pages the operating system maps lazily,
    zeroed, on first touch: a large pool costs memory only as it is used.
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    zero = isinstance(fill, (int, float, np.integer, np.floating)) and fill == 0
    raw = (np.zeros if zero else np.empty)(nbytes + CACHE_LINE, np.uint8)
    skip = -raw.ctypes.data % CACHE_LINE
    out = np.ndarray(shape, dtype, buffer=raw, offset=skip)
    if fill is not None and not zero:
        out[...] = fill
    return out


def prefault(megabytes: int) -> None:
    """Touch ``megabytes`` of fresh numpy memory and free it again (for benchmarks, before a timed run).

    On a VM whose balloon reports free pages to the host, memory freed more
    than about two seconds ago goes back to the host, and faulting it in
    again costs 2-3 ms per MB instead of 0.08 (measured on the project VM).
    A benchmark that builds fresh state for every run then pays that cost
    at random, depending on how long ago the previous run freed its own; a
    long-running engine, which keeps its memory, never does.  The kernel
    hands out the pages freed last first, so a run that follows this one
    finds its memory resident.
    """
    if megabytes > 0:
        block = np.ones(megabytes << 17)  # float64: 8 bytes each
        del block


#: Bytes per page: the unit in which the operating system maps memory on first touch.
PAGE = 4096


def pretouch(a: np.ndarray) -> None:
    """Map every page of ``a`` now, leaving its values as they are.

    Large arrays (``np.zeros``, ``aligned(..., 0)``) are mapped lazily: the
    first write to each page stops the writing thread for the operating
    system to find and zero a page.  In a pool that grows ahead of use, those
    stops land on whichever orders first reach fresh rows, and on a VM they
    cost from a few microseconds to ~100 us each (a huge page, or memory the
    host had taken back).  Rewriting one byte per page with its own value
    moves all of them to the moment this is called.
    """
    if not a.flags.c_contiguous:  # a strided view's reshape would be a copy, and touch nothing
        raise ValueError("pretouch needs a contiguous array")
    if a.size == 0:
        return
    flat = a.reshape(-1).view(np.uint8)
    flat[::PAGE] = flat[::PAGE].copy()
    flat[-1:] = flat[-1:].copy()  # the last page, when the size is not a whole number of pages


def is_aligned(a: np.ndarray) -> bool:
    """True when ``a``'s data starts a cache line (see ``aligned``)."""
    return a.ctypes.data % CACHE_LINE == 0
