"""What every generative backbone shares: semantic-ID codes, the prefix trie,
token log-probs of given codes, the loss hook, beam search and exact ranking.

A backbone (``TIGER``, ``LlamaGR``) implements four methods:

* ``encode(interaction) -> ctx``: process the history once per user;
* ``decode(ctx, codes [U, C, T]) -> hidden [U, C, T, d]``: teacher-forced hidden
  states predicting ``codes[..., t]`` from ``codes[..., :t]``;
* ``decoder_step(ctx, tokens [U, b, 1] | None, caches) -> (hidden [U, b, d], caches)``:
  one incremental step with a KV cache (``None`` tokens: the first step);
* ``output_weight() -> [L, K, d]``: the per-level output embeddings.

Vocabulary: token 0 is padding, 1 is BOS/separator, and code ``c`` of level
``l`` is token ``2 + l*K + c`` -- each level has its own token range.  The
next-token softmax at level ``l`` covers that level's ``K`` codes (tokens of
other levels can never follow, so they are not candidates).
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_genrec.data.semantic_ids import code_table, disambiguate
from recbole_genrec.data.sequence_windows import TRAINED_TARGETS, window_targets
from recbole_genrec.layers.beam_search import BeamResult, beam_search
from recbole_genrec.layers.exact_topk import bounded_search, item_score_table
from recbole_genrec.layers.prefix_trie import PrefixTrie
from recbole_genrec.losses import build_loss
from recbole_genrec.losses.base import TrainBatch

PAD, BOS, N_SPECIAL = 0, 1, 2


class GenerativeRecommender(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        codes, self.n_semantic_levels = disambiguate(
            code_table(dataset, config["sem_id_field"]), config["sem_id_collision"])
        self.n_levels = codes.shape[1]
        self.codebook_size = int(codes.max()) + 1
        self.register_buffer("codes", codes, persistent=False)  # [n_items, L], row 0 = -1
        self.trie = PrefixTrie(codes)
        level_size = codes[1:].max(0).values + 1  # codes actually used per level
        code_mask = torch.arange(self.codebook_size)[None, :] >= level_size[:, None]
        self.register_buffer("logit_bias", torch.zeros(code_mask.shape).masked_fill(
            code_mask, float("-inf")), persistent=False)  # [L, K]
        self.n_tokens = N_SPECIAL + self.n_levels * self.codebook_size
        self.beam_size = config["beam_size"]
        self.eval_chunk_users = config["eval_chunk_users"]
        self.exact_top_k = max(config["topk"])  # the exact ranking is exact down to this rank
        self.full_rank_batch_users = config["full_rank_batch_users"]
        self.train_mode = config["train_mode"] or "prefix"  # sequence: LlamaGR only (config)
        self.loss = build_loss(config, self)

    # backbone hooks ------------------------------------------------------------------
    def encode(self, interaction):
        raise NotImplementedError

    def decode(self, ctx, codes):
        raise NotImplementedError

    def decoder_step(self, ctx, tokens, caches):
        raise NotImplementedError

    def decoding(self, ctx) -> "IncrementalDecoding":
        return IncrementalDecoding(self, ctx)

    def output_weight(self):
        raise NotImplementedError

    # tokens --------------------------------------------------------------------------
    def code_tokens(self, codes: torch.Tensor, first_level: int = 0) -> torch.Tensor:
        """Codes ``[..., T]`` of levels ``first_level..`` -> token ids."""
        levels = torch.arange(first_level, first_level + codes.shape[-1], device=codes.device)
        return N_SPECIAL + levels * self.codebook_size + codes

    def history_tokens(self, interaction):
        """History items -> ``tokens [B, S]`` (left-aligned, trimmed to the longest
        history in the batch) and ``mask [B, S]`` (True = real token).

        Only the semantic levels describe history items: a disambiguation level
        (see :mod:`recbole_genrec.data.semantic_ids`) carries no content and
        would add a token per item to every encoder pass.
        """
        seq, seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        seq = seq[:, : int(seq_len.max())]
        codes = self.codes[seq][..., : self.n_semantic_levels].clamp(min=0)
        tokens = self.code_tokens(codes).flatten(1)  # [B, S*L_sem]
        mask = (seq > 0).repeat_interleave(self.n_semantic_levels, dim=1)
        return tokens.masked_fill(~mask, PAD), mask

    # scores --------------------------------------------------------------------------
    def level_logits(self, hidden: torch.Tensor, first_level: int = 0) -> torch.Tensor:
        """``hidden [..., T, d]`` at levels ``first_level..`` -> logits ``[..., T, K]``."""
        T = hidden.shape[-2]
        weight = self.output_weight()[first_level:first_level + T]  # [T, K, d]
        return torch.einsum("...td,tkd->...tk", hidden, weight) + self.logit_bias[first_level:first_level + T]

    def code_logp(self, ctx, codes: torch.Tensor) -> torch.Tensor:
        """Token log-probs of full code tuples ``[U, C, L]`` -> ``[U, C, L]``."""
        logp = self.level_logits(self.decode(ctx, codes)).log_softmax(-1)
        return logp.gather(-1, codes.unsqueeze(-1)).squeeze(-1)

    def window_targets(self, interaction):
        """Sequence mode: a row's items ``[B, S1]`` and its trained targets ``[B, S1 - 1]``
        (:func:`recbole_genrec.data.sequence_windows.window_targets`)."""
        return window_targets(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                              interaction[self.POS_ITEM_ID], interaction[TRAINED_TARGETS])

    def n_targets(self, interaction) -> int:
        """Training targets in a batch: one per row, or per trained window position."""
        if self.train_mode == "sequence":
            return int(interaction[TRAINED_TARGETS].sum())
        return len(interaction)

    def micro_batch_key(self, interaction) -> torch.Tensor:
        """Rows are grouped into micro-batches in this order (little padding)."""
        length = interaction[self.ITEM_SEQ_LEN]
        if self.train_mode == "sequence":
            return length * (self.max_seq_length + 2) + interaction[TRAINED_TARGETS]
        return length

    def train_batch(self, interaction) -> TrainBatch:
        """One teacher-forced forward pass over the targets (what every loss needs)."""
        items = interaction[self.POS_ITEM_ID]
        ctx = self.encode(interaction)
        codes = self.codes[items]  # [B, L]
        logits = self.level_logits(self.decode(ctx, codes.unsqueeze(1))).squeeze(1)
        return TrainBatch(ctx=ctx, items=items, codes=codes, logits=logits, interaction=interaction)

    def forward(self, interaction):
        """The training forward is the loss: what ``DistributedDataParallel`` calls."""
        return self.calculate_loss(interaction)

    def calculate_loss(self, interaction):
        total, self.last_loss_parts = self.loss(self, self.train_batch(interaction))
        return total

    def sample_items(self, n_rows: int, n: int) -> torch.Tensor:
        """``[n_rows, n]`` items drawn uniformly from the catalogue (with replacement)."""
        return torch.randint(1, self.n_items, (n_rows, n), device=self.codes.device)

    # inference -----------------------------------------------------------------------
    def beam_search(self, interaction, beam_size=None) -> BeamResult:
        """Top-``beam_size`` items per user.  Users are decoded in chunks of
        ``eval_chunk_users`` with similar history lengths, so the encoder pays
        little for padding; results come back in the input order."""
        order = torch.argsort(interaction[self.ITEM_SEQ_LEN])
        parts = [beam_search(self.decoding(self.encode(interaction[idx])), self.trie,
                             beam_size or self.beam_size)
                 for idx in order.split(self.eval_chunk_users)]
        inverse = torch.argsort(order).to(self.codes.device)
        return BeamResult(
            items=torch.cat([p.items for p in parts])[inverse],
            scores=torch.cat([p.scores for p in parts])[inverse],
            level_nodes=[torch.cat(nodes)[inverse] for nodes in zip(*(p.level_nodes for p in parts))],
        )

    def full_sort_predict(self, interaction):
        """Exact ranking down to rank ``K = max(topk)`` (``ranking_mode: exact``,
        PR@K): ``[U, n_items]`` summed token log-probs of every item that can
        reach the top K, -inf for the rest (provably below the K-th best score).

        Beam search gives each user a score that K items reach; branch and
        bound over the trie (:mod:`recbole_genrec.layers.exact_topk`) then
        decodes only the prefixes that reach it, ``full_rank_batch_users``
        users at a time.
        """
        k = self.exact_top_k
        beam_scores = self.beam_search(interaction, max(k, self.beam_size)).scores
        threshold = beam_scores[:, k - 1] if beam_scores.shape[1] >= k else torch.full_like(
            beam_scores[:, 0], float("-inf"))  # fewer than K items: keep everything
        parts = [bounded_search(self.decoding(self.encode(interaction[idx])), self.trie, threshold[idx])
                 for idx in torch.arange(len(interaction)).split(self.full_rank_batch_users)]
        return torch.cat([item_score_table(p, self.trie.n_items) for p in parts])

    def predict(self, interaction):
        ctx = self.encode(interaction)
        codes = self.codes[interaction[self.ITEM_ID]].unsqueeze(1)
        return self.code_logp(ctx, codes).sum(-1).squeeze(1)

    def token_logp_next(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """Decoder state ``[U, b, d]`` at ``level`` -> next-code log-probs ``[U, b, K]``."""
        return F.log_softmax(self.level_logits(hidden.unsqueeze(-2), level).squeeze(-2), dim=-1)


class IncrementalDecoding:
    """The ``step(codes, parent)`` API of :mod:`recbole_genrec.layers.beam_search`
    on top of a backbone's ``decoder_step``: reorders the per-layer KV caches
    ``[U*b, H, t, dh]`` to follow the surviving hypotheses, then decodes one level."""

    def __init__(self, model: GenerativeRecommender, ctx):
        self.model, self.ctx = model, ctx
        self.caches, self.level = None, 0

    def step(self, codes, parent):
        tokens = None
        if codes is not None:
            U, b = codes.shape
            if self.caches is not None:
                b_prev = self.caches[0][0].shape[0] // U
                rows = (parent + torch.arange(U, device=parent.device)[:, None] * b_prev).flatten()
                self.caches = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.caches]
            tokens = self.model.code_tokens(codes.unsqueeze(-1), self.level - 1)  # [U, b, 1]
        hidden, self.caches = self.model.decoder_step(self.ctx, tokens, self.caches)
        logp = self.model.token_logp_next(hidden, self.level)
        self.level += 1
        return logp
