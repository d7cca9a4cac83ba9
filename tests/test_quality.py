"""Reasoning quality per group (Figure 7) and Table 2's example, on hand-built rollouts."""

import random

import numpy as np
import pandas as pd
import pytest

from unlearnability.analysis import quality
from unlearnability.config import WorldConfig
from unlearnability.world import check_steps, graph_of
from unlearnability.world.generator import make_graph, problem_from_graph


def problem(seed=0, n_ops=3):
    cfg = WorldConfig(p=11, digits=2, tiers=[1, 2], distractors_max=0)
    return problem_from_graph(make_graph(random.Random(seed), cfg, n_ops, 0, {"add": 1.0, "sub": 1.0}), f"t{seed}")


def rows(p, responses, group_reward=1.0):
    out = []
    for i, r in enumerate(responses):
        rep = check_steps(graph_of(p), r)
        out.append({"prompt_id": p.id, "sample": i, "reward": float(rep.correct_answer), "score": rep.score,
                    "exact": rep.exact, "response": r})
    return out


def test_score_by_group_and_pick_rule():
    a, b = problem(1), problem(2)
    g = graph_of(a)
    worked, bare = g.solution("worked"), g.solution("answer")
    gb = graph_of(b)
    df = pd.DataFrame(rows(a, [worked, bare, bare + " x"]) + rows(b, [gb.solution("worked")]))
    group_of = pd.Series({a.id: "unlearnable", b.id: "learnable"})
    t = quality.score_by_group(df, group_of)
    assert t.loc["unlearnable", "correct_rollouts"] == int((df[df.prompt_id == a.id].reward > 0).sum())
    assert t.loc["learnable", "mean_score"] == 5 and t.loc["learnable", "exact_share"] == 1.0
    pick = quality.pick_low_quality(df, group_of, {a.id: a, b.id: b})
    assert pick["prompt_id"] == a.id and pick["score"] == df[(df.prompt_id == a.id) & (df.reward > 0)].score.min()
    assert quality.pick_low_quality(df, group_of, {a.id: a, b.id: b}, group="easy") is None


def test_marked_lines_marks_wrong_and_missing_steps():
    p = problem(3, n_ops=3)
    g = graph_of(p)
    worked = g.solution("worked")
    ok = quality.marked_lines(p, worked)
    assert set(ok.verdict) == {"ok", "answer"} and ok.iloc[-1]["reason"] == "correct"
    # drop the first step line: it shows up as missing; corrupt a digit of the last: invalid
    lines = [x.strip() for x in worked[: worked.rfind("answer")].split(" .") if x.strip()]
    assert len(lines) >= 2
    toks = lines[-1].split()
    toks[-1] = "0" if toks[-1] != "0" else "1"
    broken = " . ".join(lines[1:-1] + [" ".join(toks)]) + " . " + worked[worked.rfind("answer"):]
    m = quality.marked_lines(p, broken)
    assert (m.verdict == "missing").sum() >= 1 and (m.verdict == "invalid").sum() >= 1


def test_reasoning_verdict_figure7():
    from unlearnability.analysis.quality import reasoning_verdict

    wide = pd.DataFrame({0: [4.0, 3.0, 1.0], 30: [4.5, 4.0, 1.2]}, index=["easy", "learnable", "unlearnable"])
    assert reasoning_verdict(wide)[0] == "reproduced"  # lowest at the start, rises less (0.2 vs 0.75)
    rises = wide.copy()
    rises[30] = [4.5, 4.0, 3.0]
    assert reasoning_verdict(rises)[0] == "partly"  # lowest at the start, but rises the most
    rises[0], rises[30] = [4.0, 0.5, 1.0], [4.5, 2.0, 3.0]
    assert reasoning_verdict(rises)[0] == "not"  # not the lowest, and rises the most
    assert reasoning_verdict(wide.drop("unlearnable")) == ("untestable", "no unlearnable example with a correct rollout")
    assert "1.00 -> 1.20" in reasoning_verdict(wide)[1]


def test_checkpoint_steps(tmp_path):
    from unlearnability.store.runs import checkpoint_steps

    for s in (20, 10, 30):
        (tmp_path / "checkpoints" / f"step_{s:04d}").mkdir(parents=True)
    assert checkpoint_steps(tmp_path) == [10, 20, 30] and checkpoint_steps(tmp_path / "none") == []


def samples_table():
    """8 rollouts of 6 problems: unlearnable u1, u2 with poor correct rollouts, learnable l1, l2
    with good ones, easy e1, and x (no group)."""
    rows = []
    for pid, rewards, scores, exact in (("u1", [1, 0], [1, 0], [False, False]), ("u2", [1, 1], [0, 2], [False, False]),
                                        ("l1", [1, 1], [5, 4], [True, False]), ("l2", [1, 0], [5, 0], [True, False]),
                                        ("e1", [1, 1], [5, 5], [True, True]), ("x", [1, 1], [3, 3], [False, False])):
        rows += [{"prompt_id": pid, "sample": i, "reward": float(r), "score": s, "exact": e,
                  "style": "worked" if s >= 4 else "answer"} for i, (r, s, e) in enumerate(zip(rewards, scores, exact))]
    return pd.DataFrame(rows)


GROUP_OF = pd.Series({"u1": "unlearnable", "u2": "unlearnable", "l1": "learnable", "l2": "learnable", "e1": "easy"})


def test_figure_1d_tables_and_claim():
    correct = quality.correct_rollouts(samples_table(), GROUP_OF)
    assert len(correct) == 8 and "x" not in set(correct.prompt_id) and (correct.reward > 0).all()
    dist = quality.score_shares(correct)
    assert list(dist.columns) == ["group", "score", "rollouts", "share"]
    assert dist.groupby("group").share.sum().round(12).eq(1).all()
    assert dist.set_index(["group", "score"]).loc[("unlearnable", 0), "share"] == pytest.approx(1 / 3)
    q = quality.correct_summary(correct, ["easy", "learnable", "unlearnable", "no_reward"])
    assert list(q.index) == ["easy", "learnable", "unlearnable", "no_reward"] and q.loc["no_reward"].isna().all()
    assert q.loc["learnable", "correct_rollouts"] == 3 and q.loc["learnable", "problems"] == 2
    assert q.loc["unlearnable", "mean_score"] == 1.0 and q.loc["learnable", "exact_share"] == pytest.approx(2 / 3)
    assert q.loc["learnable", "worked_style_share"] == 1.0
    assert "worked_style_share" not in quality.correct_summary(correct.drop(columns="style"), ["easy"])
    c = quality.quality_gap_claim(correct, q)
    # per problem: u1 1.0, u2 1.0, l1 4.5, l2 5.0 -> gap -3.75; the lowest 2 of 4: 1 of 6 relabelings
    assert c["gap"] == pytest.approx(-3.75) and c["p"] == pytest.approx(1 / 6) and c["problems"] == 4
    assert c["line"].startswith("Correct rollouts of unlearnable problems score 1.00 on average (0% exact), "
                                "learnable ones 4.67 (67% exact), easy ones 5.00 (100% exact).")
    assert c["line"].endswith("p = 0.167); the paper's direction, but within what random relabelling produces.")
    none = quality.quality_gap_claim(correct, q.drop("learnable"))
    assert none["line"] is None and np.isnan(none["gap"]) and np.isnan(none["p"])


def test_checkpoint_scores_reads_each_checkpoint(monkeypatch):
    from unlearnability.pipeline import experiment

    calls = []

    def evaluate(run, step, ids=None):
        calls.append((run, step, tuple(ids)))
        return step

    def read(step, samples=False):
        t = samples_table()
        return t.assign(score=t.score if step == 0 else 5)

    monkeypatch.setattr(experiment, "evaluate_checkpoint", evaluate)
    monkeypatch.setattr(experiment, "read_eval", read)
    t = quality.checkpoint_scores("run", [0, 10], ["u1", "l1"], GROUP_OF)
    assert calls == [("run", 0, ("u1", "l1")), ("run", 10, ("u1", "l1"))]
    assert list(t.columns[:2]) == ["group", "correct_rollouts"] and list(t.step) == [0] * 3 + [10] * 3
    wide = quality.score_table(t, ["easy", "learnable", "unlearnable", "no_reward"])
    assert list(wide.index) == ["easy", "learnable", "unlearnable"] and list(wide.columns) == [0, 10]
    assert wide.loc["unlearnable", 0] == 1.0 and wide.loc["unlearnable", 10] == 5.0
    assert quality.reasoning_verdict(wide)[0] == "partly"  # lowest at the start, rises the most

    import unlearnability.analysis.judge as judge_mod

    monkeypatch.setattr(judge_mod, "judge_table", lambda cfg, problems, right, errors: pd.DataFrame({"score": [2] * len(right)}))
    j = quality.checkpoint_scores("run", [0], ["u1"], GROUP_OF, judge={"base_url": "http://x", "model": "m"}, problems={})
    assert j.mean_score.eq(2).all()
