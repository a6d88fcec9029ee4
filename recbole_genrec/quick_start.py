"""One training run: config -> data -> model -> fit -> test -> result JSON.

This replaces ``recbole.quick_start.run_recbole``, which re-resolves models by
name (unknown names fail with an unrelated ``lightgbm`` import error), counts
FLOPs by calling ``model.predict`` and reports to Ray Tune with a keyword form
that current Ray rejects.
"""

import json
import logging
import math
from pathlib import Path
from time import perf_counter

import torch
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_genrec.config import PROJECT_ROOT, GenRecConfig
from recbole_genrec.data.convert import convert
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.registry import get_trainer
from recbole_genrec.trainer import plain_config

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def ensure_dataset(config) -> None:
    """Convert ``shared/data/<D>`` on first use when ``<data_path>/<D>.inter`` is absent."""
    name, path = config["dataset"], Path(config["data_path"])
    if (path / f"{name}.inter").is_file():
        return
    source = SHARED_DATA / name
    if not source.is_dir():
        raise FileNotFoundError(
            f"dataset {name!r}: neither {path / (name + '.inter')} nor {source} exists"
        )
    report = convert(source, path, name)
    logging.getLogger().info("converted %s", report.summary())


def default_result_file(config) -> Path:
    return Path(config["checkpoint_dir"]) / (
        f"{config['model']}-{config['dataset']}-{config['loss'] or 'default'}.json"
    )


def run(model, dataset, config_files=None, config_dict=None, cmd_overrides=None,
        epoch_callback=None, result_file=None, saved=True) -> dict:
    """Train, validate and test one configuration; write and return the result dict.

    ``epoch_callback(epoch, valid_score, valid_result)`` is called after every
    validation (hyperparameter search reports through it).
    """
    start = perf_counter()
    config = GenRecConfig(model, dataset, config_files, config_dict, cmd_overrides)
    result_file = Path(result_file or config["result_file"] or default_result_file(config))
    init_seed(config["seed"], config["reproducibility"])
    _reset_root_logger()  # RecBole's init_logger uses basicConfig: once per process otherwise
    init_logger(config)
    logger = logging.getLogger()
    logger.info(config)

    ensure_dataset(config)
    dataset = GenRecDataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config.model_class)(config, model)
    if config["init_from"]:
        trainer.init_from_checkpoint(config["init_from"])

    callback = None
    if epoch_callback is not None:
        def callback(epoch, valid_score):
            epoch_callback(epoch, valid_score, trainer.last_valid_result)

    fit_start = perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"],
        callback_fn=callback,
    )
    fit_s = perf_counter() - fit_start
    test_start = perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=saved, diagnostics=True)
    test_s = perf_counter() - test_start
    logger.info(f"best valid: {dict(best_valid_result or {})}")
    logger.info(f"test result: {dict(test_result)}")

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "loss": config["loss"],
        "config": plain_config(config),
        "best_valid_score": _finite(best_valid_score),
        "valid": dict(best_valid_result or {}),
        "test": dict(test_result),
        "per_user": {"test": {"user_id": trainer.last_eval_users,
                              "target_rank": trainer.last_eval_ranks}},
        "valid_history": trainer.valid_history,
        "diagnostics": trainer.last_diagnostics,
        "loss_state": trainer.loss_state_summary(),
        "timings": {
            "total_s": perf_counter() - start,
            "fit_s": fit_s,
            "test_s": test_s,
            "epoch_train_s": trainer.epoch_times,
            "epochs_run": len(trainer.epoch_times),
            "stop_reason": trainer.stop_reason,
        },
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "checkpoint": trainer.saved_model_file if saved else None,
    }
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=1))
    result["result_file"] = str(result_file)
    return result


def _reset_root_logger():
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None
