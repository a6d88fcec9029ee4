"""Trie-constrained beam search and exact full-item ranking over one decoding API.

Both drive a *decoding* object from the backbone (TIGER or decoder-only)::

    logp = decoding.step(codes, parent)   # [U, b, K] log-probs of the next level

The first call passes ``None, None`` and returns one row per user (``b = 1``,
the root).  Later calls pass, for each user, the codes of the ``b`` new
hypotheses and the index of the hypothesis of the previous call that each one
extends (``parent``, ``[U, b]``); the backbone reorders its KV cache with it.
Everything is batched over users and hypotheses: no Python work per beam.

``beam_search`` keeps the top-``B`` hypotheses by cumulative log-probability
(APAO Eqs. 5-7) among trie-valid extensions only.  ``full_ranking`` expands
every trie node instead (a "beam" as wide as each level), so it scores every
item by the sum of its token log-probs (APAO Eq. 8) -- the exact reference
that beam search approximates, and that the exact top-K search
(:mod:`recbole_genrec.layers.exact_topk`, which decodes only the prefixes that
can still reach the top K) is tested against.
"""

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class BeamResult:
    items: torch.Tensor  # [U, B] item ids, best first (0 where no valid hypothesis)
    scores: torch.Tensor  # [U, B] cumulative log-probs (-inf where no valid hypothesis)
    level_nodes: list  # per level l = 1..L: [U, B] prefix node ids of the beam, best first


def expand(trie, level: int, nodes: torch.Tensor, scores: torch.Tensor, logp: torch.Tensor):
    """Every trie child of the hypotheses ``nodes [U, b]`` (prefix nodes of
    ``level``, cumulative log-probs ``scores [U, b]``, next-code log-probs
    ``logp [U, b, K]``).

    Returns ``cand`` (the children's cumulative log-probs, -inf in padding
    slots), ``codes`` and ``child`` (their codes and node ids at ``level + 1``),
    each ``[U, b*D]``: slot ``j`` extends hypothesis ``j // D``, with ``D =
    trie.max_children[level]``.
    """
    codes, child, valid = trie.children_of(level, nodes)  # [U, b, D]
    cand = (scores.unsqueeze(-1) + logp.gather(-1, codes)).masked_fill(~valid, NEG_INF)
    return cand.flatten(1), codes.flatten(1), child.flatten(1)


@torch.no_grad()
def beam_search(decoding, trie, beam_size: int) -> BeamResult:
    logp = decoding.step(None, None)  # [U, 1, K]
    n_users = logp.shape[0]
    nodes = torch.zeros(n_users, 1, dtype=torch.long, device=logp.device)  # root
    scores = torch.zeros(n_users, 1, device=logp.device)
    level_nodes = []
    for level in range(trie.n_levels):
        cand, codes, child = expand(trie, level, nodes, scores, logp)  # [U, b*D]
        scores, pick = cand.topk(min(beam_size, cand.shape[1]), dim=1)  # sorted
        nodes = child.gather(1, pick)
        level_nodes.append(nodes)
        if level + 1 < trie.n_levels:
            logp = decoding.step(codes.gather(1, pick), pick // trie.max_children[level])
    items = torch.where(scores > NEG_INF, trie.leaf_item[nodes], 0)
    return BeamResult(items, scores, level_nodes)


@torch.no_grad()
def full_ranking(decoding, trie) -> torch.Tensor:
    """``[U, n_items]`` sum of token log-probs of every item (-inf for non-items)."""
    logp = decoding.step(None, None)  # [U, 1, K]
    n_users = logp.shape[0]
    scores = torch.zeros(n_users, 1, device=logp.device)
    for level in range(1, trie.n_levels + 1):
        codes, parent = trie.level_nodes(level)  # all nodes of this level
        scores = scores[:, parent] + logp[:, parent, codes]  # [U, n_nodes]
        if level < trie.n_levels:
            logp = decoding.step(codes.expand(n_users, -1), parent.expand(n_users, -1))
    item_scores = torch.full((n_users, trie.n_items), NEG_INF, device=scores.device)
    item_scores[:, trie.leaf_item] = scores
    return item_scores
