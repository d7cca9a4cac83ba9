"""Choose the testbed's regime with the null, before training (testbed-v3 issue, item 3).

    python benchmarks/null_frontier.py                      # the default grid, ~1 minute
    python benchmarks/null_frontier.py --n-train 1024 --schedules 72x32 36x64 --final-k 64 128
    python benchmarks/null_frontier.py --replicates 100     # faster, noisier tails

For each regime of a grid, Table 1 "if RL changed nothing" (analysis/null.py's simulation core,
`null.simulate_rates`, with the book's own labelling rules), before any run exists:

  * world: n_train problems in six equally common tiers, each problem's reasoning pass rate drawn
    per replicate from a Beta(rate * c, (1 - rate) * c) around its tier's rate (--tier-rates, the
    audit's base pass@1 by tier; c = --concentration); a rollout that does not reason its way to
    the answer is right anyway with the guess floor 1/p (answers mod p). The audit's rates were
    measured at p = --measured-p (today's p = 100) and so already hold that floor: it is taken out
    ((m - 1/p0) / (1 - 1/p0)) before each regime's own floor is put in (--measured-p 0: the rates
    are used as reasoning rates and the floor added on top).
  * training draws: GRPO draws prompts from a shuffled epoch stream and dynamic sampling keeps
    only groups with mixed rewards, so a run draws about steps x prompts_per_step / kept_share
    groups and each problem gets floor(d) or floor(d) + 1 of them per seed, d = that / n_train
    (--kept: the kept share of drawn groups, 0.27 measured on today's default); every drawn group,
    kept or dropped, is rollouts_per_prompt training rollouts of that problem.
  * evaluation: the initial evaluation takes --initial-k samples per problem; the final evaluation
    of each seed takes --final-k samples (only non-easy problems' finals matter for the labels).

Printed per regime: training rollouts per problem per seed (median, 10th percentile over problems
and seeds); the null's shares of problems that are unlearnable, no-reward (the paper's column: the
union over seeds of the problems some seed never rewarded) and learnable (mean and 97.5th
percentile over replicates: a measured group above the 97.5th percentile is above the null);
P(same label in every seed) for a non-easy problem whose per-rollout pass rate is --rate (0.05,
guessing included), from the same simulation; the generated training rollouts relative to today's
default (30 steps x 32 prompts x 8 rollouts / kept share, per seed) and the final evaluation's
samples relative to today's (1024 problems x 32). A regime is marked "yes" when it meets all of
--min-rollouts (10th percentile of training rollouts per problem per seed), --max-floor (guess
floor 1/p) and --min-same (same-label probability); otherwise the unmet ones are named.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

TODAY = {"steps": 30, "prompts": 32, "rollouts": 8, "n_train": 1024, "final_k": 32, "p": 100}


def schedule(text: str) -> tuple[int, int]:
    """'60x32' -> (60 steps, 32 prompts per step)."""
    steps, prompts = text.lower().split("x")
    return int(steps), int(prompts)


def draws_per_problem(rng, n_train: int, steps: int, prompts: int, kept: float, seeds: int) -> np.ndarray:
    """(seeds, n_train) groups drawn of each problem: an epoch stream gives floor(d) or floor(d) + 1."""
    d = steps * prompts / (kept * n_train)
    base = math.floor(d)
    extra = np.stack([rng.permutation(n_train) < round((d - base) * n_train) for _ in range(seeds)])
    return base + extra.astype(int)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, nargs="+", default=[256, 512, 1024], help="training problems")
    ap.add_argument("--schedules", nargs="+", default=["30x32", "60x32", "120x32", "60x64"],
                    help="GRPO steps x prompts_per_step (kept groups per step)")
    ap.add_argument("--rollouts", type=int, default=8, help="rollouts per prompt (group size)")
    ap.add_argument("--kept", type=float, default=0.27, help="kept share of drawn groups under dynamic sampling")
    ap.add_argument("--final-k", type=int, nargs="+", default=[32, 64, 128],
                    help="samples of each seed's final evaluation (non-easy problems)")
    ap.add_argument("--initial-k", type=int, default=32, help="samples of the initial evaluation")
    ap.add_argument("--p", type=int, nargs="+", default=[100, 1000], help="answer moduli: guess floor 1/p")
    ap.add_argument("--tier-rates", type=float, nargs="+", default=[0.255, 0.108, 0.057, 0.027, 0.017, 0.019],
                    help="base pass@1 by tier (the audit's, measured at p = --measured-p)")
    ap.add_argument("--measured-p", type=int, default=100,
                    help="modulus the tier rates were measured at (their floor is taken out); 0: none")
    ap.add_argument("--concentration", type=float, default=5.0, help="Beta spread of rates inside a tier (a + b)")
    ap.add_argument("--seeds", type=int, default=3, help="GRPO seeds intersected")
    ap.add_argument("--tau", type=float, default=0.1, help="pass@1 threshold of the labels")
    ap.add_argument("--rate", type=float, default=0.05, help="pass rate of the same-label probability")
    ap.add_argument("--replicates", type=int, default=200, help="null replicates per regime")
    ap.add_argument("--min-rollouts", type=int, default=60,
                    help="criterion: 10th percentile of training rollouts per problem per seed")
    ap.add_argument("--max-floor", type=float, default=0.002, help="criterion: guess floor 1/p at most")
    ap.add_argument("--min-same", type=float, default=0.9, help="criterion: same-label probability at --rate")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the draws and the null")
    args = ap.parse_args()

    from unlearnability.evaluation import null

    t0 = time.time()
    tiers = np.asarray(args.tier_rates, dtype=float)
    if args.measured_p:
        g = 1.0 / args.measured_p
        tiers = np.clip((tiers - g) / (1 - g), 1e-4, 1.0)
    seeds = list(range(args.seeds))
    today_cost = TODAY["steps"] * TODAY["prompts"] * TODAY["rollouts"] / args.kept
    today_eval = TODAY["n_train"] * TODAY["final_k"]
    rows, same_cache = [], {}
    for n in args.n_train:
        rates = tiers[np.arange(n) % len(tiers)]
        for sched in args.schedules:
            steps, prompts = schedule(sched)
            rng = np.random.default_rng([args.seed, n, steps, prompts])
            draws = draws_per_problem(rng, n, steps, prompts, args.kept, len(seeds))
            roll = draws * args.rollouts
            rollouts = {s: roll[i] for i, s in enumerate(seeds)}
            for k in args.final_k:
                final_n = {s: k for s in seeds}
                key = (n, sched, k)
                if key not in same_cache:  # same-label probability: many problems at one rate, no floor on top
                    m = 4000
                    big = draws_per_problem(rng, m, steps, prompts * m / n, args.kept, len(seeds)) * args.rollouts
                    at = null.simulate_rates(np.full(m, args.rate), args.initial_k,
                                             {s: big[i] for i, s in enumerate(seeds)}, final_n, tau=args.tau,
                                             replicates=20, seed=args.seed)
                    same_cache[key] = 1 - float(at.draws["switch_non_easy"].mean())
                for p in args.p:
                    res = null.simulate_rates(rates, args.initial_k, rollouts, final_n,
                                              concentration=args.concentration, floor=1.0 / p, tau=args.tau,
                                              replicates=args.replicates, seed=args.seed)
                    d = res.draws * (100.0 / n)
                    easy = float(res.draws["easy"].mean()) / n
                    fails = [name for name, ok in (("rollouts", np.percentile(roll, 10) >= args.min_rollouts),
                                                   ("floor", 1.0 / p <= args.max_floor),
                                                   ("same-label", same_cache[key] >= args.min_same)) if not ok]
                    today = (n, steps, prompts, k, p) == (TODAY["n_train"], TODAY["steps"], TODAY["prompts"],
                                                          TODAY["final_k"], TODAY["p"])
                    rows.append({
                        "n_train": n, "steps x prompts": sched, "final k": k, "p": p,
                        "rollouts med": float(np.median(roll)), "rollouts p10": float(np.percentile(roll, 10)),
                        "unl %": d["unlearnable"].mean(), "unl 97.5": d["unlearnable"].quantile(0.975),
                        "no-rew %": d["no_reward_union"].mean(), "no-rew 97.5": d["no_reward_union"].quantile(0.975),
                        "learn 97.5": d["learnable"].quantile(0.975),
                        f"same@{args.rate:g}": same_cache[key],
                        "train cost x": steps * prompts * args.rollouts / args.kept / today_cost,
                        "eval cost x": n * (easy * args.initial_k + (1 - easy) * k) / today_eval,
                        "meets": ("yes" if not fails else "no: " + ", ".join(fails)) + (" (today)" if today else ""),
                    })
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(f"Null frontier: Table 1 if RL changed nothing, {args.seeds} seeds, tau {args.tau}, {args.replicates} "
          f"replicates per regime; reasoning rates by tier {', '.join(f'{r:.4f}' for r in tiers)} "
          f"(Beta spread a + b = {args.concentration:g}) plus the guess floor 1/p; kept share {args.kept}, "
          f"{args.rollouts} rollouts per group, initial k {args.initial_k}.")
    print("Shares in percent of training problems; no-rew: the paper's column (union over seeds); "
          f"same@{args.rate:g}: P(one label in every seed | non-easy) at that pass rate; costs relative to "
          "today's default (1024 problems, 30x32, k 32, p 100).")
    print(out.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    ok = out[out.meets.str.startswith("yes")]
    print(f"\n{len(ok)} of {len(out)} regimes meet rollouts p10 >= {args.min_rollouts}, floor <= {args.max_floor:.1%}, "
          f"same-label >= {args.min_same}" + (f"; cheapest: " + "; ".join(
              f"{r['n_train']} problems, {r['steps x prompts']}, k {r['final k']}, p {r['p']} "
              f"(train x{r['train cost x']:.1f}, eval x{r['eval cost x']:.2f}, null unl {r['unl %']:.1f}% <= "
              f"{r['unl 97.5']:.1f}%)" for _, r in ok.sort_values(["train cost x", "eval cost x"]).head(3).iterrows())
              if len(ok) else "") + f". ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
