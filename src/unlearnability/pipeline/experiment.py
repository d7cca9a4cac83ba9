"""The pipeline steps the CLI, the notebooks and the analyses share: GRPO runs by seed and
variant (the §3 matched control, the curriculum), pass@k of a checkpoint or a base model, and a
study's baseline (`baseline_study`: the runs of every seed and their initial and final evaluations).

Every result is cached in the run store, keyed by the config that produced it, so a notebook
re-executed with the same parameters reuses the runs and evaluations it already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unlearnability.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    merge_overrides,
    parse_yaml,
    small_set_batch,
)
from unlearnability.data.reward import SCORING_VERSION
from unlearnability.data.tasks import load_task
from unlearnability.evaluation.evaluate import evaluate_policy
from unlearnability.evaluation.groups import classify
from unlearnability.paper import TAU
from unlearnability.policy.decoder import make_sampler as torch_sampler
from unlearnability.policy.model import default_device, load_model, set_threads
from unlearnability.store import ledger, runs
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import checkpoint_dir, train_grpo
from unlearnability.train.pretrain import final_styles


def run_grpo(cfg: Config) -> Path:
    """Run (or reuse / resume) the GRPO run of `cfg`; returns its folder."""
    set_threads()
    base = ensure_base_model(cfg)
    if cfg.grpo.init_from:
        base = Path(cfg.grpo.init_from)
        if not (base / "config.json").exists():
            raise FileNotFoundError(f"grpo.init_from={cfg.grpo.init_from}: not a model folder (no config.json)")
    task = load_task(cfg, base)
    with ledger.making("grpo", runs.grpo_dir(cfg)):
        return train_grpo(cfg, runs.grpo_dir(cfg), base, task)


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder (no config.yaml); pass the folder `unlearn grpo` printed")
    try:
        return config_from_dict(parse_yaml(path.read_text(), str(path)))
    except ConfigError as e:
        msg = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
        raise ConfigError(f"{msg} (a run folder written by another version of unlearnability?)") from None


def evaluate_checkpoint(run_dir: str | Path, step: int, k: int | None = None, split: str = "train",
                        keep_text: bool = True, sampler: str = "torch", limit: int | None = None,
                        ids: list[str] | None = None) -> Path:
    """pass@k of the run's checkpoint at `step` (0 = the base model) on the train or valid split
    (`limit`: only its first N problems, e.g. for the calibration's quick loop; `ids`: only
    these problems, e.g. the groups a chapter compares, taken from the whole split even when
    the run trained on a subset, `data.train_ids`; cut from the whole split's evaluation when
    that exists, so they are the same samples).

    Writes `<name>.csv` (per problem: prompt_id, n, correct, pass@1, [exact_rate, mean_score])
    and `<name>-samples.csv.gz` (per sample) and returns the per-problem table's path. Step 0
    is cached once per base model, shared by every seed.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if k is not None:
        cfg.eval.k = k
    if step == 0 and not cfg.grpo.init_from:
        return evaluate_base(cfg, split, keep_text, sampler, limit, ids)
    src = Path(cfg.grpo.init_from) if step == 0 else checkpoint_dir(run_dir, step)
    if not src.exists():
        have = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))
        raise FileNotFoundError(f"{src}: no checkpoint at step {step}; this run has {have or 'none'}")
    return _evaluate(cfg, src, run_dir / "evals" / f"step_{step:04d}", split, keep_text, sampler, limit, ids,
                     seed=eval_seed(cfg.eval.seed, cfg.grpo.seed, step))


def evaluate_base(cfg: Config, split: str = "train", keep_text: bool = True, sampler: str = "torch",
                  limit: int | None = None, ids: list[str] | None = None) -> Path:
    """pass@k of the config's base model (cached with the base model, shared by every seed; its
    sampler seed is the base model's own, `eval_seed(cfg.eval.seed, None, 0)`)."""
    base = ensure_base_model(cfg)
    folder = Path(base) / "evals" if isinstance(base, Path) else \
        runs.home() / "hub-evals" / cfg.section_hash("model", "data") / "evals"
    return _evaluate(cfg, base, folder, split, keep_text, sampler, limit, ids, seed=eval_seed(cfg.eval.seed, None, 0))


def eval_seed(cfg_eval_seed: int, run_seed: int | None, step: int) -> int:
    """The sampler seed of one pass@k evaluation, so that no two share random numbers: a stable
    hash (sha256; Python's hash() is salted per process) of the eval section's seed, the GRPO
    run's seed (`grpo.seed`; None: the base model's own evaluation, shared by every run) and the
    checkpoint step. Below 2**30, leaving room for the per-batch offset `evaluate.rollouts` adds."""
    import hashlib

    who = "base" if run_seed is None else f"run{int(run_seed)}"
    key = f"unlearnability/eval-seed/{int(cfg_eval_seed)}/{who}/step{int(step)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % (1 << 30)


def with_eval(cfg: Config, **changes) -> Config:
    """`cfg` with its eval section changed, e.g. `with_eval(cfg, k=1, temperature=0.0)` (greedy)."""
    import dataclasses

    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **changes))


def make_sampler(kind: str, model_dir: str | Path, tokenizer, decoder: str = "fast"):
    """"torch" (CPU, or one GPU when there is one) or "vllm" (GPU; the [gpu] extra). `decoder`
    picks the torch sampler's forward: "fast" (decoder.FastSampler where the model is supported)
    or "transformers" (sampling.TorchSampler)."""
    if kind == "vllm":
        from unlearnability.backends.vllm_sampler import VLLMSampler

        return VLLMSampler(str(model_dir))
    if kind != "torch":
        raise ValueError(f"sampler={kind!r}: use 'torch' or 'vllm'")
    return torch_sampler(load_model(model_dir).to(default_device()), tokenizer, decoder)


def _evaluate(cfg: Config, src: str | Path, folder: Path, split: str, keep_text: bool,
              sampler: str = "torch", limit: int | None = None, ids: list[str] | None = None,
              seed: int | None = None) -> Path:
    """seed: the sampler seed (`eval_seed`; None: the base model's), in the cache name, so
    evaluations drawn before the seeds were derived (all with eval.seed) are not reused."""
    if split not in ("train", "valid"):
        raise ValueError(f"split={split!r}: use 'train' or 'valid'")
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit}: evaluate at least one problem (or None for all)")
    seed = eval_seed(cfg.eval.seed, None, 0) if seed is None else int(seed)
    name = f"{split}-k{cfg.eval.k}-{cfg.section_hash('eval', 'data')}-s{seed}-v{SCORING_VERSION}"
    cfg = with_eval(cfg, seed=seed)
    if sampler != "torch":
        name += f"-{sampler}"
    if limit is not None:
        name += f"-first{limit}"
    whole = folder / f"{name}.csv"  # the whole split's table, if evaluated already
    if ids is not None:
        import hashlib

        ids = sorted(set(ids))
        name += f"-ids{len(ids)}-{hashlib.sha256(','.join(ids).encode()).hexdigest()[:8]}"
    out = folder / f"{name}.csv"
    # one writer per evaluation (a second process waits, then reuses it); outside the ledger's
    # block, so the wait is not counted as making it
    with runs.locked(folder, f".{name}.lock"), ledger.making("evaluation", out):
        return _evaluate_into(cfg, src, folder, out, name, whole, split, keep_text, sampler, limit, ids)


def _evaluate_into(cfg: Config, src: str | Path, folder: Path, out: Path, name: str, whole: Path, split: str,
                   keep_text: bool, sampler: str, limit: int | None, ids: list[str] | None) -> Path:
    if out.exists():
        return out
    if ids is not None and limit is None and whole.exists() and cfg.data.train_ids is None:
        table = read_eval(whole)
        if set(ids) <= set(table.prompt_id):  # a subset of an evaluation we have: no new samples
            samples = read_eval(whole, samples=True)
            runs.atomic_to_csv(samples[samples.prompt_id.isin(ids)], folder / f"{name}-samples.csv.gz")
            runs.atomic_to_csv(table[table.prompt_id.isin(ids)], out)
            return out
    set_threads()
    if ids is not None and cfg.data.train_ids is not None:  # ids pick from the whole split, not the run's subset
        import dataclasses

        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_ids=None))
    task = load_task(cfg, ensure_base_model(cfg))
    problems = (task.train if split == "train" else task.valid)[:limit]
    if ids is not None:
        from unlearnability.data.tasks import subset

        problems = subset(problems, ids, f"evaluation ids ({split} split)") if ids else []
    samples, table = evaluate_policy(make_sampler(sampler, src, task.tokenizer, cfg.eval.decoder), task, problems,
                                     cfg.eval, keep_text)
    folder.mkdir(parents=True, exist_ok=True)
    runs.atomic_to_csv(samples, folder / f"{name}-samples.csv.gz")  # the samples first: `out` marks it done
    runs.atomic_to_csv(table, out)
    return out


def read_eval(path: str | Path, samples: bool = False) -> pd.DataFrame:
    path = Path(path)
    if samples:
        path = path.with_name(path.stem + "-samples.csv.gz")
    return pd.read_csv(path, dtype={"prompt_id": str})


@dataclass
class Study:
    """Everything a chapter about the baseline needs, for one profile and a list of seeds."""

    cfg: Config  # the config of the first seed (seeds differ only in grpo.seed)
    seeds: list[int]
    run_dirs: dict[int, Path]
    problems: pd.DataFrame  # one row per training problem: prompt_id + the world's knobs
    initial: pd.DataFrame  # pass@k summary of the base model on the training problems
    finals: dict[int, pd.DataFrame]  # pass@k summary of each seed's final checkpoint
    histories: dict[int, pd.DataFrame]  # per-example training histories
    validations: dict[int, pd.DataFrame]  # held-out validation pass@1 rows
    train_logs: dict[int, pd.DataFrame]

    def pass1(self, table: pd.DataFrame) -> pd.Series:
        """pass@1 per training problem (index prompt_id, in `problems` order) of a pass@k summary."""
        return table.set_index("prompt_id")["pass@1"].reindex(self.problems["prompt_id"])

    def final_pass1(self) -> dict[int, pd.Series]:
        """{seed: pass@1 per training problem at the seed's last step}."""
        return {s: self.pass1(self.finals[s]) for s in self.seeds}

    def classify(self, tau: float = TAU, p: int | None = None) -> pd.DataFrame:
        """The paper's groups of the training problems (`groups.classify`: one row per problem, each
        seed's label and the combined `group`) from the initial and final pass@1 and the training
        histories; `p`: a positive counts only above what guessing mod p gives."""
        return classify(self.pass1(self.initial), self.final_pass1(), self.histories, tau, p=p)


def problem_table(problems) -> pd.DataFrame:
    """The knobs of each problem as columns (testbed: tier, depth, distractors, skills, coverage;
    disordered worlds: order; MATH: level, subject)."""
    rows = []
    for p in problems:
        row = {"prompt_id": p.id}
        for key in ("tier", "depth", "distractors", "coverage", "order", "level", "subject", "p"):
            if key in p.meta:
                row[key] = p.meta[key]
        if "skills" in p.meta:
            row["skills"] = "+".join(p.meta["skills"])
        rows.append(row)
    return pd.DataFrame(rows)


def seed_runs(profile: str, seeds: list[int], overrides: dict | None = None) -> dict[int, Path]:
    """Run (or reuse) one GRPO run per seed of `profile` + `overrides`; {seed: run folder}."""
    return {s: run_grpo(load_config(profile, merge_overrides(overrides, {"grpo": {"seed": int(s)}}))) for s in seeds}


CONTROL_STYLES = {"worked": 1.0}  # the matched control's corpus: worked solutions only


def control_overrides(cfg: Config) -> dict:
    """The matched control of `cfg`: its last pretraining phase on worked solutions only.

    With a final style phase (`pretrain.anneal_styles`, the default), only that phase changes: the
    control shares the first phase's model with `cfg` (made once, cached) and anneals it on worked
    solutions for the same number of tokens, so the two base models differ in nothing but the style
    mix of their final phase (and the control costs an anneal, not a second pretraining). Without a
    final phase, the single phase is pretrained on worked solutions only. Every style of `cfg`'s
    mix is named (the others at share 0), so merged over overrides that set the mix it still wins."""
    if cfg.pretrain.anneal_styles is not None:
        return {"pretrain": {"anneal_styles": _worked_only(cfg.pretrain.anneal_styles)}}
    return {"world": {"styles": _worked_only(cfg.world.styles)}}


def _worked_only(shares: dict[str, float]) -> dict[str, float]:
    return {**{s: 0.0 for s in shares}, **CONTROL_STYLES}


def has_control(cfg: Config) -> bool:
    """Whether `cfg` has a styles-off control: the testbed with extra styles in its last pretraining phase."""
    return cfg.data.source == "testbed" and {s for s, v in final_styles(cfg).items() if v > 0} != set(CONTROL_STYLES)


def variant_runs(profile: str, seeds: list[int], overrides: dict | None, changes: dict) -> dict[int, Path]:
    """The baseline's runs with `changes` on top of `overrides` (e.g. {"grpo": {"eps_high": 0.28}});
    {seed: run folder}."""
    return seed_runs(profile, seeds, merge_overrides(overrides, changes))


def styles_control_runs(profile: str, seeds: list[int], overrides: dict | None = None) -> dict[int, Path]:
    """The matched control of `profile` + `overrides`: the same runs from a base model whose last
    pretraining phase has the extra response styles off (`control_overrides`); {seed: run folder}."""
    return variant_runs(profile, seeds, overrides, control_overrides(load_config(profile, overrides)))


def baseline_study(profile: str, seeds: list[int], overrides: dict | None = None,
                   eval_limit: int | None = None, eval_k: int | None = None) -> Study:
    """Run (or reuse) one GRPO run per seed, then evaluate pass@k at step 0 and at the last step
    (`eval_limit`: on the first N training problems only; `problems` is cut to match; `eval_k`:
    samples per problem instead of `eval.k`, without changing the runs, whose hash holds `eval`)."""
    from unlearnability.store.history import read_history, read_validation

    run_dirs = seed_runs(profile, seeds, overrides)
    cfg = load_run_config(run_dirs[seeds[0]])
    finals = {s: read_eval(evaluate_checkpoint(d, cfg.grpo.steps, k=eval_k, limit=eval_limit)) for s, d in run_dirs.items()}
    initial = read_eval(evaluate_checkpoint(run_dirs[seeds[0]], 0, k=eval_k, limit=eval_limit))
    task = load_task(cfg, ensure_base_model(cfg))
    return Study(
        cfg=cfg, seeds=list(seeds), run_dirs=run_dirs, problems=problem_table(task.train[:eval_limit]),
        initial=initial, finals=finals,
        histories={s: read_history(d) for s, d in run_dirs.items()},
        validations={s: read_validation(d) for s, d in run_dirs.items()},
        train_logs={s: pd.read_csv(d / "train_log.csv") for s, d in run_dirs.items()},
    )


def final_pass1_on(run_dirs: dict, ids: list[str]) -> dict[int, pd.Series]:
    """{seed: pass@1 (index prompt_id) of that run's last checkpoint on `ids`} (evaluated or cached)."""
    out = {}
    for s, d in run_dirs.items():
        steps = load_run_config(d).grpo.steps
        out[s] = read_eval(evaluate_checkpoint(d, steps, ids=ids)).set_index("prompt_id")["pass@1"]
    return out


def checkpoint_near(run_dir: str | Path, fraction: float) -> int:
    """The saved checkpoint step nearest to `fraction` of the run's steps (the paper's mid-training
    analyses use step 50 of 120: fraction 0.42)."""
    steps = runs.checkpoint_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"{run_dir}: no checkpoints")
    target = fraction * load_run_config(run_dir).grpo.steps
    return min(steps, key=lambda s: (abs(s - target), s))


@dataclass
class Curriculum:
    """The two stages of the paper's curriculum (A.5, Figure 18) for one seed."""

    stage1: Path  # GRPO on the training set without the unlearnable examples
    stage2: Path  # from stage 1's last checkpoint: the unlearnable examples + as many stage-1 examples
    unlearnable: list[str]
    mixed_in: list[str]  # the random stage-1 examples of stage 2


def curriculum(profile: str, overrides: dict | None, group_of: pd.Series, seed: int = 1,
               stage1_steps: int | None = None, stage2_steps: int | None = None) -> Curriculum:
    """Run (or reuse) the curriculum: stage 1 trains on every training problem but the
    unlearnable ones for `stage1_steps` (default: the preset's steps); stage 2 starts from its
    last checkpoint and trains on the unlearnable problems plus an equal number of stage-1
    problems drawn with `seed`, for `stage2_steps` (default: a third of stage 1)."""
    import random

    cfg = load_config(profile, overrides)
    unl = sorted(group_of[group_of == "unlearnable"].index)
    if not unl:
        raise ValueError("curriculum: no unlearnable examples in the groups given")
    task = load_task(cfg, ensure_base_model(cfg))
    rest = [p.id for p in task.train if p.id not in set(unl)]
    s1 = stage1_steps or cfg.grpo.steps
    s2 = stage2_steps or max(1, s1 // 3)
    every = max(1, min(cfg.grpo.checkpoint_every, s1, s2))
    stage1 = run_grpo(load_config(profile, merge_overrides(overrides, {
        "data": {"train_ids": rest}, "grpo": {"seed": seed, "steps": s1, "checkpoint_every": every}})))
    mixed = sorted(random.Random(f"curriculum-{seed}").sample(rest, min(len(unl), len(rest))))
    n2 = len(unl) + len(mixed)
    stage2 = run_grpo(load_config(profile, merge_overrides(overrides, {
        "data": {"train_ids": unl + mixed},
        "grpo": {"seed": seed, "steps": s2, "checkpoint_every": every, "init_from": str(checkpoint_dir(stage1, s1)),
                 **small_set_batch(n2, cfg.grpo)}})))
    return Curriculum(stage1, stage2, unl, mixed)
