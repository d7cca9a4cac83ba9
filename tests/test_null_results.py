"""What the chapters save and say about the null (analysis/null.py): the per-example table that
recomputes Table 1 without the run store, the agreement above chance, the results dicts, the
one-sentence caveat per group, and the null from given true rates (the regime frontier)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from simulated import training_history

from unlearnability.evaluation import calibration as cal
from unlearnability.evaluation import groups as G
from unlearnability.evaluation import null as N

TIER_RATES = np.array([0.255, 0.108, 0.057, 0.027, 0.017, 0.019])
K = 32
SKILLS = ["add", "mul_c", "sub", "add+sub_c", "mul_c+sub"]


def hist(rows):
    return pd.DataFrame(rows, columns=["step", "prompt_id", "mean_reward", "std_reward", "n", "processed", "clip_frac"])


def study_like(seed: int, n: int = 600, seeds=(1, 42, 37), learned: bool = False):
    """A study-like object of a simulated run (the fields `experiment.Study` has that the null and
    the per-example table read): true rates Beta(5) around the audit's tier rates, the initial and
    final evaluations and 3 or 4 draws of 8 rollouts per seed drawn from them (learned: every
    non-easy problem's final rate is 0.7)."""
    rng = np.random.default_rng(seed)
    tier = np.arange(n) % 6 + 1
    m = TIER_RATES[tier - 1]
    r = rng.beta(m * 5, (1 - m) * 5)
    ids = [f"p{i:04d}" for i in range(n)]
    c0 = rng.binomial(K, r)
    problems = pd.DataFrame({"prompt_id": ids, "tier": tier, "coverage": np.where(tier > 4, "rare", "common"),
                             "skills": [SKILLS[i % len(SKILLS)] for i in range(n)]})
    initial = pd.DataFrame({"prompt_id": ids, "correct": c0, "n": K, "pass@1": c0 / K})
    finals, histories = {}, {}
    for s in seeds:
        histories[s] = training_history(rng, r, ids)
        rate = np.where(c0 / K <= 0.1, 0.7, r) if learned else r
        cf = rng.binomial(K, rate)
        finals[s] = pd.DataFrame({"prompt_id": ids, "correct": cf, "n": K, "pass@1": cf / K})
    cfg = SimpleNamespace(world=SimpleNamespace(p=100, skill_styles={"mul_c": {"terse": 1.0}}),
                          data=SimpleNamespace(source="testbed"))
    st = SimpleNamespace(problems=problems, initial=initial, finals=finals, histories=histories, cfg=cfg)
    pass1 = lambda t: t.set_index("prompt_id")["pass@1"].reindex(problems["prompt_id"])  # noqa: E731
    cls = G.classify(pass1(initial), {s: pass1(finals[s]) for s in seeds}, histories, 0.1)
    return st, cls


def test_group_caveat_says_within_for_noise_and_exceeds_for_learning():
    st, cls = study_like(0)
    text = N.group_caveat(st, cls, groups=("unlearnable",), replicates=200)
    assert text.startswith("The unlearnable group (") and " is within what sampling noise alone gives" in text
    assert "95% interval" in text and text.count(". ") == 0 and text.endswith("noise can put there.")
    n = int((cls.group == "unlearnable").sum())
    assert f"({n} problem" in text
    # the null is computed once per study: the second sentence reuses it
    assert N.cached_null(st, replicates=200) is N.cached_null(st, replicates=200)
    learned, lcls = study_like(0, learned=True)
    both = N.group_caveat(learned, lcls, replicates=200)
    assert "The learnable group (" in both and " exceeds what sampling noise alone gives" in both
    assert both.index("unlearnable group") < both.index("learnable group")  # the order asked for
    assert (lcls.group == "unlearnable").sum() == 0 and "The unlearnable group is empty, while sampling noise" in both
    res = N.group_results(learned, lcls, replicates=200)
    assert set(res) == set(N.COUNTS) and res["learnable"]["verdict"] == "above the null"
    assert set(res["learnable"]) == {"count", "percent", "null_mean", "null_low", "null_high", "verdict"}
    assert res["learnable"]["null_low"] <= res["learnable"]["null_mean"] <= res["learnable"]["null_high"]
    assert res["learnable"]["count"] == int((lcls.group == "learnable").sum())


def test_the_per_example_table_recomputes_table1_and_the_null_inputs():
    st, cls = study_like(1, n=240)
    t = G.per_example_table(st, cls)
    assert len(t) == 240 and t["prompt_id"].tolist() == st.problems["prompt_id"].tolist()
    for col in ("tier", "coverage", "skills", "coupled_skill", "initial_pass1", "initial_n", "group",
                "rollouts_42", "positives_42", "final_pass1_42", "final_n_42", "label_42", "rewarded_42"):
        assert col in t, col
    assert set(t.loc[t.skills.str.contains("mul_c"), "coupled_skill"]) == {"mul_c"}
    assert set(t.loc[~t.skills.str.contains("mul_c"), "coupled_skill"]) == {""}
    # Table 1 from the table alone: per seed a one-row "history" with its rollouts and positives
    seeds = [1, 42, 37]
    ids = pd.Index(t["prompt_id"], name="prompt_id")
    hist_of = {s: pd.DataFrame({"prompt_id": t.prompt_id, "n": t[f"rollouts_{s}"],
                                "mean_reward": t[f"positives_{s}"] / t[f"rollouts_{s}"].clip(lower=1)}) for s in seeds}
    again = G.classify(pd.Series(t.initial_pass1.to_numpy(), index=ids),
                       {s: pd.Series(t[f"final_pass1_{s}"].to_numpy(), index=ids) for s in seeds}, hist_of, 0.1)
    assert (again["group"].to_numpy() == t["group"].to_numpy()).all()
    pd.testing.assert_frame_equal(G.table1(again), G.table1(cls))
    # and the null's inputs
    inp = N.study_inputs(st)
    assert (inp["initial_correct"] == t.initial_correct.to_numpy()).all()
    for s in seeds:
        assert (inp["rollouts"][s] == t[f"rollouts_{s}"].to_numpy()).all()
        assert (inp["final_n"][s] == t[f"final_n_{s}"].to_numpy()).all()


def test_agreement_keeps_the_problems_above_chance():
    ids = ["easy", "lucky", "real", "flip"]
    initial = pd.Series([0.5, 0.0, 0.0, 0.0], index=ids)
    finals = {1: pd.Series([0.9, 0.0, 0.0, 0.5], index=ids), 2: pd.Series([0.9, 0.0, 0.0, 0.0], index=ids)}
    # 16 rollouts at chance 1/100: up to 2 positives are guessing; "lucky" has 1 in seed 1 only
    h1 = hist([(1, "lucky", 1 / 16, 0, 16, 1, 0.0), (1, "real", 4 / 16, 0, 16, 1, 0.0),
               (1, "flip", 3 / 16, 0, 16, 1, 0.0), (1, "easy", 0.5, 0, 16, 1, 0.0)])
    h2 = hist([(1, "lucky", 0.0, 0, 16, 0, None), (1, "real", 5 / 16, 0, 16, 1, 0.0),
               (1, "flip", 3 / 16, 0, 16, 1, 0.0), (1, "easy", 0.5, 0, 16, 1, 0.0)])
    cls = G.classify(initial, finals, {1: h1, 2: h2}, 0.1)
    a = cal.agreement(cls, {1: h1, 2: h2}, p=100)
    assert a["problems"] == 2 and a["agreement"] == 0.5  # real agrees (unlearnable twice), flip does not
    b = cal.agreement(cls, {1: h1, 2: h2})  # any positive: lucky (no_reward / unlearnable) counts too
    assert b["problems"] == 3 and b["agreement"] == pytest.approx(1 / 3)
    assert b["agreement"] == pytest.approx(1 - cal.seed_switches(cls, {1: h1, 2: h2})["switch"])


def test_agreement_and_kappa_of_a_world_where_nothing_changes_lie_in_the_null():
    st, cls = study_like(2)
    null = N.null_from_study(st, replicates=200, chance_p=100)
    tab = N.compare_agreement(cls, st.histories, null)
    assert tab.index.tolist() == ["switch_non_easy", "switch_rewarded", "agreement", "kappa"]
    assert (tab["verdict"] == "within").all(), tab[["measured", "null_text", "verdict"]]
    res = N.as_results(tab)
    assert set(res["agreement"]) == {"value", "percent", "null_mean", "null_low", "null_high", "verdict"}
    assert res["kappa"]["null_low"] <= res["kappa"]["null_high"] and "percent" not in res["kappa"]
    # without a chance rule, agreement is one minus the switching share among the rewarded problems
    plain = N.null_from_study(st, replicates=50)
    d = plain.draws
    assert np.allclose(d["agreement"], 1 - d["switch_rewarded"])


def test_simulate_rates_from_known_rates():
    n, seeds = 3000, [1, 42, 37]
    rates = np.full(n, 0.05)
    roll = {s: 64 for s in seeds}
    fin = {s: 128 for s in seeds}
    out = N.simulate_rates(rates, 32, roll, fin, replicates=40, seed=3)
    # analytically, per seed: learnable P(Bin(128, .05) > 12.8), unlearnable / no_reward by a positive in 64 rollouts
    from scipy.stats import binom
    f = binom.sf(12, 128, 0.05)
    pos = 1 - 0.95 ** 64
    same = f**3 + ((1 - f) * pos) ** 3 + ((1 - f) * (1 - pos)) ** 3
    assert 1 - out.draws["switch_non_easy"].mean() == pytest.approx(same, abs=0.01)
    easy = binom.sf(3, 32, 0.05)
    assert out.draws["easy"].mean() / n == pytest.approx(easy, abs=0.01)
    # the guess floor raises every rate: q + (1 - q) / p
    zero = N.simulate_rates(np.zeros(n), 32, roll, fin, floor=0.01, replicates=20, seed=3)
    assert zero.draws["unlearnable"].mean() / n == pytest.approx((1 - 0.99**64) ** 3, abs=0.02)
    # a spread around the rates keeps the mean rate, so the easy share moves but stays finite
    spread = N.simulate_rates(rates, 32, roll, fin, concentration=5, replicates=20, seed=3)
    assert spread.draws["easy"].mean() > out.draws["easy"].mean()
    assert list(spread.draws.columns) == N.QUANTITIES and spread.problems == n


def test_membership_counts_groups_by_knob_with_row_percents():
    from unlearnability.evaluation.groups import membership

    t = pd.DataFrame({"tier": [1, 1, 1, 2], "coupled_skill": ["mul_c", "", "", "mul_c"],
                      "group": ["easy", "learnable", "learnable", "no_reward"]})
    m = membership(t, "tier")
    assert list(m.columns) == ["easy", "learnable", "no_reward"]  # GROUPS order
    assert m.loc[1, "learnable"] == "2 (67%)" and m.loc[2, "no_reward"] == "1 (100%)" and m.loc[2, "easy"] == "0 (0%)"
    assert membership(t, "coupled_skill").loc["none", "learnable"] == "2 (100%)"
    assert membership(t, "level") is None
