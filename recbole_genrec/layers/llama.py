"""Llama-style decoder blocks: pre-RMSNorm, rotary positions, SwiGLU, no biases.

Two ways through the same weights:

* ``prefix``: a causal pass over the history (+ separator) of each user.
  Padding is handled by explicit position ids and a position-based causal
  mask, so a padded history gives exactly the same outputs as an unpadded one.
* ``continue_``: ``C`` continuations per user (targets, candidates or beams)
  shaped ``[U, C, T, d]`` that attend to their user's cached prefix keys and
  values without copying them per continuation: the attention softmax runs
  jointly over the shared prefix and the continuation's own (causal) tokens.
"""

import torch
from torch import nn

from recbole_genrec.layers.transformer import MultiHeadAttention, RMSNorm, SwiGLU


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor):
        """``positions [...]`` -> ``cos, sin [..., 1 (heads), dh]`` ready to broadcast."""
        angles = positions.float()[..., None] * self.inv_freq  # [..., dh/2]
        angles = torch.cat([angles, angles], -1)
        return angles.cos().unsqueeze(-3), angles.sin().unsqueeze(-3)


def rotate(x, cos, sin):
    """Apply rotary embedding to ``x [..., H, T, dh]`` (half-split convention)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def shared_prefix_attention(q, prefix_k, prefix_v, prefix_bias, own_k, own_v, own_bias):
    """Softmax attention over a user's prefix and a continuation's own tokens.

    ``q [U, C, H, T, dh]``; ``prefix_k/v [U, H, P, dh]`` with ``prefix_bias
    [U, 1, 1, P]``; ``own_k/v [U, C, H, S, dh]`` with ``own_bias [T, S]``.
    Equal to attention over the concatenated keys, without materialising the
    prefix per continuation.  Returns ``[U, C, H, T, dh]``.
    """
    scale = q.shape[-1] ** -0.5
    s_prefix = torch.einsum("uchtd,uhpd->uchtp", q, prefix_k) * scale + prefix_bias[:, None]
    s_own = torch.einsum("uchtd,uchsd->uchts", q, own_k) * scale + own_bias
    top = torch.maximum(s_prefix.amax(-1, keepdim=True), s_own.amax(-1, keepdim=True))
    p_prefix, p_own = (s_prefix - top).exp(), (s_own - top).exp()
    norm = p_prefix.sum(-1, keepdim=True) + p_own.sum(-1, keepdim=True)
    out = torch.einsum("uchtp,uhpd->uchtd", p_prefix, prefix_v)
    return (out + torch.einsum("uchts,uchsd->uchtd", p_own, own_v)) / norm


class LlamaBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(d_model), RMSNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, d_model // n_heads)
        self.ffn = SwiGLU(d_model, d_ff)

    def prefix(self, x, rope, bias):
        """``x [B, P, d]``, ``rope`` (cos, sin) ``[B, 1, P, dh]``, ``bias [B, 1, P, P]``
        -> ``x`` and the rotated keys/values ``[B, H, P, dh]``."""
        h = self.norm1(x)
        k, v = self.attn.keys_values(h)
        q, k = rotate(self.attn.queries(h), *rope), rotate(k, *rope)
        x = x + self.attn.attend(q, k, v, bias)
        return x + self.ffn(self.norm2(x)), (k, v)

    def continue_(self, x, rope, prefix_kv, prefix_bias, cache, own_bias):
        """``x [U, C, T, d]``; ``rope`` ``[U, 1, 1, T, dh]``; ``cache`` = own earlier
        keys/values ``[U*C, H, t0, dh]`` or None -> ``x`` and the extended cache."""
        U, C, T, d = x.shape
        a = self.attn
        h = self.norm1(x)
        q = rotate(a.split(a.q(h).flatten(0, 1)).unflatten(0, (U, C)), *rope)  # [U, C, H, T, dh]
        k = rotate(a.split(a.k(h).flatten(0, 1)).unflatten(0, (U, C)), *rope).flatten(0, 1)
        v = a.split(a.v(h).flatten(0, 1))
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        out = shared_prefix_attention(q, *prefix_kv, prefix_bias, k.unflatten(0, (U, C)),
                                      v.unflatten(0, (U, C)), own_bias)
        x = x + a.o(out.transpose(2, 3).flatten(3))  # [U, C, T, H*dh] -> d
        return x + self.ffn(self.norm2(x)), (k, v)
