"""Reasoning quality of correct rollouts per group (paper §5.2, A.5: Figures 1d, 7, Table 2).

The paper scores correct rollouts 0-5 with an LLM judge; the testbed scores them with its
exact step checker (`world.checker.check_steps`), which the evaluation tables already carry
(`score`, `exact`, `style` per sample). At paper scale the same tables can carry a judge's
score (`analysis.judge`), and these functions read whichever `score` column is there.

    score_by_group     correct rollouts per group: count, mean score, exact share, score-0 share
    pick_low_quality   Table 2's example, chosen by a stated rule (not by hand)
    marked_lines       a testbed response line by line with the checker's verdict on each
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
