"""Trie and beam-search cost against catalogue size (synthetic semantic IDs).

For each size, in a fresh subprocess: draw a synthetic catalogue of unique
4-level codes over 256 codes per level (:func:`synthetic_catalogue`: Zipf-like
usage of the codes of the first three levels, uniform last level), build the
prefix trie (wall time, MB of its tensors, peak-RSS growth), then run
trie-constrained beam search (B = 20) with TIGER at the paper's size (random
weights, Office's test users and their histories) over that catalogue:
users/s and the peak-RSS growth of the search.  Beam search cost should not
depend on the catalogue (a trie step gathers at most 256 children per beam),
and trie memory should grow linearly.

    .venv/bin/python benchmarks/catalog_scale.py --threads 1 --users 256

writes ``benchmarks/results/catalog_scale.json`` and prints a table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from peak_rss import PeakRSS

ROOT = Path(__file__).resolve().parents[1]
MARKER = "CATALOG_SCALE_RESULT "
LEVELS, CODEBOOK = 4, 256


def synthetic_catalogue(n_items: int, seed: int = 0, zipf_exponent: float = 1.0):
    """``[n_items + 1, 4]`` codes (row 0 = -1, the padding item): distinct code
    tuples, each of the first three codes drawn with probability ~ 1 / rank**s
    (so a few first-level codes hold most items, as in trained quantisers),
    the last uniformly; item ids in random order."""
    import torch

    g = torch.Generator().manual_seed(seed)
    zipf = torch.arange(1, CODEBOOK + 1, dtype=torch.float64) ** -zipf_exponent
    codes = torch.empty(0, LEVELS, dtype=torch.long)
    while len(codes) < n_items:  # draw with some spare, drop repeats, until enough
        draw = int(1.3 * n_items)
        columns = [torch.multinomial(zipf, draw, replacement=True, generator=g) for _ in range(LEVELS - 1)]
        columns.append(torch.randint(0, CODEBOOK, (draw,), generator=g))
        codes = torch.unique(torch.cat([codes, torch.stack(columns, 1)]), dim=0)
    codes = codes[torch.randperm(len(codes), generator=g)[:n_items]]
    return torch.cat([torch.full((1, LEVELS), -1), codes])


def paper_tiger_on_office(seed_users: int):
    """TIGER (properties/model/TIGER.yaml, random weights) built on Office, and
    ``seed_users`` of Office's test users (their histories feed the encoder)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from recbole.data import data_preparation
    from recbole.data.interaction import cat_interactions
    from recbole.utils import init_seed

    from recbole_genrec.config import GenRecConfig
    from recbole_genrec.data.dataset import GenRecDataset
    from recbole_genrec.quick_start import ensure_dataset

    config = GenRecConfig("TIGER", "Office", config_dict={"loss": "ce"})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    dataset = GenRecDataset(config)
    _, _, test = data_preparation(config, dataset)
    model = config.model_class(config, dataset).eval()
    model.logit_bias.zero_()  # every code of every level may occur in a synthetic catalogue
    users = cat_interactions([batch[0] for batch in test])
    return model, users[torch.arange(min(seed_users, len(users)))]


def worker(args, n_items: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from recbole_genrec.layers.prefix_trie import PrefixTrie

    torch.set_num_threads(args.threads)
    model, users = paper_tiger_on_office(args.users)
    codes = synthetic_catalogue(n_items)
    with PeakRSS() as trie_peak:
        start = time.perf_counter()
        trie = PrefixTrie(codes)
        build_s = time.perf_counter() - start
    model.trie = trie  # beam search walks this catalogue instead of Office's
    with torch.no_grad():
        model.beam_search(users[torch.arange(min(16, len(users)))], beam_size=args.beam)  # warm-up
        with PeakRSS() as beam_peak:
            start, start_cpu = time.perf_counter(), time.process_time()
            model.beam_search(users, beam_size=args.beam)
            beam_s, beam_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    return {"items": n_items, "trie_nodes": trie.level_size, "max_children": trie.max_children,
            "trie_build_s": round(build_s, 3), "trie_mb": round(trie.memory_bytes() / 2**20, 2),
            "trie_build_peak_rss_growth_mb": round(trie_peak.growth_mb, 1),
            "users": len(users), "beam_size": args.beam,
            "beam_users_per_s": round(len(users) / beam_s, 2),
            "beam_users_per_cpu_s": round(len(users) / beam_cpu_s, 2),
            "beam_peak_rss_growth_mb": round(beam_peak.growth_mb, 1),
            "process_peak_rss_mb": round(beam_peak.peak_mb, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=256, help="Office test users decoded per size")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "catalog_scale.json")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(MARKER + json.dumps(worker(args, args.worker)))
        return
    rows = []
    for n_items in args.sizes:
        cmd = [sys.executable, __file__, "--users", str(args.users), "--beam", str(args.beam),
               "--threads", str(args.threads), "--worker", str(n_items)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
        rows.append(json.loads(out.split(MARKER, 1)[1].splitlines()[0]))
        print(rows[-1])
    result = {"benchmark": "prefix trie and beam search vs catalogue size (synthetic 4 x 256 codes, "
                           "TIGER paper size, random weights, Office users)",
              "command": "python " + " ".join(sys.argv), "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "loadavg_1min_after": os.getloadavg()[0], "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"\nTIGER beam search (B = {args.beam}), {args.users} users, {args.threads} thread(s)")
    print("items | trie build s | trie MB | beam users/s (per CPU s) | beam peak RSS growth MB | process peak RSS MB")
    for r in rows:
        print(f"{r['items']:,} | {r['trie_build_s']:.3f} | {r['trie_mb']:.1f} | {r['beam_users_per_s']:.1f} "
              f"({r['beam_users_per_cpu_s']:.1f}) | {r['beam_peak_rss_growth_mb']:.0f} | {r['process_peak_rss_mb']:.0f}")
    print("wrote", args.output)


if __name__ == "__main__":
    main()
