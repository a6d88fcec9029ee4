"""Variable-length identifiers (titles + end-of-item) on the trie and beam search.

A stub backbone gives every (user, prefix) its own seeded random next-token
distribution and keeps, as its "cache", the prefix of each row -- so a
hypothesis decoded from the wrong cache row gets another prefix's
distribution.  Against it:

* beam search returns exactly what a plain per-beam loop of BEAR §2.2 returns
  (extend every unfinished beam by every valid next token, keep the ``B`` best,
  a beam is complete at ``<end>``), for several ``B``;
* every score equals the brute-force sum of the title's token log-probs, and
  with ``B`` at least the catalogue size the beam is the exact ranking;
* finished beams are never decoded again.
"""

import pytest
import torch

from recbole_genrec.data.item_titles import disambiguate_titles
from recbole_genrec.errors import ConfigError
from recbole_genrec.layers.beam_search import beam_search, full_ranking
from recbole_genrec.layers.prefix_trie import PrefixTrie
from recbole_genrec.layers.title_trie import (TitleDecoding, identifier_lengths, identifier_mask,
                                              title_codes)

END, VOCAB = 6, 7
# index 0 = RecBole's padding item; "1 2" is a prefix of "1 2 3" and "1 2 3 4"
TITLES = [[], [1, 2], [1, 2, 3], [1, 2, 3, 4], [1, 3], [2], [2, 5, 5, 1], [3, 1, 4],
          [3, 1, 5], [4, 4, 4, 4, 4], [5, 1], [5, 2, 2], [0, 1], [0, 2, 3, 1], [4, 1]]


class StubBackbone:
    """Seeded next-token log-probs per (user, prefix); the cache is each row's prefix."""

    vocab_size = VOCAB

    def __init__(self, temperature=1.0):
        self.temperature, self.decoded_rows = temperature, 0

    def logp(self, user: int, prefix: tuple) -> torch.Tensor:
        seed = hash((user, prefix)) % (2 ** 31)
        logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * 3
        return torch.log_softmax(logits / self.temperature, -1)

    def first_logp(self, ctx):
        return torch.stack([self.logp(u, ()) for u in range(ctx)])

    def continue_rows(self, ctx, users, tokens, kv, rows, generated):
        prefixes = [()] * len(users) if kv is None else [kv[r] for r in rows.tolist()]
        prefixes = [p + (int(t),) for p, t in zip(prefixes, tokens[:, 0])]
        assert all(len(p) == generated + 1 for p in prefixes)
        self.decoded_rows += len(users)
        return torch.stack([self.logp(int(u), p) for u, p in zip(users, prefixes)]), prefixes


def brute_force_scores(backbone, n_users) -> torch.Tensor:
    """``[U, n_items]``: summed log-probs of each title's tokens and its end."""
    scores = torch.full((n_users, len(TITLES)), float("-inf"))
    for u in range(n_users):
        for item, title in enumerate(TITLES[1:], start=1):
            tokens = title + [END]
            scores[u, item] = sum(float(backbone.logp(u, tuple(tokens[:t]))[tok])
                                  for t, tok in enumerate(tokens))
    return scores


def reference_beam(backbone, user, beam_size):
    """BEAR §2.2, one beam at a time: -> [(item, score)] best first."""
    identifiers = {tuple(t + [END]): item for item, t in enumerate(TITLES) if item}
    beams = [((), 0.0)]
    while not all(p and p[-1] == END for p, _ in beams):
        candidates = []
        for prefix, score in beams:
            if prefix and prefix[-1] == END:  # complete: kept as it is
                candidates.append((prefix, score))
                continue
            logp = backbone.logp(user, prefix)
            nexts = sorted({ident[len(prefix)] for ident in identifiers
                            if ident[:len(prefix)] == prefix})
            candidates += [(prefix + (tok,), score + float(logp[tok])) for tok in nexts]
        beams = sorted(candidates, key=lambda c: -c[1])[:beam_size]
    return [(identifiers[p], s) for p, s in beams]


def test_title_codes_pad_with_the_end_token():
    codes = title_codes(TITLES, END)
    assert codes.shape == (len(TITLES), 6)  # longest title 5 + end
    assert codes[0].tolist() == [-1] * 6
    assert codes[1].tolist() == [1, 2, END, END, END, END]
    assert identifier_lengths(codes[1:], END).tolist() == [len(t) + 1 for t in TITLES[1:]]
    assert identifier_mask(codes[1], END).tolist() == [True] * 3 + [False] * 3
    with pytest.raises(ValueError, match="end-of-item"):
        title_codes([[], [1, END]], END)


@pytest.mark.parametrize("beam_size", [1, 3, 5, 20])
def test_beam_search_over_titles_equals_the_per_beam_reference(beam_size):
    n_users = 4
    backbone = StubBackbone()
    trie = PrefixTrie(title_codes(TITLES, END))
    result = beam_search(TitleDecoding(backbone, n_users, END), trie, beam_size)
    exact = brute_force_scores(backbone, n_users)
    for u in range(n_users):
        expected = reference_beam(backbone, u, beam_size)
        n = len(expected)
        assert result.items[u, :n].tolist() == [item for item, _ in expected]
        assert torch.allclose(result.scores[u, :n], torch.tensor([s for _, s in expected]),
                              atol=1e-5)
        assert (result.items[u, n:] == 0).all()
        # beam scores are the brute-force scores of the items returned
        assert torch.allclose(result.scores[u, :n], exact[u, result.items[u, :n]], atol=1e-5)


def test_a_beam_as_wide_as_the_catalogue_is_the_exact_ranking():
    n_users = 3
    backbone = StubBackbone(temperature=3.0)
    trie = PrefixTrie(title_codes(TITLES, END))
    exact = brute_force_scores(backbone, n_users)
    result = beam_search(TitleDecoding(backbone, n_users, END), trie, len(TITLES))
    expected = exact[:, 1:].argsort(1, descending=True) + 1
    assert torch.equal(result.items[:, : len(TITLES) - 1], expected)
    ranking = full_ranking(TitleDecoding(backbone, n_users, END), trie)
    assert torch.allclose(ranking[:, 1:], exact[:, 1:], atol=1e-5)


def test_finished_beams_are_not_decoded_again():
    backbone = StubBackbone()
    trie = PrefixTrie(title_codes(TITLES, END))
    beam_search(TitleDecoding(backbone, 1, END), trie, 3)
    # each decoded row is one unfinished hypothesis of one step; the 6 levels
    # would cost up to 5 steps x 3 beams if finished ones were decoded too
    reference_calls = StubBackbone()
    beams, decoded = [((), 0.0)], 0
    identifiers = [tuple(t + [END]) for t in TITLES[1:]]
    for _ in range(trie.n_levels - 1):
        nexts = []
        for prefix, score in beams:
            if prefix and prefix[-1] == END:
                nexts.append((prefix, score))
                continue
            logp = reference_calls.logp(0, prefix)
            toks = sorted({i[len(prefix)] for i in identifiers if i[:len(prefix)] == prefix})
            nexts += [(prefix + (t,), score + float(logp[t])) for t in toks]
        beams = sorted(nexts, key=lambda c: -c[1])[:3]
        decoded += sum(1 for p, _ in beams if p[-1] != END)
    assert backbone.decoded_rows == decoded


def test_identical_titles_are_refused_or_get_a_suffix():
    titles = ["", "Desk Lamp", "Pen", "Desk Lamp", "Desk Lamp (2)", "Desk Lamp"]
    with pytest.raises(ConfigError, match="'Desk Lamp'.*title_collision=suffix"):
        disambiguate_titles(titles, "error")
    fixed = disambiguate_titles(titles, "suffix")
    assert fixed[:3] == titles[:3]
    assert len(set(fixed[1:])) == 5
    assert fixed[3] == "Desk Lamp (2) (2)"  # "Desk Lamp (2)" is item 4's own title
    assert fixed[5] == "Desk Lamp (3)"
    assert disambiguate_titles(["", "a", "b"], "error") == ["", "a", "b"]
