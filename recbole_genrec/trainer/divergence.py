"""Divergence detection: stop a run whose training has gone wrong, and say why.

Two signs, checked at every optimizer step (generative trainer) or batch
(RecBole's models):

* the loss or the gradient norm is NaN or infinite;
* the loss has stopped moving -- over the last ``divergence_steps`` steps its
  range is below 1e-4 of its size -- while the parameters' norm has grown
  more than ``divergence_norm_ratio`` times since training began.  This is
  what too high a learning rate does to these models: AdamW's steps blow the
  weights up, the normalised activations saturate and the loss sits at a
  constant (e.g. ln of the codebook size for TIGER) that never becomes NaN;
* the loss is falling without bound: its epoch mean is below zero and has
  fallen in each of the last ``FALLING_EPOCHS`` epochs by at least as much as
  in the epoch before.  A loss that is bounded below slows down as it nears
  its bound; one that keeps falling as fast or faster has found a direction in
  which it has no bound (BEAR with the gradient through its threshold fell
  -2.3, -23.6, -62.9, -119.4, ... on Office: stopped after the fourth epoch).
  Checked when an epoch's first step arrives, on the epochs before it.

Either raises :class:`TrainingDiverged`, a :class:`UserError` naming the epoch
and step and suggesting a learning rate; the run's result JSON is marked
``diverged``.
"""

import math
from collections import deque

import torch

from recbole_genrec.errors import UserError

PAPER_LR = 5e-4  # APAO §5.1.3; the suggestion never goes above it
FLAT = 1e-4  # relative range of the loss over the window below which it "has not changed"
FALLING_EPOCHS = 3  # epochs of a negative loss falling without slowing down: unbounded


class TrainingDiverged(UserError):
    """The training loss or gradients diverged."""


def parameter_norm(model) -> float:
    return float(torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.detach()) for p in model.parameters()])))


class DivergenceMonitor:
    def __init__(self, config, model):
        self.model = model
        self.learning_rate = config["learning_rate"]
        self.window = deque(maxlen=config["divergence_steps"])
        self.norm_ratio = config["divergence_norm_ratio"]
        self.initial_norm = parameter_norm(model)
        self.step = 0
        self.epoch, self.epoch_sum, self.epoch_steps = None, 0.0, 0
        self.epoch_means = deque(maxlen=FALLING_EPOCHS + 1)  # of the last finished epochs

    def reset_reference(self) -> None:
        """Measure the weights' growth from now on (after ``--init_from`` loaded another
        run's weights: their norm, not the random initialisation's, is the start)."""
        self.initial_norm = parameter_norm(self.model)

    def state_dict(self) -> dict:
        """What a resumed run needs to go on checking as if never stopped."""
        return {"window": list(self.window), "initial_norm": self.initial_norm,
                "step": self.step, "epoch": self.epoch, "epoch_sum": self.epoch_sum,
                "epoch_steps": self.epoch_steps, "epoch_means": list(self.epoch_means)}

    def load_state_dict(self, state: dict) -> None:
        self.window.clear()
        self.window.extend(state["window"])
        self.epoch_means.clear()
        self.epoch_means.extend(state["epoch_means"])
        self.initial_norm, self.step = state["initial_norm"], state["step"]
        self.epoch, self.epoch_sum = state["epoch"], state["epoch_sum"]
        self.epoch_steps = state["epoch_steps"]

    def check(self, epoch: int, loss: float, grad_norm: float | None = None) -> None:
        """After one step's forward (and backward, when ``grad_norm`` is given)."""
        if epoch != self.epoch:
            self._end_epoch()
            self.epoch = epoch
        self.step += 1
        if not math.isfinite(loss):
            self._stop(epoch, f"the training loss is {loss}")
        if grad_norm is not None and not math.isfinite(grad_norm):
            self._stop(epoch, f"the gradient norm is {grad_norm} (loss {loss:.4g})")
        self.epoch_sum += loss
        self.epoch_steps += 1
        self.window.append(loss)
        if len(self.window) < self.window.maxlen:
            return
        spread = max(self.window) - min(self.window)
        if spread <= FLAT * max(1.0, abs(loss)):
            ratio = parameter_norm(self.model) / max(self.initial_norm, 1e-12)
            if ratio > self.norm_ratio:
                self._stop(epoch, f"the loss has stayed at {loss:.4f} for {len(self.window)} steps "
                                  f"while the weights' norm grew {ratio:.3g}x")

    def _end_epoch(self) -> None:
        """Close the epoch whose steps were checked so far; stop if the loss is falling
        without bound (see the module doc)."""
        if not self.epoch_steps:
            return
        self.epoch_means.append(self.epoch_sum / self.epoch_steps)
        self.epoch_sum, self.epoch_steps = 0.0, 0
        means = list(self.epoch_means)
        falls = [a - b for a, b in zip(means, means[1:])]
        if (len(means) == self.epoch_means.maxlen and means[-1] < 0 and all(f > 0 for f in falls)
                and all(later >= earlier for earlier, later in zip(falls, falls[1:]))):
            shown = ", ".join(f"{m:.4g}" for m in means)
            self._stop(self.epoch, f"the training loss is falling without bound (epoch means "
                                   f"{shown}: below zero, and each fall at least as large as "
                                   "the one before)",
                       "the loss has no lower bound in this setting: check the loss and its "
                       "options (e.g. a regulariser that can be lowered without limit)")

    def _stop(self, epoch, why, todo=None):
        lr = self.learning_rate
        raise TrainingDiverged(f"training diverged: {why}", f"epoch {epoch}, step {self.step}",
                               todo or f"lower --learning_rate (now {lr:g}), e.g. to "
                               f"{min(lr / 10, PAPER_LR):g}, or clip gradients (clip_grad_norm)")
