"""The forecast of unlearnable examples (analysis/forecast.py, `unlearn screen`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnability.analysis import forecast as fc
from unlearnability.cli.main import main

# ----------------------------------------------------------------------------- hand-built tables


def hand_tables():
    """Initial samples of a (k = 5), b (k = 4), c (k = 4, no positive), d (k = 2), plus
    metadata, a cosine matrix over a, b and two easy references e, f, and log-likelihoods."""
    rows = []

    def add(pid, rewards, scores=None, exact=None, style=None):
        for i, r in enumerate(rewards):
            rows.append({"prompt_id": pid, "sample": i, "reward": float(r),
                         "score": (scores or [0] * len(rewards))[i], "exact": (exact or [False] * len(rewards))[i],
                         "style": (style or ["answer"] * len(rewards))[i]})

    add("a", [1, 0, 0, 0, 0], [5, 0, 1, 0, 0], [True, False, False, False, False], ["worked"] + ["leap"] * 4)
    add("b", [1, 1, 0, 0], [2, 4, 5, 5], [False, True, True, True], ["terse", "worked", "worked", "worked"])
    add("c", [0, 0, 0, 0], [5, 5, 5, 5], [True] * 4, ["worked"] * 4)
    add("d", [0, 1], [0, 0], [False, False], ["answer", "answer"])
    add("e", [1, 1, 1, 1])
    samples = pd.DataFrame(rows)
    problems = pd.DataFrame({"prompt_id": ["a", "b", "c"], "tier": [2, 1, 3], "depth": [2, 1, 3],
                             "distractors": [1, 0, 2], "skills": ["add+mul", "add", "add+sub+mul"],
                             "coverage": ["rare", "unseen", "common"], "p": [11, 11, 11]})
    ex = pd.DataFrame({"prompt_id": ["a", "b", "e", "f"]})
    C = np.array([[1.0, 0.2, 0.4, 0.6],
                  [0.2, 1.0, -0.2, 0.0],
                  [0.4, -0.2, 1.0, 0.8],
                  [0.6, 0.0, 0.8, 1.0]])
    logliks = pd.DataFrame({"prompt_id": ["a", "b", "b", "b"], "reward": [1.0, 1.0, 1.0, 0.0],
                            "mean_logp": [-2.0, -1.0, -3.0, -100.0]})
    return samples, problems, ex, C, logliks


def test_gradient_features_by_hand():
    _, _, ex, C, _ = hand_tables()
    g = fc.gradient_features(ex, C, ["e", "f", "zz"]).set_index("prompt_id")
    assert g.loc["a", "grad_sim"] == pytest.approx(0.5)  # (0.4 + 0.6) / 2
    assert g.loc["b", "grad_sim"] == pytest.approx(-0.1)
    assert g.loc["e", "grad_sim"] == pytest.approx(0.8)  # itself excluded: only f
    assert g.loc["a", "grad_sim_all"] == pytest.approx(0.4)  # (0.2 + 0.4 + 0.6) / 3
    assert g.loc["b", "grad_sim_all"] == pytest.approx(0.0)
    none = fc.gradient_features(ex, C, [])
    assert none["grad_sim"].isna().all()


def test_feature_table_by_hand():
    samples, problems, ex, C, logliks = hand_tables()
    grads = fc.gradient_features(ex, C, ["e", "f"])
    t = fc.feature_table(["a", "b", "c", "d"], samples, problems, grads, logliks).set_index("prompt_id")
    assert list(t.reset_index().columns) == ["prompt_id", *fc.FEATURE_COLUMNS]
    assert list(t["k"]) == [5, 4, 4, 2] and list(t["positives"]) == [1, 2, 0, 1]
    assert t["pass@1"].tolist() == pytest.approx([0.2, 0.5, 0.0, 0.5])
    # pass@4 from 5 samples with 1 correct: 1 - C(4,4)/C(5,4) = 0.8; 4 samples with 2: 1; none: 0; k = 2: NaN
    assert t.loc["a", "pass@4"] == pytest.approx(0.8) and t.loc["b", "pass@4"] == 1.0 and t.loc["c", "pass@4"] == 0.0
    assert math.isnan(t.loc["d", "pass@4"])
    # luck: k / p, and P(Binomial(k, 1/11) >= positives)
    assert t.loc["a", "chance_positives"] == pytest.approx(5 / 11)
    assert t.loc["a", "luck_p"] == pytest.approx(1 - (10 / 11) ** 5)
    assert t.loc["b", "luck_p"] == pytest.approx(641 / 14641)  # 1 - (10^4 + 4 * 10^3) / 11^4
    assert t.loc["c", "luck_p"] == pytest.approx(1.0)
    assert math.isnan(t.loc["d", "chance_positives"]) and math.isnan(t.loc["d", "luck_p"])  # no p known for d
    # quality of the correct samples only
    assert t.loc["a", "score_mean"] == 5 and t.loc["a", "exact_share"] == 1 and t.loc["a", "worked_share"] == 1
    assert t.loc["b", "score_mean"] == 3 and t.loc["b", "exact_share"] == 0.5 and t.loc["b", "worked_share"] == 0.5
    assert t.loc[["c"], ["score_mean", "exact_share", "worked_share"]].isna().all(axis=None)  # no correct sample
    assert t.loc["d", "score_mean"] == 0 and t.loc["d", "worked_share"] == 0
    # gradients and log-likelihood where covered
    assert t.loc["a", "grad_sim"] == pytest.approx(0.5) and t.loc["b", "grad_sim"] == pytest.approx(-0.1)
    assert t.loc[["c", "d"], "grad_sim"].isna().all()
    assert t.loc["a", "loglik"] == -2.0 and t.loc["b", "loglik"] == -2.0  # the reward-0 row is ignored
    assert t.loc[["c", "d"], "loglik"].isna().all()
    # metadata
    assert t.loc["a", "n_skills"] == 2 and t.loc["c", "n_skills"] == 3
    assert t["coverage_level"].tolist()[:3] == [1.0, 2.0, 0.0]
    assert t.loc[["d"], ["tier", "depth", "distractors", "n_skills", "coverage_level"]].isna().all(axis=None)
    assert t["level"].isna().all()  # testbed: no MATH level


def test_feature_table_nan_handling_and_errors():
    samples, _, _, _, _ = hand_tables()
    t = fc.feature_table(["b", "a"], samples).set_index("prompt_id")  # nothing but samples
    assert list(t.index) == ["b", "a"]
    for col in ("chance_positives", "luck_p", "grad_sim", "grad_sim_all", "loglik", "tier", "coverage_level", "level"):
        assert t[col].isna().all(), col
    # an explicit p overrides the problems' column; samples without checker columns give NaN quality
    bare = samples[["prompt_id", "sample", "reward"]]
    t = fc.feature_table(["a"], bare, p=100).set_index("prompt_id")
    assert t.loc["a", "chance_positives"] == pytest.approx(0.05) and math.isnan(t.loc["a", "score_mean"])
    with pytest.raises(ValueError, match="no initial samples for 1 example"):
        fc.feature_table(["a", "zz"], samples)


# ----------------------------------------------------------------------------- labels


def test_labels_per_group_and_per_seed():
    group_of = pd.Series({"a": "unlearnable", "b": "learnable", "c": "easy", "d": "no_reward", "e": "ambiguous"})
    y = fc.hard_labels(group_of)
    assert y.to_dict() == {"a": 1, "b": 0}
    cls = pd.DataFrame({"seed_1": ["unlearnable", "learnable", "easy", "no_reward"],
                        "seed_42": ["unlearnable", "unlearnable", "easy", "learnable"],
                        "group": ["unlearnable", "ambiguous", "easy", "ambiguous"]}, index=list("abcd"))
    lab = fc.seed_labels(cls)
    assert list(lab.columns) == [1, 42]
    assert lab[1].tolist()[:2] == [1.0, 0.0] and lab[1].iloc[2:].isna().all()
    assert lab[42].iloc[[0, 1, 3]].tolist() == [1.0, 1.0, 0.0] and math.isnan(lab[42].iloc[2])
    inter = fc.intersect_labels(lab)
    assert inter["a"] == 1.0 and inter[["b", "c", "d"]].isna().all()  # disagree, or a NaN in one seed
    with pytest.raises(ValueError, match="no seed_"):
        fc.seed_labels(cls[["group"]])


# ----------------------------------------------------------------------------- evaluation


def test_auroc_by_hand_ties_and_constant():
    assert fc.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert fc.auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)  # the tie counts 1/2
    assert fc.auroc([0, 1, 1, 0, 1], [0.3] * 5) == 0.5
    assert fc.auroc([0, 0, 1], [3, 2, 1]) == 0.0
    assert math.isnan(fc.auroc([1, 1], [0.2, 0.3]))
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 60), rng.integers(0, 5, 60)  # many ties
    assert fc.auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    roc = fc.roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert roc["fpr"].tolist() == [0, 0, 0.5, 0.5, 1] and roc["tpr"].tolist() == [0, 0.5, 0.5, 1, 1]
    assert fc.roc_points([1, 1], [0.2, 0.3]).empty


def test_stratified_folds_keep_both_classes_and_are_deterministic():
    y = np.r_[np.ones(10), np.zeros(5)]
    f = fc.stratified_folds(y, 5, seed=0)
    for k in range(5):
        assert (y[f == k] == 1).sum() == 2 and (y[f == k] == 0).sum() == 1
    assert (f == fc.stratified_folds(y, 5, seed=0)).all()
    assert not (f == fc.stratified_folds(y, 5, seed=1)).all()
    with pytest.raises(ValueError, match="at least 2"):
        fc.stratified_folds(y, 1)


def synthetic(n: int, signal: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"prompt_id": [f"x{i}" for i in range(n)], "pass@1": signal * y + rng.normal(0, 1, n),
                      "grad_sim": rng.normal(0, 1, n), "tier": rng.integers(1, 4, n).astype(float)})
    X.loc[rng.random(n) < 0.2, "grad_sim"] = np.nan  # some missing values
    return X, y


def test_predictor_separates_a_separable_set_and_not_noise():
    X, y = synthetic(200, 6.0)
    p = fc.cross_validated_scores(X, y, folds=5, seed=0)
    assert not np.isnan(p).any() and fc.auroc(y, p) > 0.95
    assert (p == fc.cross_validated_scores(X, y, folds=5, seed=0)).all()
    m = fc.fit_forecaster(X, y)
    coef = m.coefficients().set_index("feature")["coef"]
    assert coef["pass@1"] > 1 and "missingindicator_grad_sim" in coef.index
    Xn, yn = synthetic(300, 0.0, seed=5)
    assert abs(fc.auroc(yn, fc.cross_validated_scores(Xn, yn)) - 0.5) < 0.12


def test_one_class_labels_fall_back_to_the_base_rate():
    X, _ = synthetic(10, 1.0)
    m = fc.fit_forecaster(X, np.ones(10))
    assert m.model is None and "one class" in m.note and (m.predict(X) == 1.0).all()
    assert m.coefficients().empty
    with pytest.raises(ValueError, match="nothing to fit"):
        fc.fit_forecaster(X.iloc[:0], [])


def test_feature_aurocs_choose_the_direction_on_training_folds():
    X, y = synthetic(120, 4.0, seed=2)
    X["pass@1"] = -X["pass@1"]  # lower = unlearnable
    t = fc.feature_aurocs(X, y, n_boot=100).set_index("feature")
    assert t.loc["pass@1", "direction"] == "lower" and t.loc["pass@1", "auroc_high"] < 0.1
    assert t.loc["pass@1", "auroc_cv"] > 0.9 and t.loc["pass@1", "lo"] <= t.loc["pass@1", "auroc_cv"] <= t.loc["pass@1", "hi"]
    assert t.loc["grad_sim", "covered"] < 120 and abs(t.loc["grad_sim", "auroc_cv"] - 0.5) < 0.2


def test_cross_seed_trains_on_agreeing_seeds_and_tests_on_the_third():
    n = 30
    x = np.linspace(-1, 1, n)
    X = pd.DataFrame({"prompt_id": [f"x{i}" for i in range(n)], "pass@1": x})
    base = (x > 0).astype(float)
    lab = pd.DataFrame({1: base, 2: base, 3: base}, index=X["prompt_id"])
    lab.loc["x0", 2] = np.nan
    t = fc.cross_seed(X, lab, folds=5, n_boot=50).set_index("test_seed")
    assert t["n_test"].to_dict() == {1: 30, 2: 29, 3: 30}
    assert (t["auroc"] > 0.95).all() and t.loc[3, "train_seeds"] == "1,2"  # folds pooled: near 1
    # seed 3 says the opposite: a model trained on seeds 1 and 2 ranks it backwards, and
    # seeds {2, 3} or {1, 3} never agree, so nothing is trained for held-out seed 1 or 2
    lab[3] = 1 - base
    lab.loc["x0", 2] = base[0]
    s = fc.cross_seed_scores(X, lab, folds=1)
    assert len(s[1]) == 0 and len(s[2]) == 0
    assert len(s[3]) == n and fc.auroc(s[3]["y"], s[3]["p"]) == 0.0


def test_calibration_table_bins():
    t = fc.calibration_table([0, 0, 1, 1, 1], [0.05, 0.15, 0.5, 0.95, 1.0], bins=5)
    assert t["n"].tolist() == [2, 0, 1, 0, 2]
    assert t.loc[0, "mean_p"] == pytest.approx(0.1) and t.loc[0, "observed"] == 0
    assert t.loc[4, "mean_p"] == pytest.approx(0.975) and t.loc[4, "observed"] == 1
    assert t.loc[[1, 3], "observed"].isna().all() and t["lo"].tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    q = fc.calibration_table([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], bins=2, strategy="quantile")
    assert q["n"].tolist() == [2, 2]


# ----------------------------------------------------------------------------- unlearn screen


def smoke_ids() -> list[str]:
    from unlearnability.config import load_config
    from unlearnability.world import train_valid_split

    return [p.id for p in train_valid_split(load_config("smoke").world)[0]]


def test_screen_cli_with_a_groups_file(smoke_store, tmp_path, capsys):
    ids = smoke_ids()
    groups = tmp_path / "groups.csv"
    names = ["unlearnable", "learnable", "easy", "no_reward"]
    pd.DataFrame({"prompt_id": ids, "group": [names[i % 4] for i in range(len(ids))]}).to_csv(groups, index=False)
    out = tmp_path / "screen.csv"
    argv = ["screen", "--preset", "smoke", "--groups", str(groups), "--out", str(out), "--threshold", "0.4",
            "--gradient-rollouts", "8", "--folds", "2"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert Path(cap.out.strip().splitlines()[-1]) == out and "coefficients" in cap.err
    t = pd.read_csv(out, dtype={"prompt_id": str})
    assert list(t.columns) == fc.SCREEN_COLUMNS
    assert len(t) == len(ids) // 2 and set(t["group"]) == {"unlearnable", "learnable"}
    assert t["forecast"].between(0, 1).all() and t["forecast_oof"].notna().all()
    assert ((t["forecast"] >= 0.4) == (t["verdict"] == "unlearnable")).all()
    assert (t["k"] == 4).all() and t["tier"].notna().all() and np.allclose(t["chance_positives"], 4 / 11)
    # every example of the split on request
    assert main(argv[:-6] + ["--all", "--gradients", "none", "--loglik", "none"]) == 0
    t = pd.read_csv(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(t) == len(ids) and t["grad_sim"].isna().all() and t["label"].isna().sum() == len(ids) // 2


def test_screen_cli_one_class_and_clear_errors(smoke_store, tmp_path, capsys):
    ids = smoke_ids()
    groups = tmp_path / "groups.csv"
    pd.DataFrame({"prompt_id": ids[:5], "group": "unlearnable"}).to_csv(groups, index=False)
    out = tmp_path / "screen.csv"
    base = ["screen", "--preset", "smoke", "--groups", str(groups), "--out", str(out), "--gradients", "none",
            "--loglik", "none"]
    assert main(base) == 0
    cap = capsys.readouterr()
    assert "one class only (5 unlearnable, 0 learnable)" in cap.err and "base rate" in cap.err
    t = pd.read_csv(out)
    assert len(t) == 5 and (t["forecast"] == 1.0).all() and (t["verdict"] == "unlearnable").all()
    # the valid split: its hard examples (initial pass@1 <= tau), no labels
    assert main(base + ["--split", "valid"]) == 0
    t = pd.read_csv(capsys.readouterr().out.strip().splitlines()[-1])
    assert t["label"].isna().all() and (t["pass@1"] <= 0.1).all()
    assert main(base + ["--threshold", "1.5"]) == 2
    assert "threshold=1.5" in capsys.readouterr().err
    pd.DataFrame({"prompt_id": ids[:3], "group": "easy"}).to_csv(groups, index=False)
    assert main(base) == 2
    assert "no learnable or unlearnable example" in capsys.readouterr().err
    assert main(["screen", "--preset", "smoke", "--groups", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2
    assert "no such groups file" in capsys.readouterr().err


def test_screen_cli_on_the_smoke_study(smoke_store, tmp_path, capsys):
    """Labels from the §3 study of the smoke preset (the runs `test_cli` uses, so cached in a full run)."""
    out = tmp_path / "screen.csv"
    argv = ["screen", "--preset", "smoke", "--seeds", "1", "2", "--set", "grpo.steps=2", "--out", str(out),
            "--gradient-rollouts", "8"]
    code = main(argv)
    cap = capsys.readouterr()
    if code == 2:  # smoke groups may hold neither learnable nor unlearnable examples
        assert "no learnable or unlearnable example" in cap.err
        return
    assert code == 0
    t = pd.read_csv(out)
    assert list(t.columns) == fc.SCREEN_COLUMNS and set(t["group"]) <= {"learnable", "unlearnable"}
    assert t["forecast"].between(0, 1).all() and t["label"].notna().all()
    if t["label"].nunique() == 1:
        assert "one class only" in cap.err


def test_auroc_of_one_class_is_nan_even_with_unfitted_scores():
    """A profile whose labelled examples hold one class has no forecast (NaN scores): NaN, not an error."""
    import math

    import numpy as np

    from unlearnability.analysis import forecast as fc

    assert math.isnan(fc.auroc(np.ones(3), np.full(3, np.nan)))
    with pytest.raises(ValueError, match="NaN scores"):
        fc.auroc(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]))
