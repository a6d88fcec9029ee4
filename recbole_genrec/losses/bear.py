"""BEAR: Beam-Search-Aware Regularization (Yang et al., 2026).

BEAR Eq. 3.5 divided by the number of levels ``T``::

    L = CE + bear_lambda * (1/T) sum_t log sigma((log beta_t^B - log P(y_t | y_<t, x)) / bear_xi)

* ``CE`` is the SFT loss of Eq. 2.1 divided by ``T`` -- the token mean of APAO
  Eq. 4 -- and the regulariser is Eq. 3.4 divided by ``T``; dividing the whole of
  Eq. 3.5 by ``T`` keeps its minimiser and the meaning of ``lambda``, and
  ``bear_lambda = 0`` is exactly ``ce``.  Both are averaged over the batch.
* ``sigma_xi(x) = sigma(x / xi)`` (§3.2), ``log sigma`` = ``F.logsigmoid``.
* ``beta_t^B`` (Eq. 3.2) is the ``B``-th largest next-code probability at step
  ``t`` under teacher forcing, ``B = bear_beam_size`` (default: the model's
  evaluation ``beam_size``), read from the logits of the training pass (no
  extra forward).
* Gradient through the threshold (``bear_threshold_grad``).  §3.2 describes the
  regulariser as raising each target token above the top-``B`` threshold, and
  footnote 3 assumes token probabilities bounded below by a positive constant,
  which is what keeps Eq. 3.4 bounded.  A softmax has no such bound: with the
  gradient flowing through ``log beta_t^B`` (Eq. 3.4 read literally) the
  cheapest way down is to push the ``B``-th best code towards probability 0,
  and the loss falls without bound (TIGER on Office: -2.3, -23.6, -62.9, ...
  over the first epochs, validation NDCG@10 stuck near .003).  The default
  (``false``) therefore treats ``beta_t^B`` as a constant of each step, the
  threshold the target must beat: the regulariser's gradient is then the
  token's CE gradient times ``(1 - sigma_xi(Delta_t^B)) / xi``, a per-token
  reweighting of SFT by the pruning margin, and it never lowers another code's
  probability except through the softmax, as CE does.  ``true`` keeps the
  literal reading.
* ``bear_constrained: true`` takes the threshold over the trie-valid next codes
  only (constrained beam search never ranks the others).  Where fewer than ``B``
  codes are candidates, the necessary condition (Eq. 3.2) always holds: the step
  contributes 0.  (Codes a level never uses have probability 0 and are never
  candidates.)
"""

import torch
import torch.nn.functional as F

from recbole_genrec.losses.base import GenerativeLoss, cross_entropy, option


def bear_terms(logits: torch.Tensor, codes: torch.Tensor, beam: int, xi: float,
               candidates: torch.Tensor = None, threshold_grad: bool = False):
    """Per-token regulariser of Eq. 3.4, ``[B, L]``, and the violation indicator
    ``1(Delta_t^B > 0)`` of Eq. 3.3 (detached).

    ``logits [B, L, K]``, ``codes [B, L]``; ``candidates [B, L, K]`` (bool, optional)
    restricts the top-``B`` threshold to those codes; ``threshold_grad`` lets the
    gradient flow through ``log beta_t^B`` (the literal Eq. 3.4; unbounded below)."""
    logp = F.log_softmax(logits, -1)
    target = logp.gather(-1, codes.unsqueeze(-1)).squeeze(-1)
    ranked = logp if candidates is None else logp.masked_fill(~candidates, float("-inf"))
    k = min(beam, ranked.shape[-1])
    threshold = ranked.topk(k, dim=-1).values[..., k - 1]  # log beta_t^B
    if not threshold_grad:
        threshold = threshold.detach()  # the bar the target must clear (§3.2)
    active = torch.isfinite(threshold) if beam <= ranked.shape[-1] else torch.zeros_like(target, dtype=torch.bool)
    margin = torch.where(active, threshold, target) - target  # Delta_t^B (0 where inactive)
    terms = torch.where(active, F.logsigmoid(margin / xi), torch.zeros_like(margin))
    return terms, (active & (margin > 0)).detach()


class BEARLoss(GenerativeLoss):
    name = "bear"

    def __init__(self, config, model):
        super().__init__(config, model)
        self.lam = float(config["bear_lambda"])
        self.xi = float(config["bear_xi"])
        if self.xi <= 0:
            raise ValueError(f"bear_xi={self.xi}: the sigmoid temperature must be positive")
        self.beam = int(config["bear_beam_size"] or model.beam_size)
        self.constrained = bool(option(config, "bear_constrained", (True, False)))
        self.threshold_grad = bool(option(config, "bear_threshold_grad", (True, False)))

    def forward(self, model, batch):
        ce = cross_entropy(batch)  # Eq. 2.1 / T (= APAO Eq. 4)
        candidates = (model.trie.valid_next_mask(batch.items, batch.logits.shape[-1],
                                                 n_levels=batch.codes.shape[1])
                      if self.constrained else None)
        terms, violated = bear_terms(batch.logits, batch.codes, self.beam, self.xi, candidates,
                                     self.threshold_grad)
        reg = batch.token_mean(terms)  # Eq. 3.4 / T
        total = ce + self.lam * reg  # Eq. 3.5 / T
        return total, {"ce": ce.detach(), "bear_reg": reg.detach(),
                       "violation_rate": batch.token_mean(violated.float())}

    def extra_repr(self) -> str:
        return (f"lambda={self.lam}, xi={self.xi}, beam={self.beam}, constrained={self.constrained}, "
                f"threshold_grad={self.threshold_grad}")
