"""digitrec.allocator: freed arrays are reused instead of faulted in again (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digitrec.allocator import keep_freed_memory

# Arrays of 1.2-12 MB allocated and freed in turn, as preparing photos does; prints the page faults
# of the second round (the first warms the heap up).
SCRIPT = """
import resource, sys
import numpy as np
from digitrec.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def work():
    for size in (300_000, 1_200_000, 3_000_000) * 10:
        a = np.ones(size, np.float32)
        b = np.sqrt(a * 2)
        del a, b
work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_arrays_are_reused_instead_of_faulted_in_again():
    plain, kept = page_faults("plain"), page_faults("keep")
    assert plain > 10_000  # glibc's defaults: every round's arrays are new pages (31,360 here)
    assert kept < plain / 20  # 0 here


def test_it_says_whether_it_could():
    assert keep_freed_memory() is sys.platform.startswith("linux")  # this project's CI runs on glibc
