"""APAO's adaptive worst-prefix weights (§4.3, Eqs. 15-17; Algorithm 1 lines 11, 36-41).

The weights ``w`` live on the probability simplex over the prefix lengths and
are training state: a persistent buffer, so they are part of the model's
``state_dict`` and therefore of every checkpoint, and a resumed run continues
from the saved vector.  ``update`` is called once per loss call in training
mode, *before* the weighted loss is formed (Algorithm 1 line 11 precedes line
12; Eq. 16 maximises against ``L^{t+1}``, the current batch's losses), with the
batch's detached prefix losses.

Rules (``apao_weight_rule``):

* ``paper`` (default) -- Eq. 17, the closed-form maximiser of Eq. 16 (Appendix
  A): ``w <- w * exp(eta * L) / Z``, carried across steps.
* ``algorithm`` -- Algorithm 1 lines 36-41: the losses are first normalised,
  ``w <- w * exp(eta * L / sum(L)) / Z``, carried across steps.
* ``reference`` -- the authors' public code (``yuyq18/APAO``): each step
  ``w = L * exp(eta * L) / Z`` recomputed from the current losses and never
  carried over; with their default ``eta = 0`` this is ``w = L / sum(L)``.

Non-finite losses leave the weights unchanged (the trainer stops on NaN losses).

Data-parallel runs (``--nproc``): each rank holds ``1/N`` of a batch and calls
``update`` once per micro-batch, as one process does on its micro-batches.  The
carried rules therefore apply one update per rank's micro-batch, with that
micro-batch's own losses, gathered from every rank (rank order): N ranks make
the N updates one process makes on the same micro-batches, and as the updates
add up in log space, the weights after each step equal one process's on the same
data order.  (Averaging the losses over the ranks and updating once made N
times fewer updates: eta acted as eta/N.)  ``reference`` is recomputed from the
current losses, not carried: it uses their mean over the ranks.
"""

import torch
from torch import nn

from recbole_genrec import distributed

WEIGHT_RULES = ("paper", "algorithm", "reference")


class AdaptivePrefixWeights(nn.Module):
    def __init__(self, n_prefixes: int, eta: float, rule: str = "paper"):
        super().__init__()
        if rule not in WEIGHT_RULES:
            raise ValueError(f"apao_weight_rule={rule!r}: expected one of {', '.join(WEIGHT_RULES)}")
        self.eta, self.rule = float(eta), rule
        self.register_buffer("weights", torch.full((n_prefixes,), 1.0 / n_prefixes))

    @torch.no_grad()
    def update(self, losses: torch.Tensor) -> torch.Tensor:
        """One step of the rule with the prefix losses ``[M]``; returns the new weights.
        In a data-parallel run every rank's losses take part (see the module doc), so
        every replica carries the same weights."""
        losses = losses.detach().to(self.weights)
        if self.rule == "reference":
            losses = distributed.mean(losses)
            if not torch.isfinite(losses).all():
                return self.weights
            scores = losses * torch.exp(self.eta * losses)
            total = scores.sum()
            new = scores / total if total > 1e-12 else torch.full_like(scores, 1.0 / len(scores))
            self.weights.copy_(new)
            return self.weights
        log_w = torch.log(self.weights)
        for rank_losses in distributed.rows(losses):  # one update per rank's micro-batch
            if not torch.isfinite(rank_losses).all():
                continue
            step = (rank_losses / (rank_losses.sum() + 1e-12) if self.rule == "algorithm"
                    else rank_losses)
            # w * exp(eta * L) / Z, in log space (no overflow for large eta * L)
            log_w = torch.log_softmax(log_w + self.eta * step, dim=0)
        self.weights.copy_(log_w.exp())
        return self.weights

    def extra_repr(self) -> str:
        return f"n={len(self.weights)}, eta={self.eta}, rule={self.rule}"
