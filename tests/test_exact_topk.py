"""Exact top-K by branch and bound over the trie, against expanding every item."""

import math

import pytest
import torch

from generative_setup import GENERATIVE_BACKBONES, build, build_trainer
from recbole_genrec.layers.beam_search import beam_search, full_ranking
from recbole_genrec.layers.exact_topk import bounded_search, item_score_table, top_k
from recbole_genrec.layers.prefix_trie import PrefixTrie


class TableDecoding:
    """The ``decoding.step`` API with log-probs from a table: ``logp[l][u, n]``
    (``[U, n_nodes_l, K]``) are user ``u``'s next-code log-probs at prefix node
    ``n`` of level ``l``.  It follows the hypotheses through ``codes`` and
    ``parent`` as a backbone's KV cache does, so a search that passes them
    wrongly reads wrong log-probs."""

    def __init__(self, trie, logp):
        self.logp, self.level = logp, 0
        self.child = []  # per level: [n_nodes, K] child node of each (node, code), 0 if none
        for level in range(trie.n_levels - 1):
            n_nodes, n_codes = logp[level].shape[1:]
            codes, child, valid = trie.children_of(level, torch.arange(n_nodes))
            table = torch.zeros(n_nodes, n_codes + 1, dtype=torch.long)
            self.child.append(table.scatter_(1, torch.where(valid, codes, n_codes), child)[:, :n_codes])

    def step(self, codes, parent):
        if codes is None:
            self.nodes = torch.zeros(self.logp[0].shape[0], 1, dtype=torch.long)
        else:
            self.nodes = self.child[self.level][self.nodes.gather(1, parent), codes]
            self.level += 1
        return self.logp[self.level][torch.arange(len(self.nodes))[:, None], self.nodes]


def random_catalogue(n_items, n_levels, n_codes, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.unique(torch.randint(0, n_codes, (3 * n_items, n_levels), generator=g), dim=0)
    codes = codes[torch.randperm(len(codes), generator=g)[:n_items]]
    return torch.cat([torch.full((1, n_levels), -1), codes])


def random_tables(trie, n_users, n_codes, sharpness, seed):
    g = torch.Generator().manual_seed(seed)
    return [(sharpness * torch.randn(n_users, size, n_codes, generator=g)).log_softmax(-1)
            for size in trie.level_size[:-1]]


def brute_force_scores(trie, codes, logp):
    """``[U, n_items]``: each item's summed log-probs read off the tables."""
    scores = torch.zeros(logp[0].shape[0], len(codes))
    for level in range(trie.n_levels):
        nodes = trie.item_node[:, level].clamp(min=0)
        scores += logp[level][:, nodes, codes[:, level].clamp(min=0)]
    scores[:, 0] = -math.inf  # the padding item
    return scores


def reference_top_k(scores, k):
    """Top-``k`` of a full ``[U, n_items]`` table; ties in increasing item id."""
    order = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return order, scores.gather(1, order)


def exact_search(trie, make_decoding, k, beam_size=None):
    """Threshold from a beam search, then the bounded search (as the model does)."""
    beam = beam_search(make_decoding(), trie, beam_size or k)
    return bounded_search(make_decoding(), trie, beam.scores[:, k - 1])


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force_on_random_tables(k, seed):
    codes = random_catalogue(300, 3, 8, seed)
    trie = PrefixTrie(codes)
    logp = random_tables(trie, 5, 8, sharpness=3.0, seed=seed)
    found = exact_search(trie, lambda: TableDecoding(trie, logp), k)
    items, scores = top_k(found.items, found.scores, k)
    want_items, want_scores = reference_top_k(brute_force_scores(trie, codes, logp), k)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-5)
    # the bound prunes: fewer prefixes decoded than full ranking's every internal node
    assert (found.decoded < sum(trie.level_size[:-1])).all()


def test_finds_best_item_under_the_least_likely_first_code():
    """Item 1 = (0, 0) scores log 0.1 + log 1 = -2.30; every item under code 1
    scores log 0.9 + log 0.1 = -2.41.  A beam of 1 follows code 1 and returns
    a -2.41 item; that score is a valid bound, and since the prefix (0,) scores
    -2.30 >= -2.41 the exact search must expand it and find item 1.  Pruning
    by anything tighter than the prefix score (or trusting the beam) fails."""
    codes = torch.tensor([[-1, -1], [0, 0]] + [[1, c] for c in range(10)])
    trie = PrefixTrie(codes)
    root = torch.tensor([[[0.1, 0.9] + [0.0] * 8]]).log()  # [U=1, 1 node, K=10]
    below = torch.stack([torch.tensor([1.0] + [0.0] * 9), torch.full((10,), 0.1)]).log()[None]
    decoding = lambda: TableDecoding(trie, [root, below])  # noqa: E731
    beam = beam_search(decoding(), trie, beam_size=1)
    assert beam.items.item() != 1 and beam.scores.item() == pytest.approx(math.log(0.09))
    found = bounded_search(decoding(), trie, beam.scores[:, 0])
    items, scores = top_k(found.items, found.scores, 1)
    assert items.tolist() == [[1]] and scores.item() == pytest.approx(math.log(0.1))
    # a threshold above the truth is not a bound any more: the search may miss item 1
    wrong = bounded_search(decoding(), trie, torch.tensor([-2.0]))
    assert 1 not in wrong.items.tolist()[0]


def test_ties_come_in_item_id_order():
    """Uniform log-probs: every item scores the same; the top K are the K
    smallest item ids (what a stable sort of the full score table gives)."""
    codes = random_catalogue(60, 3, 4, seed=3)
    trie = PrefixTrie(codes)
    logp = [torch.full((2, size, 4), -math.log(4)) for size in trie.level_size[:-1]]
    found = exact_search(trie, lambda: TableDecoding(trie, logp), k=7)
    items, scores = top_k(found.items, found.scores, 7)
    assert items.tolist() == [list(range(1, 8))] * 2
    assert torch.equal(items, reference_top_k(brute_force_scores(trie, codes, logp), 7)[0])


def test_item_score_table_keeps_ranks_of_the_top_k():
    """PR@K counts the items that outscore the target: from the sparse table
    that count is exact for every target in the top K, and > K otherwise."""
    codes = random_catalogue(300, 3, 8, seed=4)
    trie = PrefixTrie(codes)
    logp = random_tables(trie, 6, 8, sharpness=3.0, seed=4)
    k = 5
    table = item_score_table(exact_search(trie, lambda: TableDecoding(trie, logp), k), len(codes))
    full = brute_force_scores(trie, codes, logp)
    targets = torch.cat([reference_top_k(full, 8)[0], torch.randint(1, len(codes), (6, 8))], 1)
    rank = lambda s: (s[:, :, None] > s.gather(1, targets)[:, None, :]).sum(1) + 1  # noqa: E731
    sparse_rank, full_rank = rank(table), rank(full)
    in_top = full_rank <= k
    assert in_top.any() and (~in_top).any()
    assert torch.equal(sparse_rank[in_top], full_rank[in_top])
    assert (sparse_rank[~in_top] > k).all()


# real backbones -------------------------------------------------------------------------

@pytest.fixture(params=GENERATIVE_BACKBONES)
def backbone(request, tiny_dataset):
    config, model, train, valid, test = build(request.param, tiny_dataset)
    model.eval()
    return config, model, train, test


def every_item_score(model, inter):
    return full_ranking(model.decoding(model.encode(inter)), model.trie)


def test_full_sort_predict_top_k_equals_full_expansion(backbone):
    _, model, _, test = backbone
    inter = next(iter(test))[0]
    k = model.exact_top_k
    items, scores = reference_top_k(model.full_sort_predict(inter), k)
    want_items, want_scores = reference_top_k(every_item_score(model, inter), k)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("k", [1, 5])
def test_bounded_search_equals_full_expansion_on_random_models(backbone, k):
    _, model, _, test = backbone
    inter = next(iter(test))[0]
    ctx = model.encode(inter)
    found = exact_search(model.trie, lambda: model.decoding(ctx), k)
    items, scores = top_k(found.items, found.scores, k)
    full = every_item_score(model, inter)
    want_items, want_scores = reference_top_k(full, k)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-5)
    # every candidate's score is its exact score
    real = found.items > 0
    assert torch.allclose(found.scores[real], full.gather(1, found.items)[real], atol=1e-5)


def test_ties_on_a_model_with_uniform_outputs(tiny_dataset):
    config, model, train, valid, test = build("TIGER", tiny_dataset)
    model.eval()
    with torch.no_grad():
        model.lm_head.zero_()  # every level's softmax is uniform: all items tie
    inter = next(iter(test))[0]
    items, _ = reference_top_k(model.full_sort_predict(inter), model.exact_top_k)
    assert items.tolist() == [list(range(1, model.exact_top_k + 1))] * len(inter)


def test_trained_model_top_k_equals_full_expansion(tiny_dataset):
    """After an epoch of training the model is peaked: the bound prunes, and the
    top K still equals full expansion's."""
    config, model, train, valid, test = build("TIGER", tiny_dataset, epochs=3, learning_rate=0.01)
    build_trainer(config, model).fit(train, saved=False)
    model.eval()
    inter = next(iter(test))[0]
    ctx = model.encode(inter)
    k = 5
    found = exact_search(model.trie, lambda: model.decoding(ctx), k)
    items, scores = top_k(found.items, found.scores, k)
    want_items, want_scores = reference_top_k(every_item_score(model, inter), k)
    assert torch.equal(items, want_items)
    assert torch.allclose(scores, want_scores, atol=1e-5)
    assert found.decoded.float().mean() < sum(model.trie.level_size[:-1])


def test_exact_evaluation_breaks_score_ties_by_increasing_item_id(tiny_dataset, monkeypatch):
    """Every item scores the same: the exact top K is items 1..K (item 0 is no item),
    so a target t ranks t-th.  The evaluation once took torch.topk's order of ties,
    which is unspecified (and not the rule of exact_topk.top_k)."""
    config, model, _, _, test = build("TIGER", tiny_dataset, loss="ce", ranking_mode="exact",
                                      pruning_rate_users=0)
    trainer = build_trainer(config, model)

    def equal_scores(interaction):
        scores = torch.zeros(len(interaction), model.n_items)
        scores[:, 0] = -math.inf
        return scores

    monkeypatch.setattr(model, "full_sort_predict", equal_scores)
    trainer.evaluate(test, load_best_model=False)
    targets = torch.cat(trainer._eval_targets).tolist()
    k = max(config["topk"])
    assert trainer.last_eval_ranks == [t if t <= k else 0 for t in targets]
    assert any(0 < t <= k for t in targets)
