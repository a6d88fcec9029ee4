"""A run's result JSON: where it goes, how it is written, what an unfinished run leaves.

* The path is the one given (``--result_file``), the resumed run's own, or
  ``<checkpoint_dir>/<model>-<dataset>-<loss>.json``; a default name that exists
  gets ``-2``, ``-3``, ... (never overwritten; the log says so).
* Writes are atomic (temporary file + rename) and a path that cannot be written
  is a :class:`UserError` naming the option.
* A run that does not finish leaves its status -- ``interrupted`` (Ctrl-C,
  SIGTERM), ``diverged`` or ``failed`` -- the epochs done and, when a training
  state exists, the command that continues it.
* A finished result is replaced by a finished result only: a run into a path that
  holds one (a rerun with a typo in another option, a resumed finished run) writes
  no ``running`` or ``failed`` status there; its own result replaces the old one
  when it finishes.
* A stub of a run that failed before its first epoch (an input error) holds no
  work: a default name that holds one is used again, not skipped for ``-2``.
"""

import contextlib
import json
import logging
import os
import shlex
from pathlib import Path

from recbole_genrec import commands
from recbole_genrec.errors import UserError
from recbole_genrec.run_files import default_result_file, free_result_file, read_result
from recbole_genrec.trainer.divergence import TrainingDiverged


def holds_finished_result(path) -> bool:
    return (read_result(path) or {}).get("status") == "complete"



def ensure_writable_folder(folder, option) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"{option}={folder} cannot be created ({e.strerror or e})", None,
                        "give a folder this user can write") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{option}={folder} is not writable", None,
                        "give a folder this user can write")


def write_json(path: Path, data: dict, option="--result_file") -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write the result JSON {path} ({e.strerror or e})", option,
                        "give a --result_file in a writable folder") from None


def resolve_result_file(config, explicit, resume_state) -> Path:
    """Where this run's result goes: the explicit path, the resumed run's, or the
    default name (suffixed when a file of that name exists)."""
    if explicit:
        return Path(explicit)
    if resume_state is not None and resume_state.get("result_file"):
        return Path(resume_state["result_file"])
    default = default_result_file(config)
    path = free_result_file(default)
    if path != default:
        logging.getLogger().warning(
            f"{default} exists (an earlier run's result); this run writes {path} "
            "(give --result_file=PATH to choose)")
    return path


def check_replaceable(path: Path, option="--result_file") -> None:
    """``path`` holds a finished result this run may replace when it finishes: the file
    and its folder (the atomic rename) must be writable now, not after training."""
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise UserError(f"cannot replace the result JSON {path} (not writable)", option,
                        "give a --result_file in a writable folder")
    logging.getLogger().warning(
        f"{path} holds a finished result; it is kept until this run finishes, and kept "
        "if this run does not finish")


def resume_command(model, dataset, config_files, cmd_overrides, last_model_file) -> str:
    options = {k: v for k, v in (cmd_overrides or {}).items() if k != "resume_from"}
    args = [f"--model={model}", f"--dataset={dataset}"]
    if config_files:
        args.append(f"--config_files={' '.join(map(str, config_files))}")
    args += [f"--{k}={v}" for k, v in options.items()] + [f"--resume_from={last_model_file}"]
    return shlex.join(commands.argv("run", args))


def write_unfinished(result_file, header, trainer, error, saved, keep_finished=False):
    """The result so far of a run that did not finish, and how to continue it;
    ``keep_finished``: ``result_file`` holds a finished result, which stays (the log
    says how to continue)."""
    status = ("interrupted" if isinstance(error, KeyboardInterrupt)
              else "diverged" if isinstance(error, TrainingDiverged) else "failed")
    last = (trainer.last_model_file if trainer is not None and saved
            and Path(trainer.last_model_file).is_file() else None)
    epochs = len(trainer.epoch_times) if trainer is not None else 0
    partial = {**header, "status": status, "error": f"{type(error).__name__}: {error}",
               "epochs_done": epochs}
    if trainer is not None:
        partial.update(best_epoch=trainer.best_epoch, valid_history=trainer.valid_history,
                       checkpoint=trainer.saved_model_file)
    if last is None:
        partial.pop("resume", None)
    logger = logging.getLogger()
    if keep_finished:
        logger.warning(f"this run ended {status}; the finished result in {result_file} is "
                       "kept")
    else:
        try:
            write_json(result_file, partial)
        except UserError:
            return
    if status == "interrupted":
        how = (f"continue with:\n  {header['resume']['command']}" if last else
               "no epoch had finished; run the same command again to start over")
        where = ("" if keep_finished else
                 f"; the result so far is in {result_file} (status: interrupted)")
        logger.warning(f"interrupted after {epochs} epoch(s){where}; {how}")
