"""Size-constrained assignment of items to codes (``--balanced=true``).

``capacity_assign``: every code takes at most ``capacity`` items.  In rounds,
each unassigned item proposes to its nearest code it has not been refused by;
a code keeps the nearest proposers that fit in its remaining room and refuses
the rest.  The result is a greedy capacity-constrained nearest-code
assignment, deterministic (ties go to the lower item index) and vectorised per
round; it ends in at most ``n_codes`` rounds since the codes together have room
for every item.

``balanced_kmeans`` alternates that assignment with centroid updates (the
mean of each code's items), starting from ordinary k-means centroids.
"""

import numpy as np


def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``[n, K]`` squared Euclidean distances (float64 accumulation of the norms)."""
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    d = (x * x).sum(axis=1, keepdims=True) - 2.0 * (x @ c.T) + (c * c).sum(axis=1)
    return np.maximum(d, 0.0)


def capacity_assign(distances: np.ndarray, capacity: int) -> np.ndarray:
    n, n_codes = distances.shape
    if capacity * n_codes < n:
        raise ValueError(f"capacity {capacity} x {n_codes} codes < {n} items")
    preference = np.argsort(distances, axis=1, kind="stable").astype(np.int32)
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(n_codes, capacity, dtype=np.int64)
    choice = np.zeros(n, dtype=np.int64)  # index into each item's preference list
    unassigned = np.arange(n)
    while len(unassigned):
        code = preference[unassigned, choice[unassigned]].astype(np.int64)
        dist = distances[unassigned, code]
        order = np.lexsort((unassigned, dist, code))  # by code, then distance, then item
        items, code = unassigned[order], code[order]
        rank = np.arange(len(code)) - np.searchsorted(code, code, side="left")
        accepted = rank < room[code]
        labels[items[accepted]] = code[accepted]
        room -= np.bincount(code[accepted], minlength=n_codes)
        refused = items[~accepted]
        choice[refused] += 1
        unassigned = np.sort(refused)
    return labels


def balanced_kmeans(x: np.ndarray, centroids: np.ndarray, iterations: int,
                    capacity: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refine ``centroids [K, d]`` under the size constraint; returns (labels, centroids).
    ``capacity`` defaults to ``ceil(n / K)``, the tightest that fits every item."""
    n_codes = len(centroids)
    capacity = capacity or -(-len(x) // n_codes)
    centroids = np.array(centroids, dtype=np.float32)
    labels = capacity_assign(squared_distances(x, centroids), capacity)
    for _ in range(iterations):
        sums = np.zeros_like(centroids, dtype=np.float64)
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=n_codes)
        used = counts > 0
        centroids[used] = (sums[used] / counts[used, None]).astype(np.float32)
        new_labels = capacity_assign(squared_distances(x, centroids), capacity)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return labels, centroids
