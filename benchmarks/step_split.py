"""Where a GRPO step of a preset spends its time: generation vs the loss (old-policy and
reference forwards, then the updates), with the fast decoder and with the transformers one.

    python benchmarks/step_split.py [--preset default] [--base runs/base/<hash>] [--steps 3]
    python benchmarks/step_split.py --compare chunk [--chunk 4096]   # loss_chunk_tokens off / on

Each setting trains `--steps` steps of the preset's batch from the same weights (a base model
folder, else random init) with dynamic sampling off (every step the same work), twice, in the
order A, B, A, B, side by side in one run; the medians of the two rounds are compared.

--compare decoder (default): the step before the fast decoder (grpo.decoder transformers, i.e.
sampling.TorchSampler, with every old log-prob recomputed) vs the preset's (decoder.FastSampler and
the preset's grpo.old_logprobs: "sampler" takes the fast decoder's own log-probs for the old
policy), both at the preset's loss_chunk_tokens. Target: the step >= 1.3x faster.
--compare chunk: loss_chunk_tokens None vs --chunk, with the preset's decoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _setup import testbed_batch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--base", default=None)
    ap.add_argument("--compare", choices=("decoder", "chunk"), default="decoder")
    ap.add_argument("--chunk", type=int, default=4096, help="loss_chunk_tokens of the 'on' setting (--compare chunk)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from unlearnability.policy.decoder import make_sampler
    from unlearnability.policy.model import load_model
    from unlearnability.train.grpo import generate_groups, train_step

    cfg0, base, task, problems = testbed_batch(args.preset, args.base, n_prompts=cfg_prompts(args) * args.steps)
    P = cfg0.grpo.prompts_per_step
    print(f"{args.preset}: {P} prompts x {cfg0.grpo.rollouts_per_prompt} rollouts, up to {cfg0.grpo.max_new_tokens} "
          f"new tokens, {P // cfg0.grpo.mini_batch_prompts} updates a step, model {base}, {args.threads} thread(s)")
    if args.compare == "decoder":
        # today's step before the fast decoder: the transformers sampler and every old log-prob recomputed
        settings = {"transformers": {"decoder": "transformers", "old_logprobs": "recompute"},
                    "fast": {"decoder": "fast", "old_logprobs": cfg0.grpo.old_logprobs}}
    else:
        settings = {"loss_chunk_tokens=None": {"loss_chunk_tokens": None},
                    f"loss_chunk_tokens={args.chunk}": {"loss_chunk_tokens": args.chunk}}
    steps: dict[str, list[float]] = {k: [] for k in settings}
    gens: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(2):
        for name, change in settings.items():
            g = dataclasses.replace(cfg0.grpo, dynamic_sampling=False, **change)
            model, ref = load_model(base), load_model(base)
            ref.requires_grad_(False)
            opt = torch.optim.AdamW(model.parameters(), lr=g.lr, weight_decay=g.weight_decay)
            sampler = make_sampler(model, task.tokenizer, g.decoder)
            gen_s = loss_s = 0.0
            tokens = 0
            for step in range(args.steps):
                ids = [p.id for p in problems[step * P:(step + 1) * P]]
                t0 = time.perf_counter()
                groups = generate_groups(sampler, task, ids, g, seed=step)
                t1 = time.perf_counter()
                train_step(model, ref, opt, groups, g, task.tokenizer.pad_token_id, cfg0.model.autocast, seed=step)
                loss_s += time.perf_counter() - t1
                gen_s += t1 - t0
                tokens += sum(len(r) for gr in groups for r in gr.responses)
            n = args.steps
            steps[name].append((gen_s + loss_s) / n)
            gens[name].append(gen_s / n)
            print(f"  {name} ({type(sampler).__name__}): generation {gen_s / n:.2f} s/step "
                  f"({tokens / gen_s:.0f} tokens/s), loss {loss_s / n:.2f} s/step, step {(gen_s + loss_s) / n:.2f} s, "
                  f"{tokens / n:.0f} generated tokens/step", flush=True)
    (a, b) = settings
    step_x = statistics.median(steps[a]) / statistics.median(steps[b])
    gen_x = statistics.median(gens[a]) / statistics.median(gens[b])
    line = f"median step: {a} {statistics.median(steps[a]):.2f} s, {b} {statistics.median(steps[b]):.2f} s; " \
           f"step speed-up {step_x:.2f}x, generation speed-up {gen_x:.2f}x"
    if args.compare == "decoder":
        line += f" (target: step >= 1.3x): {'met' if step_x >= 1.3 else 'NOT met'}"
    print(line)
    return 0


def cfg_prompts(args) -> int:
    from unlearnability.config import load_config

    return load_config(args.preset).grpo.prompts_per_step


if __name__ == "__main__":
    sys.exit(main())
