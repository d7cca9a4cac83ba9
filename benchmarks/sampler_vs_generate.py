"""The fast decoder, this library's transformers-forward sampler and transformers' `generate`,
side by side at the same distribution.

    python benchmarks/sampler_vs_generate.py [--base runs/base/<hash>] [--repeats 3] [--threads 1]

All three draw 8 samples for each of 32 training prompts of the default preset (its GRPO batch)
at temperature 1.0 with top_p 1.0 and top_k off (`generate(do_sample=True, top_k=0)`), up to
the preset's max_new_tokens (160), from the same weights (the default model's shape, random init
unless --base names a model folder), on the same threads (one by default):

- fast: `decoder.FastSampler` (plain-torch Qwen2 decoder: prefill once per prompt, preallocated
  KV cache, cascade attention over the shared prompt, dense batch when rows end);
- transformers: `sampling.TorchSampler` (the transformers Qwen2 forward and its DynamicCache);
- generate: `model.generate` (no row dropping, the whole batch to the longest sample).

Generated tokens are counted up to and including EOS. The three run in turn, `--repeats` times;
the medians are compared, by wall-clock time and by this thread's CPU time (steadier when other
work shares the machine: time spent descheduled is not counted). Targets: fast >= 3x
transformers (stretch 5x); transformers >= 1.5x generate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _setup import testbed_batch  # noqa: E402


def sampler_tokens(kind: str):
    def run(model, tok, prompts, n, max_new, seed):
        from unlearnability.policy.decoder import FastSampler
        from unlearnability.policy.sampling import SamplingParams, TorchSampler

        sampler = (FastSampler if kind == "fast" else TorchSampler)(model, tok)
        comps = sampler.generate(prompts, SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=max_new,
                                                         seed=seed))
        return sum(len(c.token_ids) for c in comps)
    return run


def hf_generate(model, tok, prompts, n, max_new, seed):
    torch.manual_seed(seed)
    pad = tok.pad_token_id
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p)
        mask[i, L - len(p):] = 1
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0,
                             top_k=0, max_new_tokens=max_new, num_return_sequences=n, pad_token_id=pad,
                             eos_token_id=tok.eos_token_id)
    gen = out[:, L:]
    ended = gen == tok.eos_token_id
    first = torch.where(ended.any(1), ended.float().argmax(1) + 1, torch.full((gen.shape[0],), gen.shape[1]))
    return int(first.sum())


ENGINES = {"fast": sampler_tokens("fast"), "transformers": sampler_tokens("transformers"), "generate": hf_generate}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=None, help="a model folder (default: the default preset's model, random init)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from unlearnability.policy.model import load_model

    cfg, base, task, problems = testbed_batch("default", args.base)
    model, tok = load_model(base), task.tokenizer
    prompts = [task.prompt_ids(p) for p in problems]
    n, max_new = cfg.grpo.rollouts_per_prompt, cfg.grpo.max_new_tokens
    print(f"{len(prompts)} prompts x {n} samples, up to {max_new} new tokens, T = 1.0, top_p = 1.0, top_k off; "
          f"model {base} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters), "
          f"{torch.get_num_threads()} thread(s)")
    rates: dict[str, dict[str, list[float]]] = {"wall": {k: [] for k in ENGINES}, "cpu": {k: [] for k in ENGINES}}
    for r in range(args.repeats):
        for name, fn in ENGINES.items():
            t, c = time.perf_counter(), time.thread_time()
            tokens = fn(model, tok, prompts, n, max_new, seed=r)
            s, cs = time.perf_counter() - t, time.thread_time() - c
            rates["wall"][name].append(tokens / s)
            rates["cpu"][name].append(tokens / cs)
            print(f"  run {r + 1} {name:12s} {tokens:6d} tokens in {s:6.2f} s = {tokens / s:7.0f} tokens/s "
                  f"(CPU {cs:6.2f} s = {tokens / cs:7.0f} tokens/s)", flush=True)
    for clock, by in rates.items():
        med = {k: statistics.median(v) for k, v in by.items()}
        fast_x, torch_x = med["fast"] / med["transformers"], med["transformers"] / med["generate"]
        print(f"median tokens/s by {clock} time: fast {med['fast']:.0f}, transformers (TorchSampler) "
              f"{med['transformers']:.0f}, generate {med['generate']:.0f}; fast / transformers {fast_x:.2f}x "
              f"(target >= 3x, stretch 5x): {'met' if fast_x >= 3 else 'NOT met'}; fast / generate "
              f"{med['fast'] / med['generate']:.2f}x; transformers / generate {torch_x:.2f}x (target >= 1.5x): "
              f"{'met' if torch_x >= 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
