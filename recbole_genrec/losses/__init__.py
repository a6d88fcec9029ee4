"""Training objectives for generative recommenders, selected with ``--loss``."""

from recbole_genrec.losses.ce import CrossEntropyLoss

LOSSES = {cls.name: cls for cls in (CrossEntropyLoss,)}


def build_loss(config, model):
    name = config["loss"] or "ce"
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r} (option --loss). Valid losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](config, model)
