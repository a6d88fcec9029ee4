"""One error style for every command line of the project, and the project's exceptions
(imports nothing of the project: every module may use it).

Bad input that the user can fix (an option, a file, the data) raises a
:class:`UserError`, whose message reads ``<what> (<where>); <what to do>``.
:func:`run_cli` runs a command's ``main``: a ``UserError`` becomes one line
``error: <message>`` on stderr and exit code 2; anything else (a bug, or input
nobody foresaw) one line naming the exception and exit code 1.  The traceback
is shown only with ``--debug``.  Ctrl-C / SIGTERM end with 130 / 143 (the
run has already said how to continue).
"""

import signal
import sys
import traceback

EXIT_USAGE = 2


class UserError(Exception):
    """Input the user can correct: ``what`` went wrong, ``where``, what to do."""

    def __init__(self, what: str, where: str | None = None, todo: str | None = None):
        message = what + (f" ({where})" if where else "") + (f"; {todo}" if todo else "")
        super().__init__(message)


class ConfigError(UserError, ValueError):
    """A configuration file or option is invalid."""


class DatasetFormatError(UserError, ValueError):
    """A dataset file does not have the expected content."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """Neither the atomic files of a dataset nor its source folder exist."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM delivered as an exception, so that runs clean up as on Ctrl-C."""

    signum = signal.SIGTERM


def raise_on_sigterm():
    """From now on SIGTERM raises :class:`Interrupted` in the main thread; returns
    the handler it replaced."""
    def handler(signum, frame):
        raise Interrupted()
    return signal.signal(signal.SIGTERM, handler)


def run_cli(main, argv=None) -> None:
    """``sys.exit(main(argv))`` with the project's error style (see the module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = any(a in ("--debug", "--debug=true", "--debug=True") for a in argv)
    argv = [a for a in argv if not a.startswith("--debug")]
    previous = raise_on_sigterm()
    try:
        code = main(argv)
    except KeyboardInterrupt as e:
        if debug:
            traceback.print_exc()
        sys.exit(128 + getattr(e, "signum", signal.SIGINT))
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except Exception as e:  # noqa: BLE001 -- the last line of defence of a CLI
        if debug:
            traceback.print_exc()
        print(f"error: {type(e).__name__}: {e} (unexpected); rerun with --debug for the "
              "traceback and report it if the input looks right", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)
