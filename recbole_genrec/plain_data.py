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
