"""Convert the APAO release's JSON datasets into RecBole atomic files.

Input folder ``<src>`` (format: ``docs/data.md``)::

    <D>.inter.json            {"<user>": [item, ...]}   oldest first   (required)
    <D>.index.rq-kmeans.json  {"<item>": ["<a_159>", "<b_42>", ...]} (required)
    <D>.item.json             {"<item>": {"title", "description", ...}} (optional)

Output folder ``<dst>``::

    <D>.inter  user_id:token  item_id:token  timestamp:float
    <D>.item   item_id:token  sem_ids:token_seq  [title, description, brand, categories]:token_seq

The timestamp is the item's position in the user's sequence (an integer far
below 2**24, so RecBole's float32 storage keeps it exact and the time-ordered
leave-one-out split cannot reorder near-ties); the file is sorted by user and
position.  ``sem_ids`` holds the integer code of each level, space separated,
in level order.  Tabs and line breaks inside text fields are replaced by
spaces (the atomic format is tab separated; the count is reported) and text
containing double quotes is CSV-quoted, which RecBole's pandas reader undoes.

The imported codes get the tokenizer's quality report
(:mod:`recbole_genrec.tokenizer.code_report`: codes used, entropy and fan-out
per level, items sharing a full code), printed by the CLI; the summary line
says when items share a code and the dataset will get a disambiguation level.

Writing the files shows a progress bar (users, then items) when
``show_progress`` is true and the step takes more than half a second.

CLI::

    python -m recbole_genrec.data.convert --src raw/Office --dst dataset/Office
"""

import argparse
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbole_genrec.errors import DatasetFormatError, UserError, run_cli
from recbole_genrec.progress import bars_enabled, progress_bar
from recbole_genrec.tokenizer.code_report import code_quality, collision_summary, format_report

TEXT_FIELDS = ("title", "description", "brand", "categories")
_CODE_TOKEN = re.compile(r"^<([a-z])_(\d+)>$")
_WHITESPACE = re.compile(r"[\t\r\n]+")


@dataclass
class ConversionReport:
    dataset: str
    n_users: int = 0
    n_items: int = 0
    n_interactions: int = 0
    n_levels: int = 0
    items_without_interactions: int = 0
    text_fields_whitespace_normalised: int = 0
    files: list = field(default_factory=list)
    code_quality: dict = field(default_factory=dict)  # code_report.code_quality of the codes

    def summary(self) -> str:
        return (
            f"{self.dataset}: {self.n_users} users, {self.n_items} items, "
            f"{self.n_interactions} interactions, {self.n_levels}-level semantic IDs; "
            f"{self.items_without_interactions} catalogue items without interactions; "
            f"{self.text_fields_whitespace_normalised} text fields had tabs/line breaks "
            f"replaced by spaces; semantic IDs: {collision_summary(self.code_quality)}"
        )


def _unique_keys(path: Path):
    """``object_pairs_hook`` that refuses a key listed twice (``json`` keeps the last)."""
    def hook(pairs):
        counts = {}
        for key, _ in pairs:
            counts[key] = counts.get(key, 0) + 1
        repeated = {k: n for k, n in counts.items() if n > 1}
        if repeated:
            key, n = next(iter(repeated.items()))
            raise DatasetFormatError(
                f"key {key!r} is listed {n} times", str(path),
                f"merge its entries into one ({len(repeated)} repeated key(s); reading would "
                "keep only the last and drop the others)")
        return dict(pairs)
    return hook


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=_unique_keys(path))
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DatasetFormatError(f"{path}: not valid JSON ({e})") from None


def _int_key(path: Path, key: str, what: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise DatasetFormatError(
            f"{path}: {what} key {key!r} is not an integer index"
        ) from None


def read_interactions(path: Path) -> dict[int, list[int]]:
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise DatasetFormatError(f"{path}: expected an object {{user: [item, ...]}}")
    if not raw:
        raise DatasetFormatError("no users", str(path),
                                 "give at least one user with a list of item indices")
    sequences = {}
    for user, items in raw.items():
        uid = _int_key(path, user, "user")
        if uid in sequences:  # "7" and "07"
            raise DatasetFormatError(f"user {user!r} is user {uid} again", str(path),
                                     "list each user once")
        if not isinstance(items, list) or not items:
            raise DatasetFormatError(
                f"{path}: user {user}: expected a non-empty list of item indices"
            )
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise DatasetFormatError(
                f"{path}: user {user}: item indices must be integers, got {items[:5]}..."
            )
        sequences[uid] = items
    return sequences


def read_semantic_ids(path: Path) -> dict[int, list[int]]:
    """Parse ``{"item": ["<a_159>", "<b_42>", ...]}`` into integer codes per level."""
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise DatasetFormatError(f"{path}: expected an object {{item: [code, ...]}}")
    if not raw:
        raise DatasetFormatError("no items", str(path), "give every item its semantic-ID tokens")
    codes, n_levels, letters = {}, None, None
    for item, tokens in raw.items():
        iid = _int_key(path, item, "item")
        if iid in codes:
            raise DatasetFormatError(f"item {item!r} is item {iid} again", str(path),
                                     "list each item once")
        if not isinstance(tokens, list) or not tokens:
            raise DatasetFormatError(
                f"{path}: item {item}: expected a non-empty list of code tokens"
            )
        parsed = [_CODE_TOKEN.match(t) if isinstance(t, str) else None for t in tokens]
        if not all(parsed):
            raise DatasetFormatError(
                f"{path}: item {item}: code tokens must look like '<a_12>', got {tokens}"
            )
        if n_levels is None:
            n_levels, letters = len(tokens), [m.group(1) for m in parsed]
        if len(tokens) != n_levels:
            raise DatasetFormatError(
                f"{path}: item {item} has {len(tokens)} semantic-ID levels, expected "
                f"{n_levels} like the first item (semantic IDs of unequal length)"
            )
        if [m.group(1) for m in parsed] != letters:
            raise DatasetFormatError(
                f"{path}: item {item}: level prefixes {[m.group(1) for m in parsed]} "
                f"differ from {letters}"
            )
        codes[iid] = [int(m.group(2)) for m in parsed]
    return codes


def read_texts(path: Path) -> dict[int, dict]:
    """Parse ``{"item": {"title": ..., ...}}``; every record must be an object."""
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise DatasetFormatError(f"{path}: expected an object {{item: {{title, ...}}}}")
    texts = {}
    for item, record in raw.items():
        iid = _int_key(path, item, "item")
        if not isinstance(record, dict):
            raise DatasetFormatError(
                f"{path}: item {item}: expected an object with fields {list(TEXT_FIELDS)}, "
                f"got {type(record).__name__}"
            )
        texts[iid] = record
    return texts


def _clean_text(value, counter: list) -> str:
    text = "" if value is None else str(value)
    cleaned = _WHITESPACE.sub(" ", text)
    if cleaned != text:
        counter[0] += 1
    return cleaned.strip()


def convert(src: Path, dst: Path, name: str | None = None, show_progress: bool = False):
    """Convert ``src`` into atomic files in ``dst``; returns the report.

    A source that holds RecBole atomic files (``<D>.inter``, no ``<D>.inter.json``,
    e.g. RecBole's ``ml-100k``) is imported by
    :func:`recbole_genrec.data.import_atomic.import_atomic` instead; its items get
    semantic IDs from ``python -m recbole_genrec.tokenize``.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DatasetFormatError(f"source folder {src} does not exist", "--src",
                                 "give the folder that holds <D>.inter.json and "
                                 "<D>.index.rq-kmeans.json (format: docs/data.md)")
    name = name or src.name
    inter_path = src / f"{name}.inter.json"
    index_path = src / f"{name}.index.rq-kmeans.json"
    item_path = src / f"{name}.item.json"
    if not inter_path.exists() and (src / f"{name}.inter").is_file():
        from recbole_genrec.data.import_atomic import import_atomic
        return import_atomic(src, dst, name)

    sequences = read_interactions(inter_path)
    codes = read_semantic_ids(index_path)
    for uid, items in sequences.items():
        missing = [i for i in items if i not in codes]
        if missing:
            raise DatasetFormatError(
                f"{index_path}: item {missing[0]} (in user {uid}'s interactions in "
                f"{inter_path.name}) has no semantic ID; {len(missing)} such "
                f"interactions for this user"
            )
    texts = read_texts(item_path) if item_path.exists() else None
    if texts is not None and set(texts) - set(codes):
        stray = sorted(set(texts) - set(codes))
        raise DatasetFormatError(
            f"{len(stray)} item text record(s) for items without a semantic ID (first: "
            f"{stray[0]})", str(item_path), f"add them to {index_path.name} or remove them")

    report = ConversionReport(dataset=name)
    report.n_users = len(sequences)
    report.n_items = len(codes)
    report.n_levels = len(next(iter(codes.values())))
    report.code_quality = code_quality(np.array([codes[i] for i in sorted(codes)]))
    report.n_interactions = sum(len(s) for s in sequences.values())
    report.items_without_interactions = len(
        set(codes) - {i for s in sequences.values() for i in s}
    )

    dst.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(report.n_users + report.n_items, f"convert {name}", "row", show_progress)
    inter_out = dst / f"{name}.inter"
    with open(inter_out, "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for uid in sorted(sequences):
            for pos, iid in enumerate(sequences[uid]):
                f.write(f"{uid}\t{iid}\t{pos}\n")
            bar.update()

    item_out = dst / f"{name}.item"
    text_fields = TEXT_FIELDS if texts is not None else ()
    counter = [0]
    with open(item_out, "w", encoding="utf-8", newline="") as f:
        # csv quoting: text with '"' is quoted as pandas (RecBole's reader) expects
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        header = ["item_id:token", "sem_ids:token_seq"]
        writer.writerow(header + [f"{t}:token_seq" for t in text_fields])
        for iid in sorted(codes):
            row = [str(iid), " ".join(map(str, codes[iid]))]
            if texts is not None:
                record = texts.get(iid, {})
                row += [_clean_text(record.get(t), counter) for t in text_fields]
            writer.writerow(row)
            bar.update()
    bar.close()
    report.text_fields_whitespace_normalised = counter[0]
    report.files = [str(inter_out), str(item_out)]
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, type=Path, help="folder with <D>.*.json")
    parser.add_argument("--dst", required=True, type=Path, help="output folder")
    parser.add_argument("--name", default=None, help="dataset name (default: src folder name)")
    args = parser.parse_args(argv)
    report = convert(args.src, args.dst, args.name, show_progress=bars_enabled(None))
    print(report.summary())
    if getattr(report, "code_quality", None):  # not for an atomic (import_atomic) source
        print(format_report(report.code_quality, f"{report.dataset} imported codes"))
    for path in report.files:
        print("wrote", path)


if __name__ == "__main__":
    run_cli(main)
