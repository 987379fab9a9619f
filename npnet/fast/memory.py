"""Keep freed memory for the next training step instead of returning it to the system.

Every training step allocates and frees the same arrays: activations, their gradients, the
loss's temporaries. At batch 512 several are over a megabyte (512 x 784 float32 is 1.6 MB).
glibc's ``malloc`` hands large freed blocks back to the operating system, by ``munmap`` or
by trimming the top of its heap, so the next step's arrays land on fresh pages, and the
kernel zero-fills every 4 KiB page on its first touch. For the default VAE at batch 512
that is hundreds of page faults per step (``benchmarks/notes-2026-11.md``).

Two glibc settings stop it: serve blocks under 32 MiB from the heap rather than from
``mmap``, and keep up to 256 MiB of free heap rather than trimming it. The process then
reuses its own pages from one step to the next. Its peak memory does not grow: only
memory it has already used is kept.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["keep_freed_memory"]

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory(keep: int = 256 * 2**20, mmap_above: int = 32 * 2**20) -> bool:
    """Ask glibc's allocator to keep freed memory for reuse; a no-op elsewhere.

    Parameters
    ----------
    keep : int
        Bytes of free memory at the top of the heap kept rather than returned
        (``M_TRIM_THRESHOLD``).
    mmap_above : int
        Blocks at least this large still get their own ``mmap`` (``M_MMAP_THRESHOLD``;
        glibc caps it at 32 MiB on 64-bit systems).

    Returns
    -------
    bool
        True when both settings were applied (Linux with glibc), False otherwise: other C
        libraries (macOS, Windows, musl) manage memory their own way and are left alone.

    The settings hold for the whole process, from the call on.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. Setting either threshold also turns off glibc's own
    # adjustment of them, which is why both are set.
    return mallopt(M_MMAP_THRESHOLD, int(mmap_above)) == 1 and mallopt(
        M_TRIM_THRESHOLD, int(keep)
    ) == 1
