"""Style headroom (testbed-v2 issue, hypothesis 1): does GRPO transfer more to held-out problems
when the base model samples the style that pays (worked chains) less often?

    python benchmarks/style_headroom.py                           # worked shares 0.4 and 0.25, 20 steps, seed 1
    python benchmarks/style_headroom.py --shares 0.4 --steps 30 --control
    python benchmarks/style_headroom.py --from-scratch 0.4 --steps 30     # pretrains a base model per share

The fast loop. Pretraining a base model per style mix costs 30-80 min on 2 cores, so each arm
instead *continues* the preset's cached base model for `midtrain.tokens` (a seventh of the
pretraining tokens) on the same world with the response styles re-weighted: worked share w, the
other three styles sharing 1 - w equally (`midtrain.mixture: pretrain`, so tiers and skills are
drawn as in pretraining). Then one GRPO run per seed with the preset's settings. Every arm,
the reference included, uses `grpo.loss_chunk_tokens` (default 4096) so the arms differ only in
the base model.

Arms, each a row:
  preset            the preset's base model as pretrained (its style mix, final phase included), the reference
  mid-trained w     the preset's base continued on the mix with worked share w (--shares)
  from scratch w    a base pretrained on that mix from the start, no final phase (--from-scratch; slow)
  worked only       a base pretrained on worked solutions alone (--control; the matched control)

The default preset's final pretraining phase (`pretrain.anneal_styles`, equal shares) came out
of this loop: on its earlier base (the 70%-worked corpus, no final phase) the mid-trained arms
with worked share 0.4 and 0.25 moved held-out validation by +0.048 and +0.087 against the
reference's +0.024 (seed 1). An anneal is the same computation as the mid-trained arm, cached
as the base model. To rerun those arms: `--set pretrain.anneal_styles=null`.

Per arm and seed: held-out validation at step 0 and at the last step (paired by problem, with
the standard error of the change), the training reward of the prompts drawn in the first and
last sixth of the steps, and the largest KL to the reference. Cached runs cost nothing.
"""

from __future__ import annotations

import argparse

import pandas as pd

OTHER_STYLES = ("terse", "leap", "answer")


def style_mix(worked: float) -> dict[str, float]:
    """The corpus mix with worked share `worked` and the other styles sharing the rest equally."""
    if not 0 < worked <= 1:
        raise SystemExit(f"--shares / --from-scratch: a worked share must be in (0, 1], got {worked}")
    rest = round((1 - worked) / len(OTHER_STYLES), 6)
    return {"worked": float(worked), **{s: rest for s in OTHER_STYLES if rest > 0}}


def arms(shares: list[float], from_scratch: list[float], control: bool, common: dict,
         preset: str = "default") -> dict[str, dict]:
    """{arm name: config overrides}; `common` (GRPO steps, loss chunking) goes into every arm."""
    from unlearnability.config import load_config, merge_overrides
    from unlearnability.pipeline.experiment import control_overrides

    out = {"preset": common}
    for w in shares:
        out[f"mid-trained, worked {w:g}"] = merge_overrides(
            common, {"midtrain": {"mixture": "pretrain", "styles": style_mix(w)}})
    for w in from_scratch:
        out[f"from scratch, worked {w:g}"] = merge_overrides(
            common, {"world": {"styles": style_mix(w)}, "pretrain": {"anneal_styles": None}})
    if control:
        out["worked only (control)"] = merge_overrides(common, control_overrides(load_config(preset, common)))
    return out


def arm_row(validation: pd.DataFrame, train_log: pd.DataFrame) -> dict[str, float]:
    """One run's row: paired validation change (first to last validated step) and training reward."""
    from unlearnability.evaluation import calibration as cal

    r = cal.run_summary(validation, train_log)
    return {"validation before": r["before"], "after": r["after"], "change": r["change"], "SE": r["se"],
            "reward first sixth": r["reward_first"], "last sixth": r["reward_last"], "max KL": r["max_kl"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--steps", type=int, default=20, help="GRPO steps per run (default 20)")
    ap.add_argument("--shares", type=float, nargs="*", default=[0.4, 0.25],
                    help="worked shares of the mid-training mix (default 0.4 0.25)")
    ap.add_argument("--from-scratch", type=float, nargs="*", default=[],
                    help="worked shares to pretrain a base model for, from the start (30-80 min each)")
    ap.add_argument("--control", action="store_true",
                    help="also the matched control: the last pretraining phase on worked solutions only")
    ap.add_argument("--loss-chunk-tokens", type=int, default=4096)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every arm, e.g. --set pretrain.anneal_styles=null (repeatable)")
    args = ap.parse_args()

    from unlearnability.config import merge_overrides, parse_set
    from unlearnability.pipeline import experiment
    from unlearnability.store.history import read_validation

    common = merge_overrides(parse_set(args.overrides),
                                        {"grpo": {"steps": args.steps, "loss_chunk_tokens": args.loss_chunk_tokens}})
    rows = []
    for name, overrides in arms(args.shares, args.from_scratch, args.control, common, args.preset).items():
        for seed, run in experiment.seed_runs(args.preset, args.seeds, overrides).items():
            row = arm_row(read_validation(run), pd.read_csv(run / "train_log.csv"))
            rows.append({"arm": name, "seed": seed, **row, "run": run.name})
            print(f"{name}, seed {seed}: {run}", flush=True)
    pd.set_option("display.width", 200)
    table = pd.DataFrame(rows).set_index(["arm", "seed"])
    print(f"\n== style headroom, preset {args.preset}, {args.steps} GRPO steps (validation: paired by problem)")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
