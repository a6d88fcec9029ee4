"""Variable-length identifiers (item titles) on the fixed-depth trie and beam search.

An item's identifier is its title's tokens followed by an end-of-item token
``end`` (BEAR §2.2: a beam is complete when it generates ``<EOS>``).  Titles
have different lengths; :func:`title_codes` pads every identifier after its
``end`` with further ``end`` tokens up to the longest one, ``L`` tokens::

    "Toy Story"    ->  Toy  _Story  <e>  <e>  <e>
    "Toy Story 2"  ->  Toy  _Story  _2   <e>  <e>

so :class:`~recbole_genrec.layers.prefix_trie.PrefixTrie`,
:func:`~recbole_genrec.layers.beam_search.beam_search` and the exact ranking
work unchanged on ``[n_items, L]`` codes: a completed hypothesis has exactly one
child, the padding ``end``, and :class:`TitleDecoding` gives it log-prob 0 (the
item is complete; its score is the summed log-probs of its real tokens, BEAR
§2.2).  A completed hypothesis therefore keeps its score and its place among
the ``B`` best while the others grow, and the search returns the top ``B``
completed items -- the procedure of §2.2 ("repeat ... until all candidates are
completed"), with no length normalisation.  Completed hypotheses are not
decoded again: each step runs the language model on the unfinished ones only,
and once every hypothesis of a chunk is complete the remaining levels cost no
model call.
"""

import torch

NEG_INF = float("-inf")


def title_codes(token_ids: list[list[int]], end: int) -> torch.Tensor:
    """``[n_items, L]`` identifiers: tokens + ``end``, padded with ``end``; ``token_ids[0]``
    (RecBole's padding item) becomes a row of -1.  ``L`` = longest title + 1."""
    if any(end in ids for ids in token_ids[1:]):
        raise ValueError(f"a title's tokens contain the end-of-item token {end}")
    width = max(len(ids) for ids in token_ids[1:]) + 1
    codes = torch.full((len(token_ids), width), end, dtype=torch.long)
    for item, ids in enumerate(token_ids[1:], start=1):
        codes[item, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    codes[0] = -1
    return codes


def identifier_mask(codes: torch.Tensor, end: int) -> torch.Tensor:
    """``codes [..., T]`` -> bool ``[..., T]``: the identifier's own tokens, its
    first ``end`` included (the padding ``end`` tokens after it are False)."""
    is_end = codes == end
    return (is_end.long().cumsum(-1) - is_end.long()) == 0


def identifier_lengths(codes: torch.Tensor, end: int) -> torch.Tensor:
    """``[...]`` tokens per identifier (title + its ``end``)."""
    return identifier_mask(codes, end).sum(-1)


class TitleDecoding:
    """The ``step(codes, parent) -> logp [U, b, V]`` API of
    :mod:`recbole_genrec.layers.beam_search` for identifiers that end at ``end``.

    ``backbone`` provides ``first_logp(ctx) -> [U, V]`` (the prompt's last
    position) and ``continue_rows(ctx, users [N], tokens [N, 1], cache, rows, t)
    -> (logp [N, V], cache)``: one more token for ``N`` hypotheses of the given
    users, ``rows`` selecting their cache rows (``None`` at the first generated
    token, whose cache is the users' prompt), ``t`` tokens generated before.
    Hypotheses that ended are dropped from the cache and get log-prob 0 for the
    padding ``end`` (and -inf for everything else)."""

    def __init__(self, backbone, ctx, end: int):
        self.backbone, self.ctx, self.end = backbone, ctx, end
        self.cache, self.row, self.generated = None, None, 0

    def step(self, codes, parent):
        if codes is None:
            return self.backbone.first_logp(self.ctx).unsqueeze(1)  # [U, 1, V]
        U, b = codes.shape
        # an ended title's only continuation is `end`; a padding slot of the beam
        # (score -inf) that hangs from an ended one has no cache row either
        finished = codes == self.end  # [U, b]
        parent_row = None if self.row is None else self.row.gather(1, parent)
        if parent_row is not None:
            finished |= parent_row < 0
        active = ~finished
        n_active = int(active.sum())
        row = torch.full((U, b), -1, dtype=torch.long, device=codes.device)
        if n_active:
            users = torch.arange(U, device=codes.device)[:, None].expand(U, b)[active]  # [N]
            rows = None if parent_row is None else parent_row[active]
            active_logp, self.cache = self.backbone.continue_rows(
                self.ctx, users, codes[active].unsqueeze(1), self.cache, rows, self.generated)
            logp = active_logp.new_full((U, b, active_logp.shape[-1]), NEG_INF)
            logp[active] = active_logp
            row[active] = torch.arange(n_active, device=codes.device)
        else:
            self.cache = None
            logp = torch.full((U, b, self.backbone.vocab_size), NEG_INF, device=codes.device)
        logp[..., self.end] = torch.where(finished, 0.0, logp[..., self.end])
        self.row = row
        self.generated += 1
        return logp
