"""The book's two resampling statistics, computed by scipy rather than by hand.

    permutation_test   is a group's mean different from the rest's?  (scipy.stats.permutation_test)
    compare_means      the same for two samples (a column against another)
    bootstrap_ci       percentile interval of a paired statistic      (scipy.stats.bootstrap)

Every chapter that compares a group with the others (gradient similarity, reasoning quality,
the §4 "no systematic shift" claims, the augmentation and mid-training similarities) calls
`permutation_test`; the forecast's AUROC intervals call `bootstrap_ci`. Both are seeded, so the
same inputs give the same numbers.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

ALTERNATIVES = ("two-sided", "greater", "less")


def permutation_test(values, in_group, alternative: str = "two-sided", n: int = 10000,
                     seed: int = 0) -> tuple[float, float]:
    """(gap, p) for gap = mean(values[in_group]) - mean(values[~in_group]): `compare_means` of
    the group against the rest. values: (N,) numbers; in_group: (N,) bools."""
    values, in_group = np.asarray(values, float), np.asarray(in_group, bool)
    if values.shape != in_group.shape:
        raise ValueError(f"values {values.shape} and in_group {in_group.shape} differ in shape")
    return compare_means(values[in_group], values[~in_group], alternative, n, seed)


def compare_means(x, y, alternative: str = "two-sided", n: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(gap, p) for gap = mean(x) - mean(y), two independent samples.

    p is scipy's permutation p-value over `n` random relabelings of the pooled values that keep
    the two sizes (exact enumeration when there are fewer than `n` distinct relabelings), for the
    `alternative` "two-sided" (twice the smaller one-sided p, at most 1), "greater" (x's mean is
    higher) or "less" (lower). (nan, nan) when either sample is empty.
    """
    from scipy.stats import permutation_test as sp_permutation_test

    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r}: must be one of {', '.join(ALTERNATIVES)}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    if min(len(x), len(y)) < 2:  # scipy needs two values a side; one value: N relabelings, enumerated
        return _exact_one(x, y, alternative)

    def gap(a, b, axis=-1):
        return a.mean(axis=axis) - b.mean(axis=axis)

    res = sp_permutation_test((x, y), gap, permutation_type="independent", vectorized=True,
                              n_resamples=n, alternative=alternative, random_state=np.random.default_rng(seed))
    return float(res.statistic), float(res.pvalue)


def _exact_one(x: np.ndarray, y: np.ndarray, alternative: str) -> tuple[float, float]:
    """The exact permutation p-value when one sample holds a single value (the N relabelings of
    the pooled values), with scipy's conventions: one-sided shares at least as extreme (within a
    relative 1e-14), two-sided twice the smaller one, at most 1."""
    pooled = np.r_[x, y]
    others = (pooled.sum() - pooled) / (len(pooled) - 1)  # mean of the rest when value i is the single one
    gaps = pooled - others if len(x) == 1 else others - pooled  # (N,) every relabeling's gap
    gap = float(x.mean() - y.mean())
    tol = abs(gap) * 1e-14
    less, greater = np.mean(gaps <= gap + tol), np.mean(gaps >= gap - tol)
    p = {"less": less, "greater": greater, "two-sided": min(1.0, 2 * min(less, greater))}[alternative]
    return gap, float(p)


def bootstrap_ci(statistic: Callable[..., float], *samples, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(*samples)` over `n` paired resamples.

    samples: arrays of one length N, resampled together (rows with replacement, by scipy's
    `bootstrap`, paired). Resamples where the statistic is undefined (NaN, e.g. an AUROC of a
    resample holding one class) are left out of the percentiles; (nan, nan) when none is left.
    """
    from scipy.stats import bootstrap

    samples = tuple(np.asarray(s, float) for s in samples)
    if not samples or len(samples[0]) == 0:
        return math.nan, math.nan
    if len(samples[0]) == 1:  # scipy needs two rows; every resample of one row is that row
        v = float(statistic(*samples))
        return (math.nan, math.nan) if math.isnan(v) else (v, v)
    with warnings.catch_warnings():  # scipy warns when some resamples are NaN: they are dropped below
        warnings.simplefilter("ignore")
        res = bootstrap(samples, statistic, paired=True, vectorized=False, n_resamples=n, method="percentile",
                        confidence_level=level, random_state=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, float)
    dist = dist[~np.isnan(dist)]
    if len(dist) == 0:
        return math.nan, math.nan
    q = (1 - level) / 2
    return float(np.quantile(dist, q)), float(np.quantile(dist, 1 - q))
