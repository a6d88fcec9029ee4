"""LlamaGR training: per-prefix vs sequence mode on the same targets, in one process.

For each model size, both modes train one epoch (CE, the same initial weights)
over the training targets of the same users: per-prefix mode one row per target,
sequence mode one causal pass per user window
(:mod:`recbole_genrec.data.sequence_windows`).  Optimizer batches hold about
the same number of targets in both modes.  Reported: CPU seconds per epoch
(process time; robust to other load with one thread), targets/s, the ratio,
and how many targets lie beyond ``MAX_ITEM_LIST_LENGTH`` (trained on their own
sliding window in sequence mode).

    python benchmarks/sequence_training.py --dataset=Office --sizes small paper

``--users_fraction`` times a random subset of users (the same in both modes).
Writes ``benchmarks/results/sequence_training-<dataset>.json`` and prints a table.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole.data import data_preparation  # noqa: E402
from recbole.data.interaction import cat_interactions  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genrec.config import GenRecConfig  # noqa: E402
from recbole_genrec.data.dataset import GenRecDataset  # noqa: E402
from recbole_genrec.data.sequence_windows import sequence_rows  # noqa: E402
from recbole_genrec.quick_start import ensure_dataset  # noqa: E402
from recbole_genrec.registry import get_trainer  # noqa: E402

SIZES = {  # paper: APAO Appendix C; small: the converged CPU profile's LlamaGR
    "paper": dict(hidden_size=128, n_layers=8, n_heads=8, intermediate_size=1024),
    "small": dict(hidden_size=64, n_layers=2, n_heads=4, intermediate_size=256),
}
# optimizer batch / micro-batch: targets per step about equal (Office: ~4 targets per
# sequence-mode row); on a GPU each optimizer batch is one micro-batch
BATCHES = {"prefix": dict(train_batch_size=1024, micro_batch_size=128),
           "sequence": dict(train_batch_size=256, micro_batch_size=32)}
if torch.cuda.is_available():
    BATCHES = {mode: dict(b, micro_batch_size=b["train_batch_size"]) for mode, b in BATCHES.items()}


def training_batches(mode, size, args):
    config = GenRecConfig("LlamaGR", args.dataset, config_dict={
        "loss": "ce", "train_mode": mode, **SIZES[size], **BATCHES[mode], "show_progress": False,
        **({"sequence_stride": args.stride} if mode == "sequence" else {})})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    dataset = GenRecDataset(config)
    train, _, _ = data_preparation(config, dataset)
    model = config.model_class(config, train._dataset).to(config["device"])
    users = torch.unique(train._dataset.inter_feat["user_id"])
    keep = users[torch.randperm(len(users), generator=torch.Generator().manual_seed(0))
                 [: max(1, int(len(users) * args.users_fraction))]]
    batches = [b[torch.isin(b["user_id"], keep)] for b in train]
    batches = [b for b in batches if len(b)]
    return config, model, batches


def beyond_window(batches, max_len):
    """Targets ``j > MAX_ITEM_LIST_LENGTH`` among per-prefix rows (history ``W`` and not
    the user's ``W``-th target)."""
    rows = cat_interactions(batches)
    order = torch.argsort(rows["user_id"] * 10**6 + rows["item_length"], stable=True)
    _, _, beyond = sequence_rows(rows["user_id"][order], rows["item_length"][order], max_len)
    return int(beyond.sum())


def bench(size, args):
    out, weights = {"size": size, **SIZES[size]}, None
    for mode in ("prefix", "sequence"):
        config, model, batches = training_batches(mode, size, args)
        if weights is None:
            weights = model.state_dict()
        get_trainer(config.model_class)(config, model)._train_epoch(batches[:1], 0)  # warm-up
        model.load_state_dict(weights)  # the same start in both modes
        trainer = get_trainer(config.model_class)(config, model)
        targets = sum(model.n_targets(b) for b in batches)
        # tokens through the decoder stack: the history (L_sem per item) plus one block of
        # L tokens (SEP, c_1..c_{L-1}) per target, in both modes
        history = sum(int(b["item_length"].sum()) for b in batches) * model.n_semantic_levels
        tokens = history + targets * model.n_levels
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = trainer._train_epoch(batches, 0)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        row = {"rows": sum(len(b) for b in batches), "targets": targets, "tokens": tokens, "wall_s": wall,
               "cpu_s": cpu, "targets_per_cpu_s": targets / cpu, "targets_per_s": targets / wall,
               "loss": loss, **BATCHES[mode]}
        if mode == "prefix":  # per-prefix rows of targets past the first window
            row["targets_beyond_window"] = beyond_window(batches, config["MAX_ITEM_LIST_LENGTH"])
        out[mode] = row
    out["speedup_cpu"] = out["prefix"]["cpu_s"] / out["sequence"]["cpu_s"]
    out["speedup_wall"] = out["prefix"]["wall_s"] / out["sequence"]["wall_s"]
    out["token_ratio"] = out["prefix"]["tokens"] / out["sequence"]["tokens"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=list(SIZES))
    parser.add_argument("--users_fraction", type=float, default=1.0)
    parser.add_argument("--stride", type=int, default=1,
                        help="sequence_stride (1 = exact histories past the first window)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [bench(size, args) for size in args.sizes]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    report = {"command": "python benchmarks/sequence_training.py " + " ".join(sys.argv[1:]),
              "dataset": args.dataset, "device": device, "threads": args.threads,
              "users_fraction": args.users_fraction, "sequence_stride": args.stride,
              "results": results}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"sequence_training-{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{'size':6} {'mode':9} {'targets':>8} {'rows':>7} {'cpu_s':>8} {'targets/cpu-s':>14}")
    for r in results:
        for mode in ("prefix", "sequence"):
            m = r[mode]
            print(f"{r['size']:6} {mode:9} {m['targets']:8d} {m['rows']:7d} {m['cpu_s']:8.1f} "
                  f"{m['targets_per_cpu_s']:14.1f}")
        print(f"{r['size']:6} speed-up {r['speedup_cpu']:.2f}x (CPU time), "
              f"{r['speedup_wall']:.2f}x (wall), token ratio {r['token_ratio']:.2f}; "
              f"targets beyond the window: "
              f"{r['prefix']['targets_beyond_window']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
