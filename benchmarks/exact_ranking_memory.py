"""Exact ranking (PR@K, ``ranking_mode: exact``): peak memory and speed against
``full_rank_batch_users``, the number of users whose trie prefixes are decoded
together.

Each chunk size runs in a fresh subprocess (so memory freed earlier in the
process cannot hide the peak): build the model (default size, random weights)
on the dataset, reset the kernel's peak-RSS counter (``/proc/self/clear_refs``),
rank ``--users`` test users in chunks (``full_sort_predict``: beam search for
the bound, then branch and bound over the trie; random weights prune little,
so this is close to decoding every prefix), and report VmHWM minus the RSS
before, and users/s.

    .venv/bin/python benchmarks/exact_ranking_memory.py --threads 1

writes ``benchmarks/results/exact_ranking_memory-<dataset>.json`` and prints a table.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from peak_rss import PeakRSS

ROOT = Path(__file__).resolve().parents[1]
MARKER = "EXACT_RANKING_RESULT "


def worker(args) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from recbole.data import data_preparation
    from recbole.data.interaction import cat_interactions
    from recbole.utils import init_seed

    from recbole_genrec.config import GenRecConfig
    from recbole_genrec.data.dataset import GenRecDataset
    from recbole_genrec.quick_start import ensure_dataset

    torch.set_num_threads(args.threads)
    chunk = args.worker
    config = GenRecConfig(args.model, args.dataset, config_dict={"loss": "ce", "full_rank_batch_users": chunk})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    dataset = GenRecDataset(config)
    _, _, test = data_preparation(config, dataset)
    model = config.model_class(config, dataset).eval()
    users = cat_interactions([batch[0] for batch in test])[torch.arange(args.users)]
    start = time.perf_counter()
    with PeakRSS() as peak, torch.no_grad():
        for i in range(0, args.users, chunk):
            model.full_sort_predict(users[torch.arange(i, min(i + chunk, args.users))])
    seconds = time.perf_counter() - start
    return {"chunk_users": chunk, "users": args.users, "peak_rss_mb": round(peak.growth_mb, 1),
            "users_per_s": round(args.users / seconds, 3), "trie_nodes": sum(model.trie.level_size)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--model", default="TIGER")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 8, 4, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(MARKER + json.dumps(worker(args)))
        return
    rows = []
    for chunk in args.chunks:
        cmd = [sys.executable, __file__, "--dataset", args.dataset, "--model", args.model,
               "--users", str(args.users), "--threads", str(args.threads), "--worker", str(chunk)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
        rows.append(json.loads(out.split(MARKER, 1)[1].splitlines()[0]))
    result = {"benchmark": "exact ranking memory and speed vs full_rank_batch_users",
              "command": "python " + " ".join(sys.argv), "dataset": args.dataset, "model": args.model,
              "threads": args.threads, "rows": rows}
    path = ROOT / "benchmarks" / "results" / f"exact_ranking_memory-{args.dataset}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"{args.model} on {args.dataset}, {args.users} users, {args.threads} thread(s)")
    print("users per chunk | peak RSS MB | users/s")
    for r in rows:
        print(f"{r['chunk_users']} | {r['peak_rss_mb']:.0f} | {r['users_per_s']:.2f}")
    print("wrote", path)


if __name__ == "__main__":
    main()
