"""What the entry point prints: no third-party warnings, the model as a short
summary, and a one-screen summary whose re-evaluate command works."""

import json
import os
import shlex
import subprocess
import sys

import pytest

import run_recbole_genrec
from generative_setup import TINY_ARCH, build
from recbole_genrec.cli import parse_overrides
from recbole_genrec.config import PROJECT_ROOT
from recbole_genrec.run_summary import model_summary

TINY_TIGER = [f"--{k}={v}" for k, v in TINY_ARCH["TIGER"].items()] + [
    "--train_batch_size=64", "--micro_batch_size=32", "--eval_batch_size=64",
    "--pruning_rate_users=8"]


def test_entry_point_output(tiny_dataset, tmp_path):
    """A real process, as a user runs it: clean stderr, the summary on stdout, and the
    printed re-evaluate command reproduces the test metrics from the checkpoint."""
    argv = ["--model=TIGER", "--loss=apao", "--dataset=Tiny",
            f"--data_path={tiny_dataset.data_path}", "--epochs=2", *TINY_TIGER]
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"), *argv],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr  # pandas / torch deprecations fixed
    assert "epoch 1 (2/2): train" in proc.stderr
    out = proc.stdout
    for expected in ("== TIGER on Tiny (loss=apao)", "best epoch ", "recall@5  recall@10",
                     "  valid ", "  test ", "prefix recall   level 1   level 2   level 3",
                     "PR@K (8 sampled users): @5", "time: training", "torch thread",
                     "result JSON: saved/TIGER-Tiny-apao.json", "checkpoint:  saved/TIGER-Tiny",
                     "tensorboard --logdir log_tensorboard/TIGER-Tiny-apao",
                     "test: recall@5="):
        assert expected in out, expected
    assert len(out.strip().splitlines()) <= 20  # one screen

    command = shlex.split(out.split("re-evaluate: ", 1)[1].splitlines()[0])
    assert command[2:4] == ["--model=TIGER", "--dataset=Tiny"]
    trained = json.loads((tmp_path / "saved/TIGER-Tiny-apao.json").read_text())
    assert command[-3:-1] == ["--epochs=0", f"--init_from={trained['checkpoint']}"]
    os.chdir(tmp_path)
    evaluated = run_recbole_genrec.main(command[2:])
    assert evaluated["result_file"] == "saved/TIGER-Tiny-apao-eval.json"
    assert evaluated["timings"]["epochs_run"] == 0
    assert evaluated["test"] == pytest.approx(trained["test"])


def test_model_summary_counts_every_parameter(tiny_dataset):
    _, model, *_ = build("TIGER", tiny_dataset, loss="apao")
    lines = model_summary(model).splitlines()
    total = sum(p.numel() for p in model.parameters())
    assert lines[0] == f"TIGER: {total:,} parameters (all trainable)"
    blocks = {line.split()[0]: int(line.split()[-1].replace(",", "")) for line in lines[1:-1]}
    assert set(blocks) == {"embedding", "encoder", "decoder", "lm_head"}
    assert sum(blocks.values()) == total
    assert lines[-1].startswith("  loss: APAOLoss(variant=pointwise, beta=")


def test_verbose_is_a_switch():
    assert parse_overrides(["--verbose", "--epochs=2"]) == {"verbose": "True", "epochs": "2"}
    with pytest.raises(SystemExit, match="'--epochs' is not of the form"):
        parse_overrides(["--epochs"])
