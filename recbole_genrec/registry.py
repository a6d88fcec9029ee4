"""Name -> class look-ups for models, trainers and losses.

Models resolve in this package first, then among RecBole's sequential
recommenders (the protocol is sequential: leave-one-out over user histories).
An unknown name is an error that lists the valid ones.
"""

import inspect

import recbole.model.sequential_recommender as recbole_sequential
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_genrec.errors import ConfigError
from recbole_genrec.losses import LOSSES, loss_class
from recbole_genrec.model import GENERATIVE_MODELS
from recbole_genrec.trainer import GenerativeTrainer, SequentialTrainer


def recbole_sequential_models() -> dict:
    return {
        name: cls
        for name, cls in vars(recbole_sequential).items()
        if inspect.isclass(cls) and issubclass(cls, SequentialRecommender)
        and cls is not SequentialRecommender
    }


def model_names() -> list[str]:
    return sorted(GENERATIVE_MODELS) + sorted(recbole_sequential_models())


def get_model(name: str):
    if name in GENERATIVE_MODELS:
        return GENERATIVE_MODELS[name]
    classic = recbole_sequential_models()
    if name in classic:
        return classic[name]
    raise ConfigError(
        f"unknown model {name!r} (option --model). Generative models: "
        f"{', '.join(sorted(GENERATIVE_MODELS)) or 'none'}; RecBole sequential models: "
        f"{', '.join(sorted(classic))}"
    )


def is_generative(model_class) -> bool:
    return model_class in GENERATIVE_MODELS.values()


def get_trainer(model_class):
    return GenerativeTrainer if is_generative(model_class) else SequentialTrainer


def loss_names() -> list[str]:
    return sorted(LOSSES)


get_loss = loss_class
