"""Item -> semantic-ID code table, with the rule for items that share a code.

Collision rule (``sem_id_collision``): RQ-K-means can give two items the same
full code (Office: 5 pairs).  Beam search generates codes, so such items would
be indistinguishable.  With ``extra_level`` (default) one disambiguation level
is appended *only when a collision exists*: an item's extra code is its index
among the items sharing its code, in item-id order (0 for unique codes) -- the
common practice of TIGER.  ``error`` refuses such data instead.

Moving colliding items to a free code of the last level instead (RecBole 3.0,
LETTER) needs the quantizer's distances, so it happens where the codes are made:
``python -m recbole_genrec.tokenize --collision=reassign``
(:mod:`recbole_genrec.tokenizer.collisions`); its report states what each choice
costs.
"""

import numpy as np
import torch

from recbole_genrec.errors import ConfigError

COLLISION_RULES = ("extra_level", "error")


def code_table(dataset, field: str) -> torch.Tensor:
    """``[n_items, L]`` integer codes per level; row 0 (RecBole's padding item) is -1."""
    tokens = dataset.field2id_token[field]
    lookup = np.full(len(tokens), -1, dtype=np.int64)
    lookup[1:] = [int(t) for t in tokens[1:]]  # ids 1.. are the code strings
    ids = dataset.item_feat[field].numpy()  # [n_items, L] remapped token ids
    codes = torch.from_numpy(lookup[ids])
    codes[0] = -1
    return codes


def disambiguate(codes: torch.Tensor, rule: str = "extra_level") -> tuple[torch.Tensor, int]:
    """Apply the collision rule to ``codes [n_items, L]`` (row 0 = padding).

    Returns ``(codes, n_semantic_levels)``; ``codes`` gains one level when
    collisions exist and the rule is ``extra_level``.
    """
    if rule not in COLLISION_RULES:
        raise ConfigError(f"sem_id_collision={rule!r}: expected one of {COLLISION_RULES}")
    n_levels = codes.shape[1]
    real = codes[1:]
    _, inverse, counts = torch.unique(real, dim=0, return_inverse=True, return_counts=True)
    if counts.max() <= 1:
        return codes, n_levels
    if rule == "error":
        shared = int((counts > 1).sum())
        raise ConfigError(
            f"{shared} semantic IDs are shared by several items (sem_id_collision=error); set "
            "sem_id_collision=extra_level to append a disambiguation level"
        )
    # rank of each item among the items with the same code, in item-id order
    order = torch.argsort(inverse, stable=True)
    group_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(inverse)
    rank[order] = torch.arange(len(inverse)) - group_start[inverse[order]]
    extra = torch.cat([torch.tensor([-1]), rank]).unsqueeze(1)
    return torch.cat([codes, extra], dim=1), n_levels
