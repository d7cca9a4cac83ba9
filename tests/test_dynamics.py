"""Per-group curves and verdicts of the §4 chapter on hand-built tables."""

import math

import numpy as np
import pandas as pd

from unlearnability.analysis import dynamics as dyn


def test_group_curve_windows_and_processed_only():
    h = pd.DataFrame({"step": [1, 1, 2, 3, 3, 4], "prompt_id": ["a", "b", "a", "b", "c", "a"],
                      "mean_reward": [0.0, 1.0, 0.5, 0.25, 0.75, 1.0], "processed": [1, 1, 0, 1, 1, 1]})
    g = pd.Series({"a": "learnable", "b": "unlearnable"})  # "c" has no group: dropped
    c = dyn.group_curve(h, g, window=2)
    got = c.set_index(["step", "group"])
    assert got.loc[(2, "learnable"), "mean"] == 0.25 and got.loc[(2, "learnable"), "rows"] == 2
    assert got.loc[(4, "unlearnable"), "mean"] == 0.25 and got.loc[(4, "learnable"), "mean"] == 1.0
    p = dyn.group_curve(h, g, processed_only=True).set_index(["step", "group"])
    assert (2, "learnable") not in p.index and p.loc[(1, "unlearnable"), "mean"] == 1.0
    both = dyn.group_curves({1: h, 42: h.assign(mean_reward=0.0)}, g, "baseline", window=2)
    assert set(both.seed) == {"1", "42"} and set(both.run) == {"baseline"}
    pd.testing.assert_frame_equal(both[both.seed == "1"].drop(columns=["seed", "run"]).reset_index(drop=True), c)
    assert both[both.seed == "42"]["mean"].eq(0).all()


def test_group_finals_and_gap_verdict():
    grp = pd.Series({"a": "learnable", "b": "learnable", "u": "unlearnable", "v": "unlearnable"})
    base = dyn.group_finals({1: pd.Series({"a": 0.5, "b": 0.3, "u": 0.0, "v": 0.05}),
                             2: pd.Series({"a": 0.4, "b": 0.4, "u": 0.05, "v": 0.0})}, grp)
    assert set(base.group) == {"learnable", "unlearnable"} and (base.examples == 2).all()
    same = dyn.group_finals({1: pd.Series({"a": 0.6, "b": 0.4, "u": 0.03, "v": 0.02})}, grp)
    v = dyn.gap_verdict(base, same)
    assert v["verdict"] == "reproduced" and math.isclose(v["baseline_unlearnable"], 0.025)
    lifted = dyn.group_finals({1: pd.Series({"a": 0.6, "b": 0.4, "u": 0.3, "v": 0.2})}, grp)
    assert dyn.gap_verdict(base, lifted)["verdict"] == "not"
    some = dyn.group_finals({1: pd.Series({"a": 0.6, "b": 0.4, "u": 0.1, "v": 0.06})}, grp)
    assert dyn.gap_verdict(base, some)["verdict"] == "partly"
    none = dyn.group_finals({1: pd.Series({"a": 0.6})}, grp)
    assert dyn.gap_verdict(base, none)["verdict"] == "untestable"
    line = dyn.verdict_line("Figure 2", dyn.gap_verdict(base, lifted))
    assert line.startswith("**Figure 2: not.**") and "0.025 (baseline) -> 0.250" in line


def test_permutation_p_and_shift_verdict():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    g = np.zeros(60, bool)
    g[:20] = True
    x_low = x - 3 * g  # the group is far lower
    gap, p = dyn.permutation_p(x_low, g, "less", n=2000)
    assert gap < -2 and p < 0.01
    assert dyn.permutation_p(x_low, g, "greater", n=2000)[1] > 0.9
    assert dyn.shift_verdict(x_low, g, "less")["verdict"] == "not"
    assert dyn.shift_verdict(x, g, "two-sided")["verdict"] == "reproduced"
    assert dyn.shift_verdict(x, np.zeros(60, bool), "less")["verdict"] == "untestable"
