"""The interface every training objective implements.

A loss is an ``nn.Module`` built from the config and the model.  It is called
once per (micro-)batch as ``loss(model, batch) -> (total, parts)``, where
``batch`` holds what the model's single teacher-forced forward pass produced
(:class:`TrainBatch`); ``parts`` maps names to detached scalars for logging.
Pointwise losses use ``batch.logits`` only (no extra forward); pairwise losses
call ``model.code_logp(batch.ctx, candidate_codes)``, which reuses the encoded
history and runs only the decoder on the candidates.  State that must survive
checkpoints (e.g. APAO's prefix weights) is kept in buffers: the loss is a
submodule of the model, so it travels in the model's ``state_dict``.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from recbole_genrec.errors import ConfigError


@dataclass
class TrainBatch:
    ctx: object  # the backbone's encoded history
    items: torch.Tensor  # [B] target item ids
    codes: torch.Tensor  # [B, L] target codes
    logits: torch.Tensor  # [B, L, K] next-code logits under teacher forcing
    interaction: object = None  # the micro-batch itself (a reference model re-encodes it)
    mask: torch.Tensor = None  # [B, L] bool, True = a real token (None: all are; LLMRec's
    #                            titles have different lengths, padding after each one's end)
    _token_logp: torch.Tensor = field(default=None, init=False, repr=False)

    def token_logp(self) -> torch.Tensor:
        """``[B, L]`` log-prob of each target code, softmax over its level (APAO Eq. 3).
        Computed once per batch (several loss terms share it); 0 at padding (``mask``)."""
        if self._token_logp is None:
            self._token_logp = F.log_softmax(self.logits, -1).gather(
                -1, self.codes.unsqueeze(-1)).squeeze(-1)
            if self.mask is not None:
                self._token_logp = self._token_logp.masked_fill(~self.mask, 0.0)
        return self._token_logp

    def token_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of per-token ``values [B, L]`` over the real tokens of the batch."""
        if self.mask is None:
            return values.mean()
        return values.masked_fill(~self.mask, 0.0).sum() / self.mask.sum().clamp(min=1)


class GenerativeLoss(nn.Module):
    """Base class: subclasses set ``name`` and implement ``forward``."""

    name = ""

    def __init__(self, config, model):
        super().__init__()

    def forward(self, model, batch: TrainBatch):
        raise NotImplementedError

    def state_summary(self) -> dict:
        """Plain values describing the loss state (logged per epoch, written to results)."""
        return {}

    def on_init_from(self, model):
        """Called after ``--init_from`` loaded another run's weights into ``model``."""

    @classmethod
    def scores_candidates(cls, config) -> bool:
        """Whether the loss scores items other than the target through ``batch.ctx``
        (sampled negatives, a reference model): not possible in ``train_mode:
        sequence``, whose pass predicts many targets and keeps no per-target history."""
        return False

    @staticmethod
    def needs_init_from(config) -> bool:
        """Whether this loss cannot train without ``--init_from`` (checked by the config,
        before any data is read)."""
        return False


def cross_entropy(batch: TrainBatch) -> torch.Tensor:
    """Token-level cross-entropy averaged over the ``T`` levels and the batch (APAO Eq. 4);
    with a ``mask``, over the batch's real tokens (BEAR Eq. 2.1 summed over the batch,
    divided by its number of target tokens)."""
    return -batch.token_mean(batch.token_logp())


def option(config, key: str, choices=None):
    """``config[key]``, checked against ``choices`` when given (a clear error otherwise)."""
    value = config[key]
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(map(str, choices))}")
    return value
