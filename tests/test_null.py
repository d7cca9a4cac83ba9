"""The null of Table 1 ("RL changed nothing", analysis/null.py) on simulated worlds where the
answer is known: a world where nothing changes lands inside it, one where RL learns does not."""

import numpy as np
import pandas as pd
import pytest
from simulated import training_history

from unlearnability.evaluation import groups as G
from unlearnability.evaluation import null as N

TIER_RATES = np.array([0.255, 0.108, 0.057, 0.027, 0.017, 0.019])  # the audit's base pass@1 by tier
K = 32


def world(seed: int, n: int = 1024, seeds=(1, 42, 37), spread: float = 5.0, learned: bool = False, p=None):
    """A simulated run: per problem a true rate from a Beta(spread) around its tier's rate; the
    initial evaluation, each seed's training draws (3 or 4 draws of 8 rollouts) and its final
    evaluation drawn from it independently (learned: every non-easy problem's final rate is 0.7),
    classified with the real groups functions."""
    rng = np.random.default_rng(seed)
    tier = np.arange(n) % 6 + 1
    m = TIER_RATES[tier - 1]
    r = rng.beta(m * spread, (1 - m) * spread)
    ids = pd.Index([f"p{i:04d}" for i in range(n)], name="prompt_id")
    c0 = rng.binomial(K, r)
    initial = pd.Series(c0 / K, index=ids)
    histories, finals = {}, {}
    for s in seeds:
        histories[s] = training_history(rng, r, ids)
        rate = np.where(c0 / K <= 0.1, 0.7, r) if learned else r
        finals[s] = pd.Series(rng.binomial(K, rate) / K, index=ids)
    cls = G.classify(initial, finals, histories, 0.1, p=p)
    rollouts = {s: G.training_positives(h)["rollouts"].reindex(ids).fillna(0).to_numpy(int) for s, h in histories.items()}
    return cls, histories, {"initial_correct": c0, "initial_n": K, "rollouts": rollouts,
                            "final_n": {s: K for s in seeds}, "strata": tier}


def test_a_world_where_nothing_changes_lands_inside_the_null():
    cls, hist, inputs = world(0)
    null = N.simulate(**inputs, replicates=500, seed=1)
    table = N.compare(N.measured(cls, hist), null)
    assert (table["verdict"] == "within").all(), table[["measured", "null_text", "verdict"]]
    # the intervals are informative, not everything-goes: no group's spans more than 5 points
    groups = table.loc[N.COUNTS]
    assert (groups["null_hi_percent"] - groups["null_lo_percent"] < 5).all()
    # the chance-corrected rule (guess rate 1/20) is simulated with the same rules
    cls_c, hist_c, inputs_c = world(0, p=20)
    null_c = N.simulate(**inputs_c, p=20, replicates=300, seed=1)
    tab_c = N.compare_groups(cls_c, hist_c, null_c)
    assert (tab_c["verdict"] == "within").all(), tab_c[["measured", "null_text", "verdict"]]
    assert null_c.summary().loc["unlearnable", "mean"] < null.summary().loc["unlearnable", "mean"]


def test_a_flat_posterior_would_miss_the_world_where_nothing_changes(monkeypatch):
    # the audit's pitfall: Beta(1 + c, 1 + n - c) per problem counts the sampling noise twice
    monkeypatch.setattr(N, "posterior", lambda c, n, strata, prior: (1 + np.asarray(c, float),
                                                                     1 + K - np.asarray(c, float)))
    cls, hist, inputs = world(0)
    table = N.compare_groups(cls, hist, N.simulate(**inputs, replicates=300, seed=1))
    assert table.loc["easy", "verdict"] == "below" and table.loc["no_reward", "verdict"] == "above the null"


def test_a_world_where_every_hard_problem_is_learned_is_above_the_null():
    cls, hist, inputs = world(0, learned=True)
    null = N.simulate(**inputs, replicates=300, seed=1)
    table = N.compare_groups(cls, hist, null)
    assert table.loc["learnable", "verdict"] == "above the null" and table.loc["learnable", "above"]
    assert table.loc["learnable", "measured_percent"] > 60 > table.loc["learnable", "null_hi_percent"]
    assert table.loc["no_reward", "verdict"] == "below"  # learned problems leave the other groups
    assert any("learnable: " in s.lower() and "above what sampling noise" in s for s in N.describe(table))


def test_the_null_is_deterministic_in_its_seed():
    _, _, inputs = world(3, n=300)
    a = N.simulate(**inputs, replicates=50, seed=7)
    b = N.simulate(**inputs, replicates=50, seed=7)
    c = N.simulate(**inputs, replicates=50, seed=8)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    assert not a.draws.equals(c.draws)
    assert len(a.draws) == 50 and list(a.draws.columns) == N.QUANTITIES
    # chunking the replicates changes nothing but memory use... per chunk size: fixed for given inputs
    small = N.simulate(**inputs, replicates=50, seed=7, chunk_elements=300 * 3 * 7)
    assert small.draws.shape == a.draws.shape


@pytest.mark.parametrize("a,b", [(0.5, 9.5), (3.0, 7.0)])
def test_the_beta_binomial_prior_recovers_known_parameters(a, b):
    rng = np.random.default_rng(11)
    q = rng.beta(a, b, size=20000)
    n = np.full(len(q), K)
    fa, fb = N.fit_beta_binomial(rng.binomial(n, q), n)
    assert fa / (fa + fb) == pytest.approx(a / (a + b), rel=0.03)
    assert fa + fb == pytest.approx(a + b, rel=0.15)
    # one rate for all (no overdispersion): the concentration runs to its bound, the mean holds
    c = rng.binomial(K, 0.05, size=5000)
    ha, hb = N.fit_beta_binomial(c, np.full(5000, K))
    assert ha / (ha + hb) == pytest.approx(0.05, rel=0.05) and ha + hb > 1000
    # per stratum, and each problem's posterior under its stratum's prior
    prior = N.fit_prior(np.r_[c[:100], np.full(100, 30)], np.full(200, K), np.r_[np.zeros(100), np.ones(100)])
    assert prior.loc[0.0, "mean"] < 0.1 < 0.8 < prior.loc[1.0, "mean"] and prior["problems"].tolist() == [100, 100]
    A, B = N.posterior([3, 30], [K, K], [0.0, 1.0], prior)
    assert A[0] == pytest.approx(prior.loc[0.0, "a"] + 3) and B[1] == pytest.approx(prior.loc[1.0, "b"] + 2)


def test_verdict_and_compare_are_pure():
    assert N.verdict(5, 1, 4) == "above the null" and N.verdict(1, 1, 4) == "within" and N.verdict(0, 1, 4) == "below"
    assert N.verdict(float("nan"), 1, 4) == "no measure"
    draws = pd.DataFrame({q: [10.0, 20.0, 30.0] for q in N.COUNTS} | {q: [0.1, 0.2, 0.3] for q in N.SHARES}
                         | {"kappa": [0.0, 0.1, 0.2]})
    null = N.NullResult(draws=draws, problems=100, prior=pd.DataFrame(), seeds=[1, 2], tau=0.1, p=None, level=0.95)
    t = N.compare({"learnable": 40, "easy": 20, "switch_rewarded": 0.05, "kappa": 0.1}, null)
    assert t.index.tolist() == ["easy", "learnable", "switch_rewarded", "kappa"]  # QUANTITIES order
    assert t["verdict"].tolist() == ["within", "above the null", "below", "within"]
    assert t.loc["learnable", "measured_percent"] == 40 and t.loc["learnable", "null_percent"] == 20
    assert t.loc["switch_rewarded", "measured_percent"] == pytest.approx(5)
    assert t.loc["learnable", "null_text"] == "20.0 [10.5, 29.5]" and t.loc["kappa", "null_text"] == "0.10 [0.01, 0.20]"
    assert len(N.describe(t)) == 4


def test_v3_targets_read_the_null_and_the_regime():
    from unlearnability.evaluation.calibration import agreement, targets_v3

    v = {1: {"before": 0.2, "after": 0.3, "change": 0.1, "se": 0.01, "n": 256},
         42: {"before": 0.2, "after": 0.22, "change": 0.02, "se": 0.01, "n": 256}}
    met = {}
    for learned in (False, True):
        cls, hist, inputs = world(3, learned=learned)
        null = N.simulate(**inputs, replicates=300, seed=1)
        rollouts = {s: G.training_positives(h)["rollouts"] for s, h in hist.items()}
        t = targets_v3(v, N.compare_groups(cls, hist, null), G.table1(cls["group"])["count"],
                       agreement(cls, hist), rollouts, guess_floor=1 / 1000)
        met[learned] = t["met"].to_dict()
    for m in met.values():
        assert m["validation rises >= 0.05 (seed 1)"] and not m["validation rises >= 0.05 (seed 42)"]
        # 3-4 draws of 8: about 27 rollouts per problem, far below the regime's 60
        assert not m["training rollouts per problem >= 60 at the 10th percentile (seed 1)"]
        assert m["guess floor <= 0.2%"]
    # nothing changes: the learnable group is inside its null; every hard problem learned: above it
    assert not met[False]["learnable >= 8% and above its null's 97.5th percentile"]
    assert met[True]["learnable >= 8% and above its null's 97.5th percentile"]
    assert not met[True]["unlearnable >= 8% and above its null's 97.5th percentile"]
