"""Reasoning quality per group (Figure 7) and Table 2's example, on hand-built rollouts."""

import random

import pandas as pd

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
