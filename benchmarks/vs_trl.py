"""One GRPO step of this library against TRL's `GRPOTrainer`, at equal work.

    pip install -e '.[bench]'          # TRL (optional: only this benchmark uses it)
    python benchmarks/vs_trl.py [--steps 3] [--threads 2] [--base runs/base/<hash>]

Both engines train the same tiny Qwen2 (the default preset's 1.06M-parameter model, random
init unless --base names a model folder) on the same 32 prompts x 8 rollouts a step, with:
- one optimizer update per step (mini-batch = the whole batch, one PPO epoch), AdamW at the
  preset's learning rate, constant, gradient clipping 1.0;
- sampling at temperature 1.0, top_p 1.0, top_k off, up to the preset's max_new_tokens;
- token-mean loss over the batch (TRL's `loss_type="dapo"`), clipping 0.2 / 0.2, group-scaled
  advantages, the k3 KL to the reference at the preset's coefficient (TRL:
  `use_bias_correction_kl=False`), the preset's entropy bonus, fp32 (`bf16=False`);
- no dynamic sampling on this side (TRL has none): every group is trained, as in TRL.

Each engine runs `--steps` steps after one warm-up step; the script prints seconds per step and
generated tokens per step (random-init models stop at different lengths, so the fair ratio is
per generated token), then the ratio. Target (issue): this library >= 2x faster than TRL per
generated token.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _setup import testbed_batch  # noqa: E402

PROMPTS, ROLLOUTS = 32, 8


def ours(cfg, base, task, problems, steps: int, chunk: int | None = None) -> list[tuple[float, int]]:
    """[(seconds, generated tokens)] per timed step of this library's GRPO step."""
    from unlearnability.policy.model import load_model
    from unlearnability.policy.sampling import TorchSampler
    from unlearnability.train.grpo import generate_groups, train_step

    g = dataclasses.replace(cfg.grpo, prompts_per_step=PROMPTS, rollouts_per_prompt=ROLLOUTS,
                            mini_batch_prompts=PROMPTS, ppo_epochs=1, dynamic_sampling=False, temperature=1.0,
                            top_p=1.0, loss_chunk_tokens=chunk)
    model, ref = load_model(base), load_model(base)
    ref.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=g.lr, weight_decay=g.weight_decay)
    sampler, tok = TorchSampler(model, task.tokenizer), task.tokenizer
    out = []
    for step in range(steps + 1):
        ids = [p.id for p in problems[step * PROMPTS: (step + 1) * PROMPTS]]
        t = time.perf_counter()
        groups = generate_groups(sampler, task, ids, g, seed=step)
        train_step(model, ref, opt, groups, g, tok.pad_token_id, "none", seed=step)
        s = time.perf_counter() - t
        if step:  # step 0 warms up
            out.append((s, sum(len(r) for gr in groups for r in gr.responses)))
    return out


def trl_steps(cfg, base, task, problems, steps: int) -> list[tuple[float, int]]:
    """[(seconds, generated tokens)] per timed step of TRL's GRPOTrainer."""
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from unlearnability.policy.model import load_model

    g = cfg.grpo
    by_id = {p.id: p for p in problems}
    ds = Dataset.from_list([{"prompt": task.template(p.question), "prompt_id": p.id}
                            for p in problems[: (steps + 1) * PROMPTS]])
    tokens: list[int] = []

    def reward(completions, prompt_id, completion_ids=None, **kw):
        tokens.append(sum(len(c) for c in completion_ids) if completion_ids is not None else 0)
        return [task.reward(by_id[i], c) for c, i in zip(completions, prompt_id)]

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=PROMPTS * ROLLOUTS,
        num_generations=ROLLOUTS, gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1,
        max_completion_length=g.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=g.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=g.weight_decay,
        max_grad_norm=g.grad_clip, beta=g.kl_coef, epsilon=g.eps_low, epsilon_high=g.eps_high,
        loss_type="dapo", scale_rewards="group", use_bias_correction_kl=False, entropy_coef=g.entropy_coef,
        bf16=False, fp16=False, use_cpu=True, report_to="none", logging_steps=1, save_strategy="no",
        max_steps=steps + 1, shuffle_dataset=False, disable_dropout=True, dataloader_num_workers=0, seed=0)
    tok = PreTrainedTokenizerFast.from_pretrained(str(base))
    tok.padding_side = "left"
    trainer = GRPOTrainer(model=load_model(base), reward_funcs=reward, args=args, train_dataset=ds,
                          processing_class=tok, callbacks=[Timer()])
    trainer.train()
    return list(zip(times[1:], tokens[1:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per engine (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--base", default=None, help="a model folder (default: random init of the default preset)")
    ap.add_argument("--loss-chunk-tokens", type=int, default=None,
                    help="this library's grpo.loss_chunk_tokens (rows bucketed by length in the loss); "
                         "also runs the library without it, side by side")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import trl
    except ImportError:
        print("TRL is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    cfg, base, task, problems = testbed_batch("default", args.base, n_prompts=PROMPTS * (args.steps + 1))
    print(f"model {base}; {PROMPTS} prompts x {ROLLOUTS} rollouts, up to {cfg.grpo.max_new_tokens} new tokens, "
          f"one update a step, fp32, {torch.get_num_threads()} threads; TRL {trl.__version__}")
    res = {"this library": ours(cfg, base, task, problems, args.steps)}
    if args.loss_chunk_tokens:
        res[f"this library, loss in buckets of {args.loss_chunk_tokens} tokens"] = ours(
            cfg, base, task, problems, args.steps, args.loss_chunk_tokens)
    res["TRL GRPOTrainer"] = trl_steps(cfg, base, task, problems, args.steps)
    per_tok = {}
    for name, rows in res.items():
        for i, (s, n) in enumerate(rows, 1):
            print(f"  {name}, step {i}: {s:6.2f} s, {n:6d} generated tokens, {1000 * s / max(n, 1):.3f} ms/token")
        per_tok[name] = statistics.median(s / max(n, 1) for s, n in rows)
        print(f"  {name}: median {statistics.median(s for s, _ in rows):.2f} s/step, "
              f"{statistics.median(n for _, n in rows):.0f} tokens/step")
    trl_ms = per_tok.pop("TRL GRPOTrainer")
    for name, ms in per_tok.items():
        ratio = trl_ms / ms
        print(f"per generated token: {name} {1000 * ms:.3f} ms, TRL {1000 * trl_ms:.3f} ms; {ratio:.2f}x "
              f"(target >= 2x faster than TRL): {'met' if ratio >= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
