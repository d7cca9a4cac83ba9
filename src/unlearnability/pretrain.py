"""Make (or reuse) the base model a config starts from.

Testbed: build the word-level tokenizer and a tiny Qwen2, pretrain it from scratch on worked
solutions drawn with the preset's skill coverage (never on a training or validation
problem), cache it under `runs/base/<hash>`. With `pretrain.anneal_styles` set, a final phase
continues that model on the same world with the response styles re-weighted (cached under its
own hash, the first phase's model reused). Paper scale: the hub id is the base model.
With `midtrain.mixture` set (paper §5.4), the base model is the mid-trained one (`midtrain.py`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from . import ledger, runs
from .config import Config, MidtrainConfig
from .model import build_model, load_model, n_params, train_on_text
from .world import build_tokenizer, pretraining_stream, train_valid_split


def ensure_base_model(cfg: Config, quiet: bool = False) -> Path | str:
    """Folder of the pretrained testbed model (trained now if missing), or the hub id."""
    if cfg.midtrain.mixture is not None:  # hook: mid-training on, so the mid-trained model is the base
        from .midtrain import ensure_midtrained

        return ensure_midtrained(cfg, quiet)
    if cfg.model.hub_id:
        return cfg.model.hub_id
    folder = runs.base_dir(cfg)
    with ledger.making("base", folder):  # timed with its first phase, if any (as pretrain_seconds.txt)
        return _ensure_base(cfg, folder, quiet)


def _ensure_base(cfg: Config, folder: Path, quiet: bool) -> Path:
    if runs.is_done(folder):
        return folder
    first = None
    if cfg.pretrain.anneal_styles is not None:
        plain = without_anneal(cfg)
        first = _ensure_base(plain, runs.base_dir(plain), quiet)
    with runs.locked(folder):
        if runs.is_done(folder):  # another process finished it while we waited
            return folder
        return _pretrain(cfg, folder, quiet) if first is None else _anneal(cfg, first, folder, quiet)


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


def _anneal(cfg: Config, first: Path, folder: Path, quiet: bool) -> Path:
    from .midtrain import midtrain_pretrain_config, midtrain_tokens, midtraining_stream, resolve_mixture
    from .world import load_tokenizer

    m = anneal_config(cfg)
    as_midtrain = dataclasses.replace(cfg, midtrain=m)
    try:
        mix = resolve_mixture(cfg.world, m)
    except ValueError as e:
        raise ValueError(f"pretrain.anneal_styles: {e}") from None
    tokens = midtrain_tokens(as_midtrain)
    runs.write_config(folder, cfg)
    tok, model = load_tokenizer(first), load_model(first)
    if not quiet:
        print(f"pretraining, final phase: {first.name} on {tokens / 1e6:.2f}M tokens with styles "
              f"{', '.join(f'{k} {v:g}' for k, v in mix.styles.items() if v)} -> {folder}", flush=True)
    train, valid = train_valid_split(cfg.world)
    pairs = midtraining_stream(cfg.world, mix, {p.question for p in train + valid}, m.seed, coupled=True)
    t0 = time.time()
    train_on_text(model, tok, pairs, midtrain_pretrain_config(as_midtrain), folder,
                  autocast_dtype=cfg.model.autocast, desc="anneal")
    seconds = time.time() - t0
    (folder / "anneal_seconds.txt").write_text(f"{seconds:.1f}\n")
    before = first / "pretrain_seconds.txt"  # both phases: what a cold store pays for this base model
    total = seconds + (float(before.read_text()) if before.exists() else 0.0)
    (folder / "pretrain_seconds.txt").write_text(f"{total:.1f}\n")
    runs.mark_done(folder)
    return folder


def _pretrain(cfg: Config, folder: Path, quiet: bool) -> Path:
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
