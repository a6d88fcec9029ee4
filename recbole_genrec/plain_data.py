"""Config values as plain data (JSON/YAML-safe; loadable with ``torch.load(weights_only=True)``)."""

import enum

import numpy as np


def plain_value(value):
    """Map a config value to JSON/YAML-safe primitives (enums, devices -> str)."""
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def plain_config(config) -> dict:
    return plain_value(dict(config.final_config_dict))


def plain_checkpoint(trainer, epoch) -> dict:
    """What RecBole's ``Trainer._save_checkpoint`` saves, with the config as plain data
    (tensors and primitives only: loadable with ``torch.load(weights_only=True)``)."""
    return {
        "config": plain_config(trainer.config),
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
    }
