"""Group training examples as the paper does (§3.2 and the authors' classification script).

Per seed s, with tau = 0.1 and pass@1 the mean reward over k = 32 samples:
    easy          initial pass@1 > tau
    learnable     initial pass@1 <= tau and final pass@1 (seed s) > tau
    unlearnable   initial <= tau, final <= tau, and at least one positive reward in seed s's
                  training history (the paper requires initial <= tau; the authors' code does not)
    no_reward     initial <= tau, final <= tau, and no positive reward in seed s's history
Across seeds (the intersection rule):
    a label shared by every seed is the example's group; labels that are only
    {unlearnable, no_reward} give no_reward (the paper takes no_reward as a union over seeds);
    anything else is "ambiguous" (counted, not hidden).

Beyond the paper, `chance_threshold` gives a luck-aware variant: a seed's training positives
only count when there are more of them than blind guessing (chance 1/p per rollout)
explains at the 99% level.
"""

from __future__ import annotations

from math import comb

import pandas as pd

GROUPS = ["easy", "learnable", "unlearnable", "no_reward", "ambiguous"]
PAPER_GROUPS = ["unlearnable", "learnable", "no_reward"]  # Table 1's columns


def training_positives(history: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: rollouts drawn in training, positives among them, times drawn, max group mean.

    history: the per-example history of one run (`history.read_history`).
    """
    h = history.assign(pos=history["mean_reward"] * history["n"])
    g = h.groupby("prompt_id")
    return pd.DataFrame({"rollouts": g["n"].sum(), "positives": g["pos"].sum().round().astype(int),
                         "draws": g.size(), "max_mean": g["mean_reward"].max()})


def chance_threshold(rollouts: int, p: int, level: float = 0.99) -> int:
    """Positives that guessing (chance 1/p per rollout) stays at or below with prob `level`:
    the `level` quantile of Binomial(rollouts, 1/p)."""
    n, q, cdf = int(rollouts), 1.0 / p, 0.0
    for k in range(n + 1):
        cdf += comb(n, k) * q**k * (1 - q) ** (n - k)
        if cdf >= level:
            return k
    return n


def label_seed(initial: pd.Series, final: pd.Series, history: pd.DataFrame, tau: float = 0.1,
               p: int | None = None) -> pd.Series:
    """One seed's label per prompt id. initial, final: pass@1 indexed by prompt_id.

    With `p` given, positives must exceed `chance_threshold(rollouts, p)` to count.
    """
    tp = training_positives(history).reindex(initial.index)
    tp["positives"] = tp["positives"].fillna(0)
    tp["rollouts"] = tp["rollouts"].fillna(0)
    if p is None:
        seen = tp["positives"] > 0
    else:
        seen = tp["positives"] > tp["rollouts"].map(lambda n: chance_threshold(n, p))
    final = final.reindex(initial.index)
    lab = pd.Series("no_reward", index=initial.index, dtype=object)
    lab[seen] = "unlearnable"
    lab[final > tau] = "learnable"
    lab[initial > tau] = "easy"
    return lab


def combine_seeds(labels: pd.DataFrame) -> pd.Series:
    """labels: one column per seed -> the group per prompt by the intersection rule."""
    def one(row) -> str:
        s = set(row)
        if len(s) == 1:
            return s.pop()
        if s <= {"unlearnable", "no_reward"}:
            return "no_reward"
        return "ambiguous"

    return labels.apply(one, axis=1).rename("group")


def classify(initial: pd.Series, finals: dict, histories: dict, tau: float = 0.1,
             p: int | None = None) -> pd.DataFrame:
    """Per prompt: each seed's label (columns `seed_<s>`) and the combined `group`.

    finals, histories: {seed: final pass@1 Series, seed: history DataFrame}.
    """
    labels = pd.DataFrame({f"seed_{s}": label_seed(initial, finals[s], histories[s], tau, p) for s in finals})
    out = labels.assign(group=combine_seeds(labels), initial=initial)
    for s in finals:
        out[f"final_{s}"] = finals[s].reindex(initial.index)
    return out


def table1(groups: pd.Series) -> pd.DataFrame:
    """Counts and percent of training examples per group (all five groups)."""
    counts = groups.value_counts().reindex(GROUPS, fill_value=0)
    return pd.DataFrame({"count": counts, "percent": (100 * counts / counts.sum()).round(1)})


def switches(labels: pd.DataFrame, exclude_easy: bool = True) -> dict:
    """Seed agreement before the intersection: share of problems whose label differs between
    seeds (pairwise and overall). Easy problems share one initial pass@1, so they are left out."""
    cols = [c for c in labels.columns if c.startswith("seed_")]
    lab = labels[cols]
    if exclude_easy:
        lab = lab[~(lab == "easy").all(axis=1)]
    out = {"problems": len(lab), "any_switch": float((lab.nunique(axis=1) > 1).mean()) if len(lab) else 0.0}
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            out[f"{a} vs {b}"] = float((lab[a] != lab[b]).mean()) if len(lab) else 0.0
    return out


def focus_ids(group_of: pd.Series, easy_sample: int = 100, seed: int = 0) -> list[str]:
    """The examples the §4 / §5 chapters evaluate at their checkpoints: every learnable and
    unlearnable example and `easy_sample` easy ones drawn with `seed` (sorted ids)."""
    import numpy as np

    hard = sorted(group_of[group_of.isin(["learnable", "unlearnable"])].index)
    easy = sorted(group_of[group_of == "easy"].index)
    pick = np.random.default_rng(seed).choice(easy, size=min(easy_sample, len(easy)), replace=False) if easy else []
    return hard + sorted(str(x) for x in pick)
