"""Significance tests for recommendation results; every statistic comes from ``scipy.stats``.

Two kinds of samples are compared:

* **per-user values** of one seed (or of each user averaged over seeds): paired
  over users -- ``paired_t`` (``scipy.stats.ttest_rel``) and ``wilcoxon``
  (``scipy.stats.wilcoxon``, signed-rank on the paired differences);
* **per-seed values** (a run's test metric for each training seed): ``welch``
  (``scipy.stats.ttest_ind(equal_var=False)``) and ``one_sample``
  (``scipy.stats.ttest_1samp`` of the method's seed values against the best
  baseline's mean, the protocol of the APAO paper).  The one-sample test treats
  the baseline mean as exact, so its false-positive rate is above the nominal
  level when the baseline mean is itself estimated from a few seeds
  (``tests/test_significance.py`` measures it); ``welch`` accounts for both
  runs' seed variance and is the default (``default_test``) when there are
  at least two seeds.

A test that is undefined -- fewer than two seeds, or seed values without any
variance (e.g. two seeds with the same 4-decimal metric) while the means differ,
where scipy would report t = inf, p = 0 -- returns ``pvalue = NaN``: never
significant.

``holm`` applies the Holm--Bonferroni step-down correction across a family of
p-values (the cells of a results table).

Per-user metric values come from the 1-based rank of each user's single
held-out target in the top-K list (0 = not ranked), as written by
``recbole_genrec.quick_start.run`` under ``result['per_user']``:
``recall@K = hit@K = 1[rank <= K]``, ``ndcg@K = 1 / log2(rank + 1)`` if
``rank <= K``, ``mrr@K = 1 / rank`` and ``precision@K = recall@K / K``.
"""

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test; ``pvalue`` is NaN when the test is undefined (too few samples)."""

    test: str
    statistic: float
    pvalue: float
    n: int  # pairs (user-level tests) or method seeds (seed-level tests)


# -- tests over users (paired, same seed) ----------------------------------------------

def paired_t(method, baseline, alternative="two-sided") -> TestResult:
    """Paired t-test on per-user values (``scipy.stats.ttest_rel``); pairs must be aligned."""
    a, b = _paired_arrays(method, baseline)
    if np.all(a == b):  # no difference at all: the t statistic is 0/0
        return TestResult("paired_t", 0.0, 1.0, len(a))
    res = stats.ttest_rel(a, b, alternative=alternative)
    return TestResult("paired_t", float(res.statistic), float(res.pvalue), len(a))


def wilcoxon(method, baseline, alternative="two-sided") -> TestResult:
    """Wilcoxon signed-rank test on paired per-user values (``scipy.stats.wilcoxon``).

    Users with a zero difference are dropped (scipy's default ``zero_method='wilcox'``);
    the statistic is scipy's (the sum of ranks of the positive differences for a
    one-sided test, the smaller rank sum for a two-sided one).
    """
    a, b = _paired_arrays(method, baseline)
    if np.all(a == b):
        return TestResult("wilcoxon", 0.0, 1.0, len(a))
    res = stats.wilcoxon(a, b, alternative=alternative)
    return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), len(a))


# -- tests over seeds ----------------------------------------------------------------------

def welch(method_seeds, baseline_seeds, alternative="two-sided") -> TestResult:
    """Welch's unequal-variance t-test over per-seed values (``scipy.stats.ttest_ind``)."""
    a, b = _array(method_seeds), _array(baseline_seeds)
    if len(a) < 2 or len(b) < 2:
        return TestResult("welch", math.nan, math.nan, len(a))
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no variance at all: t is 0/0 or x/0
        return TestResult("welch", *((0.0, 1.0) if a[0] == b[0] else (math.nan, math.nan)), len(a))
    res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    return TestResult("welch", float(res.statistic), float(res.pvalue), len(a))


def one_sample(method_seeds, baseline_mean, alternative="two-sided") -> TestResult:
    """One-sample t-test of the method's seed values against the best baseline's mean.

    ``scipy.stats.ttest_1samp(method_seeds, popmean=baseline_mean)``; the test of
    the APAO paper's tables.
    """
    a = _array(method_seeds)
    if len(a) < 2:
        return TestResult("one_sample", math.nan, math.nan, len(a))
    if np.ptp(a) == 0:  # identical seed values: t is 0/0 or x/0, scipy would say p = 0
        same = a[0] == baseline_mean
        return TestResult("one_sample", *((0.0, 1.0) if same else (math.nan, math.nan)), len(a))
    res = stats.ttest_1samp(a, popmean=float(baseline_mean), alternative=alternative)
    return TestResult("one_sample", float(res.statistic), float(res.pvalue), len(a))


USER_LEVEL_TESTS = {"paired_t": paired_t, "wilcoxon": wilcoxon}
SEED_LEVEL_TESTS = {"welch": welch, "one_sample": one_sample}
TESTS = {**USER_LEVEL_TESTS, **SEED_LEVEL_TESTS}

DESCRIPTIONS = {
    "paired_t": "paired t-test over users (scipy.stats.ttest_rel) on per-user values, "
                "each user's value averaged over the seeds",
    "wilcoxon": "Wilcoxon signed-rank test over users (scipy.stats.wilcoxon, zero "
                "differences dropped) on per-user values, each user's value averaged "
                "over the seeds",
    "welch": "Welch t-test over seeds (scipy.stats.ttest_ind, equal_var=False) of the "
             "method's per-seed values against the best baseline's per-seed values",
    "one_sample": "one-sample t-test over seeds (scipy.stats.ttest_1samp) of the method's "
                  "per-seed values against the best baseline's mean (APAO paper protocol)",
}

# What each test leaves out: printed under every table next to what was tested.
IGNORES = {
    "paired_t": "the variance over training seeds (each user counts once, averaged over "
                "the seeds): it compares these trained models on these users, not the "
                "training procedures",
    "wilcoxon": "the variance over training seeds (each user counts once, averaged over "
                "the seeds): it compares these trained models on these users, not the "
                "training procedures",
    "welch": "the spread over users within a seed (each seed is one value); with few "
             "seeds it has little power",
    "one_sample": "the best baseline's own seed variance (its mean is taken as exact), so "
                  "its false-positive rate is above alpha when that mean comes from a few seeds",
}


def default_test(n_seeds: int) -> str:
    """The test of ``--test=auto``: Welch over seeds when there are at least two (a
    claim about training procedures needs their seed variance), else the paired t-test
    over users (the only test one seed allows; it needs per-user ranks)."""
    return "welch" if n_seeds >= 2 else "paired_t"


# -- multiple comparisons --------------------------------------------------------------------

def holm(pvalues) -> np.ndarray:
    """Holm--Bonferroni adjusted p-values (same order as the input).

    With the p-values sorted ascending, ``p_(i)`` is adjusted to
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``.  A NaN p-value (undefined test)
    counts as 1: it stays in the family size ``m`` and is never rejected.
    """
    p = np.where(np.isnan(_array(pvalues)), 1.0, _array(pvalues))
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_reject(pvalues, alpha: float) -> np.ndarray:
    """Which hypotheses Holm--Bonferroni rejects at family-wise level ``alpha``."""
    return holm(pvalues) < alpha


# -- per-user metric values from target ranks ------------------------------------------------

_METRIC = re.compile(r"^([a-z]+)@(\d+)$")


def parse_metric(metric: str) -> tuple[str, int]:
    """``"NDCG@10"`` -> ``("ndcg", 10)``."""
    m = _METRIC.match(metric.strip().lower())
    if not m:
        raise ValueError(f"metric {metric!r} is not of the form NAME@K (e.g. ndcg@10)")
    return m.group(1), int(m.group(2))


def recall_at_k(ranks, k: int) -> np.ndarray:
    """1 if the single target is ranked within the top ``k`` (rank 1..k), else 0."""
    r = _ranks(ranks)
    return ((r >= 1) & (r <= k)).astype(float)


def ndcg_at_k(ranks, k: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for a target ranked within the top ``k``, else 0."""
    r = _ranks(ranks)
    hit = (r >= 1) & (r <= k)
    return np.where(hit, 1.0 / np.log2(np.where(hit, r, 1) + 1.0), 0.0)


def mrr_at_k(ranks, k: int) -> np.ndarray:
    r = _ranks(ranks)
    hit = (r >= 1) & (r <= k)
    return np.where(hit, 1.0 / np.where(hit, r, 1), 0.0)


def precision_at_k(ranks, k: int) -> np.ndarray:
    return recall_at_k(ranks, k) / k


PER_USER_METRICS = {"recall": recall_at_k, "hit": recall_at_k, "ndcg": ndcg_at_k,
                    "mrr": mrr_at_k, "precision": precision_at_k}


def per_user_values(ranks, metric: str) -> np.ndarray:
    """Per-user values of ``metric`` (e.g. ``"recall@20"``) from 1-based target ranks."""
    name, k = parse_metric(metric)
    if name not in PER_USER_METRICS:
        raise ValueError(
            f"metric {metric!r}: per-user values can be derived from target ranks for "
            f"{', '.join(sorted(PER_USER_METRICS))} only"
        )
    return PER_USER_METRICS[name](ranks, k)


def align_users(users_a, values_a, users_b, values_b):
    """Reorder ``values_b`` to ``users_a``'s order; both runs must cover the same users."""
    if len(users_a) != len(values_a) or len(users_b) != len(values_b):
        raise ValueError("user list and value list differ in length")
    index_b = {u: i for i, u in enumerate(users_b)}
    if len(index_b) != len(users_b) or set(index_b) != set(users_a) or len(users_a) != len(users_b):
        raise ValueError(
            f"the runs evaluate different users ({len(users_a)} vs {len(users_b)}, "
            f"{len(set(users_a) ^ set(users_b))} not shared): paired tests need the same "
            "evaluation users (same dataset and split)"
        )
    b = _array(values_b)
    return _array(values_a), b[[index_b[u] for u in users_a]]


# -- helpers ---------------------------------------------------------------------------------

def _array(values) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def _ranks(ranks) -> np.ndarray:
    r = np.asarray(ranks, dtype=float).ravel()
    if np.any(r < 0) or np.any(r != np.round(r)):
        raise ValueError("target ranks must be non-negative integers (0 = not ranked)")
    return r.astype(int)


def _paired_arrays(a, b):
    a, b = _array(a), _array(b)
    if len(a) != len(b):
        raise ValueError(f"paired test: {len(a)} method values vs {len(b)} baseline values")
    if len(a) < 2:
        raise ValueError("paired test: need at least 2 pairs")
    return a, b
