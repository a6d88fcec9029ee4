"""The dataset class every model of this project loads through.

Classic (SASRec, BERT4Rec) and generative models share this class and the same
``load_col``, so their leave-one-out splits are identical.  On top of RecBole's
:class:`SequentialDataset` it checks the input instead of letting RecBole drop
rows silently:

* each requested column exists in its atomic file (error names file and field);
  a missing ``.item`` file or ``sem_ids`` column is an error that prints the
  tokenizer command that creates it (``python -m recbole_genrec.tokenize``);
* every item of the interactions has a row in ``.item`` with a semantic ID
  (RecBole would drop those interactions in ``filter_inter_by_user_or_item``);
* all semantic IDs have the same number of levels.

A model that reads item titles (LLMRec's ``title_field``) gets that column loaded
from ``.item`` whatever ``load_col`` lists.

It also loads with pandas copy-on-write switched off: under copy-on-write
(opt-in on pandas 2 via ``mode.copy_on_write`` or ``PANDAS_COPY_ON_WRITE=1``,
the default on pandas 3) RecBole's ``df[field].fillna(..., inplace=True)`` is a
silent no-op, so missing token ids become INT64_MIN and ``token_seq`` fields
with a missing value crash.
"""

from pathlib import Path

import pandas as pd
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource

from recbole_genrec import commands
from recbole_genrec.paths import DATASET_ROOT
from recbole_genrec.errors import DatasetFormatError
from recbole_genrec.data.sequence_windows import TRAINED_TARGETS, sequence_rows


def tokenize_command(config) -> str:
    """The command that writes the semantic-ID column this config reads."""
    args = [f"--dataset={config['dataset']}"]
    if Path(config["data_path"]).resolve().parent != DATASET_ROOT.resolve():
        args.append(f"--data_path={Path(config['data_path']).parent}")
    if config["sem_id_field"] != "sem_ids":
        args.append(f"--sem_id_field={config['sem_id_field']}")
    return commands.shown("tokenize", args)


def missing_semantic_ids(config, item_path, what: str) -> DatasetFormatError:
    return DatasetFormatError(
        f"{item_path}: {what}, so the items have no semantic IDs "
        f"('{config['sem_id_field']}', read by every model of this project: load_col). "
        f"Create them from the item text (or your embeddings) with:\n"
        f"    {tokenize_command(config)}\n"
        f"(docs/data.md)")


def _check_row_widths(filepath, separator: str, encoding: str) -> None:
    """Every row has as many values as the header has fields (pandas drops the extra
    values of a wider row without a word)."""
    with open(filepath, encoding=encoding) as f:
        width = f.readline().count(separator)
        for line_no, line in enumerate(f, start=2):
            if line.count(separator) != width and line.strip():
                raise DatasetFormatError(
                    f"{filepath}: line {line_no} has {line.count(separator) + 1} values, the "
                    f"header {width + 1} fields (separator {separator!r})")


def _check_complete_rows(df: pd.DataFrame, filepath) -> None:
    """Interactions: at least one row, and a value in every loaded field of every row.
    RecBole fills a missing value in (a float with the column's mean, a token with
    padding): a missing timestamp moved an interaction in its user's sequence, and with
    it the user's test item."""
    if df.empty:
        raise DatasetFormatError(f"{filepath}: no interactions (a header and no rows)")
    for field in df.columns:
        missing = df[field].isna()
        if missing.any():
            line = int(missing.values.argmax()) + 2  # 1-based, after the header
            raise DatasetFormatError(
                f"{filepath}: line {line} has no value for '{field}' ({int(missing.sum())} "
                f"row(s) like it); RecBole would fill it in (a float with the column's "
                f"mean, a token with padding) and move or drop those interactions: give "
                f"every row a value or remove the row")


class GenRecDataset(SequentialDataset):
    def __init__(self, config):
        with pd.option_context("mode.copy_on_write", False):
            super().__init__(config)

    def build(self):
        """RecBole's split; with ``train_mode: sequence`` the training rows become the
        causal windows of :mod:`recbole_genrec.data.sequence_windows`."""
        datasets = super().build()
        if self.config["train_mode"] == "sequence":
            train = datasets[0]
            feat = train.inter_feat
            max_len = self.config["MAX_ITEM_LIST_LENGTH"]
            keep, trained, beyond = sequence_rows(feat[self.uid_field], feat[self.item_list_length_field],
                                          max_len, self.config["sequence_stride"])
            train.inter_feat = feat[keep]
            train.inter_feat.update(Interaction({TRAINED_TARGETS: trained[keep]}))
            self.logger.info(
                f"train_mode=sequence: {len(feat)} training targets in {int(keep.sum())} rows; "
                f"{int(beyond.sum())} targets lie beyond MAX_ITEM_LIST_LENGTH={max_len} "
                f"(sequence_stride={self.config['sequence_stride']})")
        return datasets

    def _get_load_and_unload_col(self, source):
        """RecBole's, plus the item text field that LLMRec reads (``title_field``)."""
        load_col, unload_col = super()._get_load_and_unload_col(source)
        title = self.config["title_field"]
        if title and load_col is not None and getattr(source, "value", source) == "item":
            load_col = load_col | {self.config["ITEM_ID_FIELD"], title}
        return load_col, unload_col

    def _load_feat(self, filepath, source):
        """RecBole's, with every way a file can be unreadable or incomplete named."""
        try:
            df = self._read_feat(filepath, source)
        except DatasetFormatError:
            raise
        except (OSError, ValueError) as e:  # a folder, binary data, a row of the wrong width
            what = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise DatasetFormatError(
                f"{filepath}: cannot be read as an atomic file ({what.splitlines()[0]}); "
                f"expected a text file with a header of name:type fields and one row per "
                f"line, separated by {self.config['field_separator']!r}") from None
        if source == FeatureSource.INTERACTION and df is not None:
            _check_row_widths(filepath, self.config["field_separator"], self.config["encoding"])
            _check_complete_rows(df, filepath)
        return df

    def _read_feat(self, filepath, source):
        load_col, _ = self._get_load_and_unload_col(source)
        if load_col:
            with open(filepath, encoding=self.config["encoding"]) as f:
                header = f.readline().rstrip("\n").split(self.config["field_separator"])
            present = {h.split(":")[0] for h in header}
            missing = sorted(set(load_col) - present)
            if self.config["sem_id_field"] in missing:
                raise missing_semantic_ids(
                    self.config, filepath,
                    f"missing required field '{self.config['sem_id_field']}'")
            if missing:
                raise DatasetFormatError(
                    f"{filepath}: missing required field(s) {missing}; the header has "
                    f"{sorted(present)} (set by load_col in the config)"
                )
        return super()._load_feat(filepath, source)

    def _load_data(self, token, dataset_path):
        inter_path = Path(dataset_path) / f"{token}.inter"
        if inter_path.exists() and not inter_path.is_file():
            raise DatasetFormatError(f"{inter_path}: a folder, not an atomic file")
        sem_field = self.config["sem_id_field"]
        item_path = Path(dataset_path) / f"{token}.item"
        wanted = (self.config["load_col"] or {}).get("item") or []
        if sem_field and sem_field in wanted and not item_path.is_file():
            raise missing_semantic_ids(
                self.config, item_path, "file not found (it needs item_id:token, the item "
                "text, e.g. title:token_seq, and the semantic IDs)")
        super()._load_data(token, dataset_path)
        if sem_field and self.item_feat is not None and sem_field in self.item_feat:
            self._check_semantic_ids(Path(dataset_path) / f"{token}.item", sem_field)

    def _check_semantic_ids(self, item_path: Path, sem_field: str):
        item_field = self.iid_field
        lengths = self.item_feat[sem_field].map(len)
        empty = self.item_feat[item_field][lengths == 0]
        if len(empty):
            raise DatasetFormatError(
                f"{item_path}: item {empty.iloc[0]!r} has an empty '{sem_field}' "
                f"({len(empty)} such items)"
            )
        if lengths.nunique() > 1:
            first = int(lengths.iloc[0])
            odd = self.item_feat[item_field][lengths != first]
            raise DatasetFormatError(
                f"{item_path}: semantic IDs of unequal length in '{sem_field}': item "
                f"{odd.iloc[0]!r} has {int(lengths[lengths != first].iloc[0])} levels, "
                f"item {self.item_feat[item_field].iloc[0]!r} has {first}"
            )
        known = set(self.item_feat[item_field])
        inter_items = self.inter_feat[item_field]
        unknown = inter_items[~inter_items.isin(known)]
        if len(unknown):
            raise DatasetFormatError(
                f"{item_path}: item {unknown.iloc[0]!r} of the interactions has no row "
                f"(and so no '{sem_field}') in the item file; {len(unknown)} interactions "
                f"affected. RecBole would drop them silently."
            )
