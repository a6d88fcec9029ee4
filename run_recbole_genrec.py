"""Train and evaluate one model from a clone: ``python run_recbole_genrec.py
--model=TIGER --loss=apao`` (installed: ``recbole-genrec --model=TIGER --loss=apao``).
Options: :mod:`recbole_genrec.runner`."""

from recbole_genrec.runner import cli, main  # noqa: F401  (tests call main)

if __name__ == "__main__":
    cli()
