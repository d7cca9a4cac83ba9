"""Per-group dynamics over training and the verdict of an intervention (paper §4, A.2-A.3).

Every §4 experiment asks the same question: does an intervention (oversampling with replay,
clip-higher, no KL, SFT, a larger group) lift the unlearnable examples, or does the gap to
the learnable ones stay? These functions turn run tables into the numbers the chapter shows:

    group_curve      mean of a history column per (step window, group): Figures 2, 4, 5, 15b
    group_finals     mean final pass@1 per (seed, group) of a set of runs
    gap_verdict      the intervention's effect on the unlearnable group against the baseline's
                     seed-to-seed spread: "reproduced" (no lift, gap stays), "partly", "not"
    shift_verdict    "no systematic shift" of a group's mean (permutation test): Figures 3, 4, 16

The chapter's claims, one function each (verdict, numbers in words, the sentence on the page):
    gap_claim        Figures 2 and 5 (an intervention; `gap_verdict` in words)
    sft_claim        Figure 15a (SFT on correct responses), with `sft_mix` (its set's sizes)
    big_group_claim  Figure 15b (a group of 64 on the unlearnable examples alone)
and the tables behind Figure 2's replay: `read_replay`, `replay_table` (printed by `book.charts.replay_text`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from unlearnability.evaluation.stats import permutation_test
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


def shift_verdict(values, in_group, alternative: str, level: float = 0.05) -> dict:
    """The paper's "no systematic shift" claims (Figures 3, 4, 16): reproduced when the
    group's mean does not differ from the rest's in the `alternative` direction at `level`."""
    gap, p = permutation_test(values, in_group, alternative)
    verdict = "untestable" if math.isnan(p) else ("reproduced" if p >= level else "not")
    return {"gap": gap, "p": p, "n_group": int(np.asarray(in_group, bool).sum()),
            "n_rest": int((~np.asarray(in_group, bool)).sum()), "verdict": verdict}


def verdict_line(name: str, v: dict) -> str:
    """One line of markdown for a `gap_verdict`: the verdict, the unlearnable group's mean final
    pass@1 before and after with the effect and the noise threshold, and the learnable - unlearnable gap."""
    return (f"**{name}: {v['verdict']}.** Unlearnable mean final pass@1 {v['baseline_unlearnable']:.3f} (baseline) -> "
            f"{v['variant_unlearnable']:.3f} (effect {v['effect']:+.3f}; noise threshold {v['noise']:.3f}); "
            f"learnable - unlearnable gap {v['baseline_gap']:+.3f} -> {v['variant_gap']:+.3f}.")


# ---------------------------------------------------------------- the §4 chapter's claims
#
# One function per claim of the chapter: each returns the verdict and the numbers behind it
# ("verdict", "numbers": the summary table's cell, "line": the markdown sentence under the figure),
# so the notebook only runs, draws and records.


def claim_line(name: str, verdict: str, numbers: str) -> str:
    """The markdown sentence of a claim: "**<name>: <verdict>.** <numbers>."."""
    return f"**{name}: {verdict}.** {numbers}."


def gap_claim(name: str, baseline: pd.DataFrame, variant: pd.DataFrame, tau: float = TAU) -> dict:
    """An intervention's claim "the gap stays" (Figures 2 and 5): `gap_verdict(baseline, variant,
    tau)` (both tables: seed, group, mean, as `group_finals` returns) with its numbers in words.

    Returns gap_verdict's dict plus "numbers" ("unlearnable <base> -> <variant>; gap <base> ->
    <variant>", the summary's cell) and "line" (`verdict_line(name, ...)`)."""
    v = gap_verdict(baseline, variant, tau)
    v["numbers"] = (f"unlearnable {v['baseline_unlearnable']:.3f} -> {v['variant_unlearnable']:.3f}; "
                    f"gap {v['baseline_gap']:+.3f} -> {v['variant_gap']:+.3f}")
    v["line"] = verdict_line(name, v)
    return v


def read_replay(run_dirs: dict, group_of: pd.Series) -> pd.DataFrame:
    """The replay logs (`replay.csv`, one row per draw of Algorithm 1) of {seed: run dir}, stacked:
    their columns (prompt_id, kept, drawn_pos, replayed, extra_pos, buffered, ...) plus seed and
    group (`group_of`, "other" for an example without one). Runs written before the buffer size was
    logged get buffered = NaN."""
    rep = pd.concat([pd.read_csv(Path(d) / "replay.csv", dtype={"prompt_id": str}).assign(seed=s)
                     for s, d in run_dirs.items()])
    rep["group"] = rep["prompt_id"].map(group_of).fillna("other")
    if "buffered" not in rep:
        rep["buffered"] = np.nan
    return rep


REPLAY_WORDS = {"draws": "draws", "drawn_positives": "positives per draw", "no_positive_drawn": "no positive drawn",
                "empty_buffer": "buffer empty", "full_buffer": "buffer full", "replayed": "replayed a positive",
                "filtered": "filtered", "extra_positives": "extra positives per draw"}


def replay_table(rep: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """Algorithm 1 per group, from `read_replay`'s table: index group (groups.GROUPS order, then
    "other"; groups without a draw left out), columns draws, drawn_positives (mean positives per
    draw), the shares no_positive_drawn, empty_buffer, full_buffer (>= `capacity` before the draw),
    replayed (a buffered positive), filtered (not kept), and extra_positives (mean per draw)."""
    from unlearnability.evaluation.groups import GROUPS

    return rep.groupby("group").agg(
        draws=("kept", "size"), drawn_positives=("drawn_pos", "mean"),
        no_positive_drawn=("drawn_pos", lambda x: (x == 0).mean()),
        empty_buffer=("buffered", lambda x: (x == 0).mean()),
        full_buffer=("buffered", lambda x: (x >= capacity).mean()),
        replayed=("replayed", lambda x: (x > 0).mean()), filtered=("kept", lambda x: 1 - x.mean()),
        extra_positives=("extra_pos", "mean")).reindex(GROUPS + ["other"]).dropna(how="all")


def replay_caption(oversample_n: int, capacity: int) -> str:
    """The caption of `replay_text`'s table."""
    return (f"Algorithm 1 per group, over all draws of {oversample_n} rollouts: mean positives per draw; share of draws "
            f"with no positive, with an empty / full (capacity {capacity}) buffer before the draw, that replayed a "
            "buffered positive, that were filtered (no positive drawn or replayable); extra positives used for missing "
            "negatives")


def replay_counts(rep: pd.DataFrame) -> str:
    """" Replays: <n> in <draws> draws; <m> draws filtered." (appended to Figure 2's verdict line)."""
    return f" Replays: {int(rep.replayed.sum())} in {len(rep)} draws; {int((rep.kept == 0).sum())} draws filtered."


def sft_mix(sizes: pd.Series) -> dict[str, int]:
    """Examples per group of Figure 15a's SFT set: the paper's proportions (1 unlearnable :
    1 learnable : 2 easy) at the size n of the smaller non-empty hard group (8 when both are
    empty); a group with no examples gets 0. sizes: examples per group (index group)."""
    hard_sizes = [int(sizes[g]) for g in ("unlearnable", "learnable") if sizes[g] > 0]
    n = min(hard_sizes) if hard_sizes else 8
    return {"unlearnable": n if sizes["unlearnable"] else 0, "learnable": n if sizes["learnable"] else 0,
            "easy": 2 * n if sizes["easy"] else 0}


def sft_claim(evals: pd.DataFrame, tau: float = TAU) -> dict:
    """Figure 15a's claim, "after SFT on correct responses the unlearnable examples stay resistant",
    on the SFT run's eval table (step, group, examples, pass@1; `eval.csv`).

    reproduced: the unlearnable group ends at or below tau and gains least of the groups; not: it
    ends above tau; partly: otherwise; untestable: no unlearnable row. Returns "table" (index group:
    before, after, gain: pass@1 at the first and the last step), "verdict", "numbers" and "line"."""
    first = evals[evals.step == evals.step.min()].set_index("group")["pass@1"]
    last = evals[evals.step == evals.step.max()].set_index("group")["pass@1"]
    gain = (last - first).rename("gain")
    if "unlearnable" in last.index:
        u_after = last["unlearnable"]
        verdict = "reproduced" if u_after <= tau and gain.get("unlearnable", 0) < gain.drop("unlearnable").min() else (
            "not" if u_after > tau else "partly")
        numbers = (f"unlearnable {first['unlearnable']:.3f} -> {u_after:.3f}; learnable "
                   f"{first.get('learnable', np.nan):.3f} -> {last.get('learnable', np.nan):.3f}")
    else:
        verdict, numbers = "untestable", "no unlearnable examples"
    line = (f"**Figure 15a: {verdict}.** {numbers}. (Reproduced means the unlearnable group ends at or below τ and "
            "gains least; not, that SFT lifts it above τ.)")
    return {"table": pd.DataFrame({"before": first, "after": last, "gain": gain}), "verdict": verdict,
            "numbers": numbers, "line": line}


def seed_curve(histories: dict, value: str = "mean_reward") -> pd.DataFrame:
    """{seed: history} -> step, mean (of `value` over the step's rows), seed (str), stacked by seed."""
    return pd.concat([h.groupby("step")[value].mean().rename("mean").reset_index().assign(seed=str(s))
                      for s, h in histories.items()])


def big_group_claim(initial: pd.Series, baseline_finals: dict, after: dict, target: list[str],
                    valid_before: list[float], valid_after: list[float], tau: float = TAU, *,
                    name: str = "unlearnable", steps: int = 5, group_size: int = 64) -> dict:
    """Figure 15b's claim, "GRPO with a group of `group_size` on the `target` examples alone does
    not make them learnable".

    initial: pass@1 per prompt_id at the initial policy; baseline_finals: {seed: final pass@1 of the
    baseline}; after: {seed: pass@1 per target prompt_id after the big-group run's `steps` steps};
    valid_before / valid_after: held-out validation pass@1 per run (baseline step 0 / big-group final).
    reproduced: the target's mean pass@1 after the run (seed means averaged) is at most tau; not:
    above. Returns before, baseline_after, after, lifted (mean share of targets above tau),
    valid_before, valid_after (means), "verdict" and "numbers" (in words, `name` for the examples)."""
    out = {"before": initial.reindex(target).mean(),
           "baseline_after": np.mean([f.reindex(target).mean() for f in baseline_finals.values()]),
           "after": np.mean([p.mean() for p in after.values()]),
           "lifted": np.mean([(p > tau).mean() for p in after.values()]),
           "valid_before": np.mean(valid_before), "valid_after": np.mean(valid_after)}
    out["verdict"] = "reproduced" if out["after"] <= tau else "not"
    out["numbers"] = (f"{name}: pass@1 {out['before']:.3f} at the start, {out['baseline_after']:.3f} after the "
                      f"baseline, {out['after']:.3f} after {steps} steps with groups of {group_size}; "
                      f"{out['lifted']:.0%} of them end above τ; held-out validation {out['valid_before']:.3f} "
                      f"before, {out['valid_after']:.3f} after")
    return out
