"""The names of a run's files, in one place.

A run ``<model>-<dataset>-<loss>`` (:func:`run_name`) writes

* its result JSON: ``--result_file``, else ``<checkpoint_dir>/<run name>.json``, or the
  first free ``<run name>-2.json``, ``-3.json`` ... (:func:`default_result_file`,
  :func:`free_result_file`);
* its best checkpoint (named by the trainer: ``<model>-<dataset>-<time>-<pid>-<nonce>.pth``)
  and next to it the whole training state, ``<checkpoint stem>-last.pth``
  (:func:`last_checkpoint`);
* its TensorBoard run ``log_tensorboard/<name>`` (:func:`tensorboard_name`);
* when re-evaluated, ``<result stem>-eval.json`` (:func:`eval_result_file`).

Imports nothing of the project.
"""

import json
import os
from pathlib import Path


def run_name(config) -> str:
    """``<model>-<dataset>-<loss>``: the default name of a run's result JSON and
    TensorBoard folder."""
    return f"{config['model']}-{config['dataset']}-{config['loss'] or 'default'}"


def default_result_file(config) -> Path:
    return Path(config["checkpoint_dir"]) / f"{run_name(config)}.json"


def read_result(path) -> dict | None:
    """The result JSON at ``path``, or None (absent, unreadable, not a result)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _holds_no_work(path: Path) -> bool:
    """A stub of a run that failed before any epoch ended (nothing to resume or read)."""
    data = read_result(path) or {}
    return data.get("status") == "failed" and not data.get("epochs_done")


def free_result_file(path: Path) -> Path:
    """``path``, or the first of ``<stem>-2.json``, ``<stem>-3.json``, ... that does not
    exist or holds a stub without work (a run that failed before its first epoch)."""
    candidate, n = path, 1
    while candidate.exists() and not _holds_no_work(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def last_checkpoint(best_checkpoint) -> str:
    """The training state saved after every epoch beside the best checkpoint
    (``x.pth`` -> ``x-last.pth``)."""
    path = Path(best_checkpoint)
    return str(path.with_name(f"{path.stem}-last{path.suffix}"))


def eval_result_file(result_file) -> str:
    """The result JSON of a re-evaluation of the run whose result is ``result_file``."""
    stem, _ = os.path.splitext(result_file)
    return f"{stem}-eval.json"


def tensorboard_name(result_file, checkpoint_dir) -> str:
    """The run's TensorBoard folder name: the result JSON's stem (``TIGER-Office-apao``), or
    ``<its folder>-<stem>`` when the JSON lies elsewhere than ``checkpoint_dir`` or
    the working directory (``runs/TIGER_apao/seed2020.json`` -> ``TIGER_apao-seed2020``),
    so the runs of a grid get distinct folders."""
    result_file = Path(result_file).resolve()
    if result_file.parent in (Path(checkpoint_dir).resolve(), Path.cwd().resolve()):
        return result_file.stem
    return f"{result_file.parent.name}-{result_file.stem}"
