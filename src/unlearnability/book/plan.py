"""The book's run-store artifacts as a task graph, made on both cores before the chapters execute.

Each notebook chapter calls library functions that make run-store artifacts on demand (base and
mid-trained models, GRPO and SFT runs, pass@k evaluations, gradient and other analyses). Executed
one chapter after another, one artifact is made at a time. Here every chapter *declares* the
artifacts it will ask for, for a profile and its notebook parameters, as tasks:

    Task(key, kind, label, fn, deps)   key: the artifact's folder or file relative to the run store
                                       when it is known before anything runs ("grpo/<hash>",
                                       "base/<hash>/evals/train-k4-....csv"), else a key naming how
                                       it is derived ("@gradients step 0 of groups[smoke ...]");
                                       kind: the ledger's kind; fn: calls exactly the library
                                       function the notebook calls, with the notebook's arguments

The same artifact asked for by several chapters (the §3 baseline runs of seeds 1/42/37 are used
by six) has one key, so it is one task. An artifact whose arguments depend on earlier results
(which examples are unlearnable depends on the baseline runs and their evaluations) depends on
those tasks and recomputes the cheap part (the groups, from the cached store) when it runs.

    prepare(chapters, profile, params, workers=2)   make every chapter's artifacts, then the
                                                    notebooks find them in the store (reused)
    python -m unlearnability.book.plan --profile smoke --workers 2 [--dry-run] [chapters ...]

Engine: Dask distributed, `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`; each
worker process is pinned to its own core, so the library's `set_threads()` gives torch one
thread there (and the ledger records 1). Chosen over Ray on 2 cores by measurement
(`benchmarks/plan_overhead.py`; numbers in PLAN_ENGINE_NOTES). workers=1 runs the same graph in
this process with no cluster at all (the smoke book in CI: cheaper than starting one).

Order, resumption, duplicates, failures:
  * a task starts after its dependencies finished; among ready tasks the one with the longest
    estimated path to the end goes first, on the next free worker (`_run_dask` says why the order is
    released from the client rather than left to Dask's data-locality placement);
  * an artifact already complete in the store (known key: a folder with DONE, or the file) is
    not submitted; a killed `prepare` resumes where it stopped (GRPO runs from their last
    checkpoint, everything DONE skipped);
  * one task per key, so two workers never make the same artifact at once; the store's own
    locks (`runs.locked`: base and mid-trained models, GRPO and SFT runs) hold across processes
    too (e.g. a notebook executed beside a `prepare`);
  * a task that raises stops its dependants (reported as skipped, naming the failed task); the
    other tasks finish; `PlanError` / the summary names each failed task and its key.
  * every task runs with its own cost ledger: the artifacts it made are in the summary, and a
    task whose key is an artifact path checks that the library made exactly that artifact.

Progress: one line per artifact started and finished on stderr, with the elapsed time and an ETA
for the remaining graph on the workers, from median seconds per kind measured in the store
(`ledger.saved_seconds` beside each artifact; per GRPO step and per evaluation sample) and the
tasks finished so far, or DEFAULT_RATES where the store has none.

What each chapter's plan covers is in its `_plan_<chapter>` function's docstring (`coverage()`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import sys
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PLAN_ENGINE_NOTES = """\
Measured on the 2-core machine (benchmarks/plan_overhead.py: 2 workers x 1 thread, one process each,
50 no-op tasks; medians of 3 fresh interpreters, load average ~6 from other work; in brackets a first
single run on a quieter machine, load ~0.5):
  Dask distributed LocalCluster: start 2.5 s [0.45], first torch task 3.2 s [1.1], 8 ms per chained
    task [6], 5 ms per fanned task [2], 0.40 GB resident in 4 processes [0.40], close 1.9 s [0.5]
  Ray (ray.init(num_cpus=2), remote(num_cpus=1)): start 7.1 s [2.2], first torch task 2.5 s [1.3],
    2 ms per chained task [5], 7 ms per fanned task [1], 1.05 GB resident in 10 processes [1.05],
    shutdown 1.3 s [1.3]
The book's tasks take seconds (smoke) to tens of minutes (default), so per-task latency does not
matter; start-up and memory (a quarter of Ray's, 4 processes instead of 10) decide: Dask."""

STATUS_TODO, STATUS_DONE, STATUS_CACHED, STATUS_FAILED, STATUS_SKIPPED = "todo", "done", "cached", "failed", "skipped"
TOPIC = "unlearnability-plan"

# Seconds per unit at one thread when the store has none of a kind (units: a GRPO step, an
# evaluation sample = problem x k; one artifact otherwise). "default": measured in the v3 default's
# cold build on 2 workers (2026-12-02: the first phase's 14M tokens ~33 min at 0.37 s/step, the
# anneal's 2M 4-6 min, a GRPO step ~9.3 s, pass@128 over 256 problems 1-2 min) and guesses for the
# analyses; "smoke": measured on this machine.
DEFAULT_RATES: dict[str, dict[str, float]] = {
    "default": {"base": 33 * 60, "anneal": 5 * 60, "midtrain": 6 * 60, "grpo": 10.0,
                "evaluation": 0.003,
                "sft": 5 * 60, "gradients": 10 * 60, "loglik": 8 * 60, "interference": 10 * 60,
                "augment-gradients": 15 * 60, "midtrain-gradients": 10 * 60, "forecast": 10 * 60},
    "smoke": {"base": 10.0, "anneal": 2.0, "midtrain": 1.0, "grpo": 0.3, "evaluation": 0.008, "sft": 1.0,
              "gradients": 0.5, "loglik": 0.3, "interference": 0.5, "augment-gradients": 1.0, "midtrain-gradients": 1.0,
              "forecast": 1.0},
}
UNIT = {"grpo": "step", "evaluation": "sample"}


class PlanError(RuntimeError):
    """Some tasks of a plan failed (the message names each, with its key) or the plan drifted."""


class TaskFailed(Exception):
    """A task raised: names the task and its key; carries the original traceback as text."""

    def __init__(self, key: str, label: str, message: str, tb: str = ""):
        super().__init__(f"task {label!r} [{key}] failed: {message}")
        self.key, self.label, self.message, self.tb = key, label, message, tb

    def __reduce__(self):  # picklable across worker processes
        return (TaskFailed, (self.key, self.label, self.message, self.tb))


@dataclass
class Task:
    key: str  # the artifact's store-relative path when known up front, else "@..." naming how it is derived
    kind: str  # the ledger's kind of what it makes: base, midtrain, grpo, evaluation, sft, gradients, ...
    label: str  # for people: "grpo seed 42 (§3 baseline)"
    fn: Callable[[], Any]  # picklable (a module-level function with its arguments); makes the artifact
    deps: tuple[str, ...] = ()
    chapters: list[str] = field(default_factory=list)
    path: str | None = None  # store-relative artifact path, when known before running
    units: float = 1.0  # size for the estimate (GRPO: steps; evaluation: samples)
    profile: str = ""
    within: str | None = None  # store-relative folder its artifact is made in (checked), when known
    makes: tuple[str, ...] = ()  # ledger kinds it may make (default: its kind)


class Plan:
    """Tasks by key, in the order they were declared (every dependency before its dependants)."""

    def __init__(self, profile: str):
        self.profile = profile
        self.tasks: dict[str, Task] = {}

    def add(self, task: Task, chapter: str) -> str:
        have = self.tasks.get(task.key)
        if have is None:
            missing = [d for d in task.deps if d not in self.tasks]
            if missing:
                raise ValueError(f"task {task.label!r} [{task.key}] depends on undeclared {missing}")
            task.chapters = [chapter]
            task.profile = task.profile or self.profile
            self.tasks[task.key] = task
        else:
            if have.kind != task.kind:
                raise ValueError(f"key {task.key} declared as {have.kind} and as {task.kind}")
            if chapter not in have.chapters:
                have.chapters.append(chapter)
        return task.key

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks.values())

    def order(self) -> list[Task]:
        return list(self.tasks.values())  # declaration order is topological (add checks deps exist)

    def dependants(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {k: set() for k in self.tasks}
        for t in self.tasks.values():
            for d in t.deps:
                out[d].add(t.key)
        return out


# ----------------------------------------------------------------------------- chapters' parameters


def notebook_defaults(chapter: str, root: str | Path | None = None) -> dict[str, Any]:
    """The chapter's parameters as its notebook's `parameters` cell sets them (so a plan never
    drifts from a changed default)."""
    import nbformat

    from unlearnability.book.chapters import find_root

    path = Path(root or find_root()) / "notebooks" / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{path}: no code cell tagged `parameters`")
    scope: dict[str, Any] = {}
    exec(compile(cell.source, f"{path}:parameters", "exec"), scope)  # plain assignments
    return {k: v for k, v in scope.items() if not k.startswith("__")}


def _sig(**parts) -> str:
    """A short stable signature of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _rel(path: Path) -> str:
    from unlearnability.store import runs

    return str(Path(path).resolve().relative_to(runs.home().resolve()))


def _saved_steps(steps: int, every: int) -> list[int]:
    """The checkpoint steps a GRPO run saves (grpo.py: step % checkpoint_every == 0 or the last)."""
    return sorted({s for s in range(1, steps + 1) if s % every == 0} | {steps})


def _nearest(steps: list[int], fraction: float, total: int) -> int:
    """experiment.checkpoint_near on a known checkpoint list."""
    target = fraction * total
    return min(steps, key=lambda s: (abs(s - target), s))


# ----------------------------------------------------------------------------- the calls tasks make
# Module-level functions (picklable by reference in the worker processes); each calls the library
# function its notebook calls and returns something small.


def _cfg(profile: str, overrides: dict | None):
    from unlearnability.config import load_config

    return load_config(profile, overrides)


def call_base(profile: str, overrides: dict | None) -> str:
    from unlearnability.train.base import ensure_base_model

    return str(ensure_base_model(_cfg(profile, overrides)))


def call_seed_run(profile: str, seed: int, overrides: dict | None) -> str:
    from unlearnability.pipeline.experiment import seed_runs

    return str(seed_runs(profile, [seed], overrides)[seed])


def call_variant_run(profile: str, seed: int, overrides: dict | None, changes: dict) -> str:
    from unlearnability.pipeline.experiment import variant_runs

    return str(variant_runs(profile, [seed], overrides, changes)[seed])


def call_control_run(profile: str, seed: int, overrides: dict | None) -> str:
    from unlearnability.pipeline.experiment import styles_control_runs

    return str(styles_control_runs(profile, [seed], overrides)[seed])


def call_eval_base(profile: str, overrides: dict | None, eval_changes: dict | None, split: str) -> str:
    """experiment.evaluate_base (also what evaluate_checkpoint(run, 0) does for a run without init_from)."""
    from unlearnability.pipeline.experiment import evaluate_base, with_eval

    cfg = _cfg(profile, overrides)
    return str(evaluate_base(with_eval(cfg, **eval_changes) if eval_changes else cfg, split))


def call_eval_checkpoint(profile: str, run_overrides: dict | None, step: int, k: int | None, split: str) -> str:
    from unlearnability.pipeline.experiment import evaluate_checkpoint
    from unlearnability.store import runs

    return str(evaluate_checkpoint(runs.grpo_dir(_cfg(profile, run_overrides)), step, k=k, split=split))


def run_dir_of(profile: str, run_overrides: dict | None) -> str:
    """The folder of a GRPO run known from its config (made by its own task)."""
    from unlearnability.store import runs

    return str(runs.grpo_dir(_cfg(profile, run_overrides)))


def call_eval_ids(run_fn: Callable[[], Any], step: int, ids_fn: Callable[[], list[str]], k: int | None = None,
                  split: str = "train") -> str | None:
    """evaluate_checkpoint(run, step, k, split, ids=...) where the ids (or the run) come from the groups;
    nothing when the run is not made (no examples to train it on) or the ids are empty as in the notebook."""
    from unlearnability.pipeline.experiment import evaluate_checkpoint

    run = run_fn()
    if run is None:
        return None
    return str(evaluate_checkpoint(run, step, k=k, split=split, ids=ids_fn()))


_GROUPS: dict[str, Any] = {}  # memo per process: (store, signature) -> (study, group_of)


def study_groups(profile: str, overrides: dict | None, seeds: list[int], tau: float):
    """(experiment.baseline_study, groups.classify(...)["group"]) as the chapters compute them; cheap
    once the study's runs and evaluations are in the store (its tasks are this task's dependencies)."""
    from unlearnability.pipeline import experiment
    from unlearnability.store import runs

    memo = (str(runs.home()), _sig(p=profile, o=overrides, s=list(seeds), t=tau))
    if memo not in _GROUPS:
        study = experiment.baseline_study(profile, list(seeds), overrides)
        _GROUPS[memo] = (study, study.classify(tau)["group"])
    return _GROUPS[memo]


def ids_of(profile: str, overrides: dict | None, seeds: list[int], tau: float, rule: str,
           easy_sample: int = 100) -> list[str]:
    """The examples a chapter picks from its groups: "focus" (groups.focus_ids, §4 / §5), "unlearnable"
    (§5 curriculum), "target" (unlearnable, else unlearnable + ambiguous: §4 Fig 15b, §5.3),
    "difficult" (learnable + unlearnable, else target: Fig 11)."""
    from unlearnability.evaluation import groups

    _, group_of = study_groups(profile, overrides, seeds, tau)
    unl = sorted(group_of[group_of == "unlearnable"].index)
    if rule == "focus":
        return groups.focus_ids(group_of, easy_sample)
    if rule == "unlearnable":
        return unl
    target, _ = groups.target_ids(group_of)
    if rule == "target":
        return target
    if rule == "difficult":
        return sorted(group_of[group_of.isin(["learnable", "unlearnable"])].index) or target
    raise ValueError(f"rule {rule!r}")


def call_gradients(profile: str, overrides: dict | None, seeds: list[int], tau: float, step: int,
                   gradient_overrides: dict | None = None, full: bool = False, fraction: float | None = None) -> str:
    """gradients.gradient_similarity (LoRA; writes the cosine matrix too) or gradient_matrix(full=True)."""
    from unlearnability.analysis import gradients

    study, group_of = study_groups(profile, overrides, seeds, tau)
    _check_mid(study, seeds, step, fraction)
    if full:
        gradients.gradient_matrix(study, group_of, step=step, gradient_overrides=gradient_overrides, full=True)
    else:
        gradients.gradient_similarity(study, group_of, step=step, gradient_overrides=gradient_overrides)
    return "ok"


def _check_mid(study, seeds, step: int, fraction: float | None) -> None:
    if fraction is None:
        return
    from unlearnability.pipeline.experiment import checkpoint_near

    real = checkpoint_near(study.run_dirs[seeds[0]], fraction)
    if real != step:
        raise PlanError(f"plan drift: checkpoint_near({fraction}) is step {real}, the plan declared {step}")


def call_logliks(profile: str, overrides: dict | None, seeds: list[int], tau: float, step: int) -> str:
    from unlearnability.analysis.likelihood import reference_logliks

    study, group_of = study_groups(profile, overrides, seeds, tau)
    reference_logliks(study, group_of, step=step)
    return "ok"


def call_interference(profile: str, overrides: dict | None, seeds: list[int], tau: float, step: int,
                      fraction: float | None = None) -> str:
    from unlearnability.analysis.interference import interference_at

    study, group_of = study_groups(profile, overrides, seeds, tau)
    _check_mid(study, seeds, step, fraction)
    interference_at(study, group_of, step=step)
    return "ok"


def call_sft(profile: str, overrides: dict | None, seeds: list[int], tau: float, sft_epochs: int,
             sft_overrides: dict | None) -> str:
    """§4 cell 'Figure 15a': sft.run_sft on per-group counts from the groups' sizes."""
    from unlearnability.analysis.dynamics import sft_mix
    from unlearnability.config import apply_overrides
    from unlearnability.evaluation import groups
    from unlearnability.train import sft

    study, group_of = study_groups(profile, overrides, seeds, tau)
    per_group = sft_mix(group_of.value_counts().reindex(groups.GROUPS, fill_value=0))
    cfg = apply_overrides(study.cfg, {"sft": {"per_group": per_group, "epochs": sft_epochs, **(sft_overrides or {})}})
    return str(sft.run_sft(cfg, group_of))


def call_big_run(profile: str, overrides: dict | None, seeds: list[int], tau: float, seed: int, big_group: int,
                 big_group_steps: int) -> str | None:
    """§4 'Figure 15b': the run with big groups on the unlearnable examples alone (none when there are none)."""
    from unlearnability.config import small_set_batch
    from unlearnability.pipeline.experiment import variant_runs

    study, _ = study_groups(profile, overrides, seeds, tau)
    cfg = study.cfg
    target = ids_of(profile, overrides, seeds, tau, "target")
    if not target:
        return None
    return str(variant_runs(profile, [seed], overrides, {
        "data": {"train_ids": target},
        "grpo": {"rollouts_per_prompt": big_group, **small_set_batch(len(target), cfg.grpo), "steps": big_group_steps,
                 "max_gen_batches": 1, "valid_every": 0, "checkpoint_every": big_group_steps}})[seed])


def call_curriculum(profile: str, overrides: dict | None, seeds: list[int], tau: float, curriculum_seed: int,
                    stage1_steps: int | None, stage2_steps: int | None, stage: int | None = None) -> str | None:
    """§5 'Figure 18': experiment.curriculum (both stages; `stage` 1 / 2: that stage's folder)."""
    from unlearnability.pipeline.experiment import curriculum

    _, group_of = study_groups(profile, overrides, seeds, tau)
    if not (group_of == "unlearnable").any():
        return None
    cur = curriculum(profile, overrides, group_of, curriculum_seed, stage1_steps, stage2_steps)
    return str({1: cur.stage1, 2: cur.stage2}.get(stage, cur.stage2))


def call_aug_run(profile: str, overrides: dict | None, seeds: list[int], tau: float, seed: int, composition: str,
                 n_similar: int) -> str | None:
    """§5.3: analysis.augmentation.augmentation_runs for one composition and seed."""
    from unlearnability.analysis import augmentation as aug

    unl = ids_of(profile, overrides, seeds, tau, "target")
    if not unl:
        return None
    return str(aug.augmentation_runs(profile, [seed], overrides, unl, (composition,), n_similar)[composition][seed])


def call_aug_similarity(profile: str, overrides: dict | None, seeds: list[int], tau: float, n_similar: int,
                        per_group: int) -> str:
    from unlearnability.analysis import augmentation as aug

    study, group_of = study_groups(profile, overrides, seeds, tau)
    aug.augmentation_similarity(study, group_of, n_similar=n_similar, gradient_overrides={"per_group": per_group})
    return "ok"


def call_midtrain_similarity(profile: str, overrides: dict | None, seeds: list[int], tau: float,
                             mixtures: list[str], n_reference: int) -> str:
    """§5.4 'Figure 11': analysis.midtraining.midtrain_similarity for `mixtures` (none: the base model only)."""
    from unlearnability.analysis.midtraining import midtrain_similarity

    midtrain_similarity(profile, overrides, ids_of(profile, overrides, seeds, tau, "difficult"), tuple(mixtures),
                        n_reference)
    return "ok"


def call_screen(profile: str, overrides: dict | None, seeds: list[int], tau: float, threshold: float, folds: int):
    """forecast: analysis.forecast.screen (its gradient and log-likelihood features); the ids it drops."""
    from unlearnability.analysis import forecast as fc

    study, group_of = study_groups(profile, overrides, seeds, tau)
    scr = fc.screen(study, group_of, "train", "hard", threshold, folds, 0, tau)
    return sorted(scr.table.loc[scr.table.forecast_oof >= threshold, "prompt_id"])


def call_forecast_run(profile: str, overrides: dict | None, seeds: list[int], tau: float, threshold: float,
                      folds: int, compute_seed: int) -> str | None:
    """forecast: the GRPO run without the forecast-unlearnable examples (none when none is dropped)."""
    from unlearnability.pipeline.experiment import variant_runs

    study, _ = study_groups(profile, overrides, seeds, tau)
    drop = call_screen(profile, overrides, seeds, tau, threshold, folds)
    if not drop:
        return None
    keep = [p for p in study.problems.prompt_id if p not in set(drop)]
    return str(variant_runs(profile, [compute_seed], overrides, {"data": {"train_ids": keep}})[compute_seed])


# ----------------------------------------------------------------------------- declaring a chapter


class _Chapter:
    """Declares one chapter's tasks into a shared plan."""

    def __init__(self, plan: Plan, chapter: str, profile: str, short: str):
        self.plan, self.chapter, self.profile, self.short = plan, chapter, profile, short

    def add(self, key: str, kind: str, label: str, fn: Callable, deps=(), path: str | None = None,
            units: float = 1.0, within: str | None = None, makes: tuple[str, ...] = ()) -> str:
        deps = tuple(dict.fromkeys(d for d in deps if d))
        return self.plan.add(Task(key, kind, label, fn, deps, path=path, units=units, within=within,
                                  makes=makes), self.chapter)

    # -- static artifacts: keys are their store paths

    def base(self, overrides: dict | None, why: str = "") -> str | None:
        """The base model of profile + overrides (a mid-trained one when midtrain.mixture is set)."""
        from unlearnability.config import merge_overrides
        from unlearnability.store import runs
        from unlearnability.train.midtrain import midtrain_dir

        cfg = _cfg(self.profile, overrides)
        if cfg.model.hub_id:
            return None  # a hub model: nothing to make
        plain = merge_overrides(overrides, {"midtrain": {"mixture": None}})
        key = _rel(runs.base_dir(cfg))
        label = f"base model {cfg.name}{f' ({why})' if why and not cfg.midtrain.mixture else ''}"
        if cfg.pretrain.anneal_styles is None:
            self.add(key, "base", label, functools.partial(call_base, self.profile, plain), path=key)
        else:  # two tasks: the first phase (shared by every anneal of it), then this anneal
            first = merge_overrides(plain, {"pretrain": {"anneal_styles": None, "anneal_tokens": None}})
            fkey = _rel(runs.base_dir(_cfg(self.profile, first)))
            self.add(fkey, "base", f"base model {cfg.name}, first phase",
                     functools.partial(call_base, self.profile, first), path=fkey)
            self.add(key, "anneal", f"{label}, final phase", functools.partial(call_base, self.profile, plain),
                     deps=[fkey], path=key)
        if cfg.midtrain.mixture is None:
            return key
        mkey = _rel(midtrain_dir(cfg))
        return self.add(mkey, "midtrain", f"mid-trained model ({cfg.midtrain.mixture})",
                        functools.partial(call_base, self.profile, overrides), deps=[key], path=mkey)

    def grpo(self, fn: Callable, run_overrides: dict, label: str) -> str:
        """A GRPO run known from its config (`run_overrides`: everything, the seed included)."""
        from unlearnability.store import runs

        cfg = _cfg(self.profile, run_overrides)
        key = _rel(runs.grpo_dir(cfg))
        return self.add(key, "grpo", label, fn, deps=[self.base(run_overrides)], path=key, units=cfg.grpo.steps)

    def evaluation(self, run_overrides: dict, step: int, label: str, split: str = "train", k: int | None = None,
                   eval_changes: dict | None = None, via_base: bool = False) -> str:
        """A whole-split pass@k evaluation: of the base model (step 0) or of the run's checkpoint.
        Its key names what identifies it (the policy's folder, split, the eval and data sections
        with k), not the library's file name (which carries its sampler seed and scoring version)."""
        from unlearnability.pipeline.experiment import with_eval
        from unlearnability.store import runs
        from unlearnability.train.midtrain import midtrain_dir

        cfg = _cfg(self.profile, run_overrides)
        changes = dict(eval_changes or {})
        if k is not None:
            changes["k"] = k
        ecfg = with_eval(cfg, **changes) if changes else cfg
        what = f"{split} k{ecfg.eval.k} eval+data {ecfg.section_hash('eval', 'data')}"
        if via_base or (step == 0 and not cfg.grpo.init_from):
            model = midtrain_dir(cfg) if cfg.midtrain.mixture else runs.base_dir(cfg)
            folder = f"{_rel(model)}/evals"
            fn = functools.partial(call_eval_base, self.profile, run_overrides, changes or None, split)
            deps = [self.base(run_overrides)]
        else:
            run = _rel(runs.grpo_dir(cfg))
            folder = f"{run}/evals/step_{step:04d}"
            fn = functools.partial(call_eval_checkpoint, self.profile, run_overrides, step, k, split)
            deps = [run]
        n = cfg.world.n_train if split == "train" else cfg.world.n_valid
        return self.add(f"@evaluation {folder} {what}", "evaluation", label, fn, deps=deps, within=folder,
                        units=n * ecfg.eval.k)

    def study(self, seeds: list[int], overrides: dict | None, what: str = "baseline") -> list[str]:
        """experiment.baseline_study's artifacts: one run per seed, its final evaluation, step 0's."""
        from unlearnability.config import merge_overrides

        keys = []
        for s in seeds:
            ov = merge_overrides(overrides, {"grpo": {"seed": int(s)}})
            cfg = _cfg(self.profile, ov)
            run = self.grpo(functools.partial(call_seed_run, self.profile, int(s), overrides), ov,
                            f"grpo seed {s} ({self.short} {what})")
            keys += [run, self.evaluation(ov, cfg.grpo.steps, f"evaluation seed {s} step {cfg.grpo.steps} "
                                                              f"({self.short} {what}, final)")]
        ov0 = merge_overrides(overrides, {"grpo": {"seed": int(seeds[0])}})
        keys.append(self.evaluation(ov0, 0, f"evaluation of the base model ({self.short} {what}, initial)"))
        return keys

    # -- artifacts derived from the groups: keys name the derivation

    def derived(self, kind: str, what: str, label: str, fn: Callable, deps, units: float = 1.0,
                makes: tuple[str, ...] = ()) -> str:
        return self.add(f"@{kind} {what}", kind, label, fn, deps=deps, units=units, makes=makes)


def _groups_sig(profile: str, overrides: dict | None, seeds: list[int], tau: float) -> str:
    return f"groups[{profile} seeds={list(seeds)} tau={tau} overrides={_sig(o=overrides or {})}]"


def _run_ckpts(cfg) -> list[int]:
    return _saved_steps(cfg.grpo.steps, cfg.grpo.checkpoint_every)


# ----------------------------------------------------------------------------- the chapters


def _plan_introduction(c: _Chapter, p: dict) -> None:
    """introduction: no run-store artifact (the paper's Table 1 and a try-it box)."""


def _plan_testbed(c: _Chapter, p: dict) -> None:
    """testbed: everything: the base model (both pretraining phases) and its three evaluations
    (train at eval.k; valid greedy k=1; valid k=8)."""
    ov = p["overrides"] or {}
    c.base(ov)
    c.evaluation(ov, 0, "evaluation of the base model, train (testbed)")
    c.evaluation(ov, 0, "evaluation of the base model, valid greedy (testbed)", "valid",
                 eval_changes={"k": 1, "temperature": 0.0})
    c.evaluation(ov, 0, "evaluation of the base model, valid k=8 (testbed)", "valid", eval_changes={"k": 8})


def _plan_unlearnable_examples(c: _Chapter, p: dict) -> None:
    """§3 unlearnable-examples: everything: the baseline study (one GRPO run per seed, its final
    evaluation, the base model's) and the matched control (its own base model, one run per
    ablation seed) when the chapter runs it."""
    from unlearnability.config import merge_overrides
    from unlearnability.pipeline.experiment import control_overrides, has_control

    ov, seeds = p["overrides"] or {}, list(p["seeds"])
    c.study(seeds, ov)
    cfg = _cfg(c.profile, ov)
    if p["ablation_seeds"] and has_control(cfg):
        c.base(merge_overrides(ov, control_overrides(cfg)), "worked-only control")
        for s in p["ablation_seeds"]:
            run_ov = merge_overrides(ov, control_overrides(cfg), {"grpo": {"seed": int(s)}})
            c.grpo(functools.partial(call_control_run, c.profile, int(s), ov), run_ov,
                   f"grpo seed {s} (§3 worked-only control)")


def _group_args(c: _Chapter, p: dict) -> tuple:
    return (c.profile, p["overrides"] or {}, list(p["seeds"]), p["tau"])


def _plan_gradients_and_quality(c: _Chapter, p: dict) -> None:
    """§3 gradients-and-quality: everything: the baseline study and Figure 1c's gradient analysis
    at step 0 (Figure 1d reads the base model's evaluation samples)."""
    deps = c.study(list(p["seeds"]), p["overrides"] or {})
    ga = _group_args(c, p)
    c.derived("gradients", f"step 0 of {_groups_sig(*ga)}", "gradients at step 0 (Fig 1c, 6)",
              functools.partial(call_gradients, *ga, 0), deps)


def _plan_section4(c: _Chapter, p: dict) -> None:
    """§4: everything: the baseline study; the oversampling, clip-higher and no-KL runs per variant
    seed and their final evaluations on the focus examples; SFT (Fig 15a); the big-group run on
    the unlearnable examples and its two evaluations (Fig 15b); reference log-likelihoods (Fig 3);
    interference at step 0 and at the mid checkpoint (Fig 16)."""
    from unlearnability.config import merge_overrides

    ov, seeds = p["overrides"] or {}, list(p["seeds"])
    deps = c.study(seeds, ov)
    ga = _group_args(c, p)
    gs = _groups_sig(*ga)
    focus = functools.partial(ids_of, *ga, "focus", p["easy_sample"])
    variants = [("oversampling", {"grpo": {"oversample_n": p["oversample_n"], "n_pos": p["n_pos"]}}),
                (f"clip-higher {p['eps_high']}", {"grpo": {"eps_high": p["eps_high"]}}),
                ("no KL", {"grpo": {"kl_coef": 0.0}})]
    for name, change in variants:
        for s in p["variant_seeds"]:
            run_ov = merge_overrides(ov, change, {"grpo": {"seed": int(s)}})
            run = c.grpo(functools.partial(call_variant_run, c.profile, int(s), ov, change), run_ov,
                         f"grpo seed {s} (§4 {name})")
            steps = _cfg(c.profile, run_ov).grpo.steps
            c.derived("evaluation", f"{run} step {steps} ids=focus({p['easy_sample']}) of {gs}",
                      f"evaluation seed {s} step {steps} on the focus examples (§4 {name})",
                      functools.partial(call_eval_ids, functools.partial(run_dir_of, c.profile, run_ov), steps, focus),
                      deps + [run], units=_focus_units(c, ov))
    c.derived("sft", f"epochs={p['sft_epochs']} {_sig(o=p['sft_overrides'])} of {gs}", "SFT per group (§4 Fig 15a)",
              functools.partial(call_sft, *ga, p["sft_epochs"], p["sft_overrides"]), deps)
    cfg = _cfg(c.profile, ov)
    for s in p["variant_seeds"]:
        what = f"seed {s} group {p['big_group']} steps {p['big_group_steps']} of {gs}"
        run_fn = functools.partial(call_big_run, *ga, int(s), p["big_group"], p["big_group_steps"])
        run = c.derived("grpo", what, f"grpo seed {s}, groups of {p['big_group']} on the unlearnable (§4 Fig 15b)",
                        run_fn, deps, units=p["big_group_steps"] * p["big_group"] / max(1, cfg.grpo.rollouts_per_prompt))
        c.derived("evaluation", f"{what} step {p['big_group_steps']} train",
                  f"evaluation of the big-group run seed {s} (§4 Fig 15b)",
                  functools.partial(call_eval_checkpoint_of, run_fn, p["big_group_steps"], None, "train"),
                  [run], units=0.1 * cfg.world.n_train * cfg.eval.k)
        c.derived("evaluation", f"{what} step {p['big_group_steps']} valid k{cfg.grpo.valid_k}",
                  f"validation of the big-group run seed {s} (§4 Fig 15b)",
                  functools.partial(call_eval_checkpoint_of, run_fn, p["big_group_steps"], cfg.grpo.valid_k, "valid"),
                  [run], units=cfg.world.n_valid * cfg.grpo.valid_k)
    c.derived("loglik", f"step 0 of {gs}", "reference log-likelihoods (§4 Fig 3)",
              functools.partial(call_logliks, *ga, 0), deps)
    mid = _nearest(_run_ckpts(cfg), p["mid_fraction"], cfg.grpo.steps)
    for step, frac in ((0, None), (mid, p["mid_fraction"])):
        c.derived("interference", f"step {step} of {gs}", f"interference at step {step} (§4 Fig 16)",
                  functools.partial(call_interference, *ga, step, frac), deps)


def call_eval_checkpoint_of(run_fn: Callable[[], Any], step: int, k: int | None, split: str) -> str | None:
    """evaluate_checkpoint(run, step, k, split) of a run derived from the groups (none when not made)."""
    from unlearnability.pipeline.experiment import evaluate_checkpoint

    run = run_fn()
    return None if run is None else str(evaluate_checkpoint(run, step, k=k, split=split))


def _focus_units(c: _Chapter, ov: dict | None, share: float = 0.3) -> float:
    cfg = _cfg(c.profile, ov)
    return share * cfg.world.n_train * cfg.eval.k


def _plan_section5(c: _Chapter, p: dict) -> None:
    """§5: everything but the LLM judge's scores (paper scale, `judge`): the baseline study; gradients
    at step 0 and at the mid checkpoint, full-parameter gradients (`full_check`) and gradients with
    `rollouts_alt` rollouts (Figs 6, 17, §5.1); the first seed's evaluations on the focus examples at every
    checkpoint (Fig 7, Table 2); the curriculum's two runs and their evaluations on the unlearnable
    examples at every checkpoint (Fig 18)."""
    from unlearnability.config import merge_overrides

    ov, seeds = p["overrides"] or {}, list(p["seeds"])
    deps = c.study(seeds, ov)
    ga = _group_args(c, p)
    gs = _groups_sig(*ga)
    cfg = _cfg(c.profile, ov)
    ckpts = _run_ckpts(cfg)
    mid = _nearest(ckpts, p["mid_fraction"], cfg.grpo.steps)
    for step, frac in ((0, None), (mid, p["mid_fraction"])):
        c.derived("gradients", f"step {step} of {gs}", f"gradients at step {step} (Fig 1c, 6, 17)",
                  functools.partial(call_gradients, *ga, step, None, False, frac), deps)
    if p["full_check"]:
        c.derived("gradients", f"step 0 full of {gs}", "full-parameter gradients at step 0 (§5.1)",
                  functools.partial(call_gradients, *ga, 0, None, True), deps)
    alt = {"rollouts": p["rollouts_alt"]}
    c.derived("gradients", f"step 0 {json.dumps(alt, sort_keys=True)} of {gs}",
              f"gradients at step 0 with {p['rollouts_alt']} rollouts (§5.1)",
              functools.partial(call_gradients, *ga, 0, alt), deps)
    run_ov = merge_overrides(ov, {"grpo": {"seed": int(seeds[0])}})
    run = _rel_run(c, run_ov)
    focus = functools.partial(ids_of, *ga, "focus", p["easy_sample"])
    for step in [0] + ckpts:
        c.derived("evaluation", f"{run} step {step} ids=focus({p['easy_sample']}) of {gs}",
                  f"evaluation seed {seeds[0]} step {step} on the focus examples (§5 Fig 7)",
                  functools.partial(call_eval_ids, functools.partial(run_dir_of, c.profile, run_ov), step, focus),
                  deps, units=(1.0 if step in (0, cfg.grpo.steps) else _focus_units(c, ov)))
    s1 = p["stage1_steps"] or cfg.grpo.steps
    s2 = p["stage2_steps"] or max(1, s1 // 3)
    every = max(1, min(cfg.grpo.checkpoint_every, s1, s2))
    what = f"seed {p['curriculum_seed']} steps {p['stage1_steps']}/{p['stage2_steps']} of {gs}"
    cur = c.derived("grpo", f"curriculum {what}", "grpo curriculum, both stages (§5 Fig 18)",
                    functools.partial(call_curriculum, *ga, p["curriculum_seed"], p["stage1_steps"], p["stage2_steps"]),
                    deps, units=s1 + s2)
    unl = functools.partial(ids_of, *ga, "unlearnable")
    for stage, steps in ((1, [0] + _saved_steps(s1, every)), (2, _saved_steps(s2, every))):
        stage_fn = functools.partial(call_curriculum, *ga, p["curriculum_seed"], p["stage1_steps"],
                                     p["stage2_steps"], stage)
        for step in steps:
            c.derived("evaluation", f"curriculum stage {stage} step {step} ids=unlearnable {what}",
                      f"evaluation of curriculum stage {stage} step {step} (§5 Fig 18)",
                      functools.partial(call_eval_ids, stage_fn, step, unl), [cur],
                      units=0.1 * cfg.world.n_train * cfg.eval.k)


def _rel_run(c: _Chapter, run_ov: dict) -> str:
    from unlearnability.store import runs

    return _rel(runs.grpo_dir(_cfg(c.profile, run_ov)))


def _plan_augmentation_and_midtraining(c: _Chapter, p: dict) -> None:
    """§5.3-5.4: everything: the baseline study; one augmentation run per composition and seed and
    its evaluations on the unlearnable examples at every checkpoint (Figs 8, 9); Figure 10's
    gradients; the mid-trained models and Figure 11's gradients at the base and each mixture;
    the baseline study of the first mixture's mid-trained model (`midtrain_seeds`)."""
    from unlearnability.config import merge_overrides

    ov, seeds = p["overrides"] or {}, list(p["seeds"])
    deps = c.study(seeds, ov)
    ga = _group_args(c, p)
    gs = _groups_sig(*ga)
    cfg = _cfg(c.profile, ov)
    target = functools.partial(ids_of, *ga, "target")
    for comp in p["compositions"]:
        for s in p["aug_seeds"]:
            what = f"augmentation {comp} seed {s} n_similar {p['n_similar']} of {gs}"
            run_fn = functools.partial(call_aug_run, *ga, int(s), comp, p["n_similar"])
            run = c.derived("grpo", what, f"grpo seed {s}, {comp} augmentation (§5.3 Fig 8)", run_fn, deps,
                            units=cfg.grpo.steps)
            for step in [0] + _run_ckpts(cfg):
                c.derived("evaluation", f"{what} step {step} k{p['eval_k']} ids=target",
                          f"evaluation of the {comp} run seed {s} step {step} (§5.3 Fig 8)",
                          functools.partial(call_eval_ids, run_fn, step, target, p["eval_k"]), [run],
                          units=0.1 * cfg.world.n_train * p["eval_k"])
    c.derived("augment-gradients", f"n_similar {p['n_similar']} per_group {p['fig10_per_group']} of {gs}",
              "gradients of the augmentations (§5.3 Fig 10)",
              functools.partial(call_aug_similarity, *ga, p["n_similar"], p["fig10_per_group"]), deps)
    fig11 = c.derived("midtrain-gradients", f"base n_reference {p['n_reference']} of {gs}",
                      "gradients with the reference set, base model (§5.4 Fig 11)",
                      functools.partial(call_midtrain_similarity, *ga, [], p["n_reference"]), deps)
    for mix in p["mixtures"]:
        model = c.base(merge_overrides(ov, {"midtrain": {"mixture": mix}}))
        c.derived("midtrain-gradients", f"{mix} n_reference {p['n_reference']} of {gs}",
                  f"gradients with the reference set, mid-trained {mix} (§5.4 Fig 11)",
                  functools.partial(call_midtrain_similarity, *ga, [mix], p["n_reference"]), deps + [fig11, model])
    if p["midtrain_seeds"]:
        mo = merge_overrides(ov, {"midtrain": {"mixture": p["mixtures"][0]}})
        c.study(list(p["midtrain_seeds"]), mo, f"mid-trained {p['mixtures'][0]}")


def _plan_forecast(c: _Chapter, p: dict) -> None:
    """forecast: everything: the baseline study; the screen's gradient and log-likelihood features;
    the compute experiment's run without the forecast-unlearnable examples (and the baseline run of
    `compute_seed` when it is not one of `seeds`)."""
    ov, seeds = p["overrides"] or {}, list(p["seeds"])
    deps = c.study(seeds, ov)
    ga = _group_args(c, p)
    gs = _groups_sig(*ga)
    screen = c.derived("forecast", f"screen threshold {p['threshold']} folds {p['folds']} of {gs}",
                       "forecast features: gradients and log-likelihoods (forecast)",
                       functools.partial(call_screen, *ga, p["threshold"], p["folds"]), deps,
                       makes=("gradients", "forecast-loglik"))
    s = p["compute_seed"]
    if s is None:
        return
    if s not in seeds:  # the notebook's experiment.seed_runs(profile, [compute_seed], overrides)
        from unlearnability.config import merge_overrides

        c.grpo(functools.partial(call_seed_run, c.profile, int(s), ov), merge_overrides(ov, {"grpo": {"seed": int(s)}}),
               f"grpo seed {s} (forecast compute seed)")
    cfg = _cfg(c.profile, ov)
    c.derived("grpo", f"forecast run seed {s} threshold {p['threshold']} folds {p['folds']} of {gs}",
              f"grpo seed {s} without the forecast-unlearnable (forecast)",
              functools.partial(call_forecast_run, *ga, p["threshold"], p["folds"], int(s)), [screen],
              units=cfg.grpo.steps)


CHAPTERS: dict[str, Callable[[_Chapter, dict], None]] = {
    "introduction": _plan_introduction,
    "testbed": _plan_testbed,
    "unlearnable-examples": _plan_unlearnable_examples,
    "section4": _plan_section4,
    "gradients-and-quality": _plan_gradients_and_quality,
    "section5": _plan_section5,
    "augmentation-and-midtraining": _plan_augmentation_and_midtraining,
    "forecast": _plan_forecast,
}
SHORT = {"testbed": "testbed", "unlearnable-examples": "§3", "section4": "§4", "gradients-and-quality": "§3",
         "section5": "§5", "augmentation-and-midtraining": "§5.3", "forecast": "forecast"}


def coverage() -> dict[str, str]:
    """What each chapter's plan makes (the rest, cheap, is left to the notebook)."""
    return {name: " ".join((fn.__doc__ or "").split()) for name, fn in CHAPTERS.items()}


def notebook_chapters(root: str | Path | None = None) -> list[str]:
    from unlearnability.book.chapters import list_chapters

    return [c.name for c in list_chapters(root) if c.kind == "notebook"]


def build(chapters: list[str] | None, profile: str, params: dict | None = None,
          root: str | Path | None = None) -> Plan:
    """The plan of `chapters` (default: every notebook chapter of the book) for `profile` and the
    notebook parameters `params` (given to every chapter, as `unlearn book -p` does; a chapter
    without a parameter keeps its notebook's default)."""
    from unlearnability.book.chapters import find_root

    root = Path(root) if root else find_root()
    chapters = list(chapters) if chapters else notebook_chapters(root)
    plan = Plan(profile)
    for name in chapters:
        if name not in CHAPTERS:
            print(f"[plan] {name}: no declared plan; its notebook makes its own artifacts", file=sys.stderr)
            continue
        p = {**notebook_defaults(name, root), **(params or {}), "profile": profile}
        CHAPTERS[name](_Chapter(plan, name, profile, SHORT.get(name, name)), p)
    return plan


# ----------------------------------------------------------------------------- estimates


def is_made(task: Task) -> bool:
    """Whether a task with a known artifact path is complete in the store."""
    from unlearnability.store import runs

    if task.path is None:
        return False
    path = runs.home() / task.path
    return runs.is_done(path) if task.kind in ("base", "anneal", "midtrain", "grpo", "sft") else path.is_file()


def _owner_profile(folder: Path) -> str | None:
    import yaml

    try:
        return (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("name")
    except (OSError, ValueError, yaml.YAMLError):
        return None


def store_samples(store: Path | None = None) -> list[tuple[str, str | None, float]]:
    """(kind, profile or None, seconds per unit) of every timed artifact in the store."""
    import pandas as pd

    from unlearnability.store import ledger, runs

    store = Path(store) if store else runs.home()
    out: list[tuple[str, str | None, float]] = []

    def seconds(kind: str, path: Path) -> float | None:
        saved = ledger.saved_seconds(path)
        return saved[0] if saved else ledger.legacy_seconds(kind, path)

    for kind in ("base", "midtrain", "grpo", "sft"):
        for folder in sorted((store / kind).glob("*/")):
            if not (folder / "DONE").exists():
                continue
            made_as = "anneal" if kind == "base" and (folder / "anneal_seconds.txt").exists() else kind
            sec = seconds(made_as, folder)
            if sec is None:
                continue
            units = 1.0
            if kind == "grpo":
                try:
                    units = max(1, len(pd.read_csv(folder / "train_log.csv")))
                except (OSError, ValueError, pd.errors.EmptyDataError):
                    continue
            out.append((made_as, _owner_profile(folder) if kind != "sft" else None, sec / units))
    for f in sorted(store.glob("**/evals/**/*.csv.seconds")):
        table = f.with_name(f.name[: -len(".seconds")])
        sec = ledger.saved_seconds(table)
        if sec is None:
            continue
        try:
            n = float(pd.read_csv(table, usecols=["n"])["n"].sum())
        except (OSError, ValueError, KeyError):
            continue
        if n <= 0 or "-ids" in table.name:  # a subset: often cut from a whole evaluation, no sampling
            continue
        owner = next((p for p in table.parents if p.parent.name in ("base", "grpo", "midtrain")), None)
        out.append(("evaluation", _owner_profile(owner) if owner else None, sec[0] / n))
    for f in sorted((store / "analysis").glob("*")):
        name = f.name
        if f.is_dir():
            kind = name.rsplit("-", 1)[0]
            sec = ledger.saved_seconds(f)
        elif name.endswith(".csv"):
            kind = name[: -len(".csv")].rsplit("-", 1)[0]
            sec = ledger.saved_seconds(f)
        else:
            continue
        if sec is not None:
            out.append(({"forecast-loglik": "forecast"}.get(kind, kind), None, sec[0]))
    return out


class Estimator:
    """Seconds per task from the store's medians per kind (per GRPO step, per evaluation sample),
    the tasks finished in this run, and DEFAULT_RATES where there are none."""

    def __init__(self, profile: str, store: Path | None = None):
        self.profile = profile
        samples = store_samples(store)
        profiles = {p for _, p, _ in samples if p}
        single = profiles <= {profile}  # analyses carry no profile: trusted only in a one-profile store
        self.samples: dict[str, list[float]] = {}
        for kind, prof, rate in samples:
            if prof == profile or (prof is None and single):
                self.samples.setdefault(kind, []).append(rate)
        name = Path(profile).stem if profile not in DEFAULT_RATES else profile
        self.defaults = DEFAULT_RATES.get(name, DEFAULT_RATES["default"])

    def rate(self, kind: str) -> float:
        if self.samples.get(kind):
            return statistics.median(self.samples[kind])
        return self.defaults.get(kind, 60.0)

    def seconds(self, task: Task) -> float:
        return self.rate(task.kind) * task.units

    def observe(self, task: Task, seconds: float) -> None:
        if task.units > 0 and seconds > 0:
            self.samples.setdefault(task.kind, []).append(seconds / task.units)


def simulate(tasks: list[Task], est: dict[str, float], workers: int,
             running: dict[str, float] | None = None) -> tuple[float, float]:
    """(makespan on `workers` by longest-path-first list scheduling, critical path) in seconds, of
    `tasks` (dependencies outside them count as done), with `running` {key: seconds left} occupying
    workers from the start."""
    keys = {t.key for t in tasks}
    deps = {t.key: [d for d in t.deps if d in keys] for t in tasks}
    kids: dict[str, list[str]] = {k: [] for k in keys}
    for k, ds in deps.items():
        for d in ds:
            kids[d].append(k)
    level: dict[str, float] = {}
    for t in reversed(tasks):  # tasks are in topological order
        level[t.key] = est[t.key] + max((level[c] for c in kids[t.key]), default=0.0)
    critical = max(level.values(), default=0.0)
    running = dict(running or {})
    waiting = {k: len(ds) for k, ds in deps.items()}
    ready = [k for k, n in waiting.items() if n == 0]
    busy: list[tuple[float, str | None]] = [(left, None) for left in running.values()]
    now, done = 0.0, 0
    while ready or busy:
        ready.sort(key=lambda k: -level[k])
        while ready and len(busy) < max(1, workers):
            k = ready.pop(0)
            busy.append((now + est[k], k))
        busy.sort(key=lambda x: x[0])
        now, k = busy.pop(0)
        if k is not None:
            done += 1
            for c in kids[k]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)
    return max(now, max(running.values(), default=0.0)), max(critical, max(running.values(), default=0.0))


# ----------------------------------------------------------------------------- running one task


_PINNED: dict[str, Any] = {}


def _pin_to_one_core(index: int) -> None:
    """Pin this worker process (every thread) to one core, so `policy.model.set_threads()` gives torch
    one thread and two workers never share a core."""
    if "cpus" not in _PINNED:
        _PINNED["cpus"] = sorted(os.sched_getaffinity(0))
    cpus = _PINNED["cpus"]
    core = {cpus[index % len(cpus)]}
    if _PINNED.get("core") == core:
        return
    _set_affinity(core)
    _PINNED["core"] = core
    if "torch" in sys.modules:  # (not imported for it: the library's set_threads() reads the affinity)
        sys.modules["torch"].set_num_threads(1)


def _set_affinity(cpus: set[int]) -> None:
    """Every thread of this process on `cpus` (threads started later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass
    os.sched_setaffinity(0, cpus)


@contextmanager
def _one_core():
    """This process on one core (one torch thread) while the block runs; restored afterwards."""
    import torch  # (every task needs it; its default thread count is not the affinity's: set it here)

    before = set(os.sched_getaffinity(0))
    torch_threads = torch.get_num_threads()
    _set_affinity({min(before)})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        _set_affinity(before)
        torch.set_num_threads(torch_threads)


def execute(task: Task, *_deps: Any) -> dict:
    """Run one task with its own cost ledger; returns {key, seconds, made: [(kind, path, seconds)],
    result}. Raises TaskFailed (naming the task and its key) if the call raises, or if the task
    names its artifact and the library made another one or none."""
    from unlearnability.store import ledger

    worker = None
    if "distributed" in sys.modules:  # on a Dask worker (the serial path never imports it)
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:
            pass
    if worker is not None and os.environ.get("UNLEARN_PLAN_PIN") == "1":
        _pin_to_one_core(int(worker.name) if str(worker.name).isdigit() else 0)
        try:
            worker.log_event(TOPIC, {"key": task.key, "event": "start", "t": time.time()})
        except Exception:
            pass
    fd, tmp = _tempfile()
    previous = os.environ.get(ledger.ENV)
    os.environ[ledger.ENV] = tmp
    start = time.perf_counter()
    try:
        result = task.fn()
    except BaseException as err:  # noqa: BLE001 - reported with the task's name, then re-raised
        if isinstance(err, KeyboardInterrupt):
            raise
        raise TaskFailed(task.key, task.label, f"{type(err).__name__}: {err}", traceback.format_exc()) from None
    finally:
        if previous is None:
            os.environ.pop(ledger.ENV, None)
        else:
            os.environ[ledger.ENV] = previous
        took = time.perf_counter() - start
        lines = ledger.read(Path(tmp))
        os.close(fd)
        os.unlink(tmp)
    made = [(r.kind, r.path, None if r.seconds != r.seconds else float(r.seconds))
            for r in lines.itertuples() if int(r.made) == 1]
    drift = [f"{m[0]} {m[1]}" for m in made if m[0] not in (task.makes or (task.kind,))
             or (task.path is not None and m[1] != task.path)
             or (task.within is not None and not m[1].startswith(task.within + "/"))]
    if drift or (task.path is not None and not made and not is_made(task)):
        raise TaskFailed(task.key, task.label, f"plan drift: the call made {drift or 'nothing'}, not what the "
                                               f"plan declared ({task.path or task.within or task.kind}): a missing "
                                               f"dependency or a changed library call")
    return {"key": task.key, "seconds": took, "made": made, "result": _small(result)}


def _small(result: Any) -> Any:
    return result if isinstance(result, (str, type(None), int, float)) or (
        isinstance(result, list) and len(result) < 10_000) else repr(result)[:200]


def _tempfile() -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="plan-ledger-", suffix=".tsv")


# ----------------------------------------------------------------------------- running the graph


@dataclass
class Summary:
    """What `prepare` / `run` did."""

    profile: str
    chapters: list[str]
    workers: int
    engine: str  # "serial" (no cluster) or "dask"
    wall_seconds: float = 0.0
    engine_seconds: float = 0.0  # cluster start + close
    tasks: list[dict] = field(default_factory=list)  # key, kind, label, chapters, status, seconds, made, error

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.tasks if t["status"] == STATUS_FAILED]

    @property
    def skipped(self) -> list[dict]:
        return [t for t in self.tasks if t["status"] == STATUS_SKIPPED]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def made(self) -> list[tuple[str, str, float | None]]:
        return [m for t in self.tasks for m in t.get("made", [])]

    def errors(self) -> str:
        lines = [f"task {t['label']!r} [{t['key']}] failed: {t['error']}" for t in self.failed]
        lines += [f"task {t['label']!r} [{t['key']}] skipped: {t['error']}" for t in self.skipped]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        if not self.ok:
            raise PlanError(self.errors())

    def __str__(self) -> str:
        counts = {s: sum(t["status"] == s for t in self.tasks) for s in
                  (STATUS_DONE, STATUS_CACHED, STATUS_FAILED, STATUS_SKIPPED)}
        return (f"plan {self.profile} ({len(self.chapters)} chapters, {len(self.tasks)} tasks): "
                f"{counts[STATUS_DONE]} run ({len(self.made())} artifacts made), {counts[STATUS_CACHED]} already in the store, "
                f"{counts[STATUS_FAILED]} failed, {counts[STATUS_SKIPPED]} skipped; {self.workers} worker(s) "
                f"({self.engine}), {_dur(self.wall_seconds)} wall, engine {self.engine_seconds:.1f}s")


def _dur(seconds: float, fine: bool = False) -> str:
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if fine else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class _Progress:
    """The lines on stderr, and the ETA of the remaining graph."""

    def __init__(self, plan: Plan, todo: list[Task], workers: int, estimator: Estimator,
                 out: Callable[[str], None] | None):
        self.plan, self.todo, self.workers, self.est = plan, todo, workers, estimator
        self.out = out
        self.start = time.perf_counter()
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.n = len(todo)
        self.lock = threading.Lock()

    def _say(self, line: str) -> None:
        if self.out:
            self.out(line)

    def eta(self) -> float:
        now = time.perf_counter()
        left = [t for t in self.todo if t.key not in self.finished and t.key not in self.started]
        est = {t.key: self.est.seconds(t) for t in left}
        running = {k: max(1.0, self.est.seconds(self.plan.tasks[k]) - (now - t0))
                   for k, t0 in self.started.items() if k not in self.finished}
        return simulate(left, est, self.workers, running)[0]

    def started_task(self, key: str, when: float | None = None) -> None:
        with self.lock:
            if key in self.started or key in self.finished:
                return
            self.started[key] = time.perf_counter() if when is None else when
            t = self.plan.tasks[key]
            self._say(f"[plan {len(self.started)}/{self.n}] {t.label} started (est {_dur(self.est.seconds(t), True)})")

    def finished_task(self, key: str, status: str, seconds: float | None, made: int = 1) -> None:
        with self.lock:
            t = self.plan.tasks[key]
            self.finished.add(key)
            if status == STATUS_DONE and seconds is not None and made:
                self.est.observe(t, seconds)
            elapsed = time.perf_counter() - self.start
            verb = {STATUS_DONE: f"done in {_dur(seconds or 0, True)}" + ("" if made else
                                                                          " (nothing made: in the store or not needed)"),
                    STATUS_FAILED: "FAILED", STATUS_SKIPPED: "skipped (a dependency failed)"}[status]
            self._say(f"[plan {len(self.finished)}/{self.n}] {t.label} {verb}; elapsed {_dur(elapsed)}, "
                      f"ETA {_dur(self.eta())}")


def run(plan: Plan, workers: int = 2, progress: bool | Callable[[str], None] = True,
        chapters: list[str] | None = None, threads: int | None = 1) -> Summary:
    """Make every task of `plan` not already in the store, `workers` at a time (1: in this process,
    no cluster); returns the Summary (failures are in it; see Summary.raise_for_failures).
    threads=1: each task on one core with one torch thread (a worker pinned to its own core; the
    serial path pins this process while it runs, then restores it); None: the library's own choice
    (`policy.model.set_threads`: every core the process may use)."""
    out = (lambda s: print(s, file=sys.stderr, flush=True)) if progress is True else (progress or None)
    summary = Summary(plan.profile, list(chapters or sorted({c for t in plan for c in t.chapters})), workers,
                      "serial" if workers <= 1 else "dask")
    rows = {t.key: {"key": t.key, "kind": t.kind, "label": t.label, "chapters": list(t.chapters),
                    "status": STATUS_TODO, "seconds": None, "made": [], "error": ""} for t in plan}
    todo = []
    for t in plan.order():
        if is_made(t):
            rows[t.key]["status"] = STATUS_CACHED
        else:
            todo.append(t)
    estimator = Estimator(plan.profile)
    prog = _Progress(plan, todo, max(1, workers), estimator, out)
    if out:
        left = simulate(todo, {t.key: estimator.seconds(t) for t in todo}, max(1, workers))[0]
        out(f"[plan] {len(todo)} of {len(plan)} tasks to make ({len(plan) - len(todo)} already in the store), "
            f"{max(1, workers)} worker(s); estimated {_dur(left)}")
    start = time.perf_counter()
    if workers <= 1:
        with _one_core() if threads == 1 else nullcontext():
            _run_serial(plan, todo, rows, prog)
    else:
        summary.engine_seconds = _run_dask(plan, todo, rows, prog, workers, threads == 1)
    summary.wall_seconds = time.perf_counter() - start
    summary.tasks = [rows[t.key] for t in plan.order()]
    if out:
        out(f"[plan] {summary}")
        for line in summary.errors().splitlines():
            out(f"[plan] {line}")
    return summary


def _record(rows: dict, prog: _Progress, key: str, status: str, res: dict | None = None, error: str = "") -> None:
    row = rows[key]
    row["status"] = status
    if res is not None:
        row["seconds"], row["made"] = res["seconds"], res["made"]
    row["error"] = error
    prog.finished_task(key, status, row["seconds"], len(row["made"]))


def _run_serial(plan: Plan, todo: list[Task], rows: dict, prog: _Progress) -> None:
    failed: dict[str, str] = {}  # key -> the failed task it comes from
    for t in todo:  # topological
        bad = next((failed[d] for d in t.deps if d in failed), None)
        if bad is not None:
            failed[t.key] = bad
            _record(rows, prog, t.key, STATUS_SKIPPED, error=f"depends on {bad!r}, which failed")
            continue
        prog.started_task(t.key)
        try:
            res = execute(t)
        except TaskFailed as err:
            failed[t.key] = t.key
            _record(rows, prog, t.key, STATUS_FAILED, error=err.message + _tb_tail(err.tb))
            continue
        _record(rows, prog, t.key, STATUS_DONE, res)


def _tb_tail(tb: str, lines: int = 4) -> str:
    tail = [s for s in tb.strip().splitlines() if s.strip()][-lines - 1:-1]
    return ("\n    " + "\n    ".join(s.strip() for s in tail)) if tail else ""


def _worker_env(pin: bool = True) -> dict[str, str]:
    from unlearnability.store import ledger

    env = {"TQDM_DISABLE": "1", "UNLEARN_PLAN_PIN": "1" if pin else "0"}
    if pin:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in ("UNLEARN_HOME", "PYTHONPATH"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.pop(ledger.ENV, None)
    return env


# Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536 (its default pre-spawn-environ, to
# hand freed memory back to the OS). That makes glibc give back and fault in again the memory of torch's
# many short-lived tensors: the default base model's pretraining step ran 1.56x slower with it (50 steps
# on one free core, one thread: 28.4 s with the variable, 18.2 s without; the same loss numbers). The
# workers here hold one artifact's tensors at a time, so the plan unsets it.
NO_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@contextmanager
def dask_cluster(workers: int, pin: bool = True):
    """A LocalCluster of `workers` single-threaded processes and its Client; yields (client, start seconds)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with dask.config.set({NO_MALLOC_TRIM: None}):  # unset, as in any other process: see NO_MALLOC_TRIM
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               env=_worker_env(pin), silence_logs=logging.ERROR, memory_limit=0)
    client = Client(cluster)
    started = time.perf_counter() - t0
    try:
        yield client, started
    finally:
        client.close()
        cluster.close()


def _levels(todo: list[Task], est: dict[str, float]) -> tuple[dict[str, float], dict[str, list[str]]]:
    """(longest estimated path from each task to the end, its dependants), over `todo`."""
    keys = {t.key for t in todo}
    kids: dict[str, list[str]] = {k: [] for k in keys}
    for t in todo:
        for d in t.deps:
            if d in keys:
                kids[d].append(t.key)
    level: dict[str, float] = {}
    for t in reversed(todo):  # topological order, backwards
        level[t.key] = est[t.key] + max((level[c] for c in kids[t.key]), default=0.0)
    return level, kids


def _skip_dependants(rows: dict, prog: _Progress, kids: dict[str, list[str]], failed: str,
                     dead: set[str]) -> set[str]:
    """Record every dependant of `failed`, transitively, as skipped (those not in `dead` yet);
    returns the keys newly skipped."""
    skipped: set[str] = set()
    stack = list(kids[failed])
    while stack:
        c = stack.pop()
        if c not in dead and c not in skipped:
            skipped.add(c)
            _record(rows, prog, c, STATUS_SKIPPED, error=f"depends on {failed!r}, which failed")
            stack += kids[c]
    return skipped


def _run_dask(plan: Plan, todo: list[Task], rows: dict, prog: _Progress, workers: int, pin: bool = True) -> float:
    """Dask runs the tasks (worker processes, one core each, errors and lost workers reported); the
    graph's order is released from here: a task is submitted when its dependencies are done and a
    worker is free, longest path first, to that worker. (Submitted all at once with their futures as
    arguments, Dask places every dependant on the worker that holds its dependency's result, by its
    data-locality rule: with tiny results and long tasks that runs the dependants of a task one after
    another on one worker while the other idles, as tests/test_plan.py's diamond showed.)"""
    from distributed import wait

    level, kids = _levels(todo, {t.key: prog.est.seconds(t) for t in todo})
    keys = {t.key for t in todo}
    waiting = {t.key: {d for d in t.deps if d in keys} for t in todo}
    ready = [t.key for t in todo if not waiting[t.key]]
    dead: set[str] = set()
    dkey = {t.key: f"plan-{hashlib.sha1(t.key.encode()).hexdigest()[:16]}" for t in todo}
    with dask_cluster(workers, pin) as (client, started):
        offset = time.time() - time.perf_counter()

        def on_event(event):
            msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
            if isinstance(msg, dict) and msg.get("event") == "start" and msg.get("key") in plan.tasks:
                prog.started_task(msg["key"], msg.get("t", time.time()) - offset)

        try:
            client.subscribe_topic(TOPIC, on_event)
        except Exception:  # an older distributed: start lines come when the task is submitted
            pass
        free = sorted(client.scheduler_info()["workers"])
        running: dict[Any, tuple[str, str]] = {}  # future -> (key, worker address)
        while ready or running:
            ready.sort(key=lambda k: -level[k])
            while ready and free:
                key, addr = ready.pop(0), free.pop(0)
                fut = client.submit(execute, plan.tasks[key], key=dkey[key], workers=[addr],
                                    allow_other_workers=True, pure=False)
                running[fut] = (key, addr)
            done, _ = wait(list(running), return_when="FIRST_COMPLETED")
            for fut in done:
                key, addr = running.pop(fut)
                free.append(addr)
                prog.started_task(key)  # (if its start event was not seen)
                if fut.status == "finished":
                    _record(rows, prog, key, STATUS_DONE, fut.result())
                    for c in kids[key]:
                        waiting[c].discard(key)
                        if not waiting[c] and c not in dead:
                            ready.append(c)
                else:
                    err = fut.exception()
                    msg = err.message + _tb_tail(err.tb) if isinstance(err, TaskFailed) else f"{type(err).__name__}: {err}"
                    _record(rows, prog, key, STATUS_FAILED, error=msg)
                    dead |= _skip_dependants(rows, prog, kids, key, dead)
                fut.release()
        close_start = time.perf_counter()
    return started + time.perf_counter() - close_start


# ----------------------------------------------------------------------------- entry points


def prepare(chapter_names: list[str] | None, profile: str, params: dict | None = None, workers: int = 2,
            store: str | Path | None = None, progress: bool | Callable[[str], None] = True,
            root: str | Path | None = None, threads: int | None = 1) -> Summary:
    """Make the run-store artifacts of `chapter_names` (None: every notebook chapter) for `profile`
    and the notebook parameters `params` before the chapters execute, `workers` at a time
    (1: serially in this process, no cluster). `store`: the run store (default $UNLEARN_HOME / runs/).
    threads: torch threads per task (1: one core each, measured fastest here; None: the library's).
    Returns the Summary; a failed task does not raise (its chapter will fail with the same error when
    executed): call `summary.raise_for_failures()` to stop instead.

    workers > 1 starts worker processes with multiprocessing's spawn: a script calling this at its top
    level needs the `if __name__ == "__main__":` guard (the CLI, the book runner and notebooks are fine)."""
    with _store(store):
        plan = build(chapter_names, profile, params, root)
        return run(plan, workers, progress, chapters=list(chapter_names or notebook_chapters(root)),
                   threads=threads)


@contextmanager
def _store(store: str | Path | None):
    if store is None:
        yield
        return
    old = os.environ.get("UNLEARN_HOME")
    os.environ["UNLEARN_HOME"] = str(Path(store).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("UNLEARN_HOME", None)
        else:
            os.environ["UNLEARN_HOME"] = old


def describe(plan: Plan, workers: int = 2) -> str:
    """The dry-run text: every task with its dependencies and estimated minutes; totals, critical
    path and the makespan on `workers`."""
    est = Estimator(plan.profile)
    order = plan.order()
    index = {t.key: i + 1 for i, t in enumerate(order)}
    todo = [t for t in order if not is_made(t)]
    todo_keys = {t.key for t in todo}
    secs = {t.key: est.seconds(t) for t in order}
    lines = [f"plan for profile {plan.profile!r}: {len(order)} tasks ({len(order) - len(todo)} already in the store)",
             f"{'#':>4} {'kind':18s} {'est min':>8s}  {'deps':14s} task"]
    for t in order:
        deps = ",".join(str(index[d]) for d in t.deps) or "-"
        state = " [in store]" if t.key not in todo_keys else ""
        lines.append(f"{index[t.key]:4d} {t.kind:18s} {secs[t.key] / 60:8.1f}  {deps:14s} {t.label}"
                     f" <{', '.join(t.chapters)}>{state}")
    by_kind: dict[str, list[float]] = {}
    for t in todo:
        by_kind.setdefault(t.kind, []).append(secs[t.key])
    lines.append("")
    lines.append("by kind (to make): " + "; ".join(
        f"{k} {len(v)} x {statistics.median(v) / 60:.1f} min = {sum(v) / 60:.0f} min"
        for k, v in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))))
    rates = "; ".join(f"{k} {est.rate(k):.3g} s/{UNIT.get(k, 'artifact')}"
                      f"{'' if est.samples.get(k) else ' (default)'}" for k in sorted(by_kind))
    lines.append(f"rates at one thread: {rates}")
    total = sum(secs[t.key] for t in todo)
    span, critical = simulate(todo, {t.key: secs[t.key] for t in todo}, max(1, workers))
    lines.append(f"estimated total {total / 60:.0f} min of work ({_dur(total)} on 1 worker); critical path "
                 f"{_dur(critical)}; on {workers} workers about {_dur(span)}")
    path = critical_path(todo, secs)
    if path:
        lines.append("critical path: " + " -> ".join(f"#{index[k]} {plan.tasks[k].label} ({secs[k] / 60:.0f} min)"
                                                      for k in path))
    return "\n".join(lines)


def critical_path(tasks: list[Task], secs: dict[str, float]) -> list[str]:
    keys = {t.key for t in tasks}
    best: dict[str, tuple[float, list[str]]] = {}
    for t in tasks:  # topological
        prev = max((best[d] for d in t.deps if d in keys), key=lambda x: x[0], default=(0.0, []))
        best[t.key] = (prev[0] + secs[t.key], prev[1] + [t.key])
    return max(best.values(), key=lambda x: x[0], default=(0.0, []))[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m unlearnability.book.plan",
        description="Make the run-store artifacts (base models, GRPO runs, evaluations, analyses) that the book's "
                    "chapters use, as one task graph on several worker processes (Dask), before the chapters "
                    "execute: each chapter then finds its artifacts in the store. With --dry-run, print the plan: "
                    "every task, its dependencies and estimated minutes, the total and the critical path.",
        epilog="examples:\n  python -m unlearnability.book.plan --profile smoke --workers 2\n"
               "  python -m unlearnability.book.plan --profile default --dry-run\n"
               "  python -m unlearnability.book.plan --profile default unlearnable-examples section4 -p seeds=[1,42]",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", help="chapter names as in _toc.yml (default: every notebook chapter)")
    ap.add_argument("--profile", default="default", help="preset: default, smoke, another preset or a .yaml file "
                                                         "(default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes, one core each; 1 = no cluster, in "
                                                           "this process (default: %(default)s)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a notebook parameter for every chapter (YAML value; a dotted key is a config override), "
                         "as for `unlearn book`")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per task: 1 = one core each (default, "
                                                           "measured fastest on the testbed); 0 = the library's "
                                                           "own choice (every core)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its estimate; make nothing")
    ap.add_argument("--store", default=None, help="run store (default: $UNLEARN_HOME, else runs/)")
    ap.add_argument("--root", default=None, help="book root holding _toc.yml (default: found from cwd)")
    ap.add_argument("--coverage", action="store_true", help="print what each chapter's plan makes, and exit")
    args = ap.parse_args(argv)
    if args.coverage:
        for text in coverage().values():
            print(f"{text}\n")
        return 0
    from unlearnability.book.chapters import check_profile, parse_overrides

    try:
        profile = check_profile(args.profile)
        params = parse_overrides(args.param)
        with _store(args.store):
            plan = build(args.chapters or None, profile, params, args.root)
            if args.dry_run:
                print(describe(plan, args.workers))
                return 0
            summary = run(plan, args.workers, chapters=args.chapters or None, threads=args.threads or None)
    except (ValueError, FileNotFoundError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
