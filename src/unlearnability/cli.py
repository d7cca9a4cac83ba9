"""`unlearn`: the command line the book and users rely on.

    unlearn pretrain --preset default
    unlearn grpo --preset default --seed 42 [--set grpo.lr=1e-4 ...]   (last line: the run folder)
    unlearn evaluate --run DIR --checkpoint 60 --k 32
    unlearn groups --preset default --out groups.csv [--seeds 1 42 37] [--tau 0.1]
    unlearn sft --preset default --groups groups.csv [--responses FILE] [--set sft.epochs=5 ...]
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


def cmd_groups(args) -> int:
    from pathlib import Path

    from .experiment import baseline_study
    from .groups import classify

    study = baseline_study(args.preset, args.seeds, parse_set(args.overrides))
    finals = {s: study.pass1(study.finals[s]) for s in args.seeds}
    cls = classify(study.pass1(study.initial), finals, study.histories, args.tau)
    out = Path(args.out)
    cls.rename_axis("prompt_id").reset_index().to_csv(out, index=False)
    print(cls["group"].value_counts().to_string(), file=sys.stderr)
    print(out)
    return 0


def cmd_sft(args) -> int:
    from .train.sft import read_groups, run_sft, sft_config, split_overrides

    overrides, sft = split_overrides(parse_set(args.overrides))
    cfg = load_config(args.preset, overrides)
    print(run_sft(cfg, read_groups(args.groups), sft_config(sft), args.responses))
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

    p = sub.add_parser("groups", help="classify the training examples (paper §3: easy / learnable / unlearnable / ...); "
                       "writes a csv with prompt_id, group and the per-seed labels")
    _preset_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 42, 37], help="GRPO seeds (run or reused; paper: 1 42 37)")
    p.add_argument("--tau", type=float, default=0.1, help="pass@1 threshold (paper: 0.1)")
    p.add_argument("--out", required=True, metavar="CSV", help="where to write the groups")
    p.set_defaults(func=cmd_groups)

    p = sub.add_parser("sft", help="SFT on correct responses per group (paper A.2); prints the output folder last",
                       description="Fine-tune the preset's base model on correct responses of chosen examples per "
                       "group and write eval.csv (per checkpoint and group: pass@1 on those examples). Paper: 200 "
                       "unlearnable, 200 learnable, 400 easy; on the testbed each group gives min(requested, "
                       "available). SFT settings: --set sft.KEY=VALUE (keys: SFTConfig in train/sft.py, e.g. "
                       "sft.epochs=5, sft.lr=1e-4, sft.per_group.easy=100, sft.eval_k=8).")
    _preset_args(p)
    p.add_argument("--groups", required=True, metavar="CSV",
                   help="csv with prompt_id,group columns (the groups of the unlearnable-examples chapter)")
    p.add_argument("--responses", default=None, metavar="JSONL",
                   help="correct-response candidates, one json per line with prompt_id (or id) and response; "
                        "filtered by the task's reward (needed at paper scale; default on the testbed: its worked "
                        "solutions)")
    p.set_defaults(func=cmd_sft)

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
