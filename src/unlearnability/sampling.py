"""Samplers: turn prompts (token ids) into n sampled completions with their log-probs.

`Sampler` is the interface GRPO, pass@k and the gradient analysis use. `TorchSampler`
(KV cache, batched, stops at EOS, explicit temperature / top_p with top_k off, seeded) runs
anywhere; `VLLMSampler` (`unlearnability.backends.vllm_sampler`) is the GPU one, imported
only when asked for.

`logprobs` are log-softmax(logits / T) of each chosen token: the tempered policy the token
was drawn from (top_p only restricts which tokens can be drawn), as vLLM reports them.
GRPO recomputes its own old / new log-probs in the training forward pass; these serve
diagnostics and the sampler tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


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
