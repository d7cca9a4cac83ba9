"""`unlearn`: the command line the book and users rely on.

    unlearn pretrain --preset default
    unlearn grpo --preset default --seed 42 [--set grpo.lr=1e-4 ...]   (last line: the run folder)
    unlearn evaluate --run DIR --checkpoint 60 --k 32
    unlearn groups --preset default --out groups.csv [--seeds 1 42 37] [--tau 0.1]
    unlearn sft --preset default --groups groups.csv [--responses FILE] [--set sft.epochs=5 ...]
    unlearn presets
    unlearn config [--preset default] [grpo | grpo.top_p ...]        (every field, its value and its help)
    unlearn augment --problems FILE.jsonl --out DIR --base-url URL --model NAME [--check-model NAME]
    unlearn judge --samples FILE --problems FILE.jsonl --out CSV --base-url URL --model NAME [--set llm.KEY=VALUE]
    unlearn screen --preset default --out screen.csv [--split train] [--threshold 0.5] [--groups CSV]
    unlearn chapter NAME --profile default [-p key=value ...]        (book/build.py)
    unlearn book --profile default                                    (book/build.py)
    unlearn verl export|ingest ...                                    (cli_verl.py)
"""

from __future__ import annotations

import argparse
import sys

from unlearnability.config import field_help, load_config, parse_set, preset_names
from unlearnability.paper import SEEDS, TAU
from unlearnability.store import runs


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


def cmd_config(args) -> int:
    """The resolved config, one `key = value  # help` line per field (only the sections or keys asked for)."""
    import dataclasses
    import textwrap

    cfg = load_config(args.preset, parse_set(args.overrides))
    wanted = args.keys or [f.name for f in dataclasses.fields(cfg) if f.name not in ("name", "notes")]
    for want in wanted:
        section, _, name = want.partition(".")
        field_help(want)  # an unknown section or key: a ConfigError naming it
        obj = getattr(cfg, section)
        names = [name] if name else [f.name for f in dataclasses.fields(obj)]
        if not name:
            print(f"# {section}: {field_help(section)}")
        for n in names:
            print(f"{section}.{n} = {getattr(obj, n)!r}")
            for line in textwrap.wrap(field_help(f"{section}.{n}"), 96):
                print(f"    # {line}")
    return 0


def cmd_pretrain(args) -> int:
    from unlearnability.train.base import ensure_base_model

    cfg = load_config(args.preset, parse_set(args.overrides))
    print(ensure_base_model(cfg))
    return 0


def cmd_grpo(args) -> int:
    from unlearnability.pipeline.experiment import run_grpo

    overrides = parse_set(args.overrides)
    if args.seed is not None:
        overrides.setdefault("grpo", {})["seed"] = args.seed
    cfg = load_config(args.preset, overrides)
    print(run_grpo(cfg))
    return 0


def cmd_evaluate(args) -> int:
    from unlearnability.pipeline.experiment import evaluate_checkpoint

    path = evaluate_checkpoint(args.run, args.checkpoint, k=args.k, split=args.split, sampler=args.sampler)
    print(path)
    return 0


def cmd_groups(args) -> int:
    from pathlib import Path

    from unlearnability.pipeline.experiment import baseline_study

    study = baseline_study(args.preset, args.seeds, parse_set(args.overrides))
    cls = study.classify(args.tau)
    out = Path(args.out)
    cls.rename_axis("prompt_id").reset_index().to_csv(out, index=False)
    print(cls["group"].value_counts().to_string(), file=sys.stderr)
    print(out)
    return 0


def cmd_sft(args) -> int:
    from unlearnability.train.sft import read_groups, run_sft

    cfg = load_config(args.preset, parse_set(args.overrides))  # the SFT settings: its sft section
    print(run_sft(cfg, read_groups(args.groups), responses_path=args.responses))
    return 0


def cmd_screen(args) -> int:
    from pathlib import Path

    from unlearnability.analysis.forecast import preset_labels, screen

    source, group_of = preset_labels(args.preset, parse_set(args.overrides), args.seeds, args.groups, args.tau)
    res = screen(source, group_of, args.split, "all" if args.all else "hard", args.threshold, args.folds,
                 args.cv_seed, args.tau, gradients=args.gradients, loglik=args.loglik, sampler=args.sampler,
                 gradient_overrides={"rollouts": args.gradient_rollouts} if args.gradient_rollouts else None)
    f = res.forecaster
    if f.note:
        print(f"unlearn screen: note: {f.note}", file=sys.stderr)
    else:
        print(f"fitted on {f.n} labelled examples ({f.positives} unlearnable); coefficients:\n"
              + f.coefficients().to_string(index=False), file=sys.stderr)
    print(res.table["verdict"].value_counts().to_string(), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out, index=False)
    print(out)
    return 0


def _section_help(section: str) -> str:
    """Every field of a config section with its default and help text (a command's --help epilog)."""
    import dataclasses
    import textwrap

    from unlearnability.config import Config

    obj = getattr(Config(), section)
    lines = [f"{section} settings (--set {section}.KEY=VALUE; `unlearn config {section}` prints a preset's):"]
    for f in dataclasses.fields(obj):
        lines.append(f"  {section}.{f.name} = {getattr(obj, f.name)!r}")
        lines += textwrap.wrap(field_help(f"{section}.{f.name}"), 92, initial_indent=" " * 6,
                               subsequent_indent=" " * 6)
    return "\n".join(lines)


def _llm_args(p: argparse.ArgumentParser) -> None:
    """The server flags of the LLM commands; every other llm field by --set llm.KEY=VALUE."""
    from unlearnability.config import LLMConfig

    default = LLMConfig()
    p.add_argument("--base-url", required=True, metavar="URL", help=field_help("llm.base_url"))
    p.add_argument("--model", required=True, metavar="NAME", help=field_help("llm.model"))
    p.add_argument("--api-key-env", default=default.api_key_env, metavar="VAR",
                   help=f"{field_help('llm.api_key_env')} (default: {default.api_key_env}); the key itself is "
                        "never passed on the command line")
    p.add_argument("--concurrency", type=int, default=default.concurrency,
                   help=f"{field_help('llm.concurrency')} (default: {default.concurrency})")
    p.add_argument("--max-tokens", type=int, default=default.max_tokens, help=field_help("llm.max_tokens"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="llm.KEY=VALUE",
                   help="override another llm field, e.g. --set llm.timeout=300 (repeatable; listed below)")


def _llm_config(args):
    """The llm section from the command's flags and its --set llm.KEY=VALUE, checked as at load."""
    from unlearnability.config import Config, ConfigError, apply_overrides

    sets = parse_set(args.overrides)
    other = sorted(set(sets) - {"llm"})
    if other:
        raise ConfigError(f"--set {other[0]}.*: unlearn {args.command} takes llm.KEY=VALUE only")
    flags = {"base_url": args.base_url, "model": args.model, "api_key_env": args.api_key_env,
             "concurrency": args.concurrency, "max_tokens": args.max_tokens}
    return apply_overrides(Config(), {"llm": {**flags, **sets.get("llm", {})}}).llm


def cmd_augment(args) -> int:
    import dataclasses

    from unlearnability.backends.llm import LLMError
    from unlearnability.backends.llm_augment import augment_file

    gen = _llm_config(args)
    check = dataclasses.replace(gen, base_url=args.check_base_url or gen.base_url, model=args.check_model or gen.model,
                                api_key_env=args.check_api_key_env or gen.api_key_env)
    try:
        s = augment_file(args.problems, args.out, gen, check, n_similar=args.n_similar, limit=args.limit,
                         json_mode=args.json_mode)
    except LLMError as e:
        print(f"unlearn augment: error: {e}", file=sys.stderr)
        return 2
    r = s.report
    print(f"kept {r['kept_total']} {r['kept']}, rejected {r['rejected_total']} {r['rejected']}, "
          f"{r['sources_done']} of {r['sources_in_input']} sources done ({s.skipped} skipped as already done)",
          file=sys.stderr)
    for sid, err in s.failed.items():
        print(f"unlearn augment: source {sid!r} failed (rerun to retry): {err}", file=sys.stderr)
    print(s.out)
    return 1 if s.failed else 0


def cmd_judge(args) -> int:
    from pathlib import Path

    import pandas as pd

    from unlearnability.analysis.judge import judge_table
    from unlearnability.backends.llm import LLMError
    from unlearnability.data.mathdata import load_math_file

    path = Path(args.samples)
    if not path.exists():
        raise FileNotFoundError(f"{path}: samples file not found")
    samples = (pd.read_parquet(path) if path.suffix == ".parquet" else
               pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path))
    if args.only_correct and "reward" in samples.columns:
        samples = samples[samples["reward"] > 0]
    problems = {p.id: p for p in load_math_file(args.problems, split="input", name=Path(args.problems).name)}
    try:
        table = judge_table(_llm_config(args), problems, samples, cache=args.cache)
    except LLMError as e:
        print(f"unlearn judge: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `unlearn` parser: one block of arguments per subcommand, in `--help` order (long because
    it is a table of options, each with its help text; the commands' logic is in the cmd_* functions)."""
    import textwrap

    parser = argparse.ArgumentParser(prog="unlearn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("config", help="print the resolved config with each field's help (e.g. unlearn config grpo.top_p eval)")
    _preset_args(p)
    p.add_argument("keys", nargs="*", help="sections (grpo) or keys (grpo.top_p); default: every section")
    p.set_defaults(func=cmd_config)

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
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="GRPO seeds (run or reused; paper: 1 42 37)")
    p.add_argument("--tau", type=float, default=TAU, help=f"pass@1 threshold (paper: {TAU})")
    p.add_argument("--out", required=True, metavar="CSV", help="where to write the groups")
    p.set_defaults(func=cmd_groups)

    p = sub.add_parser("sft", help="SFT on correct responses per group (paper A.2); prints the output folder last",
                       description=textwrap.fill(
                           "Fine-tune the preset's base model on correct responses of chosen examples per group "
                           "and write eval.csv (per checkpoint and group: pass@1 on those examples). Paper: 200 "
                           "unlearnable, 200 learnable, 400 easy; on the testbed each group gives min(requested, "
                           "available). SFT settings: --set sft.KEY=VALUE, e.g. sft.epochs=5, sft.lr=1e-4, "
                           "sft.per_group.easy=100 (per_group merges key by key).", 96),
                       epilog=_section_help("sft"), formatter_class=argparse.RawDescriptionHelpFormatter)
    _preset_args(p)
    p.add_argument("--groups", required=True, metavar="CSV",
                   help="csv with prompt_id,group columns (the groups of the unlearnable-examples chapter)")
    p.add_argument("--responses", default=None, metavar="JSONL",
                   help="correct-response candidates, one json per line with prompt_id (or id) and response; "
                        "filtered by the task's reward (needed at paper scale; default on the testbed: its worked "
                        "solutions)")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("augment", help="LLM augmentation (paper §5.3): similar problems and subproblems, "
                       "answers cross-checked; prints the output jsonl",
                       description=textwrap.fill(
                           "For each input problem ask an OpenAI-compatible model for N similar problems "
                           "and a decomposition into subproblems (each with answer and step-by-step solution), have a "
                           "checker model solve each one independently, and keep those whose answers math-verify "
                           "finds equivalent. Writes OUT/augmented.jsonl (datasets-loadable: id, question, answer, "
                           "solution, kind, source_id, generator_model, checker_model), OUT/rejections.jsonl and "
                           "OUT/report.json. Resumable: rerun the same command and finished sources are skipped. The "
                           "API key is read from the environment variable named by --api-key-env.", 96),
                       epilog=_section_help("llm"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", required=True, metavar="FILE",
                   help="input .jsonl / .parquet (MATH layout: problem/solution/answer, or Problem records)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; reused to resume)")
    _llm_args(p)
    p.add_argument("--check-model", default=None, metavar="NAME",
                   help="model that solves each generated problem to cross-check its answer (paper: "
                        "Gemini-2.5-pro; default: --model itself, a weaker self-check)")
    p.add_argument("--check-base-url", default=None, metavar="URL", help="checker endpoint (default: --base-url)")
    p.add_argument("--check-api-key-env", default=None, metavar="VAR",
                   help="env var with the checker's key (default: --api-key-env)")
    p.add_argument("--n-similar", type=int, default=5, help="similar problems per source (paper: 5)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N input problems")
    p.add_argument("--json-mode", action="store_true",
                   help="also send response_format=json_object (if the server supports it)")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("judge", help="LLM judge of reasoning quality 0-5 (paper §5.2); prints the output csv",
                       description=textwrap.fill(
                           "Score each response of a samples table (prompt_id, sample, response[, reward]) 0-5 with "
                           "an LLM judge; writes prompt_id, sample, score, rationale. Verdicts are cached (--cache) "
                           "so a rerun costs nothing.", 96),
                       epilog=_section_help("llm"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True, metavar="FILE", help="samples table: .csv, .parquet or .jsonl")
    p.add_argument("--problems", required=True, metavar="FILE", help="the problems (.jsonl / .parquet)")
    p.add_argument("--out", required=True, metavar="CSV", help="where to write the verdicts")
    _llm_args(p)
    p.add_argument("--cache", default=None, metavar="JSONL",
                   help="verdict cache (default: $UNLEARN_HOME/judge/cache.jsonl)")
    p.add_argument("--all", dest="only_correct", action="store_false",
                   help="judge every row (default: only rows with reward > 0 when there is a reward column)")
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("screen", help="forecast unlearnable examples from the initial policy (beyond the paper); "
                       "writes a csv of features, forecast and verdict per example",
                       description="Fit an L2 logistic regression of unlearnable (1) vs learnable (0) on features of "
                       "the initial policy only (pass@1 / pass@4 of its k samples, luck, step-checker quality of its "
                       "correct samples, LoRA-gradient similarity with easy examples, log-likelihood of its correct "
                       "samples, problem metadata), using the labels of the preset's §3 study (run or cached) or of "
                       "--groups; then forecast every hard example with a positive (train split), every example "
                       "with initial pass@1 <= tau (valid split), or every example (--all). Columns: prompt_id, "
                       "group, label, the features (analysis/forecast.py), forecast (P(unlearnable)), forecast_oof "
                       "(out-of-fold, labelled examples only), verdict. With one class in the labels no model can "
                       "be fitted: the forecast is the base rate, and a note says so.")
    _preset_args(p)
    p.add_argument("--out", required=True, metavar="CSV", help="where to write the per-example table")
    p.add_argument("--split", choices=["train", "valid"], default="train", help="which problems to screen (default: train)")
    p.add_argument("--all", action="store_true", help="screen every example of the split, not only the hard ones")
    p.add_argument("--threshold", type=float, default=0.5, help="verdict 'unlearnable' when forecast >= this (default: 0.5)")
    p.add_argument("--groups", default=None, metavar="CSV",
                   help="labels from this csv (prompt_id,group, e.g. `unlearn groups` output) instead of the §3 study")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="GRPO seeds of the §3 study (paper: 1 42 37)")
    p.add_argument("--tau", type=float, default=TAU, help=f"pass@1 threshold of the groups (paper: {TAU})")
    p.add_argument("--gradients", choices=["targets", "analysis", "none"], default="targets",
                   help="gradient similarity: targets (every screened example, label-free), analysis (reuse the §5 "
                        "analysis; its coverage depends on the labels) or none (default: targets)")
    p.add_argument("--gradient-rollouts", type=int, default=None, metavar="N",
                   help="rollouts per example for the gradients (default: the preset's gradients.rollouts)")
    p.add_argument("--loglik", choices=["samples", "analysis", "none"], default="samples",
                   help="log-likelihood of correct rollouts: from the pass@k samples, the §4 analysis, or none")
    p.add_argument("--sampler", choices=["torch", "vllm"], default="torch",
                   help="sampler of the initial pass@k evaluation: torch, or vllm (GPU, the [gpu] extra)")
    p.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold forecast (default: 5)")
    p.add_argument("--cv-seed", type=int, default=0, help="seed of the folds (default: 0)")
    p.set_defaults(func=cmd_screen)

    from unlearnability.book.build import add_book_commands
    from unlearnability.cli.verl import add_verl_commands

    add_book_commands(sub)
    add_verl_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: say what, no traceback
        print(f"unlearn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (runs.CorruptRunError, runs.NonFiniteLossError) as e:  # a damaged run folder, a diverged run
        print(f"unlearn {args.command}: error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
