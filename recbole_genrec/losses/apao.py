"""APAO: Adaptive Prefix-Aware Optimization (Yu et al., 2026).

``L = L_CE + apao_beta * sum_m w_m L_m`` (Eq. 11; Eq. 18 pointwise, Eq. 19 pairwise),
``L_CE`` the token cross-entropy (Eq. 4) and ``w`` the adaptive worst-prefix
weights (Eq. 17, :mod:`recbole_genrec.losses.prefix_weights`).

Prefix losses (``apao_variant``):

* ``pointwise`` (default) -- Eq. 12, ``L_point(m) = -(1/m) sum_{t<=m} s^t``, batch
  mean, from the logits of the single teacher-forced pass (no extra forward).
  At ``m = L`` it equals the CE of Eq. 4.
* ``pairwise`` -- Eq. 14 (= Eq. 26), ``L_pair(m) = log(1 + sum_j exp(s_j^m - s_+^m))``
  with ``s^m`` the cumulative prefix log-prob (Eq. 13), over ``apao_n_neg`` items
  sampled uniformly every batch and truncated to length ``m``.  The positive's
  scores come from the training pass; the negatives' from ``model.code_logp``
  (encoder once, decoder on the candidates).  At each ``m`` a negative whose
  ``m``-prefix equals the positive's, or repeats an earlier negative's, is
  masked (prefixes compared through ``trie.item_node``), so each distinct
  competing prefix counts once.  ``apao_neg_chunk > 0`` decodes the negatives in
  groups under activation checkpointing (same values, less memory, one more
  decoder forward; see ``benchmarks/loss_cost.py``).

Options where the paper's text, its Algorithm 1 and the authors' code differ
(the equations are the default):

* ``apao_pair_length_norm``: false (Eq. 14) | true (Algorithm 1 line 30 divides
  ``L_pair(m)`` by ``m``).
* ``apao_neg_scale``: none (Eq. 14) | catalog -- the summed negative terms at
  length ``m`` are multiplied by ``(level_size[m] - 1) / n_m``, ``n_m`` the number of
  unmasked negatives: the sample mean of ``exp(s_j^m - s_+^m)`` times the number of
  competing ``m``-prefixes in the catalogue estimates the sum over *all* of them.
  The authors' code divides by ``n_m + 1`` (its count includes the positive's own
  column), which shrinks the estimate by ``n_m / (n_m + 1)``; we divide by ``n_m``.
* ``apao_weight_rule``: paper (Eq. 17) | algorithm | reference, see
  :mod:`~recbole_genrec.losses.prefix_weights`.
* ``apao_prefix_levels``: semantic (default; ``m = 1..n_semantic_levels``, the
  paper's ``L``: the levels of the semantic ID itself) | all (``m = 1..L``,
  including a disambiguation level when one was appended to separate items
  that share a full code -- on Office that token is forced for all but 10
  items, so the extra prefix adds almost nothing: pairwise ``L_L`` nearly
  repeats ``L_{L-1}``, pointwise it averages in a near-free token; pairwise it
  also costs one more decoder position per negative).
  CE always covers all levels.  Without a disambiguation level both are the same.
"""

import torch
import torch.nn.functional as F

from recbole_genrec.losses.base import GenerativeLoss, cross_entropy, option
from recbole_genrec.losses.candidates import (
    candidate_logp,
    distinct_competitors,
    masked_logsumexp,
    sample_negatives,
)
from recbole_genrec.losses.prefix_weights import WEIGHT_RULES, AdaptivePrefixWeights


def prefix_scores(token_logp: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Cumulative prefix log-probs ``s^m`` (Eq. 13): ``[..., L]`` -> ``[..., M]`` for
    the prefix ``lengths`` (1-based)."""
    return token_logp.cumsum(-1)[..., lengths - 1]


def pointwise_prefix_losses(token_logp: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Eq. 12 per prefix length, averaged over the batch: ``[B, L]`` -> ``[M]``."""
    return -(prefix_scores(token_logp, lengths) / lengths).mean(0)


def pairwise_prefix_losses(pos_logp, neg_logp, valid, lengths, length_norm=False,
                           log_scale=None) -> torch.Tensor:
    """Eq. 14 / Eq. 26 per prefix length, averaged over the batch -> ``[M]``.

    ``pos_logp [B, L]`` and ``neg_logp [B, N, L]`` are token log-probs, ``valid
    [B, N, M]`` marks the negatives that compete at each length, ``log_scale
    [B, M]`` (optional) is added to the log of the summed negative terms.
    ``log(1 + sum_j exp(d_j)) = softplus(logsumexp_j d_j)``; no valid negative -> 0.
    """
    margins = prefix_scores(neg_logp, lengths) - prefix_scores(pos_logp, lengths).unsqueeze(1)
    lse = masked_logsumexp(margins, valid, dim=1)  # [B, M]
    if log_scale is not None:
        lse = lse + log_scale
    loss = F.softplus(lse).mean(0)
    return loss / lengths if length_norm else loss


class APAOLoss(GenerativeLoss):
    name = "apao"
    VARIANTS = ("pointwise", "pairwise")

    def __init__(self, config, model):
        super().__init__(config, model)
        self.beta = float(config["apao_beta"])
        self.variant = option(config, "apao_variant", self.VARIANTS)
        self.n_neg = int(config["apao_n_neg"])
        self.neg_chunk = int(config["apao_neg_chunk"] or 0)
        self.length_norm = bool(option(config, "apao_pair_length_norm", (True, False)))
        self.neg_scale = option(config, "apao_neg_scale", ("none", "catalog"))
        levels = option(config, "apao_prefix_levels", ("all", "semantic"))
        n_prefixes = model.n_levels if levels == "all" else model.n_semantic_levels
        self.register_buffer("lengths", torch.arange(1, n_prefixes + 1), persistent=False)
        # log(#competing m-prefixes) = log(level_size[m] - 1); -inf when there is none
        competitors = torch.tensor([model.trie.level_size[m] - 1.0 for m in range(1, n_prefixes + 1)],
                                   dtype=torch.float64)
        self.register_buffer("log_competitors", competitors.log(), persistent=False)
        self.prefix_weights = AdaptivePrefixWeights(
            n_prefixes, config["apao_eta"], option(config, "apao_weight_rule", WEIGHT_RULES))

    @classmethod
    def scores_candidates(cls, config) -> bool:
        return config["apao_variant"] == "pairwise"

    def prefix_losses(self, model, batch) -> torch.Tensor:
        """``[M]``: ``L_m`` for ``m = 1..M`` on this batch (Eq. 12 or Eq. 14)."""
        token_logp = batch.token_logp()
        if self.variant == "pointwise":
            return pointwise_prefix_losses(token_logp, self.lengths)
        negatives = sample_negatives(model, batch.items, self.n_neg)  # [B, N]
        neg_logp = candidate_logp(model, batch.ctx, negatives, self.neg_chunk,
                                  levels=len(self.lengths))  # [B, N, M]
        item_node = model.trie.item_node
        valid = distinct_competitors(item_node[batch.items][:, self.lengths],
                                     item_node[negatives][..., self.lengths])  # [B, N, M]
        log_scale = None
        if self.neg_scale == "catalog":
            n_valid = valid.sum(1)  # [B, M]
            log_scale = (self.log_competitors.to(neg_logp.dtype)
                         - n_valid.clamp(min=1).to(neg_logp.dtype).log()).masked_fill(n_valid == 0, 0.0)
        return pairwise_prefix_losses(token_logp, neg_logp, valid, self.lengths,
                                      self.length_norm, log_scale)

    def forward(self, model, batch):
        ce = cross_entropy(batch)  # Eq. 4
        losses = self.prefix_losses(model, batch)
        if self.training:
            self.prefix_weights.update(losses)  # Algorithm 1 line 11, before line 12
        weights = self.prefix_weights.weights
        prefix = (weights * losses).sum()  # Eq. 10
        total = ce + self.beta * prefix  # Eq. 11 / 18 / 19
        parts = {"ce": ce.detach(), "prefix": prefix.detach()}
        for m, (loss, w) in enumerate(zip(losses.detach(), weights.clone()), start=1):
            parts[f"prefix_{m}"] = loss
            parts[f"w_{m}"] = w
        return total, parts

    def state_summary(self) -> dict:
        return {"prefix_weights": [round(float(w), 6) for w in self.prefix_weights.weights]}

    def extra_repr(self) -> str:
        return (f"variant={self.variant}, beta={self.beta}, n_neg={self.n_neg}, "
                f"length_norm={self.length_norm}, neg_scale={self.neg_scale}, "
                f"prefixes={len(self.lengths)}")

