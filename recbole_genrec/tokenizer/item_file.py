"""The RecBole ``.item`` atomic file, read and rewritten with a new ``sem_ids`` column.

Read as RecBole reads it (tab separated, ``name:type`` header, pandas' CSV
quoting) but every value kept as the exact string, so that rewriting changes
nothing but the semantic-ID column.  The first rewrite keeps the untouched file
as ``<D>.item.orig``; later rewrites keep that copy as it is.  Files are written
to a temporary name and renamed, so a failed run leaves the old file.
"""

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_genrec.errors import DatasetFormatError

TEXT_TYPES = ("token", "token_seq")


@dataclass
class ItemFile:
    path: Path
    header: list[str]            # ["item_id:token", "sem_ids:token_seq", ...]
    frame: pd.DataFrame          # one string column per header entry, same order

    @property
    def fields(self) -> dict[str, str]:
        """field name -> RecBole type (``token``, ``token_seq``, ``float``, ...)."""
        return dict(h.split(":", 1) for h in self.header)

    def column(self, field: str) -> pd.Series:
        return self.frame[self._header_of(field)]

    def _header_of(self, field: str) -> str:
        for h in self.header:
            if h.split(":", 1)[0] == field:
                return h
        raise DatasetFormatError(f"{self.path}: no field {field!r}; the header has "
                                 f"{list(self.fields)}")

    def __len__(self) -> int:
        return len(self.frame)


def read_item_file(path: Path, item_field: str = "item_id") -> ItemFile:
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: item file not found (RecBole atomic file "
                                 f"<dataset>.item with an {item_field}:token column)")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")
    header = list(frame.columns)
    for h in header:
        if ":" not in h:
            raise DatasetFormatError(f"{path}: header entry {h!r} is not of the form "
                                     f"name:type")
    item_file = ItemFile(path, header, frame)
    ids = item_file.column(item_field)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise DatasetFormatError(f"{path}: item {duplicated.iloc[0]!r} has more than one "
                                 f"row ({len(duplicated)} duplicate rows)")
    return item_file


def original_copy_path(path: Path) -> Path:
    return Path(str(path) + ".orig")


def write_sem_ids(item_file: ItemFile, codes: np.ndarray, sem_field: str = "sem_ids",
                  item_field: str = "item_id") -> Path:
    """Rewrite ``item_file.path`` with ``codes [n_items, L]`` (rows in file order) as
    the ``sem_field:token_seq`` column: replaced in place if present, else inserted
    after ``item_field``.  Returns the path of the copy of the original file."""
    if len(codes) != len(item_file):
        raise ValueError(f"{item_file.path}: {len(codes)} codes for {len(item_file)} items")
    header = list(item_file.header)
    columns = [item_file.frame[h] for h in header]
    new_column = pd.Series([" ".join(map(str, row)) for row in np.asarray(codes).tolist()])
    existing = [i for i, h in enumerate(header) if h.split(":", 1)[0] == sem_field]
    if existing:
        position = existing[0]
        header[position] = f"{sem_field}:token_seq"
        columns[position] = new_column
    else:
        position = header.index(item_file._header_of(item_field)) + 1
        header.insert(position, f"{sem_field}:token_seq")
        columns.insert(position, new_column)

    backup = original_copy_path(item_file.path)
    if not backup.exists():
        shutil.copy2(item_file.path, backup)
    tmp = item_file.path.with_name(item_file.path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*(c.tolist() for c in columns)))
    os.replace(tmp, item_file.path)
    return backup
