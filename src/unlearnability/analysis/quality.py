"""Reasoning quality of correct rollouts per group (paper §5.2, A.5: Figures 1d, 7, Table 2).

The paper scores correct rollouts 0-5 with an LLM judge; the testbed scores them with its
exact step checker (`world.checker.check_steps`), which the evaluation tables already carry
(`score`, `exact`, `style` per sample). At paper scale the same tables can carry a judge's
score (`analysis.judge`), and these functions read whichever `score` column is there.

    score_by_group     correct rollouts per group: count, mean score, exact share, score-0 share
    pick_low_quality   Table 2's example, chosen by a stated rule (not by hand)
    marked_lines       a testbed response line by line with the checker's verdict on each
    reasoning_verdict  Figure 7's claim on a table of mean scores per group and checkpoint
    checkpoint_scores  that table's rows, from a run's checkpoints (evaluates them: not a pure
                       function, like `judged`, which calls the LLM judge), and `score_table`
    correct_rollouts, score_shares, correct_summary, quality_gap_claim
                       Figure 1d at the initial policy: the score distribution, the per-group
                       table and the claim (one-sided permutation test per problem)
"""

from __future__ import annotations

import pandas as pd

from unlearnability.world.problems import Problem

PICK_RULE = ("among the group's correct rollouts, the one with the lowest checker score; ties go to the one "
             "with the most invalid lines, then the shortest response, then the first problem id and sample")


def score_by_group(samples: pd.DataFrame, group_of: pd.Series) -> pd.DataFrame:
    """samples (prompt_id, reward, score[, exact]) -> per group: correct_rollouts, problems,
    mean_score, exact_share, zero_share (score 0: a right answer with no valid step)."""
    c = samples[samples["reward"] > 0].assign(group=lambda d: d["prompt_id"].map(group_of)).dropna(subset=["group"])
    agg = {"correct_rollouts": ("score", "size"), "problems": ("prompt_id", "nunique"),
           "mean_score": ("score", "mean"), "zero_share": ("score", lambda s: (s == 0).mean())}
    if "exact" in c:
        agg["exact_share"] = ("exact", "mean")
    return c.groupby("group").agg(**agg)


def reasoning_verdict(wide: pd.DataFrame) -> tuple[str, str]:
    """Figure 7's claim, "the unlearnable group's correct rollouts have the poorest reasoning, and
    training does not fix it", on a table of mean scores (index group, columns checkpoint steps).

    reproduced: unlearnable is the lowest group at the first checkpoint and rises no more than the
    other groups' mean rise by the last; partly: one of the two; not: neither; untestable: no
    unlearnable row (or no other group). Returns (verdict, the numbers in words)."""
    if "unlearnable" not in wide.index or len(wide) < 2:
        return "untestable", "no unlearnable example with a correct rollout"
    first, last = wide.columns[0], wide.columns[-1]
    low0 = wide[first].idxmin() == "unlearnable"
    rise = wide.loc["unlearnable", last] - wide.loc["unlearnable", first]
    others = (wide.drop("unlearnable")[last] - wide.drop("unlearnable")[first]).mean()
    verdict = "reproduced" if low0 and rise <= others else ("partly" if low0 or rise <= others else "not")
    numbers = (f"unlearnable {wide.loc['unlearnable', first]:.2f} -> {wide.loc['unlearnable', last]:.2f} "
               f"(rise {rise:+.2f} vs {others:+.2f} for the other groups); lowest at step {first}: {wide[first].idxmin()}")
    return verdict, numbers


def pick_low_quality(samples: pd.DataFrame, group_of: pd.Series, problems: dict[str, Problem],
                     group: str = "unlearnable") -> pd.Series | None:
    """Table 2's example by `PICK_RULE`: one correct rollout (a row of `samples`, with
    `response`) of `group`, or None when the group has no correct rollout."""
    from unlearnability.world import check_steps, graph_of

    c = samples[(samples["reward"] > 0) & (samples["prompt_id"].map(group_of) == group)].copy()
    if c.empty:
        return None
    c["invalid"] = [sum(why != "missing" for _, why in check_steps(graph_of(problems[p]), r).failed)
                    for p, r in zip(c["prompt_id"], c["response"])]
    c["length"] = c["response"].str.len()
    c = c.sort_values(["score", "invalid", "length", "prompt_id", "sample"], ascending=[True, False, True, True, True])
    return c.iloc[0]


def marked_lines(problem: Problem, response: str) -> pd.DataFrame:
    """A testbed response cut into its lines, each with the checker's verdict: line, verdict
    (ok / invalid / missing / answer), reason. Needed steps the response never computed
    come after its lines, as "missing"."""
    from unlearnability.world import check_steps, graph_of

    rep = check_steps(graph_of(problem), response)
    why: dict[str, str] = {}
    for key, reason in rep.failed:  # keyed by the line, or by the node a line computes
        why.setdefault(key, reason)
    body = response.strip()
    answer = ""
    if rep.answer is not None:
        cut = body.rfind("answer")
        body, answer = body[:cut].strip(), body[cut:].strip()
    rows = []
    for ln in (x.strip() for x in body.split(" .")):
        if not ln:
            continue
        reason = why.get(ln) or (why.get(ln.split()[0]) if why.get(ln.split()[0]) != "missing" else None)
        rows.append({"line": ln, "verdict": "invalid" if reason else "ok", "reason": reason or ""})
    rows += [{"line": f"({key})", "verdict": "missing", "reason": "needed step never computed"}
             for key, reason in rep.failed if reason == "missing"]
    if answer:
        rows.append({"line": answer, "verdict": "answer", "reason": "correct" if rep.correct_answer else "wrong"})
    return pd.DataFrame(rows, columns=["line", "verdict", "reason"])


# ---------------------------------------------------------------- Figure 7 over checkpoints


def judged(samples: pd.DataFrame, judge: dict, problems: dict[str, Problem]) -> pd.DataFrame:
    """The correct rollouts of `samples` (reward > 0, as the paper) with `score` from the LLM judge
    (`judge`: LLMConfig fields, e.g. base_url, model; rollouts the judge fails on are skipped)."""
    from unlearnability.analysis.judge import judge_table
    from unlearnability.config import LLMConfig

    right = samples[samples.reward > 0]
    scores = judge_table(LLMConfig(**judge), problems, right, errors="skip")
    return right.drop(columns=["score"], errors="ignore").assign(score=scores["score"].to_numpy())


def checkpoint_scores(run_dir, steps: list[int], ids: list[str], group_of: pd.Series, judge: dict | None = None,
                      problems: dict[str, Problem] | None = None) -> pd.DataFrame:
    """Figure 7's table: `score_by_group` of the pass@k evaluation of each checkpoint in `steps` of
    the run at `run_dir` on `ids` (evaluated now or read from the store), scored by the step checker,
    or by the LLM judge when `judge` is given (then `problems`: the problems by id). Columns group,
    correct_rollouts, problems, mean_score, zero_share[, exact_share], step; steps in order."""
    from unlearnability.pipeline import experiment

    per_step = []
    for step in steps:
        smp = experiment.read_eval(experiment.evaluate_checkpoint(run_dir, step, ids=ids), samples=True)
        if judge:
            smp = judged(smp, judge, problems)
        per_step.append(score_by_group(smp, group_of).assign(step=step).reset_index())
    return pd.concat(per_step, ignore_index=True)


def score_table(scores: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """`checkpoint_scores` as a table of mean scores: index group (in `order`, those present),
    one column per checkpoint step (what `reasoning_verdict` reads)."""
    return scores.pivot_table(index="group", columns="step", values="mean_score").reindex(
        [o for o in order if o in set(scores.group)])


# ---------------------------------------------------------------- Figure 1d at the initial policy

CORRECT_WORDS = {"correct_rollouts": "correct rollouts", "mean_score": "mean score", "exact_share": "exact",
                 "worked_style_share": "worked style"}


def correct_rollouts(samples: pd.DataFrame, group_of: pd.Series) -> pd.DataFrame:
    """The correct rollouts (reward > 0) of `samples` with their example's group (column group;
    rollouts of examples without a group are dropped)."""
    return samples[samples.reward > 0].merge(group_of.rename("group").to_frame(), left_on="prompt_id", right_index=True)


def score_shares(correct: pd.DataFrame) -> pd.DataFrame:
    """Figure 1d's bars: per (group, score) of `correct_rollouts`, rollouts and share (of the group's
    correct rollouts)."""
    dist = correct.groupby(["group", "score"]).size().rename("rollouts").reset_index()
    dist["share"] = dist.rollouts / dist.groupby("group").rollouts.transform("sum")
    return dist


def correct_summary(correct: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per group (index, in `order`) of `correct_rollouts` (score, exact[, style]): correct_rollouts,
    problems, mean_score, exact_share, and worked_style_share (share written in the worked style)
    when the samples carry a style."""
    agg = {"correct_rollouts": ("score", "size"), "problems": ("prompt_id", "nunique"),
           "mean_score": ("score", "mean"), "exact_share": ("exact", "mean")}
    if "style" in correct:
        correct = correct.assign(worked=correct["style"].eq("worked"))
        agg["worked_style_share"] = ("worked", "mean")
    return correct.groupby("group").agg(**agg).reindex(order)


def quality_gap_claim(correct: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """Figure 1d's claim, "the unlearnable examples' correct rollouts score lower than the learnable
    ones'", on `correct_rollouts` and its `correct_summary`. One value per problem (its correct
    rollouts' mean score: rollouts of one problem are not independent); gap = unlearnable minus
    learnable mean, p = one-sided permutation p for a lower unlearnable mean.

    Returns gap, p, problems (counted in the test) and "line" (the sentence on the page); gap and p
    NaN, problems 0 and line None when either group has no correct rollout."""
    from unlearnability.evaluation.stats import permutation_test

    q = summary
    if not ("unlearnable" in q.index and "learnable" in q.index):
        return {"gap": float("nan"), "p": float("nan"), "problems": 0, "line": None}
    per = correct[correct.group.isin(["learnable", "unlearnable"])].groupby(["prompt_id", "group"]).score.mean().reset_index()
    gap, p = permutation_test(per.score.values, (per.group == "unlearnable").values, "less")
    line = (f"Correct rollouts of unlearnable problems score {q.mean_score['unlearnable']:.2f} on average "
            f"({q.exact_share['unlearnable']:.0%} exact), learnable ones {q.mean_score['learnable']:.2f} "
            f"({q.exact_share['learnable']:.0%} exact)"
            + (f", easy ones {q.mean_score['easy']:.2f} ({q.exact_share['easy']:.0%} exact)." if "easy" in q.index else ".")
            + f" Per problem, unlearnable minus learnable mean score: {gap:+.2f} (one-sided permutation test over "
            f"{len(per)} problems: p = {p:.3f}); "
            + ("the paper's direction, beyond chance." if gap < 0 and p < 0.05 else
               "the paper's direction, but within what random relabelling produces." if gap < 0 else
               "not the paper's direction."))
    return {"gap": gap, "p": p, "problems": len(per), "line": line}
