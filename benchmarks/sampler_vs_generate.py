"""This library's sampler against transformers' `generate` at the same distribution.

    python benchmarks/sampler_vs_generate.py [--base runs/base/<hash>] [--repeats 3]

Both draw 8 samples for each of 32 training prompts of the default preset (its GRPO batch) at
temperature 1.0 with top_p 1.0 and top_k off (`generate(do_sample=True, top_k=0)`), up to the
preset's max_new_tokens, from the same weights (random init unless --base names a model folder),
on the same threads. Generated tokens are counted up to and including EOS. The two run
alternately, `--repeats` times; the medians are compared. Target: >= 1.5x tokens per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _setup import testbed_batch  # noqa: E402


def ours(model, tok, prompts, n, max_new, seed):
    from unlearnability.sampling import SamplingParams, TorchSampler

    comps = TorchSampler(model, tok).generate(prompts, SamplingParams(n=n, temperature=1.0, top_p=1.0,
                                                                      max_new_tokens=max_new, seed=seed))
    return sum(len(c.token_ids) for c in comps)


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=None, help="a model folder (default: the default preset's model, random init)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from unlearnability.model import load_model

    cfg, base, task, problems = testbed_batch("default", args.base)
    model, tok = load_model(base), task.tokenizer
    prompts = [task.prompt_ids(p) for p in problems]
    n, max_new = cfg.grpo.rollouts_per_prompt, cfg.grpo.max_new_tokens
    print(f"{len(prompts)} prompts x {n} samples, up to {max_new} new tokens, T = 1.0, top_p = 1.0, top_k off; "
          f"model {base} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters), "
          f"{torch.get_num_threads()} threads")
    rates = {"this library": [], "transformers generate": []}
    for r in range(args.repeats):
        for name, fn in (("this library", ours), ("transformers generate", hf_generate)):
            t = time.perf_counter()
            tokens = fn(model, tok, prompts, n, max_new, seed=r)
            s = time.perf_counter() - t
            rates[name].append(tokens / s)
            print(f"  run {r + 1} {name:22s} {tokens:6d} tokens in {s:6.2f} s = {tokens / s:7.0f} tokens/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["this library"] / med["transformers generate"]
    print(f"median tokens/s: this library {med['this library']:.0f}, transformers {med['transformers generate']:.0f}; "
          f"ratio {ratio:.2f}x (target >= 1.5x): {'met' if ratio >= 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
