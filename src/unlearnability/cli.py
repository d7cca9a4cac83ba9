"""`unlearn`: the command line the book and users rely on.

    unlearn pretrain --preset default
    unlearn grpo --preset default --seed 42 [--set grpo.lr=1e-4 ...]   (last line: the run folder)
    unlearn evaluate --run DIR --checkpoint 60 --k 32
    unlearn presets
    unlearn chapter NAME --profile default [-p key=value ...]        (book.py)
    unlearn book --profile default                                    (book.py)
    unlearn verl export|ingest ...                                    (cli_verl.py)
"""

from __future__ import annotations

import argparse
import sys

from .config import load_config, parse_set, preset_names


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default",
                   help=f"preset name ({', '.join(preset_names())}) or a YAML file (default: default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set grpo.lr=1e-4 (repeatable)")


def cmd_presets(args) -> int:
    for name in preset_names():
        cfg = load_config(name)
        print(f"{name:28s} {cfg.notes.splitlines()[0] if cfg.notes else ''}")
    return 0


def cmd_pretrain(args) -> int:
    from .pretrain import ensure_base_model

    cfg = load_config(args.preset, parse_set(args.overrides))
    print(ensure_base_model(cfg))
    return 0


def cmd_grpo(args) -> int:
    from .experiment import run_grpo

    overrides = parse_set(args.overrides)
    if args.seed is not None:
        overrides.setdefault("grpo", {})["seed"] = args.seed
    cfg = load_config(args.preset, overrides)
    print(run_grpo(cfg))
    return 0


def cmd_evaluate(args) -> int:
    from .experiment import evaluate_checkpoint

    path = evaluate_checkpoint(args.run, args.checkpoint, k=args.k, split=args.split, sampler=args.sampler)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("pretrain", help="pretrain (or reuse) the preset's base model; prints its folder")
    _preset_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("grpo", help="run (or resume, or reuse) one GRPO seed; prints the run folder last")
    _preset_args(p)
    p.add_argument("--seed", type=int, default=None, help="the run's seed (paper: 1, 42, 37)")
    p.set_defaults(func=cmd_grpo)

    p = sub.add_parser("evaluate", help="pass@k of a run's checkpoint; writes a per-problem pass@1 table")
    p.add_argument("--run", required=True, help="a GRPO run folder (printed by `unlearn grpo`)")
    p.add_argument("--checkpoint", type=int, required=True, help="step of the checkpoint (0 = the base model)")
    p.add_argument("--k", type=int, default=None, help="samples per problem (default: the preset's eval.k)")
    p.add_argument("--split", choices=["train", "valid"], default="train", help="which problems (default: train)")
    p.add_argument("--sampler", choices=["torch", "vllm"], default="torch",
                   help="torch (CPU, or CUDA when present) or vllm (GPU, needs the [gpu] extra)")
    p.set_defaults(func=cmd_evaluate)

    for module, fn in (("book", "add_book_commands"), ("cli_verl", "add_verl_commands")):
        try:
            mod = __import__(f"unlearnability.{module}", fromlist=[fn])
        except ImportError as e:
            if e.name != f"unlearnability.{module}":
                raise
            continue
        getattr(mod, fn)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: say what, no traceback
        print(f"unlearn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
