"""``tuning.reproduce``: the smoke profile end to end, resuming an interrupted grid,
profile checks; and the training-time budget it relies on."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from generative_setup import TINY_ARCH, build, build_trainer
from recbole_genrec.config import ConfigError
from recbole_genrec.quick_start import run
from tuning import reproduce

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["training_curves", "prefix_recall", "pruning_rate", "beam_sweep", "sensitivity"]


def test_smoke_profile_end_to_end(tiny_dataset, tmp_path):
    out = tmp_path / "report"
    reproduce.main(["--profile=smoke", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
                    f"--out={out}"])
    profile = reproduce.load_profile("smoke")
    for run_spec in profile.runs:
        for seed in profile.seeds:
            result = json.loads((out / "runs" / run_spec.slug / f"seed{seed}.json").read_text())
            assert result["model"] == run_spec.model and result["config"]["seed"] == seed
            assert len(result["valid_history"]) == result["timings"]["epochs_run"] == 1
    report = (out / "report.md").read_text()
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.csv").is_file()
        assert f"]({name}.png)" in report
    assert "## TIGER:apao vs TIGER:ce" in report  # the profile's pair
    invocations = (out / "invocations.jsonl").read_text().splitlines()
    assert len(invocations) == 1 and json.loads(invocations[0])["runs_done"] == 8
    table = (out / "table.md").read_text()
    assert "TIGER:apao" in table and "SASRec" in table and "paired t-test" in table
    paper = (out / "paper.csv").read_text().splitlines()
    assert paper[0] == "run,metric,ours,paper,gap_pct" and len(paper) == 1 + 4
    sweep = json.loads((out / "beam_sweep.json").read_text())
    assert [r["beam_size"] for r in sweep["rows"]] == [1, 5, 20]
    assert all(r["users"] == tiny_dataset.n_users for r in sweep["rows"])
    assert (out / "search" / "sensitivity" / "trials.csv").is_file()
    # checkpoints and training states are removed, except the swept run's (the sweep's input)
    kept = sorted(str(p) for p in (out / "checkpoints").glob("*.pth"))
    assert kept == sorted([sweep["checkpoint"], sweep["checkpoint"][: -len(".pth")] + "-last.pth"])


def write_profile(tmp_path) -> Path:
    """Two tiny runs x 2 seeds, no sweep, no search."""
    profile = {
        "dataset": "Tiny", "seeds": [1, 2], "workers": 1, "config": {"epochs": 1},
        "generative": {"pruning_rate_users": 0},
        "runs": [{"name": "SASRec", "model": "SASRec",
                  "config": {"n_layers": 1, "n_heads": 1, "hidden_size": 8, "inner_size": 16}},
                 {"name": "TIGER:ce", "model": "TIGER", "loss": "ce", "config": TINY_ARCH["TIGER"]}],
    }
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def complete(out) -> list:
    """Result JSONs of finished runs (a killed run leaves one with status running)."""
    return [p for p in (out / "runs").glob("*/seed*.json")
            if json.loads(p.read_text())["status"] == "complete"]


def test_interrupted_reproduction_continues_without_repeating_finished_runs(
        tiny_dataset, tmp_path, monkeypatch):
    profile, out = write_profile(tmp_path), tmp_path / "out"
    args = [f"--profile={profile}", f"--data_path={tiny_dataset.data_path}", f"--out={out}"]
    proc = subprocess.Popen([sys.executable, "-m", "tuning.reproduce", *args], cwd=PROJECT_ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not complete(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its running worker
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in complete(out)}
    assert 1 <= len(finished) < 4

    executed = []
    real_execute = reproduce.execute
    monkeypatch.setattr(reproduce, "execute",
                        lambda a, log, env: executed.append(a) or real_execute(a, log, env))
    reproduce.main(args)
    results = sorted((out / "runs").glob("*/seed*.json"))
    assert len(results) == 4
    assert len(executed) == 4 - len(finished)
    for path, mtime in finished.items():  # not rerun, not rewritten
        assert path.stat().st_mtime_ns == mtime
        assert not any(f"--result_file={path}" in a for a in executed)
    report = (out / "report.md").read_text()
    sasrec = json.loads((out / "runs" / "SASRec" / "seed2.json").read_text())
    assert f"| SASRec | 2 | 1 | {sasrec['best_epoch']} | epochs |" in report
    done = [json.loads(line)["runs_done"] for line in (out / "invocations.jsonl").read_text().splitlines()]
    assert done == [4 - len(finished)]  # the killed invocation never got to write its line


def test_stored_results_with_other_settings_are_refused(tiny_dataset, tmp_path):
    profile, out = write_profile(tmp_path), tmp_path / "out"
    args = [f"--profile={profile}", f"--data_path={tiny_dataset.data_path}", f"--out={out}",
            "--only=SASRec"]
    reproduce.main(args)
    with pytest.raises(ValueError, match="stale result"):
        reproduce.main(args + ["--learning_rate=0.5"])


@pytest.mark.parametrize("change,message", [
    ({"colour": 1}, "unknown field"),
    ({"runs": [{"model": "SASRec"}]}, r"runs\[0\] needs"),
    ({"paper": {"GRU4Rec": {"ndcg@10": 0.1}}}, "paper names run"),
    ({"runs": [{"name": "a", "model": "TIGER", "loss": "ce", "role": "winner"}]}, "role"),
])
def test_profile_errors_name_the_file_and_field(tmp_path, change, message):
    data = {"dataset": "Tiny", "seeds": [1], "runs": [{"name": "SASRec", "model": "SASRec"}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**data, **change}))
    with pytest.raises(ValueError, match=message) as error:
        reproduce.load_profile(str(path))
    assert str(path) in str(error.value)


def test_every_shipped_profile_loads():
    for path in sorted(reproduce.PROFILES.glob("*.yaml")):
        profile = reproduce.load_profile(path.stem)
        assert profile.runs and profile.seeds


def test_no_shipped_profile_uses_the_anticonservative_one_sample_test():
    """The one-sample test takes the best baseline's mean as exact (gpu-paper used it)."""
    for path in sorted(reproduce.PROFILES.glob("*.yaml")):
        assert reproduce.load_profile(path.stem).test != "one_sample", path
    assert reproduce.Profile("p", "D", [1, 2], [], {}).test == "auto"


# -- the training-time budget -----------------------------------------------------------------

def test_time_budget_stops_training_and_keeps_the_best_checkpoint(tiny_dataset, tmp_path):
    result_file = tmp_path / "r.json"
    run("TIGER", tiny_dataset.name, config_dict={
        **tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 10_000, "stopping_step": 10_000,
        "train_time_budget": 3, "pruning_rate_users": 0}, result_file=result_file)
    result = json.loads(result_file.read_text())
    timings = result["timings"]
    assert timings["stop_reason"] == "time_budget"
    assert 1 <= timings["epochs_run"] < 10_000 and timings["fit_s"] <= 3 + 1
    history = result["valid_history"]
    assert [h["epoch"] for h in history] == list(range(timings["epochs_run"]))
    assert all(a["fit_s"] < b["fit_s"] for a, b in zip(history, history[1:]))
    assert Path(result["checkpoint"]).is_file()


def test_budgeted_schedule_follows_the_time_spent(tiny_dataset):
    """Warm-up over the first warmup_ratio of the budget, then cosine to its end."""
    config, model, train, *_ = build("TIGER", tiny_dataset, train_time_budget=100,
                                     warmup_ratio=0.1)
    trainer = build_trainer(config, model)
    now = {"t": 0.0}
    trainer._budget_clock = lambda: now["t"]
    trainer._budget_start = 0.0
    schedule = trainer._build_scheduler(steps_per_epoch=10).lr_lambdas[0]
    for spent, factor in [(5, 0.5), (10, 1.0), (55, 0.5), (100, 0.0), (150, 0.0)]:
        now["t"] = spent
        assert schedule(0) == pytest.approx(factor, abs=1e-9)


def test_process_clock_budget_counts_cpu_seconds(tiny_dataset, tmp_path):
    result_file = tmp_path / "r.json"
    run("TIGER", tiny_dataset.name, config_dict={
        **tiny_dataset.config, **TINY_ARCH["TIGER"], "epochs": 10_000, "stopping_step": 10_000,
        "train_time_budget": 2, "train_time_clock": "process", "pruning_rate_users": 0},
        result_file=result_file)
    result = json.loads(result_file.read_text())
    assert result["timings"]["stop_reason"] == "time_budget"
    with pytest.raises(ConfigError, match="train_time_clock='gpu' is not one of wall, process"):
        build("TIGER", tiny_dataset, train_time_clock="gpu")


def test_bf16_autocast_trains_and_bad_precision_is_named(tiny_dataset):
    config, model, train, *_ = build("TIGER", tiny_dataset, precision="bf16")
    trainer = build_trainer(config, model)
    assert trainer.autocast_dtype is not None
    loss = trainer._train_epoch(train, 0)
    assert math.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    with pytest.raises(ConfigError, match="precision='fp16' is not one of fp32, bf16"):
        build("TIGER", tiny_dataset, precision="fp16")


def test_ctrl_c_says_how_to_continue_and_unfinished_runs_resume(tiny_dataset, tmp_path, monkeypatch):
    """SIGINT to the process group (what Ctrl-C sends): the driver names the command to
    continue; its worker writes an interrupted result, which the next invocation resumes
    from its training state (or retrains, when no epoch had finished)."""
    profile, out = write_profile(tmp_path), tmp_path / "out"
    args = [f"--profile={profile}", f"--data_path={tiny_dataset.data_path}", f"--out={out}"]
    proc = subprocess.Popen([sys.executable, "-m", "tuning.reproduce", *args], cwd=PROJECT_ROOT,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not complete(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next run
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, output
    assert "[reproduce] INTERRUPTED:" in output and "continue with the same command" in output
    assert "-m tuning.reproduce --profile=" in output and "Traceback" not in output
    unfinished = [json.loads(p.read_text()) for p in (out / "runs").glob("*/seed*.json")
                  if json.loads(p.read_text())["status"] != "complete"]
    assert all(r["status"] == "interrupted" for r in unfinished)
    resumable = {r["resume"]["last_checkpoint"] for r in unfinished if "resume" in r}

    executed = []
    real_execute = reproduce.execute
    monkeypatch.setattr(reproduce, "execute",
                        lambda a, log, env: executed.append(a) or real_execute(a, log, env))
    reproduce.main(args)
    assert len(complete(out)) == 4
    for last in resumable:
        assert any(f"--resume_from={last}" in a for a in executed)
