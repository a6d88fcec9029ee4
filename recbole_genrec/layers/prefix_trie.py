"""Prefix trie over the items' code tuples, in compressed sparse row form.

Nodes of level ``l`` (``l = 0`` is the root, ``l = L`` the leaves) are the
distinct code prefixes of length ``l``, numbered in lexicographic order, so the
children of a node are contiguous and sorted by code.  Per level we keep

* ``child_start[l][n]`` / ``child_count[l][n]``: the children of node ``n``
  of level ``l`` are nodes ``child_start .. child_start + child_count - 1`` of
  level ``l + 1``;
* ``node_code[l + 1][c]`` / ``node_parent[l + 1][c]``: the code that leads to
  node ``c`` and the node it hangs from;
* ``item_node[:, l]``: each item's prefix node at level ``l``;
* ``leaf_item[c]``: the item of leaf ``c`` (codes are unique per item).

Memory is ``O(n_items * L)`` integers (about 3 ints per node plus the item
table): for 10**6 items and 4 levels roughly 100 MB of int64 -- never a dense
``[n_prefixes, codebook]`` table.  Decoding asks for the children of a set of
nodes, padded to the level's largest fan-out (256 at the root, a handful
below), which is what constrained beam search needs.
"""

import torch
from torch import nn


class PrefixTrie(nn.Module):
    def __init__(self, codes: torch.Tensor):
        """``codes [n_items, L]``: integer code per level; rows with code -1 (the
        padding item 0) are not part of the catalogue.

        One lexicographic sort of the items, then a linear pass per level: a
        row of the sorted table starts a new prefix of length ``l`` where its
        first ``l`` codes differ from the row above (no per-item Python work).
        """
        super().__init__()
        n_items, n_levels = codes.shape
        real = (codes >= 0).all(1)
        order = lexicographic_order(codes[real])
        item_ids = torch.arange(n_items, device=codes.device)[real][order]  # [n_real], sorted by code
        sorted_codes = codes[real][order]  # [n_real, L]
        differs = torch.ones_like(sorted_codes, dtype=torch.bool)
        differs[1:] = sorted_codes[1:] != sorted_codes[:-1]
        starts_prefix = differs.cumsum(1) > 0  # [n_real, L]: row starts a new prefix of length l + 1
        if not starts_prefix[:, -1].all():
            raise ValueError("PrefixTrie needs one distinct code tuple per item")
        self.n_levels = n_levels
        self.n_items = n_items
        item_node = torch.zeros(n_items, n_levels + 1, dtype=torch.long, device=codes.device)
        item_node[~real] = -1
        parents = torch.zeros(len(item_ids), dtype=torch.long, device=codes.device)  # root
        self.level_size = [1]
        self.max_children = []
        for level in range(1, n_levels + 1):
            first = starts_prefix[:, level - 1]  # [n_real] first row of each node
            node = torch.cumsum(first, 0) - 1  # [n_real] each row's node at this level
            item_node[item_ids, level] = node
            node_parent = parents[first]  # [n_nodes]
            count = torch.bincount(node_parent, minlength=self.level_size[-1])
            start = torch.cumsum(count, 0) - count
            self.register_buffer(f"child_start_{level - 1}", start, persistent=False)
            self.register_buffer(f"child_count_{level - 1}", count, persistent=False)
            self.register_buffer(f"node_code_{level}", sorted_codes[first, level - 1], persistent=False)
            self.register_buffer(f"node_parent_{level}", node_parent, persistent=False)
            self.level_size.append(len(node_parent))
            self.max_children.append(int(count.max()) if len(count) else 0)
            parents = node
        leaf_item = torch.zeros(self.level_size[-1], dtype=torch.long, device=codes.device)
        leaf_item[item_node[item_ids, n_levels]] = item_ids
        self.register_buffer("leaf_item", leaf_item, persistent=False)
        self.register_buffer("item_node", item_node, persistent=False)

    def children_of(self, level: int, nodes: torch.Tensor):
        """Children of ``nodes`` (ids at ``level``, any shape ``S``).

        Returns ``codes [*S, D]``, ``child [*S, D]`` (node ids at ``level + 1``)
        and ``valid [*S, D]``, with ``D`` the largest fan-out at this level;
        padded slots have ``valid`` False and code/child 0.
        """
        start = getattr(self, f"child_start_{level}")[nodes]
        count = getattr(self, f"child_count_{level}")[nodes]
        offset = torch.arange(self.max_children[level], device=nodes.device)
        valid = offset < count.unsqueeze(-1)
        child = torch.where(valid, start.unsqueeze(-1) + offset, 0)
        codes = getattr(self, f"node_code_{level + 1}")[child]
        return torch.where(valid, codes, 0), child, valid

    def level_nodes(self, level: int):
        """All nodes of ``level`` (>= 1): their codes and parents, each ``[n_nodes]``."""
        return getattr(self, f"node_code_{level}"), getattr(self, f"node_parent_{level}")

    def valid_next_mask(self, items: torch.Tensor, codebook_size: int,
                        n_levels: int | None = None) -> torch.Tensor:
        """``[B, L, K]`` bool: the codes that continue each item's prefix at each level
        (the first ``n_levels`` levels when given)."""
        masks = []
        for level in range(self.n_levels if n_levels is None else n_levels):
            codes, _, valid = self.children_of(level, self.item_node[items, level])
            codes = torch.where(valid, codes, codebook_size)  # padding -> spare column
            mask = torch.zeros(*items.shape, codebook_size + 1, dtype=torch.bool, device=items.device)
            masks.append(mask.scatter_(-1, codes, True)[..., :codebook_size])
        return torch.stack(masks, dim=-2)

    def memory_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())


def lexicographic_order(codes: torch.Tensor) -> torch.Tensor:
    """Row order ``[n]`` that sorts ``codes [n, L]`` lexicographically: stable
    sorts by the last column first (least significant digit radix order)."""
    order = torch.arange(len(codes), device=codes.device)
    for level in reversed(range(codes.shape[1])):
        order = order[torch.sort(codes[order, level], stable=True).indices]
    return order
