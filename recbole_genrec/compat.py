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
* pandas 3 copy-on-write turns RecBole's ``fillna(inplace=True)`` into a
  silent no-op (missing tokens become INT64_MIN) and breaks ``token_seq``
  fields; we refuse to run on it rather than corrupt data.
* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and
  RecBole pickles its ``Config`` into checkpoints.  That is not patched
  globally: this project's trainers write plain-data checkpoints
  (:mod:`recbole_genrec.trainer.checkpoint`).
"""

import numpy as np
import pandas as pd
import torch

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
