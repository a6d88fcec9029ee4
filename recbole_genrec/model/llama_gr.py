"""LlamaGR: a decoder-only (Llama-style) generative recommender over semantic IDs.

The decoder-only backbone of the APAO paper (Appendix C; Llama 3 architecture,
Grattafiori et al., 2024): pre-norm RMSNorm, rotary position embeddings, SwiGLU,
tied input/output embeddings.  One causal sequence per sample::

    [history codes ...] [SEP] [c_1 ... c_L]

with the loss only on the target codes.  The history (+ SEP) is encoded once
per user and cached; targets, sampled candidates and beams continue from that
cache (:mod:`recbole_genrec.layers.llama`).

``train_mode: sequence`` trains every target of a window in one causal pass
(SASRec's and HSTU's training, GRID's ``loss_on_all_positions``): the row's
history tokens, then one block ``[SEP, c_1 .. c_{L-1}]`` per target ``k``.  Block
``k`` sees the history tokens of items ``0..k-1`` and its own earlier tokens, at
the positions it has in the per-prefix sequence (SEP at ``k * L_sem``), so every
target's logits equal the per-prefix ones (``tests/test_sequence_mode.py``).
Rows come from :mod:`recbole_genrec.data.sequence_windows`.
"""

import torch
from torch import nn

from recbole_genrec.layers.llama import LlamaBlock, RotaryEmbedding
from recbole_genrec.layers.transformer import RMSNorm, causal_bias, padding_bias
from recbole_genrec.data.sequence_windows import TRAINED_TARGETS
from recbole_genrec.losses.base import TrainBatch
from recbole_genrec.model.generative_recommender import BOS, N_SPECIAL, GenerativeRecommender


class LlamaGR(GenerativeRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d, n_heads = config["hidden_size"], config["n_heads"]
        self.embedding = nn.Embedding(self.n_tokens, d)
        self.layers = nn.ModuleList(
            LlamaBlock(d, n_heads, config["intermediate_size"]) for _ in range(config["n_layers"]))
        self.norm = RMSNorm(d)
        self.rope = RotaryEmbedding(d // n_heads, config["rope_theta"])
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def output_weight(self):  # tied with the input embedding
        return self.embedding.weight[N_SPECIAL:].view(self.n_levels, self.codebook_size, -1)

    def encode(self, interaction):
        tokens, mask = self.history_tokens(interaction)  # [B, S], left-aligned
        B, S = tokens.shape
        n_real = mask.sum(1)
        tokens = torch.cat([tokens, torch.full_like(tokens[:, :1], BOS)], 1)  # + SEP
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        pos = torch.arange(S + 1, device=tokens.device).repeat(B, 1)
        pos[:, -1] = n_real  # SEP right after the last real token, whatever the padding
        visible = (pos[:, None, :] <= pos[:, :, None]) & mask[:, None, :]  # [B, P, P]
        bias = torch.zeros(visible.shape, device=tokens.device).masked_fill(~visible, float("-inf"))
        rope = self.rope(pos)  # [B, 1, P, dh]
        x, prefix_kv = self.embedding(tokens), []
        for layer in self.layers:
            x, kv = layer.prefix(x, rope, bias.unsqueeze(1))
            prefix_kv.append(kv)
        return LlamaContext(prefix_kv, padding_bias(mask, x.dtype), n_real, self.norm(x[:, -1]))

    def train_batch(self, interaction) -> TrainBatch:
        if self.train_mode != "sequence":
            return super().train_batch(interaction)
        items, _ = self.window_targets(interaction)  # [B, S1]: history, then the row's target
        n_hist, slots = interaction[self.ITEM_SEQ_LEN], interaction[TRAINED_TARGETS]  # [B]
        # the row trains its last `slots` items: positions k = n_hist - slots + 1 .. n_hist
        k = (n_hist - slots + 1)[:, None] + torch.arange(int(slots.max()), device=items.device)
        filled = k <= n_hist[:, None]  # [B, nb]
        k = torch.minimum(k, n_hist[:, None])  # padded slots repeat the last target (dropped)
        hidden = self.sequence_hidden(items, k)[filled]  # [N, L, d], row-major
        targets = items.gather(1, k)[filled]  # [N]
        return TrainBatch(ctx=None, items=targets, codes=self.codes[targets],
                          logits=self.level_logits(hidden), interaction=interaction)

    def sequence_hidden(self, items, targets):
        """Items ``[B, S1]`` (0 = padding) and target positions ``targets [B, nb]``
        (``1..S1-1``) -> hidden ``[B, nb, L, d]`` predicting the codes of
        ``items[b, targets[b, i]]`` from the items before it, all in one pass."""
        B, S1 = items.shape
        Ls, L, nb, n = self.n_semantic_levels, self.n_levels, targets.shape[1], S1 - 1
        dev = items.device
        history = self.code_tokens(self.codes[items[:, :n], :Ls].clamp(min=0)).flatten(1)  # [B, n*Ls]
        real = (items[:, :n] > 0).repeat_interleave(Ls, 1)  # [B, n*Ls]
        codes = self.codes[items.gather(1, targets)].clamp(min=0)  # [B, nb, L]
        blocks = torch.cat([torch.full_like(codes[..., :1], BOS),
                            self.code_tokens(codes[..., :L - 1])], -1)  # [B, nb, L]
        tokens = torch.cat([history.masked_fill(~real, 0), blocks.flatten(1)], 1)  # [B, P]
        h_pos = torch.arange(n * Ls, device=dev)  # history token (item i, level l): i*Ls + l
        step = torch.arange(L, device=dev)
        b_pos = (targets[..., None] * Ls + step).flatten(1)  # SEP of target k at k*Ls  [B, nb*L]
        pos = torch.cat([h_pos.expand(B, -1), b_pos], 1)  # [B, P]
        b_target = targets.repeat_interleave(L, 1)  # [B, nb*L]
        b_slot = torch.arange(nb, device=dev).repeat_interleave(L)
        b_step = step.repeat(nb)
        hh = (h_pos[None, :] <= h_pos[:, None]).expand(B, -1, -1)  # causal history
        bh = (h_pos // Ls)[None, None, :] < b_target[:, :, None]  # target k sees items < k
        bb = ((b_slot[None, :] == b_slot[:, None]) & (b_step[None, :] <= b_step[:, None])).expand(B, -1, -1)
        visible = torch.cat([torch.cat([hh, hh.new_zeros(B, n * Ls, nb * L)], 2),
                             torch.cat([bh, bb], 2)], 1)  # [B, P, P]
        visible &= torch.cat([real, real.new_ones(B, nb * L)], 1)[:, None, :]  # real keys
        visible |= torch.eye(pos.shape[1], dtype=torch.bool, device=dev)  # padding sees itself
        bias = torch.zeros(visible.shape, device=dev).masked_fill(~visible, float("-inf"))
        rope = self.rope(pos)  # [B, 1, P, dh]
        x = self.embedding(tokens)
        for layer in self.layers:
            x, _ = layer.prefix(x, rope, bias.unsqueeze(1))
        return self.norm(x[:, n * Ls:]).view(B, nb, L, -1)

    def _continue(self, ctx, tokens, caches):
        """Continuation tokens ``[U, C, T]`` after the SEP -> hidden ``[U, C, T, d]``."""
        T = tokens.shape[-1]
        past = 0 if caches is None else caches[0][0].shape[2]
        pos = ctx.n_real[:, None, None] + 1 + past + torch.arange(T, device=tokens.device)
        rope = self.rope(pos)  # [U, 1, 1, T, dh]
        own_bias = causal_bias(T, past + T, tokens.device, self.embedding.weight.dtype)
        x, new_caches = self.embedding(tokens), []
        for i, layer in enumerate(self.layers):
            x, cache = layer.continue_(x, rope, ctx.prefix_kv[i], ctx.prefix_bias,
                                       None if caches is None else caches[i], own_bias)
            new_caches.append(cache)
        return self.norm(x), new_caches

    def decode(self, ctx, codes):
        U, C, T = codes.shape
        first = ctx.sep_hidden[:, None, None, :].expand(U, C, 1, -1)  # predicts level 0
        if T == 1:
            return first
        hidden, _ = self._continue(ctx, self.code_tokens(codes[..., :-1]), None)
        return torch.cat([first, hidden], 2)

    def decoder_step(self, ctx, tokens, caches):
        if tokens is None:  # the SEP position's output predicts the first code
            return ctx.sep_hidden[:, None], None
        hidden, caches = self._continue(ctx, tokens, caches)
        return hidden.squeeze(2), caches


class LlamaContext:
    def __init__(self, prefix_kv, prefix_bias, n_real, sep_hidden):
        self.prefix_kv = prefix_kv  # per layer: rotated (k, v) [U, H, P, dh]
        self.prefix_bias = prefix_bias  # [U, 1, 1, P], -inf at padding
        self.n_real = n_real  # [U] real history tokens
        self.sep_hidden = sep_hidden  # [U, d] final hidden state at SEP
