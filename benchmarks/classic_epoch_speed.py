"""Seconds per training epoch of RecBole's SASRec and BERT4Rec on Office:
this project's entry point vs plain RecBole 1.2.1 (issue 2, item 8).

* ``recbole_genrec``: ``recbole_genrec.quick_start.run`` (GenRecConfig,
  GenRecDataset, SequentialTrainer; importing ``recbole_genrec`` switches off the
  anomaly detection that RecBole's ``sine.py`` switches on at import).
* ``recbole``: the steps of ``recbole.quick_start.run_recbole`` with RecBole's
  own Config, ``create_dataset``, ``get_model`` and Trainer.  Only the numpy-2
  aliases that RecBole's ``Config.compatibility_settings`` needs are added (it
  cannot start without them); anomaly detection stays as RecBole's import
  leaves it (on).  Two steps differ from ``run_recbole``: ``get_flops`` is
  skipped (it runs the model once in training mode, which shifts the random
  streams and so the losses, not the epoch time), and ``saved=False`` (RecBole's
  checkpoint reload calls ``torch.load`` without ``weights_only=False`` and
  fails on torch >= 2.6).

Both load the same files (``properties/overall.yaml``,
``properties/dataset/Office.yaml``, ``dataset/Office``) with RecBole's default
model hyperparameters and the same seed, so their training losses and metrics
must be identical.  Each configuration runs in its own process (anomaly mode is
process-global) in a scratch working directory, for ``--epochs`` (default 1)
training epochs.  The timed span is RecBole's ``Trainer._train_epoch`` (one
pass over the training data), wrapped identically in both processes.

    .venv/bin/python benchmarks/classic_epoch_speed.py --threads 1 --repeats 2

writes ``benchmarks/results/classic_epoch_speed.json`` and prints a table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from time import perf_counter, process_time

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULT_FILE = PROJECT_ROOT / "benchmarks" / "results" / "classic_epoch_speed.json"
PATHS = ("recbole_genrec", "recbole")
MARKER = "BENCHMARK_RESULT "


# -- worker (one model, one path, one process) ----------------------------------------

def _instrument_train_epoch(record):
    """Time RecBole's ``Trainer._train_epoch`` and keep its loss (same wrapper on both paths)."""
    import torch
    from recbole.trainer import Trainer

    original = Trainer._train_epoch

    def timed(self, train_data, epoch_idx, *args, **kwargs):
        anomaly = torch.is_anomaly_enabled()
        start, cpu_start = perf_counter(), process_time()
        loss = original(self, train_data, epoch_idx, *args, **kwargs)
        record["epoch_s"].append(perf_counter() - start)
        record["epoch_cpu_s"].append(process_time() - cpu_start)
        record["train_loss"].append(float(sum(loss) if isinstance(loss, tuple) else loss))
        record["anomaly_detection"].append(anomaly)
        return loss

    Trainer._train_epoch = timed


def worker(path: str, model: str, dataset: str, epochs: int, overrides: dict,
           threads: int | None) -> dict:
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv
    if threads:
        import torch

        torch.set_num_threads(threads)
    start = perf_counter()
    load_before = os.getloadavg()[0]
    record = {"epoch_s": [], "epoch_cpu_s": [], "train_loss": [], "anomaly_detection": []}
    config_dict = {"epochs": epochs, **overrides}
    if path == "recbole_genrec":
        from recbole_genrec.quick_start import run  # imports recbole_genrec.compat first

        _instrument_train_epoch(record)
        result = run(model, dataset, config_dict=config_dict, saved=False,
                     result_file=Path.cwd() / "result.json")
        valid, test = result["valid"], result["test"]
        record["own_timer_epoch_s"] = result["timings"]["epoch_train_s"]
    else:
        import numpy as np

        # numpy 2 removed these; RecBole's Config.compatibility_settings reads them
        np.float_, np.complex_, np.unicode_ = np.float64, np.complex128, np.str_
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_logger, init_seed

        _instrument_train_epoch(record)
        properties = PROJECT_ROOT / "properties"
        files = [properties / "overall.yaml", properties / "dataset" / f"{dataset}.yaml"]
        # recbole.quick_start.run_recbole, step by step, without get_flops (it runs the
        # model once in training mode and so shifts the random streams) and with
        # saved=False (its checkpoint reload fails on torch >= 2.6)
        config = Config(model=model, dataset=dataset,
                        config_file_list=[str(f) for f in files if f.is_file()],
                        config_dict={"data_path": str(PROJECT_ROOT / "dataset"), **config_dict})
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        data = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, data)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        _, valid = trainer.fit(train_data, valid_data, saved=False,
                               show_progress=config["show_progress"])
        test = trainer.evaluate(test_data, load_best_model=False,
                                show_progress=config["show_progress"])
        valid, test = dict(valid), dict(test)
    import torch

    record.update({
        "path": path, "model": model, "dataset": dataset,
        "valid": valid, "test": test,
        "torch_threads": torch.get_num_threads(),
        "process_s": perf_counter() - start,
        # 1-minute load average when the process started / ended: other work on the
        # machine (and torch threads > free cores) inflates the epoch times
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    })
    return record


# -- driver ------------------------------------------------------------------------

def machine_info() -> dict:
    import numpy
    import pandas
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version
        recbole_version = version("recbole")
    except Exception:  # pragma: no cover
        recbole_version = None
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
        "recbole": recbole_version,
    }


def run_worker(path, model, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", path, "--models", model,
           "--dataset", args.dataset, "--epochs", str(args.epochs)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    for override in args.override:
        cmd += ["--override", override]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    with tempfile.TemporaryDirectory(prefix="epoch_speed_") as cwd:  # log/, saved/ go here
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"worker {path} {model} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(MARKER):])


def parse_overrides(items):
    import yaml

    return {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["SASRec", "BERT4Rec"])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config option for both paths (e.g. hidden_size=8)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="processes per model and path (alternating order); medians")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in both processes (default: torch's default)")
    parser.add_argument("--output", type=Path, default=RESULT_FILE)
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        record = worker(args.worker, args.models[0], args.dataset, args.epochs,
                        parse_overrides(args.override), args.threads)
        print(MARKER + json.dumps(record))
        return

    runs, summary = [], {}
    for model in args.models:
        by_path = {path: [] for path in PATHS}
        for rep in range(args.repeats):
            # ABBA order, so that drifting load on the machine hits both paths alike
            for path in (PATHS if rep % 2 == 0 else PATHS[::-1]):
                print(f"{model} via {path} (run {rep + 1}/{args.repeats}) ...", flush=True)
                record = run_worker(path, model, args)
                record["repeat"] = rep
                by_path[path].append(record)
                runs.append(record)

        def per_epoch(path, key="epoch_s"):
            return median(s for r in by_path[path] for s in r[key])

        ours_s, plain_s = per_epoch("recbole_genrec"), per_epoch("recbole")
        ours_cpu, plain_cpu = per_epoch("recbole_genrec", "epoch_cpu_s"), per_epoch("recbole", "epoch_cpu_s")
        losses = {path: [r["train_loss"] for r in by_path[path]] for path in PATHS}
        tests = {path: [r["test"] for r in by_path[path]] for path in PATHS}
        summary[model] = {
            "recbole_genrec_s_per_epoch": round(ours_s, 2),
            "recbole_s_per_epoch": round(plain_s, 2),
            "recbole_over_recbole_genrec": round(plain_s / ours_s, 2),
            "recbole_genrec_cpu_s_per_epoch": round(ours_cpu, 2),
            "recbole_cpu_s_per_epoch": round(plain_cpu, 2),
            "cpu_ratio": round(plain_cpu / ours_cpu, 2),
            "anomaly_detection": {p: sorted({a for r in by_path[p] for a in r["anomaly_detection"]})
                                  for p in PATHS},
            "train_loss": losses["recbole_genrec"][0],
            "train_loss_identical": all(x == losses["recbole_genrec"][0]
                                        for p in PATHS for x in losses[p]),
            "test_identical": all(x == tests["recbole_genrec"][0] for p in PATHS for x in tests[p]),
            "test_ndcg@10": tests["recbole_genrec"][0]["ndcg@10"],
        }

    command = "python benchmarks/classic_epoch_speed.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:]) else "")
    output = {
        "benchmark": "seconds per training epoch, this project's entry point vs plain RecBole",
        "command": command,
        "dataset": args.dataset, "epochs": args.epochs, "repeats": args.repeats,
        "overrides": parse_overrides(args.override),
        "torch_threads": sorted({r["torch_threads"] for r in runs}),
        "loadavg_1min": {f"{r['model']}/{r['path']}": r["loadavg_1min"] for r in runs},
        "machine": machine_info(),
        "summary": summary,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=1) + "\n")

    print(f"\n{args.dataset}, {args.epochs} epoch(s) x {args.repeats} process(es) per cell, "
          f"torch threads {output['torch_threads']}, {output['machine']['cpu_count']} CPUs; "
          "median seconds per training epoch (wall / CPU)")
    print(f"{'model':10} {'recbole_genrec':>16} {'plain RecBole':>16} {'ratio':>12}  "
          "identical losses/test metrics")
    for model, s in summary.items():
        print(f"{model:10} {s['recbole_genrec_s_per_epoch']:>7.1f} / {s['recbole_genrec_cpu_s_per_epoch']:>6.1f}"
              f" {s['recbole_s_per_epoch']:>7.1f} / {s['recbole_cpu_s_per_epoch']:>6.1f}"
              f" {s['recbole_over_recbole_genrec']:>5.2f} / {s['cpu_ratio']:>4.2f}"
              f"  {s['train_loss_identical']}/{s['test_identical']}")
    print("wrote", args.output)


if __name__ == "__main__":
    main()
