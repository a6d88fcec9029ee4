"""Small helpers shared by ``tuning.search`` and ``tuning.compare``.

YAML files are read with :func:`recbole_genrec.config.read_yaml` and values made
plain with :func:`recbole_genrec.trainer.plain_value`."""

from pathlib import Path

from recbole_genrec.run_files import last_checkpoint


def typed_overrides(overrides: dict) -> dict:
    """Command-line ``--key=value`` strings -> the typed values RecBole's config makes of them.

    Uses RecBole's own conversion (``Config._convert_config_dict``, which does not
    depend on the instance), so ``"1"`` -> 1, ``"[10, 20]"`` -> [10, 20],
    ``"1e-3"`` -> 0.001, ``"saved"`` -> ``"saved"``.
    """
    from recbole.config import Config

    return Config._convert_config_dict(None, dict(overrides))


def is_complete(result: dict) -> bool:
    """Whether a stored result JSON is of a finished run (results written before runs
    had a ``status`` are)."""
    return result.get("status", "complete") == "complete"


def resume_point(result: dict) -> str | None:
    """The training state an unfinished run's result points to, if that file exists."""
    last = (result.get("resume") or {}).get("last_checkpoint")
    return last if last and Path(last).is_file() else None


def remove_checkpoint(path) -> None:
    """Delete a run's best checkpoint and its training state (``<name>-last.pth``).
    Their folder stays: parallel runs that share it may be about to write into it
    (removing an empty folder raced with their start)."""
    Path(path).unlink(missing_ok=True)
    Path(last_checkpoint(path)).unlink(missing_ok=True)
