"""§5.3-5.4's figures and claims as library functions (analysis/augmentation.py, analysis/midtraining.py),
on small synthetic tables: what the augmentation-and-midtraining chapter displays and records."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from unlearnability.analysis import augmentation as aug
from unlearnability.analysis import midtraining as mid
from unlearnability.world.problems import Problem


def sample_rows(correct: dict[str, list[int]]) -> pd.DataFrame:
    """Per-sample rows prompt_id, reward from {prompt_id: rewards}."""
    return pd.DataFrame([(i, r) for i, rs in correct.items() for r in rs], columns=["prompt_id", "reward"])


def test_pass_rates_pool_samples_for_pass1_and_average_problems_for_pass_k():
    got = aug.pass_rates(sample_rows({"a": [1, 0, 0, 0], "b": [0, 0, 0, 0]}), k=2)
    assert got["pass@1"] == pytest.approx(1 / 8)
    assert got["pass@2"] == pytest.approx((1 - 3 / 6 + 0) / 2)  # a: 1 - C(3,2)/C(4,2); b: 0
    assert aug.pass_rates(sample_rows({"a": [1, 1], "b": [1, 0]}), k=2)["pass@2"] == pytest.approx(1.0)


def test_target_pass_rates_evaluate_step_0_and_every_checkpoint(tmp_path, monkeypatch):
    from unlearnability.pipeline import experiment

    run = tmp_path / "run"
    for step in (4, 2):
        (run / "checkpoints" / f"step_{step:04d}").mkdir(parents=True)
    asked = []
    monkeypatch.setattr(experiment, "evaluate_checkpoint", lambda d, step, k, ids: asked.append((step, k, tuple(ids))) or step)
    def read_eval(step, samples):  # step's samples: a correct in `step` of 4, b never
        assert samples
        return sample_rows({"a": [1] * step + [0] * (4 - step), "b": [0, 0, 0, 0]})

    monkeypatch.setattr(experiment, "read_eval", read_eval)
    f8 = aug.target_pass_rates({"similar": {1: run}}, ["a", "b"], k=2)
    assert asked == [(0, 2, ("a", "b")), (2, 2, ("a", "b")), (4, 2, ("a", "b"))]
    assert list(f8.columns) == ["composition", "seed", "step", "pass@1", "pass@2"]
    assert f8.step.tolist() == [0, 2, 4] and f8["pass@1"].tolist() == pytest.approx([0, 2 / 8, 4 / 8])
    assert aug.target_pass_rates({}, ["a"], k=2).empty


def test_figure8_verdicts_judge_each_composition_at_its_last_checkpoint():
    f8 = pd.DataFrame({"composition": ["both", "similar", "similar", "both", "similar", "both"],
                       "seed": 1, "step": [8, 8, 0, 0, 4, 4],
                       "pass@1": [0.5, 0.05, 0.02, 0.04, 0.9, 0.0], "pass@4": [0.7, 0.2, 0.1, 0.1, 0.95, 0.0]})
    finals = {1: pd.Series({"a": 0.2, "b": 0.0, "c": 1.0}), 42: pd.Series({"a": 0.4, "b": 0.0, "c": 1.0})}
    v = aug.figure8_verdicts(f8, finals, ["a", "b"], tau=0.1, k=4)
    assert set(v) == {"both", "similar"}
    assert v["similar"]["testbed"] == "reproduced" and v["both"]["testbed"] == "not"  # 0.05 <= tau < 0.5
    assert v["both"]["claim"] == "augmentation (both) does not lift them (Fig 8)" and v["both"]["paper"] == "barely moves"
    # the start is step 0's pass@1, the baseline the seeds' mean over the ids (0.1 and 0.2 -> 0.15)
    assert v["similar"]["numbers"] == "pass@1 0.020 -> 0.050 (baseline after training: 0.150); pass@4 -> 0.200"
    assert v["both"]["numbers"].startswith("pass@1 0.040 -> 0.500")


def test_validation_by_step_means_each_runs_validation(tmp_path):
    from unlearnability.store.history import VALIDATION_FILE

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()  # no validation file: no rows
    pd.DataFrame({"step": [0, 0, 5, 5], "prompt_id": ["x", "y", "x", "y"], "mean_reward": [0.0, 0.5, 1.0, 0.5]}).to_csv(
        a / VALIDATION_FILE, index=False)
    got = aug.validation_by_step({"similar": {1: a, 42: b}})
    assert got.to_dict("records") == [{"composition": "similar", "seed": 1, "step": 0, "validation pass@1": 0.25},
                                      {"composition": "similar", "seed": 1, "step": 5, "validation pass@1": 0.75}]
    assert aug.validation_by_step({}).empty


def history(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["step", "prompt_id", "mean_reward", "processed"])


def test_reward_by_kind_names_the_series_and_drops_unknown_problems():
    h = history([(1, "o", 0.0, 1), (1, "o-sim0", 1.0, 1), (1, "o-sim1", 0.5, 1), (2, "o-sub0", 0.25, 1), (2, "other", 1.0, 1)])
    kind = pd.Series({"o": "original", "o-sim0": "similar", "o-sim1": "similar", "o-sub0": "subproblem"})
    got = aug.reward_by_kind(h, kind, "unlearnable")
    assert got.to_dict("records") == [{"step": 1, "series": "original unlearnable", "mean_reward": 0.0},
                                      {"step": 1, "series": "similar problems", "mean_reward": 0.75},
                                      {"step": 2, "series": "subproblems", "mean_reward": 0.25}]


def test_baseline_group_reward_keeps_easy_and_learnable_pooled_by_window():
    group_of = pd.Series({"e": "easy", "l": "learnable", "u": "unlearnable"})
    h = history([(1, "e", 1.0, 1), (3, "e", 0.5, 1), (2, "l", 0.0, 1), (6, "l", 1.0, 1), (2, "u", 1.0, 1)])
    got = aug.baseline_group_reward({7: h}, group_of, window=5)
    assert list(got.columns) == ["step", "series", "mean_reward", "composition", "seed"]
    rows = {(r.step, r.series): r.mean_reward for r in got.itertuples()}
    assert rows == {(5, "baseline easy"): 0.75, (5, "baseline learnable"): 0.0, (10, "baseline learnable"): 1.0}
    assert set(got.composition) == {"baseline"} and set(got.seed) == {7}


def test_figure9_table_stacks_the_runs_then_the_baseline(monkeypatch, tmp_path):
    from unlearnability.data import tasks
    from unlearnability.pipeline import experiment
    from unlearnability.store import history as hist_mod
    from unlearnability.train import base

    probs = [Problem("o", "q", "1"), Problem("o-sim0", "q2", "2", {"kind": "similar", "source_id": "o"})]
    monkeypatch.setattr(experiment, "load_run_config", lambda d: "cfg")
    monkeypatch.setattr(base, "ensure_base_model", lambda cfg: "model")
    monkeypatch.setattr(tasks, "load_task", lambda cfg, model: SimpleNamespace(train=probs))
    monkeypatch.setattr(hist_mod, "read_history", lambda d: history([(1, "o", 0.0, 1), (1, "o-sim0", 1.0, 1)]))
    group_of = pd.Series({"o": "unlearnable", "e": "easy"})
    baseline = {1: history([(1, "e", 1.0, 1)])}
    got = aug.figure9_table({"similar": {1: tmp_path}}, baseline, group_of, "unlearnable")
    assert got[["series", "composition", "mean_reward"]].values.tolist() == [
        ["original unlearnable", "similar", 0.0], ["similar problems", "similar", 1.0], ["baseline easy", "baseline", 1.0]]
    assert aug.figure9_table({}, baseline, group_of, "unlearnable").empty


def test_figure10_verdict_is_not_reproduced_when_augmentations_are_clearly_more_similar():
    rng = np.random.default_rng(0)
    train = rng.normal(0.1, 0.01, 20)
    higher = pd.DataFrame({"sim_train": train, "sim_augmented": train + 0.2})
    v = aug.figure10_verdict(higher, n=2000)
    assert v["testbed"] == "not" and v["paper"] == "not higher"
    assert v["numbers"].startswith("100% of 20 examples above the diagonal; mean difference +0.200, p = 0.000")
    same = pd.DataFrame({"sim_train": train, "sim_augmented": rng.permutation(train)})
    assert aug.figure10_verdict(same, n=2000)["testbed"] == "reproduced"


def test_difficult_rows_keep_difficult_examples_with_a_similarity():
    f11 = pd.DataFrame({"model": "base", "prompt_id": list("abc"), "difficult": [True, False, True],
                        "similarity": [0.1, 0.2, np.nan]})
    assert mid.difficult_rows(f11).prompt_id.tolist() == ["a"]
    assert mid.difficult_rows(f11.drop(columns="difficult")).prompt_id.tolist() == ["a", "b"]


def test_figure11_verdicts_per_mixture_over_the_examples_both_models_analysed():
    rng = np.random.default_rng(1)
    ids = [f"p{i}" for i in range(15)]
    base = rng.normal(0.1, 0.01, 15)
    rows = [pd.DataFrame({"model": "base", "prompt_id": ids, "similarity": base}),
            pd.DataFrame({"model": "hybrid", "prompt_id": ids, "similarity": base + 0.05}),
            pd.DataFrame({"model": "long", "prompt_id": ids[:10], "similarity": base[:10] - 0.05}),
            pd.DataFrame({"model": "apart", "prompt_id": ["q0", "q1"], "similarity": [0.3, 0.4]})]
    v = mid.figure11_verdicts(pd.concat(rows), ["hybrid", "apart", "long"], n=2000)
    assert [r["claim"] for r in v] == ["mid-training (hybrid) raises their similarity (Fig 11)",
                                       "mid-training (long) raises their similarity (Fig 11)"]  # none in both: no claim
    assert [r["testbed"] for r in v] == ["reproduced", "not"]
    assert v[0]["numbers"].startswith("mean change +0.0500 over 15 examples (100% higher), p = 0.000")
    assert "over 10 examples (0% higher)" in v[1]["numbers"]


def test_shrink_verdict_counts_a_change_only_beyond_the_seed_spread():
    def cls(groups):  # a classify-like table: group column
        return pd.DataFrame({"group": groups})

    n = 10
    baseline = pd.DataFrame({"group": ["easy"] * n, "seed_1": ["unlearnable"] * 2 + ["easy"] * 8,
                             "seed_2": ["unlearnable"] * 3 + ["easy"] * 7})  # 20% and 30%: spread 10 points
    base = cls(["unlearnable"] * 5 + ["easy"] * 5)  # 50%
    initial, mid_initial = pd.Series([0.1, 0.3]), pd.Series([0.2, 0.4])
    verdict = lambda k: mid.shrink_verdict(base, cls(["unlearnable"] * k + ["easy"] * (n - k)), baseline,  # noqa: E731
                                           [1, 2], initial, mid_initial, "hybrid")
    assert verdict(2)["testbed"] == "yes"  # -30 points
    assert verdict(4)["testbed"] == "no: within the baseline's seed spread"  # -10 points: not beyond
    assert verdict(7)["testbed"] == "no: it grows"
    v = verdict(2)
    assert v["claim"] == "(beyond) mid-training (hybrid) shrinks the unlearnable group" and v["paper"] == "-"
    assert v["numbers"] == ("unlearnable 50.0% -> 20.0% (-30.0 points; the baseline's 2 seeds span 20.0-30.0%); "
                            "initial pass@1 0.200 -> 0.300")
