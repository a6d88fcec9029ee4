"""MSL: Masked Softmax Loss (Wang et al., SIGIR 2025; APAO §5.1.2 baseline).

Cross-entropy whose softmax normalisation covers only the trie-valid next codes
of the target's prefix (``trie.valid_next_mask``), on logits divided by the
temperature ``msl_tau`` (APAO Appendix C: tau in {1, 2, 3})::

    L = -(1/T) sum_t log( exp(z_t[y_t] / tau) / sum_{v valid at t} exp(z_t[v] / tau) )

averaged over tokens and the batch.  With every code valid and ``tau = 1`` this is
the CE of APAO Eq. 4.
"""

import torch.nn.functional as F

from recbole_genrec.losses.base import GenerativeLoss


def masked_softmax_ce(logits, codes, valid, tau: float = 1.0, mask=None):
    """``logits [B, L, K]``, ``codes [B, L]``, ``valid [B, L, K]`` -> scalar; ``mask [B, L]``
    (optional) keeps the real tokens only (variable-length identifiers)."""
    masked = (logits / tau).masked_fill(~valid, float("-inf"))
    token = -F.log_softmax(masked, -1).gather(-1, codes.unsqueeze(-1)).squeeze(-1)
    if mask is None:
        return token.mean()
    return token.masked_fill(~mask, 0.0).sum() / mask.sum().clamp(min=1)


class MSLLoss(GenerativeLoss):
    name = "msl"

    def __init__(self, config, model):
        super().__init__(config, model)
        self.tau = float(config["msl_tau"])
        if self.tau <= 0:
            raise ValueError(f"msl_tau={self.tau}: the temperature must be positive")

    def forward(self, model, batch):
        valid = model.trie.valid_next_mask(batch.items, batch.logits.shape[-1],
                                           n_levels=batch.codes.shape[1])
        loss = masked_softmax_ce(batch.logits, batch.codes, valid, self.tau, batch.mask)
        return loss, {"msl": loss.detach()}

    def extra_repr(self) -> str:
        return f"tau={self.tau}"
