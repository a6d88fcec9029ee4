"""The whole path on a CUDA GPU (skipped where there is none: CI, the CPU machine).

Training with every loss on both backbones, beam search, exact ranking, PR@K, bf16
autocast, RecBole's own models, and the search's per-trial GPU fraction.  Run on a GPU
machine with ``pytest -m cuda`` (``benchmarks/gpu_check.sh`` does).
"""

import json
import math

import pytest
import torch

from generative_setup import GENERATIVE_BACKBONES, TINY_ARCH
from recbole_genrec.quick_start import run

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LOSSES = [
    ("ce", {}),
    ("apao", {}),
    ("apao", {"apao_variant": "pairwise", "apao_n_neg": 10}),
    ("bear", {"bear_beam_size": 2}),
    ("msl", {}),
    ("ce+sdpo", {"pref_reference": "none", "pref_n_neg": 10}),
]


def gpu_run(model, tiny, tmp_path, **overrides):
    if model in TINY_ARCH:
        options = {**TINY_ARCH[model], "micro_batch_size": 32, "pruning_rate_users": 8,
                   "full_rank_batch_users": 4}
    else:
        options = {"n_layers": 1, "n_heads": 1, "hidden_size": 16, "inner_size": 32}
    result_file = tmp_path / f"{model}-{overrides.get('loss', 'classic')}.json"
    run(model, tiny.name, config_dict={
        **tiny.config, **options, "epochs": 2, "train_batch_size": 64, "eval_batch_size": 64,
        "gpu_id": "0", **overrides}, result_file=result_file)
    return json.loads(result_file.read_text())


@pytest.mark.parametrize("backbone", GENERATIVE_BACKBONES)
@pytest.mark.parametrize("loss,overrides", LOSSES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LOSSES)])
def test_every_loss_trains_and_evaluates_on_the_gpu(backbone, loss, overrides, tiny_dataset, tmp_path):
    result = gpu_run(backbone, tiny_dataset, tmp_path, loss=loss, **overrides)
    assert result["device"].startswith("cuda")
    assert all(math.isfinite(v) for v in result["test"].values())
    assert len(result["diagnostics"]["prefix_recall"]["@10"]) >= 3
    assert result["diagnostics"]["pruning_rate"]["users"] == 8


@pytest.mark.parametrize("backbone", GENERATIVE_BACKBONES)
def test_exact_ranking_on_the_gpu_equals_the_cpu(backbone, tiny_dataset, tmp_path):
    gpu = gpu_run(backbone, tiny_dataset, tmp_path, loss="ce", ranking_mode="exact")
    cpu = gpu_run(backbone, tiny_dataset, tmp_path / "cpu", loss="ce", ranking_mode="exact",
                  gpu_id="", epochs=0, init_from=gpu["checkpoint"])  # RecBole: no gpu_id = CPU
    assert cpu["device"] == "cpu"
    ranks_gpu, ranks_cpu = gpu["per_user"]["test"]["target_rank"], cpu["per_user"]["test"]["target_rank"]
    agree = sum(a == b for a, b in zip(ranks_gpu, ranks_cpu)) / len(ranks_gpu)
    assert agree >= 0.95  # ties within float rounding may swap neighbours


@pytest.mark.parametrize("backbone", GENERATIVE_BACKBONES)
def test_bf16_training_on_the_gpu(backbone, tiny_dataset, tmp_path):
    result = gpu_run(backbone, tiny_dataset, tmp_path, loss="apao", precision="bf16")
    assert result["config"]["precision"] == "bf16"
    assert all(math.isfinite(v) for v in result["test"].values())


@pytest.mark.parametrize("model", ["SASRec", "BERT4Rec"])
def test_recbole_models_on_the_gpu(model, tiny_dataset, tmp_path):
    result = gpu_run(model, tiny_dataset, tmp_path)
    assert result["device"].startswith("cuda") and math.isfinite(result["test"]["ndcg@10"])


def test_search_trials_get_a_gpu_fraction(tiny_dataset, tmp_path):
    pytest.importorskip("ray")
    from tuning import search

    outputs = search.main([
        "--model=TIGER", "--loss=ce", "--dataset=Tiny", "--num_samples=2", "--num_cpus=2",
        "--gpus_per_trial=0.5", f"--storage_path={tmp_path / 'tune'}", "--name=gpu",
        f"--data_path={tiny_dataset.data_path}", "--epochs=1", "--pruning_rate_users=0",
        *(f"--{k}={v}" for k, v in TINY_ARCH["TIGER"].items())])
    assert all(r["status"] == "COMPLETED" for r in outputs["rows"])


@pytest.mark.parametrize("loss", ["ce", "apao", "bear"])
def test_sequence_mode_trains_on_gpu(tiny_dataset, tmp_path, loss):
    result = gpu_run("LlamaGR", tiny_dataset, tmp_path, loss=loss, train_mode="sequence",
                     **({"bear_beam_size": 2} if loss == "bear" else {}))
    assert result["status"] == "complete" and result["device"].startswith("cuda")
    assert math.isfinite(result["loss_state"]["per_epoch"][-1]["loss"])
