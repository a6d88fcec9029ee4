"""Catalogue scale (issue 13): the prefix trie grows linearly with the catalogue and a
beam-search step's work does not grow with it.  Structural checks on synthetic
catalogues of 10^4 and 10^5 items (benchmarks/catalog_scale.py measures the time)."""

import sys
from pathlib import Path

import pytest
import torch

from recbole_genrec.layers import beam_search as beam_search_module
from recbole_genrec.layers.beam_search import beam_search
from recbole_genrec.layers.prefix_trie import PrefixTrie

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from catalog_scale import CODEBOOK, LEVELS, synthetic_catalogue  # noqa: E402

SIZES = (10_000, 100_000)


class RandomDecoding:
    """The decoding API with random next-code log-probs; records how many
    hypotheses each step decodes (a backbone's cost is proportional to it)."""

    def __init__(self, n_users, seed=0):
        self.n_users, self.widths = n_users, []
        self.generator = torch.Generator().manual_seed(seed)

    def step(self, codes, parent):
        width = 1 if codes is None else codes.shape[1]
        self.widths.append(width)
        return torch.randn(self.n_users, width, CODEBOOK, generator=self.generator).log_softmax(-1)


@pytest.fixture(scope="module")
def tries():
    return {n: PrefixTrie(synthetic_catalogue(n)) for n in SIZES}


def test_trie_memory_grows_linearly(tries):
    per_item = {n: trie.memory_bytes() / n for n, trie in tries.items()}
    assert per_item[SIZES[1]] < 1.3 * per_item[SIZES[0]], per_item
    assert all(b < 8 * 24 for b in per_item.values())  # O(L) integers per item, no dense table


def test_beam_step_work_does_not_grow_with_the_catalogue(tries, monkeypatch):
    """The same hypotheses decoded per step, and candidate sets of at most B x 256,
    whether the catalogue has 10^4 or 10^5 items."""
    beam, users = 20, 8
    widths = {}
    real_expand = beam_search_module.expand
    for n, trie in tries.items():
        seen = []

        def recording_expand(*args):
            out = real_expand(*args)
            seen.append(out[0].shape[1])
            return out

        monkeypatch.setattr(beam_search_module, "expand", recording_expand)
        decoding = RandomDecoding(users)
        result = beam_search(decoding, trie, beam)
        assert (result.items > 0).all() and result.items.shape == (users, beam)
        widths[n] = decoding.widths
        assert len(seen) == LEVELS and max(seen) <= beam * CODEBOOK
    assert widths[SIZES[0]] == widths[SIZES[1]] == [1] + [beam] * (LEVELS - 1)
