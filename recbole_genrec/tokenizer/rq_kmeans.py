"""Residual k-means (RQ-KMeans): level by level, cluster what the previous levels left.

Level ``l`` runs scikit-learn's :class:`~sklearn.cluster.KMeans` (k-means++,
one initialisation, ``random_state = seed + l``) on the residuals
``r_l = x - sum_{j<l} C_j[code_j]``; an item's code is its nearest centroid
and the residual passed on is ``r_l - C_l[code_l]``.  The fit uses a seeded
sample of at most ``points_per_code * codebook_size`` items (as faiss does by
default; all items when there are fewer); every item is then assigned.  With
``balanced=True`` each level's centroids are refined under a size constraint
(at most ``ceil(n / codebook_size)`` items per code,
:mod:`recbole_genrec.tokenizer.balanced_assignment`).

The k-means method is scikit-learn's (a well-kept implementation: Lloyd with
OpenMP, deterministic for a given seed); faiss-cpu would add a dependency for
the same algorithm.
"""

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from recbole_genrec.tokenizer.balanced_assignment import balanced_kmeans, squared_distances
from recbole_genrec.tokenizer.quantization import Quantization


def fit_kmeans(x: np.ndarray, n_codes: int, seed: int, max_iter: int,
               points_per_code: int) -> tuple[np.ndarray, dict]:
    """Centroids ``[n_codes, d]`` of a k-means fit on (a seeded sample of) ``x``."""
    sample = x
    limit = points_per_code * n_codes
    if len(x) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
        sample = x[rows]
    kmeans = KMeans(n_clusters=n_codes, init="k-means++", n_init=1, max_iter=max_iter,
                    random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        kmeans.fit(sample)
    info = {"fit_items": len(sample), "iterations": int(kmeans.n_iter_),
            "inertia": float(kmeans.inertia_)}
    notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    if notes:
        info["warning"] = notes[0]
    return kmeans.cluster_centers_.astype(np.float32), info


def nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Index of the nearest centroid per row (by chunks, to bound memory)."""
    labels = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        labels[start:start + chunk] = squared_distances(
            x[start:start + chunk], centroids).argmin(axis=1)
    return labels


def rq_kmeans(embeddings: np.ndarray, levels: int, codebook_size: int, seed: int,
              balanced: bool = False, balanced_iters: int = 20, max_iter: int = 300,
              points_per_code: int = 256) -> Quantization:
    residual = np.array(embeddings, dtype=np.float32)
    codes = np.empty((len(residual), levels), dtype=np.int64)
    codebooks, per_level = [], []
    for level in range(levels):
        centroids, info = fit_kmeans(residual, codebook_size, seed + level, max_iter,
                                     points_per_code)
        if balanced:
            labels, centroids = balanced_kmeans(residual, centroids, balanced_iters)
        else:
            labels = nearest(residual, centroids)
        codes[:, level] = labels
        if level < levels - 1:
            residual -= centroids[labels]
        codebooks.append(centroids)
        per_level.append(info)

    def reconstruct(table: np.ndarray) -> np.ndarray:
        return sum(book[table[:, level]] for level, book in enumerate(codebooks))

    return Quantization(codes=codes, codebooks=codebooks, last_input=residual,
                        reconstruct=reconstruct, details={"kmeans": per_level})
