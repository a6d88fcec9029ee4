"""Command-line parsing shared by the entry points (``--key=value`` overrides)."""

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
            raise SystemExit(f"error: argument {arg!r} is not of the form --key=value")
        if key in overrides and overrides[key] != value:
            raise SystemExit(f"error: option --{key} given twice with different values")
        overrides[key] = value
    return overrides
