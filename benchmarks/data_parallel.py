"""Data-parallel training on CPU: ``--nproc=2`` vs one process (issue 13).

Runs the real entry point once per process count (``--procs 1 2``), each process
with ``--threads`` torch threads, for ``--epochs`` epochs of TIGER (paper size,
``--loss``) on ``--dataset``; validation is off (``eval_step=0``) and PR@K too,
so the timings are the training pass and one test pass.  From each result JSON
it takes the training samples/s (the epoch's training samples over its
training seconds), the per-step training loss of the first epoch (averaged over
the ranks) and the test metrics.  The global batch is the same in both runs
(``train_batch_size`` is split over the ranks by RecBole's sampler), so the loss
curves should agree within noise -- the batches' composition differs, not
their size.

    .venv/bin/python benchmarks/data_parallel.py --dataset Office --epochs 1

writes ``benchmarks/results/data_parallel-<dataset>.json`` (and the step-loss curves as
``.png`` beside it) and prints a table.
``--smoke`` runs the tiny dataset of the tests (for checking the script).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results"


def run_once(procs: int, args, workdir: Path) -> dict:
    result_file = workdir / f"nproc{procs}.json"
    command = [sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"), "--model=TIGER",
               f"--dataset={args.dataset}", f"--loss={args.loss}", f"--epochs={args.epochs}",
               "--eval_step=0", "--pruning_rate_users=0", "--show_progress=false",
               f"--threads={args.threads}", f"--seed={args.seed}", f"--result_file={result_file}",
               *args.extra]
    if procs > 1:
        command.append(f"--nproc={procs}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nproc={procs} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(result_file.read_text())
    epochs = result["loss_state"]["per_epoch"]
    train_s = result["timings"]["epoch_train_s"]
    samples = args.train_samples
    return {
        "procs": procs,
        "threads_per_proc": args.threads,
        "epoch_train_s": train_s,
        "train_samples_per_s": samples / mean(train_s) if samples else None,
        "epoch_loss": [e["loss"] for e in epochs],
        "step_loss_epoch0": epochs[0]["step_loss"],
        "test": {k: result["test"][k] for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")},
        "test_s": result["timings"]["test_s"],
        "distributed": result.get("distributed"),
        "command": " ".join(command[1:]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="Office")
    p.add_argument("--loss", default="ce")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--train_samples", type=int, default=None,
                   help="training samples per epoch (Office: 38,543); default: counted")
    p.add_argument("--smoke", action="store_true", help="the tests' tiny dataset and model")
    p.add_argument("--output", type=Path, default=None)
    args, args.extra = p.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.smoke:
            sys.path[:0] = [str(PROJECT_ROOT / "tests"), str(PROJECT_ROOT)]
            from conftest import make_dataset, tiny_sequences_and_codes

            sequences, codes = tiny_sequences_and_codes()
            make_dataset(workdir / "data", "Tiny", sequences, codes)
            args.dataset = "Tiny"
            args.extra += [f"--data_path={workdir / 'data'}",
                           f"--config_files={PROJECT_ROOT / 'tuning/examples/tiger_tiny.yaml'}",
                           "--train_batch_size=64", "--micro_batch_size=16"]
        if args.train_samples is None:
            args.train_samples = count_training_samples(args, workdir)
        runs = [run_once(n, args, workdir) for n in args.procs]
    base = runs[0]
    for run in runs:
        run["speedup_vs_first"] = run["train_samples_per_s"] / base["train_samples_per_s"]
        run["mean_abs_step_loss_diff_vs_first"] = mean(
            abs(a - b) for a, b in zip(run["step_loss_epoch0"], base["step_loss_epoch0"]))
    report = {"dataset": args.dataset, "loss": args.loss, "epochs": args.epochs,
              "train_samples_per_epoch": args.train_samples, "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "runs": runs}
    out = args.output or RESULTS / f"data_parallel-{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    plot_step_loss(report, out.with_suffix(".png"))
    print(f"{'procs':>5} {'threads':>7} {'train s/epoch':>13} {'samples/s':>9} {'speedup':>7} "
          f"{'epoch loss':>10} {'|dloss| per step':>16} {'test ndcg@10':>12}")
    for r in runs:
        print(f"{r['procs']:>5} {r['threads_per_proc']:>7} {mean(r['epoch_train_s']):>13.1f} "
              f"{r['train_samples_per_s']:>9.1f} {r['speedup_vs_first']:>7.2f} "
              f"{r['epoch_loss'][0]:>10.4f} {r['mean_abs_step_loss_diff_vs_first']:>16.4f} "
              f"{r['test']['ndcg@10']:>12.4f}")
    print(f"wrote {out}")
    return report


def plot_step_loss(report: dict, path: Path) -> None:
    """The first epoch's training loss per optimizer step, one line per process count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for run in report["runs"]:
        ax.plot(range(1, len(run["step_loss_epoch0"]) + 1), run["step_loss_epoch0"],
                label=f"{run['procs']} process(es) x {run['threads_per_proc']} thread(s)")
    ax.set(xlabel="optimizer step (epoch 1)", ylabel="training loss",
           title=f"TIGER + {report['loss']} on {report['dataset']}: data-parallel vs one process")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def count_training_samples(args, workdir: Path) -> int:
    """Training samples per epoch: every position but the last two of each sequence
    (leave-one-out), as RecBole's split makes them."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from recbole_genrec.config import GenRecConfig\n"
            "from recbole_genrec.data.dataset import GenRecDataset\n"
            "from recbole.data import data_preparation\n"
            "from recbole_genrec.cli import parse_overrides\n"
            "c = GenRecConfig('TIGER', %r, cmd_overrides=parse_overrides(%r))\n"
            "print(len(data_preparation(c, GenRecDataset(c))[0].dataset))\n"
            % (str(PROJECT_ROOT), args.dataset, [a for a in args.extra if a.startswith("--data_path")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
