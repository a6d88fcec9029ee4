"""Collision handling at tokenize time: ``--collision=reassign``.

Items that share a full code are indistinguishable to beam search.  The
dataset's default (``sem_id_collision=extra_level``,
:mod:`recbole_genrec.data.semantic_ids`) appends a disambiguation level at
load time; that costs one more decoding step for every item and a level of
tokens that carry no meaning.  ``reassign`` (as RecBole 3.0 and LETTER do)
instead moves all but one item of each group to the nearest *free* code of the
last level under the same prefix: the item nearest to the shared code keeps
it, the others -- nearest first -- take their next-nearest last-level code
that no item holds yet.  The cost is a larger quantization error for the moved
items.  A prefix with more items than the codebook has codes cannot be freed
entirely; those items keep a shared code (and get the extra level).
"""

import numpy as np

from recbole_genrec.tokenizer.balanced_assignment import squared_distances


def _group_ids(table: np.ndarray) -> np.ndarray:
    """Dense id per row of ``table [n, k]`` (equal rows, equal ids); 0 for every row
    when ``k == 0``."""
    if table.shape[1] == 0:
        return np.zeros(len(table), dtype=np.int64)
    return np.unique(table, axis=0, return_inverse=True)[1].reshape(-1)


def _sharing(codes: np.ndarray) -> int:
    """Number of items whose full code another item has too."""
    full = _group_ids(codes)
    return int((np.bincount(full)[full] > 1).sum())


def reassign_last_level(codes: np.ndarray, last_input: np.ndarray,
                        last_codebook: np.ndarray) -> tuple[np.ndarray, dict]:
    """Returns (new codes, facts: items moved, items left sharing, mean extra distance)."""
    codes = np.array(codes, dtype=np.int64)
    prefix, full = _group_ids(codes[:, :-1]), _group_ids(codes)
    counts = np.bincount(full)
    colliding = np.flatnonzero(counts[full] > 1)
    facts = {"items_moved": 0, "items_left_sharing": 0, "mean_extra_sq_distance": 0.0}
    if len(colliding) == 0:
        return codes, facts
    n_codes = len(last_codebook)
    taken = {}  # prefix id -> set of last-level codes in use
    for p, c in zip(prefix.tolist(), codes[:, -1].tolist()):
        taken.setdefault(p, set()).add(c)
    dist = squared_distances(last_input[colliding], last_codebook)  # [m, K]
    own = dist[np.arange(len(colliding)), codes[colliding, -1]]
    # per group: the nearest item keeps the code; the movers go nearest-first
    order = np.lexsort((colliding, own, full[colliding]))
    group = full[colliding][order]
    keeps = np.ones(len(order), dtype=bool)
    keeps[1:] = group[1:] != group[:-1]
    movers = order[~keeps]
    movers = movers[np.lexsort((colliding[movers], own[movers]))]
    extra, moved = [], 0
    for row in movers.tolist():
        item = colliding[row]
        used = taken[prefix[item]]
        if len(used) >= n_codes:
            continue  # every last-level code of this prefix is taken
        for code in np.argsort(dist[row], kind="stable").tolist():
            if code not in used:
                used.add(code)
                codes[item, -1] = code
                extra.append(float(dist[row, code] - own[row]))
                moved += 1
                break
    facts.update(items_moved=moved, items_left_sharing=_sharing(codes),
                 mean_extra_sq_distance=float(np.mean(extra)) if extra else 0.0)
    return codes, facts
