"""Transformer building blocks shared by the backbones (pure PyTorch, SDPA)."""

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm without bias or centring (T5, Llama)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class MultiHeadAttention(nn.Module):
    """Projections around ``scaled_dot_product_attention``; callers own the caches.

    No dropout on the attention probabilities: it would force PyTorch's
    unfused attention path (a materialised ``[N, H, T, S]`` mask per layer),
    which costs more than the rest of a training step on CPU.  Blocks apply
    dropout to their residual branches instead.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.q = nn.Linear(d_model, inner, bias=False)
        self.k = nn.Linear(d_model, inner, bias=False)
        self.v = nn.Linear(d_model, inner, bias=False)
        self.o = nn.Linear(inner, d_model, bias=False)

    def split(self, x):  # [N, T, H*dh] -> [N, H, T, dh]
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def keys_values(self, x):
        """``x [N, S, d]`` -> keys, values ``[N, H, S, dh]``."""
        return self.split(self.k(x)), self.split(self.v(x))

    def queries(self, x):
        return self.split(self.q(x))

    def attend(self, q, k, v, bias=None):
        """``q [N, H, T, dh]``, ``k/v [N, H, S, dh]``, additive ``bias`` broadcastable
        to ``[N, H, T, S]`` -> ``[N, T, d]``."""
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o(out.transpose(1, 2).flatten(2))


class ReluFFN(nn.Module):
    """T5 feed-forward: ReLU between two bias-free projections.

    (T5 also drops out the ``d_ff``-wide activations; on CPU drawing that mask
    costs as much as the projections, so dropout stays on the residual branch.)
    """

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.wo(F.relu(self.wi(x)))


class SwiGLU(nn.Module):
    """Llama feed-forward: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


def padding_bias(key_mask: torch.Tensor, dtype) -> torch.Tensor:
    """``key_mask [N, S]`` (True = real token) -> additive bias ``[N, 1, 1, S]``."""
    return torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device).masked_fill(
        ~key_mask, float("-inf"))[:, None, None, :]


def causal_bias(q_len: int, k_len: int, device, dtype) -> torch.Tensor:
    """``[q_len, k_len]`` additive bias; queries are the last ``q_len`` of ``k_len`` positions."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_pos = torch.arange(k_len, device=device)[None, :]
    return torch.zeros(q_len, k_len, dtype=dtype, device=device).masked_fill(k_pos > q_pos, float("-inf"))
