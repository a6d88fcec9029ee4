"""Training and inference speed of the generative backbones, in one process.

For each model: training samples/s (CE, full optimizer batches split into
micro-batches as in training), beam-search users/s on test users, exact
full-ranking users/s on a subset, and a check that beam search with a beam as
large as the catalogue returns exactly the exact ranking's top-K.

    python benchmarks/generative_speed.py --dataset=Office --models TIGER LlamaGR

Writes ``benchmarks/results/generative_speed-<dataset>.json`` and prints a table.
On a machine with a CUDA GPU the models run there (RecBole's ``use_gpu``);
the JSON names the card.  Wall-clock rates need an idle machine; with ``--threads 1`` the per-CPU-second
rates (process CPU time) stay meaningful when other jobs share the cores.
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

from recbole.data import data_preparation  # noqa: E402
from recbole.data.interaction import cat_interactions  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genrec.config import GenRecConfig  # noqa: E402
from recbole_genrec.data.dataset import GenRecDataset  # noqa: E402
from recbole_genrec.quick_start import ensure_dataset  # noqa: E402
from recbole_genrec.registry import get_trainer  # noqa: E402


def timed(fn, cpu: dict, key: str):
    """Run ``fn``; return its output and wall seconds, recording process CPU seconds
    in ``cpu[key]`` (with one torch thread, CPU time is robust to other load)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # kernels are asynchronous: wait before reading the clock
    cpu[key] = time.process_time() - start_cpu
    return out, time.perf_counter() - start


def bench_model(name, args):
    config = GenRecConfig(name, args.dataset, config_dict={"loss": "ce"})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    dataset = GenRecDataset(config)
    train, _, test = data_preparation(config, dataset)
    model = config.model_class(config, train._dataset).to(config["device"])
    trainer = get_trainer(config.model_class)(config, model)
    out = {"model": name, "device": str(config["device"]), "parameters": sum(p.numel() for p in model.parameters()),
           "levels": model.n_levels, "items": model.n_items - 1,
           "trie_nodes": sum(model.trie.level_size), "trie_bytes": model.trie.memory_bytes()}

    # training: whole optimizer batches (micro-batches sorted by history length)
    batches = iter(train)
    model.train()
    trainer._run_train_epoch([next(batches)], 0)  # warm-up step
    work = [next(batches) for _ in range(args.train_batches)]
    cpu = {}
    _, seconds = timed(lambda: trainer._run_train_epoch(work, 1), cpu, "train")
    n_train = sum(len(b) for b in work)
    out["train_samples_per_s"] = n_train / seconds
    out["train_samples_per_cpu_s"] = n_train / cpu["train"]

    # inference on test users
    model.eval()
    users = cat_interactions([batch[0] for batch in test]).to(config["device"])
    beam_users = users[torch.arange(min(args.beam_users, len(users)))]
    model.beam_search(users[torch.arange(64)])  # warm-up
    _, seconds = timed(lambda: model.beam_search(beam_users), cpu, "beam")
    out["beam_users_per_s"] = len(beam_users) / seconds
    out["beam_users_per_cpu_s"] = len(beam_users) / cpu["beam"]
    exact_users = users[torch.arange(args.exact_users)]
    chunk = config["full_rank_batch_users"]
    _, seconds = timed(lambda: [model.full_sort_predict(exact_users[torch.arange(i, min(i + chunk, args.exact_users))])
                                for i in range(0, args.exact_users, chunk)], cpu, "exact")
    out["exact_chunk_users"] = chunk
    out["exact_users_per_s"] = args.exact_users / seconds
    out["exact_users_per_cpu_s"] = args.exact_users / cpu["exact"]
    out["beam_vs_exact_speedup"] = out["beam_users_per_s"] / out["exact_users_per_s"]
    out["beam_vs_exact_speedup_cpu"] = out["beam_users_per_cpu_s"] / out["exact_users_per_cpu_s"]

    # beam as wide as the catalogue == exact ranking (top-20 lists)
    check = users[torch.arange(args.check_users)]
    with torch.no_grad():
        wide = model.beam_search(check, beam_size=model.n_items - 1).items[:, :20]
        exact = model.full_sort_predict(check).topk(20, dim=1).indices
    out["wide_beam_equals_exact_top20"] = bool(torch.equal(wide, exact))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--models", nargs="+", default=["TIGER", "LlamaGR"])
    parser.add_argument("--train_batches", type=int, default=2, help="optimizer batches of 1024")
    parser.add_argument("--beam_users", type=int, default=1024)
    parser.add_argument("--exact_users", type=int, default=32)
    parser.add_argument("--check_users", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=None,
                        help="default: benchmarks/results/generative_speed-<dataset>.json")
    args = parser.parse_args()
    if args.output:
        args.output = args.output.resolve()  # before the chdir below
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]
    os.chdir(tempfile.mkdtemp())  # RecBole writes log/ into the cwd
    rows = [bench_model(name, args) for name in args.models]
    path = args.output or ROOT / "benchmarks" / "results" / f"generative_speed-{args.dataset}.json"
    result = {"dataset": args.dataset, "args": {**vars(args), "output": str(path)}, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "cpus": os.cpu_count(), "loadavg_1min_after": os.getloadavg()[0], "results": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"\n{args.dataset}, {torch.get_num_threads()} thread(s); per wall second (per CPU second)")
    print("model | train samples/s | beam users/s | exact users/s | beam/exact | wide beam == exact")
    for r in rows:
        print(f"{r['model']} | {r['train_samples_per_s']:.1f} ({r['train_samples_per_cpu_s']:.1f}) | "
              f"{r['beam_users_per_s']:.1f} ({r['beam_users_per_cpu_s']:.1f}) | "
              f"{r['exact_users_per_s']:.2f} ({r['exact_users_per_cpu_s']:.2f}) | "
              f"{r['beam_vs_exact_speedup']:.1f}x ({r['beam_vs_exact_speedup_cpu']:.1f}x) | "
              f"{r['wide_beam_equals_exact_top20']}")
    print("wrote", path)


if __name__ == "__main__":
    main()
