"""Type and range of every numeric or enumerated option, declared in the YAML next to it.

A property file states an option's spec in braces at the start of its comment::

    apao_beta: 0.3            # {float >= 0} beta; paper grid ...
    apao_variant: pointwise   # {pointwise | pairwise} ...
    bear_beam_size: ~         # {int >= 1 or ~} B of the top-B threshold ...
    # learning_rate: {float > 0}     <- RecBole's own option: declared, value left to RecBole

Spec forms: ``int`` / ``float`` with up to two bounds (``{float > 0, <= 1}``),
``bool``, ``str``, choices ``a | b | c``; ``or ~`` allows None.  Floats must be
finite; an int is a valid float, a bool is neither.  :func:`check_options`
validates a resolved config against the specs of the files it was built from
(one mechanism for every option; nothing per loss or model).
"""

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

from recbole_genrec.errors import ConfigError
from recbole_genrec.paths import DATA_ROOT as _ROOT  # sources are shown relative to it

_SET = re.compile(r"^(\w+)\s*:.*?#\s*\{([^}]*)\}")       # key: value  # {spec} ...
_DECLARED = re.compile(r"^#\s*(\w+)\s*:\s*\{([^}]*)\}")  # # key: {spec} ...
_BOUND = re.compile(r"^(>=|<=|>|<)\s*(\S+)$")
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: str                       # int | float | bool | str | choice
    bounds: tuple = ()              # ((op, number), ...)
    choices: tuple = ()
    nullable: bool = False
    source: str = ""                # file:line that declares it

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        else:
            article = "an" if self.kind == "int" else "a"
            text = " ".join([f"{article} {self.kind}", ", ".join(f"{op} {v:g}" for op, v in self.bounds)])
        return text.strip() + (" or ~ (None)" if self.nullable else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "choice":
            return str(value) in self.choices
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        return all(_COMPARE[op](value, bound) for op, bound in self.bounds)


def parse_spec(name: str, text: str, source: str = "") -> OptionSpec:
    text, nullable = text.strip(), False
    if text.endswith(" or ~"):
        text, nullable = text[: -len(" or ~")].strip(), True
    if "|" in text:
        choices = tuple(c.strip() for c in text.split("|"))
        return OptionSpec(name, "choice", choices=choices, nullable=nullable, source=source)
    kind, _, rest = text.partition(" ")
    if kind not in ("int", "float", "bool", "str"):
        raise ValueError(f"{source}: option spec {{{text}}} of {name}: unknown type {kind!r}")
    bounds = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        match = _BOUND.match(part)
        if not match:
            raise ValueError(f"{source}: option spec {{{text}}} of {name}: bad bound {part!r}")
        bounds.append((match.group(1), float(match.group(2))))
    return OptionSpec(name, kind, tuple(bounds), nullable=nullable, source=source)


def read_specs(path) -> dict[str, OptionSpec]:
    """The specs a property file declares, by option name."""
    specs = {}
    path = Path(path).resolve()
    label = path.relative_to(_ROOT) if path.is_relative_to(_ROOT) else path
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _SET.match(line) or _DECLARED.match(line)
        if match:
            name, text = match.groups()
            specs[name] = parse_spec(name, text, f"{label}:{number}")
    return specs


def check_options(config: dict, specs: dict[str, OptionSpec], where) -> None:
    """Raise a :class:`ConfigError` for the first option whose value its spec rejects;
    ``where(name)`` says where the value was set (command line, a file, ...)."""
    for name, spec in specs.items():
        if name not in config:
            continue
        value = config[name]
        if not spec.accepts(value):
            shown = f"'{value}'" if isinstance(value, str) else value
            raise ConfigError(f"option {name}={shown} is not {spec.describe()}",
                            f"{where(name)}; range declared in {spec.source}",
                            f"give --{name} {spec.describe()}")
