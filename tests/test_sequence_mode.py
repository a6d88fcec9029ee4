"""LlamaGR's sequence mode: one causal pass per window trains every target with the
history it has in per-prefix mode -- the same logits, CE loss and gradient."""

import math

import pytest
import torch
from recbole.data.interaction import cat_interactions

from generative_setup import build, build_trainer
from recbole_genrec.config import ConfigError
from recbole_genrec.data.sequence_windows import sequence_rows, window_targets
from recbole_genrec.quick_start import run


def test_sequence_rows_keep_first_windows_and_targets_beyond_the_window():
    # user 7: targets j = 1..5 with W = 3 -> first window j = 3, then j = 4, 5 alone;
    # user 8: targets j = 1, 2 (fits) -> first window j = 2
    user = torch.tensor([7, 7, 7, 7, 7, 8, 8])
    history_len = torch.tensor([1, 2, 3, 3, 3, 1, 2])
    keep, trained, beyond = sequence_rows(user, history_len, max_len=3)
    assert keep.tolist() == [False, False, True, True, True, False, True]
    assert trained.tolist() == [0, 0, 3, 1, 1, 0, 2]
    assert beyond.tolist() == [False, False, False, True, True, False, False]
    with pytest.raises(ValueError, match="time order"):
        sequence_rows(user, torch.tensor([1, 2, 3, 3, 3, 2, 1]), max_len=3)
    with pytest.raises(ValueError, match="sequence_stride=4"):
        sequence_rows(user, history_len, max_len=3, stride=4)


def test_sequence_rows_with_a_stride_train_every_target_once():
    # one user, targets j = 1..10, W = 3, stride 3: first window j <= 3, then rows
    # j = 6 (trains j = 4..6), j = 9 (7..9) and the last row j = 10 (its remainder)
    user = torch.zeros(10, dtype=torch.long)
    history_len = torch.arange(1, 11).clamp(max=3)
    keep, trained, _ = sequence_rows(user, history_len, max_len=3, stride=3)
    assert torch.nonzero(keep).squeeze(1).tolist() == [2, 5, 8, 9]
    assert trained[keep].tolist() == [3, 3, 3, 1] and int(trained.sum()) == 10


def test_window_targets_marks_every_position_or_only_the_last():
    seq = torch.tensor([[5, 6, 0], [1, 2, 3]])
    items, trained = window_targets(seq, torch.tensor([2, 3]), torch.tensor([9, 4]),
                                    torch.tensor([2, 1]))
    assert items.tolist() == [[5, 6, 9, 0], [1, 2, 3, 4]]
    assert trained.tolist() == [[True, True, False], [False, False, True]]


def all_rows(data):
    return cat_interactions([batch for batch in data])


def target_keys(model, interaction, sequence: bool):
    """(user, visible history, target) of every trained target, in batch order."""
    users = interaction["user_id"].tolist()
    if not sequence:
        seqs, lens, targets = (interaction[k].tolist() for k in ("item_id_list", "item_length", "item_id"))
        return [(u, tuple(s[:n]), t) for u, s, n, t in zip(users, seqs, lens, targets)]
    items, trained = model.window_targets(interaction)
    keys = []
    for u, row, mask in zip(users, items.tolist(), trained.tolist()):
        for k, on in enumerate(mask, start=1):
            if on:
                keys.append((u, tuple(row[:k]), row[k]))
    return keys


@pytest.mark.parametrize("window", [20, 4], ids=["full-history", "sliding-window"])
def test_sequence_mode_equals_per_prefix_logits_loss_and_gradient(tiny_dataset, window):
    """window 20: every history fits (one pass per user); window 4: users with more
    than 5 training items also have targets with their own sliding window."""
    cfg = dict(MAX_ITEM_LIST_LENGTH=window, loss="ce")
    _, prefix_model, prefix_train, *_ = build("LlamaGR", tiny_dataset, **cfg)
    _, seq_model, seq_train, *_ = build("LlamaGR", tiny_dataset, train_mode="sequence", **cfg)
    seq_model.load_state_dict(prefix_model.state_dict())
    prefix_rows, seq_rows = all_rows(prefix_train), all_rows(seq_train)
    assert len(seq_rows) < len(prefix_rows)
    if window == 4:  # the sliding-window rows are exercised
        assert (seq_rows["trained_targets"] < seq_rows["item_length"]).any()

    prefix_batch = prefix_model.train_batch(prefix_rows)
    seq_batch = seq_model.train_batch(seq_rows)
    prefix_keys = target_keys(prefix_model, prefix_rows, sequence=False)
    seq_keys = target_keys(seq_model, seq_rows, sequence=True)
    assert sorted(prefix_keys) == sorted(seq_keys) and len(set(seq_keys)) == len(seq_keys)
    assert seq_model.n_targets(seq_rows) == len(prefix_rows)
    where = {key: i for i, key in enumerate(prefix_keys)}
    order = torch.tensor([where[key] for key in seq_keys])
    assert torch.equal(seq_batch.items, prefix_batch.items[order])
    assert torch.allclose(seq_batch.logits, prefix_batch.logits[order], atol=1e-5, rtol=0)

    prefix_loss = prefix_model.calculate_loss(prefix_rows)
    seq_loss = seq_model.calculate_loss(seq_rows)
    assert seq_loss.item() == pytest.approx(prefix_loss.item(), abs=1e-5)
    prefix_loss.backward()
    seq_loss.backward()
    for (name, a), b in zip(prefix_model.named_parameters(), seq_model.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("loss,overrides", [
    ("ce", {}), ("msl", {}), ("bear", {"bear_beam_size": 2}), ("apao", {}),
])
def test_sequence_mode_trains_pointwise_losses(tiny_dataset, loss, overrides):
    config, model, train, *_ = build("LlamaGR", tiny_dataset, train_mode="sequence", loss=loss,
                                     **overrides)
    trainer = build_trainer(config, model)
    before = [p.detach().clone() for p in model.parameters()]
    value = trainer._train_epoch(train, 0)
    assert math.isfinite(value)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize("loss,overrides,named", [
    ("apao", {"apao_variant": "pairwise"}, "apao_variant=pairwise"),
    ("ce+sdpo", {"pref_reference": "none"}, "--loss=sdpo"),
])
def test_sequence_mode_refuses_losses_that_score_candidates(tiny_dataset, loss, overrides, named):
    with pytest.raises(ConfigError, match="train_mode=sequence") as error:
        build("LlamaGR", tiny_dataset, train_mode="sequence", loss=loss, **overrides)
    assert named in str(error.value)


def test_sequence_mode_runs_end_to_end(tiny_dataset, tmp_path):
    result = run("LlamaGR", tiny_dataset.name, config_dict={
        **tiny_dataset.config, "hidden_size": 16, "n_layers": 1, "n_heads": 2,
        "intermediate_size": 32, "epochs": 2, "train_batch_size": 8, "micro_batch_size": 4,
        "train_mode": "sequence", "loss": "apao", "beam_size": 20, "pruning_rate_users": 0},
        result_file=str(tmp_path / "seq.json"))
    assert result["status"] == "complete" and result["config"]["train_mode"] == "sequence"
    assert 0.0 <= result["test"]["ndcg@10"] <= 1.0
