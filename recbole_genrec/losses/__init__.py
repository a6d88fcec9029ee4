"""Training objectives for generative recommenders, selected with ``--loss``.

``ce`` (APAO Eq. 4), ``apao`` (APAO Eq. 11-19), ``bear`` (BEAR Eq. 3.5), ``msl``
(masked softmax), ``dpo`` / ``dmpo`` / ``sdpo`` (second-stage preference losses,
APAO Eq. 24 for S-DPO), and ``a+b`` for a weighted sum (``loss_weights``).
Hyperparameters live in ``properties/loss/<name>.yaml``.
"""

from recbole_genrec.errors import ConfigError
from recbole_genrec.losses.apao import APAOLoss
from recbole_genrec.losses.bear import BEARLoss
from recbole_genrec.losses.ce import CrossEntropyLoss
from recbole_genrec.losses.combined import CombinedLoss
from recbole_genrec.losses.msl import MSLLoss
from recbole_genrec.losses.preference import DMPOLoss, DPOLoss, SDPOLoss

LOSSES = {cls.name: cls for cls in (CrossEntropyLoss, APAOLoss, BEARLoss, MSLLoss,
                                     DPOLoss, DMPOLoss, SDPOLoss)}


def loss_class(name: str):
    """The loss class registered as ``name``; an unknown name lists the valid ones."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r} (option --loss). "
                         f"Valid losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def build_loss(config, model):
    """The loss named by ``config['loss']``; ``'a+b'`` builds a :class:`CombinedLoss`."""
    names = (config["loss"] or "ce").split("+")
    classes = [loss_class(name) for name in names]  # unknown names -> error
    if len(classes) == 1:
        return classes[0](config, model)
    return CombinedLoss(config, model, names, LOSSES)
