"""The thread pool that generated modules split large arrays over.

``--fast`` NumPy layers and numba's fused loops share it: one pool per process,
whose idle threads sleep.  numba's own loops over threads (``prange``) run on
OpenMP, whose idle threads spin for milliseconds after each loop (libgomp's
default); in a NumPy network that took the cores from OpenBLAS's matrix
products, and a training step with Mish layers at (1000, 100) ran 8.5x slower
than with serial loops.  With this pool it takes the serial loops' time
(`benchmarks/numba_target.py`'s `network`).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor


def _threads():
    """Threads to split large arrays over: $SYMGRAD_THREADS, else the usable CPUs."""
    setting = os.environ.get("SYMGRAD_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    if hasattr(os, "sched_getaffinity"):
        return min(len(os.sched_getaffinity(0)), 8)
    return min(os.cpu_count() or 1, 8)


_pools = {}
_pools_lock = threading.Lock()


def _executor(workers):
    """The process's one pool, with at least ``workers`` threads: a larger
    need (a raised $SYMGRAD_THREADS) replaces it, and a forked child, which
    has no threads of its parent's pool, makes its own."""
    pid = os.getpid()
    with _pools_lock:
        pool = _pools.get(pid)
        if pool is None or pool._max_workers < workers:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = ThreadPoolExecutor(workers, thread_name_prefix="symgrad")
            _pools.clear()
            _pools[pid] = pool
        return pool
