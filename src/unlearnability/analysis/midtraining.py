"""Mid-training and gradient similarity (paper §5.4, Figure 11).

What the paper did: for Llama-3.2-3B-Base, OctoThinker-3B-Hybrid-Base and -Long-Base, sample
500 examples of the MATH-Hard training set, pick a subset of difficult examples, and compute
each difficult example's mean gradient cosine (§5.1's per-example gradients) with the 500.
Both mid-trained models gave higher similarity than the base model.

What this module does (testbed; the mid-trained models are `train.midtrain`'s):

    reference_ids(train_ids, n, seed)          the fixed-seed reference sample
    reference_similarity(cfg, difficult)       one model: every analysed example's mean cosine
                                               with the reference sample (cached per model)
    midtrain_similarity(profile, overrides, difficult, mixtures)
                                               Figure 11: the base model and each mixture
    difficult_rows(f11), figure11_verdicts(f11, mixtures)
                                               Figure 11's rows and its claim per mixture
    shrink_verdict(base, mid, baseline, ...)   beyond the paper: does the unlearnable group shrink?

Simplifications: "difficult" is whatever the caller passes (e.g. the baseline's learnable and
unlearnable groups, or problems the base model rarely solves; the paper does not say how it
picked them); the reference is a fixed-seed sample of the training problems (all of them when
there are fewer than `n_reference`), and difficult examples outside it are analysed too; the
mean excludes the example itself; examples whose rollouts all get the same reward have no
gradient and are left out of the means (`kept`; `n_reference_kept` counts the reference
examples with one), so the models' means run over somewhat different reference examples.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pandas as pd

from unlearnability.config import Config, load_config
from unlearnability.policy.model import set_threads


def reference_ids(train_ids: list[str], n: int = 500, seed: int = 0) -> list[str]:
    """`n` training ids drawn with a fixed seed (sorted first, so the input order does not
    matter), in drawn order; all of them when there are fewer."""
    ids = sorted(train_ids)
    random.Random(f"reference-{seed}").shuffle(ids)
    return ids[:n]


def reference_similarity(cfg: Config, difficult: list[str], n_reference: int = 500, sample_seed: int = 0,
                         gradient_overrides: dict | None = None) -> pd.DataFrame:
    """Per-example gradients at `cfg`'s base model (the mid-trained one when `midtrain.mixture`
    is set) of the reference sample and the `difficult` examples. One row per example analysed:
    prompt_id, reference (in the sample), difficult, rollouts, correct, kept, similarity (mean
    cosine with the reference examples that have a gradient, itself excluded),
    n_reference_kept. Cached under the run store's analysis/ by model, examples and settings."""
    from unlearnability.analysis.gradients import cosine_matrix, example_gradients
    from unlearnability.data.tasks import load_task
    from unlearnability.store.cache import cached_table
    from unlearnability.train.base import ensure_base_model

    g = dataclasses.replace(cfg.gradients, **(gradient_overrides or {}))
    policy = ensure_base_model(cfg)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_ids=None, augment=None))
    task = load_task(cfg, policy)
    by_id = task.by_id()
    missing = [i for i in difficult if i not in by_id]
    if missing:
        raise ValueError(f"difficult: {len(missing)} ids are not problems of this config, e.g. {missing[:3]}")
    ref = reference_ids([p.id for p in task.train], n_reference, sample_seed)
    ids = ref + [i for i in dict.fromkeys(difficult) if i not in set(ref)]

    def compute() -> pd.DataFrame:

        set_threads()
        kept, G, stats = example_gradients(policy, task, [by_id[i] for i in ids], g,
                                           max_new_tokens=cfg.eval.max_new_tokens)
        C = cosine_matrix(G) if kept else np.zeros((0, 0))
        pos = {i: k for k, i in enumerate(kept)}
        r = np.array([pos[i] for i in ref if i in pos], dtype=int)
        sim = {i: float(C[pos[i], r[r != pos[i]]].mean()) if len(r[r != pos[i]]) else float("nan") for i in kept}
        out = stats.assign(reference=stats.prompt_id.isin(set(ref)), difficult=stats.prompt_id.isin(set(difficult)),
                           similarity=stats.prompt_id.map(sim), n_reference_kept=len(r))
        return out[["prompt_id", "reference", "difficult", "rollouts", "correct", "kept", "similarity",
                    "n_reference_kept"]]

    key = {"g": dataclasses.asdict(g), "policy": str(policy), "ids": ids, "difficult": sorted(set(difficult)),
           "max_new": cfg.eval.max_new_tokens}
    return cached_table("midtrain-gradients", key, compute)


def midtrain_similarity(profile: str, overrides: dict | None, difficult: list[str],
                        mixtures: tuple[str, ...] = ("hybrid", "long"), n_reference: int = 500, sample_seed: int = 0,
                        midtrain_overrides: dict | None = None, gradient_overrides: dict | None = None) -> pd.DataFrame:
    """Figure 11: `reference_similarity` at the base model ("base") and at each mid-trained
    model (`midtrain.mixture` = each of `mixtures`, plus `midtrain_overrides`, e.g. tokens),
    mid-training any that is missing. The rows of every model, with a `model` column first."""
    from unlearnability.config import merge_overrides
    from unlearnability.train.midtrain import without_midtrain

    cfgs = {"base": without_midtrain(load_config(profile, overrides))}
    for m in mixtures:
        cfgs[m] = load_config(profile, merge_overrides(overrides, {"midtrain": {**(midtrain_overrides or {}),
                                                                                 "mixture": m}}))
    frames = [reference_similarity(c, difficult, n_reference, sample_seed, gradient_overrides).assign(model=name)
              for name, c in cfgs.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["model"] + [c for c in out.columns if c != "model"]]


# ----------------------------------------------------------------------------- the chapter's claims


def difficult_rows(f11: pd.DataFrame) -> pd.DataFrame:
    """Figure 11's rows: the difficult examples (all rows when the table has no `difficult`
    column) that have a similarity. f11: `midtrain_similarity`'s table."""
    if "difficult" in f11:
        f11 = f11[f11.difficult.astype(bool)]
    return f11.dropna(subset=["similarity"])


def figure11_verdicts(f11: pd.DataFrame, mixtures, n: int = 10000, seed: int = 0) -> list[dict]:
    """Figure 11's claim per mixture, "mid-training raises their similarity": reproduced when the
    mixture's similarities are higher than the base model's at p < 0.05 (`stats.compare_means`,
    "greater", over the examples both models analysed) and the mean per-example change is positive.

    f11: `difficult_rows` (columns model, prompt_id, similarity; model "base" and the mixtures).
    Returns one {claim, paper, testbed, numbers} per mixture with examples in both, in `mixtures` order.
    """
    from unlearnability.evaluation.stats import compare_means

    out = []
    for mix in mixtures:
        both = f11[f11.model.isin(["base", mix])].pivot_table(index="prompt_id", columns="model",
                                                              values="similarity").dropna()
        if not len(both):
            continue
        dd = both[mix] - both["base"]
        _, p = compare_means(both[mix], both["base"], "greater", n=n, seed=seed)
        out.append({"claim": f"mid-training ({mix}) raises their similarity (Fig 11)", "paper": "higher",
                    "testbed": "reproduced" if p < 0.05 and dd.mean() > 0 else "not",
                    "numbers": f"mean change {dd.mean():+.4f} over {len(both)} examples ({(dd > 0).mean():.0%} higher), "
                               f"p = {p:.3f}"})
    return out


def shrink_verdict(base: pd.DataFrame, mid: pd.DataFrame, baseline: pd.DataFrame, seeds, initial: pd.Series,
                   mid_initial: pd.Series, mixture: str) -> dict:
    """Beyond the paper, "mid-training shrinks the unlearnable group": the unlearnable share of
    GRPO from the mid-trained model (`mid`) against GRPO from the base model with the same seeds
    (`base`), a change counting only beyond the baseline's own seed-to-seed spread (max - min of
    the unlearnable share of each of `seeds` on its own, `baseline`'s seed_<s> columns).

    base, mid, baseline: `groups.classify` tables; initial, mid_initial: the two models' initial
    pass@1 per example. Returns {claim, paper, testbed ("yes", "no: within the baseline's seed
    spread" or "no: it grows"), numbers}.
    """
    def pct(c):
        return 100 * (c["group"] == "unlearnable").mean()

    per_seed = [100 * (baseline[f"seed_{s}"] == "unlearnable").mean() for s in seeds]
    spread = max(per_seed) - min(per_seed)
    delta = pct(mid) - pct(base)
    shrinks = "yes" if delta < -spread else ("no: within the baseline's seed spread" if delta <= spread else "no: it grows")
    return {"claim": f"(beyond) mid-training ({mixture}) shrinks the unlearnable group", "paper": "-",
            "testbed": shrinks,
            "numbers": f"unlearnable {pct(base):.1f}% -> {pct(mid):.1f}% ({delta:+.1f} points; the baseline's "
                       f"{len(per_seed)} seeds span {min(per_seed):.1f}-{max(per_seed):.1f}%); "
                       f"initial pass@1 {initial.mean():.3f} -> {mid_initial.mean():.3f}"}
