"""``python -m recbole_genrec --model=TIGER ...``: the ``recbole-genrec`` command."""

from recbole_genrec.runner import cli

cli()
