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
* What a run shows: with ``show_progress`` bars over the training samples and
  the users evaluated (:mod:`recbole_genrec.progress`), and always one log line
  per epoch -- its training and validation time, loss, valid score, and the
  time left at most (remaining epochs at the mean epoch time, capped by the
  budget).  RecBole's own per-epoch lines come back with ``verbose: true``.
* TensorBoard: one run per result JSON (:mod:`.tensorboard_run`); per epoch
  ``LR``, ``Valid/<metric>``, ``Time/train_s`` and ``Time/valid_s`` next to
  RecBole's ``Loss/Train`` (subclasses add theirs in ``epoch_scalars``).
"""

import os
import uuid
from pathlib import Path
from time import perf_counter, process_time

import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import EvaluatorType

from recbole_genrec import distributed
from recbole_genrec.errors import ConfigError
from recbole_genrec.plain_data import plain_checkpoint, plain_config, plain_value  # noqa: F401
from recbole_genrec.progress import format_duration, progress_bar, time_left
from recbole_genrec.run_files import last_checkpoint, run_name
from recbole_genrec.trainer.checkpoint_io import atomic_save, load_checkpoint, restore_rng, rng_state
from recbole_genrec.trainer.divergence import DivergenceMonitor
from recbole_genrec.trainer.tensorboard_run import TensorBoardRun, discard_writer


BUDGET_CLOCKS = {"wall": perf_counter, "process": process_time}  # train_time_clock
# the evaluation collector's tensors with one row per evaluated user
PER_USER_KEYS = ("rec.topk", "rec.items", "rec.score", "rec.meanrank", "data.label")


def _first_occurrences(ids: torch.Tensor):
    """Sorted unique ``ids`` and the index of each one's first occurrence in ``ids``."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(len(ids))
    first = torch.full((len(unique),), len(ids), dtype=torch.long).scatter_reduce(
        0, inverse, positions, reduce="amin")
    return unique, first


# options a resumed run may change (presentation and placement, not what is trained)
RESUME_MAY_DIFFER = {"resume_from", "result_file", "show_progress", "verbose", "threads",
                     "gpu_id", "device", "use_gpu", "state", "checkpoint_dir"}


class TrainingBudgetReached(Exception):
    """Raised before an epoch that would overrun ``train_time_budget``."""


class _CountedBatches:
    """Iterates a dataloader and advances ``bar`` by each batch's size; every other
    attribute is the dataloader's (RecBole's ``_train_epoch`` reads a few)."""

    def __init__(self, data, bar):
        self._data, self._bar = data, bar

    def __iter__(self):
        for batch in self._data:
            yield batch
            self._bar.update(len(batch))

    def __len__(self):
        return len(self._data)

    def __getattr__(self, name):
        return getattr(self._data, name)


class SequentialTrainer(Trainer):
    def __init__(self, config, model):
        # RecBole's ensure_dir (exists? then makedirs) fails when parallel runs create
        # the same folder at once; exist_ok does not
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        super().__init__(config, model)
        # RecBole names checkpoints <model>-<time to the second>.pth: runs started in
        # the same second would overwrite each other's; add the dataset and a nonce
        stem = Path(self.saved_model_file).stem
        self.saved_model_file = distributed.broadcast(str(Path(self.checkpoint_dir) / (
            f"{stem.replace(config['model'], config['model'] + '-' + config['dataset'], 1)}"
            f"-{os.getpid()}-{uuid.uuid4().hex[:6]}.pth")))  # rank 0's name on every rank
        # the whole training state after every epoch (resume), next to the best model
        self.last_model_file = last_checkpoint(self.saved_model_file)
        self._saving = False
        self._train_data = None
        self._resumed = None  # the training state loaded by resume_from
        self.result_file = None  # the run's result JSON (quick_start sets it; kept in the state)
        # RecBole's writer, named after the log file, is replaced by one per result JSON
        discard_writer(self.tensorboard)
        self.tensorboard = TensorBoardRun(run_name(config), enabled=distributed.is_main())
        self.epoch_times = []
        self.valid_times = []
        self.best_epoch = None  # epoch of the best validation so far
        self.valid_history = []  # one dict per validation: epoch, seconds into fit, metrics
        self.divergence = DivergenceMonitor(config, model)
        self.time_budget = config["train_time_budget"]
        self._budget_clock = BUDGET_CLOCKS[config["train_time_clock"]]
        self._budget_start = None
        self.stop_reason = None  # epochs | early_stopping | time_budget
        self._fit_start = None
        self._fit_before = 0.0  # seconds of fit in the runs this one resumes
        self._first_epoch = 0
        self._validating = False
        self._epoch = None
        self._last_train_loss = None
        self._log_epochs = True
        self._eval_label = "test"
        self.last_eval_users = None  # user tokens of the last evaluate() call
        self.last_eval_uids = None  # their internal ids
        self.last_eval_ranks = None  # 1-based rank of the target, 0 = outside top-k
        self.last_valid_result = None
        self.last_diagnostics = {}  # extra evaluation output (generative models)

    def loss_state_summary(self) -> dict:
        return {}

    # checkpoints -------------------------------------------------------------------
    def _checkpoint_state(self, epoch) -> dict:
        return plain_checkpoint(self, epoch)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not distributed.is_main():  # the replicas are identical; rank 0 writes
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_save(self._checkpoint_state(epoch), path)
        if verbose:
            self.logger.info(f"Saving current: {path}")

    def _restore_state(self, checkpoint: dict, with_optimizer: bool):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        if with_optimizer:
            self.optimizer.load_state_dict(checkpoint["optimizer"])

    # resume ------------------------------------------------------------------------
    def training_state(self, epoch, done=False) -> dict:
        """Everything a killed run needs to continue after ``epoch`` as if never stopped."""
        best = self.best_valid_result
        return {
            **self._checkpoint_state(epoch),
            "best_model_file": self.saved_model_file,
            "best_epoch": self.best_epoch,
            "best_valid_result": {k: float(v) for k, v in best.items()} if best else None,
            "valid_history": self.valid_history,
            "epoch_times": self.epoch_times,
            "valid_times": self.valid_times,
            "budget_spent": self.budget_spent() if self._budget_start is not None else 0.0,
            "fit_s": self.fit_seconds(),
            "stop_reason": self.stop_reason,
            "training_done": done,
            "result_file": self.result_file,
            "rng": rng_state(self._train_data),
            "divergence": self.divergence.state_dict(),
            **self.extra_training_state(),
        }

    def extra_training_state(self) -> dict:
        return {}

    def restore_extra_training_state(self, state: dict) -> None:
        pass

    def _save_training_state(self, epoch, done=False):
        if self._saving and distributed.is_main():
            atomic_save(self.training_state(epoch, done), self.last_model_file)

    def resume_from(self, path, state=None) -> None:
        """Continue the run whose ``-last.pth`` training state is at ``path`` (``state``:
        its contents, when already loaded)."""
        state = state if state is not None else load_checkpoint(path, "--resume_from", self.device)
        if "training_done" not in state:
            raise ConfigError(f"--resume_from={path} is a model checkpoint, not a training state",
                              None, "give the run's -last.pth file (start from a model's weights "
                              "with --init_from)")
        self._check_same_run(state["config"], path)
        self._restore_state(state, with_optimizer=True)
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"]
        self.best_epoch = state["best_epoch"]
        self.valid_history = list(state["valid_history"])
        self.epoch_times = list(state["epoch_times"])
        self.valid_times = list(state["valid_times"])
        self.stop_reason = state["stop_reason"]
        self._fit_before = state.get("fit_s") or max(
            [h.get("fit_s") or 0.0 for h in self.valid_history], default=0.0)
        self.saved_model_file = self._best_checkpoint(state, path)
        self.last_model_file = str(path)
        if "divergence" in state:  # (states written before it was kept: start afresh)
            self.divergence.load_state_dict(state["divergence"])
        self.restore_extra_training_state(state)
        self._resumed = state
        self.logger.info(f"resuming from {path}: {len(self.epoch_times)} epochs done"
                         + (", training had ended" if state["training_done"] else
                            f", continuing at epoch {self.start_epoch}"))

    def _best_checkpoint(self, state: dict, path) -> str:
        """The resumed run's best checkpoint, which its test loads: where the state says,
        or next to ``path`` (the run's folder was moved).  One that must exist and is in
        neither place is an error now, not after the remaining epochs."""
        recorded = Path(state["best_model_file"])
        beside = Path(path).parent / recorded.name
        if recorded.is_file() or not beside.is_file():
            needed = state["best_epoch"] is not None or self.eval_step <= 0
            if needed and not recorded.is_file():
                raise ConfigError(
                    f"--resume_from={path}: the run's best checkpoint {recorded} is missing "
                    f"(its test loads it), and {beside} does not exist either", None,
                    "put the file back (in either place), or start the run again")
            return str(recorded)
        self.logger.info(f"best checkpoint {recorded} not found; using {beside}")
        return str(beside)

    def _check_same_run(self, stored: dict, path):
        current = plain_config(self.config)
        changed = sorted(k for k in set(stored) | set(current)
                         if k not in RESUME_MAY_DIFFER and stored.get(k) != current.get(k))
        if "epochs" in changed:
            # Extending a run is refused on purpose: the warm-up and cosine decay of the
            # generative trainer are laid over epochs x steps, so more epochs would change
            # the schedule of the epochs already trained -- the result would match no run
            # trained with that many epochs from the start.
            raise ConfigError(
                f"--resume_from={path} was trained for epochs={stored.get('epochs')!r}, this "
                f"run asks for {current.get('epochs')!r}", None,
                "a resumed run keeps its epochs (the learning-rate schedule is laid over "
                "them); train a longer run from the start with the larger --epochs")
        if changed:
            shown = ", ".join(f"{k}={current.get(k)!r} (checkpoint: {stored.get(k)!r})"
                              for k in changed[:4])
            raise ConfigError(f"--resume_from={path} was trained with other options: {shown}",
                              None, "resume with the killed run's own command and options "
                              "(its log or result JSON lists them)")

    def resume_checkpoint(self, resume_file):
        self.saved_model_file = str(resume_file)
        checkpoint = load_checkpoint(resume_file, "resume_file", self.device)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self._restore_state(checkpoint, with_optimizer=True)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    # training ----------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        """RecBole's ``fit``; ``verbose`` logs this trainer's line per epoch, and
        RecBole's own lines as well when the config says ``verbose: true``."""
        self._fit_start, self._budget_start = perf_counter(), self._budget_clock()
        first_epoch = self._first_epoch = self.start_epoch
        self._validating = bool(valid_data) and self.eval_step > 0
        self._log_epochs = verbose
        self._saving, self._train_data = saved, train_data
        if self._resumed is not None:
            restore_rng(self._resumed["rng"], train_data)
            self._budget_start -= self._resumed["budget_spent"]
            if (self._resumed["training_done"] or self.start_epoch >= self.epochs
                    or self.cur_step > self.stopping_step):  # killed just before the end
                self.stop_reason = self.stop_reason or "epochs"
                return self.best_valid_score, self.best_valid_result

        def after_validation(epoch, valid_score):
            if self.cur_step == 0:  # RecBole's early_stopping resets it on an improvement
                self.best_epoch = epoch
            self._end_epoch(epoch, validated=True)
            if callback_fn:
                callback_fn(epoch, valid_score)

        recbole_lines = verbose and bool(self.config["verbose"])
        try:
            result = super().fit(train_data, valid_data, recbole_lines, saved, show_progress,
                                 after_validation)
        except TrainingBudgetReached:
            self.stop_reason = "time_budget"
            self.logger.info(
                f"train_time_budget={self.time_budget}s ({self.config['train_time_clock']} "
                f"clock) reached after {len(self.epoch_times)} epochs "
                f"({self.budget_spent():.0f}s); best valid score "
                f"{self.best_valid_score}")
            if saved and not self.valid_history:  # budget ended before any validation
                self._save_checkpoint(self._epoch)
            if self._epoch is not None:
                self._save_training_state(self._epoch, done=True)
            return self.best_valid_score, self.best_valid_result
        last = self._epoch if self._epoch is not None else first_epoch - 1
        self.stop_reason = "epochs" if last + 1 >= self.epochs else "early_stopping"
        if self._epoch is not None:
            self._save_training_state(self._epoch, done=True)
        if self.stop_reason == "early_stopping":
            self.logger.info(
                f"early stopping: valid {self.valid_metric} did not improve in "
                f"{self.stopping_step} validations; best epoch {self.best_epoch}")
        return result

    def fit_seconds(self) -> float:
        """Seconds in ``fit`` so far, the resumed runs' included."""
        if self._fit_start is None:
            return self._fit_before
        return self._fit_before + perf_counter() - self._fit_start

    def budget_spent(self) -> float:
        """Seconds of ``train_time_clock`` since ``fit`` started: ``wall`` time, or
        ``process`` CPU time (the same compute however loaded the machine is)."""
        return self._budget_clock() - self._budget_start

    def shared_budget_spent(self) -> float:
        """:meth:`budget_spent` of rank 0 on every rank (a data-parallel run's decisions
        -- stop, learning rate -- must agree); a collective: every rank calls it."""
        spent = torch.tensor([self.budget_spent()], dtype=torch.float64)
        return float(distributed.broadcast_tensor(spent)[0])

    def _next_epoch_overruns_budget(self) -> bool:
        """True when one more epoch, at the mean time per epoch so far (validation
        included), would end past ``train_time_budget``."""
        if not self.time_budget or not self.epoch_times:
            return False
        return self.shared_budget_spent() * (1 + 1 / len(self.epoch_times)) > self.time_budget

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._next_epoch_overruns_budget():
            raise TrainingBudgetReached
        self._epoch = epoch_idx
        start = perf_counter()
        loss = self._run_train_epoch(train_data, epoch_idx, show_progress)
        self.epoch_times.append(perf_counter() - start)
        self._last_train_loss = sum(loss) if isinstance(loss, tuple) else loss
        if self._fit_start is not None and not self._validates(epoch_idx):  # (inside fit)
            self._end_epoch(epoch_idx, validated=False)
        return loss

    def _run_train_epoch(self, train_data, epoch_idx, show_progress=False):
        with self._train_bar(train_data, epoch_idx, show_progress) as bar:
            return super()._train_epoch(_CountedBatches(train_data, bar), epoch_idx)

    def _train_bar(self, train_data, epoch_idx, show_progress):
        """Bar over the epoch's training samples (ETA from the samples per second);
        ``train_data`` may also be a plain list of batches (benchmarks pass one)."""
        desc = f"train epoch {epoch_idx} ({epoch_idx + 1}/{self.epochs})"
        total = getattr(train_data, "sample_size", None)
        return progress_bar(total, desc, "sample", show_progress)

    def _check_nan(self, loss):
        """RecBole calls this for every batch: the divergence checks (NaN included), on
        the loss averaged over the ranks (so that every rank stops together)."""
        self.divergence.check(self._epoch, float(distributed.mean(loss.detach())))

    def _validates(self, epoch_idx) -> bool:
        """Whether RecBole's ``fit`` validates after this epoch."""
        return self._validating and (epoch_idx + 1) % self.eval_step == 0

    # per-epoch report ----------------------------------------------------------------
    def _end_epoch(self, epoch, validated):
        self.tensorboard.add_scalars_at(self.epoch_scalars(epoch, validated), epoch)
        if self._log_epochs:
            self.logger.info(self._epoch_line(epoch, validated))
        self._save_training_state(epoch)

    def epoch_scalars(self, epoch, validated) -> dict:
        """TensorBoard scalars of the epoch that just ended (``tag: value``)."""
        scalars = {"LR": self.optimizer.param_groups[0]["lr"], "Time/train_s": self.epoch_times[-1]}
        if validated:
            scalars["Time/valid_s"] = self.valid_times[-1]
            scalars.update({f"Valid/{k}": v for k, v in self.last_valid_result.items()})
        return scalars

    def _epoch_line(self, epoch, validated) -> str:
        done = epoch + 1 - self._first_epoch
        elapsed = perf_counter() - self._fit_start
        left = time_left(elapsed, done, self.epochs - self._first_epoch, self.time_budget,
                         self.budget_spent())
        line = (f"epoch {epoch} ({epoch + 1}/{self.epochs}): train "
                f"{format_duration(self.epoch_times[-1])}, loss {self._last_train_loss:.4f}")
        if validated:
            score = self.last_valid_result.get(self.valid_metric)
            best = ("best" if self.best_epoch == epoch
                    else f"best {self.best_valid_score:.4f} at epoch {self.best_epoch}")
            line += (f" | valid {format_duration(self.valid_times[-1])}, "
                     f"{self.valid_metric} {score:.4f} ({best})")
        line += f" | {format_duration(elapsed)} elapsed"
        if epoch + 1 < self.epochs and left:
            line += f", at most {format_duration(left)} left"
        return line

    # evaluation --------------------------------------------------------------------
    def _valid_epoch(self, valid_data, show_progress=False):
        start, self._eval_label = perf_counter(), f"valid {self._epoch}"
        try:
            score, self.last_valid_result = super()._valid_epoch(valid_data, show_progress)
        finally:
            self._eval_label = "test"
        self.valid_times.append(perf_counter() - start)
        self.valid_history.append({
            "epoch": self._epoch,
            "fit_s": round(self.fit_seconds(), 3) if self._fit_start else None,
            **{k: float(v) for k, v in self.last_valid_result.items()}})
        return score, self.last_valid_result

    def _collect_batch(self, batched_data):
        """Push one batch's ranking into the collector; return the batch's interaction."""
        interaction, scores, positive_u, positive_i = self._full_sort_batch_eval(batched_data)
        self.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        return interaction

    def per_user_outputs(self) -> dict:
        """Per-user tensors of the last evaluation besides RecBole's (subclasses)."""
        return {}

    def set_per_user_outputs(self, outputs: dict) -> None:
        pass

    def _gather_rows(self, positions, user_ids, struct):
        """Every rank's evaluation rows into one set on every rank: the ranked lists in
        ``struct`` and the subclasses' per-user outputs, in the evaluation data's row
        order (``positions``: each local row's index there), without the duplicates
        the distributed sampler pads each shard with.  Rows are told apart by their
        index, not their user: a split that gives a user several evaluation rows
        keeps them all."""
        rows = {k: struct.get(k) for k in PER_USER_KEYS if k in struct}
        parts = distributed.gather((positions, user_ids, rows, self.per_user_outputs()))
        _, first = _first_occurrences(torch.cat([p[0] for p in parts]))
        user_ids = torch.cat([p[1] for p in parts])[first]
        for key in rows:
            struct.set(key, torch.cat([p[2][key] for p in parts])[first])
        extras = {key: torch.cat([p[3][key] for p in parts])[first] for key in parts[0][3]}
        return user_ids, extras

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False,
                 diagnostics=False):
        """RecBole's evaluation; ``diagnostics`` asks subclasses for extra, costlier output."""
        if not eval_data:
            return None
        if not isinstance(eval_data, FullSortEvalDataLoader):
            raise ConfigError("recbole_genrec evaluates with eval_args.mode=full only",
                              "eval_args", "set eval_args.mode: full")
        if load_best_model:
            path = model_file or self.saved_model_file
            distributed.barrier()  # rank 0 has written it
            checkpoint = load_checkpoint(path, "the best checkpoint", self.device)
            self._restore_state(checkpoint, with_optimizer=False)
            self.logger.info(f"Loading model structure and parameters from {path}")
        self.model.eval()
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        if self.config["eval_type"] == EvaluatorType.RANKING:
            self.tot_item_num = eval_data._dataset.item_num

        uid_field = eval_data._dataset.uid_field
        users = []
        with progress_bar(eval_data.sample_size, self._eval_label, "user", show_progress) as bar:
            for batched_data in eval_data:
                interaction = self._collect_batch(batched_data)
                users.append(interaction[uid_field].cpu())
                bar.update(len(interaction))
        self.eval_collector.model_collect(self.model)
        struct = self.eval_collector.get_data_struct()
        user_ids = torch.cat(users)
        if distributed.active():
            positions = torch.tensor(list(iter(eval_data.sampler)), dtype=torch.long)
            if len(positions) != len(user_ids):
                raise RuntimeError(f"rank {distributed.rank()}: {len(user_ids)} evaluation "
                                   f"rows for {len(positions)} sampled indices")
            user_ids, extras = self._gather_rows(positions, user_ids, struct)
            self.set_per_user_outputs(extras)
        result = self.evaluator.evaluate(struct)

        self.last_eval_uids = user_ids  # internal ids, in the order of the outputs below
        self.last_eval_users = eval_data._dataset.id2token(uid_field, user_ids.numpy()).tolist()
        topk = struct.get("rec.topk")
        hits = topk[:, :-1].bool()
        self.last_eval_ranks = torch.where(
            hits.any(1), hits.float().argmax(1) + 1, torch.zeros(len(hits), dtype=torch.long)
        ).tolist()
        return result
