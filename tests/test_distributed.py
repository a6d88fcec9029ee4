"""Data-parallel training on RecBole's distributed options (recbole_genrec/distributed.py):
two real CPU processes (Gloo) through the entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole_genrec.trainer.sequential_trainer import _first_occurrences

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_TIGER = PROJECT_ROOT / "tuning" / "examples" / "tiger_tiny.yaml"


def entry_point(args, cwd):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def tiger_args(tiny_dataset, pruning_rate_users=16, **extra):
    args = ["--model=TIGER", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
            f"--config_files={TINY_TIGER}", f"--pruning_rate_users={pruning_rate_users}",
            "--show_progress=false",
            "--train_batch_size=64", "--micro_batch_size=16", "--seed=5"]
    return args + [f"--{k}={v}" for k, v in extra.items()]


def per_user(result) -> dict:
    test = result["per_user"]["test"]
    return dict(zip(test["user_id"], test["target_rank"]))


def test_first_occurrences_by_hand():
    ids = torch.tensor([7, 3, 7, 5, 3])  # a padded shard repeats users
    unique, first = _first_occurrences(ids)
    assert unique.tolist() == [3, 5, 7] and first.tolist() == [1, 3, 0]


def test_two_process_tiger_apao_matches_one_process_evaluation(tiny_dataset, tmp_path):
    """--nproc=2: the ranks end with identical replicas (APAO's weights included), the
    result JSON is written once, every user is evaluated exactly once, and the
    gathered metrics -- PR@K included -- equal a one-process evaluation of the same
    checkpoint."""
    out = entry_point(tiger_args(tiny_dataset, loss="apao", epochs=3, nproc=2,
                                 result_file="ddp.json"), tmp_path)
    result = json.loads((tmp_path / "ddp.json").read_text())
    assert result["status"] == "complete"
    assert result["distributed"] == {"world_size": 2, "backend": "gloo", "replicas_identical": True}
    users = result["per_user"]["test"]["user_id"]
    assert len(users) == len(set(users)) == tiny_dataset.n_users
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["ddp.json"]  # written once
    assert len(list((tmp_path / "saved").glob("*.pth"))) == 2  # one best + one state, rank 0's
    assert out.stdout.count("== TIGER on Tiny") == 1  # one summary

    entry_point(tiger_args(tiny_dataset, loss="apao", epochs=0, init_from=result["checkpoint"],
                           result_file="one.json"), tmp_path)
    single = json.loads((tmp_path / "one.json").read_text())
    assert single["test"] == result["test"]
    assert per_user(single) == per_user(result)
    assert single["diagnostics"]["prefix_recall"] == result["diagnostics"]["prefix_recall"]
    assert result["diagnostics"]["pruning_rate"]["users"] == 16
    assert single["diagnostics"]["pruning_rate"] == result["diagnostics"]["pruning_rate"]


def test_two_process_sasrec_trains_identical_replicas(tiny_dataset, tmp_path):
    """RecBole's own model on RecBole's own training loop, Gloo on CPU."""
    entry_point(["--model=SASRec", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
                 "--epochs=2", "--show_progress=false", "--n_layers=1", "--n_heads=1",
                 "--hidden_size=8", "--inner_size=16", "--nproc=2", "--result_file=sas.json"],
                tmp_path)
    result = json.loads((tmp_path / "sas.json").read_text())
    assert result["distributed"]["replicas_identical"] is True
    users = result["per_user"]["test"]["user_id"]
    assert len(users) == len(set(users)) == tiny_dataset.n_users


def test_resume_with_several_processes_is_refused(tiny_dataset, tmp_path):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"),
                           *tiger_args(tiny_dataset, nproc=2, resume_from="x-last.pth")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: --resume_from is for one-process runs (--nproc=2)" in proc.stderr
