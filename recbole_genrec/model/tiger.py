"""TIGER: an encoder-decoder generative recommender over semantic IDs.

Reference: S. Rajput et al., "Recommender Systems with Generative Retrieval",
NeurIPS 2023; the configuration follows the APAO paper, Appendix C (T5-style
blocks, 4 encoder + 4 decoder layers, 6 heads of size 64, ReLU).  The encoder
reads the history's semantic-ID tokens; the decoder generates the next item's
codes level by level.
"""

import torch
from torch import nn

from recbole_genrec.layers.t5 import T5Decoder, T5Encoder
from recbole_genrec.layers.transformer import padding_bias
from recbole_genrec.model.generative_recommender import BOS, GenerativeRecommender


class TIGER(GenerativeRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["d_model"]
        dims = dict(d_model=d, n_heads=config["n_heads"], head_dim=config["head_dim"],
                    d_ff=config["d_ff"], dropout=config["dropout_prob"])
        self.embedding = nn.Embedding(self.n_tokens, d)  # shared by encoder and decoder
        self.encoder = T5Encoder(config["n_encoder_layers"], **dims)
        self.decoder = T5Decoder(config["n_decoder_layers"], **dims)
        self.lm_head = nn.Parameter(torch.empty(self.n_levels, self.codebook_size, d))
        self.apply(self._init_weights)
        nn.init.normal_(self.lm_head, std=d ** -0.5)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def output_weight(self):
        return self.lm_head

    def encode(self, interaction):
        tokens, mask = self.history_tokens(interaction)  # [B, S]
        pad = padding_bias(mask, self.embedding.weight.dtype)  # [B, 1, 1, S]
        memory = self.encoder(self.embedding(tokens), pad)
        return TIGERContext(self.decoder.cross_keys_values(memory), pad)

    def decode(self, ctx, codes):
        """Teacher forcing on ``[BOS, c_1 .. c_{T-1}]``.  The BOS position is the
        same for every continuation of a user, so it is decoded once per user and
        its keys/values are shared by the ``C`` continuations (for pairwise
        losses: one position in ``L`` less per candidate)."""
        U, C, T = codes.shape
        first, caches = self.decoder_step(ctx, None, None)  # [U, 1, d]
        first = first[:, None].expand(U, C, 1, -1)
        if T == 1:
            return first
        caches = [(k.repeat_interleave(C, 0), v.repeat_interleave(C, 0)) for k, v in caches]
        tokens = self.embedding(self.code_tokens(codes[..., :-1]))  # [U, C, T-1, d]
        hidden, _ = self.decoder(tokens, ctx.cross_kvs, ctx.pad, caches)
        return torch.cat([first, hidden], 2)

    def decoder_step(self, ctx, tokens, caches):
        if tokens is None:  # first step: BOS
            tokens = torch.full((ctx.pad.shape[0], 1, 1), BOS, device=ctx.pad.device)
        hidden, caches = self.decoder(self.embedding(tokens), ctx.cross_kvs, ctx.pad, caches)
        return hidden.squeeze(2), caches


class TIGERContext:
    def __init__(self, cross_kvs, pad):
        self.cross_kvs = cross_kvs  # per decoder layer: (k, v) [U, H, S, dh]
        self.pad = pad  # [U, 1, 1, S]
