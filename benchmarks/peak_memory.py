"""Peak resident memory of each stage of a preset, each in a fresh process.

    python benchmarks/peak_memory.py [--preset default] [--tokens 400000] [--steps 2]

Stages, in a temporary run store: pretraining (cut to --tokens tokens; the memory of the
stream, model and optimizer does not grow with the token count), GRPO (--steps steps from
that model, with validation at the end), and a pass@k evaluation of the result on 64 training
problems. Each stage runs in its own Python process and reports its peak RSS (getrusage);
the budget (issue) is < 4 GiB per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

STAGE = r"""
import json, resource, sys
from unlearnability.pipeline import experiment
from unlearnability.policy.model import set_threads
from unlearnability.config import load_config
preset, stage, tokens, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = load_config(preset, {"pretrain": {"tokens": tokens}, "grpo": {"steps": steps, "valid_every": steps,
                                                                    "checkpoint_every": steps}})
set_threads()
if stage == "pretrain":
    from unlearnability.train.base import ensure_base_model
    ensure_base_model(cfg, quiet=True)
elif stage == "grpo":
    experiment.run_grpo(cfg)
else:
    run = experiment.run_grpo(cfg)
    experiment.evaluate_checkpoint(run, steps, limit=64)
print(json.dumps({"stage": stage, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--tokens", type=int, default=400_000)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    env = {**os.environ, "UNLEARN_HOME": tempfile.mkdtemp(prefix="bench-mem-")}
    worst = 0.0
    for stage in ("pretrain", "grpo", "evaluate"):
        out = subprocess.run([sys.executable, "-c", STAGE, args.preset, stage, str(args.tokens), str(args.steps)],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        res = json.loads(out.stdout.strip().splitlines()[-1])
        worst = max(worst, res["peak_gib"])
        print(f"{args.preset} {stage:9s} peak RSS {res['peak_gib']:.2f} GiB")
    print(f"largest: {worst:.2f} GiB (budget < 4 GiB): {'met' if worst < 4 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
