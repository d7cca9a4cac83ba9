"""The pipeline steps the CLI and the notebooks share: run GRPO, evaluate a checkpoint.

Every result is cached in the run store, keyed by the config that produced it, so a notebook
re-executed with the same parameters reuses the runs and evaluations it already has.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import yaml

from . import runs
from .config import Config, config_from_dict
from .evaluate import evaluate_policy
from .grpo import checkpoint_dir, train_grpo
from .model import load_model
from .pretrain import ensure_base_model
from .sampling import TorchSampler
from .tasks import load_task


def set_threads() -> None:
    """Use every core for intra-op parallelism (torch picks fewer in some containers)."""
    import os

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


def run_grpo(cfg: Config) -> Path:
    """Run (or reuse / resume) the GRPO run of `cfg`; returns its folder."""
    set_threads()
    base = ensure_base_model(cfg)
    task = load_task(cfg, base)
    return train_grpo(cfg, runs.grpo_dir(cfg), base, task)


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder (no config.yaml); pass the folder `unlearn grpo` printed")
    return config_from_dict(yaml.safe_load(path.read_text()))


def evaluate_checkpoint(run_dir: str | Path, step: int, k: int | None = None, split: str = "train",
                        keep_text: bool = True) -> Path:
    """pass@k of the run's checkpoint at `step` (0 = the base model) on the train or valid split.

    Writes `<name>.csv` (per problem: prompt_id, n, correct, pass@1, [exact_rate, mean_score])
    and `<name>-samples.csv.gz` (per sample) and returns the per-problem table's path. Step 0
    is cached once per base model, shared by every seed.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if k is not None:
        cfg.eval.k = k
    name = f"{split}-k{cfg.eval.k}-{cfg.section_hash('eval', 'data')}"
    if step == 0:
        base = ensure_base_model(cfg)
        folder = (Path(base) if isinstance(base, Path) else runs.home() / "hub-evals" / cfg.section_hash("model", "data")) / "evals"
        src: str | Path = base
    else:
        src = checkpoint_dir(run_dir, step)
        if not src.exists():
            have = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))
            raise FileNotFoundError(f"{src}: no checkpoint at step {step}; this run has {have or 'none'}")
        folder = run_dir / "evals" / f"step_{step:04d}"
    out = folder / f"{name}.csv"
    if out.exists():
        return out
    set_threads()
    base = ensure_base_model(cfg)
    task = load_task(cfg, base)
    problems = task.train if split == "train" else task.valid
    model = load_model(src)
    samples, table = evaluate_policy(TorchSampler(model, task.tokenizer), task, problems, cfg.eval, keep_text)
    folder.mkdir(parents=True, exist_ok=True)
    samples.to_csv(folder / f"{name}-samples.csv.gz", index=False)
    tmp = out.with_suffix(".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def read_eval(path: str | Path, samples: bool = False) -> pd.DataFrame:
    path = Path(path)
    if samples:
        path = path.with_name(path.stem + "-samples.csv.gz")
    return pd.read_csv(path, dtype={"prompt_id": str})
