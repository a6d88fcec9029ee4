"""Peak process memory (RSS) over a piece of work, from ``/proc/self/status``.

PyTorch's CPU allocations are invisible to ``tracemalloc``; the kernel's
peak-RSS counter (VmHWM) sees them.  Reset it right before the work, read it
right after: ``with PeakRSS() as peak: work()`` -> ``peak.before_mb``,
``peak.peak_mb`` and ``peak.growth_mb``.  Measure in a fresh process: memory
freed earlier in the same process is reused without raising RSS.
"""

import re
from pathlib import Path


def status_mb(key: str) -> float:
    """A ``/proc/self/status`` field given in kB (``VmRSS``, ``VmHWM``), in MB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024


class PeakRSS:
    def __enter__(self):
        self.before_mb = status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        return self

    def __exit__(self, *exc):
        self.peak_mb = status_mb("VmHWM")
        self.growth_mb = self.peak_mb - self.before_mb
