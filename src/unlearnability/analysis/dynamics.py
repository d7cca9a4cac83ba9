"""Per-group dynamics over training and the verdict of an intervention (paper §4, A.2-A.3).

Every §4 experiment asks the same question: does an intervention (oversampling with replay,
clip-higher, no KL, SFT, a larger group) lift the unlearnable examples, or does the gap to
the learnable ones stay? These functions turn run tables into the numbers the chapter shows:

    group_curve      mean of a history column per (step window, group): Figures 2, 4, 5, 15b
    group_finals     mean final pass@1 per (seed, group) of a set of runs
    gap_verdict      the intervention's effect on the unlearnable group against the baseline's
                     seed-to-seed spread: "reproduced" (no lift, gap stays), "partly", "not"
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from unlearnability.paper import TAU


def group_curve(history: pd.DataFrame, group_of: pd.Series, value: str = "mean_reward",
                processed_only: bool = False, window: int = 1) -> pd.DataFrame:
    """history rows (step, prompt_id, value, processed) -> step, group, mean, rows.

    `window` > 1 pools steps (s-window, s] into the window's last step, since each problem is
    drawn only now and then; `processed_only` keeps the rows that entered the loss (the
    paper's Figure 2 drops prompts filtered for lack of positives)."""
    h = history[history["processed"] == 1] if processed_only else history
    h = h.assign(group=h["prompt_id"].map(group_of)).dropna(subset=["group", value])
    if window > 1:
        h = h.assign(step=((h["step"] - 1) // window + 1) * window)
    out = h.groupby(["step", "group"])[value].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"size": "rows"})


def group_curves(histories: dict, group_of: pd.Series, label: str, processed_only: bool = False,
                 value: str = "mean_reward", window: int = 1) -> pd.DataFrame:
    """`group_curve` of each seed's history ({seed: history}), stacked with columns seed and run (= `label`)."""
    return pd.concat([group_curve(h, group_of, value, processed_only, window).assign(seed=str(s), run=label)
                      for s, h in histories.items()], ignore_index=True)


def group_finals(finals: dict, group_of: pd.Series) -> pd.DataFrame:
    """{seed: per-problem pass@1 Series (index prompt_id)} -> seed, group, mean, examples."""
    rows = []
    for seed, p1 in finals.items():
        g = p1.to_frame("p").join(group_of.rename("group"), how="inner")
        for name, sub in g.groupby("group"):
            rows.append({"seed": seed, "group": name, "mean": float(sub["p"].mean()), "examples": len(sub)})
    return pd.DataFrame(rows, columns=["seed", "group", "mean", "examples"])


def gap_verdict(baseline: pd.DataFrame, variant: pd.DataFrame, tau: float = TAU,
                min_effect: float = 0.02) -> dict:
    """Did the intervention lift the unlearnable group? Both tables: seed, group, mean (the
    output of `group_finals`).

    effect = variant mean - baseline mean of the unlearnable group's final pass@1 (seed means
    averaged); noise = 2 x the baseline's seed-to-seed SD of that mean (at least `min_effect`).
      "reproduced": effect <= noise and the learnable - unlearnable gap stays > 0
                    (the paper: the intervention does not help unlearnable examples);
      "not":        the unlearnable group's mean final pass@1 under the variant exceeds tau;
      "partly":     anything else (a lift beyond noise that stays below tau, or a closed gap);
      "untestable": no unlearnable examples, or no runs.
    Returns the label and the numbers behind it."""
    def seed_means(t: pd.DataFrame, group: str) -> np.ndarray:
        return t.loc[t["group"] == group, "mean"].to_numpy(float)

    b_u, v_u = seed_means(baseline, "unlearnable"), seed_means(variant, "unlearnable")
    b_l, v_l = seed_means(baseline, "learnable"), seed_means(variant, "learnable")
    out = {"baseline_unlearnable": _mean(b_u), "variant_unlearnable": _mean(v_u),
           "baseline_gap": _mean(b_l) - _mean(b_u), "variant_gap": _mean(v_l) - _mean(v_u),
           "baseline_sd": float(np.std(b_u, ddof=1)) if len(b_u) > 1 else math.nan}
    out["effect"] = out["variant_unlearnable"] - out["baseline_unlearnable"]
    noise = max(min_effect, 2 * out["baseline_sd"]) if not math.isnan(out["baseline_sd"]) else min_effect
    out["noise"] = noise
    if not len(b_u) or not len(v_u):
        out["verdict"] = "untestable"
    elif out["variant_unlearnable"] > tau:
        out["verdict"] = "not"
    elif out["effect"] <= noise and not out["variant_gap"] <= 0:
        out["verdict"] = "reproduced"
    else:
        out["verdict"] = "partly"
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def permutation_p(values, in_group, alternative: str = "two-sided", n: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(gap, p): gap = mean(group) - mean(rest); p = share of `n` random relabelings (same
    group size) at least as extreme ("two-sided": |gap|, "greater": gap, "less": -gap)."""
    values, in_group = np.asarray(values, float), np.asarray(in_group, bool)
    if in_group.sum() == 0 or (~in_group).sum() == 0:
        return math.nan, math.nan
    sign = {"two-sided": None, "greater": 1.0, "less": -1.0}[alternative]
    gap = values[in_group].mean() - values[~in_group].mean()
    rng = np.random.default_rng(seed)
    k = int(in_group.sum())
    perm = np.argsort(rng.random((n, len(values))), axis=1)[:, :k]  # (n, k) random groups
    total = values.sum()
    g_mean = values[perm].mean(1)
    gaps = g_mean - (total - values[perm].sum(1)) / (len(values) - k)
    stat = np.abs(gaps) >= abs(gap) - 1e-12 if sign is None else sign * gaps >= sign * gap - 1e-12
    return float(gap), float((stat.sum() + 1) / (n + 1))


def shift_verdict(values, in_group, alternative: str, level: float = 0.05) -> dict:
    """The paper's "no systematic shift" claims (Figures 3, 4, 16): reproduced when the
    group's mean does not differ from the rest's in the `alternative` direction at `level`."""
    gap, p = permutation_p(values, in_group, alternative)
    verdict = "untestable" if math.isnan(p) else ("reproduced" if p >= level else "not")
    return {"gap": gap, "p": p, "n_group": int(np.asarray(in_group, bool).sum()),
            "n_rest": int((~np.asarray(in_group, bool)).sum()), "verdict": verdict}


def verdict_line(name: str, v: dict) -> str:
    """One line of markdown for a `gap_verdict`: the verdict, the unlearnable group's mean final
    pass@1 before and after with the effect and the noise threshold, and the learnable - unlearnable gap."""
    return (f"**{name}: {v['verdict']}.** Unlearnable mean final pass@1 {v['baseline_unlearnable']:.3f} (baseline) -> "
            f"{v['variant_unlearnable']:.3f} (effect {v['effect']:+.3f}; noise threshold {v['noise']:.3f}); "
            f"learnable - unlearnable gap {v['baseline_gap']:+.3f} -> {v['variant_gap']:+.3f}.")
