"""The tiny policy: a Qwen2-architecture causal LM built from `Qwen2Config`, and training on text.

Saved with `save_pretrained` (weights, config, tokenizer), so the same folder loads in
transformers and in vLLM. `train_on_text` is the one loop for pretraining from scratch,
mid-training and SFT: next-token loss on the response part of (prompt, response) pairs.

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

import contextlib
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from unlearnability.config import ModelConfig, PretrainConfig
from unlearnability.store.history import append_dicts, truncate_after
from unlearnability.store.runs import CorruptRunError, check_finite, load_state


def build_model(cfg: ModelConfig, vocab_size: int, tok: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    conf = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(cfg.init_seed)
    return Qwen2ForCausalLM(conf)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def default_device() -> str:
    """Where models run: one GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(folder: str | Path, dtype: torch.dtype = torch.float32) -> Qwen2ForCausalLM:
    try:
        model = Qwen2ForCausalLM.from_pretrained(str(folder), dtype=dtype)
    except Exception as e:  # a truncated safetensors file, a missing config.json, ...
        raise CorruptRunError(f"{folder}: cannot load this model folder ({type(e).__name__}: {e})") from None
    model.eval()
    return model


def autocast(kind: str):
    """CPU autocast context ("bfloat16" or "none")."""
    if kind in ("none", "", None):
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=getattr(torch, kind))


def encode_pair(tok: PreTrainedTokenizerFast, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of `<bos> prompt response <eos>` and the index where the response starts."""
    p = tok(prompt)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"]
    return p + r + [tok.eos_token_id], len(p)


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; labels are -100 outside the response.

    returns input_ids, attention_mask, labels: (B, T) each
    """
    T = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    labels = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, (seq, start) in enumerate(batch):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, start: len(seq)] = torch.tensor(seq[start:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lr_at(step: int, total: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


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
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    avg_len = 100  # rough tokens per example, only to size the schedule
    total_steps = max(1, cfg.tokens // (cfg.batch_size * avg_len))
    state_path = out_dir / "train_state.pt"
    log_path = out_dir / "train_log.csv"
    step, tokens, elapsed, skip = 0, 0, 0.0, 0
    if state_path.exists():
        state = load_state(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, tokens, elapsed, total_steps = state["step"], state["tokens"], state["elapsed"], state["total_steps"]
        skip = step
        truncate_after(log_path, step)
    else:  # a fresh start (or a kill before the first checkpoint): no stale rows
        log_path.unlink(missing_ok=True)
    model.train()
    bar = tqdm(total=cfg.tokens, initial=tokens, desc=desc, unit="tok", unit_scale=True, mininterval=2)
    t0 = time.time() - elapsed
    run_loss, run_n = 0.0, 0
    batches = _length_bucketed(tok, pairs, cfg.batch_size)
    for _ in range(skip):  # resume: fast-forward the deterministic stream
        next(batches)
    while tokens < cfg.tokens:
        b = next(batches)
        lr = lr_at(step, total_steps, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast(autocast_dtype):
            loss = model(**b).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n_tok = int(b["attention_mask"].sum())
        tokens += n_tok
        step += 1
        check_finite(loss.item(), f"{out_dir} ({desc})", step,
                     f"step {step - 1 - (step - 1) % checkpoint_every} ({state_path.name})"
                     if step > checkpoint_every else "none (the start)")
        run_loss += loss.item()
        run_n += 1
        bar.update(n_tok)
        if step % cfg.log_every == 0:
            append_dicts(log_path, [{"step": step, "tokens": tokens, "loss": run_loss / run_n, "lr": lr,
                                     "seconds": round(time.time() - t0, 1)}])
            bar.set_postfix(loss=f"{run_loss / run_n:.3f}")
            run_loss, run_n = 0.0, 0
        if step % checkpoint_every == 0 and tokens < cfg.tokens:
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "tokens": tokens,
                        "elapsed": time.time() - t0, "total_steps": total_steps}, tmp)
            tmp.replace(state_path)
            if on_checkpoint:
                on_checkpoint(step)
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


def set_threads() -> None:
    """Use every core for intra-op parallelism (torch picks fewer in some containers)."""
    import os

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
