"""What a run prints about itself: the model in a few lines, and a one-screen
summary at the end.

* :func:`model_summary` -- parameters per top-level block and in total (the
  full module tree is logged only with ``verbose: true``);
* :func:`run_summary` -- from a result dict of :func:`recbole_genrec.quick_start.run`:
  best epoch, valid/test Recall and NDCG at 5/10/20, prefix-level recall, PR@K,
  times, where the result JSON / checkpoint / TensorBoard run are, the command
  that re-evaluates the checkpoint, and all test metrics on one ``key=value``
  line (for grep and scripts);
* :func:`reevaluate_command` -- that command, from the run's own arguments.
"""

import sys
from pathlib import Path

from recbole_genrec import commands
from recbole_genrec.progress import format_duration
from recbole_genrec.run_files import eval_result_file

TABLE_METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)]
# options the evaluate-only command sets itself (or that only shape training)
NOT_REPEATED = {"epochs", "init_from", "result_file", "train_time_budget", "resume_from"}


def model_summary(model) -> str:
    """``TIGER: 5,123,456 parameters (all trainable)`` and one line per block."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    which = "all trainable" if trainable == total else f"{trainable:,} trainable"
    lines = [f"{type(model).__name__}: {total:,} parameters ({which})"]
    blocks = [(f"  {name} ({type(child).__name__})", sum(p.numel() for p in child.parameters()))
              for name, child in model.named_children()]
    blocks += [(f"  {name} (Parameter)", p.numel())
               for name, p in model.named_parameters(recurse=False)]
    blocks = [(label, n) for label, n in blocks if n]
    width = max((len(label) for label, _ in blocks), default=0)
    lines += [f"{label:<{width}}{n:>12,}" for label, n in blocks]
    loss = getattr(model, "loss", None)
    if hasattr(loss, "extra_repr"):
        lines.append(f"  loss: {type(loss).__name__}({loss.extra_repr()})")
    return "\n".join(lines)


def reevaluate_command(argv: list[str], result: dict) -> str | None:
    """The entry-point command that evaluates this run's checkpoint again
    (``--epochs=0 --init_from=CKPT``, a result JSON of its own); ``None`` when the
    run kept no checkpoint or its model cannot start from one (RecBole's models)."""
    if not result.get("checkpoint") or not result.get("loss"):
        return None
    kept = [a for a in argv
            if a.split("=", 1)[0].lstrip("-") not in NOT_REPEATED | {"model", "dataset"}]
    return commands.shown("run", [
        f"--model={result['model']}", f"--dataset={result['dataset']}", *kept,
        "--epochs=0", f"--init_from={result['checkpoint']}", f"--result_file={eval_result_file(result['result_file'])}"])


def run_summary(result: dict, reevaluate: str | None = None) -> str:
    """The end-of-run summary (about 20 lines)."""
    title = f"{result['model']} on {result['dataset']}" + (
        f" (loss={result['loss']})" if result["loss"] else "")
    timings = result["timings"]
    lines = [f"\n== {title} " + "=" * max(0, 70 - len(title)), _best_epoch_line(result)]
    lines += _metrics_table({"valid": result["valid"], "test": result["test"]})
    lines += _prefix_recall_lines(result["diagnostics"].get("prefix_recall"))
    lines += _pruning_rate_lines(result["diagnostics"].get("pruning_rate"))
    train_s = sum(timings["epoch_train_s"])
    lines.append(
        f"time: training {format_duration(train_s)} ({timings['epochs_run']} epochs), "
        f"validation {format_duration(timings.get('valid_s', timings['fit_s'] - train_s))}, test "
        f"{format_duration(timings['test_s'])}; total {format_duration(timings['total_s'])} "
        f"on {result['device']}, {result['torch_threads']} torch thread(s)")
    lines.append(f"result JSON: {result['result_file']}")
    if result.get("checkpoint"):
        lines.append(f"checkpoint:  {result['checkpoint']}")
    if result.get("tensorboard"):
        lines.append(f"TensorBoard: {_tensorboard()} --logdir {result['tensorboard']}")
    if reevaluate:
        lines.append(f"re-evaluate: {reevaluate}")
    lines.append("test: " + "  ".join(f"{k}={_number(v)}" for k, v in result["test"].items()))
    return "\n".join(lines)


def _best_epoch_line(result: dict) -> str:
    timings, best = result["timings"], result.get("best_epoch")
    stopped = {"epochs": "all epochs run", "early_stopping": "early stopping",
               "time_budget": "train_time_budget reached"}.get(timings["stop_reason"], "?")
    metric, score = result["config"].get("valid_metric", "").lower(), result["best_valid_score"]
    score = "" if score is None else f", valid {metric} {score:.4f}"
    if not timings["epochs_run"]:
        return "evaluation only (no training)"
    where = "no validation" if best is None else f"best epoch {best}"
    return f"{where} ({timings['epochs_run']} epochs run, {stopped}){score}"


def _metrics_table(rows: dict) -> list[str]:
    columns = [m for m in TABLE_METRICS if any(m in r for r in rows.values())]
    if not columns:
        return []
    lines = ["         " + "".join(f"{c:>11}" for c in columns)]
    for name, metrics in rows.items():
        if metrics:
            cells = "".join(f"{_number(metrics.get(c)):>11}" for c in columns)
            lines.append(f"  {name:<7}{cells}")
    return lines


def _prefix_recall_lines(prefix_recall: dict | None) -> list[str]:
    """Prefix-level recall of the test pass: one row per K, one column per level."""
    if not prefix_recall:
        return []
    n_levels = len(next(iter(prefix_recall.values())))
    lines = ["prefix recall" + "".join(f"{f'level {m}':>10}" for m in range(1, n_levels + 1))]
    lines += [f"  {k:<11}" + "".join(f"{_number(v):>10}" for v in levels)
              for k, levels in prefix_recall.items()]
    return lines


def _pruning_rate_lines(pruning_rate: dict | None) -> list[str]:
    """PR@K: the share of exact top-K targets that beam search loses."""
    if not pruning_rate:
        return []
    cells = [f"{k} {_number(v)} (of {pruning_rate[f'targets{k}']})"
             for k, v in pruning_rate.items() if k.startswith("@")]
    return [f"PR@K ({pruning_rate['users']} sampled users): " + ", ".join(cells)]


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _tensorboard() -> str:
    """The ``tensorboard`` command of this interpreter's environment (``.venv/bin/``)."""
    beside = Path(sys.executable).parent / "tensorboard"
    return commands.as_typed(beside) if beside.is_file() else "tensorboard"


