"""One TensorBoard run per result JSON, in RecBole's ``log_tensorboard/<run>/`` layout.

RecBole's ``Trainer`` opens ``log_tensorboard/<log file name>/`` as soon as it
is built and writes its hyperparameters as a second run (a time-stamped
sub-folder).  This project's trainers write one folder per run instead,
``log_tensorboard/<name>`` with ``name`` from :func:`run_name_for` (the result
JSON's name), opened at the first write; event files that an earlier run of
the same name left there are removed then, as the result JSON is replaced.

Scalars (step = epoch; the trainers list what they write):
``Loss/Train`` and ``Vaild_score`` (RecBole's tags, spelling included),
``Loss/<part>``, ``PrefixWeight/<w_m>``, ``LR``, ``Valid/<metric>``,
``PrefixRecall@K/level_<m>``, ``Time/<step>_s``; after the test pass
``Test/<metric>`` and ``PR@K``; hyperparameters with the best valid score in
the HPARAMS tab.  View with ``tensorboard --logdir log_tensorboard``.
"""

import math
import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from recbole_genrec.run_files import tensorboard_name as run_name_for  # noqa: F401

TENSORBOARD_ROOT = "log_tensorboard"  # relative to the working directory, as in RecBole


def discard_writer(writer: SummaryWriter) -> None:
    """Close a writer that wrote nothing and remove the folder it created."""
    writer.close()
    folder = Path(writer.log_dir)
    if folder.is_dir() and len(list(folder.iterdir())) <= 1:  # only its header event file
        shutil.rmtree(folder)


class TensorBoardRun:
    """A ``SummaryWriter`` for ``log_tensorboard/<name>``, opened at the first write;
    ``enabled=False`` (the other ranks of a data-parallel run) writes nothing."""

    def __init__(self, name: str, root=TENSORBOARD_ROOT, enabled: bool = True):
        self.log_dir = Path(root) / name
        self.enabled = enabled
        self._writer = None

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for old in self.log_dir.glob("events.out.tfevents.*"):
                old.unlink()
            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def add_scalar(self, tag: str, value, step=None) -> None:
        if self.enabled:
            self.writer.add_scalar(tag, value, step)

    def add_scalars_at(self, scalars: dict, step: int) -> None:
        """Each ``tag: value`` at ``step``; ``None`` and non-finite values are skipped."""
        if not self.enabled:
            return
        for tag, value in scalars.items():
            if value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(tag, float(value), step)

    def add_hparams(self, hparam_dict: dict, metric_dict: dict, **_ignored) -> None:
        """Hyperparameters in this run (``SummaryWriter.add_hparams`` would start another)."""
        if not self.enabled:
            return
        for summary in hparams(hparam_dict, metric_dict):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metric_dict.items():
            self.writer.add_scalar(tag, value)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
