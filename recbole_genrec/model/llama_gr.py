"""LlamaGR: a decoder-only (Llama-style) generative recommender over semantic IDs.

The decoder-only backbone of the APAO paper (Appendix C; Llama 3 architecture,
Grattafiori et al., 2024): pre-norm RMSNorm, rotary position embeddings, SwiGLU,
tied input/output embeddings.  One causal sequence per sample::

    [history codes ...] [SEP] [c_1 ... c_L]

with the loss only on the target codes.  The history (+ SEP) is encoded once
per user and cached; targets, sampled candidates and beams continue from that
cache (:mod:`recbole_genrec.layers.llama`).
"""

import torch
from torch import nn

from recbole_genrec.layers.llama import LlamaBlock, RotaryEmbedding
from recbole_genrec.layers.transformer import RMSNorm, causal_bias, padding_bias
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
