"""Hyperparameter search: Ray Tune trials, Optuna TPE sampler, a YAML search space.

::

    python -m tuning.search --model=TIGER --loss=apao --dataset=Office --num_samples=20 \\
        [--space tuning/spaces/apao.yaml] [--cpus_per_trial 1 --gpus_per_trial 0.5] \\
        [--max_concurrent_trials N] [--asha] [--address auto] \\
        [--storage_path saved/tune] [--name NAME] [--resume] [--key=value ...]

Every trial is ``recbole_genrec.quick_start.run`` -- the code path of
``run_recbole_genrec.py`` -- with the sampled values as ``config_dict`` and the
``--key=value`` arguments as command-line overrides (a key may not be both).
It reports the validation metrics to Ray Tune after every validation
(``ray.tune.report(dict)``); the objective (``--metric``, default the config's
``valid_metric``, e.g. ``ndcg@10``) is the best value over the trial's epochs.
Each report also carries that best so far (``OBJECTIVE``), and the sampler and
ASHA read it: Ray hands the sampler a trial's *last* report, which with early
stopping comes ``stopping_step`` validations after the peak.

Search space (default ``tuning/spaces/<loss>.yaml``, for ``--loss=a+b`` the
files of both parts, or ``<model>.yaml`` when the loss has none, e.g. ``ce``)::

    apao_beta: {type: choice, values: [0.05, 0.1]}
    bear_lambda: {type: uniform, low: 0.1, high: 5.0}      # also loguniform
    n_layers: {type: randint, low: 1, high: 4}             # high exclusive
    points_to_evaluate: [{apao_beta: 0.1}]                 # optional first trials

Any config key can be searched.  Failed trials (an exception, a NaN loss --
RecBole raises on it -- or a non-finite validation score) are recorded as
ERROR and the search goes on.  The experiment lives in
``<storage_path>/<name>``; ``--resume`` continues an interrupted one (Ctrl-C,
killed job) without redoing finished trials (settings come from the saved
experiment).  Outputs in that folder: ``best.yaml`` (usable as
``run_recbole_genrec.py --config_files=...``), ``trials.csv`` (one row per trial,
with the node it ran on) and ``search.html`` (objective over trials, each searched
parameter vs objective).  Ctrl-C or SIGTERM stops the trials and writes these for
the trials finished so far (unfinished ones ``INTERRUPTED``), prints the exact
command that continues the search and exits with status 130.
Each trial runs ``int(cpus_per_trial)`` torch threads (at least 1) unless
``--threads=N`` fixes them; the driver prints a line per finished trial with
the count and the time left (and draws a bar over the trials on a terminal).
"""

import argparse
import csv
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from ray import tune

from recbole_genrec import commands
from recbole_genrec.yaml_file import read_yaml
from recbole_genrec.progress import bars_enabled, format_duration, progress_bar, time_left
from recbole_genrec.trainer import plain_value
from recbole_genrec.cli import UsageError
from recbole_genrec.errors import run_cli
from .common import remove_checkpoint, typed_overrides

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
SPACE_TYPES = ("choice", "uniform", "loguniform", "randint")
RESERVED_SPACE_KEYS = ("points_to_evaluate",)
RUN_RESULT = "run_result.json"  # quick_start's result JSON inside each trial folder
SETTINGS = "search_settings.json"
PATH_OPTIONS = ("data_path", "init_from")  # path-valued options resolved in the driver
EXIT_INTERRUPTED = 130  # exit status of an interrupted search (as a shell's after Ctrl-C)
OBJECTIVE = "best_objective"  # best --metric over the trial's validations so far: what TPE learns


# -- search space ----------------------------------------------------------------------------

def default_space_files(model: str, loss: str | None) -> list[Path]:
    """``spaces/<loss>.yaml`` (for ``a+b``: the files of the parts that have one), else
    ``spaces/<model>.yaml`` -- e.g. ``--loss=ce`` has no hyperparameters of its own."""
    parts = [SPACES_DIR / f"{part.lower()}.yaml" for part in (loss or "").split("+") if part]
    found = [f for f in parts if f.is_file()]
    return found or [SPACES_DIR / f"{model.lower()}.yaml"]


def load_spaces(paths) -> tuple[dict, list]:
    """Merge several space files (a key may appear in one file only)."""
    space, points = {}, []
    for path in paths:
        part, part_points = load_space(path)
        twice = set(space) & set(part)
        if twice:
            raise ValueError(f"{path}: {', '.join(sorted(twice))} already searched by another file")
        space.update(part)
        points = points or part_points
    if len(paths) > 1 and points:
        raise ValueError("points_to_evaluate: give them in a single --space file")
    return space, points


def load_space(path) -> tuple[dict, list]:
    """Read a space YAML: ``(space, points_to_evaluate)``; ``space``: key -> spec dict."""
    raw = read_yaml(path)
    points = raw.pop("points_to_evaluate", None) or []
    if not raw:
        raise ValueError(f"{path}: the search space is empty")
    for key, spec in raw.items():
        check_spec(key, spec, path)
    for point in points:
        if not isinstance(point, dict) or set(point) != set(raw):
            raise ValueError(f"{path}: each of points_to_evaluate must set exactly the "
                             f"searched keys {sorted(raw)}, got {point}")
    return raw, points


def check_spec(key: str, spec, path="space") -> None:
    where = f"{path}: {key}"
    if not isinstance(spec, dict) or spec.get("type") not in SPACE_TYPES:
        raise ValueError(f"{where}: expected {{type: {'|'.join(SPACE_TYPES)}, ...}}, got {spec!r}")
    if spec["type"] == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: choice needs a non-empty list 'values'")
        return
    for bound in ("low", "high"):
        value = spec.get(bound)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {spec['type']} needs a number '{bound}', got {value!r}"
                             " (write 1.0e-5, not 1e-5, if your YAML reader needs it)")
    if not spec["low"] < spec["high"]:
        raise ValueError(f"{where}: low must be below high")
    if spec["type"] == "loguniform" and spec["low"] <= 0:
        raise ValueError(f"{where}: loguniform needs low > 0")
    if spec["type"] == "randint" and not all(isinstance(spec[b], int) for b in ("low", "high")):
        raise ValueError(f"{where}: randint needs integer low/high (high exclusive)")


def to_tune(space: dict) -> dict:
    """Space specs -> Ray Tune domains (OptunaSearch converts them to Optuna distributions)."""
    make = {
        "choice": lambda s: tune.choice(s["values"]),
        "uniform": lambda s: tune.uniform(s["low"], s["high"]),
        "loguniform": lambda s: tune.loguniform(s["low"], s["high"]),
        "randint": lambda s: tune.randint(s["low"], s["high"]),
    }
    return {key: make[spec["type"]](spec) for key, spec in space.items()}


def example_point(space: dict) -> dict:
    """One valid assignment (first choice / lower bound), to check option names up front."""
    return {k: s["values"][0] if s["type"] == "choice" else s["low"] for k, s in space.items()}


# -- one trial -----------------------------------------------------------------------------------

@dataclass
class SearchSettings:
    """Everything a trial and a resumed search need (saved as ``search_settings.json``)."""

    model: str
    dataset: str
    loss: str | None
    config_files: list          # absolute paths
    overrides: dict             # --key=value strings, as on the command line
    space: dict
    points: list
    space_file: str
    metric: str
    mode: str
    num_samples: int
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None
    asha: bool = False
    asha_grace_period: int = 1
    asha_reduction_factor: int = 3
    max_epochs: int = 1
    search_seed: int = 2024
    keep_checkpoints: bool = False

    def cmd_overrides(self) -> dict:
        cmd = dict(self.overrides)
        if self.loss:
            cmd["loss"] = self.loss
        return cmd


class DivergedError(RuntimeError):
    """The validation score is not finite."""


def trial_metrics(epoch, valid_score, valid_result, settings: SearchSettings,
                  best_so_far: float | None) -> dict:
    """One validation's report: its metrics, ``epoch`` and ``OBJECTIVE``, the best
    ``settings.metric`` of the trial so far (``best_so_far`` is the previous report's)."""
    metrics = {k: float(v) for k, v in dict(valid_result or {}).items()}
    metrics.update(valid_score=float(valid_score), epoch=int(epoch))
    for key in dict.fromkeys(("valid_score", settings.metric)):
        if not math.isfinite(metrics.get(key, math.nan)):
            raise DivergedError(f"epoch {epoch}: {key}={metrics.get(key)} (diverged)")
    value = metrics[settings.metric]
    if best_so_far is not None:
        value = (max if settings.mode == "max" else min)(value, best_so_far)
    metrics[OBJECTIVE] = value
    return metrics


def train_trial(params: dict, settings: SearchSettings) -> None:
    """Ray Tune function trainable: one ``quick_start.run`` in the trial's working folder.

    Ray starts the trial in its per-trial working folder (on the node running it);
    everything the run writes there (RecBole's ``log/``, the result JSON
    ``run_result.json``) is uploaded to the trial folder in the experiment's storage
    (``SyncConfig(sync_artifacts=True)``).  Input paths are absolute.
    """
    import ray

    from recbole_genrec.launcher import launch as run

    trial_dir = Path.cwd()
    if os.environ.get("TUNE_ORIG_WORKING_DIR") == str(trial_dir):  # RAY_CHDIR_TO_TRIAL_DIR=0
        trial_dir = Path(tune.get_context().get_trial_dir())
        trial_dir.mkdir(parents=True, exist_ok=True)
        os.chdir(trial_dir)  # RecBole writes ./log and ./log_tensorboard into the cwd
    config_dict = plain_value(dict(params))
    # the GPU(s) Ray assigned; RecBole would otherwise reset CUDA_VISIBLE_DEVICES to gpu_id
    config_dict["gpu_id"] = ",".join(str(g) for g in ray.get_gpu_ids())
    config_dict["checkpoint_dir"] = str(trial_dir / "checkpoints")
    if "threads" not in settings.overrides:  # torch threads: the trial's share of CPUs
        config_dict["threads"] = max(1, int(settings.cpus_per_trial))
    cmd = {k: v for k, v in settings.cmd_overrides().items() if k not in config_dict}
    node_id = ray.get_runtime_context().get_node_id()  # Ray adds hostname and node_ip itself
    best = {}

    def report(epoch, valid_score, valid_result):
        metrics = trial_metrics(epoch, valid_score, valid_result, settings, best.get(OBJECTIVE))
        best[OBJECTIVE] = metrics[OBJECTIVE]
        tune.report({**metrics, "node_id": node_id})

    result = run(settings.model, settings.dataset, config_files=settings.config_files,
                 config_dict=config_dict, cmd_overrides=cmd, epoch_callback=report,
                 result_file=trial_dir / RUN_RESULT)
    if not settings.keep_checkpoints and result.get("checkpoint"):
        remove_checkpoint(result["checkpoint"])


def trainable_for(settings: SearchSettings):
    fn = tune.with_parameters(train_trial, settings=settings)
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    return tune.with_resources(fn, resources)


# -- building, running and resuming the search -------------------------------------------------

def worker_env() -> dict:
    """Environment for Ray workers: find this project's packages; start each trial in
    its own working folder (Ray's default, forced in case the caller disabled it)."""
    path = os.environ.get("PYTHONPATH", "")
    return {"RAY_CHDIR_TO_TRIAL_DIR": "1",
            "PYTHONPATH": commands.pythonpath(path)}


def init_ray(address: str | None = None, num_cpus: int | None = None,
             log_to_driver: bool = False) -> None:
    """Start a local Ray instance, or join the cluster at ``address``."""
    import ray

    if ray.is_initialized():
        return
    env = worker_env()
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=log_to_driver)
    else:
        os.environ.update(env)  # local workers inherit the driver's environment
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)


def check_config(settings: SearchSettings):
    """Build the config of one point of the space in the driver: unknown options fail
    here, before any trial starts; convert the dataset once (trials would race)."""
    from recbole_genrec.config import GenRecConfig
    from recbole_genrec.quick_start import ensure_dataset

    saved = os.environ.get("CUDA_VISIBLE_DEVICES")  # RecBole's Config overwrites it
    try:
        config = GenRecConfig(settings.model, settings.dataset, settings.config_files,
                              example_point(settings.space), settings.cmd_overrides())
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    ensure_dataset(config)
    return config


class ProgressPrinter(tune.Callback):
    """One line per finished or failed trial with the count and the time left (for
    people, scripts and tests); on a terminal also a bar over the trials."""

    def __init__(self, num_samples: int):
        self.num_samples, self.start = num_samples, time.perf_counter()
        self.done, self.done_here = set(), 0  # finished trials (also before a resume)
        self.bar = None

    def __getstate__(self):  # Ray saves the callbacks with the experiment; a bar holds a stream
        return {**self.__dict__, "bar": None}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.start = time.perf_counter()
        self.bar = progress_bar(self.num_samples, "[search] trials", "trial",
                                bars_enabled(None), delay=0)

    def on_experiment_end(self, trials, **info):
        if self.bar is not None:
            self.bar.close()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._report(trials, trial, "finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._report(trials, trial, "failed (recorded as ERROR)")

    def _report(self, trials, trial, what):
        before = len(self.done)
        self.done |= {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        self.done.add(trial.trial_id)
        self.done_here += 1
        if self.bar is None:
            self.setup()
        self.bar.update(len(self.done) - before)
        elapsed = time.perf_counter() - self.start
        left = time_left(elapsed, self.done_here,
                         self.done_here + self.num_samples - len(self.done))
        line = (f"[search] trial {trial.trial_id} {what} ({len(self.done)}/{self.num_samples}, "
                f"{format_duration(elapsed)} elapsed, about {format_duration(left)} left)")
        if self.bar.disable:
            print(line, flush=True)
        else:
            self.bar.write(line)


def tune_config(settings: SearchSettings) -> tune.TuneConfig:
    """TPE sampler (and ASHA) on ``OBJECTIVE``, each trial's best ``settings.metric`` so
    far: the sampler learns from the trial's best validation, the number trials.csv and
    best.yaml report, not from its last one."""
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=settings.search_seed),
                            points_to_evaluate=settings.points or None)
    scheduler = None
    if settings.asha:
        scheduler = ASHAScheduler(time_attr="training_iteration",
                                  max_t=max(settings.max_epochs, settings.asha_grace_period),
                                  grace_period=settings.asha_grace_period,
                                  reduction_factor=settings.asha_reduction_factor)
    return tune.TuneConfig(
        metric=OBJECTIVE, mode=settings.mode, search_alg=searcher, scheduler=scheduler,
        num_samples=settings.num_samples, max_concurrent_trials=settings.max_concurrent_trials)


def build_tuner(settings: SearchSettings, storage: Path, name: str):
    return tune.Tuner(
        trainable_for(settings),
        param_space=to_tune(settings.space),
        tune_config=tune_config(settings),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=1,
            callbacks=[ProgressPrinter(settings.num_samples)],
            sync_config=tune.SyncConfig(sync_artifacts=True),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )


def restore_tuner(settings: SearchSettings, exp_dir: Path, restart_errored: bool):
    return tune.Tuner.restore(str(exp_dir), trainable=trainable_for(settings),
                              resume_unfinished=True, resume_errored=False,
                              restart_errored=restart_errored)


# -- outputs -------------------------------------------------------------------------------------

# trial folders are named <trainable>_<trial id>_<index>_<params>_<date>
_TRIAL_DIR = re.compile(r"_(?P<id>[0-9a-f]{8}|[0-9a-f]{5}_\d{5})_(?P<index>\d+)_")


FINISHED = ("COMPLETED", "STOPPED")  # statuses of trials that ran to their end
NODE_COLUMNS = ("hostname", "node_ip", "node_id")  # where a trial ran (from its reports)


def trial_states(grid) -> dict:
    """Trial id -> (Ray status, config) of every trial of the experiment, also those that
    never reported (a ``Result`` has neither; its config comes from the last report)."""
    analysis = tune.ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem)
    return {t.trial_id: (t.status, t.config) for t in analysis.trials}


def row_status(ray_status: str | None, error, trial_dir: Path) -> str:
    """``COMPLETED`` (ran all its epochs), ``STOPPED`` (ended early by ASHA), ``ERROR``, or
    ``INTERRUPTED`` (pending or running when the search was stopped: ``--resume`` runs it)."""
    if ray_status == "ERROR" or (error and ray_status is None):
        return "ERROR"
    if ray_status not in ("TERMINATED", None):
        return "INTERRUPTED"
    return "COMPLETED" if (trial_dir / RUN_RESULT).is_file() else "STOPPED"


def trial_rows(grid, settings: SearchSettings) -> list[dict]:
    """One dict per trial: index, id, status, searched values, objective, valid metrics,
    the node it ran on."""
    states = trial_states(grid)
    rows = []
    for r in grid:
        trial_dir = Path(r.path)
        trial_id = _trial_id(r, trial_dir.name)
        ray_status, config = states.get(trial_id, (None, None))
        config = r.config or config or {}
        frame = r.metrics_dataframe
        has_metric = frame is not None and settings.metric in getattr(frame, "columns", [])
        row = {"trial": _trial_index(trial_dir.name), "trial_id": trial_id,
               "status": row_status(ray_status, r.error, trial_dir),
               **{k: plain_value(config.get(k)) for k in settings.space},
               "objective": math.nan, "best_epoch": "", "epochs_reported": 0}
        if has_metric and len(frame):
            scores = frame[settings.metric].astype(float)
            best = scores.idxmax() if settings.mode == "max" else scores.idxmin()
            row.update(objective=float(scores[best]), epochs_reported=len(frame))
            row["best_epoch"] = int(frame["epoch"][best]) if "epoch" in frame else ""
            for col in frame.columns:
                if "@" in col:
                    row[f"valid_{col}"] = float(frame[col][best])
        row["error"] = _first_line(r.error) if row["status"] == "ERROR" and r.error else ""
        row.update({k: (r.metrics or {}).get(k, "") for k in NODE_COLUMNS})
        row["trial_dir"] = str(trial_dir)
        rows.append(row)
    return sorted(rows, key=lambda x: (x["trial"], x["trial_id"]))


def best_row(rows: list, mode: str) -> dict | None:
    """The finished trial with the best objective (an interrupted one's score is partial)."""
    scored = [r for r in rows if r["status"] in FINISHED and math.isfinite(r["objective"])]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda r: r["objective"])


def best_config(settings: SearchSettings, row: dict) -> dict:
    """Self-contained config: the searched run's config files, overrides, best values."""
    config = {}
    for path in settings.config_files:
        config.update(read_yaml(path))
    config.update(typed_overrides(settings.overrides))
    config.update({k: plain_value(row[k]) for k in settings.space})
    return plain_value(config)


def write_best_yaml(settings: SearchSettings, row: dict, path: Path, exp_dir: Path,
                    interrupted: str = "") -> None:
    """``interrupted``: a header line saying that the search is not finished (and how to
    continue it), or ``""``."""
    loss = f" --loss={settings.loss}" if settings.loss else ""
    header = [
        f"# Best trial {row['trial_id']} of the search {exp_dir}",
        *([f"# {interrupted}"] if interrupted else []),
        f"# {settings.metric} (valid, best epoch {row['best_epoch']}) = {row['objective']:.6g}",
        f"# searched: {', '.join(settings.space)}; space {settings.space_file}",
        "# " + commands.shown("run", [f"--model={settings.model}", *loss.split(),
                                      f"--dataset={settings.dataset}", f"--config_files={path}"]),
    ]
    body = yaml.safe_dump(best_config(settings, row), sort_keys=False, default_flow_style=False)
    path.write_text("\n".join(header) + "\n" + body, encoding="utf-8")


def write_csv(rows: list, path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_plot(rows: list, settings: SearchSettings, path: Path) -> None:
    """Plotly HTML: objective per trial (with running best), each parameter vs objective."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    params = list(settings.space)
    n_rows = 1 + math.ceil(len(params) / 2)
    specs = [[{"colspan": 2}, None]] + [[{}, {}] for _ in range(n_rows - 1)]
    fig = make_subplots(rows=n_rows, cols=2, specs=specs,
                        subplot_titles=[f"{settings.metric} per trial"] + params)
    ok = [r for r in rows if math.isfinite(r["objective"])]
    failed = [r for r in rows if not math.isfinite(r["objective"])]
    hover = [", ".join(f"{p}={r[p]}" for p in params) + f" ({r['status']})" for r in ok]
    fig.add_trace(go.Scatter(x=[r["trial"] for r in ok], y=[r["objective"] for r in ok],
                             mode="markers", name="trial", text=hover), row=1, col=1)
    pick = max if settings.mode == "max" else min
    running = [pick(r["objective"] for r in ok[:i + 1]) for i in range(len(ok))]
    fig.add_trace(go.Scatter(x=[r["trial"] for r in ok], y=running, mode="lines",
                             name="best so far"), row=1, col=1)
    if failed:
        floor = min((r["objective"] for r in ok), default=0.0)
        fig.add_trace(go.Scatter(
            x=[r["trial"] for r in failed], y=[floor] * len(failed), mode="markers",
            marker={"symbol": "x", "color": "red", "size": 10}, name="failed / no score",
            text=[f"{r['status']}: {r['error']}" for r in failed]), row=1, col=1)
    for i, p in enumerate(params):
        row, col = 2 + i // 2, 1 + i % 2
        spec = settings.space[p]
        xs = [str(r[p]) if spec["type"] == "choice" else r[p] for r in ok]
        fig.add_trace(go.Scatter(x=xs, y=[r["objective"] for r in ok], mode="markers",
                                 name=p, showlegend=False, text=hover), row=row, col=col)
        if spec["type"] == "choice":
            fig.update_xaxes(type="category", categoryorder="array",
                             categoryarray=[str(v) for v in spec["values"]], row=row, col=col)
        elif spec["type"] == "loguniform":
            fig.update_xaxes(type="log", row=row, col=col)
        fig.update_yaxes(title_text=settings.metric, row=row, col=col)
    fig.update_xaxes(title_text="trial", row=1, col=1)
    fig.update_layout(height=320 * n_rows, title=f"{settings.model}"
                      f"{'+' + settings.loss if settings.loss else ''} on {settings.dataset}: "
                      f"{len(ok)} scored, {len(failed)} failed/unscored trials")
    fig.write_html(str(path), include_plotlyjs=True)


def is_interrupted(rows: list, settings: SearchSettings) -> bool:
    """Stopped before its end (Ctrl-C, SIGTERM): trials missing or not run to their end."""
    return len(rows) < settings.num_samples or any(r["status"] == "INTERRUPTED" for r in rows)


def write_outputs(grid, settings: SearchSettings, exp_dir: Path, resume: str = "") -> dict:
    """trials.csv, search.html and best.yaml (best finished trial) -- also of an interrupted
    search, whose best.yaml then says so and gives ``resume``, the command to continue."""
    rows = trial_rows(grid, settings)
    interrupted = is_interrupted(rows, settings)
    write_csv(rows, exp_dir / "trials.csv")
    write_plot(rows, settings, exp_dir / "search.html")
    best = best_row(rows, settings.mode)
    if best is not None:
        finished = sum(r["status"] in FINISHED for r in rows)
        note = (f"INTERRUPTED search: best of the {finished} of {settings.num_samples} trials "
                f"finished so far; continue with: {resume}") if interrupted else ""
        write_best_yaml(settings, best, exp_dir / "best.yaml", exp_dir, note)
    return {"rows": rows, "best": best, "interrupted": interrupted}


# -- CLI -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tuning.search", allow_abbrev=False,
        description="Ray Tune + Optuna TPE search; other --key=value arguments are fixed "
                    "config overrides for every trial.")
    p.add_argument("--model", default="TIGER")
    p.add_argument("--dataset", default="Office")
    p.add_argument("--loss", default=None)
    p.add_argument("--config_files", default="", help="space-separated YAML files")
    p.add_argument("--space", type=Path, default=None,
                   help="search space YAML (default tuning/spaces/<loss or model>.yaml)")
    p.add_argument("--num_samples", type=int, default=20)
    p.add_argument("--metric", default=None,
                   help="objective, a reported valid metric (default: the config's valid_metric)")
    p.add_argument("--mode", choices=("max", "min"), default=None,
                   help="default: max unless the config says valid_metric_bigger: False")
    p.add_argument("--cpus_per_trial", type=float, default=1.0)
    p.add_argument("--gpus_per_trial", type=float, default=0.0)
    p.add_argument("--max_concurrent_trials", type=int, default=None)
    p.add_argument("--num_cpus", type=int, default=None, help="local Ray only: CPUs to use")
    p.add_argument("--address", default=None, help="join a Ray cluster ('auto' or host:port)")
    p.add_argument("--asha", action="store_true", help="ASHA early stopping")
    p.add_argument("--asha_grace_period", type=int, default=1)
    p.add_argument("--asha_reduction_factor", type=int, default=3)
    p.add_argument("--search_seed", type=int, default=2024, help="seed of the TPE sampler")
    p.add_argument("--storage_path", type=Path, default=Path("saved/tune"))
    p.add_argument("--name", default=None, help="experiment name (default MODEL-LOSS-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    p.add_argument("--restart_errored", action="store_true",
                   help="with --resume: run ERROR trials again from scratch")
    p.add_argument("--keep_checkpoints", action="store_true")
    p.add_argument("--verbose", action="store_true", help="show the trials' output")
    return p


def settings_from_args(args, overrides: dict) -> SearchSettings:
    space_files = [args.space] if args.space else default_space_files(args.model, args.loss)
    space, points = load_spaces(space_files)
    space_file = " + ".join(str(f) for f in space_files)
    fixed = sorted(set(space) & set(overrides))
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: both searched ({space_file}) and fixed on the "
                         "command line")
    config_files = [str(Path(f).resolve()) for f in args.config_files.split()]
    for key in PATH_OPTIONS:  # trials run in their own folders: make paths absolute
        if overrides.get(key) and overrides[key] not in ("None", "~"):
            overrides[key] = str(Path(overrides[key]).resolve())
    return SearchSettings(
        model=args.model, dataset=args.dataset, loss=args.loss, config_files=config_files,
        overrides=overrides, space=space, points=points, space_file=str(space_file),
        metric=args.metric or "", mode=args.mode or "", num_samples=args.num_samples,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent_trials=args.max_concurrent_trials, asha=args.asha,
        asha_grace_period=args.asha_grace_period,
        asha_reduction_factor=args.asha_reduction_factor, search_seed=args.search_seed,
        keep_checkpoints=args.keep_checkpoints)


def main(argv=None) -> dict:
    from recbole_genrec.cli import parse_overrides

    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    overrides = parse_overrides(rest)
    name = args.name or f"{args.model}-{args.loss or 'default'}-{args.dataset}"
    exp_dir = args.storage_path.resolve() / name

    if args.resume:
        if not ((exp_dir / SETTINGS).is_file() and tune.Tuner.can_restore(str(exp_dir))):
            raise UsageError(f"--resume: no search to resume in {exp_dir} (none was "
                             "started there, or it stopped before its first trial): start it "
                             "without --resume")
        settings = SearchSettings(**json.loads((exp_dir / SETTINGS).read_text()))
        print(f"[search] resuming {exp_dir} (settings from {SETTINGS}; other options ignored)")
    else:
        if exp_dir.exists() and set(os.listdir(exp_dir)) - {SETTINGS}:  # settings alone: no trial
            raise UsageError(f"{exp_dir} already holds a search: pass --resume to "
                             "continue it or choose another --name")
        try:
            settings = settings_from_args(args, overrides)
        except ValueError as e:
            raise UsageError(f"{e}") from None
        config = check_config(settings)
        settings.metric = (settings.metric or str(config["valid_metric"])).lower()
        reported = {f"{m.lower()}@{k}" for m in config["metrics"] for k in config["topk"]}
        if settings.metric not in reported | {"valid_score"}:
            raise UsageError(f"--metric={settings.metric} is not reported; choose "
                             f"valid_score or one of {', '.join(sorted(reported))}")
        settings.mode = settings.mode or ("max" if config["valid_metric_bigger"] else "min")
        settings.max_epochs = max(1, int(config["epochs"]) // max(1, int(config["eval_step"])))
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / SETTINGS).write_text(json.dumps(asdict(settings), indent=1))

    init_ray(args.address, args.num_cpus, log_to_driver=args.verbose)
    stop_like_ctrl_c_on_sigterm()
    resume = resume_command(exp_dir, args)
    try:
        tuner = (restore_tuner(settings, exp_dir, args.restart_errored) if args.resume
                 else build_tuner(settings, exp_dir.parent, name))
        grid = tuner.fit()  # on Ctrl-C Ray Tune stops the trials, saves the experiment, returns
    except KeyboardInterrupt:  # before Ray Tune took over Ctrl-C, or a second Ctrl-C
        how = (f"continue it from its last saved state with:\n    {resume}"
               if tune.Tuner.can_restore(str(exp_dir)) else "start it again (no trial was saved)")
        print(f"\n[search] INTERRUPTED before the outputs were written: {how}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    outputs = write_outputs(grid, settings, exp_dir, resume)
    print_summary(outputs, settings, exp_dir, resume)
    return {"experiment": exp_dir, "settings": settings, **outputs}


def stop_like_ctrl_c_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a job scheduler's time limit) end the search as Ctrl-C does:
    Ray Tune's SIGINT handler stops the trials and saves the experiment, then the outputs
    are written.  Installed after ``ray.init``, whose own handler exits at once."""
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))


def resume_command(exp_dir: Path, args) -> str:
    """The command line that continues this search: the experiment plus the options that
    are not saved with it (the Ray cluster and the driver's output)."""
    cmd = ["--resume", f"--storage_path={exp_dir.parent}", f"--name={exp_dir.name}"]
    cmd += [f"--address={args.address}"] if args.address else []
    cmd += [f"--num_cpus={args.num_cpus}"] if args.num_cpus else []
    cmd += ["--verbose"] if args.verbose else []
    return commands.shown("search", cmd)


def print_summary(outputs: dict, settings: SearchSettings, exp_dir: Path, resume: str) -> None:
    rows, best = outputs["rows"], outputs["best"]
    statuses = ("COMPLETED", "STOPPED", "ERROR", "INTERRUPTED")
    counts = {s: sum(r["status"] == s for r in rows) for s in statuses}
    print(f"\n[search] {exp_dir}: {len(rows)}/{settings.num_samples} trials "
          + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "INTERRUPTED"))
    if outputs["interrupted"]:
        print("[search] INTERRUPTED: the outputs below cover the trials finished so far; "
              f"continue the search (finished trials are kept) with:\n    {resume}")
    if best is not None:
        values = ", ".join(f"{k}={best[k]}" for k in settings.space)
        print(f"[search] best {settings.metric}={best['objective']:.6g} ({values})")
        print(f"[search] wrote {exp_dir / 'best.yaml'}")
    print(f"[search] wrote {exp_dir / 'trials.csv'} and {exp_dir / 'search.html'}")


def _trial_index(dirname: str) -> int:
    m = _TRIAL_DIR.search(dirname)
    return int(m.group("index")) if m else -1


def _trial_id(result, dirname: str) -> str:
    trial_id = (result.metrics or {}).get("trial_id")
    if trial_id:
        return trial_id
    m = _TRIAL_DIR.search(dirname)
    return m.group("id") if m else dirname


def _first_line(error) -> str:
    text = str(error).strip().splitlines()
    # a RayTaskError's text starts with the task; the cause is on its last line
    return (text[-1] if text else type(error).__name__)[:300]


def cli() -> None:
    """The console command's entry point."""
    run_cli(lambda argv: EXIT_INTERRUPTED if main(argv)["interrupted"] else 0)


if __name__ == "__main__":
    cli()
