"""verl, for training beyond one machine: export a preset to verl, ingest verl's rollout dumps.

Targets verl 0.9.1 (`VERL_VERSION`), whose entry point `python3 -m verl.trainer.main_ppo`
runs the V1 trainer by default (`trainer.use_v1=true`); that trainer honours
`algorithm.filter_groups` (DAPO's dynamic sampling) itself, in its replay buffer, refilling
prompts until the batch is full. The separate DAPO recipe trainer (`recipe.dapo.main_dapo`,
now in the verl-recipe repository) is only needed with older verl releases.

export(cfg, out) writes into `out`:
    train.parquet, valid.parquet   one row per problem, verl's RL data format:
        data_source   str   "unlearnability/<data.source>" (routes nothing: the custom reward
                             function below handles every row)
        prompt        list  [{"role": "user", "content": <the full templated prompt text>}]
        ability       str   "math"
        reward_model  dict  {"style": "rule", "ground_truth": <gold answer>}
        extra_info    dict  {"split": "train" | "valid", "index": <row>, "id": <Problem.id>}
    reward_fn.py       this library's reward.py, verbatim, plus verl's `compute_score` entry
    overrides/<variant>.txt   the Hydra overrides, one `key=value` a line, for variants
                             baseline, clip-higher, no-kl
    run_<variant>.sh   `python3 -m verl.trainer.main_ppo` with those overrides (paths made
                       absolute at run time); env SEED, NNODES, N_GPUS; extra args pass through
    README.md, export.json

The prompt goes in as one user message, and `actor_rollout_ref.model.custom_chat_template`
renders it as is (after BOS, where the tokenizer has one), so verl's prompt tokens are the
library's own template (mathdata.apply_template), for every model alike.

ingest(dump_dir, run_dir) reads verl's per-step dumps (`trainer.rollout_data_dir`: one
`{step}.jsonl` per step, one JSON line per rollout with keys input, output, gts, score,
step, and, from the V1 trainer, uid = "{group}_{session}_{index}") and writes the library's
`prompt_rewards.csv` (history.py), plus `validation.csv` from `trainer.validation_data_dir`.
verl decodes the prompt with skip_special_tokens=True and records no example index, so each
prompt is mapped back to its example by its text with special tokens removed (then, if
that fails, with all whitespace removed); a prompt that matches no example is an error
naming the file and line.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from unlearnability.config import Config, check_config, config_from_dict
from unlearnability.data.mathdata import apply_template, load_problems
from unlearnability.store.history import (
    HISTORY_COLUMNS,
    HISTORY_FILE,
    VALIDATION_COLUMNS,
    VALIDATION_FILE,
    HistoryRow,
    ValidationRow,
    append_rows,
    group_stats,
)
from unlearnability.world.problems import Problem

VERL_VERSION = "0.9.1"
ENTRY_POINT = "python3 -m verl.trainer.main_ppo"
EXPORT_MANIFEST = "export.json"
MAX_PROMPT_TOKENS = 1024  # book/protocol.md: max prompt length (all three settings)
VARIANTS = ("baseline", "clip-higher", "no-kl")
CLIP_HIGHER_EPS = 0.28  # paper §4.2 ablation: eps_low 0.2, eps_high 0.28
HERE = "${HERE}"  # placeholder in overrides for the export folder; run_*.sh sets HERE

# Renders the single user message as is; BOS first where the tokenizer defines one (Llama).
CHAT_TEMPLATE = "{% if bos_token %}{{ bos_token }}{% endif %}{{ messages[0].content }}"

_SPECIAL = re.compile(r"<\|[^|<>\s]*\|>")  # <|im_start|>, <|begin_of_text|>, <|eot_id|>, ...


# ----------------------------------------------------------------------------- export

def problem_row(p: Problem, split: str, index: int, template: str, source: str) -> dict[str, Any]:
    """One row of verl's RL parquet for problem `p` (see the module docstring)."""
    return {
        "data_source": f"unlearnability/{source}",
        "prompt": [{"role": "user", "content": apply_template(template, p.question)}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": p.answer},
        "extra_info": {"split": split, "index": index, "id": p.id},
    }


def write_parquet(problems: list[Problem], path: Path, split: str, template: str, source: str) -> Path:
    rows = [problem_row(p, split, i, template, source) for i, p in enumerate(problems)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def reward_file_text() -> str:
    """reward.py's source, plus the `compute_score` function verl calls for each rollout."""
    source = (Path(__file__).resolve().parents[1] / "data" / "reward.py").read_text()
    return source + '''

# ---- added by `unlearn verl export`: verl's custom reward entry point ----------------------
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl reward.custom_reward_function: 1.0 if the response's answer matches, else 0.0."""
    return math_reward(solution_str, str(ground_truth))
'''


def overrides(cfg: Config, variant: str = "baseline", max_prompt_tokens: int = MAX_PROMPT_TOKENS,
              seed: int | str | None = None) -> list[tuple[str, Any]]:
    """The Hydra overrides (key, value) that run `cfg`'s GRPO in verl, for one variant (long because
    it is the mapping table itself: one line per verl key, each with the preset field it comes from).

    Values are Python values (str, int, float, bool, list); `format_override` writes them in
    Hydra's syntax. Paths contain the HERE placeholder (the export folder). `seed`: the run
    seed (default cfg.grpo.seed; a string such as "${SEED}" is left for the shell).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    g, e = cfg.grpo, cfg.eval
    if not cfg.model.hub_id:
        raise ValueError(f"preset {cfg.name!r}: model.hub_id is empty; verl needs a hub id or model folder")
    check_config(cfg)  # mini-batches dividing the step, token-mean, a known KL estimator, ...
    kl_type = {"k3": "low_var_kl", "k1": "kl"}[g.kl_estimator]
    seed = g.seed if seed is None else seed
    eps_high = CLIP_HIGHER_EPS if variant == "clip-higher" else g.eps_high
    use_kl = variant != "no-kl" and g.kl_coef > 0
    seq = max_prompt_tokens + g.max_new_tokens
    run = f"{cfg.name}-{variant}-seed{seed}"
    return [
        # data
        ("data.train_files", f"{HERE}/train.parquet"),
        ("data.val_files", f"{HERE}/valid.parquet"),
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", max_prompt_tokens),
        ("data.max_response_length", g.max_new_tokens),
        ("data.train_batch_size", g.prompts_per_step),
        ("data.truncation", "error"),
        ("data.shuffle", True),
        ("data.seed", seed),
        # model and prompt
        ("actor_rollout_ref.model.path", cfg.model.hub_id),
        ("actor_rollout_ref.model.custom_chat_template", CHAT_TEMPLATE),
        # GRPO
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.norm_adv_by_std_in_grpo", True),
        ("algorithm.use_kl_in_reward", False),
        ("algorithm.filter_groups.enable", bool(g.dynamic_sampling)),
        ("algorithm.filter_groups.metric", "reward"),
        ("actor_rollout_ref.actor.optim.lr", g.lr),
        ("actor_rollout_ref.actor.optim.lr_warmup_steps", 0),
        ("actor_rollout_ref.actor.optim.lr_scheduler_type", "constant"),
        ("actor_rollout_ref.actor.optim.weight_decay", g.weight_decay),
        ("actor_rollout_ref.actor.optim.clip_grad", g.grad_clip),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", g.mini_batch_prompts),
        ("actor_rollout_ref.actor.ppo_epochs", g.ppo_epochs),
        ("actor_rollout_ref.actor.clip_ratio_low", g.eps_low),
        ("actor_rollout_ref.actor.clip_ratio_high", eps_high),
        ("actor_rollout_ref.actor.loss_agg_mode", g.loss_agg),
        ("actor_rollout_ref.actor.use_kl_loss", use_kl),
        ("actor_rollout_ref.actor.kl_loss_coef", g.kl_coef if use_kl else 0.0),
        ("actor_rollout_ref.actor.kl_loss_type", kl_type),
        ("actor_rollout_ref.actor.entropy_coeff", g.entropy_coef),
        ("actor_rollout_ref.actor.use_dynamic_bsz", True),
        ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", max(16384, 2 * seq)),
        # rollouts (training) and validation sampling
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.n", g.rollouts_per_prompt),
        ("actor_rollout_ref.rollout.temperature", g.temperature),
        ("actor_rollout_ref.rollout.top_p", g.top_p),
        ("actor_rollout_ref.rollout.top_k", -1),
        ("actor_rollout_ref.rollout.seed", seed),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", 1),
        ("actor_rollout_ref.rollout.max_model_len", seq),
        ("actor_rollout_ref.rollout.val_kwargs.n", g.valid_k),
        ("actor_rollout_ref.rollout.val_kwargs.do_sample", True),
        ("actor_rollout_ref.rollout.val_kwargs.temperature", e.temperature),
        ("actor_rollout_ref.rollout.val_kwargs.top_p", e.top_p),
        ("actor_rollout_ref.rollout.val_kwargs.top_k", -1),
        # reward: this library's extraction + math-verify
        ("reward.custom_reward_function.path", f"{HERE}/reward_fn.py"),
        ("reward.custom_reward_function.name", "compute_score"),
        # trainer: steps, validation, checkpoints, and the per-step rollout dumps ingest reads
        ("trainer.total_training_steps", g.steps),
        ("trainer.test_freq", g.valid_every if g.valid_every > 0 else -1),
        ("trainer.save_freq", g.checkpoint_every if g.checkpoint_every > 0 else -1),
        ("trainer.val_before_train", True),
        ("trainer.logger", ["console"]),
        ("trainer.project_name", "unlearnability"),
        ("trainer.experiment_name", run),
        ("trainer.default_local_dir", f"{HERE}/runs/{run}/checkpoints"),
        ("trainer.rollout_data_dir", f"{HERE}/runs/{run}/rollouts"),
        ("trainer.validation_data_dir", f"{HERE}/runs/{run}/validation"),
    ]


def format_value(value: Any) -> str:
    """A Python value in Hydra's override syntax (strings quoted when Hydra would misread them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    s = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./\-${}:]+", s) and not re.fullmatch(r"(?i)true|false|null|[-+.\d]+(e[-+]?\d+)?", s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_override(key: str, value: Any) -> str:
    return f"{key}={format_value(value)}"


def _shell_arg(override: str) -> str:
    """One override as a bash word: ${HERE} / ${SEED} expand, everything else is literal."""
    if "${" in override:
        parts = re.split(r"(\$\{[A-Z_]+\})", override)
        return "".join(f'"{p}"' if re.fullmatch(r"\$\{[A-Z_]+\}", p) else shlex.quote(p) for p in parts if p)
    return shlex.quote(override)


def run_script(cfg: Config, variant: str, max_prompt_tokens: int) -> str:
    lines = [format_override(k, v) for k, v in overrides(cfg, variant, max_prompt_tokens, seed="${SEED}")]
    args = " \\\n  ".join(_shell_arg(x) for x in lines)
    return f"""#!/usr/bin/env bash
# {cfg.name}, variant {variant}: GRPO in verl {VERL_VERSION} ({ENTRY_POINT}, V1 trainer).
# Written by `unlearn verl export`. Usage: SEED=1 NNODES=1 N_GPUS=8 bash {Path('run_' + variant + '.sh')} [more overrides]
# Rollout dumps land in runs/{cfg.name}-{variant}-seed$SEED/rollouts; ingest them with
#   unlearn verl ingest runs/{cfg.name}-{variant}-seed$SEED --out RUN_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
SEED="${{SEED:-{cfg.grpo.seed}}}"
{ENTRY_POINT} \\
  {args} \\
  trainer.nnodes="${{NNODES:-1}}" \\
  trainer.n_gpus_per_node="${{N_GPUS:-8}}" \\
  "$@"
"""


def export(cfg: Config, out: str | Path, max_prompt_tokens: int = MAX_PROMPT_TOKENS,
           train: list[Problem] | None = None, valid: list[Problem] | None = None) -> dict[str, Any]:
    """Write verl's data, reward function, overrides and run scripts for `cfg` into `out`.

    train / valid: the problems (default: `mathdata.load_problems(cfg.data, ...)`).
    Returns the manifest also written to out/export.json.
    """
    out = Path(out)
    (out / "overrides").mkdir(parents=True, exist_ok=True)
    train = load_problems(cfg.data, "train") if train is None else train
    valid = load_problems(cfg.data, "valid") if valid is None else valid
    dup = PromptIndex({p.id: apply_template(cfg.data.template, p.question) for p in train}, "train").duplicates
    write_parquet(train, out / "train.parquet", "train", cfg.data.template, cfg.data.source)
    write_parquet(valid, out / "valid.parquet", "valid", cfg.data.template, cfg.data.source)
    (out / "reward_fn.py").write_text(reward_file_text())
    for variant in VARIANTS:
        text = "\n".join(format_override(k, v) for k, v in overrides(cfg, variant, max_prompt_tokens)) + "\n"
        (out / "overrides" / f"{variant}.txt").write_text(text)
        script = out / f"run_{variant}.sh"
        script.write_text(run_script(cfg, variant, max_prompt_tokens))
        script.chmod(0o755)
    manifest = {
        "preset": cfg.name, "verl_version": VERL_VERSION, "entry_point": ENTRY_POINT,
        "template": cfg.data.template, "data_source": cfg.data.source,
        "n_train": len(train), "n_valid": len(valid), "max_prompt_tokens": max_prompt_tokens,
        "variants": list(VARIANTS), "config": cfg.to_dict(),
        "duplicate_prompts": sum(len(v) for v in dup.values()), "duplicate_prompt_ids": dict(dup),
    }
    (out / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    (out / "README.md").write_text(readme_text(cfg, manifest))
    return manifest


def readme_text(cfg: Config, manifest: dict[str, Any]) -> str:
    """The export's README.md: one text template filled from `cfg` and the manifest (long because it
    is the document itself)."""
    g = cfg.grpo
    return f"""# verl export of preset `{cfg.name}`

Written by `unlearn verl export --preset {cfg.name}`. Target: verl {VERL_VERSION}.

| file | what |
|---|---|
| train.parquet | {manifest['n_train']} training problems (verl RL format; `extra_info.index` / `extra_info.id` name the example) |
| valid.parquet | {manifest['n_valid']} validation problems |
| reward_fn.py | the library's reward (`unlearnability/data/reward.py`, verbatim) + `compute_score` for verl |
| overrides/*.txt | Hydra overrides, one a line: baseline, clip-higher (eps_high {CLIP_HIGHER_EPS}), no-kl; `${{HERE}}` stands for this folder's absolute path |
| run_*.sh | the training command for each variant |

## Entry point: which trainer honours dynamic sampling

verl {VERL_VERSION}'s `{ENTRY_POINT}` runs the V1 trainer by default (`trainer.use_v1=true`),
and that trainer implements `algorithm.filter_groups` (DAPO's dynamic sampling) in its replay
buffer: groups whose rewards all agree are evicted and new prompts are drawn until the batch
of {g.prompts_per_step} prompts is full. So the plain entry point is the right one here. With
older verl releases (before the V1 trainer) only the DAPO recipe trainer honoured
`filter_groups`: `python3 -m recipe.dapo.main_dapo`, which lived in verl's `recipe/dapo/` and
has since moved to the separate verl-recipe repository; these overrides are not checked
against that trainer's config. `algorithm.filter_groups.max_num_gen_batches` is ignored by
the V1 trainer (it logs a warning), so it is not set.

## Run

```bash
pip install verl=={VERL_VERSION}   # plus vLLM and flash-attn as verl's install guide says
SEED=1 NNODES=1 N_GPUS=8 bash run_baseline.sh     # the paper's seeds: 1, 42, 37
SEED=1 bash run_clip-higher.sh
SEED=1 bash run_no-kl.sh
```

Extra arguments are passed to Hydra (e.g. `actor_rollout_ref.rollout.gpu_memory_utilization=0.7`).
Prompts are templated here (`{cfg.data.template}`) and rendered as is by
`actor_rollout_ref.model.custom_chat_template`; prompts longer than {manifest['max_prompt_tokens']}
tokens stop the run (`data.truncation=error`).

Check the first dump before a long run. verl decodes responses without special tokens
before the reward sees them, and its vLLM rollout stops only at the model's own EOS (from
its generation config). Qwen2.5 base models end a chat turn with `<|im_end|>` and usually
`<|endoftext|>` right after; if responses in `runs/.../rollouts/1.jsonl` go on past the
end of the turn (a new "user" turn, say), the reward may read an answer from that
continuation. The library's own samplers stop at the end-of-turn token; this export does
not change verl's stopping rule (not checked on a GPU here).

## Back into the book

```bash
unlearn verl ingest runs/{cfg.name}-baseline-seed1 --out RUN_DIR
```

reads `runs/.../rollouts/{{step}}.jsonl` (and `validation/`) and writes the per-example
history every chapter reads. Note: verl dumps only the batch that entered the loss, so
with dynamic sampling on, groups dropped for zero reward variance are not in the dump, and
the ingested history has `processed = 1` on every row; an example whose groups were always
dropped does not appear at all (it never had a reward signal, but the dump cannot tell
all-wrong from all-right). Problems whose prompt text is identical cannot be told apart in
a dump: their rollouts go to the first of them ({manifest['duplicate_prompts']} such
duplicates in the training set; `export.json` lists them).
"""


# ----------------------------------------------------------------------------- ingest

def strip_special(text: str) -> str:
    """Prompt text as verl dumps it: special tokens (<|im_start|>, <|begin_of_text|>, ...) removed."""
    return _SPECIAL.sub("", text)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


class PromptIndex:
    """Maps a dumped prompt text back to its example id (exact, then whitespace-insensitive).

    Examples with the same prompt text (duplicate problems, e.g. in DeepScaleR) cannot be told
    apart in a dump: their rollouts all go to the first such example; `duplicates` lists the rest.
    """

    def __init__(self, prompts: dict[str, str], where: str):
        """prompts: example id -> full templated prompt text (as sent to verl)."""
        self.where = where
        self.exact: dict[str, str] = {}
        self.loose: dict[str, list[str]] = defaultdict(list)
        self.duplicates: dict[str, list[str]] = defaultdict(list)  # first id -> later ids, same text
        for pid, text in prompts.items():
            key = strip_special(text)
            if key in self.exact:
                self.duplicates[self.exact[key]].append(pid)
                continue
            self.exact[key] = pid
            self.loose[_squash(key)].append(pid)

    def lookup(self, text: str, where: str) -> str:
        text = strip_special(text)
        if text in self.exact:
            return self.exact[text]
        ids = self.loose.get(_squash(text), [])
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise ValueError(f"{where}: prompt matches several examples of {self.where} "
                             f"when whitespace is ignored: {ids[:5]}")
        raise ValueError(f"{where}: prompt matches no example of {self.where}: {text[:160]!r}... "
                         "(was this dump made from this export?)")

    @classmethod
    def from_parquet(cls, path: Path) -> "PromptIndex":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no exported problems here (run `unlearn verl export` first)")
        rows = pq.read_table(path, columns=["prompt", "extra_info"]).to_pylist()
        prompts = {}
        for i, r in enumerate(rows):
            info = r["extra_info"] or {}
            if "id" not in info:
                raise ValueError(f"{path} row {i + 1}: extra_info has no 'id'")
            prompts[str(info["id"])] = "".join(m["content"] for m in r["prompt"])
        return cls(prompts, str(path))


def read_dump(dump_dir: Path) -> Iterable[tuple[int, str, dict[str, Any]]]:
    """(step, "file:line", record) for every line of every {step}.jsonl, in step order."""
    files = [p for p in dump_dir.glob("*.jsonl") if p.stem.isdigit()]
    if not files:
        raise FileNotFoundError(f"{dump_dir}: no {{step}}.jsonl files (verl's trainer.rollout_data_dir)")
    for path in sorted(files, key=lambda p: int(p.stem)):
        with path.open() as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{i}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
                missing = [k for k in ("input", "score") if k not in rec]
                if missing:
                    raise ValueError(f"{where}: missing key(s) {missing} (expected verl's dump format: "
                                     "input, output, gts, score, step)")
                yield int(rec.get("step", path.stem)), where, rec


def _groups(dump_dir: Path, index: PromptIndex) -> dict[tuple[int, str], tuple[str, list[float]]]:
    """(step, group key) -> (example id, rewards) over a dump folder, in order of appearance.

    Group key: the V1 trainer's uid prefix ("{group}_{session}_{index}" -> group) when present,
    else the example id (one group per example and step).
    """
    groups: dict[tuple[int, str], tuple[str, list[float]]] = {}
    for step, where, rec in read_dump(dump_dir):
        pid = index.lookup(str(rec["input"]), where)
        uid = rec.get("uid")
        key = str(uid).rsplit("_", 2)[0] if isinstance(uid, str) and uid.count("_") >= 2 else pid
        score = float(rec["score"])
        if not math.isfinite(score):
            raise ValueError(f"{where}: score {rec['score']!r} is not a finite number")
        if (step, key) in groups and groups[(step, key)][0] != pid:
            raise ValueError(f"{where}: group {key!r} of step {step} mixes examples "
                             f"{groups[(step, key)][0]!r} and {pid!r}")
        groups.setdefault((step, key), (pid, []))[1].append(score)
    return groups


def _find_export(dump_dir: Path) -> Path:
    for d in [dump_dir, *dump_dir.parents]:
        if (d / EXPORT_MANIFEST).exists():
            return d
    raise FileNotFoundError(f"{dump_dir}: no {EXPORT_MANIFEST} in it or above it; pass --export DIR "
                            "(the folder `unlearn verl export` wrote)")


def ingest(dump_dir: str | Path, run_dir: str | Path, export_dir: str | Path | None = None,
           val_dump: str | Path | None = None) -> dict[str, Any]:
    """verl dumps -> run_dir/prompt_rewards.csv (+ validation.csv, config.yaml, ingest.json).

    dump_dir: trainer.rollout_data_dir, or the run folder above it holding rollouts/ (and
    validation/). export_dir: the export folder (default: found above dump_dir).
    val_dump: trainer.validation_data_dir (default: dump_dir/../validation or dump_dir/validation).
    Returns a summary (also written to run_dir/ingest.json).
    """
    dump_dir = Path(dump_dir)
    if not dump_dir.is_dir():
        raise FileNotFoundError(f"{dump_dir}: not a folder")
    rollouts = dump_dir / "rollouts" if (dump_dir / "rollouts").is_dir() else dump_dir
    if val_dump is None:
        for cand in (dump_dir / "validation", rollouts.parent / "validation"):
            if cand.is_dir() and cand != rollouts:
                val_dump = cand
                break
    export_dir = Path(export_dir) if export_dir else _find_export(dump_dir.resolve())
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    train_index = PromptIndex.from_parquet(export_dir / "train.parquet")
    rows = []
    for (step, _), (pid, rewards) in sorted(_groups(rollouts, train_index).items(), key=lambda kv: kv[0][0]):
        mean, std = group_stats(rewards)
        rows.append(HistoryRow(step=step, prompt_id=pid, mean_reward=mean, std_reward=std,
                               n=len(rewards), processed=1))
    for name in (HISTORY_FILE, VALIDATION_FILE):
        (run_dir / name).unlink(missing_ok=True)
    append_rows(run_dir / HISTORY_FILE, rows, HISTORY_COLUMNS)

    val_rows = []
    if val_dump is not None:
        valid_index = PromptIndex.from_parquet(export_dir / "valid.parquet")
        per: dict[tuple[int, str], list[float]] = defaultdict(list)
        for step, where, rec in read_dump(Path(val_dump)):
            per[(step, valid_index.lookup(str(rec["input"]), where))].append(float(rec["score"]))
        val_rows = [ValidationRow(step=s, prompt_id=pid, mean_reward=sum(r) / len(r), n=len(r))
                    for (s, pid), r in sorted(per.items(), key=lambda kv: kv[0][0])]
        append_rows(run_dir / VALIDATION_FILE, val_rows, VALIDATION_COLUMNS)

    manifest = json.loads((export_dir / EXPORT_MANIFEST).read_text())
    import yaml
    cfg = config_from_dict(manifest["config"])
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    summary = {
        "source": "verl", "verl_version": manifest.get("verl_version"), "export": str(export_dir),
        "dump": str(rollouts), "validation_dump": str(val_dump) if val_dump else None,
        "steps": sorted({r.step for r in rows}), "history_rows": len(rows),
        "examples_seen": len({r.prompt_id for r in rows}), "validation_rows": len(val_rows),
        "duplicate_prompts": {k: v for k, v in train_index.duplicates.items()},
        "note": "verl dumps only the groups that entered the loss: processed = 1 on every row; "
                "groups dropped by dynamic sampling are not in the dump; clip_frac is unknown (NaN)",
    }
    (run_dir / "ingest.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


