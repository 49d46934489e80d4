"""Keep freed memory for the next image instead of handing it back to the OS (glibc's malloc).

Preparing one photo allocates and frees about 10 MB of numpy arrays. glibc returns a freed block
above its mmap threshold, and the top of its heap beyond its trim threshold, to the OS at once, so
the next photo's arrays are fresh pages that the kernel faults in and zeroes again: about 2,800
page faults a photo. Measured (2026-12-07, 300 one-megapixel photos through `predict_paths` in one
process, one thread): 854,000 page faults, 6.1 s of system time beside 12 s of user time, 12.6 s
wall; with the mmap threshold at 16 MiB and the trim threshold at 64 MiB: 66,000 faults, 3.3 s
system, 10.2 s wall. Each process then keeps at most 64 MiB of freed memory for its next use.

digitrec sets it in the processes it owns: the command line and the worker processes of `batch`,
`predict_paths` and `serve`. A program that uses the library decides for itself, by calling
`keep_freed_memory()` (it changes the whole process's malloc).
"""

from __future__ import annotations

import sys

MMAP_THRESHOLD = 16 << 20  # blocks this large or larger still get pages of their own (a 40 MP image's)
TRIM_THRESHOLD = 64 << 20  # free memory kept at the top of the heap before any is handed back
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (above); True when they were set. Elsewhere (macOS,
    Windows, musl) nothing changes and it says False."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
