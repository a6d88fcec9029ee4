"""Checkpoint files: atomic writes, loads with errors that name the option, RNG states.

* :func:`atomic_save` writes to a temporary file in the same folder and renames it
  over the target, so a kill during a save leaves the previous file intact.
* :func:`load_checkpoint` reads a checkpoint with ``weights_only=True``; a file
  that is missing, truncated or not a checkpoint is a :class:`UserError` that
  names the option it came from.
* :func:`rng_state` / :func:`restore_rng` capture every random stream a run
  draws from (torch CPU and CUDA, NumPy, Python, the training loader's
  shuffling generator) as plain data that ``weights_only`` loading accepts.
"""

import os
import random
from pathlib import Path

import numpy as np
import torch

from recbole_genrec.errors import UserError


def atomic_save(obj, path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path, option: str, device="cpu") -> dict:
    """``torch.load(path, weights_only=True)``; ``option`` (e.g. ``--init_from``) is
    named in the error when the file cannot be read as a checkpoint."""
    if not Path(path).is_file():
        raise UserError(f"{option}={path}: file not found", None,
                        "give the path of a .pth checkpoint that a run of this project wrote")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- zip, pickle and EOF errors alike
        raise UserError(f"{option}={path} is not a readable checkpoint "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:120]})", None,
                        "the file is truncated or not a torch checkpoint; give another .pth, "
                        "e.g. the run's best checkpoint or its -last.pth") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{option}={path} holds no model state_dict", None,
                        "give a checkpoint written by recbole-genrec (run_recbole_genrec.py)")
    return checkpoint


def rng_state(train_loader=None) -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    generator = getattr(train_loader, "generator", None)
    if generator is not None:
        state["train_loader"] = generator.get_state()
    return state


def restore_rng(state: dict, train_loader=None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    generator = getattr(train_loader, "generator", None)
    if generator is not None and "train_loader" in state:
        generator.set_state(state["train_loader"])
