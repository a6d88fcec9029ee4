"""Runs that survive (issue 12): kill and resume a real process, interrupted results,
result files that are never lost, checkpoint errors that name the option."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recbole_genrec.errors import UserError
from recbole_genrec.quick_start import run
from recbole_genrec.result_file import free_result_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_TIGER = PROJECT_ROOT / "tuning" / "examples" / "tiger_tiny.yaml"

# the real entry point, each epoch's end slowed down so that a kill lands mid-run
SLOW_ENTRY = f"""
import sys, time
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from recbole_genrec.trainer.sequential_trainer import SequentialTrainer
end_epoch = SequentialTrainer._end_epoch
def slow_end_epoch(self, epoch, validated):
    end_epoch(self, epoch, validated)
    time.sleep(0.6)
SequentialTrainer._end_epoch = slow_end_epoch
import run_recbole_genrec
from recbole_genrec.errors import run_cli
run_cli(run_recbole_genrec.main)
"""


def tiny_args(tiny_dataset, model="TIGER", epochs=4, **extra) -> list[str]:
    args = [f"--model={model}", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
            f"--epochs={epochs}", "--show_progress=false", "--seed=7"]
    if model == "TIGER":
        args += [f"--config_files={TINY_TIGER}", "--pruning_rate_users=0"]
    else:
        args += ["--n_layers=1", "--n_heads=1", "--hidden_size=8", "--inner_size=16"]
    return args + [f"--{k}={v}" for k, v in extra.items()]


def entry_point(args, cwd, slow=False, **popen):
    script = ["-c", SLOW_ENTRY] if slow else [str(PROJECT_ROOT / "run_recbole_genrec.py")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *script, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def wait_for_epoch(folder: Path, proc, epoch: int, timeout=90):
    """Block until the run's -last.pth records ``epoch`` (or later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob("*-last.pth"):
            try:
                if torch.load(path, weights_only=True)["epoch"] >= epoch:
                    return path
            except Exception:  # noqa: BLE001 -- being replaced right now
                pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    raise AssertionError(f"no training state for epoch {epoch} within {timeout}s")


def comparable(result: dict) -> dict:
    return {"test": result["test"], "valid": result["valid"], "per_user": result["per_user"],
            "best_epoch": result["best_epoch"], "epochs_run": result["timings"]["epochs_run"],
            "valid_history": [{k: v for k, v in h.items() if k != "fit_s"}
                              for h in result["valid_history"]],
            "loss_state": result["loss_state"]}


@pytest.mark.parametrize("model, loss", [("TIGER", "apao"), ("SASRec", None)])
def test_killed_run_resumes_to_the_same_metrics(tiny_dataset, tmp_path, model, loss):
    """SIGKILL a real run after epoch 1, resume it: the metrics, per-user ranks, APAO
    weights and history equal those of a run that was never stopped."""
    extra = {"loss": loss} if loss else {}
    full = entry_point(tiny_args(tiny_dataset, model, result_file="full.json", **extra),
                       tmp_path)
    assert full.wait(timeout=120) == 0, full.stdout.read()

    work = tmp_path / "killed"
    work.mkdir()
    args = tiny_args(tiny_dataset, model, result_file="run.json", **extra)
    proc = entry_point(args, work, slow=True)
    last = wait_for_epoch(work / "saved", proc, epoch=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert json.loads((work / "run.json").read_text())["status"] == "running"  # no handler ran

    resumed = entry_point(args + [f"--resume_from={last.relative_to(work)}"], work)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    assert "resuming from" in out and "continuing at epoch" in out
    a = json.loads((tmp_path / "full.json").read_text())
    b = json.loads((work / "run.json").read_text())
    assert b["status"] == "complete"
    assert comparable(a) == comparable(b)


def test_sigterm_writes_an_interrupted_result_and_the_command_to_continue(tiny_dataset, tmp_path):
    proc = entry_point(tiny_args(tiny_dataset, result_file="run.json"), tmp_path, slow=True)
    wait_for_epoch(tmp_path / "saved", proc, epoch=0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    partial = json.loads((tmp_path / "run.json").read_text())
    assert partial["status"] == "interrupted" and partial["epochs_done"] >= 1
    command = partial["resume"]["command"]
    assert "--resume_from=" in command and command in out  # the log prints it too
    assert "Traceback" not in out
    again = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert again.returncode == 0, again.stdout + again.stderr
    done = json.loads((tmp_path / "run.json").read_text())
    assert done["status"] == "complete" and done["timings"]["epochs_run"] == 4


def test_sigint_before_the_first_epoch_says_to_start_over(tiny_dataset, tmp_path):
    proc = entry_point(tiny_args(tiny_dataset, result_file="run.json"), tmp_path, slow=True)
    result_file, deadline = tmp_path / "run.json", time.monotonic() + 60
    while not (result_file.exists() and "resume" in json.loads(result_file.read_text())):
        # (the second write of the result: the trainer is built)
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT, out
    partial = json.loads(result_file.read_text())
    assert partial["status"] == "interrupted" and "Traceback" not in out
    if partial["epochs_done"] == 0:  # almost always: the first epoch takes longer than this
        assert "no epoch had finished; run the same command again" in out
        assert "resume" not in partial
    else:
        assert partial["resume"]["command"] in out


def test_resume_refuses_other_options(tiny_dataset, tmp_path):
    result = run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict={
        **tiny_dataset.config, "epochs": 2, "pruning_rate_users": 0}, result_file=tmp_path / "a.json")
    last = result["checkpoint"][: -len(".pth")] + "-last.pth"
    with pytest.raises(UserError, match=r"was trained with other options: learning_rate=0\.1"):
        run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict={
            **tiny_dataset.config, "epochs": 2, "pruning_rate_users": 0, "learning_rate": 0.1,
            "resume_from": last})
    with pytest.raises(UserError, match="is a model checkpoint, not a training state"):
        run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict={
            **tiny_dataset.config, "epochs": 2, "pruning_rate_users": 0,
            "resume_from": result["checkpoint"]})


def test_resuming_a_finished_training_only_tests(tiny_dataset, tmp_path):
    options = {**tiny_dataset.config, "epochs": 2, "pruning_rate_users": 0}
    first = run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict=options,
                result_file=tmp_path / "a.json")
    last = first["checkpoint"][: -len(".pth")] + "-last.pth"
    assert torch.load(last, weights_only=True)["training_done"] is True
    again = run("TIGER", "Tiny", config_files=[str(TINY_TIGER)],
                config_dict={**options, "resume_from": last}, result_file=tmp_path / "b.json")
    assert again["test"] == first["test"] and again["timings"]["epochs_run"] == 2


def test_default_result_name_is_never_overwritten(tiny_dataset):
    options = {**tiny_dataset.config, "epochs": 1, "n_layers": 1, "n_heads": 1,
               "hidden_size": 8, "inner_size": 16}
    first = run("SASRec", "Tiny", config_dict={**options, "seed": 1})
    second = run("SASRec", "Tiny", config_dict={**options, "seed": 2})
    assert first["result_file"] == "saved/SASRec-Tiny-default.json"
    assert second["result_file"] == "saved/SASRec-Tiny-default-2.json"
    assert json.loads(Path(first["result_file"]).read_text())["config"]["seed"] == 1
    logs = "".join(p.read_text() for p in Path("log").rglob("*.log"))
    assert "saved/SASRec-Tiny-default.json exists (an earlier run's result); this run writes " \
           "saved/SASRec-Tiny-default-2.json" in logs


def test_free_result_file(tmp_path):
    path = tmp_path / "x.json"
    assert free_result_file(path) == path
    path.write_text("{}")
    (tmp_path / "x-2.json").write_text("{}")
    assert free_result_file(path) == tmp_path / "x-3.json"


def test_unwritable_result_file_fails_before_training(tiny_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"cannot write the result JSON .*file/r.json"):
        run("SASRec", "Tiny", config_dict={**tiny_dataset.config, "epochs": 50},
            result_file=blocker / "r.json")
    assert time.perf_counter() - start < 5  # refused at once, not after 50 epochs
    assert not Path("saved").exists() or not list(Path("saved").glob("*.pth"))


def test_checkpoint_dir_that_cannot_be_created(tiny_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"--checkpoint_dir=.*file/ck cannot be created"):
        run("SASRec", "Tiny", config_dict={**tiny_dataset.config, "checkpoint_dir": str(blocker / "ck")})


@pytest.mark.parametrize("content, fragment", [
    (b"not a checkpoint at all", "is not a readable checkpoint"),
    (None, "file not found"),
])
def test_bad_init_from_names_the_option(tiny_dataset, tmp_path, content, fragment):
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=f"--init_from={path}.*{fragment}"):
        run("TIGER", "Tiny", config_files=[str(TINY_TIGER)],
            config_dict={**tiny_dataset.config, "epochs": 0, "init_from": str(path)})


def test_truncated_checkpoint_names_the_option(tiny_dataset, tmp_path):
    result = run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict={
        **tiny_dataset.config, "epochs": 1, "pruning_rate_users": 0}, result_file=tmp_path / "a.json")
    data = Path(result["checkpoint"]).read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=f"--init_from={cut} is not a readable checkpoint"):
        run("TIGER", "Tiny", config_files=[str(TINY_TIGER)],
            config_dict={**tiny_dataset.config, "epochs": 0, "init_from": str(cut)})


def test_checkpoint_of_another_architecture_names_both(tiny_dataset, tmp_path):
    result = run("TIGER", "Tiny", config_files=[str(TINY_TIGER)], config_dict={
        **tiny_dataset.config, "epochs": 1, "pruning_rate_users": 0}, result_file=tmp_path / "a.json")
    with pytest.raises(UserError, match=r"does not fit this model \(trained as TIGER on Tiny"):
        run("TIGER", "Tiny", config_files=[str(TINY_TIGER)],
            config_dict={**tiny_dataset.config, "epochs": 0, "d_model": 48,
                         "init_from": result["checkpoint"]})


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file as it was."""
    from recbole_genrec.trainer import checkpoint_io

    path = tmp_path / "m.pth"
    checkpoint_io.atomic_save({"state_dict": {"w": torch.ones(2)}}, path)

    def dying_save(obj, f):
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_io.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_io.atomic_save({"state_dict": {"w": torch.zeros(2)}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temporary left
