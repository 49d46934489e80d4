"""Worker processes that end with the process that started them."""

from __future__ import annotations


def die_with_parent() -> None:
    """Call in a worker process: if its parent is killed (`kill -9`, out of memory), the worker goes
    too instead of lingering on a queue nobody reads. Linux only; elsewhere nothing happens. (The
    signal follows the parent *thread*: start workers from a thread that outlives them.)"""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
