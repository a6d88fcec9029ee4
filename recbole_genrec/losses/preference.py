"""Preference-optimisation baselines of APAO §5.1.2: DPO, DMPO and S-DPO.

As the APAO paper runs them (Appendix C), they are a second stage: train with
``ce`` first, then start from that checkpoint with ``--init_from=<checkpoint>``.
:meth:`PreferenceLoss.on_init_from` then freezes a deep copy of the model as the
reference ``pi_ref``; it is kept in a plain list, outside the module tree, so
it is neither in the ``state_dict`` nor in the optimizer, and the copy does not
contain the reference again.

Per target, ``pref_n_neg`` items are sampled uniformly (resampled every batch);
a negative equal to the target item is masked (``pref_neg_chunk``: as
``apao_neg_chunk``, checkpointed groups of negatives for less memory).  With the sequence log-prob
``log pi(e) = sum_t log P(e^t | e^<t, x)`` (summed token log-probs) the implicit
reward is ``r(e) = pref_beta * (log pi_theta(e) - log pi_ref(e))``, and

* ``dpo``  (Rafailov et al., 2023): mean over negatives of ``-log sigma(r_+ - r_j)``;
* ``dmpo`` (Bai et al., 2024): ``-log sigma(r_+ - mean_j r_j)``;
* ``sdpo`` (Chen et al., 2024; APAO Eq. 24):
  ``-log sigma(-log sum_j exp(r_j - r_+)) = softplus(logsumexp_j (r_j - r_+))``;

each averaged over the batch.  ``pref_reference: none`` drops the reference
(``log pi_ref = 0``) for one-stage combinations such as ``--loss=ce+sdpo`` (APAO
Table 3); with the default ``frozen``, training without ``--init_from`` is an error.
"""

import copy

import torch
import torch.nn.functional as F

from recbole_genrec.losses.base import GenerativeLoss, option
from recbole_genrec.losses.candidates import candidate_logp, masked_logsumexp, sample_negatives


def dpo_objective(r_pos, r_neg, valid):
    """DPO, averaged over the valid negatives: ``[B]``, ``[B, N]``, ``[B, N]`` -> ``[B]``."""
    terms = -F.logsigmoid(r_pos.unsqueeze(1) - r_neg) * valid
    return terms.sum(1) / valid.sum(1).clamp(min=1)


def dmpo_objective(r_pos, r_neg, valid):
    """DMPO: the positive against the mean reward of the valid negatives."""
    mean_neg = (r_neg * valid).sum(1) / valid.sum(1).clamp(min=1)
    return torch.where(valid.any(1), -F.logsigmoid(r_pos - mean_neg), torch.zeros_like(r_pos))


def sdpo_objective(r_pos, r_neg, valid):
    """S-DPO (APAO Eq. 24)."""
    return F.softplus(masked_logsumexp(r_neg - r_pos.unsqueeze(1), valid, dim=1))


class PreferenceLoss(GenerativeLoss):
    @classmethod
    def scores_candidates(cls, config) -> bool:
        return True

    objective = None  # staticmethod(r_pos [B], r_neg [B, N], valid [B, N]) -> [B]

    def __init__(self, config, model):
        super().__init__(config, model)
        self.beta = float(config["pref_beta"])
        self.n_neg = int(config["pref_n_neg"])
        self.neg_chunk = int(config["pref_neg_chunk"] or 0)
        self.reference_mode = option(config, "pref_reference", ("frozen", "none"))
        self._reference = []  # [frozen copy of the model]; a list keeps it out of the module tree

    @staticmethod
    def needs_init_from(config) -> bool:
        """The frozen reference is the model ``--init_from`` loads."""
        return config["pref_reference"] == "frozen"

    @property
    def reference(self):
        return self._reference[0] if self._reference else None

    def on_init_from(self, model):
        """Freeze a copy of the just-initialised ``model`` as ``pi_ref``."""
        if self.reference_mode == "none":
            return
        self._reference.clear()  # so the copy's own loss holds no reference
        reference = copy.deepcopy(model)
        reference.requires_grad_(False).eval()
        self._reference.append(reference)

    def sequence_logp(self, model, batch, negatives):
        """``log pi_theta`` of the targets ``[B]`` and of the negatives ``[B, N]``."""
        pos = batch.token_logp().sum(-1)
        neg = candidate_logp(model, batch.ctx, negatives, self.neg_chunk).sum(-1)
        return pos, neg

    @torch.no_grad()
    def reference_logp(self, batch, negatives):
        """``log pi_ref`` of the targets and negatives (one decoder pass over both)."""
        reference = self.reference
        if reference is None:
            raise RuntimeError(
                f"--loss={self.name} compares the model with a frozen reference: train with "
                f"--loss=ce first and start from that checkpoint with --init_from=<checkpoint> "
                f"(APAO §5.1.2), or set pref_reference=none for a reference-free one-stage "
                f"loss (e.g. --loss=ce+{self.name} --pref_reference=none)")
        if batch.interaction is None:
            raise RuntimeError("the reference model needs batch.interaction to encode the history")
        device = batch.codes.device
        if reference.codes.device != device:
            reference.to(device)
        ctx = reference.encode(batch.interaction)
        items = torch.cat([batch.items.unsqueeze(1), negatives], 1)
        logp = candidate_logp(reference, ctx, items).sum(-1)
        return logp[:, 0], logp[:, 1:]

    def forward(self, model, batch):
        negatives = sample_negatives(model, batch.items, self.n_neg)
        valid = negatives != batch.items.unsqueeze(1)
        pos, neg = self.sequence_logp(model, batch, negatives)
        if self.reference_mode == "frozen":
            ref_pos, ref_neg = self.reference_logp(batch, negatives)
            pos, neg = pos - ref_pos, neg - ref_neg
        r_pos, r_neg = self.beta * pos, self.beta * neg
        loss = self.objective(r_pos, r_neg, valid).mean()
        margin = ((r_pos.unsqueeze(1) - r_neg) * valid).sum() / valid.sum().clamp(min=1)
        return loss, {self.name: loss.detach(), "reward_margin": margin.detach()}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, n_neg={self.n_neg}, reference={self.reference_mode}"


class DPOLoss(PreferenceLoss):
    name = "dpo"
    objective = staticmethod(dpo_objective)


class DMPOLoss(PreferenceLoss):
    name = "dmpo"
    objective = staticmethod(dmpo_objective)


class SDPOLoss(PreferenceLoss):
    name = "sdpo"
    objective = staticmethod(sdpo_objective)
