"""The project's import structure, from the source (``ast``, nothing is imported):
modules, the arrows between them, import cycles, arrows that go back up the layers
of docs/structure.md, and the largest files.

    python benchmarks/import_graph.py [--root=DIR] [--json]

Every ``import`` counts, also those inside functions.  A module's *layer* is the
first entry of ``LAYERS`` whose pattern matches its name; a module may import its
own layer and the layers below.  An arrow into a higher layer is a *back arrow*.
A *cycle* is a group of modules that import each other, directly or around a loop
(a strongly connected component with more than one module).
"""

import argparse
import ast
import json
import sys
from fnmatch import fnmatch
from pathlib import Path

# lowest first: (layer, module name patterns)
LAYERS = [
    ("foundation", ["recbole_genrec", "recbole_genrec.errors", "recbole_genrec.paths",
                    "recbole_genrec.yaml_file", "recbole_genrec.run_files",
                    "recbole_genrec.commands", "recbole_genrec.cli", "recbole_genrec.progress",
                    "recbole_genrec.plain_data", "recbole_genrec.compat",
                    "recbole_genrec.option_specs", "recbole_genrec.distributed",
                    "recbole_genrec.torch_threads"]),
    ("building blocks", ["recbole_genrec.layers*", "recbole_genrec.tokenizer*"]),
    ("data", ["recbole_genrec.data*"]),
    ("models, losses, trainers", ["recbole_genrec.losses*", "recbole_genrec.model*",
                                  "recbole_genrec.trainer*"]),
    ("configuration", ["recbole_genrec.registry", "recbole_genrec.config"]),
    ("one run", ["recbole_genrec.quick_start", "recbole_genrec.result_file",
                 "recbole_genrec.run_summary"]),
    ("commands", ["recbole_genrec.launcher", "recbole_genrec.runner", "recbole_genrec.tokenize",
                  "recbole_genrec.__main__"]),
    ("tuning", ["tuning*"]),
    ("scripts", ["run_recbole_genrec"]),
]
SOURCES = ["recbole_genrec", "tuning", "run_recbole_genrec.py"]


def module_files(root: Path) -> dict[str, Path]:
    """``{module name: file}`` for the project's sources under ``root``."""
    files = {}
    for source in SOURCES:
        path = root / source
        for file in ([path] if path.is_file() else sorted(path.rglob("*.py"))):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = file
    return files


def imported_modules(name: str, file: Path, known: set) -> set[str]:
    """The project modules ``file`` imports (``from a import b``: ``a.b`` when that is
    a module, else ``a``)."""
    is_package = file.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a.b.function -> a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, p) for p in patterns):
            return index
    raise ValueError(f"{module} is in no layer of LAYERS")


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room_of(module: str, files: dict) -> str:
    """A subpackage of ``recbole_genrec`` (``data``, ``model`` ...) or ``tuning`` as one
    room; every other module is a room of its own."""
    parts = module.split(".")
    if parts[0] == "tuning":
        return "tuning"
    if len(parts) > 1 and files[".".join(parts[:2])].name == "__init__.py":
        return ".".join(parts[:2])
    return module


def structure(root: Path) -> dict:
    files = module_files(root)
    graph = {name: imported_modules(name, file, set(files)) for name, file in files.items()}
    rooms = {}
    for a, targets in graph.items():
        rooms.setdefault(room_of(a, files), set()).update(
            room_of(b, files) for b in targets if room_of(b, files) != room_of(a, files))
    back = sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer_of(b) > layer_of(a))
    sizes = sorted(((sum(1 for _ in open(f, encoding="utf-8")), str(f.relative_to(root)))
                    for f in files.values()), reverse=True)
    return {"modules": len(graph), "arrows": sum(map(len, graph.values())),
            "cycles": cycles(graph), "back_arrows": back,
            "rooms": len(rooms), "room_arrows": sum(map(len, rooms.values())),
            "room_cycles": cycles(rooms),
            "largest_files": [{"file": f, "lines": n} for n, f in sizes[:5]]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = structure(Path(args.root))
    if args.json:
        print(json.dumps(found, indent=1))
        return found
    print(f"{found['modules']} modules, {found['arrows']} arrows, {len(found['cycles'])} "
          f"cycle(s), {len(found['back_arrows'])} back arrow(s)")
    for cycle in found["cycles"]:
        print("  cycle: " + " <-> ".join(cycle))
    print(f"rooms (a subpackage or tuning/ as one): {found['rooms']} rooms, "
          f"{found['room_arrows']} arrows, {len(found['room_cycles'])} cycle(s)")
    for cycle in found["room_cycles"]:
        print("  room cycle: " + " <-> ".join(cycle))
    for a, b in found["back_arrows"]:
        print(f"  back arrow: {a} -> {b} ({LAYERS[layer_of(a)][0]} -> {LAYERS[layer_of(b)][0]})")
    print("largest files: " + ", ".join(f"{x['file']} ({x['lines']})"
                                        for x in found["largest_files"]))
    return found


if __name__ == "__main__":
    main()
