"""Bring a RecBole atomic dataset (e.g. RecBole's own ml-100k) into this project's layout.

Input folder ``<src>``: ``<D>.inter`` with ``user_id``, ``item_id`` and
``timestamp`` (any further columns, e.g. ``rating``, are kept), ``<D>.item``
(item text; no semantic IDs needed) and optionally other atomic files
(``<D>.user``, ...), copied unchanged.

The ``.inter`` file is rewritten as the converter writes it: sorted by user,
then time, with ``timestamp`` = the position in the user's sequence.  RecBole
stores float fields as float32, whose resolution at Unix-time magnitudes is
64 seconds, so its time-ordered leave-one-out split could reorder nearby
interactions; positions are exact.  Interactions of one user with the same
timestamp keep their order in the source file (a stable sort; their number is
reported).  The original time stays in the column ``source_timestamp``.

Every item of the interactions must have a row in ``.item`` (the error gives
the count), since the models need each item's semantic ID.

CLI::

    python -m recbole_genrec.data.import_atomic --src raw/ml-100k --dst dataset/ml-100k

then ``recbole-genrec-tokenize --dataset=ml-100k`` writes the semantic IDs.
"""

import argparse
import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recbole_genrec.errors import DatasetFormatError

REQUIRED = ("user_id", "item_id", "timestamp")


@dataclass
class ImportReport:
    dataset: str
    n_users: int = 0
    n_items: int = 0
    n_interactions: int = 0
    items_without_interactions: int = 0
    same_time_interactions: int = 0
    files: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.dataset}: {self.n_users} users, {self.n_items} items, "
                f"{self.n_interactions} interactions; {self.items_without_interactions} "
                f"catalogue items without interactions; {self.same_time_interactions} "
                f"interactions share their user's timestamp with another (kept in file "
                f"order); timestamp = position in the user's sequence")


def _read_atomic(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")


def _column(frame: pd.DataFrame, path: Path, name: str) -> str:
    for header in frame.columns:
        if header.split(":", 1)[0] == name:
            return header
    raise DatasetFormatError(f"{path}: no {name} column; the header has "
                             f"{list(frame.columns)} (expected {', '.join(REQUIRED)})")


def import_atomic(src: Path, dst: Path, name: str | None = None) -> ImportReport:
    src, dst = Path(src), Path(dst)
    name = name or src.name
    inter_path, item_path = src / f"{name}.inter", src / f"{name}.item"
    inter = _read_atomic(inter_path)
    user, item, time = (_column(inter, inter_path, c) for c in REQUIRED)
    if inter.empty:
        raise DatasetFormatError("no interactions", str(inter_path),
                                 "give at least one user_id / item_id / timestamp row")
    try:
        seconds = inter[time].astype(float)
    except ValueError:
        raise DatasetFormatError(f"{inter_path}: {time} holds non-numeric values") from None
    items = _read_atomic(item_path)
    item_ids = items[_column(items, item_path, "item_id")]
    repeated = item_ids[item_ids.duplicated()]
    if len(repeated):
        raise DatasetFormatError(
            f"item {repeated.iloc[0]!r} has {int((item_ids == repeated.iloc[0]).sum())} rows",
            str(item_path), f"keep one row per item ({repeated.nunique()} repeated item id(s); "
            "RecBole would silently keep one)")
    catalogue = set(item_ids)
    unknown = inter[item][~inter[item].isin(catalogue)]
    if len(unknown):
        raise DatasetFormatError(
            f"{item_path}: item {unknown.iloc[0]!r} of {inter_path.name} has no row; "
            f"{len(unknown)} interactions affected (every item needs a row for its "
            "semantic ID)")

    order = pd.DataFrame({"user": inter[user], "t": seconds, "row": range(len(inter))})
    order["user_key"] = pd.to_numeric(order["user"], errors="coerce")
    by = ["user_key", "user", "t", "row"]
    order = order.sort_values(by, kind="stable")
    out = inter.loc[order["row"].to_numpy()].reset_index(drop=True)
    source = out[time].copy()
    out[time] = out.groupby(user, sort=False).cumcount().astype(str)
    out.insert(len(out.columns), "source_timestamp:float", source)

    report = ImportReport(dataset=name)
    report.n_users = int(inter[user].nunique())
    report.n_items = len(catalogue)
    report.n_interactions = len(inter)
    report.items_without_interactions = len(catalogue - set(inter[item]))
    report.same_time_interactions = int(
        pd.DataFrame({"u": inter[user], "t": seconds}).duplicated(keep=False).sum())

    dst.mkdir(parents=True, exist_ok=True)
    columns = [user, item, time] + [c for c in out.columns if c not in (user, item, time)]
    with open(dst / f"{name}.inter", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow([c.split(":", 1)[0] + ":" + ("float" if c == time else c.split(":", 1)[1])
                         for c in columns])
        writer.writerows(out[columns].itertuples(index=False, name=None))
    report.files.append(str(dst / f"{name}.inter"))
    for path in sorted(src.glob(f"{name}.*")):
        if path != inter_path and path.is_file():
            shutil.copy2(path, dst / path.name)
            report.files.append(str(dst / path.name))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, type=Path, help="folder with <D>.inter, <D>.item")
    parser.add_argument("--dst", required=True, type=Path, help="output folder")
    parser.add_argument("--name", default=None, help="dataset name (default: src folder name)")
    args = parser.parse_args(argv)
    report = import_atomic(args.src, args.dst, args.name)
    print(report.summary())
    for path in report.files:
        print("wrote", path)


if __name__ == "__main__":
    main()
