"""Compare runs over several seeds: a Table-1-style Markdown and CSV table with
significance markers against the best baseline.

::

    python -m tuning.compare --dataset=Office --seeds=5 \\
        --runs "TIGER:ce" "SASRec" "BERT4Rec" --methods "TIGER:apao:best.yaml" \\
        [--out DIR] [--results_dir DIR] [--no_train] [--alpha 0.01] \\
        [--test auto|welch|paired_t|wilcoxon|one_sample] [--alternative two-sided|greater] \\
        [--table_metrics recall@10 ndcg@10 recall@20 ndcg@20] [--key=value ...]

A run is ``MODEL[:LOSS[:CONFIG.yaml]]`` (``SASRec``, ``TIGER:apao``,
``TIGER:apao:best.yaml``, ``SASRec::tiny.yaml``); its label in the table is
the spec with the config file's name instead of its path.  Every other
``--key=value`` is a config override passed to every run (so pass only keys
every run knows; per-run keys go in the run's YAML).

**Methods and baselines.**  Runs given after ``--methods`` are methods, runs
after ``--runs`` are baselines.  Without ``--methods``, every run with an
explicit loss other than ``ce`` is a method (``TIGER:apao`` is, ``TIGER:ce``,
``TIGER`` and ``SASRec`` are not).  For each metric, the best baseline is the
baseline with the highest mean over seeds (all table metrics are
higher-is-better); each method is compared with it.

**Results.**  Run ``R`` with seed ``S`` is stored as
``<results_dir>/<slug of R>/seed<S>.json`` (``quick_start.run``'s result
JSON; ``results_dir`` defaults to ``<out>/runs``).  Existing files are reused
(after checking that their model, dataset, loss, seed and overrides match),
missing ones are trained one after the other in this process; with
``--no_train`` the commands that would produce them are printed instead (run
them anywhere, e.g. on a GPU cluster, then compare again).

**Statistics** (``tuning/significance.py``): ``--test`` picks the test,
computed per (method, metric) cell; the p-values of all cells are corrected
with Holm--Bonferroni and a cell is marked ``†`` when the adjusted p-value is
below ``--alpha``.  The default, ``auto``, is Welch's t-test over seeds when
there are at least two seeds and the paired t-test over users for a single
seed; the one-sample test of the APAO paper (the best baseline's mean taken as
exact: anti-conservative) is kept as ``--test=one_sample``.  Under the table,
one line says what was tested and one what the test ignores, with the
alternative and alpha.
"""

import argparse
import csv
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbole_genrec import commands
from recbole_genrec.cli import UsageError
from recbole_genrec.yaml_file import read_yaml
from recbole_genrec.errors import ConfigError, run_cli
from . import significance as sig
from .common import is_complete, remove_checkpoint, resume_point, typed_overrides

DEFAULT_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
DEFAULT_FIRST_SEED = 2020  # RecBole's default seed: --seeds=1 reproduces a plain run
DEFAULT_LOSS = "ce"        # generative models' default loss (recbole_genrec.config)
MARK = "†"                 # significance marker (not "*", which is Markdown emphasis)
AUTO_TEST = "auto"         # Welch over seeds (2+ seeds), else paired t over users


# -- run specs and seeds -----------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    """``MODEL[:LOSS[:CONFIG.yaml]]``."""

    spec: str
    model: str
    loss: str | None = None
    config_file: str | None = None

    @property
    def label(self) -> str:
        """The spec, with the config file by its name only (table rows stay short)."""
        if not self.config_file:
            return self.spec
        return f"{self.model}:{self.loss or ''}:{Path(self.config_file).name}"

    @property
    def slug(self) -> str:
        """File-system-safe folder name for this run's result files."""
        parts = [self.model, self.loss or "default"]
        if self.config_file:
            parts.append(Path(self.config_file).stem)
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(parts))


def parse_run(spec: str) -> RunSpec:
    parts = spec.strip().split(":", 2)
    model = parts[0]
    if not model:
        raise ValueError(f"run {spec!r}: expected MODEL[:LOSS[:CONFIG.yaml]]")
    loss = parts[1] if len(parts) > 1 and parts[1] else None
    config_file = parts[2] if len(parts) > 2 and parts[2] else None
    if config_file and not Path(config_file).is_file():
        raise ValueError(f"run {spec!r}: config file {config_file} not found")
    return RunSpec(spec.strip(), model, loss, config_file)


def parse_seeds(text: str, first: int = DEFAULT_FIRST_SEED) -> list[int]:
    """``"5"`` -> five seeds ``first .. first+4``; ``"1,7,42"`` -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = list(range(first, first + int(text)))
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected a count (5) or a list (1,7,42)") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: need at least one seed, no repeats")
    return seeds


def assign_roles(runs: list[RunSpec], methods: list[RunSpec] | None) -> dict[str, str]:
    """Label -> ``"baseline"`` or ``"method"`` (rule in the module docstring)."""
    if methods is not None:
        method_labels = {m.label for m in methods}
    else:
        method_labels = {r.label for r in runs if r.loss and r.loss != DEFAULT_LOSS}
    return {r.label: "method" if r.label in method_labels else "baseline" for r in runs}


# -- obtaining results -------------------------------------------------------------------

def result_path(results_dir: Path, run: RunSpec, seed: int) -> Path:
    return Path(results_dir) / run.slug / f"seed{seed}.json"


def run_command(run: RunSpec, dataset: str, seed: int, overrides: dict, path: Path) -> list:
    """The arguments of the run that produces ``path``."""
    args = [f"--model={run.model}", f"--dataset={dataset}"]
    if run.loss:
        args.append(f"--loss={run.loss}")
    if run.config_file:
        args.append(f"--config_files={run.config_file}")
    args += [f"--{k}={v}" for k, v in overrides.items()]
    args += [f"--seed={seed}", f"--result_file={path}"]
    return args


def expected_settings(run: RunSpec, dataset: str, seed: int, overrides: dict) -> dict:
    """Config values a stored result must have to count as this run with this seed."""
    expected = {}
    if run.config_file:
        expected.update(read_yaml(run.config_file))
    expected.update(typed_overrides(overrides))
    expected.update(model=run.model, dataset=dataset, seed=seed)
    if run.loss:
        expected["loss"] = run.loss
    return expected


# options RecBole rewrites (data_path gets the dataset appended) or that do not change results
NOT_COMPARED = {"data_path", "checkpoint_dir", "gpu_id", "result_file", "show_progress", "threads",
                "verbose"}


def check_result(result: dict, expected: dict, path: Path) -> None:
    """Raise if a stored result disagrees with a scalar setting of ``expected``."""
    config = {**result.get("config", {}), **{k: result.get(k) for k in ("model", "dataset")}}
    if result.get("loss") is not None:
        config["loss"] = result["loss"]
    for key, want in expected.items():
        have = config.get(key)
        if key not in config or key in NOT_COMPARED or isinstance(want, (dict, list, tuple)) \
                or isinstance(have, (dict, list, tuple)):
            continue  # RecBole normalises structured options; only scalars are compared
        same = (math.isclose(float(have), float(want), rel_tol=1e-9)
                if _is_number(have) and _is_number(want) else str(have) == str(want))
        if not same:
            raise ConfigError(
                f"{path}: stored result has {key}={have!r}, this comparison needs {want!r} "
                "(stale result? delete it or use another --results_dir)"
            )


def load_or_train(run: RunSpec, dataset: str, seed: int, overrides: dict, results_dir: Path,
                  train: bool, keep_checkpoints: bool = False) -> dict | None:
    """The result of ``run`` with ``seed``: read from ``results_dir`` or trained into it.

    Returns ``None`` when the result is missing and ``train`` is false.
    """
    path = result_path(results_dir, run, seed)
    expected = expected_settings(run, dataset, seed, overrides)
    resume = None
    if path.is_file():
        result = json.loads(path.read_text())
        if is_complete(result):
            check_result(result, expected, path)
            return result
        resume = resume_point(result)
        print(f"[compare] {path} is {result['status']}: "
              + ("resuming it" if resume else "training it again"))
    if not train:
        return None
    from recbole_genrec.launcher import launch as quick_run

    cmd = {**overrides, "seed": str(seed)}
    if run.loss:
        cmd["loss"] = run.loss
    cmd.setdefault("checkpoint_dir", str(path.parent / "checkpoints"))
    if resume:
        cmd["resume_from"] = resume
    print(f"[compare] training {run.label} seed={seed} -> {path}", flush=True)
    config_files = [run.config_file] if run.config_file else None
    result = quick_run(run.model, dataset, config_files=config_files, cmd_overrides=cmd,
                       result_file=path)
    if not keep_checkpoints and result.get("checkpoint"):
        remove_checkpoint(result["checkpoint"])
    return result


# -- the table ------------------------------------------------------------------------------

@dataclass
class Cell:
    """One (run, metric) entry; statistics only for methods."""

    run: str
    role: str
    metric: str
    values: list  # per-seed test values, in seed order
    best_baseline: str = ""
    improvement_pct: float = math.nan
    statistic: float = math.nan
    p_value: float = math.nan
    p_holm: float = math.nan
    significant: bool = False

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan


@dataclass
class Table:
    dataset: str
    seeds: list
    metrics: list
    roles: dict                      # label -> role, in display order
    cells: dict                      # (label, metric) -> Cell
    test: str
    alternative: str
    alpha: float
    overrides: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def best_baseline(self, metric: str) -> str:
        baselines = [r for r, role in self.roles.items() if role == "baseline"]
        return max(baselines, key=lambda r: self.cells[r, metric].mean)


def build_table(results: dict, roles: dict, dataset: str, seeds: list, metrics: list,
                test: str = AUTO_TEST, alternative: str = "two-sided", alpha: float = 0.01,
                overrides: dict | None = None) -> Table:
    """``results``: label -> list of result dicts (one per seed, seed order); ``test``:
    one of ``significance.TESTS`` or ``auto`` (``significance.default_test``)."""
    if test == AUTO_TEST:
        test = sig.default_test(len(seeds))
    if test not in sig.TESTS:
        raise ValueError(f"unknown test {test!r}; choose from {AUTO_TEST}, "
                         f"{', '.join(sig.TESTS)}")
    if "baseline" not in roles.values():
        raise ValueError("no baseline run: every run is a method (see --methods)")
    metrics = [m.lower() for m in metrics]
    order = sorted(roles, key=lambda r: roles[r] == "method")  # baselines first, stable
    table = Table(dataset, list(seeds), metrics, {r: roles[r] for r in order}, {}, test,
                  alternative, alpha, dict(overrides or {}))
    for label in order:
        for metric in metrics:
            values = [_test_metric(r, metric, label) for r in results[label]]
            table.cells[label, metric] = Cell(label, roles[label], metric, values)
    method_cells = [c for c in table.cells.values() if c.role == "method"]
    for cell in method_cells:
        best = table.best_baseline(cell.metric)
        base = table.cells[best, cell.metric]
        cell.best_baseline = best
        cell.improvement_pct = (100 * (cell.mean - base.mean) / base.mean
                                if base.mean else math.nan)
        outcome = _run_test(test, results[cell.run], results[best], cell.metric, alternative,
                            cell.values, base.values, table.warnings)
        cell.statistic, cell.p_value = outcome.statistic, outcome.pvalue
    if method_cells:
        adjusted = sig.holm([c.p_value for c in method_cells])
        for cell, p in zip(method_cells, adjusted):
            cell.p_holm = float(p)
            cell.significant = bool(p < alpha)
    return table


def _test_metric(result: dict, metric: str, label: str) -> float:
    if metric not in result["test"]:
        raise ValueError(
            f"run {label}: metric {metric!r} not in its test results "
            f"({', '.join(result['test'])}); set the config's metrics/topk"
        )
    return float(result["test"][metric])


def _run_test(test, method_results, baseline_results, metric, alternative,
              method_values, baseline_values, warnings) -> sig.TestResult:
    if test == "welch":
        return sig.welch(method_values, baseline_values, alternative)
    if test == "one_sample":
        return sig.one_sample(method_values, float(np.mean(baseline_values)), alternative)
    users_m, values_m = per_user_mean(method_results, metric, warnings)
    users_b, values_b = per_user_mean(baseline_results, metric, warnings)
    a, b = sig.align_users(users_m, values_m, users_b, values_b)
    return sig.USER_LEVEL_TESTS[test](a, b, alternative)


def per_user_mean(results: list, metric: str, warnings: list | None = None):
    """Users and each user's ``metric`` averaged over the seeds' results."""
    name, k = sig.parse_metric(metric)
    users, total = None, None
    for result in results:
        per_user = (result.get("per_user") or {}).get("test") or {}
        if not per_user.get("user_id"):
            raise ValueError(
                f"result of {result.get('model')} (seed {result.get('config', {}).get('seed')}) "
                "has no per-user ranks; use a seed-level test (--test welch|one_sample)"
            )
        ranked = max(result.get("config", {}).get("topk") or [k])
        if k > ranked:
            raise ValueError(f"{metric}: per-user ranks only cover the top {ranked}")
        values = sig.per_user_values(per_user["target_rank"], metric)
        reported = result["test"].get(metric)
        if warnings is not None and reported is not None and abs(values.mean() - reported) > 1e-4:
            warnings.append(f"{result.get('model')} {metric}: per-user mean {values.mean():.5f} "
                            f"differs from the reported {reported:.5f}")
        if users is None:
            users, total = list(per_user["user_id"]), values
        else:
            _, aligned = sig.align_users(users, total, per_user["user_id"], values)
            total = total + aligned
    return users, total / len(results)


# -- output -----------------------------------------------------------------------------------

def _fmt_metric(metric: str) -> str:
    name, k = sig.parse_metric(metric)
    pretty = {"ndcg": "NDCG", "mrr": "MRR"}.get(name, name.capitalize())
    return f"{pretty}@{k}"


def _fmt_stat(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.4f}")


def render_markdown(table: Table) -> str:
    metrics = table.metrics
    lines = [f"# {table.dataset}: test metrics over {len(table.seeds)} seed(s)", "",
             "| Run | Role | " + " | ".join(_fmt_metric(m) for m in metrics) + " |",
             "|---|---|" + "---:|" * len(metrics)]
    best_base = {m: table.best_baseline(m) for m in metrics}
    best_any = {m: max(table.roles, key=lambda r: table.cells[r, m].mean) for m in metrics}
    for label, role in table.roles.items():
        entries = []
        for m in metrics:
            cell = table.cells[label, m]
            text = f"{cell.mean:.4f} ± " + ("n/a" if math.isnan(cell.std) else f"{cell.std:.4f}")
            if cell.significant:
                text += MARK
            if label == best_any[m]:
                text = f"**{text}**"
            elif label == best_base[m]:
                text = f"<u>{text}</u>"
            entries.append(text)
        lines.append(f"| {label} | {role} | " + " | ".join(entries) + " |")
    methods = [r for r, role in table.roles.items() if role == "method"]
    for label in methods:
        entries = []
        for m in metrics:
            cell = table.cells[label, m]
            mark = MARK if cell.significant else ""
            entries.append("n/a" if math.isnan(cell.improvement_pct)
                           else f"{cell.improvement_pct:+.2f}%{mark}")
        lines.append(f"| Improv. of {label} over best baseline | | " + " | ".join(entries) + " |")

    baselines = [r for r, role in table.roles.items() if role == "baseline"]
    lines += ["", f"Mean ± sample std (ddof=1) over seeds {', '.join(map(str, table.seeds))}; "
              "bold: best run, underlined: best baseline (per metric).",
              f"Roles: baselines {', '.join(baselines)}; methods {', '.join(methods) or 'none'}."]
    if methods:
        lines += [
            f"Tested: {sig.DESCRIPTIONS[table.test]}; it ignores {sig.IGNORES[table.test]}.",
            f"Significance: alternative {table.alternative}; "
            f"Holm-Bonferroni correction across the {len(methods) * len(metrics)} "
            f"(method, metric) cells; {MARK} = adjusted p < alpha = {table.alpha}; n/a = test "
            "undefined (fewer than 2 seeds, or no variance across seeds).",
            "", "| Method | Metric | Best baseline | Improv. | Statistic | p | p (Holm) | Sig. |",
            "|---|---|---|---:|---:|---:|---:|:---:|"]
        for label in methods:
            for m in metrics:
                c = table.cells[label, m]
                lines.append(
                    f"| {label} | {_fmt_metric(m)} | {c.best_baseline} | "
                    f"{c.improvement_pct:+.2f}% | {_fmt_stat(c.statistic)} | {_fmt_p(c.p_value)} | "
                    f"{_fmt_p(c.p_holm)} | {MARK if c.significant else ''} |")
    if table.overrides:
        lines += ["", "Overrides for every run: "
                  + " ".join(f"--{k}={v}" for k, v in table.overrides.items())]
    lines += [f"Warning: {w}" for w in dict.fromkeys(table.warnings)]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["dataset", "run", "role", "metric", "n_seeds", "seeds", "values", "mean", "std",
              "best_baseline", "improvement_pct", "test", "alternative", "statistic",
              "p_value", "p_holm", "alpha", "significant"]


def write_csv(table: Table, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for (label, metric), c in table.cells.items():
            is_method = c.role == "method"
            writer.writerow({
                "dataset": table.dataset, "run": label, "role": c.role, "metric": metric,
                "n_seeds": len(c.values), "seeds": " ".join(map(str, table.seeds)),
                "values": " ".join(f"{v:.6g}" for v in c.values),
                "mean": c.mean, "std": c.std, "best_baseline": c.best_baseline,
                "improvement_pct": c.improvement_pct if is_method else "",
                "test": table.test if is_method else "",
                "alternative": table.alternative if is_method else "",
                "statistic": c.statistic if is_method else "",
                "p_value": c.p_value if is_method else "",
                "p_holm": c.p_holm if is_method else "",
                "alpha": table.alpha, "significant": c.significant if is_method else "",
            })


# -- CLI ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tuning.compare", allow_abbrev=False,
        description="Runs x seeds -> Markdown/CSV table with significance markers. "
                    "Other --key=value arguments override the config of every run.")
    p.add_argument("--dataset", default="Office")
    p.add_argument("--runs", nargs="+", required=True, metavar="MODEL[:LOSS[:CONFIG.yaml]]",
                   help="baselines (and methods when --methods is absent)")
    p.add_argument("--methods", nargs="+", default=None, metavar="MODEL[:LOSS[:CONFIG.yaml]]",
                   help="methods; default: runs with a loss other than ce")
    p.add_argument("--seeds", default="5", help="count (5: seeds first_seed..) or list (1,7,42)")
    p.add_argument("--first_seed", type=int, default=DEFAULT_FIRST_SEED)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default saved/compare/<dataset>)")
    p.add_argument("--results_dir", type=Path, default=None,
                   help="result JSONs <dir>/<run>/seed<S>.json to reuse (default <out>/runs)")
    p.add_argument("--no_train", action="store_true",
                   help="do not train missing results; print the commands instead")
    p.add_argument("--test", choices=[AUTO_TEST, *sorted(sig.TESTS)], default=AUTO_TEST,
                   help="auto (default): welch over seeds with 2+ seeds, else paired_t "
                        "over users; one_sample is the APAO paper's (anti-conservative)")
    p.add_argument("--alternative", choices=sig.ALTERNATIVES, default="two-sided")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--table_metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--keep_checkpoints", action="store_true")
    return p


def main(argv=None) -> Table | None:
    from recbole_genrec.cli import parse_overrides

    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    overrides = parse_overrides(rest)
    for key in ("model", "dataset", "loss", "seed", "config_files", "result_file"):
        if key in overrides:
            raise UsageError(f"--{key} is set per run by tuning.compare")
    try:
        runs = [parse_run(s) for s in args.runs]
        methods = [parse_run(s) for s in args.methods] if args.methods is not None else None
        seeds = parse_seeds(args.seeds, args.first_seed)
    except ValueError as e:
        raise UsageError(f"{e}") from None
    runs += [m for m in methods or [] if m.spec not in {r.spec for r in runs}]
    for what in ("label", "slug"):
        names = [getattr(r, what) for r in runs]
        if len(set(names)) != len(names):
            raise UsageError(f"two runs share a {what} ({', '.join(names)}): give "
                             "their config files different names")
    roles = assign_roles(runs, methods)
    out = args.out or Path("saved") / "compare" / args.dataset
    results_dir = args.results_dir or out / "runs"

    results, missing = {}, []
    for run in runs:
        results[run.label] = []
        for seed in seeds:
            try:
                result = load_or_train(run, args.dataset, seed, overrides, results_dir,
                                       train=not args.no_train,
                                       keep_checkpoints=args.keep_checkpoints)
            except KeyboardInterrupt:
                print(f"\n[compare] INTERRUPTED; finished runs are kept in {results_dir}; "
                      "continue with the same command (the interrupted run resumes from its "
                      "last epoch):\n  " + commands.shown(
                          "compare", sys.argv[1:] if argv is None else argv),
                      flush=True)
                raise
            if result is None:
                missing.append(run_command(run, args.dataset, seed, overrides,
                                           result_path(results_dir, run, seed)))
            results[run.label].append(result)
    if missing:
        print(f"{len(missing)} result(s) missing under {results_dir}; produce them with:")
        print("\n".join(commands.shown_from_checkout("run", missing)))
        raise SystemExit(2)

    try:  # results that cannot be compared (other users, no per-user ranks, no metric)
        table = build_table(results, roles, args.dataset, seeds, args.table_metrics,
                            args.test, args.alternative, args.alpha, overrides)
    except ValueError as e:
        raise ConfigError(f"{e}", results_dir) from None
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(table)
    (out / "table.md").write_text(markdown, encoding="utf-8")
    write_csv(table, out / "table.csv")
    print(markdown)
    print(f"wrote {out / 'table.md'} and {out / 'table.csv'}")
    return table


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def cli() -> None:
    """The console command's entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
