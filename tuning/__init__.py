"""Hyperparameter search (Ray Tune + Optuna), multi-seed comparisons with significance
tests, and one-command reproductions (``tuning/README.md``).

In a clone this folder is the package ``tuning`` (``python -m tuning.search``);
installed, it is ``recbole_genrec.tuning`` with the commands ``recbole-genrec-search``,
``recbole-genrec-compare`` and ``recbole-genrec-reproduce``.  Its modules import each
other relatively, so both names work.
"""
