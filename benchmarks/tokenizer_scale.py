"""Tokenizer time and peak memory against the number of items (synthetic embeddings).

For each size and variant, in a fresh subprocess: write a synthetic dataset
(``<D>.item`` with an item id and a title column, and ``emb.npy``: 384-dim
unit vectors, a mixture of 2,000 Gaussian clusters, like sentence embeddings
of a catalogue), reset the kernel's peak-RSS counter, run the whole tokenizer
(``tokenize_dataset``: read ``.item`` and ``.npy``, quantize, quality report,
write ``.item`` and the report) and record wall time per stage and the peak
RSS growth over the process before the run (which already holds the embeddings).

    .venv/bin/python benchmarks/tokenizer_scale.py --sizes 10000 100000 1000000 \\
        --threads 2 --output benchmarks/results/tokenizer_scale.json

Variants: ``rq-kmeans`` (default settings: 3 levels x 256 codes, k-means fit on
at most 256 items per code), ``balanced`` (+ ``--balanced=true``), ``reassign``
(+ ``--collision=reassign``), ``rq-vae`` (``--rqvae_epochs=50``).

``--kmeans_libraries`` instead times one k-means fit (65,536 x 384 synthetic
points, 256 centroids: one level's fit at the default sample size) with
scikit-learn and, when importable, faiss-cpu (not a dependency of the project:
run it with a Python that has faiss, numpy and scikit-learn), each with its
default stopping rule and with 25 iterations for both, and compares the
inertia (sum of squared distances to the nearest centroid) of the results.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_rss import PeakRSS

ROOT = Path(__file__).resolve().parents[1]
MARKER = "TOKENIZER_SCALE_RESULT "
DIM, CLUSTERS = 384, 2000
VARIANTS = {
    "rq-kmeans": {},
    "balanced": {"balanced": True},
    "reassign": {"collision": "reassign"},
    "rq-vae": {"method": "rq-vae", "rqvae_epochs": 50},
}


def synthetic_embeddings(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    x = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = min(100_000, n - start)
        cluster = rng.integers(CLUSTERS, size=rows)
        x[start:start + rows] = centres[cluster] + 0.7 * rng.normal(size=(rows, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def worker(n: int, variant: str, folder: Path) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from recbole_genrec.tokenizer.settings import load_settings
    from recbole_genrec.tokenizer.tokenize_dataset import tokenize_dataset

    data = folder / "Synth"
    data.mkdir(parents=True)
    np.save(data / "emb.npy", synthetic_embeddings(n))
    with open(data / "Synth.item", "w") as f:
        f.write("item_id:token\ttitle:token_seq\n")
        f.writelines(f"{i}\titem {i}\n" for i in range(n))
    settings = load_settings({"dataset": "Synth", "data_path": str(folder),
                              "embeddings": str(data / "emb.npy"), **VARIANTS[variant]})
    start = time.perf_counter()
    with PeakRSS() as peak:
        report = tokenize_dataset(settings, log=lambda *a: None)
    quality = report["quality"]
    return {"items": n, "variant": variant, "settings": report["settings"],
            "wall_s": time.perf_counter() - start, "stages_s": quality["wall_time_s"],
            "rss_before_mb": peak.before_mb, "peak_rss_mb": peak.peak_mb,
            "peak_growth_mb": peak.growth_mb,
            "collision_rate": quality["collisions"]["collision_rate"],
            "largest_group": quality["collisions"]["largest_group"],
            "codes_used": [lv["codes_used"] for lv in quality["per_level"]],
            "unexplained_variance": quality["reconstruction"]["unexplained_variance"],
            "collision_handling": quality["collision_handling"]["summary"]}


def compare_kmeans_libraries(threads: int, n: int = 65_536, k: int = 256) -> dict:
    import numpy as np
    from sklearn.cluster import KMeans

    x = synthetic_embeddings(n)

    def inertia(centroids):
        d = (x * x).sum(1, keepdims=True) - 2 * x @ centroids.T + (centroids ** 2).sum(1)
        return float(np.maximum(d, 0).min(1).sum())

    rows = []
    for label, options in (("scikit-learn default (max_iter 300, tol 1e-4)", {}),
                           ("scikit-learn 25 iterations", {"max_iter": 25, "tol": 0.0})):
        start = time.perf_counter()
        km = KMeans(n_clusters=k, n_init=1, random_state=0, **options).fit(x)
        rows.append({"library": label, "seconds": time.perf_counter() - start,
                     "iterations": int(km.n_iter_), "inertia": inertia(km.cluster_centers_)})
    try:
        import faiss
    except ImportError:
        rows.append({"library": "faiss", "skipped": "faiss is not importable"})
    else:
        faiss.omp_set_num_threads(threads)
        for label, niter in (("faiss default (25 iterations)", 25),
                             ("faiss 100 iterations", 100)):
            start = time.perf_counter()
            km = faiss.Kmeans(DIM, k, niter=niter, seed=1, max_points_per_centroid=256)
            km.train(x)
            rows.append({"library": label, "version": faiss.__version__,
                         "seconds": time.perf_counter() - start, "iterations": niter,
                         "inertia": inertia(km.centroids)})
    return {"points": n, "dim": DIM, "centroids": k, "threads": threads, "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--variants", nargs="+", default=["rq-kmeans"], choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results"
                        / "tokenizer_scale.json")
    parser.add_argument("--kmeans_libraries", action="store_true",
                        help="time scikit-learn vs faiss k-means on one level's fit")
    parser.add_argument("--worker", nargs=2, metavar=("N", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kmeans_libraries:
        result = compare_kmeans_libraries(args.threads)
        for row in result["rows"]:
            print(row)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))
        print("wrote", args.output)
        return
    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            result = worker(int(args.worker[0]), args.worker[1], Path(tmp))
        print(MARKER + json.dumps(result))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    for variant in args.variants:
        for n in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--worker", str(n), variant],
                                 capture_output=True, text=True, env=env)
            lines = [l for l in out.stdout.splitlines() if l.startswith(MARKER)]
            if out.returncode or not lines:
                sys.exit(f"{variant} at {n} items failed:\n{out.stderr[-3000:]}")
            row = json.loads(lines[-1][len(MARKER):])
            rows.append(row)
            print(f"{variant:>10} {n:>9} items: {row['wall_s']:7.1f} s, peak RSS "
                  f"{row['peak_rss_mb']:7.0f} MB (+{row['peak_growth_mb']:.0f} over "
                  f"{row['rss_before_mb']:.0f}), collision rate {row['collision_rate']:.4f}",
                  flush=True)
    result = {"machine": f"{platform.node()} ({os.cpu_count()} cores)",
              "threads": args.threads, "embedding_dim": DIM, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print("wrote", args.output)


if __name__ == "__main__":
    main()
