"""recbole-genrec: generative recommendation (semantic IDs, beam search,
beam-search-aware losses) as a RecBole plugin."""

from recbole_genrec import compat  # noqa: F401  (must run before RecBole is used)

__version__ = "0.1.0"
