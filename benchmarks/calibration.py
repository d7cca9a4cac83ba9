"""The engine issue's calibration targets, measured for a preset (runs what is missing).

    python benchmarks/calibration.py --preset default --seeds 1 42

Prints: initial pass@1 spread and exact worked-solution rate by tier; chance of a right
guess; training / validation pass@1 and KL of each seed; draws per problem; the share of
non-easy problems that switch groups between the seeds; each target met or not.
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 42])
    ap.add_argument("--tau", type=float, default=0.1)
    args = ap.parse_args()

    from unlearnability import experiment, groups

    st = experiment.baseline_study(args.preset, args.seeds)
    cfg = st.cfg
    s = st.initial.set_index("prompt_id").join(st.problems.set_index("prompt_id"))
    s["bucket"] = pd.cut(s["pass@1"], [-1, 0, 0.1, 1], labels=["=0", "(0,0.1]", ">0.1"])
    spread = pd.crosstab(s["tier"], s["bucket"], normalize="index").mul(100).round(1)
    spread["exact%"] = s.groupby("tier")["exact_rate"].mean().mul(100).round(1)
    spread["pass@1"] = s.groupby("tier")["pass@1"].mean().round(3)
    pd.set_option("display.width", 160)
    print(f"\n== initial pass@1 spread by tier (% of problems), preset {args.preset}, k={cfg.eval.k}")
    print(spread.to_string())
    print("\n== by coverage")
    print(s.groupby("coverage")[["pass@1", "exact_rate"]].mean().round(3).to_string())
    easiest = spread.index.min()
    tiers = spread["exact%"].tolist()
    print(f"\nchance of a right guess: 1/{cfg.world.p} = {1 / cfg.world.p:.4f}")
    print("\n== per seed")
    for seed in args.seeds:
        h, v, log = st.histories[seed], st.validations[seed], st.train_logs[seed]
        tr = h.groupby("step")["mean_reward"].mean()
        vv = v.groupby("step")["mean_reward"].mean()
        fin = st.finals[seed]["pass@1"].mean()
        draws = h.groupby("prompt_id").size()
        processed = h[h.processed == 1].groupby("prompt_id").size()
        print(f"seed {seed}: train pass@1 (k={cfg.eval.k}) {st.initial['pass@1'].mean():.3f} -> {fin:.3f}; "
              f"validation {vv.iloc[0]:.3f} -> {vv.iloc[-1]:.3f} (steps {vv.index[0]}..{vv.index[-1]}); "
              f"drawn-prompt reward step 1 {tr.iloc[0]:.3f} -> step {tr.index[-1]} {tr.iloc[-1]:.3f}; "
              f"max KL {log.kl.max():.4f}; draws/problem mean {draws.mean():.2f} "
              f"(min {draws.min()}, max {draws.max()}), processed mean {processed.reindex(draws.index, fill_value=0).mean():.2f}")
        print("   validation curve: " + ", ".join(f"{k}:{x:.3f}" for k, x in vv.items()))
    init = st.pass1(st.initial)
    cls = groups.classify(init, {x: st.pass1(st.finals[x]) for x in args.seeds}, st.histories, args.tau)
    sw = groups.switches(cls)
    print("\n== groups (intersection over seeds)")
    print(groups.table1(cls["group"]).to_string())
    print(f"non-easy problems switching group between seeds: {100 * sw['any_switch']:.1f}% of {sw['problems']}")
    val0 = st.validations[args.seeds[0]].groupby("step")["mean_reward"].mean()
    print("\n== targets")
    print(f"easiest tier exact worked solutions >= 60%: {tiers[0]:.1f}% -> {'met' if tiers[0] >= 60 else 'NOT met'}")
    print(f"exact rate declines with tier: {tiers} -> {'met' if all(a >= b for a, b in zip(tiers, tiers[1:])) else 'not monotone'}")
    print(f"guess chance <= 1%: {100 / cfg.world.p:.2f}% -> {'met' if 1 / cfg.world.p <= 0.01 else 'NOT met'}")
    print(f"validation rises (seed {args.seeds[0]}): {val0.iloc[0]:.3f} -> {val0.iloc[-1]:.3f}")
    print(f"seed switching (non-easy): {100 * sw['any_switch']:.1f}% (prototype: 48%)")


if __name__ == "__main__":
    main()
