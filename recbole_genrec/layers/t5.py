"""T5-style encoder and decoder stacks (pre-RMSNorm, relative position bias, ReLU FFN).

The decoder works on inputs shaped ``[U, C, T, d]``: ``C`` continuations per
user (1 target in training, ``N+1`` candidates for pairwise losses, ``b``
beams when decoding).  Self-attention runs per continuation (causal, with an
optional KV cache); cross-attention folds the ``C*T`` queries of a user into
one sequence against that user's encoder keys/values, so the encoder output is
never copied per candidate or beam.
"""

import math

import torch
from torch import nn

from recbole_genrec.layers.transformer import (
    MultiHeadAttention,
    ReluFFN,
    RMSNorm,
    causal_bias,
)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative position bias, one scalar per (bucket, head)."""

    def __init__(self, n_heads: int, bidirectional: bool, n_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.bidirectional, self.n_buckets, self.max_distance = bidirectional, n_buckets, max_distance
        self.bias = nn.Embedding(n_buckets, n_heads)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        """``relative = key_pos - query_pos`` -> bucket ids (T5: exact for small
        distances, log-spaced up to ``max_distance``)."""
        n_buckets, offset = self.n_buckets, 0
        if self.bidirectional:
            n_buckets //= 2
            offset = (relative > 0).long() * n_buckets
            distance = relative.abs()
        else:
            distance = (-relative).clamp(min=0)
        exact = n_buckets // 2
        log_bucket = exact + (
            torch.log(distance.float().clamp(min=1) / exact)
            / math.log(self.max_distance / exact) * (n_buckets - exact)
        ).long()
        return offset + torch.where(distance < exact, distance, log_bucket.clamp(max=n_buckets - 1))

    def forward(self, q_len: int, k_len: int, device) -> torch.Tensor:
        """``[H, q_len, k_len]`` bias; queries are the last ``q_len`` key positions."""
        q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
        k_pos = torch.arange(k_len, device=device)[None, :]
        return self.bias(self.bucket(k_pos - q_pos)).permute(2, 0, 1)


class T5EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, head_dim, d_ff, dropout):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(d_model), RMSNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, head_dim)
        self.ffn = ReluFFN(d_model, d_ff)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):  # x [B, S, d], bias [B, H, S, S]
        h = self.norm1(x)
        k, v = self.attn.keys_values(h)
        x = x + self.drop(self.attn.attend(self.attn.queries(h), k, v, bias))
        return x + self.drop(self.ffn(self.norm2(x)))


class T5Encoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, head_dim, d_ff, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            T5EncoderLayer(d_model, n_heads, head_dim, d_ff, dropout) for _ in range(n_layers))
        self.position_bias = RelativePositionBias(n_heads, bidirectional=True)
        self.norm = RMSNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pad_bias):  # x [B, S, d], pad_bias [B, 1, 1, S]
        bias = self.position_bias(x.shape[1], x.shape[1], x.device) + pad_bias  # [B, H, S, S]
        x = self.drop(x)
        for layer in self.layers:
            x = layer(x, bias)
        return self.drop(self.norm(x))


class T5DecoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, head_dim, d_ff, dropout):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = RMSNorm(d_model), RMSNorm(d_model), RMSNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, head_dim)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, head_dim)
        self.ffn = ReluFFN(d_model, d_ff)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, self_bias, cross_kv, cross_bias, cache=None):
        """``x [U, C, T, d]``; ``cache`` = (k, v) ``[U*C, H, t0, dh]`` of earlier
        positions or None.  Returns ``x`` and the extended cache."""
        U, C, T, d = x.shape
        h = self.norm1(x).reshape(U * C, T, d)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        out = self.self_attn.attend(self.self_attn.queries(h), k, v, self_bias)
        x = x + self.drop(out.view(U, C, T, d))
        h = self.norm2(x).reshape(U, C * T, d)
        out = self.cross_attn.attend(self.cross_attn.queries(h), *cross_kv, cross_bias)
        x = x + self.drop(out.view(U, C, T, d))
        return x + self.drop(self.ffn(self.norm3(x))), (k, v)


class T5Decoder(nn.Module):
    def __init__(self, n_layers, d_model, n_heads, head_dim, d_ff, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            T5DecoderLayer(d_model, n_heads, head_dim, d_ff, dropout) for _ in range(n_layers))
        self.position_bias = RelativePositionBias(n_heads, bidirectional=False)
        self.norm = RMSNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def cross_keys_values(self, memory):
        """Per-layer cross-attention keys/values of the encoder output ``[U, S, d]``."""
        return [layer.cross_attn.keys_values(memory) for layer in self.layers]

    def forward(self, x, cross_kvs, cross_bias, caches=None):
        """``x [U, C, T, d]`` -> hidden ``[U, C, T, d]`` and per-layer caches."""
        T = x.shape[2]
        past = 0 if caches is None else caches[0][0].shape[2]
        self_bias = self.position_bias(T, past + T, x.device) + causal_bias(T, past + T, x.device, x.dtype)
        x = self.drop(x)
        new_caches = []
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, self_bias, cross_kvs[i], cross_bias,
                             None if caches is None else caches[i])
            new_caches.append(cache)
        return self.drop(self.norm(x)), new_caches
