"""One training run: config -> data -> model -> fit -> test -> result JSON.

This replaces ``recbole.quick_start.run_recbole``, which re-resolves models by
name (unknown names fail with an unrelated ``lightgbm`` import error), counts
FLOPs by calling ``model.predict`` and reports to Ray Tune with a keyword form
that current Ray rejects.

What the run shows: the config and dataset statistics (RecBole's), the model as
parameters per block (the full tree with ``verbose: true``), progress bars when
``show_progress`` says so (:mod:`recbole_genrec.progress`) and one line per
epoch; TensorBoard scalars go to ``log_tensorboard/<result JSON's name>/``.
``threads`` sets torch's CPU threads (:mod:`recbole_genrec.torch_threads`).

Results are never lost: the result path is checked and claimed before the data
is loaded (a JSON with ``status: running``, :mod:`recbole_genrec.result_file`);
the trainer writes the whole training state after every epoch
(``<checkpoint>-last.pth``); Ctrl-C or SIGTERM write the result so far with
``status: interrupted`` and the command that continues the run
(``--resume_from=<checkpoint>-last.pth``); a diverged run is marked
``diverged``, a failed one ``failed``.  A finished run is ``complete``.
"""

import contextlib
import logging
import math
import os
from pathlib import Path
from time import perf_counter, process_time

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed
from tqdm.contrib.logging import logging_redirect_tqdm

from recbole_genrec import distributed
from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.convert import convert
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.errors import DatasetNotFoundError, UserError
from recbole_genrec.paths import RAW_DATA
from recbole_genrec.progress import bars_enabled
from recbole_genrec.registry import get_trainer
from recbole_genrec.run_files import tensorboard_name
from recbole_genrec.run_summary import model_summary
from recbole_genrec.torch_threads import set_torch_threads
from recbole_genrec.result_file import (check_replaceable, ensure_writable_folder,
                                        holds_finished_result, resolve_result_file,
                                        resume_command, write_json, write_unfinished)
from recbole_genrec.trainer import plain_config
from recbole_genrec.trainer.checkpoint_io import load_checkpoint
from recbole_genrec.trainer.tensorboard_run import TensorBoardRun

SHARED_DATA = RAW_DATA  # raw datasets (JSON, docs/data.md); $RECBOLE_GENREC_RAW_DATA


def ensure_dataset(config) -> None:
    """Convert the raw ``<SHARED_DATA>/<D>`` on first use when ``<data_path>/<D>.inter``
    is absent."""
    name, path = config["dataset"], Path(config["data_path"])
    if (path / f"{name}.inter").is_file():
        return
    if (path / f"{name}.inter").exists():
        raise DatasetNotFoundError(f"{path / (name + '.inter')} is not a file", "--data_path",
                                   "give the folder that holds <dataset>/<dataset>.inter")
    source = SHARED_DATA / name
    if not source.is_dir():
        raise DatasetNotFoundError(
            f"dataset {name!r}: neither {path / (name + '.inter')} nor {source} exists",
            "--dataset / --data_path", "give the folder that holds <dataset>/<dataset>.inter "
            "with --data_path=FOLDER, or the folder of raw JSON datasets with "
            "RECBOLE_GENREC_RAW_DATA=FOLDER (docs/data.md)")
    report = convert(source, path, name, show_progress=bars_enabled(config["show_progress"]))
    logging.getLogger().info("converted %s", report.summary())


def run(model, dataset, config_files=None, config_dict=None, cmd_overrides=None,
        epoch_callback=None, result_file=None, saved=True, config=None) -> dict | None:
    """Train, validate and test one configuration in this process (one rank of a
    data-parallel run: :mod:`recbole_genrec.launcher` starts the ranks); write and return
    the result dict (None on ranks other than 0).

    ``epoch_callback(epoch, valid_score, valid_result)`` is called after every
    validation (hyperparameter search reports through it).  ``config``: the
    :class:`GenRecConfig` of these arguments, when the caller has built it already.
    """
    start, cpu_start = perf_counter(), process_time()
    config = config or GenRecConfig(model, dataset, config_files, config_dict, cmd_overrides)
    if config["nproc"] > 1 and config["single_spec"]:
        raise UserError(f"nproc={config['nproc']} needs one process per rank", "quick_start.run",
                        "start the run with recbole_genrec.launcher.launch (the recbole-genrec "
                        "command does)")
    main = distributed.is_main()
    resume_state = (load_checkpoint(config["resume_from"], "--resume_from")
                    if config["resume_from"] else None)
    init_seed(config["seed"], config["reproducibility"])
    _reset_root_logger()  # RecBole's init_logger uses basicConfig: once per process otherwise
    # RecBole's ensure_dir (exists? then makedirs) fails when parallel runs or the ranks
    # of one run create the log folder at once; exist_ok does not
    os.makedirs(Path("log") / config["model"], exist_ok=True)
    init_logger(config)
    logger = logging.getLogger()
    ensure_writable_folder(config["checkpoint_dir"], "--checkpoint_dir")
    result_file = distributed.broadcast(
        resolve_result_file(config, result_file or config["result_file"], resume_state)
        if main else None)
    header = {"status": "running", "model": config["model"], "dataset": config["dataset"],
              "loss": config["loss"], "config": plain_config(config)}
    # a finished result is replaced by a finished result only (result_file.py)
    keep_finished = main and holds_finished_result(result_file)
    if keep_finished:
        check_replaceable(result_file)
    elif main:  # claims the name and checks it is writable, before training
        write_json(result_file, header)
    trainer = None
    try:  # from here on, an interruption or error is written into the result JSON
        threads = set_torch_threads(config["threads"], logger)
        logger.info(config)
        bars = bars_enabled(config["show_progress"])
        with logging_redirect_tqdm() if bars else contextlib.nullcontext():  # log lines above bars
            if main:
                ensure_dataset(config)
            distributed.barrier()  # converted once, by rank 0
            dataset = GenRecDataset(config)
            logger.info(dataset)
            train_data, valid_data, test_data = data_preparation(config, dataset)
            distributed.seed_data_order(train_data, config["seed"])

            distributed.seed_rank(config["seed"], config["reproducibility"])
            model = config.model_class(config, train_data._dataset).to(config["device"])
            logger.info(model if config["verbose"] else model_summary(model))
            trainer = get_trainer(config.model_class)(config, model)
            trainer.tensorboard = TensorBoardRun(
                tensorboard_name(result_file, config["checkpoint_dir"]), enabled=main)
            trainer.result_file = str(result_file)
            if config["init_from"]:
                trainer.init_from_checkpoint(config["init_from"])
            if resume_state is not None:
                trainer.resume_from(config["resume_from"], resume_state)
            header["resume"] = {"last_checkpoint": trainer.last_model_file,
                                "command": resume_command(config["model"], config["dataset"],
                                                          config_files, cmd_overrides,
                                                          trainer.last_model_file)}
            if main and not keep_finished:
                write_json(result_file, header)

            callback = None
            if epoch_callback is not None:
                def callback(epoch, valid_score):
                    epoch_callback(epoch, valid_score, trainer.last_valid_result)

            fit_start = perf_counter()
            best_valid_score, best_valid_result = trainer.fit(
                train_data, valid_data, saved=saved, show_progress=bars, callback_fn=callback)
            fit_s = perf_counter() - fit_start
            # the replicas and the loss's state after training (the test loads the best
            # checkpoint, and with it the best epoch's loss state, e.g. APAO's weights)
            replicas = distributed.gather(distributed.weights_fingerprint(trainer.model))
            loss_state = trainer.loss_state_summary()
            test_start = perf_counter()
            test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=bars,
                                           diagnostics=True)
            test_s = perf_counter() - test_start
    except BaseException as e:  # Ctrl-C, SIGTERM, divergence, errors: say what is left
        if main:
            write_unfinished(result_file, header, trainer, e, saved, keep_finished)
        raise
    if not main:
        return None
    _log_test(trainer, test_result)
    logger.info(f"best valid: {_plain_metrics(best_valid_result)}")
    logger.info(f"test result: {_plain_metrics(test_result)}")

    result = {
        "status": "complete",
        "model": config["model"],
        "dataset": config["dataset"],
        "loss": config["loss"],
        "config": plain_config(config),
        "best_valid_score": _finite(best_valid_score),
        "valid": dict(best_valid_result or {}),
        "test": dict(test_result),
        "per_user": {"test": {"user_id": trainer.last_eval_users,
                              "target_rank": trainer.last_eval_ranks}},
        "best_epoch": trainer.best_epoch,
        "valid_history": trainer.valid_history,
        "diagnostics": trainer.last_diagnostics,
        "loss_state": loss_state,
        "timings": {
            "total_s": perf_counter() - start,
            "process_cpu_s": process_time() - cpu_start,  # this process's CPU seconds
            "fit_s": fit_s,
            "test_s": test_s,
            "valid_s": sum(trainer.valid_times),
            "epoch_train_s": trainer.epoch_times,
            "epochs_run": len(trainer.epoch_times),
            "stop_reason": trainer.stop_reason,
        },
        "device": str(config["device"]),
        "torch_threads": threads,
        "checkpoint": trainer.saved_model_file if saved else None,
        "last_checkpoint": trainer.last_model_file if saved else None,  # training state
        "tensorboard": str(trainer.tensorboard.log_dir),
    }
    result.update(_evaluation_marks(trainer, test_result, dataset, logger))
    if distributed.active():
        result["distributed"] = {"world_size": config["world_size"],
                                 "backend": distributed.backend_for(config["device"]),
                                 "replicas_identical": all(w == replicas[0] for w in replicas)}
    write_json(result_file, result)
    result["result_file"] = str(result_file)
    return result


def _evaluation_marks(trainer, test_result, dataset, logger) -> dict:
    """What the test metrics leave out, marked in the result JSON and the log: the users
    the split gives no test row (too few interactions), and @K metrics beyond a beam
    narrower than K (beam search returns beam_size items: recall@50 with a beam of 20
    counts those 20 alone)."""
    marks = {}
    n_users = dataset.user_num - 1  # RecBole's id 0 is padding
    missing = n_users - len(set(trainer.last_eval_users))
    if missing > 0:
        marks["users_not_tested"] = missing
        logger.warning(f"{missing} of {n_users} users have no test row (too few "
                       "interactions for the split) and are not in the test metrics")
    beam = getattr(trainer.model, "beam_size", None)
    if getattr(trainer, "ranking_mode", None) == "beam" and beam:
        beyond = [m for m in test_result if "@" in m and int(m.split("@")[1]) > beam]
        if beyond:
            marks["beam_limited"] = {"beam_size": beam, "metrics": beyond}
            logger.warning(f"{', '.join(beyond)}: K > beam_size={beam}, so these count the "
                           f"beam's {beam} items only (result JSON: beam_limited)")
    return marks


def _log_test(trainer, test_result):
    """Test metrics and PR@K into the TensorBoard run, at the best epoch."""
    step = trainer.best_epoch or 0
    trainer.tensorboard.add_scalars_at({f"Test/{k}": v for k, v in test_result.items()}, step)
    pruning = trainer.last_diagnostics.get("pruning_rate", {})
    trainer.tensorboard.add_scalars_at(
        {f"PR{k}": v for k, v in pruning.items() if k.startswith("@")}, step)
    trainer.tensorboard.close()


def _plain_metrics(metrics) -> dict:
    return {k: float(v) for k, v in dict(metrics or {}).items()}


def _reset_root_logger():
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None
