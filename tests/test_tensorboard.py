"""TensorBoard: one run per result JSON in log_tensorboard/, read back with
TensorBoard's own EventAccumulator."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from generative_setup import TINY_ARCH
from recbole_genrec.quick_start import run
from recbole_genrec.trainer.tensorboard_run import run_name_for

TINY_SASREC = {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1}
FAST = {"train_batch_size": 64, "eval_batch_size": 64, "epochs": 2}


def tiny_generative_run(tiny, loss, **overrides):
    config = {**tiny.config, **TINY_ARCH["TIGER"], **FAST, "micro_batch_size": 32,
              "pruning_rate_users": 8, "loss": loss, **overrides}
    return run("TIGER", tiny.name, config_dict=config)


def read_events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def values(events, tag) -> dict:
    return {e.step: e.value for e in events.Scalars(tag)}


def test_apao_run_writes_its_curves(tiny_dataset):
    result = tiny_generative_run(tiny_dataset, "apao")
    runs = list(Path("log_tensorboard").iterdir())
    assert runs == [Path("log_tensorboard/TIGER-Tiny-apao")]  # named like the result JSON
    assert Path(result["result_file"]).stem == runs[0].name == Path(result["tensorboard"]).name
    events = read_events(runs[0])
    tags = set(events.Tags()["scalars"])

    history = result["loss_state"]["per_epoch"]
    for part in ("loss", "ce", "prefix", "prefix_1", "prefix_3"):
        tag = "Loss/Train" if part == "loss" else f"Loss/{part}"
        assert values(events, tag) == pytest.approx({h["epoch"]: h[part] for h in history})
    for m in (1, 2, 3):  # APAO's prefix weights, epoch means
        assert values(events, f"PrefixWeight/w_{m}") == pytest.approx(
            {h["epoch"]: h[f"w_{m}"] for h in history})
    assert values(events, "LR") == pytest.approx({h["epoch"]: h["lr"] for h in history})
    for metric in ("ndcg@10", "recall@20", "mrr@5"):
        assert values(events, f"Valid/{metric}") == pytest.approx(
            {v["epoch"]: v[metric] for v in result["valid_history"]})
    for k in (5, 10, 20):
        assert {f"PrefixRecall@{k}/level_{m}" for m in (1, 2, 3)} <= tags
    assert {"Time/train_s", "Time/valid_s"} <= tags
    best = result["best_epoch"]
    assert values(events, "Test/ndcg@10") == pytest.approx({best: result["test"]["ndcg@10"]})
    pruning = result["diagnostics"]["pruning_rate"]
    assert all(values(events, f"PR{k}") == pytest.approx({best: pruning[k]})
               for k in ("@5", "@10", "@20") if pruning[k] is not None)
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_bear_terms_and_a_rerun_replaces_the_run(tiny_dataset):
    tiny_generative_run(tiny_dataset, "bear", bear_beam_size=2, epochs=1)
    result = tiny_generative_run(tiny_dataset, "bear", bear_beam_size=2, epochs=2)
    folder = Path(result["tensorboard"])
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1  # one run per folder
    events = read_events(folder)
    history = result["loss_state"]["per_epoch"]
    for part in ("ce", "bear_reg", "violation_rate"):
        assert values(events, f"Loss/{part}") == pytest.approx(
            {h["epoch"]: h[part] for h in history})


def test_classic_model_curves(tiny_dataset):
    result = run("SASRec", tiny_dataset.name,
                 config_dict={**tiny_dataset.config, **TINY_SASREC, **FAST})
    events = read_events(result["tensorboard"])
    assert sorted(values(events, "Loss/Train")) == [0, 1]
    assert values(events, "Valid/ndcg@10") == pytest.approx(
        {v["epoch"]: v["ndcg@10"] for v in result["valid_history"]})
    learning_rate = result["config"]["learning_rate"]
    assert list(values(events, "LR").values()) == pytest.approx([learning_rate] * 2)


def test_run_names(tmp_path):
    assert run_name_for("saved/TIGER-Office-apao.json", "saved") == "TIGER-Office-apao"
    assert run_name_for("entry.json", "saved") == "entry"
    assert run_name_for(tmp_path / "runs" / "TIGER_apao" / "seed2020.json",
                        tmp_path / "checkpoints") == "TIGER_apao-seed2020"
