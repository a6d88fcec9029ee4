"""Weighted sums of losses: ``--loss=a+b`` is ``sum_i loss_weights[name_i] * L_i``.

Used for the one-stage comparison of APAO Table 3 (``L_CE + lambda L_S-DPO``:
``--loss=ce+sdpo --pref_reference=none --loss_weights="{'sdpo': 0.1}"``).
``loss_weights`` maps part names to weights (default 1 each).  Nothing is
special-cased: ``apao``, ``bear`` and ``msl`` already contain their CE term,
so ``ce+apao`` counts CE twice.  Each part keeps its own state (checkpointed
under ``loss.parts.<name>``); it is logged as ``<name>`` (its value) and
``<name>/<part>`` (its own parts).
"""

from torch import nn

from recbole_genrec.errors import ConfigError
from recbole_genrec.losses.base import GenerativeLoss


class CombinedLoss(GenerativeLoss):
    name = "combined"

    def __init__(self, config, model, names, registry):
        super().__init__(config, model)
        if len(set(names)) != len(names):
            raise ConfigError(f"--loss={'+'.join(names)}: each loss may appear once")
        weights = dict(config["loss_weights"] or {})
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ConfigError(f"loss_weights names {unknown}, which are not parts of "
                             f"--loss={'+'.join(names)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in names}
        self.parts = nn.ModuleDict({name: registry[name](config, model) for name in names})

    def forward(self, model, batch):
        total, logged = 0.0, {}
        for name, loss in self.parts.items():
            value, parts = loss(model, batch)
            total = total + self.weights[name] * value
            logged[name] = value.detach()
            logged.update({f"{name}/{key}": part for key, part in parts.items() if key != name})
        return total, logged

    def state_summary(self) -> dict:
        return {name: s for name, loss in self.parts.items() if (s := loss.state_summary())}

    def on_init_from(self, model):
        for loss in self.parts.values():
            loss.on_init_from(model)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
