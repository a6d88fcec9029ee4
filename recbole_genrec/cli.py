"""Command-line parsing shared by the entry points (``--key=value`` overrides)."""

from recbole_genrec.errors import UserError


class UsageError(UserError, SystemExit):
    """A malformed command line (also a ``SystemExit``, so scripts that call a
    ``main`` directly stop with the message)."""

    def __init__(self, what, where=None, todo=None):
        UserError.__init__(self, what, where, todo)
        self.code = f"error: {self}"


# options that may be given without a value, meaning true (``--verbose``)
SWITCHES = ("verbose",)


def parse_overrides(argv: list[str]) -> dict:
    """``["--epochs=2", "--model=TIGER"]`` -> ``{"epochs": "2", "model": "TIGER"}``.

    Values stay strings; the config converts them as RecBole does.  A switch
    alone (``--verbose``) means ``--verbose=True``.  Anything else that is not
    ``--key=value`` is an error naming the argument.
    """
    overrides = {}
    for arg in argv:
        if arg[2:] in SWITCHES and arg.startswith("--"):
            arg += "=True"
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            raise UsageError(f"argument {arg!r} is not of the form --key=value", "command line",
                             "write options as --key=value, e.g. --epochs=2")
        if key in overrides and overrides[key] != value:
            raise UsageError(f"option --{key} given twice with different values", "command line",
                             "keep one of them")
        overrides[key] = value
    return overrides
