"""Where the training's long-lived arrays sit in memory: spread apart, on huge pages.

Every optimizer step runs one loop per parameter that reads four arrays side by side,
element i of each: the parameter ``w``, its gradient ``g`` and the optimizer's two moments
``m`` and ``v`` (:class:`npnet.fast.optim.FastAdam`), and writes three of them. How fast that loop
runs depends on where the four arrays start, for two reasons:

* **4 KiB aliasing.** A CPU compares the low 12 bits of a load's address with those of the
  stores still waiting to be written, to find loads that must wait for a store. When the
  arrays start at nearly the same offset within a 4 KiB page, a load from one array matches
  the recent stores to another, element i against element i or a few elements away: false
  dependencies, and the loop stalls. The caches are indexed by the same bits, so those
  arrays also compete for the same cache sets.
* **Pages.** With 4 KiB pages, which cache sets an array uses beyond its page's first 4 KiB
  depends on which physical pages the kernel happened to give it, so the loop's speed
  changed from one run to the next (0.3 to 0.9 ns per element). A 2 MiB *huge* page is
  contiguous in physical memory: the placement is then the one chosen here, every run, and
  one TLB entry covers 512 times as much memory.

So each of the four *streams* starts a quarter page further on than the last (stream k at
``k * 1024`` bytes modulo 4096, relative to the parameter), and arrays of 256 KiB and more
get their own 2 MiB-aligned region, advised for transparent huge pages (Linux; elsewhere,
or with huge pages switched off, only the spreading applies). The arithmetic is unchanged:
this decides addresses, not values.

:func:`npnet.fast.enable` places every Dense layer's parameters and gradients this way,
and :mod:`npnet.fast.optim` the optimizer's state; ``benchmarks/bench_placement.py``
measures the effect.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

__all__ = ["PAGE_BYTES", "STREAM_BYTES", "aligned_zeros", "zeros_alongside"]

PAGE_BYTES = 4096  # the page size whose offsets the CPU compares
STREAM_BYTES = PAGE_BYTES // 4  # four streams, a quarter page apart
HUGE_PAGE_BYTES = 2 * 2**20  # x86-64's transparent huge page
HUGE_FROM_BYTES = 256 * 2**10  # smaller arrays stay on the NumPy heap, with the same offset


def aligned_zeros(shape, dtype=np.float32, offset: int = 0) -> np.ndarray:
    """A zero-filled C-contiguous array whose data start ``offset`` bytes past a page boundary.

    Arrays of at least 256 KiB get a memory region of their own, aligned to 2 MiB and
    advised for transparent huge pages; smaller ones are cut from a slightly larger NumPy
    array. Either way the result is an ordinary writable ndarray (a view that keeps its
    memory alive), and copies of it (``np.copy``, pickling) are ordinary arrays again.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : numpy dtype
    offset : int
        Bytes past a 4096-byte boundary, in [0, 4096), a multiple of the dtype's size.
    """
    dtype = np.dtype(dtype)
    offset = int(offset)
    if not 0 <= offset < PAGE_BYTES or offset % dtype.itemsize:
        raise ValueError(
            f"offset must be in [0, {PAGE_BYTES}) and a multiple of the item size "
            f"({dtype.itemsize} bytes for {dtype}), got {offset}"
        )
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes >= HUGE_FROM_BYTES:
        raw, boundary = _huge_page_region(offset + nbytes), HUGE_PAGE_BYTES
    else:
        raw, boundary = np.zeros(PAGE_BYTES + offset + nbytes, dtype=np.uint8), PAGE_BYTES
    start = -raw.ctypes.data % boundary + offset  # the first boundary in raw, plus offset
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def zeros_alongside(like: np.ndarray, stream: int) -> np.ndarray:
    """Zeros of ``like``'s shape and dtype, to be read in the same loop as ``like``: they
    start ``stream`` quarter pages after ``like`` does, modulo a page.

    ``like`` is stream 0 (a parameter); npnet uses stream 1 for its gradient and 2 and 3 for
    an optimizer's state (Adam's m and v, SGD's velocity).
    """
    if not 1 <= stream < PAGE_BYTES // STREAM_BYTES:
        raise ValueError(f"stream must be 1, 2 or 3 (0 is the array itself), got {stream}")
    offset = (like.ctypes.data + stream * STREAM_BYTES) % PAGE_BYTES
    offset -= offset % like.dtype.itemsize  # (only an oddly placed `like` needs this)
    return aligned_zeros(like.shape, like.dtype, offset)


def _huge_page_region(nbytes: int) -> np.ndarray:
    """Fresh zeroed bytes with room for ``nbytes`` after their first 2 MiB boundary. Falls
    back to a NumPy array where anonymous mmap is missing."""
    size = (math.ceil(nbytes / HUGE_PAGE_BYTES) + 1) * HUGE_PAGE_BYTES  # +1: room to align
    anonymous = getattr(mmap, "MAP_ANONYMOUS", None)
    if anonymous is None or not hasattr(mmap, "MAP_PRIVATE"):  # Windows
        return np.zeros(size, dtype=np.uint8)
    # Private anonymous memory: zero-filled, and (unlike shared memory) eligible for
    # transparent huge pages when the system's setting is "madvise" or "always".
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | anonymous)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):  # no such advice here: 4 KiB pages, same offsets
        pass
    return np.frombuffer(region, dtype=np.uint8)
