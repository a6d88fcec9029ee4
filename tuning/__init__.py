"""Hyperparameter search (Ray Tune + Optuna) and significance testing against baselines.

* ``python -m tuning.search``  -- search a model's / loss's hyperparameters (``search.py``)
* ``python -m tuning.compare`` -- several runs x seeds -> Table-1-style table with
  significance markers (``compare.py``, statistics in ``significance.py``)

See ``tuning/README.md``.
"""
