"""Make (or reuse) the base model a config starts from.

Testbed: build the word-level tokenizer and a tiny Qwen2, pretrain it from scratch on worked
solutions drawn with the preset's skill coverage (never on a training or validation
problem), cache it under `runs/base/<hash>`. Paper scale: the hub id is the base model.
With `midtrain.mixture` set (paper §5.4), the base model is the mid-trained one (`midtrain.py`).
"""

from __future__ import annotations

import time
from pathlib import Path

from . import runs
from .config import Config
from .model import build_model, n_params, train_on_text
from .world import build_tokenizer, pretraining_stream, train_valid_split


def ensure_base_model(cfg: Config, quiet: bool = False) -> Path | str:
    """Folder of the pretrained testbed model (trained now if missing), or the hub id."""
    if cfg.midtrain.mixture is not None:  # hook: mid-training on, so the mid-trained model is the base
        from .midtrain import ensure_midtrained

        return ensure_midtrained(cfg, quiet)
    if cfg.model.hub_id:
        return cfg.model.hub_id
    folder = runs.base_dir(cfg)
    if runs.is_done(folder):
        return folder
    with runs.locked(folder):
        if runs.is_done(folder):  # another process finished it while we waited
            return folder
        return _pretrain(cfg, folder, quiet)


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
