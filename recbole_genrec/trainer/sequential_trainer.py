"""RecBole's ``Trainer`` with plain-data checkpoints and per-user evaluation output.

* Checkpoints hold tensors and plain Python data only (the config as a dict of
  primitives), so they load with ``torch.load(..., weights_only=True)`` -- the
  torch >= 2.6 default that RecBole 1.2.1's pickled ``Config`` breaks.
* ``evaluate`` keeps, next to RecBole's metrics, each evaluated user's token and
  the 1-based rank of its target in the top-``max(topk)`` list (0 = not
  ranked): the per-user data that paired significance tests need.
* Every epoch's training wall time is recorded in ``epoch_times`` and every
  validation's metrics in ``valid_history`` (training curves).
* ``train_time_budget`` (seconds, validation included; ``~`` = none): before each
  epoch, training stops if the next epoch would overrun the budget at the mean
  time per epoch so far (``stop_reason`` says why training ended).
"""

import enum
import os
import uuid
from pathlib import Path
from time import perf_counter

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import EvaluatorType


class TrainingBudgetReached(Exception):
    """Raised before an epoch that would overrun ``train_time_budget``."""


def plain_value(value):
    """Map a config value to JSON/YAML-safe primitives (enums, devices -> str)."""
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def plain_config(config) -> dict:
    return plain_value(dict(config.final_config_dict))


class SequentialTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names checkpoints <model>-<time to the second>.pth: runs started in
        # the same second would overwrite each other's; add the dataset and a nonce
        stem = Path(self.saved_model_file).stem
        self.saved_model_file = str(Path(self.checkpoint_dir) / (
            f"{stem.replace(config['model'], config['model'] + '-' + config['dataset'], 1)}"
            f"-{os.getpid()}-{uuid.uuid4().hex[:6]}.pth"))
        self.epoch_times = []
        self.valid_history = []  # one dict per validation: epoch, seconds into fit, metrics
        self.time_budget = config["train_time_budget"]
        self.stop_reason = None  # epochs | early_stopping | time_budget
        self._fit_start = None
        self._epoch = None
        self.last_eval_users = None  # user tokens of the last evaluate() call
        self.last_eval_ranks = None  # 1-based rank of the target, 0 = outside top-k
        self.last_valid_result = None
        self.last_diagnostics = {}  # extra evaluation output (generative models)

    def loss_state_summary(self) -> dict:
        return {}

    # checkpoints -------------------------------------------------------------------
    def _checkpoint_state(self, epoch) -> dict:
        return {
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        torch.save(self._checkpoint_state(epoch), path)
        if verbose:
            self.logger.info(f"Saving current: {path}")

    def _restore_state(self, checkpoint: dict, with_optimizer: bool):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        if with_optimizer:
            self.optimizer.load_state_dict(checkpoint["optimizer"])

    def resume_checkpoint(self, resume_file):
        self.saved_model_file = str(resume_file)
        checkpoint = torch.load(resume_file, map_location=self.device, weights_only=True)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self._restore_state(checkpoint, with_optimizer=True)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    # training ----------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        self._fit_start = perf_counter()
        first_epoch = self.start_epoch
        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        except TrainingBudgetReached:
            self.stop_reason = "time_budget"
            self.logger.info(
                f"train_time_budget={self.time_budget}s reached after {len(self.epoch_times)} "
                f"epochs ({perf_counter() - self._fit_start:.0f}s); best valid score "
                f"{self.best_valid_score}")
            if saved and not self.valid_history:  # budget ended before any validation
                self._save_checkpoint(self._epoch)
            return self.best_valid_score, self.best_valid_result
        done = len(self.epoch_times)
        self.stop_reason = "epochs" if first_epoch + done >= self.epochs else "early_stopping"
        return result

    def _next_epoch_overruns_budget(self) -> bool:
        """True when one more epoch, at the mean time per epoch so far (validation
        included), would end past ``train_time_budget``."""
        if not self.time_budget or not self.epoch_times:
            return False
        elapsed = perf_counter() - self._fit_start
        return elapsed * (1 + 1 / len(self.epoch_times)) > self.time_budget

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._next_epoch_overruns_budget():
            raise TrainingBudgetReached
        self._epoch = epoch_idx
        start = perf_counter()
        loss = self._run_train_epoch(train_data, epoch_idx, show_progress)
        self.epoch_times.append(perf_counter() - start)
        return loss

    def _run_train_epoch(self, train_data, epoch_idx, show_progress=False):
        return super()._train_epoch(train_data, epoch_idx, show_progress=show_progress)

    # evaluation --------------------------------------------------------------------
    def _valid_epoch(self, valid_data, show_progress=False):
        score, self.last_valid_result = super()._valid_epoch(valid_data, show_progress)
        self.valid_history.append({
            "epoch": self._epoch,
            "fit_s": round(perf_counter() - self._fit_start, 3) if self._fit_start else None,
            **{k: float(v) for k, v in self.last_valid_result.items()}})
        return score, self.last_valid_result

    def _collect_batch(self, batched_data):
        """Push one batch's ranking into the collector; return the batch's interaction."""
        interaction, scores, positive_u, positive_i = self._full_sort_batch_eval(batched_data)
        self.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        return interaction

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False,
                 diagnostics=False):
        """RecBole's evaluation; ``diagnostics`` asks subclasses for extra, costlier output."""
        if not eval_data:
            return None
        if not isinstance(eval_data, FullSortEvalDataLoader):
            raise ValueError("recbole_genrec evaluates with eval_args.mode=full only")
        if load_best_model:
            path = model_file or self.saved_model_file
            checkpoint = torch.load(path, map_location=self.device, weights_only=True)
            self._restore_state(checkpoint, with_optimizer=False)
            self.logger.info(f"Loading model structure and parameters from {path}")
        self.model.eval()
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        if self.config["eval_type"] == EvaluatorType.RANKING:
            self.tot_item_num = eval_data._dataset.item_num

        uid_field = eval_data._dataset.uid_field
        users = []
        for batched_data in eval_data:
            interaction = self._collect_batch(batched_data)
            users.append(interaction[uid_field].cpu())
        self.eval_collector.model_collect(self.model)
        struct = self.eval_collector.get_data_struct()
        result = self.evaluator.evaluate(struct)

        user_ids = torch.cat(users)
        self.last_eval_users = eval_data._dataset.id2token(uid_field, user_ids.numpy()).tolist()
        topk = struct.get("rec.topk")
        hits = topk[:, :-1].bool()
        self.last_eval_ranks = torch.where(
            hits.any(1), hits.float().argmax(1) + 1, torch.zeros(len(hits), dtype=torch.long)
        ).tolist()
        return result
