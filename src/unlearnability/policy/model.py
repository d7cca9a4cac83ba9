"""The tiny policy: a Qwen2-architecture causal LM built from `Qwen2Config`, how it is loaded,
and how a (prompt, response) pair becomes a training row (`encode_pair`, `collate`: loss on the
response tokens only). Training on text is `train.text.train_on_text`.

Saved with `save_pretrained` (weights, config, tokenizer), so the same folder loads in
transformers and in vLLM.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from unlearnability.config import ModelConfig
from unlearnability.store.runs import CorruptRunError


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


def set_threads() -> None:
    """Use every core for intra-op parallelism (torch picks fewer in some containers)."""
    import os

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
