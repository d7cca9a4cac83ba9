"""Where a GRPO step of a preset spends its time: generation vs the loss (old-policy and
reference forwards, then the updates), with and without `grpo.loss_chunk_tokens`.

    python benchmarks/step_split.py [--preset default] [--base runs/base/<hash>] [--chunk 4096] [--steps 3]

Each setting trains `--steps` steps of the preset's batch from the same weights (a base model
folder, else random init) with dynamic sampling off (every step the same work), twice, in the
order off, on, off, on, side by side in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _setup import testbed_batch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--base", default=None)
    ap.add_argument("--chunk", type=int, default=4096, help="loss_chunk_tokens of the 'on' setting")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from unlearnability.grpo import generate_groups, train_step
    from unlearnability.model import load_model
    from unlearnability.sampling import TorchSampler

    cfg0, base, task, problems = testbed_batch(args.preset, args.base, n_prompts=cfg_prompts(args) * args.steps)
    P = cfg0.grpo.prompts_per_step
    print(f"{args.preset}: {P} prompts x {cfg0.grpo.rollouts_per_prompt} rollouts, "
          f"{P // cfg0.grpo.mini_batch_prompts} updates a step, model {base}, {args.threads} thread(s)")
    for chunk in (None, args.chunk, None, args.chunk):
        g = dataclasses.replace(cfg0.grpo, dynamic_sampling=False, loss_chunk_tokens=chunk)
        model, ref = load_model(base), load_model(base)
        ref.requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=g.lr, weight_decay=g.weight_decay)
        sampler = TorchSampler(model, task.tokenizer)
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
        print(f"  loss_chunk_tokens={chunk}: generation {gen_s / n:.2f} s/step, loss {loss_s / n:.2f} s/step, "
              f"step {(gen_s + loss_s) / n:.2f} s, {tokens / n:.0f} generated tokens/step", flush=True)
    return 0


def cfg_prompts(args) -> int:
    from unlearnability.config import load_config

    return load_config(args.preset).grpo.prompts_per_step


if __name__ == "__main__":
    sys.exit(main())
