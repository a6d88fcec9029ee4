"""tuning.search: search spaces, the best-config YAML, and the Ray Tune path end to end
(local Ray, 2 CPUs): per-epoch reports, a failing trial that does not stop the search,
an interrupted search (SIGINT, SIGTERM) that writes its outputs so far and prints the
command that finishes it without redoing trials."""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuning import search

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# (model, loss, tiny fixed overrides): one line per model the search path is tested with.
# The interrupt/resume test (the slowest) runs with the first model only.
SEARCH_MODELS = [
    ("SASRec", None, {"hidden_size": "8", "inner_size": "16", "n_layers": "1", "n_heads": "1"}),
    ("TIGER", "ce", {"d_model": "16", "n_heads": "2", "head_dim": "8", "d_ff": "32",
                     "n_encoder_layers": "1", "n_decoder_layers": "1"}),
]
MODEL_IDS = [m[0] for m in SEARCH_MODELS]


def cli_args(model, loss, fixed, data, storage, name, space, num_samples, *extra):
    args = [f"--model={model}", f"--dataset={data.name}", f"--data_path={data.data_path}",
            f"--space={space}", f"--num_samples={num_samples}", f"--storage_path={storage}",
            f"--name={name}", "--train_batch_size=64", *extra]
    if loss:
        args.append(f"--loss={loss}")
    return args + [f"--{k}={v}" for k, v in fixed.items()]


def read_trials(exp_dir: Path) -> list[dict]:
    with open(exp_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def interrupt_search(args, cwd: Path, when: str, signum=signal.SIGINT) -> tuple[int, str]:
    """Run ``python -m tuning.search ARGS``, send ``signum`` once a line of its output
    contains ``when``, and return its exit status and output."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tuning.search", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if when in line:
            proc.send_signal(signum)
            break
    output += proc.stdout.readlines()
    return proc.wait(timeout=120), "".join(output)


def printed_resume_command(output: str) -> str:
    """The command line the interrupted search printed to continue it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("[search] INTERRUPTED"))
    return lines[start + 1].strip()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    env = dict(os.environ)
    search.init_ray(num_cpus=2)
    yield
    ray.shutdown()
    os.environ.clear()
    os.environ.update(env)


# -- search spaces (no Ray run) -------------------------------------------------------------

def test_shipped_spaces_use_the_papers_values_and_the_loss_option_names():
    space = lambda name: search.load_space(search.SPACES_DIR / f"{name}.yaml")[0]  # noqa: E731
    assert space("apao") == {
        "apao_beta": {"type": "choice", "values": [0.05, 0.1, 0.2, 0.3, 0.4]},
        "apao_eta": {"type": "choice", "values": [5e-6, 1e-5, 3e-5, 5e-5, 1e-4, 5e-4]},
    }
    assert space("bear") == {"bear_lambda": {"type": "uniform", "low": 0.1, "high": 5.0},
                             "bear_xi": {"type": "uniform", "low": 0.25, "high": 3.0}}
    assert space("msl") == {"msl_tau": {"type": "choice", "values": [1.0, 2.0, 3.0]}}
    for loss in ("dpo", "sdpo", "dmpo"):
        assert space(loss) == {"pref_beta": {"type": "choice", "values": [0.5, 1.0, 2.0]}}
    assert set(space("sasrec")) == {"learning_rate", "hidden_size"}
    names = lambda model, loss: [f.name for f in search.default_space_files(model, loss)]  # noqa: E731
    assert names("TIGER", "apao") == ["apao.yaml"]
    assert names("SASRec", None) == ["sasrec.yaml"]
    assert names("TIGER", "ce") == ["tiger.yaml"]  # ce has no hyperparameters
    assert names("TIGER", "ce+dpo") == ["dpo.yaml"]
    merged, _ = search.load_spaces(search.default_space_files("TIGER", "apao+bear"))
    assert set(merged) == {"apao_beta", "apao_eta", "bear_lambda", "bear_xi"}


def test_space_types_become_tune_domains():
    from ray.tune.search import sample

    domains = search.to_tune({
        "a": {"type": "choice", "values": [1, 2]},
        "b": {"type": "uniform", "low": 0.1, "high": 5.0},
        "c": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
        "d": {"type": "randint", "low": 1, "high": 4},
    })
    assert domains["a"].categories == [1, 2]
    assert (domains["b"].lower, domains["b"].upper) == (0.1, 5.0)
    assert isinstance(domains["c"].get_sampler(), sample.LogUniform)
    assert isinstance(domains["d"], sample.Integer) and domains["d"].upper == 4


@pytest.mark.parametrize("text, message", [
    ("x: {type: normal, low: 0, high: 1}", "expected {type"),
    ("x: {type: choice, values: []}", "non-empty list"),
    ("x: {type: uniform, low: '1', high: 2.0}", "needs a number 'low'"),
    ("x: {type: uniform, low: 2.0, high: 1.0}", "low must be below high"),
    ("x: {type: loguniform, low: 0.0, high: 1.0}", "low > 0"),
    ("x: {type: randint, low: 1.5, high: 3}", "integer low/high"),
    ("x: {type: choice, values: [1, 2]}\npoints_to_evaluate: [{y: 1}]", "exactly the searched"),
    ("points_to_evaluate: []", "empty"),
])
def test_bad_spaces_are_rejected(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        search.load_space(path)


def test_scientific_notation_without_dot_is_a_float(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {type: loguniform, low: 1e-5, high: 1e-2}\n")
    assert search.load_space(path)[0]["lr"] == {"type": "loguniform", "low": 1e-5, "high": 1e-2}


def test_a_key_cannot_be_both_searched_and_fixed():
    args = search.build_parser().parse_args(
        ["--model=SASRec", f"--space={search.SPACES_DIR / 'sasrec.yaml'}"])
    with pytest.raises(ValueError, match="learning_rate: both searched"):
        search.settings_from_args(args, {"learning_rate": "0.1"})


def test_resume_of_a_search_stopped_before_its_first_trial_says_to_start_it(tmp_path):
    """Stopped after its settings were saved but before Ray Tune saved anything: nothing
    to resume, and starting it again is not refused as 'already holds a search'."""
    exp_dir = tmp_path / "tune" / "early"
    exp_dir.mkdir(parents=True)
    (exp_dir / search.SETTINGS).write_text("{}")
    with pytest.raises(SystemExit, match="stopped before its first trial.*without --resume"):
        search.main(["--resume", f"--storage_path={tmp_path / 'tune'}", "--name=early"])
    with pytest.raises(SystemExit, match="both searched"):  # got past the 'already holds' check
        search.main(["--model=SASRec", f"--space={search.SPACES_DIR / 'sasrec.yaml'}",
                     f"--storage_path={tmp_path / 'tune'}", "--name=early",
                     "--learning_rate=0.1"])


def test_best_yaml_is_a_config_file_for_run_recbole_genrec(tiny_dataset, tmp_path):
    """best.yaml = config files + overrides + best values, typed, loadable as --config_files."""
    from recbole_genrec.config import GenRecConfig

    base = tmp_path / "base.yaml"
    base.write_text("stopping_step: 3\n")
    space = {"learning_rate": {"type": "loguniform", "low": 1e-6, "high": 1e-2}}
    settings = search.SearchSettings(
        model="SASRec", dataset=tiny_dataset.name, loss=None, config_files=[str(base)],
        overrides={"epochs": "2", "data_path": str(tiny_dataset.data_path)}, space=space,
        points=[], space_file="s.yaml", metric="ndcg@10", mode="max", num_samples=1)
    row = {"trial_id": "abc", "best_epoch": 1, "objective": 0.5, "learning_rate": 5e-6}
    path = tmp_path / "best.yaml"
    search.write_best_yaml(settings, row, path, tmp_path)
    assert yaml.safe_load(path.read_text())["epochs"] == 2
    config = GenRecConfig("SASRec", tiny_dataset.name, [str(path)])
    assert config["learning_rate"] == 5e-6 and isinstance(config["learning_rate"], float)
    assert (config["epochs"], config["stopping_step"]) == (2, 3)



def test_the_sampler_learns_each_trials_best_validation_score():
    """Ray hands the sampler a trial's last report; with early stopping that comes
    stopping_step validations after the peak.  The reports carry the best so far, and
    the sampler (and ASHA) read it: TPE is told 0.5 here, not the last 0.4."""
    space = {"learning_rate": {"type": "choice", "values": [0.01]}}
    settings = search.SearchSettings(
        model="SASRec", dataset="Tiny", loss=None, config_files=[], overrides={},
        space=space, points=[], space_file="s.yaml", metric="ndcg@10", mode="max",
        num_samples=1, asha=True)
    config = search.tune_config(settings)
    searcher = config.search_alg
    assert config.metric == search.OBJECTIVE
    assert searcher.set_search_properties(config.metric, config.mode, search.to_tune(space))
    searcher.suggest("t1")
    best = None
    for epoch, score in enumerate((0.3, 0.5, 0.4, 0.45)):
        report = search.trial_metrics(epoch, score, {"ndcg@10": score, "recall@10": 0.9},
                                      settings, best)
        best = report[search.OBJECTIVE]
        searcher.on_trial_result("t1", {**report, "training_iteration": epoch + 1})
    assert report["ndcg@10"] == 0.45 and best == 0.5
    searcher.on_trial_complete("t1", result=report)
    [trial] = searcher._ot_study.trials
    assert trial.value == 0.5
    low = search.SearchSettings(**{**settings.__dict__, "mode": "min"})
    assert search.trial_metrics(1, 0.4, {"ndcg@10": 0.4}, low, 0.3)[search.OBJECTIVE] == 0.3


# -- Ray Tune, end to end -----------------------------------------------------------------------

@pytest.mark.parametrize("model, loss, fixed", SEARCH_MODELS[:1], ids=MODEL_IDS[:1])
def test_failing_trial_and_interrupted_search_resume(model, loss, fixed, tiny_dataset, tmp_path):
    """Trial 1 succeeds, then the search is interrupted (SIGINT, like Ctrl-C): it writes
    trials.csv and best.yaml of trial 1 and prints the command to continue; that command
    runs the rest: trial 2 raises (learning_rate=-1: refused) and is
    recorded as ERROR, trial 3 still runs; trial 1 is not run again."""
    space = tmp_path / "space.yaml"
    space.write_text(
        "learning_rate: {type: choice, values: [0.01, -1.0, 0.003]}\n"
        "points_to_evaluate: [{learning_rate: 0.01}, {learning_rate: -1.0},"
        " {learning_rate: 0.003}]\n")
    storage = tmp_path / "tune"
    args = cli_args(model, loss, fixed, tiny_dataset, storage, "exp", space, 3,
                    "--epochs=1", "--max_concurrent_trials=1", "--num_cpus=2")
    code, output = interrupt_search(args, tmp_path, " finished (1/3,", signal.SIGINT)
    assert code == search.EXIT_INTERRUPTED, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    resume = printed_resume_command(output)
    assert resume == (f"cd {PROJECT_ROOT} && {sys.executable} -m tuning.search --resume "
                      f"--storage_path={storage} --name=exp --num_cpus=2")

    exp_dir = storage / "exp"
    interrupted = read_trials(exp_dir)
    first = [t for t in interrupted if t["status"] == "COMPLETED"]
    assert len(first) == 1 and float(first[0]["learning_rate"]) == 0.01
    # trial 2 may already have been started: then it is listed, as INTERRUPTED
    assert {t["status"] for t in interrupted if t is not first[0]} <= {"INTERRUPTED"}
    best_text = (exp_dir / "best.yaml").read_text()
    assert f"# INTERRUPTED search: best of the 1 of 3 trials finished so far; continue with: " \
           f"{resume}" in best_text
    assert yaml.safe_load(best_text)["learning_rate"] == 0.01
    first_result = Path(first[0]["trial_dir"]) / search.RUN_RESULT
    stamp = first_result.stat().st_mtime_ns

    resumed = subprocess.run(["bash", "-c", resume], capture_output=True, text=True,
                             timeout=300, env={k: v for k, v in os.environ.items()
                                               if k != "PYTHONPATH"})
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    assert "INTERRUPTED" not in resumed.stdout
    trials = read_trials(exp_dir)
    by_lr = {float(t["learning_rate"]): t for t in trials}
    assert len(trials) == 3 and set(by_lr) == {0.01, -1.0, 0.003}
    assert by_lr[-1.0]["status"] == "ERROR"
    assert re.search("learning.rate", by_lr[-1.0]["error"], re.I)  # the config or the optimizer
    assert math.isnan(float(by_lr[-1.0]["objective"]))
    assert by_lr[0.01]["trial_id"] == first[0]["trial_id"]
    assert first_result.stat().st_mtime_ns == stamp  # finished trial not redone
    for lr in (0.01, 0.003):
        trial = by_lr[lr]
        assert trial["status"] == "COMPLETED" and int(trial["epochs_reported"]) == 1
        trial_dir = Path(trial["trial_dir"])
        result = json.loads((trial_dir / search.RUN_RESULT).read_text())
        # the objective is the run's best valid NDCG@10, reported to Tune through the callback
        assert float(trial["objective"]) == pytest.approx(result["valid"]["ndcg@10"])
        assert result["config"]["learning_rate"] == lr
        assert list((trial_dir / "log").rglob("*.log")), "RecBole's log is in the trial folder"

    best = max((by_lr[0.01], by_lr[0.003]), key=lambda t: float(t["objective"]))
    assert f"# Best trial {best['trial_id']} of" in (exp_dir / "best.yaml").read_text()
    assert "INTERRUPTED" not in (exp_dir / "best.yaml").read_text()
    best_yaml = yaml.safe_load((exp_dir / "best.yaml").read_text())
    assert best_yaml["learning_rate"] == float(best["learning_rate"])
    assert best_yaml["data_path"] == str(tiny_dataset.data_path)
    assert (exp_dir / "search.html").stat().st_size > 10_000


@pytest.mark.parametrize("model, loss, fixed", SEARCH_MODELS[:1], ids=MODEL_IDS[:1])
def test_sigterm_before_any_trial_reported_writes_trials_csv(model, loss, fixed, tiny_dataset,
                                                             tmp_path):
    """SIGTERM (kill, a job's time limit) while the only trial has not reported yet: like
    Ctrl-C, trials.csv lists it as INTERRUPTED with its sampled value, there is no best.yaml
    (nothing finished), and the resume command is printed (once Ray's own handler made such
    a search exit at once, and Ctrl-C crashed on the trial's missing config)."""
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: choice, values: [0.01]}\n")
    storage = tmp_path / "tune"
    args = cli_args(model, loss, fixed, tiny_dataset, storage, "term", space, 1, "--epochs=1")
    code, output = interrupt_search(args, tmp_path, "Trial status:", signal.SIGTERM)
    assert code == search.EXIT_INTERRUPTED, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert "[search] /" in output and " 1 INTERRUPTED" in output
    assert printed_resume_command(output).endswith(
        f"-m tuning.search --resume --storage_path={storage} --name=term")
    [trial] = read_trials(storage / "term")
    assert trial["status"] == "INTERRUPTED" and float(trial["learning_rate"]) == 0.01
    assert math.isnan(float(trial["objective"])) and trial["error"] == ""
    assert not (storage / "term" / "best.yaml").exists()


@pytest.mark.parametrize("model, loss, fixed", SEARCH_MODELS, ids=MODEL_IDS)
def test_tpe_search_with_asha_reports_every_epoch(model, loss, fixed, tiny_dataset, tmp_path,
                                                  local_ray):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: loguniform, low: 1.0e-3, high: 1.0e-2}\n"
                     "weight_decay: {type: choice, values: [0.0, 1.0e-4]}\n")
    storage = tmp_path / "tune"
    out = search.main(cli_args(model, loss, fixed, tiny_dataset, storage, "tpe", space, 2,
                               "--epochs=2", "--asha", "--metric=recall@10"))
    trials = read_trials(storage / "tpe")
    assert len(trials) == 2 and len({t["learning_rate"] for t in trials}) == 2
    assert all(1e-3 <= float(t["learning_rate"]) <= 1e-2 for t in trials)
    assert {t["status"] for t in trials} <= {"COMPLETED", "STOPPED"}
    # ASHA never stops the first trial to reach a rung: someone reported both epochs
    assert max(int(t["epochs_reported"]) for t in trials) == 2
    assert all(float(t["objective"]) == float(t["valid_recall@10"]) for t in trials)
    assert out["settings"].metric == "recall@10" and out["best"] is not None
    with pytest.raises(SystemExit, match="already holds a search"):
        search.main(cli_args(model, loss, fixed, tiny_dataset, storage, "tpe", space, 2))
