"""Paper-style figures of a reproduction report: a PNG per figure plus the CSV it is drawn from.

Every function writes ``<name>.png`` (matplotlib, Agg, 150 dpi) and ``<name>.csv`` (same
numbers) into ``out_dir`` and returns both paths.  ``runs`` is a list of ``(label, result)``
pairs, ``result`` a run's result JSON (``recbole_genrec.quick_start.run``), label e.g.
``"TIGER:apao"``; runs sharing a label are seeds of one method, and a label keeps its colour
in every figure (colours follow the labels' first appearance in ``runs``).

* ``training_curves`` -- a validation metric per epoch, one line per run (seed).
* ``prefix_recall`` (APAO Fig. 5) -- Prefix Recall@K per prefix length m: how often the
  target's m-token prefix is among the beam's prefixes at level m; mean +- std over seeds,
  generative runs only.
* ``pruning_rate`` (BEAR Fig. 6) -- PR@K: the fraction of the targets that the exact
  ranking puts in the top K and beam search loses; grouped bars, mean +- std over seeds
  (a seed's ``None`` -- no target in the exact top K -- is left out).
* ``beam_sweep`` (APAO Fig. 4) -- Recall@10 / NDCG@10 and users/s against the beam size
  (one checkpoint evaluated with several beam sizes).
* ``sensitivity`` (APAO Fig. 3) -- the mean and the best search objective per value of each
  searched parameter, from ``tuning.search``'s ``trials.csv``.

:func:`write_all` draws every figure whose inputs exist and says why it skipped the others.
Std is the sample std over seeds (ddof 1), empty in the CSV with a single seed.
"""

import csv
import logging
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

logger = logging.getLogger(__name__)

DPI = 150
METRIC_NAMES = {"ndcg": "NDCG", "recall": "Recall", "mrr": "MRR", "hit": "Hit",
                "precision": "Precision"}


class NoData(ValueError):
    """The inputs hold nothing this figure can draw (the message says why)."""


# ----------------------------------------------------------------------------- helpers

def _pretty(metric: str) -> str:
    """``"ndcg@10"`` -> ``"NDCG@10"``."""
    name, _, k = metric.partition("@")
    return METRIC_NAMES.get(name.lower(), name) + (f"@{k}" if k else "")


def _palette(runs) -> dict:
    """Label -> colour, in the order labels first appear (the same in every figure)."""
    colors = colormaps["tab10"].colors
    labels = list(dict.fromkeys(label for label, _ in runs))
    return {label: colors[i % len(colors)] for i, label in enumerate(labels)}


def _stats(values) -> tuple:
    """(mean, std, n) of the values; std is None with fewer than two."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return None, None, 0
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return float(values.mean()), std, len(values)


def _cell(x):
    """A CSV cell: floats rounded to 6 decimals, None empty."""
    if x is None:
        return ""
    return round(x, 6) if isinstance(x, float) else x


def _save(fig: Figure, rows: list, header: list, out_dir, name: str) -> list:
    """Write ``<name>.png`` and ``<name>.csv`` (header + rows) into out_dir; their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    fig.savefig(png, dpi=DPI)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([_cell(x) for x in row] for row in rows)
    return [png, csv_path]


def _diagnostic(runs, key: str) -> list:
    """(label, value) of the runs whose ``result['diagnostics']`` has ``key``."""
    found = [(label, (result.get("diagnostics") or {}).get(key)) for label, result in runs]
    return [(label, value) for label, value in found if value is not None]


def _legend(ax) -> None:
    """One entry per method label, right of the axes (never over the data)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _log_x(ax, values) -> None:
    """Log x axis with the values themselves as ticks."""
    ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()


# ----------------------------------------------------------------------------- figures

def training_curves(runs, out_dir, metric="ndcg@10") -> list:
    """Validation ``metric`` per epoch, one line per run; CSV label,seed,epoch,<metric>."""
    colors = _palette(runs)
    fig = Figure(figsize=(7, 4), layout="tight")
    ax = fig.add_subplot()
    rows, in_legend = [], set()
    for label, result in runs:
        seed = result["config"]["seed"]
        points = [(h["epoch"], h[metric]) for h in result.get("valid_history") or []
                  if metric in h]
        if not points:
            logger.info("training_curves: %s (seed %s) has no %s history, skipped",
                        label, seed, metric)
            continue
        rows += [(label, seed, epoch, value) for epoch, value in points]
        epochs, values = zip(*points)
        ax.plot(epochs, values, color=colors[label], marker="o", markersize=3, alpha=0.85,
                label=None if label in in_legend else label)
        in_legend.add(label)
    if not rows:
        raise NoData(f"no run has a validation history of {metric}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=f"validation {_pretty(metric)}",
           title=f"Validation {_pretty(metric)} during training (one line per seed)")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, rows, ["label", "seed", "epoch", metric], out_dir, "training_curves")


def prefix_recall(runs, out_dir, k=10) -> list:
    """Prefix Recall@k per prefix length, mean +- std over seeds (APAO Fig. 5);
    CSV label,level,mean,std,n_seeds."""
    colors = _palette(runs)
    per_level = {}  # label -> level -> values over seeds
    for label, by_k in _diagnostic(runs, "prefix_recall"):
        for level, value in enumerate(by_k.get(f"@{k}") or [], start=1):
            per_level.setdefault(label, {}).setdefault(level, []).append(value)
    if not per_level:
        raise NoData(f"no run has prefix recall @{k} (generative models only)")
    fig = Figure(figsize=(7, 4), layout="tight")
    ax = fig.add_subplot()
    rows = []
    for label, levels in per_level.items():
        ms = sorted(levels)
        means, stds, ns = zip(*(_stats(levels[m]) for m in ms))
        rows += zip([label] * len(ms), ms, means, stds, ns)
        yerr = [s or 0.0 for s in stds]
        ax.errorbar(ms, means, yerr=yerr if any(yerr) else None, capsize=3, marker="o",
                    color=colors[label], label=label)
    ax.set_xticks(sorted({r[1] for r in rows}))
    ax.set(xlabel="prefix length m", ylabel=f"Prefix Recall@{k}", ylim=(0, 1.05),
           title=f"Prefix Recall@{k} per level of the semantic ID")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, rows, ["label", "level", "mean", "std", "n_seeds"], out_dir,
                 "prefix_recall")


def pruning_rate(runs, out_dir) -> list:
    """PR@K grouped bars per label, mean +- std over seeds ignoring None (BEAR Fig. 6);
    CSV label,k,mean,std,n_seeds,targets (targets summed over seeds)."""
    colors = _palette(runs)
    diag = _diagnostic(runs, "pruning_rate")
    if not diag:
        raise NoData("no run has a pruning rate (generative models, beam search only)")
    ks = sorted({int(key[1:]) for _, pr in diag for key in pr if key.startswith("@")})
    labels = list(dict.fromkeys(label for label, _ in diag))
    fig = Figure(figsize=(7, 4), layout="tight")
    ax = fig.add_subplot()
    width = 0.8 / len(labels)
    rows = []
    for i, label in enumerate(labels):
        mine = [pr for lab, pr in diag if lab == label]
        pos = np.arange(len(ks)) + (i - (len(labels) - 1) / 2) * width
        cells = []
        for k in ks:
            mean, std, n = _stats([pr[f"@{k}"] for pr in mine if pr.get(f"@{k}") is not None])
            cells.append((mean, std))
            targets = sum(pr.get(f"targets@{k}") or 0 for pr in mine)
            rows.append((label, k, mean, std, n, targets))
        ax.bar(pos, [m or 0.0 for m, _ in cells], width, color=colors[label], label=label)
        for x, (mean, std) in zip(pos, cells):
            if mean is None:  # no target in the exact top K in any seed
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color=colors[label])
            elif std is not None:
                ax.errorbar(x, mean, yerr=std, ecolor="black", capsize=3)
    ax.set_xticks(range(len(ks)), [f"K={k}" for k in ks])
    ax.set(ylabel="pruning rate PR@K",
           title="Targets in the exact top K that beam search loses")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return _save(fig, rows, ["label", "k", "mean", "std", "n_seeds", "targets"], out_dir,
                 "pruning_rate")


def beam_sweep(sweep, out_dir) -> list:
    """Recall@10 / NDCG@10 and users/s against the beam size (APAO Fig. 4);
    CSV label,beam_size,recall@10,ndcg@10,users_per_s."""
    rows = sorted(sweep["rows"], key=lambda r: r["beam_size"])
    if not rows:
        raise NoData("the beam-size sweep has no rows")
    sizes = [r["beam_size"] for r in rows]
    fig = Figure(figsize=(9, 3.6), layout="tight")
    quality, speed = fig.subplots(1, 2)
    for metric, marker in (("recall@10", "o"), ("ndcg@10", "s")):
        quality.plot(sizes, [r[metric] for r in rows], marker=marker, label=_pretty(metric))
    quality.set(ylabel="test metric", title="Accuracy")
    quality.legend()
    speed.plot(sizes, [r["users_per_s"] for r in rows], marker="o", color="tab:gray")
    speed.set(ylabel="users / s", title="Inference throughput")
    for ax in (quality, speed):
        _log_x(ax, sizes)
        ax.set_xlabel("beam size")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{sweep['label']}: beam size sweep on {sweep['device']}")
    header = ["label", "beam_size", "recall@10", "ndcg@10", "users_per_s"]
    return _save(fig, [(sweep["label"], *(r[h] for h in header[1:])) for r in rows], header,
                 out_dir, "beam_sweep")


def sensitivity(trials_csv, out_dir, params=("apao_beta", "apao_eta"),
                objective="objective") -> list:
    """Mean and max objective per value of each searched parameter (APAO Fig. 3);
    CSV param,value,mean_objective,max_objective,n_trials.  Trials with a non-finite or
    empty objective (failed) are left out."""
    with open(trials_csv, newline="", encoding="utf-8") as f:
        trials = list(csv.DictReader(f))
    scored = []
    for t in trials:
        try:
            score = float(t.get(objective) or "nan")
        except ValueError:
            continue
        if math.isfinite(score):
            scored.append((t, score))
    drawn = [p for p in params if any(t.get(p) for t, _ in scored)]  # a column with values
    if not drawn:
        raise NoData(f"{trials_csv}: no scored trial has a value of {', '.join(params)}")
    ylabel = ("best validation score" if objective == "objective"
              else _pretty(objective.removeprefix("valid_")))
    fig = Figure(figsize=(4.5 * len(drawn), 3.6), layout="tight")
    axes = np.atleast_1d(fig.subplots(1, len(drawn)))
    rows = []
    for ax, param in zip(axes, drawn):
        by_value = {}
        for t, score in scored:
            if t.get(param):
                by_value.setdefault(t[param], []).append(score)
        try:  # numeric values: numeric order and axis; otherwise categories in file order
            keys = sorted(by_value, key=float)
            xs, numeric = [float(v) for v in keys], True
        except ValueError:
            keys = list(by_value)
            xs, numeric = list(range(len(keys))), False
        means = [float(np.mean(by_value[v])) for v in keys]
        maxes = [max(by_value[v]) for v in keys]
        rows += [(param, v, mean, best, len(by_value[v]))
                 for v, mean, best in zip(keys, means, maxes)]
        ax.plot(xs, means, marker="o", label="mean over trials")
        ax.plot(xs, maxes, marker="^", linestyle="--", label="best trial")
        if numeric and min(xs) > 0 and max(xs) / min(xs) > 10:
            _log_x(ax, xs)
        else:
            ax.set_xticks(xs, keys)
        ax.set(xlabel=param, ylabel=ylabel, title=f"Sensitivity to {param}")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, rows, ["param", "value", "mean_objective", "max_objective", "n_trials"],
                 out_dir, "sensitivity")


def write_all(runs, out_dir, sweep=None, trials_csv=None) -> tuple:
    """Draw every figure whose inputs exist.

    Returns ``(written, skipped)``: figure name -> PNG path, figure name -> why it was not
    drawn (also logged)."""
    figures = {
        "training_curves": lambda: training_curves(runs, out_dir),
        "prefix_recall": lambda: prefix_recall(runs, out_dir),
        "pruning_rate": lambda: pruning_rate(runs, out_dir),
        "beam_sweep": lambda: beam_sweep(sweep, out_dir),
        "sensitivity": lambda: sensitivity(trials_csv, out_dir),
    }
    missing = {"beam_sweep": None if sweep else "no beam-size sweep given",
               "sensitivity": ("no trials.csv given" if trials_csv is None else
                               None if Path(trials_csv).is_file() else
                               f"{trials_csv} does not exist")}
    written, skipped = {}, {}
    for name, draw in figures.items():
        try:
            if missing.get(name):
                raise NoData(missing[name])
            written[name] = draw()[0]
        except NoData as e:
            skipped[name] = str(e)
            logger.warning("figure %s skipped: %s", name, e)
    return written, skipped
