"""How many threads training uses, and how they wait: chosen so that a busy neighbour cannot
make training many times slower. No torch here: the wait policy must be set before torch loads.

With 2 threads on 2 cores and another busy process on one of them, every parallel region (hundreds
per training step) ends only when the thread that shares a core with the neighbour gets its next
time slice, while OpenMP's other thread spins at the barrier, burning the core it could have left to
the neighbour. Measured here (fast recipe, --limit 10000, load average ~9.5 on 2 cores): 2 threads
66.1 s of training, 1 thread 6.7 s, 2 threads with OMP_WAIT_POLICY=PASSIVE 7.8 s (docs/training.md).
So by default training uses only the cores that nobody else is busy on, looked at again every
epoch, and on a busy machine its OpenMP threads sleep instead of spinning; `--threads N` still fixes
the count, and an OMP_WAIT_POLICY already set is left alone. On an idle machine nothing changes.
"""

from __future__ import annotations

import os
import statistics
import sys
import time


def prefer_passive_waiting() -> bool:
    """On a busy machine, make OpenMP threads sleep at barriers instead of spinning (libgomp reads
    OMP_WAIT_POLICY once, when torch loads it: call this before the first `import torch`).
    -> whether it was set."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    if busy_elsewhere(samples=5) < 1:
        return False  # idle: the spinning wait is the faster one, keep it
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def default_threads(world: int = 1, samples: int = 10) -> int:
    """torch threads for one of `world` processes: the cores this process may use, less those
    other processes keep busy now, shared between the processes of the run; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = busy_elsewhere(samples) * cores / max(cores, os.cpu_count() or cores)  # our share of the host's load
    return max(1, (cores - int(busy + 0.5)) // world)


def busy_elsewhere(samples: int = 10, interval: float = 0.01) -> float:
    """Runnable threads of other processes (median of a few looks at /proc: the kernel's runnable
    count less this process's own running threads); 0 where /proc is not there."""
    looks = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                runnable = int(f.read().split()[3].split("/")[0])
            own = _own_running_threads()
        except (OSError, ValueError, IndexError):
            return 0.0
        looks.append(max(0, runnable - own))
        if i + 1 < samples:
            time.sleep(interval)
    return statistics.median(looks)


def _own_running_threads() -> int:
    running = 0
    for task in os.scandir("/proc/self/task"):
        try:
            with open(f"{task.path}/stat") as f:
                running += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return running
