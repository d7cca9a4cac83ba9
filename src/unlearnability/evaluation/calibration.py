"""The testbed's calibration measures (testbed-v2 issue), as pure functions of run tables.

    paired_change      held-out pass@1 before vs after, paired over problems, with its SE
    fleiss_kappa       agreement of the seeds' labels beyond chance (Fleiss 1971)
    seed_switches      share of non-easy problems with a training positive whose label differs
                       between seeds
    agreement          share of non-easy problems with positives above chance in some seed that
                       get one label in every seed
    style_shares       share of each response style among samples (optionally per group)
    targets            the issue's targets, each measured and judged

`benchmarks/calibration.py` prints them for a preset; the §3 chapter shows them.
"""

from __future__ import annotations

import math

import pandas as pd

from unlearnability.evaluation.groups import rewarded_mask, switches, training_positives


def paired_change(validation: pd.DataFrame, start: int | None = None, end: int | None = None) -> dict:
    """Validation pass@1 at `start` and `end` (default: first and last step), paired by problem.

    validation: rows step, prompt_id, mean_reward (`history.read_validation`).
    Returns before, after, change (mean of per-problem differences), se (std of the differences
    / sqrt(n), ddof 1) and n (problems present at both steps).
    """
    steps = sorted(validation["step"].unique())
    start = steps[0] if start is None else start
    end = steps[-1] if end is None else end
    wide = validation.pivot_table(index="prompt_id", columns="step", values="mean_reward")
    pair = wide[[start, end]].dropna()
    d = pair[end] - pair[start]
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"before": float(pair[start].mean()), "after": float(pair[end].mean()),
            "change": float(d.mean()), "se": se, "n": n, "start": int(start), "end": int(end)}


def run_summary(validation: pd.DataFrame, train_log: pd.DataFrame) -> dict:
    """One GRPO run in a row: its held-out validation change (`paired_change`, first to last
    validated step) beside its training reward, the mean reward of the prompts drawn in the first
    and in the last sixth of the steps (`reward_first`, `reward_last`), and the largest KL (`max_kl`).

    train_log: the run's `train_log.csv` (a row per step, with mean_reward and kl).
    """
    k = max(1, len(train_log) // 6)
    return {**paired_change(validation), "reward_first": train_log.mean_reward.head(k).mean(),
            "reward_last": train_log.mean_reward.tail(k).mean(), "max_kl": train_log.kl.max()}


def validation_curve(validation: pd.DataFrame, z: float = 1.96) -> pd.DataFrame:
    """Per step: mean validation pass@1 over problems and a normal confidence band
    (mean +- z * std over problems / sqrt(n)). Columns step, mean, lo, hi, n."""
    g = validation.groupby("step")["mean_reward"]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.size()})
    half = z * out["sd"].fillna(0) / out["n"].pow(0.5)
    return out.assign(lo=out["mean"] - half, hi=out["mean"] + half).drop(columns="sd").reset_index()


def fleiss_kappa(labels: pd.DataFrame) -> float:
    """Fleiss' kappa of categorical labels: one row per item, one column per rater (seed).

    kappa = (P_bar - P_e) / (1 - P_e) with P_bar the mean per-item agreement and P_e the
    agreement expected from the overall label shares; 1 = perfect, 0 = chance. NaN when the
    chance agreement is 1 (a single label everywhere) or there are fewer than 2 raters.
    Computed by statsmodels (`kappa_from_counts`), which the null of `analysis.null` shares.
    """
    if labels.shape[1] < 2 or len(labels) == 0:
        return float("nan")
    values = labels.to_numpy(object)
    cats = pd.unique(values.ravel())
    counts = (values[:, :, None] == cats[None, None, :]).sum(axis=1)  # (items, categories)
    return kappa_from_counts(counts)


def kappa_from_counts(table) -> float:
    """Fleiss' kappa from a count table (items x categories; every row sums to the raters) by
    `statsmodels.stats.inter_rater.fleiss_kappa` (method "fleiss"); NaN for no items, fewer
    than 2 raters, or a chance agreement of 1."""
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or len(t) == 0 or t[0].sum() < 2:
        return float("nan")
    shares = t.sum(axis=0) / t.sum()
    if float((shares**2).sum()) >= 1 - 1e-12:
        return float("nan")
    return float(sm_fleiss_kappa(t, method="fleiss"))


def seed_switches(classified: pd.DataFrame, histories: dict) -> dict:
    """Seed agreement on the problems that matter for Table 1's middle groups.

    classified: `groups.classify` output (columns seed_<s>); histories: {seed: history}.
    Considers the non-easy problems with at least one positive training reward in some seed.
    Returns problems, switch (share whose labels differ between seeds), kappa (Fleiss).
    """
    pos = pd.concat([training_positives(h)["positives"] for h in histories.values()], axis=1).fillna(0).sum(axis=1)
    rewarded = classified[classified.index.isin(pos.index[pos > 0])]
    sw = switches(rewarded)  # leaves out the easy problems
    lab = _non_easy_labels(rewarded)
    return {"problems": sw["problems"], "switch": sw["any_switch"] if sw["problems"] else float("nan"),
            "kappa": fleiss_kappa(lab)}


def agreement(classified: pd.DataFrame, histories: dict, p: float | None = None, level: float = 0.99) -> dict:
    """Seed agreement where it is reachable: the non-easy problems whose training positives in some
    seed exceed what guessing explains (`groups.rewarded_mask`: more than the `level` quantile of
    Binomial(rollouts, 1/p); any positive when p is None). A problem at the guess floor flips
    between no_reward and unlearnable by luck at any budget, so it is left out.

    classified: `groups.classify` output (columns seed_<s>, labels by whatever rule it used);
    histories: {seed: history}. Returns problems, agreement (share with one label in every seed;
    NaN with no problem) and kappa (Fleiss, over those problems).
    """
    above = pd.Series(False, index=classified.index)
    for h in histories.values():
        tp = training_positives(h).reindex(classified.index)
        pos, roll = tp["positives"].fillna(0).to_numpy(int), tp["rollouts"].fillna(0).to_numpy(int)
        above |= rewarded_mask(pos, roll, p, level)
    lab = _non_easy_labels(classified[above.to_numpy()])
    n = len(lab)
    return {"problems": n, "agreement": float((lab.nunique(axis=1) == 1).mean()) if n else float("nan"),
            "kappa": fleiss_kappa(lab)}


def _non_easy_labels(classified: pd.DataFrame) -> pd.DataFrame:
    """The seed_<s> label columns of the problems not easy in every seed."""
    cols = [c for c in classified.columns if c.startswith("seed_")]
    return classified[cols][~(classified[cols] == "easy").all(axis=1)]


def switch_sets(classified: pd.DataFrame) -> pd.Series:
    """Per switching problem (non-easy, labels differ between seeds): the set of labels it gets,
    joined as "no_reward / unlearnable". classified: `groups.classify` output (columns seed_<s>)."""
    lab = _non_easy_labels(classified)
    moved = lab[lab.nunique(axis=1) > 1]
    return pd.Series([" / ".join(sorted(set(r))) for r in moved.itertuples(index=False)],
                     index=moved.index, dtype=object, name="labels across seeds")


def switch_pairs(classified: pd.DataFrame) -> pd.Series:
    """Between which labels the switching problems move: per set of labels (`switch_sets`), how
    many problems get exactly that set. Sorted by count, largest first; empty when none switches."""
    return switch_sets(classified).value_counts().rename("problems").rename_axis("labels across seeds")


def style_shares(samples: pd.DataFrame, by: str | None = None, correct_only: bool = False) -> pd.DataFrame:
    """Share of each response style among samples (rows: `by` values or one row "all").

    samples: per-sample rows with `style` (and `reward` when correct_only).
    """
    s = samples[samples["reward"] > 0] if correct_only else samples
    if s.empty:  # e.g. no correct sample: one row of no styles, not an error
        return pd.DataFrame(index=pd.Index([] if by else ["all"], name=by or "of"))
    key = s[by] if by else pd.Series("all", index=s.index, name="of")
    return pd.crosstab(key, s["style"], normalize="index")


def targets_v3(val_changes: dict[int, dict], groups_vs_null: pd.DataFrame, chance_counts: pd.Series,
               agreement_above_chance: dict, rollouts: dict[int, pd.Series], guess_floor: float,
               min_rise: float = 0.05, min_share: float = 8.0, min_chance_share: float = 5.0,
               min_agreement: float = 0.7, min_kappa: float = 0.4, max_no_reward: float = 50.0,
               min_rollouts: int = 60, max_floor: float = 0.002) -> pd.DataFrame:
    """The testbed-v3 issue's targets, each with what was measured and whether it was met.

    val_changes: {seed: paired_change(...)}; groups_vs_null: `null.compare_groups(...)` (counts,
    percents of the classified problems, the null's 95% interval in percent); chance_counts:
    problems per group under the chance-corrected rules (`groups.table1` of `groups.classify(..., p=...)`);
    agreement_above_chance: `agreement(classified, histories, p)`; rollouts: {seed: training
    rollouts per problem}; guess_floor: chance of a right guess (1 / p).
    Shares are percents of the classified problems. A group "above its null" means above the
    null's 97.5th percentile (the upper end of its 95% interval).
    """
    g = groups_vs_null
    n = int(chance_counts.sum())  # the five groups partition the classified problems
    rows = []
    for s, v in val_changes.items():
        rows.append((f"validation rises >= {min_rise} (seed {s})",
                     f"{v['before']:.3f} -> {v['after']:.3f}: {v['change']:+.3f} +- {v['se']:.3f} (n {v['n']})",
                     bool(v["change"] >= min_rise)))
    for s, r in rollouts.items():
        p10 = float(r.quantile(0.1)) if len(r) else 0.0
        rows.append((f"training rollouts per problem >= {min_rollouts} at the 10th percentile (seed {s})",
                     f"p10 {p10:.0f}, median {float(r.median()) if len(r) else 0:.0f}", bool(p10 >= min_rollouts)))
    rows.append((f"guess floor <= {max_floor:.1%}", f"{guess_floor:.2%}", bool(guess_floor <= max_floor)))
    for grp in ("unlearnable", "learnable"):
        r = g.loc[grp]
        rows.append((f"{grp} >= {min_share:g}% and above its null's 97.5th percentile",
                     f"{r['measured_percent']:.1f}% ({int(r['measured'])}); null {r['null_text']}",
                     bool(r["measured_percent"] >= min_share and r["measured_percent"] > r["null_hi_percent"])))
    cu = int(chance_counts.get("unlearnable", 0))
    rows.append((f"unlearnable >= {min_chance_share:g}% after the chance correction",
                 f"{100 * cu / n:.1f}% ({cu})", bool(100 * cu / n >= min_chance_share)))
    a = agreement_above_chance
    rows.append((f"one label in every seed >= {min_agreement:.0%} (non-easy, positives above chance in some seed)",
                 f"{100 * a['agreement']:.1f}% of {a['problems']}", bool(a["agreement"] >= min_agreement)))
    rows.append((f"Fleiss kappa >= {min_kappa} (the same problems)", f"{a['kappa']:.2f}", bool(a["kappa"] >= min_kappa)))
    nr = g.loc["no_reward_union"] if "no_reward_union" in g.index else g.loc["no_reward"]
    rows.append((f"no reward (union over seeds) <= {max_no_reward:g}%", f"{nr['measured_percent']:.1f}% ({int(nr['measured'])})",
                 bool(nr["measured_percent"] <= max_no_reward)))
    return pd.DataFrame(rows, columns=["target", "measured", "met"]).set_index("target")
