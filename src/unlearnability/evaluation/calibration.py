"""The testbed's calibration measures (testbed-v2 issue), as pure functions of run tables.

    paired_change      held-out pass@1 before vs after, paired over problems, with its SE
    fleiss_kappa       agreement of the seeds' labels beyond chance (Fleiss 1971)
    seed_switches      share of non-easy problems with a training positive whose label differs
                       between seeds
    agreement          share of non-easy problems with positives above chance in some seed that
                       get one label in every seed
    style_shares       share of each response style among samples (optionally per group)
    targets            the issue's targets, each measured and judged

The §3 chapter's tables and claims, from the same run tables:

    generalisation_table, transfer_sentence, generalisation_note
                       training gain beside held-out validation change, and the transfer claim
    style_change_table, correct_styles_by_group
                       response styles before and after training (all, correct, per group)
    switching_sentence, luck_switches, luck_sentence
                       how often the seeds' labels differ, and the switches only luck makes
    ablation_table, ablation_notes
                       the matched control without the extra styles beside the chapter's runs

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


# ----------------------------------------------------------------------------- the §3 chapter's tables and claims


def generalisation_table(initial: pd.Series, finals: dict, validations: dict, train_logs: dict) -> pd.DataFrame:
    """Training-set gain beside held-out validation change, one row per seed (index seed).

    initial: initial pass@1 per training problem; finals: {seed: final pass@1 Series};
    validations: {seed: `history.read_validation` table}; train_logs: {seed: train_log.csv table,
    columns kl and, when logged, rel_change}. Seeds in `finals` order. Columns: training pass@1
    before, after, training gain, validation before, validation after, validation change, SE
    (`paired_change`), validation / training gain (NaN unless the gain is positive), max KL,
    relative change per step (NaN when not logged).
    """
    rows = []
    init_mean = initial.mean()
    for s, final in finals.items():
        v = paired_change(validations[s])
        log = train_logs[s]
        gain = final.mean() - init_mean
        rows.append({"seed": s, "training pass@1 before": init_mean, "after": final.mean(), "training gain": gain,
                     "validation before": v["before"], "validation after": v["after"], "validation change": v["change"],
                     "SE": v["se"], "validation / training gain": v["change"] / gain if gain > 0 else float("nan"),
                     "max KL": log.kl.max(),
                     "relative change per step": log.rel_change.mean() if "rel_change" in log else float("nan")})
    return pd.DataFrame(rows).set_index("seed")


def significant_rise(gen: pd.DataFrame) -> pd.Series:
    """Per seed: did held-out validation rise by more than two standard errors? gen:
    `generalisation_table` (columns validation change, SE)."""
    return gen["validation change"] - 2 * gen["SE"] > 0


def transfer_sentence(gen: pd.DataFrame) -> str:
    """The claim "what GRPO learned transfers to held-out problems", in a paragraph: the ranges
    of the training gain and of the validation change over seeds, and the verdict by
    `significant_rise` (every seed, some seeds, or none). gen: `generalisation_table`."""
    rise, significant = gen["validation change"], significant_rise(gen)
    if significant.all():
        verdict = ("In every seed held-out validation rose by more than two standard errors: what GRPO learned on the "
                   "training problems transferred to problems it never saw, as in the paper.")
    elif significant.any():
        verdict = (f"Held-out validation rose by more than two standard errors in {int(significant.sum())} of {len(gen)} "
                   "seeds; in the others the change is within noise, so transfer is real but not reliable.")
    else:
        verdict = ("In no seed did held-out validation rise by more than two standard errors: the policy improved on the "
                   "problems it trained on but not on new ones from the same generator, so \"learnable\" here largely means "
                   "\"learned for that prompt\".")
    return (f"Training-set pass@1 rose by {gen['training gain'].min():+.3f} to {gen['training gain'].max():+.3f} across seeds; "
            f"held-out validation changed by {rise.min():+.3f} to {rise.max():+.3f} (standard errors about {gen['SE'].mean():.3f}). "
            + verdict)


def generalisation_note(gen: pd.DataFrame) -> str:
    """The chapter summary's line on generalisation: the ranges of the validation change and of
    the training gain over seeds, and in how many seeds validation rose beyond two standard
    errors (`significant_rise`). gen: `generalisation_table`."""
    rise, significant = gen["validation change"], significant_rise(gen)
    return (f"Generalisation: held-out validation moved by {rise.min():+.3f} to {rise.max():+.3f} per seed against a training "
            f"gain of {gen['training gain'].min():+.3f} to {gen['training gain'].max():+.3f}; "
            + ("it rose beyond two standard errors in every seed." if significant.all() else
               f"it rose beyond two standard errors in {int(significant.sum())} of {len(gen)} seeds."))


def style_change_table(before: pd.DataFrame, after: list[pd.DataFrame]) -> pd.DataFrame:
    """Response-style shares before and after training: rows "before: all samples", "after: all
    samples", "before: correct samples", "after: correct samples", one column per style
    (`style_shares`; after: the mean over the seeds' shares), missing shares 0.
    before: the base model's evaluation samples; after: each seed's final evaluation samples."""
    def shares(df, **kw):
        return style_shares(df, **kw).iloc[0]

    after_all = pd.concat([shares(f) for f in after], axis=1).mean(axis=1)
    after_ok = pd.concat([shares(f, correct_only=True) for f in after], axis=1).mean(axis=1)
    return pd.DataFrame({"before: all samples": shares(before), "after: all samples": after_all,
                         "before: correct samples": shares(before, correct_only=True),
                         "after: correct samples": after_ok}).fillna(0).T


def correct_styles_by_group(before: pd.DataFrame, after: list[pd.DataFrame], group_of: pd.Series) -> pd.DataFrame:
    """Styles of the correct samples in each group, before and after training.

    before, after: evaluation samples (prompt_id, reward, style) of the base model and of each
    seed's final model; group_of: prompt_id -> group. Rows (group, when) in GROUPS order, when
    "before" / "after" (after: the mean of the seeds' shares); one column per style (share of
    the group's correct samples, missing 0) and "correct samples" (count; after: all seeds together).
    """
    from unlearnability.evaluation.groups import GROUPS

    labels = group_of.rename("group").to_frame()

    def by_group(df):
        d = df[df.reward > 0].merge(labels, left_on="prompt_id", right_index=True)
        return style_shares(d, by="group")

    before_g = by_group(before)
    after_g = pd.concat([by_group(f) for f in after]).fillna(0).groupby(level=0).mean()
    order = [g for g in GROUPS if g in before_g.index or g in after_g.index]
    tab = pd.concat({"before": before_g, "after": after_g}, names=["when"]).fillna(0)
    tab = tab.reorder_levels([1, 0])
    tab = tab.reindex([(g, w) for g in order for w in ("before", "after") if (g, w) in tab.index])

    def n_correct(dfs):
        d = pd.concat(dfs)
        return d[d.reward > 0].prompt_id.map(group_of).value_counts()

    n_before, n_after = n_correct([before]), n_correct(list(after))
    tab["correct samples"] = [int((n_before if w == "before" else n_after).get(g, 0)) for g, w in tab.index]
    return tab


def switching_sentence(all_switches: dict, rewarded_switches: dict, n_ambiguous: int) -> str:
    """The seed-agreement paragraph: share of non-easy problems whose label differs between seeds
    (overall and per pair of seeds: `groups.switches`), the same among those with a positive and
    Fleiss' kappa (`seed_switches`), and the problems left ambiguous after the intersection."""
    pairs = ", ".join(f"{k}: {100 * v:.1f}%" for k, v in all_switches.items() if " vs " in k)
    return (f"Of the {all_switches['problems']} non-easy problems, **{100 * all_switches['any_switch']:.1f}%** get different "
            f"labels in different seeds ({pairs}). Of the {rewarded_switches['problems']} non-easy problems with a positive "
            f"reward in some seed, **{100 * rewarded_switches['switch']:.1f}%** switch label; Fleiss' kappa over the seeds "
            f"is **{rewarded_switches['kappa']:.2f}**. After the intersection, {n_ambiguous} problems are ambiguous.")


def luck_switches(classified: pd.DataFrame, finals: dict, histories: dict) -> dict:
    """The switching problems that only luck moves: labelled no_reward in some seeds and
    unlearnable in the others (never past tau, differing only in whether a training rollout
    hit). classified: `groups.classify`'s table; finals: {seed: final pass@1 Series};
    histories: {seed: history}. Returns switching (switching problems), luck_only (those
    problems), share (their percent of the switching ones), median_final / mean_final (their
    final pass@1, mean over seeds), mean_draws (mean draws of a problem per seed)."""
    pairs = switch_pairs(classified)
    luck_only = int(pairs.get("no_reward / unlearnable", 0))
    sets = switch_sets(classified)
    luck_final = pd.concat(list(finals.values()), axis=1).loc[sets.index[sets == "no_reward / unlearnable"]].mean(axis=1)
    return {"switching": int(pairs.sum()), "luck_only": luck_only, "share": 100 * luck_only / pairs.sum(),
            "median_final": luck_final.median(), "mean_final": luck_final.mean(),
            "mean_draws": pd.concat([h.groupby("prompt_id").size() for h in histories.values()]).mean()}


def luck_sentence(luck: dict, rollouts_per_prompt: int, p: float | None = None) -> str:
    """The paragraph on the problems only luck moves (`luck_switches`' numbers), with the chance
    of a blind guess (1/p) when p is given (the testbed)."""
    guess = f", and a blind guess is right with chance {1 / p:.3f}" if p else ""
    return (f"{luck['luck_only']} of the {luck['switching']} switching problems ({luck['share']:.0f}%) never pass the "
            "threshold in any seed and differ only in whether training drew a correct rollout for them: *unlearnable* in a "
            "seed where one of its few draws happened to hit, *no positive reward* in another. After training these problems "
            f"have a median pass@1 of {luck['median_final']:.3f} (mean over seeds; mean {luck['mean_final']:.3f}{guess}): "
            f"whether about {luck['mean_draws']:.0f} draws of {rollouts_per_prompt} rollouts hit one is luck, and the "
            "three-seed intersection removes it, which is why Table 1's unlearnable group is far smaller than any single seed's.")


def ablation_table(runs: dict) -> pd.DataFrame:
    """The matched control beside the chapter's runs: `run_summary` of every run, read from its
    folder (validation.csv, train_log.csv). runs: {pretraining corpus name: {seed: run folder}}.
    Index (pretraining corpus, seed); columns validation before, validation after, validation
    change, SE, "drawn-prompt reward, first steps", "last steps" (first / last sixth of the
    steps), max KL."""
    from unlearnability.store.history import read_validation

    rows = []
    for name, dirs in runs.items():
        for s, d in dirs.items():
            r = run_summary(read_validation(d), pd.read_csv(d / "train_log.csv"))
            rows.append({"pretraining corpus": name, "seed": s, "validation before": r["before"],
                         "validation after": r["after"], "validation change": r["change"], "SE": r["se"],
                         "drawn-prompt reward, first steps": r["reward_first"], "last steps": r["reward_last"],
                         "max KL": r["max_kl"]})
    return pd.DataFrame(rows).set_index(["pretraining corpus", "seed"])


def ablation_notes(gen: pd.DataFrame, control: pd.DataFrame) -> list[str]:
    """The chapter summary's two lines on the matched control: how far held-out validation moved
    with and without the extra styles (per seed, the difference in standard errors of the
    difference), and where the runs end (the styles lowering the base model and RL winning part
    of it back, or RL ending above the control).

    gen: `generalisation_table` of the runs with the styles; control: the control's rows of
    `ablation_table` (index seed; columns validation before / after / change, SE).
    """
    ctl, rise = control, gen["validation change"]
    paired = [(s, gen.loc[s, "validation change"] - ctl.loc[s, "validation change"],
               (gen.loc[s, "SE"] ** 2 + ctl.loc[s, "SE"] ** 2) ** 0.5) for s in ctl.index if s in gen.index]
    notes = [f"Without the extra styles (matched control, seed{'s' if len(ctl) > 1 else ''} "
             f"{', '.join(map(str, ctl.index))}), held-out validation changed by "
             f"{', '.join(f'{v:+.3f}' for v in ctl['validation change'])} from a base at "
             f"{ctl['validation before'].mean():.3f}, against {rise.min():+.3f} to {rise.max():+.3f} with the styles "
             f"from {gen['validation before'].mean():.3f}. Styles minus control, same seed: "
             + "; ".join(f"{d:+.3f} (seed {s}, {d / se:.1f} standard errors)" for s, d, se in paired) + "."]
    end_s, end_c = gen["validation after"].mean(), ctl["validation after"].mean()
    notes.append(f"Where the runs end, not only how far they move: after GRPO the styles testbed validates at "
                 f"{end_s:.3f} and the worked-only control at {end_c:.3f}. "
                 + ("The styles lower the base model and RL wins part of that back: transfer here is mostly a "
                    "shift toward the style that pays, the mechanism the testbed was built to expose, not a policy "
                    "better than one pretrained on worked chains alone." if end_s < end_c else
                    "RL on the styles testbed ends above the control, so the transfer is more than recovering what "
                    "the extra styles took away."))
    return notes
