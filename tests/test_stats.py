"""evaluation.stats: the permutation test and the bootstrap interval (scipy underneath) give the
numbers a direct computation gives."""

import itertools
import math

import numpy as np
import pytest

from unlearnability.analysis import forecast as fc
from unlearnability.evaluation import stats


def exact_p(values, in_group, alternative):
    """Every relabeling with the group's size, enumerated: the share at least as extreme."""
    values, in_group = np.asarray(values, float), np.asarray(in_group, bool)
    k, n = int(in_group.sum()), len(values)
    gap = values[in_group].mean() - values[~in_group].mean()
    gaps = []
    for idx in itertools.combinations(range(n), k):
        g = np.zeros(n, bool)
        g[list(idx)] = True
        gaps.append(values[g].mean() - values[~g].mean())
    gaps = np.array(gaps)
    less, greater = np.mean(gaps <= gap + 1e-12), np.mean(gaps >= gap - 1e-12)
    return {"less": less, "greater": greater, "two-sided": min(1.0, 2 * min(less, greater))}[alternative]


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_permutation_test_is_exact_on_small_samples(alternative):
    vals = np.array([0.0, 0.1, 0.0, 1.0, 1.1, 0.9, 1.0, 1.2])
    g = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    gap, p = stats.permutation_test(vals, g, alternative, n=2000)  # 56 relabelings < 2000: enumerated
    assert gap == pytest.approx(0.1 / 3 - 1.04)
    assert p == pytest.approx(exact_p(vals, g, alternative))
    assert stats.permutation_test(vals, ~g, alternative, n=2000)[0] == pytest.approx(-gap)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
@pytest.mark.parametrize("g", [[1, 0, 0, 0, 0], [0, 1, 1, 1, 1], [1, 0]])
def test_permutation_test_with_one_value_on_a_side_is_exact(alternative, g):
    vals = np.array([0.2, 0.9, 0.4, 0.4, 0.7])[: len(g)]
    g = np.array(g, bool)
    gap, p = stats.permutation_test(vals, g, alternative)
    assert gap == pytest.approx(vals[g].mean() - vals[~g].mean())
    assert p == pytest.approx(exact_p(vals, g, alternative))


def test_randomized_permutation_test_agrees_with_enumeration():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=16)
    g = np.zeros(16, bool)
    g[:5] = True
    vals[g] -= 0.6
    exact = exact_p(vals, g, "less")  # 4368 relabelings
    gap, p = stats.permutation_test(vals, g, "less", n=2000, seed=1)
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 2000) + 1e-3
    assert (gap, p) == stats.permutation_test(vals, g, "less", n=2000, seed=1)  # seeded


def test_permutation_test_on_a_clear_shift_and_bad_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    g = np.zeros(60, bool)
    g[:20] = True
    gap, p = stats.permutation_test(x - 3 * g, g, "less", n=2000)
    assert gap < -2 and p < 0.01
    assert stats.permutation_test(x - 3 * g, g, "greater", n=2000)[1] > 0.9
    assert all(math.isnan(v) for v in stats.permutation_test(x, np.zeros(60, bool)))
    with pytest.raises(ValueError, match="alternative"):
        stats.permutation_test(x, g, "lower")
    with pytest.raises(ValueError, match="shape"):
        stats.permutation_test(x, g[:10])


def test_bootstrap_ci_agrees_with_a_direct_percentile_bootstrap():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40), np.ones(40)]
    p = y + rng.normal(0, 1.0, 80)
    a = fc.auroc(y, p)
    lo, hi = stats.bootstrap_ci(fc.auroc, y, p, n=300, seed=3)
    assert lo < a < hi and 0 <= lo and hi <= 1
    assert (lo, hi) == stats.bootstrap_ci(fc.auroc, y, p, n=300, seed=3)
    assert (lo, hi) != stats.bootstrap_ci(fc.auroc, y, p, n=300, seed=4)
    # the same interval from resamples drawn here: both estimate one quantile, within noise
    draws = [fc.auroc(y[i], p[i]) for i in (rng.integers(0, 80, 80) for _ in range(2000))]
    d_lo, d_hi = np.quantile(draws, [0.025, 0.975])
    assert abs(lo - d_lo) < 0.03 and abs(hi - d_hi) < 0.03


def test_bootstrap_ci_drops_undefined_resamples():
    assert all(math.isnan(v) for v in stats.bootstrap_ci(fc.auroc, [1, 1, 1], [0.1, 0.2, 0.3], n=50))
    assert all(math.isnan(v) for v in stats.bootstrap_ci(fc.auroc, [], [], n=50))
    assert all(math.isnan(v) for v in stats.bootstrap_ci(fc.auroc, [1], [0.4], n=50))  # one row: one class
    assert stats.bootstrap_ci(lambda x: float(x.mean()), [0.25], n=50) == (0.25, 0.25)
    y, p = np.array([0, 1, 0, 1, 1, 0]), np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
    lo, hi = stats.bootstrap_ci(fc.auroc, y, p, n=200)  # some resamples hold one class
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


@pytest.mark.parametrize("sizes", [(5, 7), (1, 4), (4, 1)])
def test_compare_means_is_the_permutation_test_of_the_pooled_samples(sizes):
    rng = np.random.default_rng(2)
    x, y = rng.normal(0.3, 1, sizes[0]), rng.normal(0, 1, sizes[1])
    pooled, g = np.r_[x, y], np.r_[np.ones(len(x)), np.zeros(len(y))].astype(bool)
    for alternative in ("less", "greater", "two-sided"):
        assert stats.compare_means(x, y, alternative, n=500) == stats.permutation_test(pooled, g, alternative, n=500)
        # 792 relabelings at most (5 of 12) < 1000: enumerated, so exact
        assert stats.compare_means(x, y, alternative, n=1000)[1] == pytest.approx(exact_p(pooled, g, alternative))
    assert all(math.isnan(v) for v in stats.compare_means([], y))
