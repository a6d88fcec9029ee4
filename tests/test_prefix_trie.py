import itertools

import pytest
import torch

from recbole_genrec.data.semantic_ids import disambiguate
from recbole_genrec.layers.prefix_trie import PrefixTrie


def brute_children(codes, prefix):
    level = len(prefix)
    return sorted({tuple(c[: level + 1]) for c in codes if tuple(c[:level]) == tuple(prefix)})


@pytest.fixture
def codes():
    # row 0 = padding item; 7 items over 3 levels
    return torch.tensor([[-1, -1, -1], [0, 1, 2], [0, 1, 0], [0, 3, 1], [2, 0, 0],
                         [2, 0, 1], [2, 2, 2], [1, 1, 1]])


def test_trie_children_match_brute_force(codes):
    trie = PrefixTrie(codes)
    real = codes[1:].tolist()
    assert trie.level_size == [1, 3, 5, 7]
    assert trie.max_children == [3, 2, 2]
    # walk every node from the root and compare its children with a brute-force scan
    frontier = [((), 0)]
    for level in range(3):
        nxt = []
        for prefix, node in frontier:
            c, child, valid = trie.children_of(level, torch.tensor([node]))
            got = [prefix + (int(x),) for x, v in zip(c[0], valid[0]) if v]
            assert got == [p for p in brute_children(real, prefix)]
            nxt += [(prefix + (int(x),), int(n)) for x, n, v in zip(c[0], child[0], valid[0]) if v]
        frontier = nxt
    # the leaves map back to the items that own the codes
    for prefix, leaf in frontier:
        item = int(trie.leaf_item[leaf])
        assert codes[item].tolist() == list(prefix)
    # item_node agrees with the walk
    for item in range(1, len(codes)):
        assert int(trie.leaf_item[trie.item_node[item, 3]]) == item


def test_valid_next_mask(codes):
    trie = PrefixTrie(codes)
    mask = trie.valid_next_mask(torch.tensor([1, 6]), codebook_size=4)  # [2, 3, 4]
    assert mask[0, 0].tolist() == [True, True, True, False]   # roots: 0, 1, 2
    assert mask[0, 1].tolist() == [False, True, False, True]  # after (0,): 1, 3
    assert mask[0, 2].tolist() == [True, False, True, False]  # after (0,1): 0, 2
    assert mask[1, 1].tolist() == [True, False, True, False]  # after (2,): 0, 2
    assert mask[1, 2].tolist() == [False, False, True, False]  # after (2,2): 2


def test_trie_rejects_shared_codes():
    with pytest.raises(ValueError, match="distinct"):
        PrefixTrie(torch.tensor([[-1, -1], [0, 1], [0, 1]]))


def test_collision_rule_adds_level_only_when_needed():
    unique = torch.tensor([[-1, -1], [0, 1], [1, 1]])
    same, n_sem = disambiguate(unique)
    assert torch.equal(same, unique) and n_sem == 2
    shared = torch.tensor([[-1, -1], [0, 1], [1, 1], [0, 1], [0, 1], [1, 1]])
    out, n_sem = disambiguate(shared)
    assert n_sem == 2 and out.shape == (6, 3)
    # rank among the items sharing a code, in item-id order
    assert out[:, 2].tolist() == [-1, 0, 0, 1, 2, 1]
    assert len(torch.unique(out[1:], dim=0)) == 5
    PrefixTrie(out)  # now a valid trie
    with pytest.raises(ValueError, match="shared by several items"):
        disambiguate(shared, "error")
    with pytest.raises(ValueError, match="sem_id_collision"):
        disambiguate(shared, "drop")


def test_trie_memory_is_linear_in_items():
    # 4 levels x 256 codes, 20k random items: buffers stay O(n_items * L) integers
    g = torch.Generator().manual_seed(0)
    codes = torch.unique(torch.randint(0, 256, (20000, 4), generator=g), dim=0)
    codes = torch.cat([torch.full((1, 4), -1), codes])
    trie = PrefixTrie(codes)
    n = len(codes)
    # per node: start, count, code, parent; per item: L + 1 prefix nodes and a leaf
    assert trie.memory_bytes() <= 8 * (4 * sum(trie.level_size) + 6 * n)
    assert trie.memory_bytes() < 8 * 24 * n  # vs 256 entries per prefix for a dense table
