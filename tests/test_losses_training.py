"""Loss plugins on real generative backbones: one training step with every loss on
every backbone, reductions to CE, checkpointed APAO weights, the second-stage
reference model, and the options through the config layer."""

import json
import math

import pytest
import torch

from generative_setup import GENERATIVE_BACKBONES, build, build_trainer
from recbole_genrec.config import ConfigError
from recbole_genrec.losses import build_loss
from recbole_genrec.quick_start import run

# (name, config overrides); tiny codebooks have 4 codes per level, so BEAR's
# threshold uses B = 2 (with B = 20 > 4 candidates the condition always holds).
ONE_STAGE = [
    ("ce", {}),
    ("apao", {}),
    ("apao", {"apao_variant": "pairwise", "apao_n_neg": 10}),
    ("bear", {"bear_beam_size": 2}),
    ("bear", {"bear_beam_size": 2, "bear_constrained": True}),
    ("msl", {"msl_tau": 2.0}),
    ("ce+sdpo", {"pref_reference": "none", "pref_n_neg": 10, "loss_weights": {"sdpo": 0.5}}),
]
SECOND_STAGE = ["dpo", "dmpo", "sdpo"]


def first_batch(data):
    return next(iter(data))


def train_one_epoch(trainer, train):
    """Trains over the tiny training set (a few optimizer steps); returns the mean loss."""
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss = trainer._train_epoch(train, 0)
    changed = any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))
    return loss, changed


def save_ce_checkpoint(backbone, tiny_dataset, path):
    config, model, train, *_ = build(backbone, tiny_dataset, loss="ce")
    trainer = build_trainer(config, model)
    trainer._train_epoch(train, 0)
    trainer._save_checkpoint(0, verbose=False, saved_model_file=str(path))
    return model


@pytest.mark.parametrize("backbone", GENERATIVE_BACKBONES)
@pytest.mark.parametrize("loss,overrides", ONE_STAGE, ids=[
    f"{name}-{'-'.join(f'{k}={v}' for k, v in o.items() if k != 'loss_weights')}" for name, o in ONE_STAGE])
def test_one_stage_loss_trains_on_every_backbone(backbone, loss, overrides, tiny_dataset):
    config, model, train, *_ = build(backbone, tiny_dataset, loss=loss, **overrides)
    trainer = build_trainer(config, model)
    value, changed = train_one_epoch(trainer, train)
    assert math.isfinite(value) and changed
    record = trainer.loss_history[-1]
    assert all(math.isfinite(v) for k, v in record.items() if isinstance(v, float))
    if loss == "apao":
        weights = trainer.loss_state_summary()["final"]["prefix_weights"]
        assert len(weights) == model.n_levels and sum(weights) == pytest.approx(1.0, abs=1e-5)
        assert {"ce", "prefix_1", f"w_{model.n_levels}"} <= set(record)


@pytest.mark.parametrize("backbone", GENERATIVE_BACKBONES)
@pytest.mark.parametrize("loss", SECOND_STAGE)
def test_second_stage_loss_trains_from_a_ce_checkpoint(backbone, loss, tiny_dataset, tmp_path):
    path = tmp_path / "ce.pth"
    save_ce_checkpoint(backbone, tiny_dataset, path)
    config, model, train, *_ = build(backbone, tiny_dataset, loss=loss, pref_n_neg=10,
                                     init_from=str(path))
    trainer = build_trainer(config, model)
    trainer.init_from_checkpoint(str(path))
    reference = model.loss.reference
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    assert not any(k.startswith("loss.") for k in model.state_dict())  # reference not saved
    assert reference.loss.reference is None  # the copy holds no copy of itself
    # at the start the policy is the reference: every reward is 0, so DPO and DMPO
    # are log 2 and S-DPO is softplus(log n_valid) = log(1 + n_valid) per target
    model.train()
    inter = first_batch(train)
    negatives = torch.randint(1, model.n_items, (len(inter), 10),
                              generator=torch.Generator().manual_seed(0))
    negatives[0, :3] = inter[model.POS_ITEM_ID][0]  # equal to the target: masked
    model.sample_items = lambda n_rows, n: negatives
    value = model.calculate_loss(inter).item()
    del model.sample_items
    n_valid = (negatives != inter[model.POS_ITEM_ID][:, None]).sum(1).double()
    expected = torch.log1p(n_valid).mean().item() if loss == "sdpo" else math.log(2)
    assert value == pytest.approx(expected, abs=1e-5)
    assert model.last_loss_parts["reward_margin"].abs().item() < 1e-4
    value, changed = train_one_epoch(trainer, train)
    assert math.isfinite(value) and changed


def test_second_stage_loss_without_init_from_is_a_clear_error(tiny_dataset):
    """Refused by the config, before any data is read (it once failed at the first
    training step, after the data was loaded)."""
    with pytest.raises(ConfigError, match="sdpo compares the model with a frozen reference.*"
                                          "--init_from"):
        build("TIGER", tiny_dataset, loss="sdpo")
    build("TIGER", tiny_dataset, loss="sdpo", pref_reference="none")


@pytest.mark.parametrize("loss,overrides", [
    ("apao", {"apao_beta": 0.0}),
    ("apao", {"apao_beta": 0.0, "apao_variant": "pairwise", "apao_n_neg": 5}),
    ("bear", {"bear_lambda": 0.0, "bear_beam_size": 2}),
])
def test_zero_weight_reduces_exactly_to_ce(loss, overrides, tiny_dataset):
    config, model, train, *_ = build("TIGER", tiny_dataset, loss=loss, **overrides)
    model.train()
    batch = model.train_batch(first_batch(train))
    ce = build_loss({**config.final_config_dict, "loss": "ce"}, model)
    ce_value, _ = ce(model, batch)
    value, parts = model.loss(model, batch)
    assert torch.equal(value, ce_value)
    params = [p for p in model.parameters() if p.requires_grad]
    g_ce = torch.autograd.grad(ce_value, params, retain_graph=True, allow_unused=True)
    g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g_ce, g))
    # the extra term itself is not zero, only its weight
    extra = parts.get("prefix", parts.get("bear_reg"))
    assert extra.abs().item() > 0


def test_apao_weights_survive_a_checkpoint_round_trip(tiny_dataset, tmp_path):
    config, model, train, *_ = build("TIGER", tiny_dataset, loss="apao", apao_eta=0.5)
    trainer = build_trainer(config, model)
    trainer._train_epoch(train, 0)
    weights = model.loss.prefix_weights.weights.clone()
    assert not torch.allclose(weights, torch.full_like(weights, 1 / len(weights)))
    # plain state_dict, loaded the torch >= 2.6 way
    path = tmp_path / "state.pth"
    torch.save(model.state_dict(), path)
    _, fresh, *_ = build("TIGER", tiny_dataset, loss="apao", apao_eta=0.5)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(fresh.loss.prefix_weights.weights, weights)
    # through the trainer's checkpoint and resume
    trainer._save_checkpoint(0, verbose=False, saved_model_file=str(tmp_path / "ckpt.pth"))
    config2, resumed, train2, *_ = build("TIGER", tiny_dataset, loss="apao", apao_eta=0.5)
    trainer2 = build_trainer(config2, resumed)
    trainer2.resume_checkpoint(str(tmp_path / "ckpt.pth"))
    assert torch.equal(resumed.loss.prefix_weights.weights, weights)
    trainer2._train_epoch(train2, 1)  # and training continues from them
    assert not torch.equal(resumed.loss.prefix_weights.weights, weights)


def test_loss_options_through_the_config_layer(tiny_dataset):
    config, model, *_ = build("TIGER", tiny_dataset, loss="apao", apao_variant="pairwise",
                              apao_weight_rule="reference", apao_eta=0.0)
    assert model.loss.variant == "pairwise" and model.loss.prefix_weights.rule == "reference"
    assert config["apao_beta"] == 0.3 and config["apao_n_neg"] == 100  # property-file defaults
    with pytest.raises(ConfigError, match="apao_bta"):
        build("TIGER", tiny_dataset, loss="apao", apao_bta=0.1)
    with pytest.raises(ConfigError, match="bear_xi"):  # another loss's option
        build("TIGER", tiny_dataset, loss="apao", bear_xi=0.5)
    config, model, *_ = build("TIGER", tiny_dataset, loss="ce+msl", msl_tau=3.0,
                              loss_weights={"msl": 0.25})
    assert model.loss.weights == {"ce": 1.0, "msl": 0.25} and model.loss.parts["msl"].tau == 3.0


def test_result_json_records_loss_hyperparameters_and_final_weights(tiny_dataset, tmp_path):
    from generative_setup import TINY_ARCH
    result_file = tmp_path / "result.json"
    run("TIGER", tiny_dataset.name, config_dict={
        **tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 1, "train_batch_size": 64,
        "micro_batch_size": 32, "eval_batch_size": 64, "pruning_rate_users": 4,
        "loss": "apao", "apao_beta": 0.2, "apao_eta": 0.01}, result_file=result_file)
    result = json.loads(result_file.read_text())
    assert result["loss"] == "apao" and result["config"]["apao_beta"] == 0.2
    assert result["config"]["apao_variant"] == "pointwise"
    weights = result["loss_state"]["final"]["prefix_weights"]
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert result["loss_state"]["per_epoch"][0]["prefix_weights"] == weights


def test_result_json_final_loss_state_is_the_last_epochs_not_the_best_epochs(tiny_dataset,
                                                                             tmp_path):
    """Validation every 2 epochs of 3: the tested checkpoint is epoch 1's, training ends
    after epoch 2.  loss_state.final held the best checkpoint's APAO weights (the test
    loads them before the result was written)."""
    from generative_setup import TINY_ARCH
    result_file = tmp_path / "result.json"
    run("TIGER", tiny_dataset.name, config_dict={
        **tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 3, "eval_step": 2,
        "train_batch_size": 64, "micro_batch_size": 32, "eval_batch_size": 64,
        "pruning_rate_users": 0, "loss": "apao", "apao_eta": 0.05}, result_file=result_file)
    result = json.loads(result_file.read_text())
    per_epoch = result["loss_state"]["per_epoch"]
    assert result["best_epoch"] == 1 and len(per_epoch) == 3
    assert per_epoch[2]["prefix_weights"] != per_epoch[1]["prefix_weights"]
    assert result["loss_state"]["final"]["prefix_weights"] == per_epoch[2]["prefix_weights"]


def test_checkpointed_candidate_chunks_give_the_same_loss_and_gradients(tiny_dataset):
    config, model, train, *_ = build("TIGER", tiny_dataset, loss="apao", apao_variant="pairwise",
                                     apao_n_neg=7, apao_eta=0.0)  # fixed weights
    model.train()
    inter = first_batch(train)
    negatives = torch.randint(1, model.n_items, (len(inter), 7),
                              generator=torch.Generator().manual_seed(1))
    model.sample_items = lambda n_rows, n: negatives
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for chunk in (0, 3):
        model.loss.neg_chunk = chunk
        loss = model.calculate_loss(inter)
        results.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (l0, g0), (l1, g1) = results
    assert torch.allclose(l0, l1, atol=1e-6)
    assert all((a is None and b is None) or torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1))
