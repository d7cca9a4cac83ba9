"""Augmentation (paper §5.3): GRPO on augmented data, and Figure 10's gradient similarity.

What the paper did: GPT-5 wrote 5 similar problems ("solved with the same strategy") and a
decomposition into subproblems, each with answer and solution, for every unlearnable example
and 100 random learnable ones; Gemini-2.5-pro cross-checked the answers. Three GRPO runs with
the baseline's hyperparameters trained on the unlearnable examples plus (1) their similar
problems, (2) their subproblems, (3) both. Figure 8: pass@1 / pass@16 of the original
unlearnable examples over training; Figure 9: reward of the augmented data against the
original easy / learnable examples; Figure 10: per unlearnable / learnable example, gradient
similarity with the training set against similarity with its own augmented problems.

What this module does (testbed; the augmentations are `world.augment`'s exact ones):

    COMPOSITIONS, augmentation_changes(ids, composition)  the config changes of one run:
        {"data": {"train_ids": ids, "augment": {"kinds": [...], ...}}}
    augmentation_runs(profile, seeds, overrides, ids)     {composition: {seed: run folder}}
    augmentation_table(problems)                          prompt_id -> source_id, kind
    augmentation_gradients(study, group_of)               Figure 10's gradients, one row per
                                                          example analysed (cached)
    augmentation_similarity(study, group_of)              Figure 10: one row per source example

The chapter's figures and claims (one function per claim, returning its verdict and numbers):

    target_pass_rates(runs_by, ids, k)                    Figure 8: pass@1 / pass@k by checkpoint
    figure8_verdicts(f8, finals, ids, tau, k)             "augmentation does not lift them"
    validation_by_step(runs_by)                           the runs' held-out validation by step
    figure9_table(runs_by, histories, group_of, name)     Figure 9: reward by kind of problem
    figure10_verdict(f10)                                 "own augmentations are not more similar"

Simplifications: no answer cross-check (the generator's answers are exact); when the
augmented set is smaller than `grpo.prompts_per_step`, the runs' prompts per step and
mini-batch are cut to its size (as `experiment.curriculum` does); Figure 10's "training set" is
§5.1's sample (`gradients.per_group` examples of each of easy / learnable / unlearnable, the
seed of Figure 1c), similarity with it excludes the example itself; its sources are the
sampled examples of the groups asked (default learnable and unlearnable), not "every
unlearnable and 100 random learnable" unless `per_group` covers them; an example (original or
augmented) whose rollouts all get the same reward has no gradient and is left out, as in §5.1
(`kept` says which); rollout seeds depend on an example's position in the batch
(`gradients.example_gradients`), so an original's gradient here is not bit-identical to
Figure 1c's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from unlearnability.config import (
    AUGMENT_DEFAULTS,
    AUGMENT_KINDS,
    check_augment,
    load_config,
    small_set_batch,
)
from unlearnability.policy.model import set_threads
from unlearnability.world.augment import augmentation_kind, augmentations
from unlearnability.world.problems import Problem

# composition -> augmentation kinds (paper: similar, subproblems, both)
COMPOSITIONS: dict[str, list[str]] = {"similar": ["similar"], "subproblem": ["subproblem"],
                                      "both": ["similar", "subproblem"]}


def augmentation_changes(ids: list[str], composition: str, n_similar: int = 5, seed: int = 0) -> dict:
    """Config changes of one composition: train on `ids` (e.g. the unlearnable group) plus
    their augmentations of the composition's kinds."""
    if composition not in COMPOSITIONS:
        raise ValueError(f"composition {composition!r}: choose one of {', '.join(COMPOSITIONS)}")
    return {"data": {"train_ids": list(ids), "augment": {"kinds": COMPOSITIONS[composition],
                                                          "n_similar": n_similar, "seed": seed}}}


def augmentation_runs(profile: str, seeds: list[int], overrides: dict | None, ids: list[str],
                      compositions: tuple[str, ...] = ("similar", "subproblem", "both"), n_similar: int = 5,
                      seed: int = 0) -> dict[str, dict[int, Path]]:
    """Run (or reuse) GRPO on `ids` plus their augmentations, per composition and seed, with
    the profile's GRPO settings; {composition: {seed: run folder}}."""
    from unlearnability.config import merge_overrides
    from unlearnability.data.tasks import load_task
    from unlearnability.pipeline.experiment import variant_runs
    from unlearnability.train.base import ensure_base_model

    out = {}
    for comp in compositions:
        changes = augmentation_changes(ids, comp, n_similar, seed)
        cfg = load_config(profile, merge_overrides(overrides, changes))
        n = len(load_task(cfg, ensure_base_model(cfg)).train)
        if n < cfg.grpo.prompts_per_step:  # a small set: one epoch per step at most
            changes["grpo"] = small_set_batch(n, cfg.grpo)
        out[comp] = variant_runs(profile, seeds, overrides, changes)
    return out


def augmentation_table(problems: list[Problem]) -> pd.DataFrame:
    """One row per problem: prompt_id, source_id (itself for an original), kind (original |
    similar | subproblem). (N, 3)"""
    rows = [(p.id, *augmentation_kind(p)) for p in problems]
    return pd.DataFrame(rows, columns=["prompt_id", "source_id", "kind"])


def similarity_rows(ids: list[str], C: np.ndarray, reference: list[str], source_of: dict[str, str]) -> pd.DataFrame:
    """Per example with a gradient: sim_train = mean cosine with the `reference` examples that
    have one (itself excluded), sim_source = cosine with its source's gradient (NaN for an
    original or when the source has none). ids: (N,) in the order of C (N, N)."""
    pos = {i: k for k, i in enumerate(ids)}
    ref = np.array([pos[i] for i in reference if i in pos], dtype=int)
    rows = []
    for i in ids:
        k = pos[i]
        others = ref[ref != k]
        src = source_of.get(i, i)
        rows.append({"prompt_id": i,
                     "sim_train": float(C[k, others].mean()) if len(others) else float("nan"),
                     "sim_source": float(C[k, pos[src]]) if src != i and src in pos else float("nan")})
    return pd.DataFrame(rows, columns=["prompt_id", "sim_train", "sim_source"])


def augmentation_gradients(study, group_of: pd.Series, sources: tuple[str, ...] = ("learnable", "unlearnable"),
                           kinds: list[str] | None = None, n_similar: int = AUGMENT_DEFAULTS["n_similar"],
                           aug_seed: int = 0, step: int = 0, seed: int | None = None,
                           gradient_overrides: dict | None = None) -> pd.DataFrame:
    """Gradients of §5.1's sample (`gradients.per_group` per group, fixed seed) and of the
    augmentations of its examples in `sources`, at the base model (step 0) or a seed's
    checkpoint. One row per example analysed: prompt_id, group (the source's), source_id,
    kind (original | similar | subproblem), rollouts, correct, kept, sim_train, sim_source
    (see `similarity_rows`). Cached under the run store's analysis/ by everything it uses."""
    from unlearnability.analysis.gradients import (
        analysis_setup,
        cosine_matrix,
        example_gradients,
    )
    from unlearnability.data.tasks import load_task
    from unlearnability.store.cache import cached_table
    from unlearnability.train.base import ensure_base_model

    cfg = study.cfg
    spec = check_augment({"kinds": list(kinds or AUGMENT_KINDS), "n_similar": n_similar, "seed": aug_seed})
    g, chosen, policy = analysis_setup(study, group_of, step, seed, gradient_overrides)

    def compute() -> pd.DataFrame:

        set_threads()
        task = load_task(cfg, ensure_base_model(cfg))
        by_id = task.by_id()
        originals = [by_id[i] for i in chosen.index]
        aug = [a for p in originals if chosen[p.id] in sources
               for a in augmentations(p, spec["kinds"], spec["n_similar"], spec["seed"], cfg.world.const_max,
                                      cfg.world.coverage)]
        problems = originals + aug
        ids, G, stats = example_gradients(policy, task, problems, g, max_new_tokens=cfg.eval.max_new_tokens)
        C = cosine_matrix(G) if ids else np.zeros((0, 0))
        table = augmentation_table(problems)
        sims = similarity_rows(ids, C, list(chosen.index), dict(zip(table.prompt_id, table.source_id)))
        out = table.merge(stats, on="prompt_id", how="left").merge(sims, on="prompt_id", how="left")
        out.insert(1, "group", out["source_id"].map(chosen))
        return out

    key = {"g": dataclasses.asdict(g), "policy": str(policy), "ids": sorted(chosen.items()), "sources": list(sources),
           "augment": spec, "world": cfg.section_hash("world"), "max_new": cfg.eval.max_new_tokens}
    return cached_table("augment-gradients", key, compute)


def per_source_similarity(long: pd.DataFrame) -> pd.DataFrame:
    """Figure 10's table from `augmentation_gradients`: one row per source example (an
    original with augmentations analysed): prompt_id, group, kept, sim_train, sim_augmented
    (mean cosine with its own augmentations that have a gradient), and per kind k:
    sim_<k>, n_<k> (augmentations generated), kept_<k> (with a gradient)."""
    aug = long[long.kind != "original"]
    src = long[(long.kind == "original") & long.prompt_id.isin(aug.source_id)]
    out = src[["prompt_id", "group", "kept", "sim_train"]].set_index("prompt_id")
    kept = aug[aug.kept.astype(bool)]
    out["sim_augmented"] = kept.groupby("source_id")["sim_source"].mean()
    for k in AUGMENT_KINDS:
        if (aug.kind == k).any():
            out[f"sim_{k}"] = kept[kept.kind == k].groupby("source_id")["sim_source"].mean()
            out[f"n_{k}"] = aug[aug.kind == k].groupby("source_id").size()
            out[f"kept_{k}"] = kept[kept.kind == k].groupby("source_id").size()
            out[[f"n_{k}", f"kept_{k}"]] = out[[f"n_{k}", f"kept_{k}"]].fillna(0).astype(int)
    return out.reset_index()


def augmentation_similarity(study, group_of: pd.Series, **kwargs) -> pd.DataFrame:
    """Figure 10: `per_source_similarity(augmentation_gradients(study, group_of, **kwargs))`."""
    return per_source_similarity(augmentation_gradients(study, group_of, **kwargs))


# ----------------------------------------------------------------------------- the chapter's figures and verdicts


def pass_rates(samples: pd.DataFrame, k: int) -> dict:
    """pass@1 (mean reward over all samples) and pass@k (mean over problems of the unbiased
    estimate from each problem's samples, `evaluate.summarize`) of one evaluation.

    samples: per-sample rows prompt_id, reward (`experiment.read_eval(..., samples=True)`).
    Returns {"pass@1": float, "pass@<k>": float}.
    """
    from unlearnability.evaluation.evaluate import summarize

    return {"pass@1": samples.reward.mean(), f"pass@{k}": summarize(samples, (k,))[f"pass@{k}"].mean()}


def target_pass_rates(runs_by: dict[str, dict[int, Path]], ids: list[str], k: int) -> pd.DataFrame:
    """Figure 8's table: `pass_rates` of the examples `ids` at every checkpoint of every
    augmentation run (step 0, the base model, included), evaluated with k samples per example
    (cached by the run store). runs_by: `augmentation_runs`' {composition: {seed: run folder}}.
    One row per (composition, seed, step): composition, seed, step, pass@1, pass@<k>; no rows
    (and no columns) without runs."""
    from unlearnability.pipeline import experiment
    from unlearnability.store import runs

    rows = []
    for comp, by_seed in runs_by.items():
        for s, d in by_seed.items():
            for step in sorted({0, *runs.checkpoint_steps(d)}):
                smp = experiment.read_eval(experiment.evaluate_checkpoint(d, step, k=k, ids=ids), samples=True)
                rows.append({"composition": comp, "seed": s, "step": step, **pass_rates(smp, k)})
    return pd.DataFrame(rows)


def figure8_verdicts(f8: pd.DataFrame, finals: dict, ids: list[str], tau: float, k: int) -> dict[str, dict]:
    """Figure 8's claim per composition, "augmentation does not lift them": reproduced when the
    examples' pass@1 at the run's last checkpoint is still <= tau.

    f8: `target_pass_rates`' table; finals: the baseline's {seed: final pass@1 Series (index
    prompt_id)}, whose mean over `ids` (mean over seeds) the numbers quote beside it.
    Returns {composition: {claim, paper, testbed, numbers}}, the compositions in the order of
    their last rows in `f8` sorted by step.
    """
    base_after = np.mean([finals[s].reindex(ids).mean() for s in finals])
    last = f8.sort_values("step").groupby("composition").tail(1).set_index("composition")
    out = {}
    for comp, r in last.iterrows():
        start = f8[(f8.composition == comp) & (f8.step == 0)]["pass@1"].mean()
        out[comp] = {"claim": f"augmentation ({comp}) does not lift them (Fig 8)", "paper": "barely moves",
                     "testbed": "reproduced" if r["pass@1"] <= tau else "not",
                     "numbers": f"pass@1 {start:.3f} -> {r['pass@1']:.3f} (baseline after training: {base_after:.3f}); "
                                f"pass@{k} -> {r[f'pass@{k}']:.3f}"}
    return out


def validation_by_step(runs_by: dict[str, dict[int, Path]]) -> pd.DataFrame:
    """Held-out validation pass@1 of every augmentation run by step (mean over the validation
    problems of `history.read_validation`'s mean_reward). runs_by: {composition: {seed: run
    folder}}. Columns composition, seed, step, validation pass@1; no rows without validations."""
    from unlearnability.store import history

    return pd.DataFrame([{"composition": comp, "seed": s, "step": int(st), "validation pass@1": v}
                         for comp, by_seed in runs_by.items() for s, d in by_seed.items()
                         for st, v in history.read_validation(d).groupby("step").mean_reward.mean().items()])


def reward_by_kind(history: pd.DataFrame, kind_of: pd.Series, target_name: str) -> pd.DataFrame:
    """One augmentation run's training reward per step and kind of problem: history rows (step,
    prompt_id, mean_reward) and kind_of (prompt_id -> original | similar | subproblem,
    `augmentation_table`) -> step, series ("original <target_name>", "similar problems",
    "subproblems"), mean_reward (mean over the rows). Problems of no kind are left out."""
    names = {"original": f"original {target_name}", "similar": "similar problems", "subproblem": "subproblems"}
    h = history.assign(series=history.prompt_id.map(kind_of).map(names))
    return h.groupby(["step", "series"]).mean_reward.mean().reset_index()


def baseline_group_reward(histories: dict, group_of: pd.Series, window: int = 5) -> pd.DataFrame:
    """The baseline's easy and learnable training reward beside Figure 9's runs: per seed,
    `dynamics.group_curve` (steps pooled by `window`) of the examples of those groups.
    Columns step, series ("baseline easy", "baseline learnable"), mean_reward, composition
    ("baseline"), seed."""
    from unlearnability.analysis.dynamics import group_curve

    ref = group_of[group_of.isin(["easy", "learnable"])]
    out = pd.concat([group_curve(h, ref, window=window).assign(seed=s) for s, h in histories.items()])
    out = out.rename(columns={"group": "series", "mean": "mean_reward"}).assign(
        series=lambda d: "baseline " + d.series, composition="baseline")
    return out[["step", "series", "mean_reward", "composition", "seed"]]


def figure9_table(runs_by: dict[str, dict[int, Path]], histories: dict, group_of: pd.Series,
                  target_name: str) -> pd.DataFrame:
    """Figure 9: every augmentation run's `reward_by_kind` (its problems' kinds from its own
    training set) with columns composition and seed, then the baseline's `baseline_group_reward`.
    histories: the baseline's {seed: history}. Columns step, series, mean_reward, composition,
    seed; empty (no columns) without augmentation runs."""
    from unlearnability.data.tasks import load_task
    from unlearnability.pipeline import experiment
    from unlearnability.store import history
    from unlearnability.train.base import ensure_base_model

    rows = []
    for comp, by_seed in runs_by.items():
        for s, d in by_seed.items():
            cfg_run = experiment.load_run_config(d)
            kind = augmentation_table(load_task(cfg_run, ensure_base_model(cfg_run)).train).set_index("prompt_id")["kind"]
            rows.append(reward_by_kind(history.read_history(d), kind, target_name).assign(composition=comp, seed=s))
    if not rows:
        return pd.DataFrame()
    return pd.concat(rows + [baseline_group_reward(histories, group_of)])


def figure10_verdict(f10: pd.DataFrame, n: int = 10000, seed: int = 0) -> dict:
    """Figure 10's claim, "own augmentations are not more similar than the training set":
    reproduced unless the examples' similarity with their own augmentations is higher than
    with the training set at p < 0.05 (`stats.compare_means`, "greater", the two columns
    pooled as two groups).

    f10: `augmentation_similarity`'s rows with both sim_train and sim_augmented.
    Returns {claim, paper, testbed, numbers}.
    """
    from unlearnability.evaluation.stats import compare_means

    d = f10.sim_augmented - f10.sim_train
    _, p = compare_means(f10.sim_augmented, f10.sim_train, "greater", n=n, seed=seed)
    return {"claim": "own augmentations are not more similar than the training set (Fig 10)", "paper": "not higher",
            "testbed": "reproduced" if p >= 0.05 else "not",
            "numbers": f"{(d > 0).mean():.0%} of {len(f10)} examples above the diagonal; mean difference "
                       f"{d.mean():+.3f}, p = {p:.3f} (higher)"}
