"""How many CPU threads torch uses in a run (the ``threads`` option).

Measured on the project's 2-core machine, Office: idle, two threads train TIGER
about 1.8x faster than one (182 samples/s); while one other process keeps a core
busy, two threads are 4-7x *slower* than one for TIGER (14-22 vs 91-100 samples/s,
beam search 8-12 vs 89 users/s; ``benchmarks/generative_speed.py``) and 2.1x slower
for SASRec (58 vs 27 s per epoch; ``benchmarks/classic_epoch_speed.py``): torch's
threads wait for each other on a core they do not get.  Hence the default:

* ``threads: N`` -- N threads;
* ``threads: ~`` -- torch's own count (``OMP_NUM_THREADS`` when set, as
  ``tuning.reproduce`` sets it per worker; else one per core), lowered to the
  cores that other processes leave idle at the start of the run (never below
  1, never above the count torch has), and said in the log when lowered.  The
  count can change float rounding in the last digits; pass ``--threads=N`` for
  runs that must repeat bit for bit across loads.
"""

import os
import statistics
import time

import torch

from recbole_genrec.errors import ConfigError


def set_torch_threads(threads, logger) -> int:
    """Apply the ``threads`` option; return the number of threads torch now uses."""
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ConfigError(f"threads={threads!r}: expected a positive number of torch "
                              "threads, or ~ to use the cores other processes leave idle")
        torch.set_num_threads(threads)
        return threads
    n = torch.get_num_threads()
    if n == 1 or os.environ.get("OMP_NUM_THREADS"):
        return n
    cores, busy = len(os.sched_getaffinity(0)), busy_cores()
    fitting = max(1, min(n, round(cores - busy)))
    if fitting < n:
        torch.set_num_threads(fitting)
        logger.info(f"torch threads: {fitting} instead of {n}, as other processes keep about "
                    f"{busy:g} of the {cores} cores busy (set --threads=N to choose)")
    return fitting


def busy_cores(samples: int = 5, interval: float = 0.05) -> float:
    """Tasks of other processes running right now: the median over a few samples of
    the kernel's count of runnable tasks (``/proc/loadavg``), less this process's
    one; where there is no ``/proc``, the 1-minute load average."""
    try:
        counts = []
        for _ in range(samples):
            with open("/proc/loadavg", encoding="ascii") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
            time.sleep(interval)
        return float(statistics.median(counts))
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
