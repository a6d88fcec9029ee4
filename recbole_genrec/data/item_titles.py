"""Item titles as text identifiers (LLMRec): read from the ``.item`` file, made unique.

RecBole stores a ``token_seq`` text field (``title:token_seq``, as the converter
and ``import_atomic`` write it) as a list of space-separated words; a title is
those words joined by one space.  A ``token`` field is read as is.  An empty
title is an error, or with ``title_missing: item_id`` the text ``item <id>``
(Office of the APAO release has 3 items without a title).

Two items with the same title would be one identifier: beam search could not
tell them apart.  ``title_collision``:

* ``error`` (default): refuse, naming the title and the items that share it;
* ``suffix``: every item after the first (in item-id order) that shares a title
  gets `` (2)``, `` (3)``, ... appended, repeated until no title is shared
  (a suffix that recreates another item's title is extended again).

The same rule applies after tokenization (:func:`check_unique_token_ids`):
titles that differ only in characters a tokenizer maps alike are reported there.
"""

from collections import defaultdict

from recbole.utils import FeatureType

from recbole_genrec.data.convert import DatasetFormatError
from recbole_genrec.errors import ConfigError

TITLE_COLLISION_RULES = ("error", "suffix")


def item_titles(dataset, field: str, missing: str = "error") -> list[str]:
    """``[n_items]`` title per internal item id (index 0, RecBole's padding item: "").
    An item without a title is an error, or (``missing="item_id"``) is called
    ``item <its id>``."""
    item_path = f"{dataset.dataset_path}/{dataset.dataset_name}.item"
    if dataset.item_feat is None or field not in dataset.item_feat:
        raise DatasetFormatError(
            f"{item_path}: no item text field '{field}' loaded (option title_field); "
            f"LLMRec recommends items by their titles")
    ftype = dataset.field2type[field]
    tokens = dataset.field2id_token[field]
    column = dataset.item_feat[field].tolist()
    if ftype == FeatureType.TOKEN_SEQ:
        titles = [" ".join(str(tokens[t]) for t in row if t > 0) for row in column]
    elif ftype == FeatureType.TOKEN:
        titles = [str(tokens[t]) if t > 0 else "" for t in column]
    else:
        raise DatasetFormatError(f"{item_path}: field '{field}' is {ftype.value}; title_field "
                                 "must be a text field (token or token_seq)")
    titles[0] = ""
    empty = [i for i in range(1, len(titles)) if not titles[i].strip()]
    if empty and missing == "error":
        raw = dataset.id2token(dataset.iid_field, empty[0])
        raise DatasetFormatError(f"{item_path}: item '{raw}' has an empty '{field}' "
                                 f"({len(empty)} such items); every item needs a title, or "
                                 f"set title_missing=item_id to call them 'item <id>'")
    for i in empty:
        titles[i] = f"item {dataset.id2token(dataset.iid_field, i)}"
    return titles


def disambiguate_titles(titles: list[str], rule: str = "error", describe=str) -> list[str]:
    """Apply ``title_collision`` to ``titles`` (index 0 = padding, left alone).
    ``describe(i)`` names item ``i`` in the error message."""
    if rule not in TITLE_COLLISION_RULES:
        raise ConfigError(f"title_collision={rule!r}: expected one of "
                          f"{', '.join(TITLE_COLLISION_RULES)}")
    shared = shared_groups(titles[1:], offset=1)
    if not shared:
        return list(titles)
    if rule == "error":
        items = shared[0]
        raise ConfigError(
            f"{len(shared)} titles are shared by several items, e.g. {titles[items[0]]!r} "
            f"(items {', '.join(describe(i) for i in items[:5])})", "option title_collision",
            "set title_collision=suffix to append ' (2)', ' (3)', ... to the later ones")
    out = list(titles)
    taken = set(out[1:])
    for items in shared:
        for n, item in enumerate(items[1:], start=2):
            candidate = f"{out[item]} ({n})"
            while candidate in taken:
                candidate += f" ({n})"
            out[item] = candidate
            taken.add(candidate)
    return out


def shared_groups(keys: list, offset: int = 0) -> list[list[int]]:
    """Indices (plus ``offset``) of the keys that occur more than once, grouped,
    each group in increasing order, groups by their first index."""
    groups = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i + offset)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def check_unique_token_ids(token_ids: list[list[int]], titles: list[str]) -> None:
    """Distinct titles must also tokenize differently (index 0 ignored)."""
    shared = shared_groups([tuple(t) for t in token_ids[1:]], offset=1)
    if shared:
        items = shared[0]
        raise ConfigError(
            f"titles {[titles[i] for i in items[:3]]} are different texts with the same "
            f"tokens ({len(shared)} such groups)", "the LLM's tokenizer",
            "make the titles differ in characters the tokenizer keeps")
