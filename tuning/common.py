"""Small helpers shared by ``tuning.search`` and ``tuning.compare``."""

import re
from pathlib import Path

import numpy as np
import yaml

# YAML 1.1 (PyYAML) reads ``5e-6`` as a string; RecBole's config loader adds this
# resolver so scientific notation without a dot is a float -- do the same here.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class YamlLoader(yaml.SafeLoader):
    """Safe loader that reads ``1e-5`` as a float, like RecBole's config files."""


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(path) -> dict:
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=YamlLoader)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


def plain(value):
    """numpy scalars / containers -> plain Python values (YAML/JSON safe)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def typed_overrides(overrides: dict) -> dict:
    """Command-line ``--key=value`` strings -> the typed values RecBole's config makes of them.

    Uses RecBole's own conversion (``Config._convert_config_dict``, which does not
    depend on the instance), so ``"1"`` -> 1, ``"[10, 20]"`` -> [10, 20],
    ``"1e-3"`` -> 0.001, ``"saved"`` -> ``"saved"``.
    """
    from recbole.config import Config

    return Config._convert_config_dict(None, dict(overrides))


def remove_checkpoint(path) -> None:
    """Delete a run's checkpoint file and its folder if that is left empty."""
    path = Path(path)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass  # not empty (other runs' checkpoints) or already gone
