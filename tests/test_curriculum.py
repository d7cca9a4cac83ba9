"""Figure 18's tables and verdict (analysis/curriculum.py) on two fake stages."""

import math
import types

import pandas as pd
import pytest

from unlearnability.analysis import curriculum


@pytest.fixture()
def stages(tmp_path, monkeypatch):
    """Stage 1: checkpoints 5, 10 (of 10 steps), a validation log; stage 2: checkpoints 2, 4, none.
    The unlearnable examples' pass@1 is step / 100 (of the stage), their correct rollouts score 1."""
    from unlearnability.pipeline import experiment
    from unlearnability.store import history, runs

    cur = types.SimpleNamespace(stage1=tmp_path / "s1", stage2=tmp_path / "s2", unlearnable=["u1", "u2"], mixed_in=["a", "b"])
    calls = []

    def evaluate(d, step, ids=None):
        calls.append((d.name, step))
        return step

    def read(step, samples=False):
        n = 100
        return pd.DataFrame({"prompt_id": ["u1", "u2"] * (n // 2), "reward": [1.0] * step + [0.0] * (n - step), "score": 1})

    monkeypatch.setattr(experiment, "load_run_config", lambda d: types.SimpleNamespace(grpo=types.SimpleNamespace(steps=10)))
    monkeypatch.setattr(experiment, "evaluate_checkpoint", evaluate)
    monkeypatch.setattr(experiment, "read_eval", read)
    monkeypatch.setattr(runs, "checkpoint_steps", lambda d: [5, 10] if d.name == "s1" else [2, 4])
    logs = {"s1": pd.DataFrame({"step": [0, 0, 10, 10], "prompt_id": ["v", "w"] * 2, "mean_reward": [0.1, 0.3, 0.4, 0.4], "n": 4}),
            "s2": pd.DataFrame(columns=["step", "prompt_id", "mean_reward", "n"])}
    monkeypatch.setattr(history, "read_validation", lambda d: logs[d.name])
    return cur, calls


def test_curriculum_scores_continue_stage_1(stages):
    cur, calls = stages
    scores, vals = curriculum.curriculum_scores(cur, cur.unlearnable)
    assert calls == [("s1", 0), ("s1", 5), ("s1", 10), ("s2", 2), ("s2", 4)]  # stage 2's step 0 is stage 1's last
    assert list(scores.stage) == ["stage 1"] * 3 + ["stage 2"] * 2 and list(scores.step) == [0, 5, 10, 12, 14]
    assert list(scores.success) == pytest.approx([0.0, 0.05, 0.10, 0.02, 0.04])
    assert math.isnan(scores.mean_score.iloc[0]) and scores.mean_score.iloc[1] == 1 and list(scores.correct_rollouts) == [0, 5, 10, 2, 4]
    assert len(vals) == 1 and list(vals[0].step) == [0, 10] and list(vals[0].validation) == pytest.approx([0.2, 0.4])
    long = curriculum.curriculum_long(scores, vals)
    assert list(long.series) == ["unlearnable pass@1"] * 5 + ["validation pass@1"] * 2
    assert list(long.columns) == ["stage", "step", "value", "series"]
    assert list(curriculum.curriculum_long(scores, []).series.unique()) == ["unlearnable pass@1"]


def test_curriculum_verdict(stages):
    cur, _ = stages
    scores, _ = curriculum.curriculum_scores(cur, cur.unlearnable)
    log = pd.DataFrame({"mean_reward": [0.1, 0.2, 0.3, 0.5, 0.5, 0.5]})
    verdict, numbers = curriculum.curriculum_verdict(scores, log, 2, 2, tau=0.1)
    assert verdict == "reproduced"
    assert numbers == ("2 unlearnable + 2 mixed-in examples; stage 1 reward over its last third 0.500 ± 0.000; "
                       "unlearnable pass@1 at the end of stage 1 0.100, after stage 2 0.040")
    assert curriculum.curriculum_verdict(scores, log, 2, 2, tau=0.03)[0] == "not"
    no_stage2 = curriculum.curriculum_verdict(scores[scores.stage == "stage 1"], log, 2, 2, tau=0.1)
    assert no_stage2[0] == "not" and no_stage2[1].endswith("after stage 2 nan")
