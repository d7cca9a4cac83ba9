"""Samplers: turn prompts (token ids) into n sampled completions with their log-probs.

`Sampler` is the interface GRPO, pass@k and the gradient analysis use. `TorchSampler`
(KV cache, batched, stops at EOS, explicit temperature / top_p with top_k off, seeded) runs
anywhere; `VLLMSampler` (`unlearnability.backends.vllm_sampler`) is the GPU one, imported
only when asked for.

`logprobs` are log-softmax(logits / T) of each chosen token: the tempered policy the token
was drawn from (top_p only restricts which tokens can be drawn), as vLLM reports them.
GRPO computes its new log-probs in the training forward pass; with grpo.old_logprobs = sampler it
takes these as the old policy's (fp32: they equal a full forward's to ~1e-6), else it recomputes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt
    temperature: float = 1.0
    top_p: float = 1.0  # nucleus; 1.0 = off. top_k is always off.
    max_new_tokens: int = 64
    seed: int = 0


@dataclass
class Completion:
    prompt_index: int  # index into the prompts given to `generate`
    token_ids: list[int]  # response tokens, including the EOS token when it was produced
    logprobs: list[float]  # one per token in `token_ids`
    finished: bool  # True if EOS was produced before max_new_tokens
    text: str = ""  # decoded response without special tokens (filled by the sampler if it has a tokenizer)
    extra: dict = field(default_factory=dict)


class Sampler(Protocol):
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """Return len(prompts) * params.n completions, prompt-major:
        completions[i * n + j] is the j-th sample for prompts[i]."""
        ...


def sample_next(logits: torch.Tensor, temperature: float, top_p: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row. logits: (B, V) -> tokens (B,), log-probs (B,) under softmax(logits / T).

    temperature 0 means greedy. top_p < 1 keeps the smallest set of tokens whose probability
    reaches top_p (nucleus); top_k is never applied.
    """
    logits = logits.float()
    if temperature == 0:
        tok = logits.argmax(-1)
        return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0]
    logp = torch.log_softmax(logits / temperature, -1)  # (B, V)
    probs = logp.exp()
    if top_p < 1.0:
        sorted_p, idx = probs.sort(-1, descending=True)
        keep_sorted = (sorted_p.cumsum(-1) - sorted_p) < top_p  # always keeps the top token
        keep = torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)
        probs = probs * keep
    tok = torch.multinomial(probs, 1, generator=gen)[:, 0]  # multinomial renormalises
    return tok, logp.gather(-1, tok[:, None])[:, 0]


def end_of_turn_ids(tokenizer) -> set[int]:
    """Ids of the end-of-turn tokens a tokenizer knows (Qwen's <|im_end|>, Llama 3's <|eot_id|>)."""
    if tokenizer is None:
        return set()
    vocab = tokenizer.get_vocab()
    return {vocab[t] for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>") if t in vocab}


def special_ids(tokenizer, eos_id: int | None = None, pad_id: int | None = None) -> tuple[int, int, set[int]]:
    """(eos, pad, stop ids) of a sampler: the given ids or the tokenizer's, pad falling back to eos;
    a row stops at EOS and at the chat models' end-of-turn tokens."""
    eos = eos_id if eos_id is not None else tokenizer.eos_token_id
    pad = pad_id if pad_id is not None else tokenizer.pad_token_id
    return eos, eos if pad is None else pad, {eos} | end_of_turn_ids(tokenizer)


def completions(out_tok: torch.Tensor, out_lp: torch.Tensor, finished: torch.Tensor, index: Sequence[int],
                tokenizer=None) -> list[Completion]:
    """One Completion per row of a decoded batch. out_tok: (B, T) token ids, -1 after a row's last
    token; out_lp: (B, T) their log-probs; finished: (B,) EOS produced; index: each row's prompt index."""
    lengths = (out_tok >= 0).sum(1).tolist()
    toks, lps, fin = out_tok.tolist(), out_lp.tolist(), finished.tolist()
    result = []
    for i in range(len(index)):
        c = Completion(index[i], toks[i][: lengths[i]], lps[i][: lengths[i]], finished=fin[i])
        if tokenizer is not None:
            c.text = tokenizer.decode(c.token_ids, skip_special_tokens=True)
        result.append(c)
    return result


class TorchSampler:
    """Batched sampling with a KV cache from a transformers causal LM (CPU or CUDA).

    Prompts are left-padded; position ids follow each row's real tokens. A row stops at EOS;
    the batch stops when every row has. Seeded with one `torch.Generator` per call, so the
    same prompts, params and model give the same completions.
    """

    def __init__(self, model, tokenizer=None, eos_id: int | None = None, pad_id: int | None = None,
                 batch_size: int = 256, autocast: str = "none"):
        self.model = model
        self.tok = tokenizer
        self.eos_id, self.pad_id, self.stop_ids = special_ids(tokenizer, eos_id, pad_id)
        self.batch_size = batch_size
        self.autocast = autocast

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        rows = [i for i in range(len(prompts)) for _ in range(params.n)]
        gen = torch.Generator().manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        out: list[Completion] = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s: s + self.batch_size]
            out += self._generate_batch([prompts[i] for i in chunk], chunk, params, gen)
        self.model.train(was_training)
        return out

    def _generate_batch(self, prompts, index, params, gen) -> list[Completion]:
        from unlearnability.policy.model import (
            autocast,  # local: model imports transformers
        )

        device = next(self.model.parameters()).device
        B, L = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, L - len(p):] = torch.tensor(list(p))
            mask[i, L - len(p):] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)
        stops = torch.tensor(sorted(self.stop_ids))
        T = params.max_new_tokens
        out_tok = torch.full((B, T), -1, dtype=torch.long)  # (B, T): -1 after a row's last token
        out_lp = torch.zeros((B, T))  # (B, T)
        finished = torch.zeros(B, dtype=torch.bool)  # (B,)
        alive = torch.arange(B)  # original row of each row still in the batch
        with autocast(self.autocast):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             logits_to_keep=1)
            cache, cur = out.cache, pos[:, -1]
            for t in range(T):
                tok, lp = sample_next(out.logits[:, -1].cpu(), params.temperature, params.top_p, gen)
                done = torch.isin(tok, stops)
                out_tok[alive, t], out_lp[alive, t], finished[alive] = tok, lp, done  # no loop over rows
                if bool(done.all()):
                    break
                if bool(done.any()):  # drop finished rows: the batch shrinks as sequences end
                    keep = (~done).nonzero()[:, 0]
                    alive, tok = alive[keep], tok[keep]
                    keep_d = keep.to(device)
                    cache.batch_select_indices(keep_d)
                    mask, cur = mask[keep_d], cur[keep_d]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                cur = cur + 1
                out = self.model(input_ids=tok.to(device)[:, None], attention_mask=mask,
                                 position_ids=cur[:, None], cache=cache, use_cache=True)
                cache = out.cache
        return completions(out_tok, out_lp, finished, index, self.tok)
