"""The calibration computations on hand-built histories (benchmarks/calibration.py uses them)."""

import math

import numpy as np
import pandas as pd
import pytest

from unlearnability.evaluation.calibration import (
    fleiss_kappa,
    paired_change,
    seed_switches,
    style_shares,
    switch_pairs,
    switch_sets,
    validation_curve,
)
from unlearnability.evaluation.groups import classify


def hist(rows):
    return pd.DataFrame(rows, columns=["step", "prompt_id", "mean_reward", "std_reward", "n", "processed", "clip_frac"])


def test_paired_change_and_its_standard_error():
    v = pd.DataFrame({"step": [0, 0, 0, 30, 30, 30, 30], "prompt_id": ["a", "b", "c", "a", "b", "c", "d"],
                      "mean_reward": [0.0, 0.5, 0.25, 0.5, 0.5, 0.75, 1.0], "n": 8})
    out = paired_change(v)
    # d only at step 30: not paired. differences 0.5, 0, 0.5 -> mean 1/3, sd 0.2887, se 0.1667
    assert out["n"] == 3 and out["start"] == 0 and out["end"] == 30
    assert out["before"] == pytest.approx(0.25) and out["after"] == pytest.approx(1.75 / 3)
    assert out["change"] == pytest.approx(1 / 3) and out["se"] == pytest.approx(0.288675 / math.sqrt(3), rel=1e-4)
    curve = validation_curve(v).set_index("step")
    assert curve.loc[30, "n"] == 4 and curve.loc[0, "lo"] < curve.loc[0, "mean"] < curve.loc[0, "hi"]


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) / Wikipedia's worked example: 10 subjects, 14 raters, 5 categories -> 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    labels = pd.DataFrame([[c for c, k in enumerate(row) for _ in range(k)] for row in table])
    assert fleiss_kappa(labels) == pytest.approx(0.210, abs=5e-4)
    agree = pd.DataFrame({"s1": ["x", "y", "x"], "s2": ["x", "y", "x"]})
    assert fleiss_kappa(agree) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(pd.DataFrame({"s1": ["x", "x"], "s2": ["x", "x"]})))


def _hand_fleiss_kappa(labels: pd.DataFrame) -> float:
    """The book's former hand-written kappa (Fleiss 1971), kept here as the reference."""
    m = labels.shape[1]
    counts = labels.apply(lambda row: row.value_counts(), axis=1).fillna(0)
    p_item = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    shares = counts.sum(axis=0) / (len(labels) * m)
    p_e = float((shares**2).sum())
    return float((p_item.mean() - p_e) / (1 - p_e))


def test_fleiss_kappa_by_statsmodels_agrees_with_the_hand_formula():
    rng = np.random.default_rng(3)
    for raters, items in ((2, 7), (3, 50), (3, 400), (5, 31)):
        cats = np.array(["easy", "learnable", "unlearnable", "no_reward"], dtype=object)
        # correlated raters: a shared label most of the time, else a random one
        base = rng.choice(cats, size=items)
        lab = pd.DataFrame({f"seed_{r}": np.where(rng.random(items) < 0.6, base, rng.choice(cats, size=items))
                            for r in range(raters)})
        assert fleiss_kappa(lab) == pytest.approx(_hand_fleiss_kappa(lab), abs=1e-12)


def test_seed_switches_count_only_non_easy_problems_with_a_positive():
    ids = ["easy", "learn", "flip", "never"]
    initial = pd.Series([0.5, 0.0, 0.0, 0.0], index=ids)
    finals = {1: pd.Series([0.9, 0.5, 0.5, 0.0], index=ids), 2: pd.Series([0.9, 0.5, 0.0, 0.0], index=ids)}
    h = {1: hist([(1, "learn", 0.25, 0.4, 8, 1, 0.0), (1, "flip", 0.125, 0.3, 8, 1, 0.0), (1, "never", 0, 0, 8, 0, None)]),
         2: hist([(1, "learn", 0.25, 0.4, 8, 1, 0.0), (1, "flip", 0.125, 0.3, 8, 1, 0.0), (1, "never", 0, 0, 8, 0, None)])}
    cls = classify(initial, finals, h, tau=0.1)
    sw = seed_switches(cls, h)
    assert sw["problems"] == 2 and sw["switch"] == 0.5  # "flip" is learnable in seed 1, unlearnable in seed 2
    pairs = switch_pairs(cls)
    assert pairs.to_dict() == {"learnable / unlearnable": 1}
    assert switch_sets(cls).to_dict() == {"flip": "learnable / unlearnable"}
    assert switch_pairs(cls[cls.index != "flip"]).empty


def test_style_shares():
    s = pd.DataFrame({"style": ["worked", "worked", "answer", "terse"], "reward": [1, 0, 1, 0],
                      "group": ["a", "a", "b", "b"]})
    assert style_shares(s).loc["all", "worked"] == 0.5
    assert style_shares(s, correct_only=True).loc["all", "answer"] == 0.5
    assert style_shares(s, by="group").loc["b", "terse"] == 0.5
    assert style_shares(s[s.reward > 5], correct_only=True).iloc[0].empty  # no sample: no styles, no error


def _style_headroom():
    from conftest import load_benchmark

    return load_benchmark("style_headroom")


def test_style_headroom_arms_differ_only_in_the_base_model():
    from unlearnability.config import load_config
    from unlearnability.store import runs
    from unlearnability.train.pretrain import without_anneal

    sh = _style_headroom()
    assert sh.style_mix(0.4) == {"worked": 0.4, "terse": 0.2, "leap": 0.2, "answer": 0.2}  # not 0.19999...
    assert sh.style_mix(1.0) == {"worked": 1.0}
    with pytest.raises(SystemExit, match="worked share"):
        sh.style_mix(0.0)
    common = {"grpo": {"steps": 20, "loss_chunk_tokens": 4096}}
    arms = sh.arms([0.4], [0.25], True, common)
    assert list(arms) == ["preset", "mid-trained, worked 0.4", "from scratch, worked 0.25", "worked only (control)"]
    cfgs = {name: load_config("default", o) for name, o in arms.items()}
    assert all(c.grpo.steps == 20 and c.grpo.loss_chunk_tokens == 4096 for c in cfgs.values())
    preset = cfgs["preset"]
    mid = cfgs["mid-trained, worked 0.4"]
    assert mid.midtrain.mixture == "pretrain" and mid.world == preset.world
    assert runs.base_dir(mid) == runs.base_dir(preset)  # continues the preset's cached base model
    assert cfgs["from scratch, worked 0.25"].world.styles["worked"] == 0.25
    control = cfgs["worked only (control)"]
    assert runs.base_dir(control) != runs.base_dir(preset) and control.world == preset.world
    assert {k for k, v in control.pretrain.anneal_styles.items() if v} == {"worked"}  # only the final phase changes
    assert runs.base_dir(without_anneal(control)) == runs.base_dir(without_anneal(preset))  # its first phase is shared
    assert len({runs.grpo_dir(c) for c in cfgs.values()}) == 4
    # one run's row: validation paired by problem, training reward of the first / last sixth of the steps
    v = pd.DataFrame({"step": [0, 0, 20, 20], "prompt_id": ["a", "b", "a", "b"], "mean_reward": [0.0, 0.5, 0.5, 0.5]})
    log = pd.DataFrame({"mean_reward": [0.1] * 6 + [0.3] * 6, "kl": [0.0] * 11 + [0.2]})
    row = sh.arm_row(v, log)
    assert row["change"] == pytest.approx(0.25) and row["reward first sixth"] == pytest.approx(0.1)
    assert row["last sixth"] == pytest.approx(0.3) and row["max KL"] == pytest.approx(0.2)
