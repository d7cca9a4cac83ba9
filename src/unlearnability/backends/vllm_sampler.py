"""`VLLMSampler`: the `sampling.Sampler` interface on vLLM, for sampling-heavy work on a GPU.

Used for pass@k (k = 32 per problem) and for the gradient analysis's rollouts (1000 per
example), where the weights do not change between calls, so no weight sync is needed.
GRPO's training rollouts on one GPU may use `sampling.TorchSampler` on CUDA instead.

    sampler = VLLMSampler("runs/.../checkpoint")          # or a hub id, e.g. "Qwen/Qwen2.5-0.5B"
    completions = sampler.generate(prompt_ids, SamplingParams(n=32, temperature=0.7, top_p=0.95,
                                                              max_new_tokens=5120, seed=0))
    # len(completions) == len(prompt_ids) * 32, prompt-major

Mapping (pure functions below, tested without vLLM):
- prompts go in as token ids (`{"prompt_token_ids": [...]}`, vLLM's TokensPrompt), so the
  library's own tokenisation and template are used, not vLLM's;
- `SamplingParams(n, temperature, top_p, top_k=off, max_tokens=max_new_tokens,
  logprobs=0, seed, stop_token_ids)`: logprobs=0 returns the sampled token's log-prob only; top_k "off" is
  the installed vLLM's own default (-1 in older releases, 0 in newer ones); each prompt gets
  its own request seed `seed * 1_000_003 + prompt_index`, so identical prompts in one call
  still draw different samples and the call is reproducible; stop_token_ids are the
  end-of-turn tokens of `reward.END_TOKENS` that the tokenizer has (<|im_end|>, <|eot_id|>,
  ...), so a base model answering in a chat template stops where the reward would cut
  (its generation config may only name <|endoftext|>, and `text` has special tokens removed);
- the engine runs with `logprobs_mode="processed_logprobs"` where the installed vLLM has it
  (as verl does): log-probs after temperature (and after top_p masking). With top_p = 1
  (training and gradient rollouts) these equal `log_softmax(logits / T)`, as
  `sampling.TorchSampler` reports; with top_p < 1 (pass@k) they are renormalised over the
  nucleus, and pass@k does not use them.
- each vLLM `CompletionOutput` becomes a `Completion(prompt_index, token_ids, logprobs,
  finished = finish_reason == "stop", text)`; token_ids include EOS when it was produced.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from unlearnability.data.reward import END_TOKENS
from unlearnability.policy.sampling import Completion, SamplingParams

SEED_STRIDE = 1_000_003

GPU_HINT = ("VLLMSampler needs vLLM, which is not installed. Install the GPU extra on a machine "
            "with a CUDA GPU: pip install -e '.[gpu]'  (or use sampling.TorchSampler, which runs anywhere).")


def import_vllm():
    """The vllm module, or an ImportError that names the `[gpu]` extra."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{GPU_HINT} ({e})") from e
    return vllm


def request_seed(seed: int, prompt_index: int) -> int:
    """The vLLM request seed of prompt `prompt_index` in a call seeded with `seed`."""
    return (seed * SEED_STRIDE + prompt_index) % (2**63 - 1)


def sampling_kwargs(params: SamplingParams, prompt_index: int, top_k_off: int = -1,
                    stop_token_ids: Sequence[int] = ()) -> dict[str, Any]:
    """Keyword arguments of vllm.SamplingParams for one prompt of a `generate` call."""
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": top_k_off,
        "max_tokens": params.max_new_tokens,
        "logprobs": 0,  # only the sampled token's log-prob
        "seed": request_seed(params.seed, prompt_index),
        "stop_token_ids": list(stop_token_ids),
    }


def stop_ids(vocab: dict[str, int], tokens: Sequence[str] = END_TOKENS) -> list[int]:
    """Ids of the end-of-turn tokens this vocabulary has (none for the testbed's tokenizer)."""
    return sorted({vocab[t] for t in tokens if t in vocab})


def engine_kwargs(model: str, engine_fields: set[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of vllm.LLM for a checkpoint folder or hub id.

    engine_fields: the names vllm.EngineArgs accepts (None = assume all), so options newer
    than the installed vLLM (logprobs_mode) are left out instead of failing.
    """
    kw: dict[str, Any] = {"model": str(model), "tokenizer": str(model), "dtype": "auto",
                          "seed": 0, "gpu_memory_utilization": 0.85,
                          "logprobs_mode": "processed_logprobs"}
    kw.update(overrides)
    if engine_fields is not None:
        kw = {k: v for k, v in kw.items() if k in engine_fields or k in overrides}
    return kw


def _token_logprob(entry: Any, token_id: int) -> float:
    """The log-prob of `token_id` from one position of vLLM's logprobs (dict id -> Logprob)."""
    value = entry[token_id]
    return float(getattr(value, "logprob", value))


def completions_from_outputs(outputs: Sequence[Any], n: int) -> list[Completion]:
    """vLLM RequestOutputs (one per prompt, in prompt order) -> prompt-major Completions."""
    result: list[Completion] = []
    for i, req in enumerate(outputs):
        outs = sorted(req.outputs, key=lambda o: getattr(o, "index", 0))
        if len(outs) != n:
            raise RuntimeError(f"vLLM returned {len(outs)} samples for prompt {i}, expected n={n}")
        for o in outs:
            ids = list(o.token_ids)
            if o.logprobs is None or len(o.logprobs) != len(ids):
                raise RuntimeError(f"vLLM sample {o.index} of prompt {i}: missing log-probs "
                                   "(SamplingParams.logprobs must be 0)")
            lps = [_token_logprob(o.logprobs[t], tok) for t, tok in enumerate(ids)]
            result.append(Completion(prompt_index=i, token_ids=ids, logprobs=lps,
                                     finished=o.finish_reason == "stop", text=o.text or "",
                                     extra={"finish_reason": o.finish_reason}))
    return result


class VLLMSampler:
    """Sampler on a vLLM engine loaded from a checkpoint folder or a hub id (GPU)."""

    def __init__(self, model: str, stop_tokens: Sequence[str] = END_TOKENS, **engine_overrides: Any):
        """model: checkpoint folder (with its tokenizer) or hub id; engine_overrides go to vllm.LLM."""
        vllm = import_vllm()
        fields = {f.name for f in dataclasses.fields(vllm.EngineArgs)} if dataclasses.is_dataclass(
            vllm.EngineArgs) else None
        self.vllm = vllm
        self.llm = vllm.LLM(**engine_kwargs(model, fields, **engine_overrides))
        self.top_k_off = getattr(vllm.SamplingParams(), "top_k", -1)  # the installed version's "off"
        self.stop_token_ids = stop_ids(self.llm.get_tokenizer().get_vocab(), stop_tokens)

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """len(prompts) * params.n completions, prompt-major (see sampling.Sampler)."""
        if not prompts:
            return []
        requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        sps = [self.vllm.SamplingParams(**sampling_kwargs(params, i, self.top_k_off, self.stop_token_ids))
               for i in range(len(prompts))]
        outputs = self.llm.generate(requests, sps, use_tqdm=False)
        return completions_from_outputs(outputs, params.n)
