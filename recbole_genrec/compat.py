"""Fixes for RecBole 1.2.1 on today's stack (numpy 2, torch >= 2.6, pandas 2.x).

Imported first by :mod:`recbole_genrec`; each fix is narrow and tested in
``tests/test_compat.py``:

* numpy 2 removed ``np.float_``/``np.complex_``/``np.unicode_``, which
  ``Config.compatibility_settings`` touches (RecBole issue #2215).  The
  replacement sets the same legacy aliases from names numpy 2 still has.
* RecBole's sequential model package imports ``sine.py``, which calls
  ``torch.autograd.set_detect_anomaly(True)`` at import time and leaves
  anomaly detection on for the whole process (2-3x slower training).  We
  import the package once here and switch it off again.
* RecBole fills missing values with ``df[field].fillna(..., inplace=True)``
  (``Dataset._load_feat``, ``Dataset._fill_nan``) and measures sequence
  lengths with ``Series.agg(len)`` (``Dataset._remap``).  pandas 2.2+ warns on
  both at every run (a FutureWarning that reads like an error), and under
  copy-on-write -- the pandas 3 default -- the fill is a silent no-op (missing
  tokens become INT64_MIN, ``token_seq`` fields crash).  These three methods
  are replaced by versions that assign the filled column back
  (``df[field] = df[field].fillna(...)``) and use ``Series.map(len)``; the rest
  of each method is RecBole's.  pandas 3 is still refused: the project is
  pinned to and tested on pandas 2.
* RecBole's ``Trainer._train_epoch`` builds ``torch.cuda.amp.GradScaler(...)``,
  deprecated since torch 2.4 (a FutureWarning on every classic-model run); the
  trainer module's ``amp`` gets ``torch.amp.GradScaler("cuda", ...)``, the
  replacement torch names.
* RecBole's trainers wrap the model in ``DistributedDataParallel`` with
  ``device_ids=[local_rank]``, which torch refuses for CPU modules; on CPU it gets
  ``device_ids=None`` (data-parallel runs with Gloo, :mod:`recbole_genrec.distributed`).
* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and
  RecBole's ``Trainer._save_checkpoint`` pickles its ``Config`` into every
  checkpoint, so RecBole's own ``evaluate(load_best_model=True)`` and
  ``resume_checkpoint`` failed to read them back.  ``torch.load`` is not patched
  (no blanket ``weights_only=False``); instead RecBole's ``_save_checkpoint``
  writes the config as plain data (:mod:`recbole_genrec.plain_data`), which
  ``weights_only`` loading accepts, so RecBole's trainers (and
  ``recbole.quick_start.run_recbole``) reload their best model again.  Not
  covered: checkpoints written by RecBole without this module (they still hold a
  pickled ``Config``), and ``recbole.quick_start.load_data_and_model``, which
  needs the ``Config`` object itself -- load such files yourself with
  ``weights_only=False`` if you trust them.  This project's trainers write
  plain-data checkpoints of their own (:mod:`recbole_genrec.trainer.checkpoint_io`).
"""

import numpy as np
import pandas as pd
import torch
from recbole.utils import FeatureSource, FeatureType

if int(pd.__version__.split(".")[0]) >= 3:
    raise ImportError(
        f"recbole_genrec needs pandas < 3 (found {pd.__version__}): RecBole 1.2.1's "
        "fillna(inplace=True) is a silent no-op under pandas 3 copy-on-write and its "
        "token_seq loading fails. Install the pinned requirements.lock."
    )

from recbole.config import Config  # noqa: E402

_NUMPY_LEGACY_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}


def numpy_legacy_aliases(self=None):
    """Replacement for ``Config.compatibility_settings`` that works on numpy 2."""
    for name, value in _NUMPY_LEGACY_ALIASES.items():
        setattr(np, name, value)


Config.compatibility_settings = numpy_legacy_aliases
numpy_legacy_aliases()

import recbole.model.sequential_recommender  # noqa: E402,F401  (runs sine.py's set_detect_anomaly(True))

torch.autograd.set_detect_anomaly(False)

# -- torch.cuda.amp.GradScaler -> torch.amp.GradScaler("cuda") --------------------------

import recbole.trainer.trainer as _recbole_trainer  # noqa: E402


class _CudaAmp:
    """What RecBole's trainer uses of ``torch.cuda.amp``, without the deprecated path."""

    @staticmethod
    def GradScaler(**kwargs):  # noqa: N802 (torch's name)
        return torch.amp.GradScaler("cuda", **kwargs)


_recbole_trainer.amp = _CudaAmp


# -- RecBole's checkpoints as plain data (torch.load weights_only) ---------------------

from recbole_genrec.plain_data import plain_checkpoint  # noqa: E402


def _save_plain_checkpoint(self, epoch, verbose=True, **kwargs):
    """``Trainer._save_checkpoint`` with the config as plain data, not a pickled ``Config``."""
    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    torch.save(plain_checkpoint(self, epoch), saved_model_file)
    if verbose:
        self.logger.info(f"Saving current: {saved_model_file}")


_recbole_trainer.Trainer._save_checkpoint = _save_plain_checkpoint


# -- DistributedDataParallel on CPU ---------------------------------------------------

from torch.nn.parallel import DistributedDataParallel as _DDP  # noqa: E402


def _data_parallel(module, device_ids=None, **kwargs):
    """RecBole wraps every model as ``DistributedDataParallel(model, device_ids=[rank])``,
    which torch refuses for a CPU module (Gloo): ``device_ids`` must be None there."""
    on_cpu = next(module.parameters()).device.type == "cpu"
    return _DDP(module, device_ids=None if on_cpu else device_ids, **kwargs)


_recbole_trainer.DistributedDataParallel = _data_parallel


# -- pandas: fill by assignment, lengths by map ---------------------------------------

from recbole.data.dataset import Dataset  # noqa: E402


def _load_feat(self, filepath, source):
    """``Dataset._load_feat``: one atomic file -> DataFrame, field types recorded.

    As RecBole's, except that sequence fields are filled by assignment."""
    load_col, unload_col = self._get_load_and_unload_col(source)
    if load_col == set():
        return None
    separator, encoding = self.config["field_separator"], self.config["encoding"]
    with open(filepath, encoding=encoding) as f:
        header = f.readline()[:-1]
    columns, usecols, dtype = [], [], {}
    for field_type in header.split(separator):
        field, _, ftype = field_type.partition(":")
        try:
            ftype = FeatureType(ftype)
        except ValueError:
            types = ", ".join(t.value for t in FeatureType)
            raise ValueError(f"header field {field_type!r}: type {ftype!r} is not one of "
                             f"{types} (write name:type)") from None
        if (load_col is not None and field not in load_col) or (
                unload_col is not None and field in unload_col):
            continue
        if isinstance(source, FeatureSource) or source != "link":
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2
        columns.append(field)
        usecols.append(field_type)
        dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else str
    if not columns:
        self.logger.warning(f"No columns has been loaded from [{source}]")
        return None
    df = pd.read_csv(filepath, delimiter=separator, usecols=usecols, dtype=dtype,
                     encoding=encoding, engine="python")
    df.columns = columns
    for field in columns:
        if self.field2type[field].value.endswith("seq"):
            _parse_sequence_field(self, df, field)
    return df


def _parse_sequence_field(self, df, field):
    """Split a ``token_seq`` / ``float_seq`` column into arrays (missing -> empty)."""
    separator = self.config["seq_separator"]
    to_value = float if self.field2type[field] == FeatureType.FLOAT_SEQ else str
    df[field] = [np.array([to_value(x) for x in text.split(separator) if x])
                 for text in df[field].fillna("").values]
    max_seq_len = max(map(len, df[field].values))
    seq_lens = self.config["seq_len"] or {}
    if field in seq_lens:
        seq_len = seq_lens[field]
        df[field] = [seq[:seq_len] for seq in df[field].values]
        self.field2seqlen[field] = min(seq_len, max_seq_len)
    else:
        self.field2seqlen[field] = max_seq_len


def _fill_nan(self):
    """``Dataset._fill_nan``: missing tokens -> 0 (``[PAD]``), floats -> the field's mean,
    sequences -> empty arrays; each filled column is assigned back."""
    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                empty = np.array([], dtype=dtype)
                feat[field] = feat[field].apply(lambda x: empty if isinstance(x, float) else x)


def _remap(self, remap_list):
    """``Dataset._remap``: factorize the tokens of fields that share an id space
    (sequence lengths by ``Series.map(len)``)."""
    if len(remap_list) == 0:
        return
    tokens, split_point = self._concat_remaped_tokens(remap_list)
    new_ids_list, mp = pd.factorize(tokens)
    new_ids_list = np.split(new_ids_list + 1, split_point)
    mp = np.array(["[PAD]"] + list(mp))
    token_id = {t: i for i, t in enumerate(mp)}
    for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
        if field not in self.field2id_token:
            self.field2id_token[field] = mp
            self.field2token_id[field] = token_id
        if ftype == FeatureType.TOKEN:
            feat[field] = new_ids
        elif ftype == FeatureType.TOKEN_SEQ:
            feat[field] = np.split(new_ids, np.cumsum(feat[field].map(len))[:-1])


# RecBole's own methods, for tests (kept when importlib.reload re-runs this module in place)
RECBOLE_DATASET_METHODS = globals().get("RECBOLE_DATASET_METHODS") or {
    name: getattr(Dataset, name) for name in ("_load_feat", "_fill_nan", "_remap")}
Dataset._load_feat, Dataset._fill_nan, Dataset._remap = _load_feat, _fill_nan, _remap
