"""Divergence detection (recbole_genrec/trainer/divergence.py)."""

import json
import math

import pytest
import torch

from generative_setup import TINY_ARCH
from recbole_genrec.quick_start import run
from recbole_genrec.trainer.divergence import DivergenceMonitor, TrainingDiverged, parameter_norm


def monitor(steps=3, ratio=10.0, lr=1e-3):
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # norm sqrt(2)
    config = {"learning_rate": lr, "divergence_steps": steps, "divergence_norm_ratio": ratio}
    return DivergenceMonitor(config, model), model


def test_parameter_norm_by_hand():
    _, model = monitor()
    assert parameter_norm(model) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("loss, grad, fragment", [
    (float("nan"), None, "the training loss is nan"),
    (float("inf"), None, "the training loss is inf"),
    (1.0, float("inf"), "the gradient norm is inf"),
])
def test_non_finite_loss_or_gradient_stops_at_once(loss, grad, fragment):
    m, _ = monitor()
    m.check(0, 2.0, 1.0)
    with pytest.raises(TrainingDiverged, match=fragment + r".*\(epoch 4, step 2\); lower "
                                               r"--learning_rate \(now 0.001\), e.g. to 0.0001"):
        m.check(4, loss, grad)


def test_flat_loss_with_exploding_weights_stops():
    m, model = monitor(steps=3, ratio=10.0, lr=1e6)
    with torch.no_grad():
        model.weight.mul_(11)  # norm grew 11x > 10
    m.check(0, 1.3863)
    m.check(0, 1.3863)
    with pytest.raises(TrainingDiverged, match=r"stayed at 1.3863 for 3 steps while the "
                                               r"weights' norm grew 11x.*e.g. to 0.0005"):
        m.check(1, 1.3863)


@pytest.mark.parametrize("grow, losses", [
    (9.0, [1.0, 1.0, 1.0, 1.0]),        # flat, but the weights grew less than the ratio
    (100.0, [1.0, 0.99, 1.0, 0.98]),    # weights grew, but the loss still moves
    (100.0, [1.0, 1.0]),                # flat and grown, but fewer steps than the window
])
def test_no_false_alarm(grow, losses):
    m, model = monitor(steps=3, ratio=10.0)
    with torch.no_grad():
        model.weight.mul_(grow)
    for loss in losses:
        m.check(0, loss)


def feed_epochs(m, epoch_means, steps=2):
    """Each epoch's steps, around the given mean."""
    for epoch, mean in enumerate(epoch_means):
        for step in range(steps):
            m.check(epoch, mean + (0.01 if step else -0.01), 1.0)


def test_loss_falling_without_bound_stops():
    """BEAR with the gradient through its threshold on Office (issue 21): the loss fell
    -2.3, -23.6, -62.9, -119.4, ... and nothing noticed.  Stopped when the fifth epoch
    starts, naming the fourth."""
    m, _ = monitor(steps=3)
    with pytest.raises(TrainingDiverged, match=r"falling without bound \(epoch means -2.3, "
                                               r"-23.6, -62.9, -119.4.*\(epoch 3, step 8\); "
                                               r"the loss has no lower bound"):
        feed_epochs(m, [-2.3, -23.6, -62.9, -119.4, -192.5, -278.6, -378.2])


@pytest.mark.parametrize("epoch_means", [
    [6.1, 4.2, 3.5, 3.1, 2.9, 2.8],           # CE: positive, slowing down
    [-0.5, -0.8, -0.95, -1.0, -1.02],         # negative, but slowing down near a bound
    [-1.0, -2.0, -2.5, -3.5, -3.6],           # negative, the falls do not keep growing
    [-1.0, -5.0, -20.0],                      # accelerating, but for fewer epochs than the rule
])
def test_no_false_alarm_on_a_loss_that_slows_down(epoch_means):
    m, _ = monitor(steps=3)
    feed_epochs(m, epoch_means + [epoch_means[-1]])


def test_resumed_monitor_goes_on_as_if_never_stopped():
    """Its window, reference norm and epoch means are resume state: two flat steps
    before the stop and one after make the three-step window (once the window and the
    epoch means restarted empty after a resume)."""
    m, model = monitor(steps=3, ratio=10.0)
    with torch.no_grad():
        model.weight.mul_(11)
    m.check(0, 1.3863)
    m.check(0, 1.3863)
    resumed, _ = monitor(steps=3, ratio=10.0)
    resumed.model = model
    resumed.load_state_dict(m.state_dict())
    with pytest.raises(TrainingDiverged, match=r"stayed at 1.3863 for 3 steps.*step 3\)"):
        resumed.check(1, 1.3863)

    falling, _ = monitor(steps=3)
    feed_epochs(falling, [-2.3, -23.6, -62.9])
    again, _ = monitor(steps=3)
    again.load_state_dict(falling.state_dict())
    with pytest.raises(TrainingDiverged, match="falling without bound"):
        for step in range(3):
            again.check(3 + step // 2, -119.4)


def test_init_from_measures_weight_growth_from_the_loaded_weights(tiny_dataset, tmp_path):
    """The reference norm was the random initialisation's even under --init_from."""
    from generative_setup import build, build_trainer

    config, model, *_ = build("TIGER", tiny_dataset, loss="ce")
    trainer = build_trainer(config, model)
    random_init = parameter_norm(model)
    state = {k: v * 5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "scaled.pth"
    torch.save({"state_dict": state, "config": {}}, path)
    trainer.init_from_checkpoint(str(path))
    assert trainer.divergence.initial_norm == pytest.approx(5 * random_init, rel=1e-4)


def test_training_state_holds_the_monitor(tiny_dataset, tmp_path):
    options = {**tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 1, "loss": "ce",
               "pruning_rate_users": 0}
    result = run("TIGER", tiny_dataset.name, config_dict=options,
                 result_file=tmp_path / "r.json")
    state = torch.load(result["last_checkpoint"], weights_only=False)
    assert state["divergence"]["step"] > 0 and len(state["divergence"]["epoch_means"]) == 0
    assert state["divergence"]["epoch_steps"] == state["divergence"]["step"]


@pytest.mark.parametrize("model, loss", [("TIGER", "ce"), ("LlamaGR", "apao"), ("SASRec", None)])
def test_too_high_learning_rate_marks_the_result_diverged(tiny_dataset, tmp_path, model, loss):
    """The issue's case: lr 1e6 keeps TIGER at a constant, finite loss with exploding
    weights; a NaN-producing rate stops at once.  The run ends with TrainingDiverged and
    a result JSON marked diverged, not with test metrics."""
    options = {**tiny_dataset.config, "epochs": 40, "divergence_steps": 5}
    if loss:
        options.update(TINY_ARCH[model], loss=loss, learning_rate=1e6, pruning_rate_users=0)
    else:
        options.update(n_layers=1, n_heads=1, hidden_size=8, inner_size=16, learning_rate=1e30)
    result_file = tmp_path / "r.json"
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run(model, tiny_dataset.name, config_dict=options, result_file=result_file)
    result = json.loads(result_file.read_text())
    assert result["status"] == "diverged" and "TrainingDiverged" in result["error"]
    assert "test" not in result and result["epochs_done"] < 40


def test_normal_training_is_not_stopped(tiny_dataset, tmp_path):
    result = run("TIGER", tiny_dataset.name, config_dict={
        **tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 8, "divergence_steps": 3,
        "pruning_rate_users": 0}, result_file=tmp_path / "r.json")
    assert result["status"] == "complete" and result["timings"]["epochs_run"] == 8
