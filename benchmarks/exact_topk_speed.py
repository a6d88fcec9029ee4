"""Exact top-K by branch and bound vs expanding every trie node: users/s.

For each dataset: TIGER at the paper's size (properties/model/TIGER.yaml),
measured with random weights and again after a short training (``--train_s``
CPU-seconds of CE, AdamW, batch 256, lr 2e-3: enough to make the model peaked
like a trained one, far from converged).  Per setting: full ranking
(:func:`~recbole_genrec.layers.beam_search.full_ranking`, every node decoded,
one user at a time as ``full_rank_batch_users: 1``) on ``--full_users`` test
users; the exact search (``full_sort_predict``: beam search for the bound,
then :func:`~recbole_genrec.layers.exact_topk.bounded_search`, one user at a
time) on ``--users`` users (``--full_users`` with random weights), the
prefixes it decodes per user; and whether both give the same top-20 items.  ``--synthetic N`` adds a
catalogue of N synthetic items (``catalog_scale.synthetic_catalogue``) walked
by the model trained on the first dataset (its histories, another trie).

    .venv/bin/python benchmarks/exact_topk_speed.py --threads 1

writes ``benchmarks/results/exact_topk_speed.json`` and prints a table.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog_scale import synthetic_catalogue  # noqa: E402
from recbole.data import data_preparation  # noqa: E402
from recbole.data.interaction import cat_interactions  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genrec.config import GenRecConfig  # noqa: E402
from recbole_genrec.data.dataset import GenRecDataset  # noqa: E402
from recbole_genrec.layers.beam_search import full_ranking  # noqa: E402
from recbole_genrec.layers.prefix_trie import PrefixTrie  # noqa: E402
from recbole_genrec.quick_start import ensure_dataset  # noqa: E402

TOP = 20


def paper_tiger(dataset: str):
    """-> (model with random weights, train data, test users as one Interaction)."""
    config = GenRecConfig("TIGER", dataset, config_dict={"loss": "ce", "train_batch_size": 256})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    data = GenRecDataset(config)
    train, _, test = data_preparation(config, data)
    model = config.model_class(config, train._dataset)
    return model, train, cat_interactions([batch[0] for batch in test])


def short_training(model, train, cpu_seconds: float) -> int:
    """CE steps until ``cpu_seconds`` of process time are spent; -> samples seen."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    seen, start = 0, time.process_time()
    while time.process_time() - start < cpu_seconds:
        for batch in train:
            optimizer.zero_grad()
            model.calculate_loss(batch).backward()
            optimizer.step()
            seen += len(batch)
            if time.process_time() - start >= cpu_seconds:
                break
    model.eval()
    return seen


def timed(fn):
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - start_cpu


@torch.no_grad()
def compare(model, users, n_full: int, n_exact: int) -> dict:
    """Full ranking on the first ``n_full`` users, exact search on ``n_exact``
    (and its decoded prefixes counted on the first ``n_full``)."""
    def every_node(part):
        return full_ranking(model.decoding(model.encode(part)), model.trie)

    full_users = users[torch.arange(n_full)]
    full, full_s, full_cpu = timed(lambda: torch.cat([every_node(full_users[torch.arange(i, i + 1)])
                                                      for i in range(n_full)]))
    exact_users = users[torch.arange(n_exact)]
    exact, exact_s, exact_cpu = timed(lambda: model.full_sort_predict(exact_users))
    decoded = bounded_prefixes(model, full_users)
    full_top, exact_top = full.topk(TOP, dim=1), exact[:n_full].topk(TOP, dim=1)
    internal = sum(model.trie.level_size[:-1])
    return {"full_users": n_full, "full_users_per_s": round(n_full / full_s, 3),
            "full_users_per_cpu_s": round(n_full / full_cpu, 3),
            "exact_users": n_exact, "exact_users_per_s": round(n_exact / exact_s, 3),
            "exact_users_per_cpu_s": round(n_exact / exact_cpu, 3),
            "speedup": round(n_exact / exact_s / (n_full / full_s), 1),
            "speedup_cpu": round(n_exact / exact_cpu / (n_full / full_cpu), 1),
            "prefixes_decoded_full": internal,
            "prefixes_decoded_exact_mean": round(decoded.float().mean().item(), 1),
            "prefixes_decoded_exact_max": int(decoded.max()),
            f"same_top{TOP}_items": bool(torch.equal(full_top.indices, exact_top.indices)),
            f"top{TOP}_max_score_diff": float((full_top.values - exact_top.values).abs().max())}


def bounded_prefixes(model, users) -> torch.Tensor:
    """``[U]`` prefixes the exact search decodes per user (outside the timing)."""
    from recbole_genrec.layers.exact_topk import bounded_search

    k = model.exact_top_k
    threshold = model.beam_search(users, max(k, model.beam_size)).scores[:, k - 1]
    return torch.cat([bounded_search(model.decoding(model.encode(users[torch.arange(i, i + 1)])),
                                     model.trie, threshold[i:i + 1]).decoded for i in range(len(users))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["Office", "Beauty"])
    parser.add_argument("--synthetic", type=int, default=100_000, help="0: none")
    parser.add_argument("--train_s", type=float, default=120, help="CPU-seconds of training per dataset")
    parser.add_argument("--users", type=int, default=64, help="test users for the exact search (trained)")
    parser.add_argument("--full_users", type=int, default=8, help="test users for full ranking")
    parser.add_argument("--synthetic_full_users", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "exact_topk_speed.json")
    args = parser.parse_args()
    args.output = args.output.resolve()  # before the chdir below
    torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]
    os.chdir(tempfile.mkdtemp())  # RecBole writes log/ into the cwd
    rows = []
    for i, dataset in enumerate(args.datasets):
        model, train, users = paper_tiger(dataset)
        model.eval()
        base = {"catalogue": dataset, "items": model.n_items - 1}
        # random weights: the bound prunes little, the exact search costs about full ranking
        rows.append({**base, "weights": "random", **compare(model, users, args.full_users, args.full_users)})
        print(rows[-1])
        seen = short_training(model, train, args.train_s)
        rows.append({**base, "weights": f"trained {args.train_s:.0f} CPU-s ({seen} samples)",
                     **compare(model, users, args.full_users, args.users)})
        print(rows[-1])
        if i == 0 and args.synthetic:
            model.trie = PrefixTrie(synthetic_catalogue(args.synthetic))
            model.logit_bias.zero_()  # every code may occur in the synthetic catalogue
            rows.append({"catalogue": f"synthetic (histories: {dataset})", "items": args.synthetic,
                         "weights": rows[-1]["weights"] + f" on {dataset}",
                         **compare(model, users, args.synthetic_full_users, args.users)})
            print(rows[-1])
    result = {"benchmark": "exact top-K (branch and bound) vs full ranking, TIGER paper size",
              "command": "python benchmarks/exact_topk_speed.py " + " ".join(
                  f"--{k} " + (" ".join(map(str, v)) if isinstance(v, list) else str(v))
                  for k, v in vars(args).items() if k != "output"),
              "threads": args.threads, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "loadavg_1min_after": os.getloadavg()[0], "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"\nTIGER (paper size), {args.threads} thread(s); users/s per wall second (per CPU second)")
    print(f"catalogue | items | weights | full users/s | exact users/s | speedup | prefixes decoded "
          f"full / exact mean | same top-{TOP}")
    for r in rows:
        print(f"{r['catalogue']} | {r['items']:,} | {r['weights']} | {r['full_users_per_s']:.2f} "
              f"({r['full_users_per_cpu_s']:.2f}) | {r['exact_users_per_s']:.2f} ({r['exact_users_per_cpu_s']:.2f}) | "
              f"{r['speedup']}x ({r['speedup_cpu']}x) | {r['prefixes_decoded_full']:,} / "
              f"{r['prefixes_decoded_exact_mean']:,.0f} | {r[f'same_top{TOP}_items']}")
    print("wrote", args.output)


if __name__ == "__main__":
    main()
