"""Shared test fixtures.

Isolation (autouse, every test):

* the working directory is the test's ``tmp_path`` -- RecBole writes ``log/``,
  ``log_tensorboard/`` and ``saved/`` into the cwd;
* ``sys.argv`` is ``['pytest']`` -- RecBole's ``Config`` parses ``sys.argv``, so
  pytest's own flags would otherwise leak into configs;
* torch uses one thread (faster than two for the tiny models here, and the
  results do not depend on the machine's core count).

Datasets:

* ``make_dataset(root, name, sequences, codes=None, texts=None)`` writes the
  raw JSON format (``docs/data.md``) into ``root/json/<name>/``,
  converts it with :func:`recbole_genrec.data.convert.convert` into
  ``root/<name>/<name>.inter`` and ``.item`` and returns ``root/<name>``.
  Pass ``config_dict={"data_path": str(root)}`` and dataset ``name`` to
  :class:`~recbole_genrec.config.GenRecConfig` / ``quick_start.run``.
* ``tiny_dataset``: a deterministic synthetic dataset for end-to-end tests of
  any model (classic or generative) -- see :func:`tiny_dataset`.
"""

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

# the project root (run_recbole_genrec.py, recbole_genrec/) importable however pytest runs
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from recbole_genrec.data.convert import convert  # noqa: E402

LEVEL_LETTERS = "abcdefgh"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def code_tokens(codes: list[int]) -> list[str]:
    """``[3, 0, 2]`` -> ``["<a_3>", "<b_0>", "<c_2>"]`` (the shared index format)."""
    return [f"<{LEVEL_LETTERS[level]}_{code}>" for level, code in enumerate(codes)]


def write_json_dataset(folder: Path, name: str, sequences: dict, codes: dict | None = None,
                       texts: dict | None = None) -> Path:
    """Write ``<name>.inter.json``, ``<name>.index.rq-kmeans.json`` and, when ``texts``
    is given, ``<name>.item.json`` into ``folder``.  ``codes=None`` gives every item
    of ``sequences`` a unique 3-level code."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if codes is None:
        items = sorted({i for seq in sequences.values() for i in seq})
        codes = {i: [i // 16, (i // 4) % 4, i % 4] for i in items}
    (folder / f"{name}.inter.json").write_text(
        json.dumps({str(u): list(seq) for u, seq in sequences.items()}))
    (folder / f"{name}.index.rq-kmeans.json").write_text(
        json.dumps({str(i): code_tokens(c) for i, c in codes.items()}))
    if texts is not None:
        (folder / f"{name}.item.json").write_text(
            json.dumps({str(i): t for i, t in texts.items()}))
    return folder


def make_dataset(root, name: str, sequences: dict[int, list[int]],
                 codes: dict[int, list[int]] | None = None, texts: dict | None = None) -> Path:
    """Write the JSON files under ``root/json/<name>``, convert them into atomic
    files under ``root/<name>`` and return that folder."""
    root = Path(root)
    src = write_json_dataset(root / "json" / name, name, sequences, codes, texts)
    dst = root / name
    convert(src, dst, name)
    return dst


@pytest.fixture(name="make_dataset")
def make_dataset_fixture():
    """The :func:`make_dataset` helper, for tests that build their own data."""
    return make_dataset


@dataclass
class TinyDataset:
    name: str                        # dataset name (pass as ``dataset``)
    data_path: Path                  # parent folder (pass as config ``data_path``)
    folder: Path                     # data_path / name: Tiny.inter, Tiny.item
    sequences: dict                  # user index -> item indices, oldest first
    codes: dict                      # item index -> [c0, c1, c2], each in 0..3
    config: dict = field(default_factory=dict)  # {"data_path": ...}: merge into config_dict

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_items(self) -> int:
        return len(self.codes)


TINY_USERS, TINY_ITEMS, TINY_LEVELS, TINY_CODES_PER_LEVEL = 30, 40, 3, 4


def tiny_sequences_and_codes(seed: int = 0):
    rng = random.Random(seed)
    # 40 distinct codes out of the 4**3 = 64 possible ones
    all_codes = [[a, b, c] for a in range(4) for b in range(4) for c in range(4)]
    codes = {i: c for i, c in enumerate(rng.sample(all_codes, TINY_ITEMS))}
    sequences = {}
    for user in range(TINY_USERS):
        length = rng.randint(5, 12)
        # a little sequential structure (next item often item+1) so models can learn
        seq = [rng.randrange(TINY_ITEMS)]
        while len(seq) < length:
            nxt = (seq[-1] + 1) % TINY_ITEMS if rng.random() < 0.6 else rng.randrange(TINY_ITEMS)
            seq.append(nxt)
        sequences[user] = seq
    # every item occurs at least once (users 0..: append the missing ones up to 12)
    missing = sorted(set(codes) - {i for s in sequences.values() for i in s})
    for user in range(TINY_USERS):
        while missing and len(sequences[user]) < 12:
            sequences[user].append(missing.pop())
    assert not missing
    return sequences, codes


@pytest.fixture
def tiny_dataset(tmp_path) -> TinyDataset:
    """Deterministic synthetic dataset ``Tiny`` under ``tmp_path/data``.

    30 users (indices 0..29), 40 items (0..39), each sequence 5-12 items long
    (repeats allowed); every item occurs at least once.  Semantic IDs have 3
    levels with 4 codes per level and are unique (40 of the 64 combinations),
    so no collision level is added.  About 250 interactions: a 1-epoch run of a
    tiny model takes about a second.

    Use::

        run("SASRec", tiny_dataset.name, config_dict={**tiny_dataset.config, ...})
    """
    sequences, codes = tiny_sequences_and_codes()
    data_path = tmp_path / "data"
    folder = make_dataset(data_path, "Tiny", sequences, codes)
    return TinyDataset(name="Tiny", data_path=data_path, folder=folder, sequences=sequences,
                       codes=codes, config={"data_path": str(data_path)})
