"""Progress bars with an ETA for the long steps, and how long the rest of a run takes.

``show_progress`` (a config option, ``--show_progress=...``) decides whether the
steps draw bars: ``true`` always, ``false`` never, ``~`` (the default) when
stderr is a terminal -- so a run in a terminal shows live bars and a run
whose output goes to a file (a reproduction worker, a search trial, CI) does
not fill it with bar redraws.  With or without bars the trainers log one line
per epoch with its time and the time left (:func:`time_left`).

Bars are tqdm's, RecBole's own choice, drawn on stderr; they appear only after
``delay`` seconds, so quick steps stay silent.
"""

import math
import sys

from tqdm import tqdm


def bars_enabled(show_progress) -> bool:
    """The ``show_progress`` option as a yes/no: ``None`` -> is stderr a terminal."""
    if show_progress is None:
        return sys.stderr.isatty()
    return bool(show_progress)


def progress_bar(total, desc: str, unit: str, enabled: bool, delay: float = 0.5, **kwargs):
    """A tqdm bar on stderr, removed when it closes; with ``enabled`` false a silent
    one (the same ``update`` / ``set_postfix_str`` / ``close`` methods, no output)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False,
                dynamic_ncols=True, delay=delay, file=sys.stderr, **kwargs)


def time_left(elapsed: float, done: int, total: int, budget: float | None = None,
              spent: float | None = None) -> float | None:
    """Seconds left after ``done`` of ``total`` equal steps that took ``elapsed``:
    the remaining steps at the mean time per step; with a ``budget``, only the
    steps that still fit in it at the mean cost per step so far (``spent``: what
    the done steps used of the budget, in the budget's own clock; default
    ``elapsed``).  ``None`` before the first step."""
    if done <= 0:
        return None
    remaining = total - done
    spent = elapsed if spent is None else spent
    if budget and spent > 0:
        remaining = min(remaining, math.floor((budget - spent) * done / spent))
    return max(0, remaining) * elapsed / done


def format_duration(seconds: float | None) -> str:
    """``3.2`` -> ``3.2s``, ``225`` -> ``3m45s``, ``4500`` -> ``1h15m``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
