"""Sampled negatives and their scores, shared by the pairwise losses
(APAO-pairwise, DPO, DMPO, S-DPO).

Negatives are items drawn uniformly from the catalogue, resampled every batch
(APAO §5.1.3: "uniform random negative sampling ... 100 negative samples for
all methods").  Their token log-probs come from ``model.code_logp``: the
history is encoded once per user and only the decoder runs on the candidates.
"""

import torch
from torch.utils.checkpoint import checkpoint


def sample_negatives(model, items: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, n]`` items drawn uniformly (with replacement) for each target in ``items [B]``."""
    return model.sample_items(len(items), n).to(items.device)


def candidate_logp(model, ctx, items: torch.Tensor, chunk: int = 0, levels: int = None) -> torch.Tensor:
    """Token log-probs ``[B, N, T]`` of the first ``T = levels`` (default: all ``L``)
    codes of the items ``[B, N]`` (teacher forcing on their codes; decoding is
    causal, so later levels need not be decoded).

    ``chunk > 0`` (when gradients are on) runs the decoder on groups of ``chunk``
    candidates under activation checkpointing: each group's activations are
    recomputed in the backward pass instead of kept, so the peak holds one
    group's activations instead of all ``N`` -- one more decoder forward over the
    candidates, for a fraction of the memory.
    """
    codes = model.codes[items][..., :levels]
    if not chunk or chunk >= codes.shape[1] or not torch.is_grad_enabled():
        return model.code_logp(ctx, codes)
    return torch.cat([checkpoint(model.code_logp, ctx, part, use_reentrant=False)
                      for part in codes.split(chunk, dim=1)], dim=1)


def first_occurrence(keys: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Bool, same shape as ``keys``: True where ``keys`` takes a value for the first
    time along ``dim`` (later repeats of the same value are False)."""
    values, order = keys.sort(dim=dim, stable=True)  # equal values keep their order
    first = torch.ones_like(values, dtype=torch.bool)
    tail = [slice(None)] * keys.dim()
    head = list(tail)
    tail[dim], head[dim] = slice(1, None), slice(None, -1)
    first[tuple(tail)] = values[tuple(tail)] != values[tuple(head)]
    return torch.empty_like(first).scatter_(dim, order, first)


def distinct_competitors(pos_keys: torch.Tensor, neg_keys: torch.Tensor) -> torch.Tensor:
    """Which negatives count as competitors: ``pos_keys [B, ...]``, ``neg_keys [B, N, ...]``
    (e.g. prefix node ids per level, or item ids) -> bool ``[B, N, ...]``.

    A negative is masked when its key equals the positive's or repeats the key of
    an earlier negative (so each distinct competitor counts once)."""
    return (neg_keys != pos_keys.unsqueeze(1)) & first_occurrence(neg_keys, dim=1)


def masked_logsumexp(x: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """``log sum exp`` of ``x`` over the ``valid`` entries along ``dim``; ``-inf`` (with
    zero, not NaN, gradients) where no entry is valid."""
    any_valid = valid.any(dim)
    safe = torch.where(any_valid.unsqueeze(dim), x.masked_fill(~valid, float("-inf")),
                       torch.zeros_like(x))
    return torch.logsumexp(safe, dim).masked_fill(~any_valid, float("-inf"))
