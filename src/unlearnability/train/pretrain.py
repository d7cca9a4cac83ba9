"""Pretraining, the first text-training phase of a base model (`train.base` builds the sequence).

Testbed: build the word-level tokenizer and a tiny Qwen2, pretrain it from scratch on worked
solutions drawn with the preset's skill coverage (never on a training or validation
problem). With `pretrain.anneal_styles` set, a final phase continues that model on the same
world with the response styles re-weighted (`anneal_config`: the same computation as a
mid-training run on the pretraining mixture; `train.base.anneal_phase`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from unlearnability.config import Config, MidtrainConfig
from unlearnability.policy.model import build_model, n_params
from unlearnability.store import runs
from unlearnability.train.text import train_on_text
from unlearnability.world import build_tokenizer, pretraining_stream, train_valid_split


def without_anneal(cfg: Config) -> Config:
    """`cfg` with the final pretraining phase off (its first phase's model)."""
    return dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, anneal_styles=None, anneal_tokens=None))


def final_styles(cfg: Config) -> dict[str, float]:
    """The response-style mix the base model saw last: `pretrain.anneal_styles` if set, else `world.styles`."""
    return cfg.pretrain.anneal_styles if cfg.pretrain.anneal_styles is not None else cfg.world.styles


def anneal_config(cfg: Config) -> MidtrainConfig:
    """The final phase as a mid-training run: the pretraining mixture with `anneal_styles`, and
    mid-training's learning rate, warm-up and stream seed (so it is the same computation as
    `midtrain: {mixture: pretrain, styles: ...}` on the first phase's model)."""
    return MidtrainConfig(mixture="pretrain", styles=cfg.pretrain.anneal_styles, tokens=cfg.pretrain.anneal_tokens)


def pretrain_phase(cfg: Config, folder: Path, quiet: bool) -> Path:
    """The first phase: a new tokenizer and model trained from scratch on the world's pretraining
    stream (never a training or validation question), into `folder`."""
    runs.write_config(folder, cfg)
    tok = build_tokenizer(cfg.world.p, cfg.world.digits)
    model = build_model(cfg.model, len(tok), tok)
    if not quiet:
        print(f"pretraining a {n_params(model) / 1e6:.2f}M-parameter model on "
              f"{cfg.pretrain.tokens / 1e6:.1f}M tokens -> {folder}", flush=True)
    train, valid = train_valid_split(cfg.world)
    exclude = {p.question for p in train + valid}
    pairs = pretraining_stream(cfg.world, exclude, seed=cfg.pretrain.seed)
    t0 = time.time()
    train_on_text(model, tok, pairs, cfg.pretrain, folder, autocast_dtype=cfg.model.autocast)
    (folder / "pretrain_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    runs.mark_done(folder)
    return folder
