"""End to end: RecBole's SASRec and BERT4Rec through this project's quick-start."""

import json
import math
from pathlib import Path

import pytest
import torch

from recbole.data import data_preparation
from recbole.utils import init_seed

import run_recbole_genrec
from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.quick_start import run
from recbole_genrec.trainer import SequentialTrainer

TINY = {
    "SASRec": {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1},
    "BERT4Rec": {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1},
}
FAST = {"epochs": 1, "train_batch_size": 64, "eval_batch_size": 64}
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr") for k in (5, 10, 20)]


def tiny_run(model, tiny_dataset, **kwargs):
    config_dict = {**tiny_dataset.config, **TINY[model], **FAST, **kwargs.pop("config_dict", {})}
    return run(model, tiny_dataset.name, config_dict=config_dict, **kwargs)


def check_ranks_match_metrics(metrics, ranks):
    """Per-user target ranks (1-based, 0 = outside the top 20) reproduce the metrics."""
    n = len(ranks)
    for k in (5, 10, 20):
        hit = sum(1 <= r <= k for r in ranks) / n
        ndcg = sum(1 / math.log2(r + 1) for r in ranks if 1 <= r <= k) / n
        mrr = sum(1 / r for r in ranks if 1 <= r <= k) / n
        assert metrics[f"hit@{k}"] == pytest.approx(hit, abs=1e-4)
        assert metrics[f"recall@{k}"] == pytest.approx(hit, abs=1e-4)  # one target per user
        assert metrics[f"ndcg@{k}"] == pytest.approx(ndcg, abs=1e-4)
        assert metrics[f"mrr@{k}"] == pytest.approx(mrr, abs=1e-4)


@pytest.mark.parametrize("model", ["SASRec", "BERT4Rec"])
def test_run_writes_result_json(model, tiny_dataset, tmp_path):
    result = tiny_run(model, tiny_dataset)
    path = Path(result["result_file"])
    assert path == Path("saved") / f"{model}-Tiny-default.json"  # default, under the cwd
    saved = json.loads(path.read_text())
    assert {"model", "dataset", "loss", "config", "valid", "test", "per_user", "timings"} <= \
        set(saved)
    assert saved["model"] == model and saved["dataset"] == "Tiny" and saved["loss"] is None

    # resolved config, as plain data
    assert saved["config"]["hidden_size"] == 8 and saved["config"]["epochs"] == 1
    assert saved["config"]["MAX_ITEM_LIST_LENGTH"] == 20
    assert saved["config"]["valid_metric"] == "NDCG@10"

    for split in ("valid", "test"):
        assert sorted(saved[split]) == sorted(METRICS)
        assert all(0.0 <= v <= 1.0 for v in saved[split].values())
    assert saved["best_valid_score"] == pytest.approx(saved["valid"]["ndcg@10"])

    users = saved["per_user"]["test"]["user_id"]
    ranks = saved["per_user"]["test"]["target_rank"]
    assert len(users) == len(ranks) == tiny_dataset.n_users
    assert sorted(users, key=int) == [str(u) for u in sorted(tiny_dataset.sequences)]
    assert all(0 <= r <= 20 for r in ranks)
    check_ranks_match_metrics(saved["test"], ranks)

    timings = saved["timings"]
    assert timings["epochs_run"] == 1 and len(timings["epoch_train_s"]) == 1
    assert 0 < timings["epoch_train_s"][0] <= timings["fit_s"] <= timings["total_s"]
    assert timings["test_s"] > 0

    # the best checkpoint is plain data
    checkpoint = torch.load(saved["checkpoint"], weights_only=True)
    assert checkpoint["config"]["model"] == model
    assert not torch.is_anomaly_enabled()


def test_result_file_option_and_determinism(tiny_dataset, tmp_path):
    first = tiny_run("SASRec", tiny_dataset, cmd_overrides={"result_file": "out/a.json"})
    assert first["result_file"] == "out/a.json" and Path("out/a.json").is_file()
    second = tiny_run("SASRec", tiny_dataset, result_file=tmp_path / "b.json")
    assert (tmp_path / "b.json").is_file()
    # same seed, same data: the same numbers
    assert first["test"] == second["test"] and first["valid"] == second["valid"]
    assert first["per_user"] == second["per_user"]


def test_ranks_against_the_model_scores(tiny_dataset):
    """target_rank is the target's position in the model's full ranking of all items."""
    config = GenRecConfig("SASRec", tiny_dataset.name,
                          config_dict={**tiny_dataset.config, **TINY["SASRec"], **FAST})
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, GenRecDataset(config))
    model = config.model_class(config, train._dataset)
    trainer = SequentialTrainer(config, model)
    trainer._train_epoch(train, 0)
    result = trainer.evaluate(test, load_best_model=False)

    expected = {}
    model.eval()
    with torch.no_grad():
        for interaction, history_index, positive_u, positive_i in test:
            assert history_index is None  # nothing masked besides the padding item
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -torch.inf
            target = scores[positive_u, positive_i]
            rank = (scores[positive_u] > target[:, None]).sum(1) + 1
            for u, r in zip(interaction["user_id"][positive_u].tolist(), rank.tolist()):
                expected[test._dataset.id2token("user_id", [u])[0]] = r if r <= 20 else 0
    observed = dict(zip(trainer.last_eval_users, trainer.last_eval_ranks))
    assert observed == expected
    assert any(r > 0 for r in observed.values())
    check_ranks_match_metrics(result, trainer.last_eval_ranks)


def test_entry_point_prints_metrics(tiny_dataset, capsys):
    argv = ["--model=SASRec", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
            "--epochs=1", "--hidden_size=8", "--inner_size=16", "--n_layers=1", "--n_heads=1",
            "--result_file=entry.json"]
    run_recbole_genrec.main(argv)
    out = capsys.readouterr().out
    assert "SASRec on Tiny" in out
    for metric in METRICS:
        assert f"{metric}=" in out
    assert "result JSON: entry.json" in out
    assert json.loads(Path("entry.json").read_text())["config"]["n_layers"] == 1


def test_single_user_per_user_output_is_a_list(tmp_path, make_dataset):
    """numpy reads a one-element index tensor as a scalar: keep user_id a list."""
    make_dataset(tmp_path / "data", "One", {0: list(range(25))})
    result = run("SASRec", "One", config_dict={"data_path": str(tmp_path / "data"),
                                               **TINY["SASRec"], **FAST})
    assert result["per_user"]["test"]["user_id"] == ["0"]
    assert len(result["per_user"]["test"]["target_rank"]) == 1
