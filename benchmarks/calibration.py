"""The testbed's calibration targets (testbed-v3 issue), measured for a preset in one table.

    python benchmarks/calibration.py --preset default --seeds 1 42 37     # the full protocol
    python benchmarks/calibration.py --quick                              # the fast loop
    python benchmarks/calibration.py --quick --set grpo.lr=1e-4 --set world.styles='{worked: 1}'
    python benchmarks/calibration.py --train-first 256 --k 128 --set world.p=1000 ...   # a v3 regime

Runs what is missing (cached in the run store: a hypothesis re-run costs nothing) and prints:
the base model's competence by tier, its sampled vs greedy headroom and style prior; per seed,
the training-set pass@1 gain (k = eval.k) beside the paired held-out validation change with
its standard error, the max KL and the relative parameter change per step; the groups after
the intersection beside the binomial null (analysis/null.py: what the same draws, evaluations and
rules give if RL changed nothing), with the chance-corrected counts; seed agreement (switch rate,
agreement above chance, Fleiss' kappa) beside the null; the style shares of correct rollouts
before and after; the groups by tier, skill coverage and coupled skill; every testbed-v3 target
met or not (`calibration.targets_v3`).

--k N: evaluate pass@1 with N samples per problem at step 0 and at the last step (the runs are
unchanged: their hash holds eval.k, so this is not a --set). --train-first N: GRPO trains on the
first N training problems only (data.train_ids), and those are the ones classified.

--control-seeds 1: also the matched control without the extra styles (its own pretraining).

--quick: 2 seeds (1, 42) and the classification set cut to the first 256 training problems
(GRPO still trains on all of them; only the k-sample evaluation is smaller). Group sizes from
a quick run are for 256 problems, so its power target is scaled down in proportion.
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 1 42 37 (quick: 1 42)")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--quick", action="store_true", help="2 seeds, first 256 problems classified")
    ap.add_argument("--limit", type=int, default=None, help="classify only the first N training problems")
    ap.add_argument("--control-seeds", type=int, nargs="*", default=[],
                    help="also run the matched control with world.styles = {worked: 1} for these seeds "
                         "(pretrains its own base model) and print its validation change")
    ap.add_argument("--k", type=int, default=None, help="evaluation samples per problem (default: eval.k)")
    ap.add_argument("--train-first", type=int, default=None, metavar="N",
                    help="train on (and classify) the first N training problems only")
    ap.add_argument("--replicates", type=int, default=1000, help="null replicates")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, e.g. --set grpo.lr=1e-4 (repeatable)")
    args = ap.parse_args()
    seeds = args.seeds or ([1, 42] if args.quick else [1, 42, 37])
    limit = args.limit or (256 if args.quick else None)

    from unlearnability.config import parse_set
    from unlearnability.evaluation import calibration as cal
    from unlearnability.evaluation import groups, null
    from unlearnability.pipeline import experiment

    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 120)
    overrides = parse_set(args.overrides)
    if args.train_first:
        overrides.setdefault("data", {})["train_ids"] = [f"train-{i:04d}" for i in range(args.train_first)]
    st = experiment.baseline_study(args.preset, seeds, overrides, eval_limit=limit, eval_k=args.k)
    cfg = st.cfg
    s = st.initial.set_index("prompt_id").join(st.problems.set_index("prompt_id"))
    s["bucket"] = pd.cut(s["pass@1"], [-1, 0, 0.1, 1], labels=["=0", "(0,0.1]", ">0.1"])
    spread = pd.crosstab(s["tier"], s["bucket"], normalize="index").mul(100).round(1)
    spread["exact%"] = s.groupby("tier")["exact_rate"].mean().mul(100).round(1)
    spread["pass@1"] = s.groupby("tier")["pass@1"].mean().round(3)
    print(f"\n== base model, preset {args.preset}, {len(s)} problems, k={args.k or cfg.eval.k} (% of problems per tier)")
    print(spread.to_string())

    init_samples = experiment.read_eval(experiment.evaluate_checkpoint(st.run_dirs[seeds[0]], 0, k=args.k, limit=limit),
                                        samples=True)
    greedy = experiment.read_eval(experiment.evaluate_base(experiment.with_eval(cfg, k=1, temperature=0.0), "valid"))["pass@1"].mean()
    v0 = st.validations[seeds[0]]
    sampled = v0[v0.step == 0]["mean_reward"].mean()
    print(f"\nheadroom on validation: greedy pass@1 {greedy:.3f}, sampled pass@1 (T {cfg.eval.temperature}) {sampled:.3f}")
    print(f"chance of a right guess: 1/{cfg.world.p} = {1 / cfg.world.p:.4f}")
    if "style" in init_samples:
        print("\n== response styles of the base model's samples (all / correct only)")
        print(pd.concat([cal.style_shares(init_samples).assign(of="all").set_index("of"),
                         cal.style_shares(init_samples, correct_only=True).assign(of="correct").set_index("of")])
              .round(3).fillna(0).to_string())

    print("\n== per seed")
    val_changes, rows = {}, []
    init_mean = st.initial["pass@1"].mean()
    for seed in seeds:
        h, log = st.histories[seed], st.train_logs[seed]
        v = cal.paired_change(st.validations[seed])
        fin = st.finals[seed]["pass@1"].mean()
        val_changes[seed] = v
        draws = h.groupby("prompt_id").size()
        tr = h.groupby("step")["mean_reward"].mean()
        rows.append({"seed": seed, "train pass@1": f"{init_mean:.3f} -> {fin:.3f}", "train gain": round(fin - init_mean, 3),
                     "validation": f"{v['before']:.3f} -> {v['after']:.3f}", "val change": round(v["change"], 3),
                     "val SE": round(v["se"], 3), "drawn reward first->last": f"{tr.iloc[0]:.3f} -> {tr.iloc[-1]:.3f}",
                     "max KL": round(log.kl.max(), 4),
                     "rel change/step": f"{log.rel_change.mean():.2e}" if "rel_change" in log else "n/a",
                     "draws/problem": round(draws.mean(), 2)})
        fs = experiment.read_eval(experiment.evaluate_checkpoint(st.run_dirs[seed], cfg.grpo.steps, k=args.k, limit=limit),
                                  samples=True)
        if "style" in fs:
            print(f"seed {seed} styles after training (all samples): "
                  + ", ".join(f"{k} {x:.2f}" for k, x in cal.style_shares(fs).iloc[0].items()))
        vc = cal.validation_curve(st.validations[seed])
        print(f"seed {seed} validation curve: " + ", ".join(f"{int(r.step)}:{r['mean']:.3f}" for _, r in vc.iterrows()))
    print(pd.DataFrame(rows).set_index("seed").to_string())

    init = st.pass1(st.initial)
    finals = {x: st.pass1(st.finals[x]) for x in seeds}
    cls = st.classify(args.tau)
    chance = st.classify(args.tau, p=cfg.world.p)
    chance_counts = groups.table1(chance["group"])["count"]
    nr = null.null_from_study(st, tau=args.tau, replicates=args.replicates)
    vs_null = null.compare_groups(cls, st.histories, nr)
    print(f"\n== groups (intersection over seeds {seeds}, tau {args.tau}) beside the null ({args.replicates} replicates)")
    print(vs_null[["measured", "measured_text", "null_text", "verdict"]]
          .assign(chance_corrected=chance_counts).to_string())
    print("\n== seed agreement beside the null")
    nr_c = null.null_from_study(st, tau=args.tau, replicates=args.replicates, chance_p=cfg.world.p)
    print(null.compare_agreement(cls, st.histories, nr_c)[["label", "measured_text", "null_text", "verdict"]].to_string())
    print("\n== switching problems: the labels each gets across seeds")
    print(cal.switch_pairs(cls).to_string())
    knobs = groups.per_example_table(st, cls)
    for knob in ("tier", "coverage", "coupled_skill", "order"):
        table = groups.membership(knobs, knob)
        if table is not None:
            print(f"\n== groups by {knob.replace('_', ' ')} (problems, row percent)")
            print(table.to_string())
    if args.control_seeds:
        from unlearnability.store.history import read_validation

        print("\n== matched control: worked solutions only (paired validation change)")
        for seed, d in experiment.styles_control_runs(args.preset, args.control_seeds, parse_set(args.overrides)).items():
            v = cal.paired_change(read_validation(d))
            print(f"control seed {seed}: validation {v['before']:.3f} -> {v['after']:.3f}: "
                  f"{v['change']:+.3f} +- {v['se']:.3f} (n {v['n']})")
    print("\n== testbed-v3 targets")
    rollouts = {x: groups.training_positives(h)["rollouts"] for x, h in st.histories.items()}
    print(cal.targets_v3(val_changes, vs_null, chance_counts,
                         cal.agreement(cls, st.histories, cfg.world.p), rollouts, 1 / cfg.world.p).to_string())


if __name__ == "__main__":
    main()
