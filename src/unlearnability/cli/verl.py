"""`unlearn verl export` and `unlearn verl ingest`: the command-line side of backends/verl.py.

cli.py calls `add_verl_commands(sub)` on its `parser.add_subparsers(dest="command")`; each
leaf parser sets `func`, a handler that takes the parsed Namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys

EXPORT_HELP = "write verl's parquet data, reward function, Hydra overrides and run scripts for a preset"
INGEST_HELP = "turn verl's per-step rollout dumps into the library's per-example reward history"


def add_verl_commands(subparsers) -> argparse.ArgumentParser:
    """Register `verl export` and `verl ingest` on an argparse subparsers object."""
    verl = subparsers.add_parser(
        "verl", help="train at scale with verl: export a preset, ingest the rollout dumps",
        description="Hand GRPO training that outgrows one machine to verl (0.9.1), and read the "
                    "result back as a local run.")
    vsub = verl.add_subparsers(dest="verl_command", metavar="{export,ingest}")
    verl.set_defaults(func=lambda args: (verl.print_help(), 2)[1])

    exp = vsub.add_parser(
        "export", help=EXPORT_HELP, description=EXPORT_HELP + ". Variants: baseline, clip-higher "
        "(eps_high 0.28), no-kl. Loads the preset's data (hub ids need the network; local "
        ".jsonl / .parquet paths do not).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    exp.add_argument("--preset", required=True,
                     help="preset name (e.g. paper-qwen0.5b-math) or a .yaml path")
    exp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set data.train=data/math_train.jsonl (repeatable)")
    exp.add_argument("--out", required=True, help="folder to write (created if missing)")
    exp.add_argument("--max-prompt-tokens", type=int, default=1024,
                     help="verl's data.max_prompt_length (the paper: 1024)")
    exp.set_defaults(func=run_export)

    ing = vsub.add_parser(
        "ingest", help=INGEST_HELP, description=INGEST_HELP + ". Prompts are mapped back to "
        "examples by their text; a prompt that matches no exported example is an error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ing.add_argument("dump_dir", metavar="DUMP_DIR",
                     help="verl's trainer.rollout_data_dir ({step}.jsonl files), or the run folder "
                          "holding rollouts/ and validation/")
    ing.add_argument("--out", required=True, help="run folder to write prompt_rewards.csv etc. into")
    ing.add_argument("--export", default=None,
                     help="the folder `unlearn verl export` wrote (default: found above DUMP_DIR)")
    ing.add_argument("--val-dump", default=None,
                     help="verl's trainer.validation_data_dir (default: validation/ beside the rollouts)")
    ing.set_defaults(func=run_ingest)
    return verl


def run_export(args: argparse.Namespace) -> int:
    from unlearnability.backends import verl
    from unlearnability.config import load_config, parse_set

    try:
        cfg = load_config(args.preset, parse_set(args.overrides))
        manifest = verl.export(cfg, args.out, max_prompt_tokens=args.max_prompt_tokens)
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"unlearn verl export: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {manifest['n_train']} training / {manifest['n_valid']} validation problems, "
          f"variants {', '.join(manifest['variants'])}; run with: bash {args.out}/run_baseline.sh "
          f"(verl {manifest['verl_version']}, {manifest['entry_point']})")
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from unlearnability.backends import verl

    try:
        s = verl.ingest(args.dump_dir, args.out, export_dir=args.export, val_dump=args.val_dump)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"unlearn verl ingest: {e}", file=sys.stderr)
        return 1
    steps = s["steps"]
    span = f"steps {steps[0]}-{steps[-1]}" if steps else "no steps"
    print(f"wrote {args.out}: {s['history_rows']} groups over {span}, {s['examples_seen']} examples, "
          f"{s['validation_rows']} validation rows")
    return 0
