"""Beam search, exact ranking and KV-cache decoding on every generative backbone."""

import pytest
import torch

from generative_setup import GENERATIVE_BACKBONES, build, build_trainer
from recbole_genrec.layers.beam_search import full_ranking


def first_batch(data, device="cpu"):
    return next(iter(data))[0].to(device)


def every_item_score(model, inter):
    """``[U, n_items]`` reference scores: every trie node expanded."""
    return full_ranking(model.decoding(model.encode(inter)), model.trie)


@pytest.fixture(params=GENERATIVE_BACKBONES)
def backbone(request, tiny_dataset):
    config, model, train, valid, test = build(request.param, tiny_dataset)
    model.eval()
    return config, model, test


def test_kv_cache_decoding_matches_full_recompute(backbone):
    _, model, test = backbone
    inter = first_batch(test)
    codes = model.codes[inter[model.ITEM_ID]]  # [U, L] each user's target
    ctx = model.encode(inter)
    full = model.level_logits(model.decode(ctx, codes.unsqueeze(1))).log_softmax(-1)  # [U,1,L,K]
    decoding = model.decoding(ctx)
    logp = decoding.step(None, None)
    assert torch.allclose(logp[:, 0], full[:, 0, 0], atol=1e-5)
    for level in range(1, model.n_levels):
        parent = torch.zeros(len(codes), 1, dtype=torch.long)
        logp = decoding.step(codes[:, level - 1:level], parent)
        assert torch.allclose(logp[:, 0], full[:, 0, level], atol=1e-5)


def test_candidates_scored_together_match_one_at_a_time(backbone):
    """Continuations of one user share its encoded history (and the first decoder
    position): scoring C candidates at once equals scoring each alone."""
    _, model, test = backbone
    inter = first_batch(test)
    ctx = model.encode(inter)
    items = torch.randint(1, model.n_items, (len(inter), 7), generator=torch.Generator().manual_seed(0))
    codes = model.codes[items]  # [U, 7, L]
    together = model.code_logp(ctx, codes)
    alone = torch.cat([model.code_logp(ctx, codes[:, c:c + 1]) for c in range(codes.shape[1])], 1)
    assert together.shape == codes.shape
    assert torch.allclose(together, alone, atol=1e-5)


def test_beam_equals_exact_ranking_when_beam_covers_catalogue(backbone):
    _, model, test = backbone
    inter = first_batch(test)
    n_items = model.n_items - 1
    result = model.beam_search(inter, beam_size=n_items)
    exact = every_item_score(model, inter)  # [U, n_items]
    top_scores, top_items = exact.topk(n_items, dim=1)
    assert torch.equal(result.items, top_items)
    assert torch.allclose(result.scores, top_scores, atol=1e-5)
    # and the exact scores are the summed token log-probs of each item
    item = inter[model.ITEM_ID]
    assert torch.allclose(exact.gather(1, item[:, None]).squeeze(1), model.predict(inter), atol=1e-5)


def test_beam_returns_only_valid_distinct_items(backbone):
    _, model, test = backbone
    result = model.beam_search(first_batch(test), beam_size=7)
    assert result.items.shape[1] == 7
    assert ((result.items >= 1) & (result.items < model.n_items)).all()
    assert all(len(set(row)) == len(row) for row in result.items.tolist())
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()  # best first
    # scores are the exact item scores
    exact = every_item_score(model, first_batch(test))
    assert torch.allclose(exact.gather(1, result.items), result.scores, atol=1e-5)


def test_beam_larger_than_fanout_keeps_dead_beams_out(backbone):
    _, model, test = backbone
    # 40 items: a beam of 64 must still return the 40 real items first, then padding
    result = model.beam_search(first_batch(test), beam_size=64)
    real = result.items[:, :40]
    assert ((real >= 1)).all() and (result.items[:, 40:] == 0).all()
    assert torch.isinf(result.scores[:, 40:]).all()


def test_beam_narrower_than_topk_gives_shorter_lists(tiny_dataset):
    """A beam-size sweep evaluates B < max(topk): the list holds B items, so every
    @K metric with K >= B equals its @B value, and ranks never exceed B."""
    config, model, train, valid, test = build("TIGER", tiny_dataset, beam_size=5)
    trainer = build_trainer(config, model)
    result = trainer.evaluate(test, load_best_model=False)
    assert max(trainer.last_eval_ranks) <= 5
    assert result["recall@10"] == result["recall@20"] == result["recall@5"]
    assert result["ndcg@20"] == result["ndcg@5"]
    wide = build_trainer(*build("TIGER", tiny_dataset, beam_size=20)[:2])
    wide.model.load_state_dict(model.state_dict())
    wide_result = wide.evaluate(test, load_best_model=False)
    # a wider beam finds at least the hits of the narrow one within its top 5
    assert wide_result["recall@20"] >= result["recall@5"] - 1e-9


def test_beam_hook_metrics_equal_hand_computed(tiny_dataset):
    """RecBole's metrics from the beam hook equal metrics computed by hand from the
    ranked lists the beam search returned."""
    config, model, train, valid, test = build("TIGER", tiny_dataset)
    trainer = build_trainer(config, model)
    result = trainer.evaluate(test, load_best_model=False)
    ranks = torch.tensor(trainer.last_eval_ranks, dtype=torch.float)
    assert len(ranks) == tiny_dataset.n_users
    # recompute the ranks directly from beam search
    model.eval()
    manual = []
    for inter, _, _, pos_i in test:
        items = model.beam_search(inter).items[:, :20]
        hit = items == pos_i[:, None]
        manual += torch.where(hit.any(1), hit.float().argmax(1) + 1, 0).tolist()
    assert ranks.tolist() == manual
    for k in (5, 10, 20):
        hit = ((ranks >= 1) & (ranks <= k)).float()
        ndcg = torch.where(hit.bool(), 1 / torch.log2(ranks + 1), torch.zeros_like(ranks))
        mrr = torch.where(hit.bool(), 1 / ranks, torch.zeros_like(ranks))
        assert result[f"hit@{k}"] == pytest.approx(round(hit.mean().item(), 4), abs=1e-4)
        assert result[f"recall@{k}"] == pytest.approx(round(hit.mean().item(), 4), abs=1e-4)
        assert result[f"ndcg@{k}"] == pytest.approx(round(ndcg.mean().item(), 4), abs=1e-4)
        assert result[f"mrr@{k}"] == pytest.approx(round(mrr.mean().item(), 4), abs=1e-4)
    # prefix-level recall at the last level is the item-level recall
    prefix = trainer.last_diagnostics["prefix_recall"]
    assert prefix["@20"][-1] == pytest.approx(result["recall@20"], abs=1e-4)
    assert all(a >= b for a, b in zip(prefix["@5"], prefix["@5"][1:]))


def test_exact_ranking_mode_and_pruning_rate(tiny_dataset):
    config, model, train, valid, test = build("TIGER", tiny_dataset, beam_size=20)
    trainer = build_trainer(config, model)
    beam = trainer.evaluate(test, load_best_model=False, diagnostics=True)
    pr = trainer.last_diagnostics["pruning_rate"]
    assert pr["users"] == 8
    counts = [pr[f"targets@{k}"] for k in (5, 10, 20)]
    assert counts == sorted(counts) and counts[-1] <= 8
    for k, n in zip((5, 10, 20), counts):  # undefined (None) without a target in the exact top K
        assert (pr[f"@{k}"] is None) if n == 0 else (0 <= pr[f"@{k}"] <= 1)
    config, model, train, valid, test = build("TIGER", tiny_dataset, ranking_mode="exact")
    exact = build_trainer(config, model).evaluate(test, load_best_model=False)
    # same weights (same seed): beam search can only lose targets
    assert exact["hit@20"] >= beam["hit@20"]
