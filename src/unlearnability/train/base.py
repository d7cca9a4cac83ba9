"""A base model is a sequence of text-training phases; this module builds it.

    ensure_base_model(cfg)   the model every run of `cfg` starts from, made now if missing:

        phase        what it trains on                               cached under   ledger kind   module
        pretrain     worked solutions of the world, `world.styles`   base/<hash>    base          pretrain.pretrain_phase
        anneal       the same mixture, `pretrain.anneal_styles`      base/<hash>    anneal        anneal_phase (here)
        mid-train    a `midtrain.mixture` (paper §5.4)               midtrain/<hash> midtrain     midtrain.midtrain_phase

Each phase continues the previous phase's model with `train.text.train_on_text` (its tokens,
learning rate and warm-up from its section), is cached under its own hash (so the phases before
it are reused by every config that shares them), written by one process at a time
(`runs.locked`) and resumed after a kill. The anneal is off unless `pretrain.anneal_styles` is
set, mid-training unless `midtrain.mixture` is. Paper scale: `model.hub_id` is the base model
(nothing is trained here).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from unlearnability.config import Config
from unlearnability.policy.model import load_model
from unlearnability.store import ledger, runs
from unlearnability.train.midtrain import (
    MIXTURES,
    Mixture,
    midtrain_dir,
    midtrain_phase,
    midtrain_pretrain_config,
    midtrain_tokens,
    midtraining_stream,
    resolve_mixture,
    without_midtrain,
)
from unlearnability.train.pretrain import (
    anneal_config,
    final_styles,
    pretrain_phase,
    without_anneal,
)
from unlearnability.train.text import train_on_text
from unlearnability.world import load_tokenizer, train_valid_split


def ensure_base_model(cfg: Config, quiet: bool = False) -> Path | str:
    """Folder of the pretrained testbed model (trained now if missing), or the hub id."""
    if cfg.midtrain.mixture is not None:  # hook: mid-training on, so the mid-trained model is the base
        return ensure_midtrained(cfg, quiet)
    if cfg.model.hub_id:
        return cfg.model.hub_id
    folder = runs.base_dir(cfg)
    if cfg.pretrain.anneal_styles is None:
        with ledger.making("base", folder):
            return _ensure_phase(folder, lambda: pretrain_phase(cfg, folder, quiet))
    first_cfg = without_anneal(cfg)
    first = runs.base_dir(first_cfg)
    if not runs.is_done(folder) or runs.is_done(first):
        # the first phase, timed on its own as kind "base" (cached: shared by every anneal of it). Noted
        # when the anneal is reused too, so a chapter's ledger pays a cold store for both phases.
        first = Path(ensure_base_model(first_cfg, quiet))
    with ledger.making("anneal", folder):
        return _ensure_phase(folder, lambda: anneal_phase(cfg, first, folder, quiet))


def _ensure_phase(folder: Path, make) -> Path:
    """`folder` if it is complete, else `make()` under the folder's lock (one process at a time)."""
    if runs.is_done(folder):
        return folder
    with runs.locked(folder):
        if runs.is_done(folder):  # another process finished it while we waited
            return folder
        return make()


def anneal_phase(cfg: Config, first: Path, folder: Path, quiet: bool) -> Path:
    """The style anneal: the first phase's model `first` trained on, into `folder`, as a mid-training
    run on the pretraining mixture with `pretrain.anneal_styles` (`pretrain.anneal_config`)."""
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


def ensure_midtrained(cfg: Config, quiet: bool = False) -> Path:
    """Folder of `cfg`'s mid-trained model (pretraining its base model first if needed, then
    mid-training now if missing; resumed after a kill)."""
    if cfg.midtrain.mixture is None:
        raise ValueError(f"midtrain.mixture is null (mid-training off); name one of {', '.join(MIXTURES)}")
    if cfg.model.hub_id:
        raise ValueError(f"midtrain: the testbed mid-trains its own model only; with model.hub_id={cfg.model.hub_id!r} "
                         "set the hub id of a mid-trained model instead (e.g. OctoThinker/OctoThinker-3B-Hybrid-Base)")

    # "styles as in pretraining" = the mix the base model saw last (its final phase's, if any)
    world = dataclasses.replace(cfg.world, styles=final_styles(cfg))
    mix = resolve_mixture(world, cfg.midtrain)  # bad weights fail before any training
    folder = midtrain_dir(cfg)
    with ledger.making("midtrain", folder):  # its base model is timed on its own
        return _ensure_midtrained(cfg, folder, mix, quiet)


def _ensure_midtrained(cfg: Config, folder: Path, mix: Mixture, quiet: bool) -> Path:
    """The mid-trained model in `folder`, after the base model it continues."""
    if runs.is_done(folder):
        return folder
    base = Path(ensure_base_model(without_midtrain(cfg), quiet))
    with runs.locked(folder):
        if runs.is_done(folder):  # another process finished it while we waited
            return folder
        return midtrain_phase(cfg, base, folder, mix, quiet)
