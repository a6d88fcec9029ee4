"""RecBole ``Config`` with this project's property files and stricter input checks.

Precedence, lowest first: RecBole's internal defaults < ``properties/overall.yaml``
< ``properties/dataset/<D>.yaml`` < ``properties/generative.yaml`` (generative
models) < ``properties/model/<M>.yaml`` <
``properties/loss/<L>.yaml`` (generative models) < ``--config_files`` <
``config_dict`` < command-line overrides.

Unlike RecBole's ``Config`` it never reads ``sys.argv`` itself (overrides are
passed in), names the file of a malformed YAML, and rejects option names that
no property file or RecBole default knows.  Every option's type and range is
declared in the property file next to it and checked here
(:mod:`recbole_genrec.option_specs`).
"""

import difflib
from pathlib import Path

from recbole.config import Config
from recbole.utils.argument_list import (
    dataset_arguments,
    evaluation_arguments,
    general_arguments,
    training_arguments,
)

from recbole_genrec.errors import ConfigError
from recbole_genrec.option_specs import check_options, read_specs
from recbole_genrec.paths import DATA_ROOT, DATASET_ROOT, PROPERTIES
from recbole_genrec.registry import get_loss, get_model, is_generative
from recbole_genrec.yaml_file import read_yaml

PROJECT_ROOT = DATA_ROOT  # (an alias; the paths live in recbole_genrec.paths)

# options consumed by the entry point rather than by a property file
RUN_OPTIONS = {"model", "dataset", "loss", "config_files", "result_file", "init_from",
               "resume_from", "local_rank"}


def property_files(model: str, dataset: str, loss: str | None) -> list[Path]:
    files = [PROPERTIES / "overall.yaml", PROPERTIES / "dataset" / f"{dataset}.yaml"]
    if loss:
        files.append(PROPERTIES / "generative.yaml")
    files.append(PROPERTIES / "model" / f"{model}.yaml")
    if loss:
        files += [PROPERTIES / "loss" / f"{part}.yaml" for part in loss.split("+")]
    return [f for f in files if f.is_file()]


class GenRecConfig(Config):
    def __init__(self, model, dataset, config_file_list=None, config_dict=None,
                 cmd_overrides=None):
        model_class = get_model(model)
        config_dict = dict(config_dict or {})
        cmd_overrides = dict(cmd_overrides or {})
        # the loss picks property files, so it is resolved first, with the usual
        # precedence: command line > config_dict > the last --config_files that sets it
        loss = cmd_overrides.get("loss", config_dict.get("loss"))
        for path in reversed(list(config_file_list or [])):
            if loss is None:
                loss = read_yaml(path).get("loss")
        if is_generative(model_class):
            loss = loss or "ce"
            parts = loss.split("+")
            for part in parts:
                get_loss(part)  # unknown loss -> error listing the valid ones
            if len(set(parts)) != len(parts):
                raise ConfigError(f"--loss={loss}: each loss may appear once", None,
                                  "weight a part with loss_weights instead")
        elif loss:
            raise ConfigError(
                f"--loss={loss} applies to generative models only; {model} is a RecBole "
                "model and uses its own loss_type"
            )
        self._cmd_overrides = cmd_overrides
        properties = property_files(model, dataset, loss)
        self._n_property_files = len(properties)
        self._property_options = set()  # options the property files define
        self._file_options = {}  # option -> the --config_files file that sets it
        files = properties + list(config_file_list or [])
        super().__init__(model=model_class, dataset=dataset,
                         config_file_list=[str(f) for f in files], config_dict=config_dict)
        self.final_config_dict["loss"] = loss
        self._check_option_names(self._file_options, config_dict, cmd_overrides)
        specs = {}
        for path in properties:
            specs.update(read_specs(path))
        check_options(self.final_config_dict, specs, lambda name: self._where_set(name, config_dict))
        if self.final_config_dict.get("train_mode") == "sequence":
            for part in loss.split("+"):
                if get_loss(part).scores_candidates(self.final_config_dict):
                    raise ConfigError(
                        f"--train_mode=sequence cannot train --loss={part}"
                        + (f" (apao_variant={self.final_config_dict['apao_variant']})"
                           if part == "apao" else "")
                        + ": it scores sampled candidates against each target's own encoded "
                        "history, which one causal pass over a sequence does not keep. Use "
                        "--train_mode=prefix, or a loss on the target logits (ce, msl, bear, "
                        "apao with apao_variant=pointwise)")
        if self.final_config_dict.get("init_from") and not is_generative(model_class):
            raise ConfigError(
                f"--init_from={self.final_config_dict['init_from']} applies to generative "
                f"models only (second-stage losses); {model} is a RecBole model"
            )
        if is_generative(model_class) and not self.final_config_dict.get("init_from"):
            for part in loss.split("+"):
                if get_loss(part).needs_init_from(self):
                    raise ConfigError(
                        f"--loss={loss}: {part} compares the model with a frozen reference, "
                        "the model --init_from loads", None,
                        "train with --loss=ce first and start from that checkpoint with "
                        f"--init_from=<checkpoint> (APAO §5.1.2), or set "
                        f"--pref_reference=none for a reference-free one-stage loss (e.g. "
                        f"--loss=ce+{part} --pref_reference=none)")

    # RecBole hooks -----------------------------------------------------------------
    def _load_config_files(self, file_list):
        merged = {}
        for i, path in enumerate(file_list or []):
            options = read_yaml(path, self.yaml_loader)
            if i < self._n_property_files:
                self._property_options.update(options)
            else:
                self._file_options.update(dict.fromkeys(options, path))
            merged.update(options)
        return merged

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        # RecBole's default is the relative "dataset/"; ours is the project's folder
        self.internal_config_dict["data_path"] = str(DATASET_ROOT)

    def _init_device(self):
        """RecBole's, except that a rank of a data-parallel run joins its process group
        with the backend its device needs (Gloo on CPU; RecBole always asks for NCCL)."""
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        import torch
        import torch.distributed as dist

        from recbole_genrec.distributed import backend_for

        config = self.final_config_dict
        gpu_id = config["gpu_id"]  # --gpu_id=0,1 arrives as a tuple, as in RecBole's
        config["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        cuda = bool(config["gpu_id"]) and torch.cuda.is_available()
        local_rank = config["local_rank"]
        device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        world = config["world_size"] if config["world_size"] > 0 else config["nproc"]
        dist.init_process_group(backend=backend_for(device), rank=local_rank + config["offset"],
                                world_size=world,
                                init_method=f"tcp://{config['ip']}:{config['port']}")
        config.update(device=device, single_spec=False, world_size=world)
        if dist.get_rank() != 0:  # rank 0 logs, shows progress and writes the results
            config.update(state="error", show_progress=False, verbose=False)

    def _set_default_parameters(self):
        super()._set_default_parameters()
        # RecBole points dataset "ml-100k" at its own bundled copy whatever data_path
        # says; read it from data_path like every other dataset
        if self.dataset == "ml-100k":
            base = (self.external_config_dict.get("data_path")
                    or self.internal_config_dict["data_path"])
            self.final_config_dict["data_path"] = str(Path(base) / self.dataset)

    def _load_cmd_line(self):
        return self._convert_config_dict(dict(self._cmd_overrides))

    # checks ------------------------------------------------------------------------
    def _where_set(self, name, config_dict) -> str:
        if name in self._cmd_overrides:
            return "command line"
        if name in config_dict:
            return "config_dict"
        if name in self._file_options:
            return f"set in {self._file_options[name]}"
        return "default"

    def _check_option_names(self, file_options, *option_dicts):
        """Every option given by --config_files, config_dict or the command line must be
        defined by a property file or by RecBole (its defaults and argument lists)."""
        known = set(self.internal_config_dict) | self._property_options | RUN_OPTIONS
        for group in (general_arguments, training_arguments, evaluation_arguments,
                      dataset_arguments):
            known.update(group)
        for options in (file_options, *option_dicts):
            for name in options:
                if name not in known:
                    close = difflib.get_close_matches(name, sorted(known), n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    where = f" in {file_options[name]}" if options is file_options else ""
                    raise ConfigError(
                        f"unknown option {name!r}{where} for model {self.model} and loss "
                        f"{self.final_config_dict.get('loss')} (no property file or RecBole "
                        f"default defines it){hint}"
                    )
