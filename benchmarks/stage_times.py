"""Stage times of a preset on this machine: pretraining from a cold cache, one GRPO seed,
and the pass@k evaluations the book needs per seed.

    python benchmarks/stage_times.py --preset default [--seed 1] [--home /tmp/bench-runs]

Runs in a fresh run store (a temporary folder unless --home is given) so nothing is reused.
Targets (issue: default preset on 2 cores): pretraining < 20 min, one GRPO seed < 10 min.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--home", default=None, help="run store to use (default: a new temporary folder)")
    args = ap.parse_args()
    os.environ["UNLEARN_HOME"] = args.home or tempfile.mkdtemp(prefix="unlearn-bench-")

    from unlearnability.config import load_config
    from unlearnability.pipeline import experiment
    from unlearnability.policy.model import set_threads
    from unlearnability.train.base import ensure_base_model

    set_threads()
    import torch

    cfg = load_config(args.preset, {"grpo": {"seed": args.seed}})
    times = {}
    t = time.time()
    ensure_base_model(cfg)
    times["pretrain (cold cache)"] = time.time() - t
    t = time.time()
    run = experiment.run_grpo(cfg)
    times[f"GRPO seed {args.seed} ({cfg.grpo.steps} steps)"] = time.time() - t
    t = time.time()
    experiment.evaluate_checkpoint(run, 0)
    times[f"pass@{cfg.eval.k} of the base model (train split)"] = time.time() - t
    t = time.time()
    experiment.evaluate_checkpoint(run, cfg.grpo.steps)
    times[f"pass@{cfg.eval.k} of the final checkpoint"] = time.time() - t
    print(f"\npreset {args.preset}, torch threads {torch.get_num_threads()}, store {os.environ['UNLEARN_HOME']}")
    for name, sec in times.items():
        print(f"{name:48s} {sec:8.1f} s  ({sec / 60:.1f} min)")


if __name__ == "__main__":
    main()
