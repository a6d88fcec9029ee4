"""Do per-prefix and sequence-mode training learn alike?  Validation NDCG@10 per epoch.

Both modes train the same targets with the same histories (``sequence_stride: 1``);
they differ in how targets are grouped into batches (random samples vs whole user
windows), so their curves should agree within the spread between seeds.  Each
(mode, seed) trains a small LlamaGR on Office for ``--epochs`` epochs with a
validation after every epoch (the same schedule and optimizer in both modes, and
about the same number of targets per optimizer step).

    python benchmarks/sequence_mode_agreement.py --epochs=10 --seeds 2020 2021

Writes ``benchmarks/results/sequence_mode_agreement.json`` (per-epoch curves, the
largest gap between the modes' seed means, and the largest gap between two seeds
of one mode) and prints a table.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_genrec.quick_start import run  # noqa: E402

SMALL = dict(hidden_size=32, n_layers=1, n_heads=2, intermediate_size=64)
MODES = {"prefix": dict(train_mode="prefix", train_batch_size=512, micro_batch_size=512),
         "sequence": dict(train_mode="sequence", train_batch_size=128, micro_batch_size=128)}


def curve(mode, seed, args, folder):
    result = run("LlamaGR", args.dataset, config_dict={
        **SMALL, **MODES[mode], "loss": "ce", "seed": seed, "epochs": args.epochs,
        "eval_step": 1, "stopping_step": args.epochs, "learning_rate": 0.002,
        "pruning_rate_users": 0, "show_progress": False, "threads": 1},
        result_file=str(Path(folder) / f"{mode}-{seed}.json"), saved=False)
    return [round(v["ndcg@10"], 5) for v in result["valid_history"]], result["timings"]["fit_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sequence_mode_agreement.json"))
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    out = Path(args.out).resolve()
    os.chdir(tempfile.mkdtemp())  # RecBole writes log/ into the cwd
    curves, fit = {}, {}
    for mode in MODES:
        for seed in args.seeds:
            curves[f"{mode}/{seed}"], fit[f"{mode}/{seed}"] = curve(mode, seed, args, os.getcwd())

    def mean(mode, e):
        return sum(curves[f"{mode}/{s}"][e] for s in args.seeds) / len(args.seeds)

    epochs = range(args.epochs)
    mode_gap = [abs(mean("prefix", e) - mean("sequence", e)) for e in epochs]
    seed_gap = [max(abs(curves[f"{m}/{a}"][e] - curves[f"{m}/{b}"][e])
                    for m in MODES for a in args.seeds for b in args.seeds) for e in epochs]
    report = {"command": "python benchmarks/sequence_mode_agreement.py " + " ".join(
                  f"--{k}={v}" if not isinstance(v, list) else f"--{k} " + " ".join(map(str, v))
                  for k, v in vars(args).items() if k != "out"),
              "model": SMALL, "modes": MODES, "valid_ndcg@10": curves, "fit_s": fit,
              "mode_gap_per_epoch": mode_gap, "seed_gap_per_epoch": seed_gap,
              "max_mode_gap": max(mode_gap), "max_seed_gap": max(seed_gap)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("epoch | " + " | ".join(curves) + " | |prefix-sequence| (seed means) | max seed gap")
    for e in epochs:
        print(f"{e + 1:5d} | " + " | ".join(f"{c[e]:.4f}" for c in curves.values())
              + f" | {mode_gap[e]:.4f} | {seed_gap[e]:.4f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
