"""The one place that writes the project's commands: the argv a process is started with,
and the line printed for the user to paste, in the form that works where they are.

From a clone, a run is ``<python> <clone>/run_recbole_genrec.py ...`` and the tuning
tools are ``cd <clone> && <python> -m tuning.<tool> ...``.  Installed (a wheel), they
are the console commands (``recbole-genrec``, ``recbole-genrec-tokenize``,
``recbole-genrec-search`` ...) when those are on ``PATH`` beside this interpreter,
``<python> -m recbole_genrec...`` otherwise.
"""

import os
import shlex
import shutil
import sys
from pathlib import Path

from recbole_genrec.paths import CHECKOUT, RUN_SCRIPT

# tool -> (console command, installed module, module in a clone)
TOOLS = {
    "run": ("recbole-genrec", "recbole_genrec", None),
    "tokenize": ("recbole-genrec-tokenize", "recbole_genrec.tokenize", "recbole_genrec.tokenize"),
    "search": ("recbole-genrec-search", "recbole_genrec.tuning.search", "tuning.search"),
    "compare": ("recbole-genrec-compare", "recbole_genrec.tuning.compare", "tuning.compare"),
    "reproduce": ("recbole-genrec-reproduce", "recbole_genrec.tuning.reproduce",
                  "tuning.reproduce"),
}


def argv(tool: str, args=()) -> list[str]:
    """The argv that starts ``tool`` with this interpreter (from a clone, the tuning
    tools need the clone as working folder or on PYTHONPATH: :func:`process_env`)."""
    _, installed, in_checkout = TOOLS[tool]
    if CHECKOUT is None:
        return [sys.executable, "-m", installed, *map(str, args)]
    if tool == "run":
        return [sys.executable, str(RUN_SCRIPT), *map(str, args)]
    return [sys.executable, "-m", in_checkout, *map(str, args)]


def pythonpath(current: str | None = None) -> str:
    """PYTHONPATH for a child process that must import this project (the clone first)."""
    return os.pathsep.join(p for p in (str(CHECKOUT) if CHECKOUT else None, current) if p)


def shown(tool: str, args=()) -> str:
    """The command line to print, in the form that works in the user's folder (from a
    clone, a tuning tool run elsewhere starts with ``cd <clone>`` and gets its relative
    paths made absolute)."""
    console, _, _ = TOOLS[tool]
    if CHECKOUT is None:
        found = shutil.which(console)
        if found and Path(found).parent == Path(sys.executable).parent:
            return shlex.join([console, *map(str, args)])
        return shlex.join(argv(tool, args))
    if tool in ("run", "tokenize"):  # a script by its path, or a module the install finds
        python, *rest = argv(tool, args)
        if tool == "run":
            rest[0] = as_typed(rest[0])
        return shlex.join([as_typed(python), *rest])
    if Path.cwd().resolve() == CHECKOUT:  # the clone's tuning/ is importable from here
        return shlex.join(argv(tool, args))
    return f"cd {shlex.quote(str(CHECKOUT))} && {shlex.join(argv(tool, absolute_paths(args)))}"


def as_typed(path) -> str:
    """A path as one would type it here: relative below the working directory
    (``.venv/bin/python``), absolute elsewhere."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def shown_from_checkout(tool: str, arg_lists) -> list[str]:
    """Several commands of one tool as printed lines: from a clone, a ``cd <clone>``
    line and then ``python <script or -m module> ...`` lines; installed, as :func:`shown`."""
    if CHECKOUT is None:
        return [shown(tool, args) for args in arg_lists]
    _, _, module = TOOLS[tool]
    head = ["python", "run_recbole_genrec.py"] if tool == "run" else ["python", "-m", module]
    if Path.cwd().resolve() == CHECKOUT:
        return [shlex.join(head + list(map(str, args))) for args in arg_lists]
    return [f"cd {shlex.quote(str(CHECKOUT))}"] + [shlex.join(head + absolute_paths(args))
                                                   for args in arg_lists]


# options whose values are paths (--config_files: several, space-separated)
PATH_OPTIONS = ("config_files", "data_path", "init_from", "resume_from", "result_file",
                "checkpoint_dir", "out", "results_dir", "storage_path", "space")


def absolute_paths(args) -> list[str]:
    """``--key=PATH`` arguments with relative paths made absolute (for a command that
    changes folder first)."""
    out = []
    for arg in map(str, args):
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("-") in PATH_OPTIONS and value not in ("", "None", "~"):
            value = " ".join(str(Path(v).absolute()) for v in value.split())
            arg = f"{key}={value}"
        out.append(arg)
    return out
