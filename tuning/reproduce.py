"""Reproduce a results table in one command: a declared grid of runs, a report folder.

::

    python -m tuning.reproduce --profile=cpu [--workers=2] [--threads=1] [--out=DIR]
        [--only=RUN,RUN] [--dataset=D] [--key=value ...]

A *profile* (``tuning/profiles/<name>.yaml``, or a path) declares

* ``dataset``, ``seeds``, ``workers`` / ``threads`` defaults, ``config``: options for
  every run, and ``generative``: options for the generative runs only (``--key=value``
  on this command line overrides both);
* ``runs``: ``{name, model, loss?, role?, seeds?, config?}`` -- the grid is runs x seeds
  (a run's own ``seeds`` replace the profile's for that run);
  ``role`` is ``method`` or ``baseline`` (default as in ``tuning.compare``: a loss
  other than ``ce`` makes a method);
* ``test`` / ``alternative`` / ``alpha`` / ``table_metrics``: the significance table;
* ``paper``: run name -> the paper's numbers (``recall@10: .0608``), shown beside ours;
* ``pairs``: ``[method, baseline]`` run names -- a significance table for each pair alone
  (e.g. APAO against CE on the same backbone, whatever the best baseline overall is),
  one per test in ``pair_tests`` (default: ``test``);
* ``beam_sweep``: ``{run, seed, beam_sizes}`` -- re-evaluate that run's best checkpoint
  at each beam size (APAO Fig. 4);
* ``sensitivity``: ``{search: [tuning.search args]}`` or ``{trials_csv: PATH}`` -- the
  beta / eta sensitivity figure (APAO Fig. 3) from a ``tuning.search`` run.

Each run is its own ``run_recbole_genrec.py`` process (``--workers`` at a time, each
with ``--threads`` torch threads; several may share one GPU) writing
``<out>/runs/<name>/seed<S>.json``; a progress bar (on a terminal) and one line per
finished run with the elapsed time and an ETA.  A result that exists is reused, not run again
(after checking it was made with the same settings), so an interrupted reproduction
continues where it stopped.  The report folder then holds ``report.md`` (the
Table-1-style comparison of ``tuning.compare``, the paper's numbers beside ours, the
figures of ``tuning.figures``, the commands that built the folder), ``table.md`` /
``table.csv``, ``paper.csv``, the figures with their CSVs, ``runs/``, each run's log in
``logs/`` and ``invocations.jsonl``.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from recbole_genrec.cli import UsageError
from recbole_genrec.paths import CHECKOUT
from recbole_genrec import commands
from recbole_genrec.yaml_file import read_yaml
from recbole_genrec.errors import run_cli
from recbole_genrec.registry import get_model, is_generative
from . import compare, figures
from .common import is_complete, remove_checkpoint, resume_point, typed_overrides

PROFILES = Path(__file__).resolve().parent / "profiles"
INVOCATIONS = "invocations.jsonl"  # one line per invocation: command, start, wall time, runs done


@dataclass(frozen=True)
class Run:
    name: str
    model: str
    loss: str | None
    role: str
    config: dict = field(default_factory=dict, hash=False)
    seeds: tuple = ()  # empty: the profile's seeds

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "._+-" else "_" for c in self.name)


@dataclass
class Profile:
    name: str
    dataset: str
    seeds: list
    runs: list
    config: dict
    generative: dict = field(default_factory=dict)
    workers: int = 1
    threads: int = 1
    description: str = ""
    test: str = compare.AUTO_TEST  # Welch over seeds (2+ seeds), else paired t over users
    alternative: str = "two-sided"
    alpha: float = 0.05
    table_metrics: list = field(default_factory=lambda: list(compare.DEFAULT_METRICS))
    paper: dict = field(default_factory=dict)
    paper_source: str = ""
    beam_sweep: dict | None = None
    sensitivity: dict | None = None
    pairs: list = field(default_factory=list)  # [method, baseline]: a table each
    pair_tests: list = field(default_factory=list)  # tests of the pair tables (default: test)

    def seeds_of(self, run: Run) -> list:
        return list(run.seeds) or list(self.seeds)


# -- profiles -------------------------------------------------------------------------------

def profile_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        raise ValueError(f"--profile={name}: no {path}; profiles: {', '.join(known)}")
    return path


def load_profile(name: str, overrides: dict | None = None) -> Profile:
    """Read and check a profile; ``overrides`` (typed) go into every run's config."""
    path = profile_path(name)
    data = read_yaml(path)
    known = set(Profile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    for key in ("dataset", "seeds", "runs"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key!r}")
    runs = []
    for i, spec in enumerate(data["runs"]):
        if not isinstance(spec, dict) or "name" not in spec or "model" not in spec:
            raise ValueError(f"{path}: runs[{i}] needs at least name and model, got {spec!r}")
        loss = spec.get("loss")
        default_role = "method" if loss and loss != compare.DEFAULT_LOSS else "baseline"
        role = spec.get("role", default_role)
        if role not in ("method", "baseline"):
            raise ValueError(f"{path}: runs[{i}].role={role!r}: expected method or baseline")
        run_seeds = spec.get("seeds") or []
        if not isinstance(run_seeds, list) or len(set(run_seeds)) != len(run_seeds):
            raise ValueError(f"{path}: runs[{i}].seeds must be a list of distinct integers")
        runs.append(Run(spec["name"], spec["model"], loss, role, dict(spec.get("config") or {}),
                        tuple(run_seeds)))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: run names must be distinct: {names}")
    sweep = data.get("beam_sweep")
    if sweep is not None and not (isinstance(sweep, dict) and {"run", "beam_sizes"} <= set(sweep)):
        raise ValueError(f"{path}: beam_sweep needs run and beam_sizes, got {sweep!r}")
    pairs = data.get("pairs") or []
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise ValueError(f"{path}: pairs must be a list of [method, baseline] run names")
    for key, referenced in (("paper", list(data.get("paper") or {})),
                            ("beam_sweep", [sweep["run"]] if sweep else []),
                            ("pairs", [name for pair in pairs for name in pair])):
        stray = [n for n in referenced if n not in names]
        if stray:
            raise ValueError(f"{path}: {key} names run(s) {stray} not in runs ({names})")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: seeds must be a non-empty list of distinct integers")
    config = {**(data.get("config") or {}), **(overrides or {})}
    generative = {**(data.get("generative") or {}), **(overrides or {})}
    fields = {k: v for k, v in data.items() if k not in ("runs", "config", "generative")}
    return Profile(name=path.stem, runs=runs, config=config, generative=generative, **fields)


def run_overrides(profile: Profile, run: Run) -> dict:
    """Options of one run: the profile's config (and generative options for generative
    models), then the run's own."""
    generative = profile.generative if is_generative(get_model(run.model)) else {}
    return {**profile.config, **generative, **run.config}


# -- running --------------------------------------------------------------------------------

def result_path(out: Path, run: Run, seed: int) -> Path:
    return out / "runs" / run.slug / f"seed{seed}.json"


def command(profile: Profile, run: Run, seed: int, result_file: Path, extra=None) -> list:
    args = [f"--model={run.model}", f"--dataset={profile.dataset}"]
    if run.loss:
        args.append(f"--loss={run.loss}")
    options = {**run_overrides(profile, run), **(extra or {}), "seed": seed,
               "result_file": str(result_file)}
    args += [f"--{k}={_cli_value(v)}" for k, v in options.items()]
    return commands.argv("run", args)


def _cli_value(value) -> str:
    """A config value as RecBole's command-line parser reads it back."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "None" if value is None else str(value)


def worker_env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = commands.pythonpath(env.get("PYTHONPATH"))
    return env


def stored_result(profile: Profile, run: Run, seed: int, path: Path) -> dict | None:
    """The result at ``path`` if it exists and was made with this run's settings."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if not is_complete(result):  # running when killed, interrupted, ...
        return None
    expected = {**typed_overrides({k: _cli_value(v) for k, v in
                                           run_overrides(profile, run).items()}),
                "model": run.model, "dataset": profile.dataset, "seed": seed}
    if run.loss:
        expected["loss"] = run.loss
    compare.check_result(result, expected, path)
    return result


def complete_runs(out: Path) -> int:
    """How many result JSONs under ``out/runs`` are of finished runs."""
    return sum(is_complete(json.loads(p.read_text())) for p in (out / "runs").glob("*/seed*.json"))


def resume_options(path: Path) -> dict:
    """``{"resume_from": ...}`` when ``path`` holds an unfinished run whose training
    state exists (the run continues from it), else ``{}``."""
    last = resume_point(json.loads(path.read_text())) if path.is_file() else None
    return {"resume_from": last} if last else {}


def execute(args: list, log: Path, env: dict) -> tuple[int, float]:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        f.write(" ".join(args) + "\n")
        f.flush()
        code = subprocess.call(args, stdout=f, stderr=subprocess.STDOUT, env=env,
                               cwd=CHECKOUT)
    return code, time.perf_counter() - start


def run_grid(profile: Profile, out: Path, workers: int, threads: int,
             keep_checkpoint=lambda run, seed: False) -> dict:
    """Run every missing (run, seed); return ``{name: [result per seed]}`` (None = failed)."""
    jobs, results = [], {r.name: [None] * len(profile.seeds_of(r)) for r in profile.runs}
    for run in profile.runs:
        for i, seed in enumerate(profile.seeds_of(run)):
            path = result_path(out, run, seed)
            stored = stored_result(profile, run, seed, path)
            if stored is not None:
                results[run.name][i] = stored
            else:
                jobs.append((run, i, seed, path))
    total = len(jobs)
    print(f"[reproduce] {profile.name}: {len(profile.runs)} runs x {len(profile.seeds)} seeds, "
          f"{sum(r is not None for v in results.values() for r in v)} done already, "
          f"{total} to run, {workers} worker(s) x {threads} thread(s) -> {out}", flush=True)
    env, start, failed = worker_env(threads), time.perf_counter(), []
    bar = tqdm(total=total, unit="run", desc=profile.name, disable=not sys.stderr.isatty())
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, bar:
        futures = {pool.submit(execute, command(profile, run, seed, path, extra={
                                   "checkpoint_dir": str(out / "checkpoints"),
                                   **resume_options(path)}),
                               out / "logs" / f"{run.slug}-seed{seed}.log", env):
                   (run, i, seed, path) for run, i, seed, path in jobs}
        for n, future in enumerate(as_completed(futures), start=1):
            run, i, seed, path = futures[future]
            code, seconds = future.result()
            elapsed = time.perf_counter() - start
            eta = elapsed / n * (total - n)
            result = json.loads(path.read_text()) if path.is_file() else None
            if code == 0 and result is not None and is_complete(result):
                results[run.name][i] = result
                if result.get("checkpoint") and not keep_checkpoint(run, seed):
                    remove_checkpoint(result["checkpoint"])
                status = f"ndcg@10={result['test'].get('ndcg@10', math.nan):.4f}"
            else:
                failed.append((run.name, seed))
                status = f"FAILED (exit {code}), see {out / 'logs' / f'{run.slug}-seed{seed}.log'}"
            tqdm.write(f"[reproduce] {n}/{total} {run.name} seed={seed} {seconds:.0f}s {status}; "
                       f"elapsed {elapsed:.0f}s, ETA {eta:.0f}s")
            bar.update()
    if failed:
        print(f"[reproduce] {len(failed)} run(s) failed: {failed}; run the command again to "
              "retry them (finished runs are kept)", flush=True)
    return results


def run_beam_sweep(profile: Profile, out: Path, results: dict, threads: int) -> dict | None:
    """Re-evaluate one run's best checkpoint at each beam size (no training, no PR@K)."""
    spec = profile.beam_sweep
    run = next(r for r in profile.runs if r.name == spec["run"])
    seed = spec.get("seed", profile.seeds_of(run)[0])
    result = results[run.name][profile.seeds_of(run).index(seed)]
    sweep_file = out / "beam_sweep.json"
    if sweep_file.is_file():
        return json.loads(sweep_file.read_text())
    checkpoint = result and result.get("checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        print(f"[reproduce] beam sweep skipped: no checkpoint of {run.name} seed {seed}")
        return None
    rows = []
    for beam in spec["beam_sizes"]:
        path = out / "beam_sweep" / f"beam{beam}.json"
        if not path.is_file():
            args = command(profile, run, seed, path, extra={
                "epochs": 0, "init_from": checkpoint, "beam_size": beam,
                "pruning_rate_users": 0, "checkpoint_dir": str(out / "beam_sweep")})
            code, _ = execute(args, out / "logs" / f"beam_sweep-{beam}.log", worker_env(threads))
            if code != 0:
                print(f"[reproduce] beam sweep B={beam} failed (exit {code})")
                continue
        evaluated = json.loads(path.read_text())
        if evaluated.get("checkpoint"):
            remove_checkpoint(evaluated["checkpoint"])
        n_users = len(evaluated["per_user"]["test"]["user_id"])
        rows.append({"beam_size": beam, **{m: evaluated["test"][m] for m in
                                           ("recall@10", "ndcg@10", "recall@20", "ndcg@20")},
                     "users": n_users, "test_s": evaluated["timings"]["test_s"],
                     "users_per_s": n_users / evaluated["timings"]["test_s"]})
        print(f"[reproduce] beam {beam}: {rows[-1]}", flush=True)
    sweep = {"label": f"{run.name} (seed {seed})", "checkpoint": checkpoint,
             "device": result.get("device"), "rows": rows}
    sweep_file.write_text(json.dumps(sweep, indent=1))
    return sweep


def sensitivity_trials(profile: Profile, out: Path, overrides: dict) -> tuple[Path | None, str]:
    """trials.csv of the profile's sensitivity search (run now if missing), or why none."""
    spec = profile.sensitivity or {}
    if spec.get("trials_csv"):
        path = Path(spec["trials_csv"])
        return (path, "") if path.is_file() else (None, f"{path} does not exist")
    if not spec.get("search"):
        return None, "the profile declares no sensitivity search"
    trials = out / "search" / "sensitivity" / "trials.csv"
    if not trials.is_file():
        args = commands.argv("search", [
            *map(str, spec["search"]), f"--dataset={profile.dataset}",
            f"--storage_path={out / 'search'}", "--name=sensitivity",
            *(f"--{k}={v}" for k, v in overrides.items())])
        code, seconds = execute(args, out / "logs" / "sensitivity-search.log",
                                worker_env(spec.get("threads", 1)))
        print(f"[reproduce] sensitivity search: exit {code} after {seconds:.0f}s", flush=True)
    return (trials, "") if trials.is_file() else (None, "the sensitivity search wrote no trials.csv "
                                                  f"(see {out / 'logs' / 'sensitivity-search.log'})")


# -- report ---------------------------------------------------------------------------------

def paper_rows(profile: Profile, results: dict) -> list[dict]:
    rows = []
    for run_name, numbers in profile.paper.items():
        if run_name not in results:  # left out by --only
            continue
        values = [r for r in results[run_name] if r is not None]
        for metric, paper_value in numbers.items():
            ours = [float(r["test"][metric]) for r in values]
            mean = sum(ours) / len(ours) if ours else math.nan
            rows.append({"run": run_name, "metric": metric, "ours": mean, "paper": paper_value,
                         "gap_pct": 100 * (mean - paper_value) / paper_value})
    return rows


def run_summary(profile: Profile, results: dict) -> list[str]:
    lines = ["| Run | Seed | Epochs | Best epoch | Stopped by | Best valid NDCG@10 | Train s | "
             "Test s | Device |",
             "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for run in profile.runs:
        for seed, r in zip(profile.seeds_of(run), results[run.name]):
            if r is None:
                lines.append(f"| {run.name} | {seed} | failed | | | | | | |")
                continue
            t = r["timings"]
            lines.append(f"| {run.name} | {seed} | {t['epochs_run']} | {r.get('best_epoch')} | "
                         f"{t.get('stop_reason')} | "
                         f"{r['valid'].get('ndcg@10', math.nan):.4f} | {t['fit_s']:.0f} | "
                         f"{t['test_s']:.0f} | {r.get('device')} |")
    return lines


def invocation_lines(out: Path) -> list[str]:
    """The commands that built this folder, from ``invocations.jsonl``."""
    lines = ["| Started (UTC) | Command | Runs done | Wall time |", "|---|---|---:|---:|"]
    for line in (out / INVOCATIONS).read_text().splitlines():
        i = json.loads(line)
        lines.append(f"| {i['started']} | `{i['command']}` | {i['runs_done']} | "
                     f"{i['wall_s'] / 60:.1f} min |")
    return lines


def write_report(profile: Profile, out: Path, results: dict, sweep=None, trials_csv=None,
                 sensitivity_reason="") -> Path:
    complete = {name: rs for name, rs in results.items() if all(r is not None for r in rs)}
    roles = {r.name: r.role for r in profile.runs if r.name in complete}
    sections = [f"# Reproduction `{profile.name}` on {profile.dataset}", "",
                profile.description.strip(), "", *invocation_lines(out), "",
                "A run whose result existed was reused, not run again.", ""]
    if "baseline" in roles.values():
        table = compare.build_table(complete, roles, profile.dataset, profile.seeds,
                                    profile.table_metrics, profile.test, profile.alternative,
                                    profile.alpha)
        markdown = compare.render_markdown(table)
        (out / "table.md").write_text(markdown, encoding="utf-8")
        compare.write_csv(table, out / "table.csv")
        sections += ["## Test metrics", "", markdown.split("\n", 1)[1].strip(), ""]
    for method, baseline in profile.pairs:
        if method not in complete or baseline not in complete:
            continue
        for test in profile.pair_tests or [profile.test]:
            table = compare.build_table({n: complete[n] for n in (method, baseline)},
                                        {method: "method", baseline: "baseline"},
                                        profile.dataset, profile.seeds, profile.table_metrics,
                                        test, profile.alternative, profile.alpha)
            sections += [f"## {method} vs {baseline} ({test})", "",
                         compare.render_markdown(table).split("\n", 1)[1].strip(), ""]
    missing = sorted(set(results) - set(complete))
    if missing:
        sections += [f"Missing (failed) runs, not in the table: {', '.join(missing)}", ""]
    rows = paper_rows(profile, {n: [r for r in rs if r is not None] for n, rs in results.items()})
    if rows:
        with open(out / "paper.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        sections += ["## Ours vs the paper", "", f"Paper numbers: {profile.paper_source}", "",
                     "| Run | Metric | Ours (mean over seeds) | Paper | Gap |",
                     "|---|---|---:|---:|---:|"]
        sections += [f"| {r['run']} | {r['metric']} | {r['ours']:.4f} | {r['paper']:.4f} | "
                     f"{r['gap_pct']:+.1f}% |" for r in rows] + [""]
    sections += ["## Runs", ""] + run_summary(profile, results) + [""]
    runs = [(name, r) for name, rs in results.items() for r in rs if r is not None]
    drawn, skipped = figures.write_all(runs, out, sweep=sweep, trials_csv=trials_csv)
    if sensitivity_reason and "sensitivity" not in drawn:
        skipped["sensitivity"] = sensitivity_reason
    sections += ["## Figures", ""]
    for name, png in drawn.items():
        sections += [f"### {name.replace('_', ' ')}", "",
                     f"![{name}]({Path(png).name}) (data: `{Path(png).with_suffix('.csv').name}`)", ""]
    sections += [f"- {name}: not drawn ({reason})" for name, reason in skipped.items()]
    report = out / "report.md"
    report.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return report


# -- CLI ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tuning.reproduce", allow_abbrev=False,
        description="Run a profile's grid (runs x seeds) and write a report folder. Other "
                    "--key=value arguments override the config of every run.")
    p.add_argument("--profile", required=True, help="name in tuning/profiles/ or a YAML path")
    p.add_argument("--workers", type=int, default=None, help="runs at once (profile default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run")
    p.add_argument("--out", type=Path, default=None, help="default saved/reproduce/<profile>")
    p.add_argument("--only", default="", help="comma-separated run names (default: all)")
    return p


def main(argv=None) -> Path:
    from recbole_genrec.cli import parse_overrides

    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = build_parser().parse_known_args(argv)
    overrides = parse_overrides(rest)
    for key in ("model", "loss", "seed", "result_file"):
        if key in overrides:
            raise UsageError(f"--{key} is set per run by the profile")
    dataset = overrides.pop("dataset", None)
    try:
        profile = load_profile(args.profile, typed_overrides(overrides))
    except ValueError as e:
        raise UsageError(f"{e}") from None
    profile.dataset = dataset or profile.dataset
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {r.name for r in profile.runs})
        if unknown:
            raise UsageError(f"--only names unknown run(s) {unknown}")
        profile.runs = [r for r in profile.runs if r.name in wanted]
    out = (args.out or Path("saved") / "reproduce" / profile.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.yaml").write_text(  # the profile as run: its file, then what overrode it
        f"# {profile_path(args.profile)}; command-line overrides: {overrides or 'none'}\n"
        + profile_path(args.profile).read_text(encoding="utf-8"), encoding="utf-8")
    start, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    sweep_key = None
    if profile.beam_sweep and any(r.name == profile.beam_sweep["run"] for r in profile.runs):
        sweep_key = (profile.beam_sweep["run"], profile.beam_sweep.get("seed", profile.seeds[0]))
    runs_before = complete_runs(out)
    try:
        results = run_grid(profile, out, args.workers or profile.workers,
                           args.threads or profile.threads,
                           keep_checkpoint=lambda run, seed: (run.name, seed) == sweep_key)
        sweep = run_beam_sweep(profile, out, results, args.threads or profile.threads) \
            if sweep_key else None
        trials_csv, reason = sensitivity_trials(profile, out, overrides)
    except KeyboardInterrupt:
        print(f"\n[reproduce] INTERRUPTED: {complete_runs(out)} finished run(s) are kept in "
              f"{out / 'runs'}; continue with the same command (finished runs are skipped, "
              "unfinished ones resume from their last epoch):\n  "
              + commands.shown("reproduce", argv), flush=True)
        raise
    runs_done = complete_runs(out) - runs_before
    with open(out / INVOCATIONS, "a", encoding="utf-8") as f:
        f.write(json.dumps({"command": "python -m tuning.reproduce " + " ".join(argv),
                            "started": started, "wall_s": round(time.perf_counter() - start, 1),
                            "runs_done": runs_done}) + "\n")
    report = write_report(profile, out, results, sweep, trials_csv, reason)
    print(f"[reproduce] report: {report}")
    return report


def cli() -> None:
    """The console command's entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
