"""Group training examples as the paper does (§3.2 and the authors' classification script).

Per seed s, with tau = 0.1 and pass@1 the mean reward over k = 32 samples (`label_seed`):
    easy          initial pass@1 > tau
    learnable     initial pass@1 <= tau and final pass@1 (seed s) > tau
    unlearnable   initial <= tau, final <= tau, and at least one positive reward in seed s's
                  training history (the paper requires initial <= tau; the authors' code does not)
    no_reward     initial <= tau, final <= tau, and no positive reward in seed s's history
A seed "rewarded" a problem when its history holds a positive reward (whatever the label).

Across seeds (`combine_seeds`, one group per problem, first rule that applies):
    easy          easy in every seed (the initial evaluation is shared, so all or none)
    learnable     learnable in every seed (the intersection), whatever the histories
    no_reward     some seed never rewarded it: the union over seeds, as in REFERENCE.md and
                  the authors' script, whatever its final pass rates
    unlearnable   unlearnable in every seed (so rewarded in every seed: disjoint from the union)
    ambiguous     anything else: the seeds mix learnable and unlearnable (counted, not hidden)

Overlap (the paper's Table 1 columns are each defined on their own, so they can overlap):
the authors' no_reward column is the union over seeds *whatever the pass rates*, so it also
holds easy and learnable problems that some seed never rewarded (a learnable one learned in
that seed without a positive of its own: transfer). The one-group-per-problem partition above
gives those to easy and learnable (their rules come first: easy is a base-model property, and
learnable in every seed is an outcome, not a lack of signal); `table1` of `classify`'s table
shows both readings: `count`/`percent` the partition, and `paper_count`/`paper_percent` each
group by its own rule, where only no_reward differs (the union over all problems). Unlearnable
and learnable never overlap no_reward's partition group, and the paper's "after excluding data
without any positive reward" holds for unlearnable by construction.

Beyond the paper, `chance_threshold` gives a luck-aware variant: a seed's training positives
only count when there are more of them than blind guessing (chance 1/p per rollout)
explains at the 99% level. With it, "rewarded" means positives above that threshold, for the
labels and for the union alike.

The rules are written once on integer codes (`label_codes`, `combine_codes`, numpy, any
shape), so the pandas functions here and the null of `analysis.null` apply the same ones.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd

from unlearnability.paper import TAU

GROUPS = ["easy", "learnable", "unlearnable", "no_reward", "ambiguous"]
PAPER_GROUPS = ["unlearnable", "learnable", "no_reward"]  # Table 1's columns
LABELS = GROUPS[:4]  # a seed's labels; codes are indices into GROUPS (ambiguous = 4, groups only)
EASY, LEARNABLE, UNLEARNABLE, NO_REWARD, AMBIGUOUS = range(5)


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


def chance_thresholds(rollouts, p: float, level: float = 0.99) -> np.ndarray:
    """`chance_threshold` of every entry of an array of rollout counts (computed once per value)."""
    r = np.asarray(rollouts).astype(int)
    values, inverse = np.unique(r, return_inverse=True)
    return np.array([chance_threshold(v, p, level) for v in values], dtype=int)[inverse].reshape(r.shape)


def rewarded_mask(positives, rollouts, p: float | None = None, level: float = 0.99) -> np.ndarray:
    """Whether training rewarded a problem: any positive (p None), else more positives than
    guessing with chance 1/p explains at `level` (`chance_threshold`). Arrays of any shape."""
    positives = np.asarray(positives)
    if p is None:
        return positives > 0
    return positives > chance_thresholds(rollouts, p, level)


def label_codes(initial, final, rewarded, tau: float = TAU) -> np.ndarray:
    """A seed's label codes (indices into GROUPS) from pass@1 arrays and the rewarded mask
    (broadcast together). A missing (NaN) final pass@1 counts as <= tau."""
    initial, final, rewarded = np.broadcast_arrays(np.asarray(initial, float), np.asarray(final, float),
                                                   np.asarray(rewarded, bool))
    return np.where(initial > tau, EASY, np.where(final > tau, LEARNABLE,
                                                  np.where(rewarded, UNLEARNABLE, NO_REWARD))).astype(np.int8)


def combine_codes(labels, rewarded) -> np.ndarray:
    """The group code per problem from seeds' label codes and rewarded masks, seeds on the last
    axis (shape (..., seeds) -> (...)): the rules of the module docstring, in that order."""
    labels, rewarded = np.asarray(labels), np.asarray(rewarded, bool)
    all_ = lambda code: (labels == code).all(axis=-1)  # noqa: E731
    out = np.full(labels.shape[:-1], AMBIGUOUS, dtype=np.int8)
    out[all_(UNLEARNABLE)] = UNLEARNABLE
    out[~rewarded.all(axis=-1)] = NO_REWARD  # the union over seeds
    out[(labels == EASY).any(axis=-1)] = AMBIGUOUS  # easy in some seeds only: no shared initial
    out[all_(LEARNABLE)] = LEARNABLE
    out[all_(EASY)] = EASY
    return out


def seed_arrays(initial: pd.Series, final: pd.Series, history: pd.DataFrame,
                p: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One seed's (final pass@1, rewarded) aligned to initial's index."""
    tp = training_positives(history).reindex(initial.index)
    rewarded = rewarded_mask(tp["positives"].fillna(0).to_numpy(), tp["rollouts"].fillna(0).to_numpy(), p)
    return final.reindex(initial.index).to_numpy(float), rewarded


def label_seed(initial: pd.Series, final: pd.Series, history: pd.DataFrame, tau: float = TAU,
               p: int | None = None) -> pd.Series:
    """One seed's label per prompt id. initial, final: pass@1 indexed by prompt_id.

    With `p` given, positives must exceed `chance_threshold(rollouts, p)` to count.
    """
    fin, rewarded = seed_arrays(initial, final, history, p)
    codes = label_codes(initial.to_numpy(float), fin, rewarded, tau)
    return pd.Series(np.array(GROUPS, dtype=object)[codes], index=initial.index, dtype=object)


def combine_seeds(labels: pd.DataFrame, rewarded: pd.DataFrame | None = None) -> pd.Series:
    """labels: one column per seed -> the group per prompt (the module docstring's rules).

    rewarded: same shape, whether each seed's history held a (counted) positive; without it a
    seed rewarded a problem unless it labels it no_reward (so an easy or learnable label counts
    as rewarded: `classify` passes the real masks).
    """
    codes = labels.apply(lambda col: col.map(GROUPS.index)).to_numpy()
    rew = (codes != NO_REWARD) if rewarded is None else rewarded.to_numpy(bool)
    shape = (len(labels), labels.shape[1])
    out = combine_codes(codes.reshape(shape), rew.reshape(shape))
    return pd.Series(np.array(GROUPS, dtype=object)[out], index=labels.index, dtype=object, name="group")


def classify(initial: pd.Series, finals: dict, histories: dict, tau: float = TAU,
             p: int | None = None) -> pd.DataFrame:
    """Per prompt: each seed's label (columns `seed_<s>`), whether that seed rewarded it
    (`rewarded_<s>`, by the same rule as the label: any positive, or above chance with `p`),
    the combined `group`, the initial and each seed's final pass@1 (`final_<s>`).

    finals, histories: {seed: final pass@1 Series, seed: history DataFrame}.
    """
    arrays = {s: seed_arrays(initial, finals[s], histories[s], p) for s in finals}
    init = initial.to_numpy(float)
    labels = pd.DataFrame({f"seed_{s}": np.array(GROUPS, dtype=object)[label_codes(init, f, r, tau)]
                           for s, (f, r) in arrays.items()}, index=initial.index)
    rewarded = pd.DataFrame({f"rewarded_{s}": r for s, (f, r) in arrays.items()}, index=initial.index)
    out = labels.assign(group=combine_seeds(labels, rewarded), initial=initial)
    for s in finals:
        out[f"final_{s}"] = finals[s].reindex(initial.index)
    return out.join(rewarded)


def table1(groups: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Counts and percent of training examples per group (all five groups, a partition).

    Given `classify`'s table instead of its `group` column, also `paper_count` and
    `paper_percent`: each of the paper's columns by its own rule, so they can overlap; only
    no_reward differs, the union over seeds of the problems some seed never rewarded, whatever
    their pass rates (easy and learnable ones included), as the authors' script counts it.
    """
    classified = groups if isinstance(groups, pd.DataFrame) else None
    g = classified["group"] if classified is not None else groups
    counts = g.value_counts().reindex(GROUPS, fill_value=0)
    out = pd.DataFrame({"count": counts, "percent": (100 * counts / counts.sum()).round(1)})
    if classified is not None:
        paper = counts.copy()
        paper["no_reward"] = int(never_rewarded(classified).sum())
        out["paper_count"] = paper
        out["paper_percent"] = (100 * paper / max(len(g), 1)).round(1)
    return out


def never_rewarded(classified: pd.DataFrame) -> pd.Series:
    """Per problem: whether some seed never rewarded it (the union rule, whatever the pass rates).
    classified: `classify`'s table (its `rewarded_<s>` columns)."""
    cols = [c for c in classified.columns if str(c).startswith("rewarded_")]
    if not cols:
        raise ValueError("no rewarded_<s> columns: pass groups.classify's table")
    return ~classified[cols].astype(bool).all(axis=1)


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


def target_ids(group_of: pd.Series) -> tuple[list[str], str]:
    """The examples an intervention on "the unlearnable examples" trains on or scores (§4 Figure
    15b, §5's curriculum targets, §5.3's augmentation): the unlearnable ones (sorted ids), or, when
    there are none (e.g. the smoke preset), the hard examples with a positive that were not learned
    in every seed (unlearnable + ambiguous); with the name the book gives them."""
    unl = sorted(group_of[group_of == "unlearnable"].index)
    if unl:
        return unl, "unlearnable"
    return sorted(group_of[group_of.isin(["unlearnable", "ambiguous"])].index), "unlearnable + ambiguous (no unlearnable examples)"


def per_example_table(study, classified: pd.DataFrame) -> pd.DataFrame:
    """One row per training problem (`study.problems` order), enough to recompute Table 1 and its
    null (`analysis.null`) without the run store: prompt_id and the world's knobs (every column of
    `study.problems`: tier, depth, distractors, coverage class, modulus p, skills joined by "+"; and
    `coupled_skill`, the first of its skills that `world.skill_styles` couples to a style, when the
    study's config couples any), initial_pass1 / initial_correct / initial_n, then per seed s:
    rollouts_<s>, positives_<s> and draws_<s> (its training history, kept and dropped groups),
    final_pass1_<s> / final_n_<s> (its final evaluation), rewarded_<s> and label_<s> (by the rule
    `classified` used), and last the combined group.

    study: an `experiment.Study` (or anything with problems, initial, finals, histories; cfg
    optional); classified: `classify`'s table of it.
    """
    ids = study.problems["prompt_id"]
    out = study.problems.reset_index(drop=True).copy()
    coupled = getattr(getattr(getattr(study, "cfg", None), "world", None), "skill_styles", None)
    if coupled and "skills" in out:
        out["coupled_skill"] = [next((k for k in sorted(str(s).split("+")) if k in coupled), "") for s in out["skills"]]
    init = study.initial.set_index("prompt_id").reindex(ids)
    out["initial_pass1"] = init["pass@1"].to_numpy(float)
    out["initial_correct"] = init["correct"].to_numpy(float) if "correct" in init else np.nan
    out["initial_n"] = init["n"].to_numpy(float) if "n" in init else np.nan
    cls = classified.reindex(ids)
    for s, h in study.histories.items():
        tp = training_positives(h).reindex(ids)
        fin = study.finals[s].set_index("prompt_id").reindex(ids)
        out[f"rollouts_{s}"] = tp["rollouts"].fillna(0).to_numpy(int)
        out[f"positives_{s}"] = tp["positives"].fillna(0).to_numpy(int)
        out[f"draws_{s}"] = tp["draws"].fillna(0).to_numpy(int)
        out[f"final_pass1_{s}"] = fin["pass@1"].to_numpy(float)
        out[f"final_n_{s}"] = fin["n"].to_numpy(float) if "n" in fin else np.nan
        if f"rewarded_{s}" in cls:
            out[f"rewarded_{s}"] = cls[f"rewarded_{s}"].to_numpy(bool)
        out[f"label_{s}"] = cls[f"seed_{s}"].to_numpy(object)
    out["group"] = cls["group"].to_numpy(object)
    return out


def membership(table: pd.DataFrame, knob: str) -> pd.DataFrame | None:
    """Groups against one of the world's knobs (tier, coverage, distractors, depth, coupled_skill, order,
    level ...): problems per knob value (rows) and group (columns, in GROUPS order), each cell
    "count (row percent%)". table: one row per problem with a `group` column and the knob
    (e.g. `per_example_table`); None when the table has no such knob."""
    if knob not in table:
        return None
    values = table[knob].replace("", "none").fillna("none")  # e.g. coupled_skill "" = needs no coupled skill
    ct = pd.crosstab(values, table["group"])
    ct = ct.reindex(columns=[g for g in GROUPS if g in ct.columns], fill_value=0)
    pct = ct.div(ct.sum(axis=1), axis=0) * 100
    return ct.astype(str) + " (" + pct.round(0).astype(int).astype(str) + "%)"


def chance_positives(histories: dict, p: float) -> pd.DataFrame:
    """Per seed and problem, the training positives beside what luck gives: `training_positives`
    of each history ({seed: history}) stacked (index prompt_id) with columns seed and
    expected_by_chance (rollouts / p: the lucky positives expected of blind guessing)."""
    luck = pd.concat([training_positives(h).assign(seed=s) for s, h in histories.items()])
    luck["expected_by_chance"] = luck.rollouts / p
    return luck


def chance_sentence(classified: pd.DataFrame, chance: pd.DataFrame, luck: pd.DataFrame, n_problems: int) -> str:
    """The chance correction in a paragraph: how many of the `n_problems` change group, how many
    unlearnable problems keep their label, the lucky positives expected per problem (mean, max)
    and the positives the unlearnable problems had per seed.

    classified, chance: `classify`'s tables by the paper's rule and the chance-corrected one
    (same index); luck: `chance_positives`.
    """
    moved = classified.group != chance.group
    unl = luck[luck.index.isin(classified.index[classified.group == "unlearnable"])]
    return (f"{int(moved.sum())} of {n_problems} problems change group under the chance correction; "
            f"{int((chance.group == 'unlearnable').sum())} of the {int((classified.group == 'unlearnable').sum())} "
            f"unlearnable problems keep their label. Across seeds, a problem's training rollouts would contain on average "
            f"{luck.expected_by_chance.mean():.2f} lucky positives (at most {luck.expected_by_chance.max():.2f}); the "
            "problems counted as *unlearnable* had on average "
            + (f"{unl.positives.mean():.2f} positives per seed." if len(unl) else "no positives (there are none)."))


def shares_sentence(classified: pd.DataFrame) -> str:
    """The chapter's summary of the groups: each group's percent of the training problems
    (`table1`; no_reward also as the paper's union over seeds) beside the range of the paper's
    three models (`paper.TABLE1`). classified: `classify`'s table."""
    from unlearnability.paper import TABLE1

    t = table1(classified)
    pct, union = t["percent"], t.loc["no_reward", "paper_percent"]

    def paper(g):
        values = [row[g] for row in TABLE1.values()]
        return f"{min(values):.1f}-{max(values):.1f}%"

    return (f"On the testbed, {pct['unlearnable']:.1f}% of training problems are *unlearnable* by the paper's definition "
            f"(the paper: {paper('unlearnable')}), {pct['learnable']:.1f}% learnable (paper: {paper('learnable')}), "
            f"{union:.1f}% never rewarded in some seed (the union, as the paper: {paper('no_reward')}; "
            f"{pct['no_reward']:.1f}% once easy and learnable problems keep their group), {pct['easy']:.1f}% easy and "
            f"{pct['ambiguous']:.1f}% ambiguous across the seeds. "
            "Whether these groups mean the same thing as the paper's depends on the cross tables above: a group that the "
            "world's difficulty knobs fully explain is a statement about difficulty, not about learnability.")
