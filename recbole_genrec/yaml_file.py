"""Reading the project's YAML files (property files, ``--config_files``, search spaces,
profiles) as RecBole reads its own: ``1e-5`` is a float; a missing or malformed file is
a :class:`~recbole_genrec.errors.ConfigError` naming it."""

import re

import yaml

from recbole_genrec.errors import ConfigError

# PyYAML (YAML 1.1) reads ``5e-6`` as a string; RecBole's config loader adds this
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


def read_yaml(path, loader=YamlLoader) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f.read(), Loader=loader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data
