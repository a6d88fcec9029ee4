"""Exact top-K items by branch and bound over the prefix trie.

An item's score is the sum of its ``L`` token log-probs, each ``<= 0``, so a
prefix's cumulative log-prob bounds the score of every item below it.  Given,
per user, a score ``threshold`` that at least ``K`` items reach (the ``K``-th
score of a beam search: beam scores are exact item scores), no prefix scoring
below it can hold a top-``K`` item.  :func:`bounded_search` therefore walks
the trie level by level like beam search, on the same ``decoding.step`` API
and KV cache (:mod:`recbole_genrec.layers.beam_search`), but keeps *every*
child whose score reaches the threshold instead of a fixed number -- a beam
as wide as the bound allows, per user.  A peaked model keeps a few hundred
prefixes where :func:`~recbole_genrec.layers.beam_search.full_ranking`
decodes every node of the trie; a flat one keeps nearly all of them (and
costs one beam search more than full ranking).

Users are batched; each level's frontier is padded to the widest user's
(padding slots have score -inf and are decoded for nothing).
"""

from dataclasses import dataclass

import torch

from recbole_genrec.layers.beam_search import NEG_INF, expand

# Scores are recomputed here with other batch shapes than in the beam search
# that gave the threshold, so the same item can come out a few float32 ulps
# lower; prefixes within this relative margin below the threshold are kept.
THRESHOLD_SLACK = 1e-4


@dataclass
class Candidates:
    items: torch.Tensor  # [U, M] items whose score can reach the threshold (0 = padding)
    scores: torch.Tensor  # [U, M] their exact scores (-inf for padding)
    decoded: torch.Tensor  # [U] prefixes decoded per user (the search's cost; root included)


@torch.no_grad()
def bounded_search(decoding, trie, threshold: torch.Tensor) -> Candidates:
    """Every item whose score is ``>= threshold [U]`` (and a few below it: all the
    leaves under the kept prefixes of the last level), with exact scores."""
    keep_from = (threshold - THRESHOLD_SLACK * (1 + threshold.abs())).unsqueeze(1)  # [U, 1]
    logp = decoding.step(None, None)  # [U, 1, K]
    n_users = logp.shape[0]
    nodes = torch.zeros(n_users, 1, dtype=torch.long, device=logp.device)  # root
    scores = torch.zeros(n_users, 1, device=logp.device)
    decoded = torch.ones(n_users, dtype=torch.long, device=logp.device)
    for level in range(trie.n_levels - 1):
        cand, codes, child = expand(trie, level, nodes, scores, logp)  # [U, b*D]
        kept = cand >= keep_from
        width = max(int(kept.sum(1).max()), 1)
        decoded += kept.sum(1)
        scores, pick = cand.masked_fill(~kept, NEG_INF).topk(width, dim=1)  # kept first
        nodes = child.gather(1, pick)
        logp = decoding.step(codes.gather(1, pick), pick // trie.max_children[level])
    cand, _, leaf = expand(trie, trie.n_levels - 1, nodes, scores, logp)
    items = torch.where(cand > NEG_INF, trie.leaf_item[leaf], 0)
    return Candidates(items, cand, decoded)


def top_k(items: torch.Tensor, scores: torch.Tensor, k: int):
    """The ``k`` best of ``items, scores [U, M]`` -> ``(items, scores) [U, k]``,
    best first; equal scores in increasing item id (as a stable descending sort
    of a ``[U, n_items]`` score table would give)."""
    by_id = items.argsort(1)
    items, scores = items.gather(1, by_id), scores.gather(1, by_id)
    order = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return items.gather(1, order), scores.gather(1, order)


def top_k_of_table(table: torch.Tensor, k: int) -> torch.Tensor:
    """Item ids of the ``k`` best scores of ``table [U, n_items]``, best first; equal
    scores in increasing item id, the rule of :func:`top_k` (``torch.topk`` leaves
    the order of ties unspecified: it changes with the table's size)."""
    return table.sort(dim=1, descending=True, stable=True).indices[:, :k]


def item_score_table(candidates: Candidates, n_items: int) -> torch.Tensor:
    """``[U, n_items]``: the candidates' scores, -inf for every other item."""
    table = torch.full((len(candidates.items), n_items), NEG_INF, device=candidates.scores.device)
    return table.scatter_(1, candidates.items, candidates.scores)  # padding writes -inf to item 0
