"""Shared set-up of the speed benchmarks: the default preset's model (random init, or a base
model folder), its tokenizer, and a batch of training prompts from the testbed world."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch


def testbed_batch(preset: str = "default", base: str | None = None, n_prompts: int = 32, seed: int = 0):
    """(cfg, model folder, task, prompt token ids of `n_prompts` training problems)."""
    from unlearnability.config import load_config
    from unlearnability.data.tasks import load_task
    from unlearnability.policy.model import build_model
    from unlearnability.world import build_tokenizer

    cfg = load_config(preset)
    if base is None:  # random init, saved so both engines load the same weights
        torch.manual_seed(seed)
        tok = build_tokenizer(cfg.world.p, cfg.world.digits)
        model = build_model(cfg.model, len(tok), tok)
        base = tempfile.mkdtemp(prefix="bench-model-")
        model.save_pretrained(base)
        tok.save_pretrained(base)
    task = load_task(cfg, Path(base))
    problems = task.train[:n_prompts]
    return cfg, Path(base), task, problems
