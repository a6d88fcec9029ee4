"""Token-level cross-entropy (APAO Eq. 4), the baseline objective."""

from recbole_genrec.losses.base import GenerativeLoss, cross_entropy


class CrossEntropyLoss(GenerativeLoss):
    name = "ce"

    def forward(self, model, batch):
        ce = cross_entropy(batch)
        return ce, {"ce": ce.detach()}
