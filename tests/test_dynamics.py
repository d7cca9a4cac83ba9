"""Per-group curves and verdicts of the §4 chapter on hand-built tables."""

import math

import numpy as np
import pandas as pd
import pytest

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


def test_shift_verdict():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    g = np.zeros(60, bool)
    g[:20] = True
    x_low = x - 3 * g  # the group is far lower
    assert dyn.shift_verdict(x_low, g, "less")["verdict"] == "not"
    assert dyn.shift_verdict(x, g, "two-sided")["verdict"] == "reproduced"
    assert dyn.shift_verdict(x, np.zeros(60, bool), "less")["verdict"] == "untestable"


# ---------------------------------------------------------------- the chapter's claims


def finals_tables():
    grp = pd.Series({"a": "learnable", "b": "learnable", "u": "unlearnable", "v": "unlearnable"})
    base = dyn.group_finals({1: pd.Series({"a": 0.5, "b": 0.3, "u": 0.0, "v": 0.05}),
                             2: pd.Series({"a": 0.4, "b": 0.4, "u": 0.05, "v": 0.0})}, grp)
    lifted = dyn.group_finals({1: pd.Series({"a": 0.6, "b": 0.4, "u": 0.3, "v": 0.2})}, grp)
    return base, lifted


def test_gap_claim_words_its_verdict():
    base, lifted = finals_tables()
    c = dyn.gap_claim("Figure 5, no KL", base, lifted, tau=0.1)
    assert c["verdict"] == "not" and c["effect"] > 0.2
    assert c["numbers"] == "unlearnable 0.025 -> 0.250; gap +0.375 -> +0.250"
    assert c["line"] == dyn.verdict_line("Figure 5, no KL", c) and c["line"].startswith("**Figure 5, no KL: not.**")
    assert dyn.gap_claim("x", base, lifted, tau=0.5)["verdict"] == "partly"  # a lift beyond noise, below tau
    assert dyn.claim_line("Figure 7", "partly", "a -> b") == "**Figure 7: partly.** a -> b."


def test_replay_tables_count_algorithm_1_per_group(tmp_path):
    runs = {}
    for s, rows in ((1, [("a", 1, 2, 0, 0, 0), ("a", 0, 0, 0, 0, 3), ("u", 1, 0, 1, 1, 4)]),
                    (42, [("u", 1, 0, 1, 0, 4), ("zz", 1, 1, 0, 0, 1)])):
        d = tmp_path / str(s)
        d.mkdir()
        pd.DataFrame(rows, columns=["prompt_id", "kept", "drawn_pos", "replayed", "extra_pos", "buffered"]).to_csv(
            d / "replay.csv", index=False)
        runs[s] = d
    rep = dyn.read_replay(runs, pd.Series({"a": "learnable", "u": "unlearnable"}))
    assert list(rep.seed) == [1, 1, 1, 42, 42] and list(rep.group)[-1] == "other"
    rt = dyn.replay_table(rep, capacity=4)
    assert list(rt.index) == ["learnable", "unlearnable", "other"]  # GROUPS order, empty groups left out
    assert rt.loc["learnable", "draws"] == 2 and rt.loc["learnable", "drawn_positives"] == 1.0
    assert rt.loc["learnable", "no_positive_drawn"] == 0.5 and rt.loc["learnable", "filtered"] == 0.5
    assert rt.loc["learnable", "empty_buffer"] == 0.5 and rt.loc["unlearnable", "full_buffer"] == 1.0
    assert rt.loc["unlearnable", "replayed"] == 1.0 and rt.loc["unlearnable", "extra_positives"] == 0.5
    from unlearnability.book.charts import replay_text

    text = replay_text(rt)
    assert text.loc["draws", "learnable"] == "2" and text.loc["buffer full", "unlearnable"] == "100.0%"
    assert list(text.index) == list(dyn.REPLAY_WORDS.values())
    assert dyn.replay_counts(rep) == " Replays: 2 in 5 draws; 1 draws filtered."
    assert "capacity 4" in dyn.replay_caption(16, 4) and "draws of 16 rollouts" in dyn.replay_caption(16, 4)
    for d in runs.values():  # logs written before the buffer size was
        pd.read_csv(d / "replay.csv").drop(columns="buffered").to_csv(d / "replay.csv", index=False)
    rep_old = dyn.read_replay(runs, pd.Series({"a": "learnable"}))
    assert rep_old["buffered"].isna().all()
    old = dyn.replay_table(rep_old, 4)  # an unknown buffer is never counted empty or full
    assert (old[["empty_buffer", "full_buffer"]] == 0).all().all() and old.loc["learnable", "draws"] == 2


def test_sft_mix_keeps_the_papers_proportions():
    sizes = pd.Series({"easy": 50, "learnable": 7, "unlearnable": 3, "no_reward": 9, "ambiguous": 0})
    assert dyn.sft_mix(sizes) == {"unlearnable": 3, "learnable": 3, "easy": 6}
    assert dyn.sft_mix(sizes.replace({3: 0})) == {"unlearnable": 0, "learnable": 7, "easy": 14}
    assert dyn.sft_mix(pd.Series({"easy": 0, "learnable": 0, "unlearnable": 0})) == {"unlearnable": 0, "learnable": 0, "easy": 0}
    assert dyn.sft_mix(pd.Series({"easy": 4, "learnable": 0, "unlearnable": 0}))["easy"] == 16  # 8 when no hard group


def sft_evals(after: dict) -> pd.DataFrame:
    before = {"easy": 0.5, "learnable": 0.2, "unlearnable": 0.0}
    return pd.DataFrame([{"step": st, "group": g, "examples": 2, "pass@1": v[g]}
                         for st, v in ((0, before), (10, after)) for g in v])


def test_sft_claim():
    c = dyn.sft_claim(sft_evals({"easy": 0.9, "learnable": 0.6, "unlearnable": 0.05}), tau=0.1)
    assert c["verdict"] == "reproduced" and c["table"].loc["unlearnable", "gain"] == pytest.approx(0.05)
    assert c["numbers"] == "unlearnable 0.000 -> 0.050; learnable 0.200 -> 0.600"
    assert c["line"].startswith("**Figure 15a: reproduced.** unlearnable 0.000 -> 0.050;")
    assert dyn.sft_claim(sft_evals({"easy": 0.9, "learnable": 0.6, "unlearnable": 0.3}), 0.1)["verdict"] == "not"
    assert dyn.sft_claim(sft_evals({"easy": 0.5, "learnable": 0.25, "unlearnable": 0.08}), 0.1)["verdict"] == "partly"
    none = dyn.sft_claim(sft_evals({"easy": 0.9, "learnable": 0.6, "unlearnable": 0.0}).query("group != 'unlearnable'"))
    assert (none["verdict"], none["numbers"]) == ("untestable", "no unlearnable examples")
    assert list(none["table"].columns) == ["before", "after", "gain"]


def test_seed_curve_and_big_group_claim():
    h = pd.DataFrame({"step": [1, 1, 2], "prompt_id": ["a", "b", "a"], "mean_reward": [0.0, 0.5, 1.0], "processed": 1})
    c = dyn.seed_curve({1: h, 42: h.assign(mean_reward=0.0)})
    assert list(c.columns) == ["step", "mean", "seed"] and list(c["mean"]) == [0.25, 1.0, 0.0, 0.0]
    assert list(c.seed) == ["1", "1", "42", "42"]
    initial = pd.Series({"a": 0.9, "u": 0.0, "v": 0.1})
    finals = {1: pd.Series({"u": 0.0, "v": 0.2}), 42: pd.Series({"u": 0.1, "v": 0.1})}
    after = {1: pd.Series({"u": 0.05, "v": 0.15})}
    v = dyn.big_group_claim(initial, finals, after, ["u", "v"], [0.2, 0.4], [0.1], tau=0.1, name="unlearnable",
                            steps=5, group_size=64)
    assert v["verdict"] == "reproduced" and v["after"] == pytest.approx(0.1) and v["lifted"] == 0.5
    assert v["before"] == pytest.approx(0.05) and v["baseline_after"] == pytest.approx(0.1)
    assert v["numbers"] == ("unlearnable: pass@1 0.050 at the start, 0.100 after the baseline, 0.100 after 5 steps "
                            "with groups of 64; 50% of them end above τ; held-out validation 0.300 before, 0.100 after")
    assert dyn.big_group_claim(initial, finals, {1: pd.Series({"u": 0.5, "v": 0.1})}, ["u", "v"], [0.2], [0.1],
                               tau=0.1)["verdict"] == "not"
