"""Training on text: the one loop behind every text-training phase of a base model (pretraining
from scratch, the style anneal, mid-training; `train.base`): next-token loss on the response part
of (prompt, response) pairs until a token budget is spent, resumable from its checkpoints.

Simplifications: no sequence packing (each example is one row, right-padded); loss only on
the response tokens (the prompt's numbers are random by construction); cosine lr schedule.

Batches are bucketed by *prompt* length (the problem's size), not by full length: a batch
then mixes response styles in their corpus shares, so the token-mean loss weighs a short
(e.g. answer-only) response's style choice as much as a long one's. Bucketing by full length
put the short responses into batches of their own, where the token mean gave each of their
tokens many times the weight (measured: a 35% answer-only corpus gave a 64-78% answer-only
prior).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

from unlearnability.config import PretrainConfig
from unlearnability.policy.model import autocast, collate, encode_pair
from unlearnability.store.history import append_dicts, restart_logs
from unlearnability.store.runs import check_finite, load_state, save_state


def lr_at(step: int, total: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


ADAMW_BETAS = (0.9, 0.95)  # the optimizer of every text-training phase (nanoGPT's)
AVG_EXAMPLE_TOKENS = 100  # rough tokens per example, only to size the lr schedule


@dataclass
class Progress:
    """Where a text-training run stands: optimizer steps, tokens seen, seconds spent, and the
    schedule's length (fixed at the start, so a resumed run keeps its schedule)."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    total_steps: int = 1


def resume(model: Qwen2ForCausalLM, opt: torch.optim.Optimizer, state_path: Path, cfg: PretrainConfig) -> Progress:
    """A fresh `Progress`, or the one in `state_path` with the model and optimizer restored."""
    if not state_path.exists():
        return Progress(total_steps=max(1, cfg.tokens // (cfg.batch_size * AVG_EXAMPLE_TOKENS)))
    state = load_state(state_path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return Progress(state["step"], state["tokens"], state["elapsed"], state["total_steps"])


def update(model: Qwen2ForCausalLM, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], lr: float,
           grad_clip: float, autocast_dtype: str) -> torch.Tensor:
    """One optimizer step at learning rate `lr` on a collated batch (input_ids, attention_mask,
    labels: (B, T)); returns the loss (the token mean over the response tokens)."""
    for g in opt.param_groups:
        g["lr"] = lr
    with autocast(autocast_dtype):
        loss = model(**batch).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss


def checkpoint(model: Qwen2ForCausalLM, opt: torch.optim.Optimizer, progress: Progress, state_path: Path) -> None:
    """Model, optimizer and `progress` in `state_path` (what `resume` reads back)."""
    save_state({"model": model.state_dict(), "opt": opt.state_dict(), "step": progress.step,
                "tokens": progress.tokens, "elapsed": progress.elapsed, "total_steps": progress.total_steps},
               state_path)


def train_on_text(
    model: Qwen2ForCausalLM,
    tok: PreTrainedTokenizerFast,
    pairs: Iterator[tuple[str, str]],
    cfg: PretrainConfig,
    out_dir: Path,
    autocast_dtype: str = "bfloat16",
    desc: str = "pretrain",
    on_checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 500,
) -> Path:
    """Train `model` on (prompt, response) pairs until `cfg.tokens` tokens have been seen.

    Resumable: a checkpoint (`train_state.pt`) is written every `checkpoint_every` steps; on
    restart the stream is fast-forwarded to where it was. Writes `train_log.csv` (step,
    tokens, loss, lr, seconds) and saves the final model + tokenizer in `out_dir`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=ADAMW_BETAS, weight_decay=cfg.weight_decay)
    state_path, log_path = out_dir / "train_state.pt", out_dir / "train_log.csv"
    at = resume(model, opt, state_path, cfg)
    restart_logs([log_path], at.step)
    model.train()
    bar = tqdm(total=cfg.tokens, initial=at.tokens, desc=desc, unit="tok", unit_scale=True, mininterval=2)
    t0 = time.time() - at.elapsed
    losses: list[float] = []  # since the last log line
    batches = _length_bucketed(tok, pairs, cfg.batch_size)
    for _ in range(at.step):  # resume: fast-forward the deterministic stream
        next(batches)
    while at.tokens < cfg.tokens:
        b = next(batches)
        lr = lr_at(at.step, at.total_steps, cfg)
        loss = update(model, opt, b, lr, cfg.grad_clip, autocast_dtype).item()
        n_tok = int(b["attention_mask"].sum())
        at.tokens += n_tok
        at.step += 1
        check_finite(loss, f"{out_dir} ({desc})", at.step,
                     f"step {at.step - 1 - (at.step - 1) % checkpoint_every} ({state_path.name})"
                     if at.step > checkpoint_every else "none (the start)")
        losses.append(loss)
        bar.update(n_tok)
        if at.step % cfg.log_every == 0:
            append_dicts(log_path, [{"step": at.step, "tokens": at.tokens, "loss": sum(losses) / len(losses),
                                     "lr": lr, "seconds": round(time.time() - t0, 1)}])
            bar.set_postfix(loss=f"{sum(losses) / len(losses):.3f}")
            losses = []
        if at.step % checkpoint_every == 0 and at.tokens < cfg.tokens:
            at.elapsed = time.time() - t0
            checkpoint(model, opt, at, state_path)
            if on_checkpoint:
                on_checkpoint(at.step)
    bar.close()
    model.eval()
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    if state_path.exists():
        state_path.unlink()
    return out_dir


def _length_bucketed(tok, pairs, batch_size: int, pool_batches: int = 16):
    """Batches of similar prompt length (less padding, styles mixed; see the module docstring):
    take a pool of examples, sort by prompt length (stable: ties keep stream order), cut into
    batches, and yield those in a fixed shuffled order. Deterministic."""
    g = torch.Generator().manual_seed(0)
    while True:
        pool = [encode_pair(tok, q, a) for q, a in (next(pairs) for _ in range(batch_size * pool_batches))]
        pool.sort(key=lambda x: x[1])  # x = (ids, response start): sort by prompt length
        chunks = [pool[i: i + batch_size] for i in range(0, len(pool), batch_size)]
        for j in torch.randperm(len(chunks), generator=g).tolist():
            yield collate(chunks[j], tok.pad_token_id)
