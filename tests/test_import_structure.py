"""The import structure of docs/structure.md: no import cycle, no arrow back up the
layers, the foundation imports nothing above it (benchmarks/import_graph.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import import_graph  # noqa: E402


def test_no_cycles_and_no_back_arrows():
    found = import_graph.structure(Path(__file__).resolve().parents[1])
    assert found["cycles"] == [] and found["room_cycles"] == []
    assert found["back_arrows"] == []


def test_every_module_has_a_layer():
    for module in import_graph.module_files(Path(__file__).resolve().parents[1]):
        import_graph.layer_of(module)  # raises for a module no layer names
