"""Supervised fine-tuning on correct responses, per group (paper A.2, Figure 15a).

What the paper did: generate responses with Qwen2.5-7B on the MATH training set, keep the
correct ones, build an 800-example SFT set (200 unlearnable, 200 learnable, 400 random easy
examples), fine-tune Qwen2.5-0.5B on it and evaluate the per-group pass rate of those
examples at each checkpoint. Finding: even under direct supervision on correct responses,
unlearnable examples stay resistant while learnable and easy ones improve.

Settings: the config's `sft` section (`config.SFTConfig`; `unlearn config sft` lists them, `--set
sft.KEY=VALUE` or `config.apply_overrides(cfg, {"sft": {...}})` changes them).

What this module does:
    responses   testbed: the world's worked solution of each problem (`Graph.solution("worked")`),
                the analogue of distilling from a stronger model (it is an oracle: every
                response is correct and fully worked); paper scale: a jsonl of responses from a
                stronger model (`file_responses`), kept only where the task's reward is 1.
    selection   only examples with at least one correct response can be chosen; per group a
                count (int) or a fraction of the group (float in (0, 1]); `scale_to_groups`:
                take min(requested, available) per group (the testbed's groups are smaller than
                the paper's 200 / 200 / 400). Fixed seed, ids sorted before shuffling.
    training    next-token loss on the response tokens only (prompt tokens masked), token mean
                over the batch, AdamW, constant learning rate, gradient clipping, fp32 unless
                the config's `model.autocast` says otherwise. One row per (example, response).
    evaluation  at step 0 (the base model) and at every eval point: `eval_k` samples per SFT
                example at the run config's eval temperature / top_p / max_new_tokens; pass@1
                = mean reward; averaged per group. The examples evaluated are the SFT examples
                themselves, as in the paper.

Files in the output folder (runs.home() / "sft" / <hash>):
    examples.csv          prompt_id, group, responses (rows trained on), tokens, truncated
    train_log.csv         step, epoch, loss, tokens (response tokens so far), lr, seconds (since
                          the start, evaluations included); one row per optimizer step
    eval.csv              step, epoch, group, examples, pass@1 [, exact_rate on the testbed]
    eval_examples.csv     step, prompt_id, group, n, correct, pass@1 [, exact_rate, mean_score]
    checkpoints/step_NNNN model + tokenizer at every eval point (step 0 is the base model)
    state.pt              optimizer state and step of the last eval point (resume; removed at the end)
    sft.yaml, DONE        what was run; DONE marks a complete folder, which is reused as is

Simplifications against the paper (whose SFT hyperparameters are not reported):
    - constant learning rate, no warm-up, no weight decay; no sequence packing; batches are
      shuffled per epoch, not bucketed by length;
    - sequences longer than `max_length` (capped at the model's position limit) are cut at
      the end, as TRL does by default; `examples.csv` counts the cut ones;
    - responses_per_example takes the first N distinct correct responses of an example (file
      order); the testbed has exactly one (its worked solution), so it trains on one;
    - checkpoints are evaluated with the torch sampler (no vLLM);
    - the group labels come from the caller (e.g. the §3 chapter's `groups.classify`); on the
      testbed the groups hold far fewer than 200 / 200 / 400 examples, hence `scale_to_groups`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from unlearnability.config import Config, EvalConfig, SFTConfig, check_section
from unlearnability.data.tasks import Task
from unlearnability.evaluation.evaluate import rollouts, summarize
from unlearnability.policy.decoder import make_sampler
from unlearnability.policy.model import (
    autocast,
    collate,
    default_device,
    encode_pair,
    load_model,
)
from unlearnability.store import history, ledger, runs
from unlearnability.world.problems import Problem, iter_jsonl

EVAL_FILE = "eval.csv"
EVAL_EXAMPLES_FILE = "eval_examples.csv"
EXAMPLES_FILE = "examples.csv"
LOG_FILE = "train_log.csv"


def read_groups(path: str | Path) -> pd.Series:
    """A groups file (csv with prompt_id and group columns) as a Series prompt_id -> group."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such groups file (a csv with prompt_id,group columns)")
    df = pd.read_csv(path, dtype={"prompt_id": str, "group": str})
    missing = {"prompt_id", "group"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; have {list(df.columns)}")
    dup = df["prompt_id"][df["prompt_id"].duplicated()]
    if len(dup):
        row = int(dup.index[0]) + 2  # + header, 1-based
        raise ValueError(f"{path}:{row}: prompt_id {dup.iloc[0]!r} appears twice")
    return df.set_index("prompt_id")["group"]


# ----------------------------------------------------------------------------- which examples


def scale_counts(per_group: dict[str, int | float], group_of: pd.Series,
                 scale_to_groups: bool = True) -> dict[str, int]:
    """Requested examples per group -> counts to draw. A float in (0, 1] is a fraction of the
    group; with `scale_to_groups`, min(requested, available), else too few is an error.
    Groups requested with 0 are left out; a requested group with no examples is an error."""
    have = group_of.value_counts()
    out = {}
    for group, want in per_group.items():
        if want == 0:
            continue
        n_have = int(have.get(group, 0))
        if n_have == 0:
            raise ValueError(f"sft.per_group: group {group!r} has no examples (with a correct response); "
                             f"groups present: {dict(have)}; set sft.per_group.{group}=0 to leave it out")
        n = round(want * n_have) if isinstance(want, float) else int(want)
        if n > n_have and not scale_to_groups:
            raise ValueError(f"sft.per_group.{group}={want}: only {n_have} examples available "
                             "(set sft.scale_to_groups=true to take them all)")
        out[group] = min(n, n_have)
    return out


def select_examples(group_of: pd.Series, counts: dict[str, int], seed: int) -> pd.Series:
    """`counts[g]` prompt ids of each group g, drawn with a fixed seed; Series prompt_id -> group
    in group order of `counts`. Ids are sorted before the seeded shuffle, so the result does not
    depend on the order of `group_of`."""
    out = []
    for group, n in counts.items():
        ids = sorted(group_of[group_of == group].index)
        if not ids:
            raise ValueError(f"group {group!r} has no examples; groups present: "
                             f"{sorted(set(group_of))}")
        if n > len(ids):
            raise ValueError(f"group {group!r}: {n} examples requested, {len(ids)} available")
        random.Random(f"sft-{seed}-{group}").shuffle(ids)
        out += [(i, group) for i in ids[:n]]
    return pd.Series(dict(out), name="group", dtype=object).rename_axis("prompt_id")


# ----------------------------------------------------------------------------- correct responses


def testbed_responses(problems: list[Problem]) -> dict[str, list[str]]:
    """The world's worked solution of each testbed problem: {prompt_id: [response]}."""
    from unlearnability.world import graph_of

    return {p.id: [graph_of(p).solution("worked")] for p in problems}


def file_responses(path: str | Path, task: Task, quiet: bool = False) -> dict[str, list[str]]:
    """Correct responses from a jsonl file (one row per response: `prompt_id` or `id`, and
    `response`), kept where `task.reward` gives 1.0 (MATH: math-verify), distinct per prompt,
    in file order. Rows for prompts not in the task's training set are skipped. Prints how many
    rows were kept and rejected (unless `quiet`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such responses file (jsonl with prompt_id and response)")
    problems = {p.id: p for p in task.train}
    out: dict[str, list[str]] = {}
    n_rows = wrong = unknown = dup = 0
    for i, d in tqdm(iter_jsonl(path), desc="checking responses", unit="row", mininterval=2):
        if not isinstance(d, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object, got {type(d).__name__}")
        pid = d.get("prompt_id", d.get("id"))
        if pid is None or "response" not in d:
            raise ValueError(f"{path}:{i}: need fields 'prompt_id' (or 'id') and 'response'; got keys {sorted(d)}")
        if not isinstance(d["response"], str):
            raise ValueError(f"{path}:{i}: 'response' must be a string, got {type(d['response']).__name__}")
        n_rows += 1
        pid = str(pid)
        if pid not in problems:
            unknown += 1
            continue
        if task.reward(problems[pid], d["response"]) != 1.0:
            wrong += 1
            continue
        kept = out.setdefault(pid, [])
        if d["response"] in kept:
            dup += 1
            continue
        kept.append(d["response"])
    if n_rows == 0:
        raise ValueError(f"{path}: no response rows")
    if not quiet:
        print(f"{path.name}: {n_rows} rows; kept {n_rows - wrong - unknown - dup} correct responses for "
              f"{len(out)} prompts; rejected {wrong} wrong, {unknown} with an id not in the training set, "
              f"{dup} duplicates", flush=True)
    if not out:
        raise ValueError(f"{path}: none of its {n_rows} responses is correct for a training problem "
                         f"({wrong} wrong, {unknown} unknown ids)")
    return out


# ----------------------------------------------------------------------------- training


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step_{step:04d}"


def sft_rows(task: Task, examples: pd.Series, responses: dict[str, list[str]],
             per_example: int) -> list[tuple[str, str, str]]:
    """(prompt_id, prompt text, response) per training row: the first `per_example` responses
    of each example."""
    by_id = task.by_id()
    missing = [i for i in examples.index if not responses.get(i)]
    if missing:
        raise ValueError(f"{len(missing)} chosen example(s) have no correct response, e.g. {missing[:5]}")
    unknown = [i for i in examples.index if i not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} chosen example(s) are not problems of this task, e.g. {unknown[:5]}")
    return [(i, task.template(by_id[i].question), r) for i in examples.index for r in responses[i][:per_example]]


def batch_schedule(n_rows: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """Row indices of every optimizer step over all epochs: a seeded shuffle per epoch, cut into
    batches (the last one of an epoch may be smaller)."""
    steps = []
    for epoch in range(epochs):
        order = list(range(n_rows))
        random.Random(f"sft-batches-{seed}-{epoch}").shuffle(order)
        steps += [order[s: s + batch_size] for s in range(0, n_rows, batch_size)]
    return steps


def eval_steps(total: int, steps_per_epoch: int, every: int) -> list[int]:
    """Steps after which to checkpoint and evaluate (step 0 = the base model, always)."""
    every = every or steps_per_epoch
    return sorted({0, total} | set(range(every, total, every)))


def evaluate_examples(model, task: Task, examples: pd.Series, k: int, ev: EvalConfig, step: int,
                      desc: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-example and per-group pass@1 of `model` on the SFT examples (k samples each)."""
    by_id = task.by_id()
    problems = [by_id[i] for i in examples.index]
    sampler = make_sampler(model, task.tokenizer, ev.decoder)
    samples = rollouts(sampler, task, problems, k, ev.temperature, ev.top_p, ev.max_new_tokens,
                       ev.seed, ev.batch_prompts, keep_text=False, desc=desc)
    per_ex = summarize(samples)
    per_ex.insert(0, "step", step)
    per_ex.insert(2, "group", per_ex["prompt_id"].map(examples))
    g = per_ex.groupby("group", sort=False)
    per_group = pd.DataFrame({"step": step, "examples": g.size(), "pass@1": g["pass@1"].mean()})
    if "exact_rate" in per_ex:
        per_group["exact_rate"] = g["exact_rate"].mean()
    return per_ex, per_group.reset_index()[["step", "group", "examples", "pass@1"] +
                                           (["exact_rate"] if "exact_rate" in per_ex else [])]


def _resume(out_dir: Path, base_dir: str | Path) -> tuple[int, str | Path, dict | None]:
    """(step, model to load, saved state or None): the last eval point's, else step 0 from the base
    model; the logs lose the rows written after that step (every row on a fresh start)."""
    state_path = out_dir / "state.pt"
    step, model_src, state = 0, base_dir, None
    if state_path.exists():
        state = runs.load_state(state_path)
        step = state["step"]
        model_src = checkpoint_dir(out_dir, step)
    history.restart_logs([out_dir / n for n in (LOG_FILE, EVAL_FILE, EVAL_EXAMPLES_FILE)], step)
    return step, model_src, state


def encode_rows(tok, rows: list[tuple[str, str, str]], max_len: int, sft: SFTConfig, model_limit: int):
    """(per row: (token ids cut at max_len, response start); per row: prompt_id, tokens, truncated)."""
    encoded, cut = [], []
    for _, prompt, response in rows:
        ids, start = encode_pair(tok, prompt, response)
        if start >= max_len:
            raise ValueError(f"sft.max_length={sft.max_length} (model limit {model_limit}): "
                             f"a prompt alone has {start} tokens, leaving no response token to train on")
        cut.append(len(ids) > max_len)
        encoded.append((ids[:max_len], start))
    table = pd.DataFrame({"prompt_id": [r[0] for r in rows], "tokens": [len(e[0]) for e in encoded],
                          "truncated": cut})
    return encoded, table


def _write_examples(out_dir: Path, table: pd.DataFrame, examples: pd.Series) -> None:
    """EXAMPLES_FILE: per example its group, responses, tokens and truncated responses."""
    ex = table.groupby("prompt_id", sort=False).agg(responses=("tokens", "size"), tokens=("tokens", "sum"),
                                                    truncated=("truncated", "sum"))
    ex.insert(0, "group", examples.reindex(ex.index))
    runs.atomic_write_text(out_dir / EXAMPLES_FILE, ex.reset_index().to_csv(index=False))


def sft_step(model, opt, batch: dict, dev, autocast_dtype: str, grad_clip: float) -> torch.Tensor:
    """One optimizer step on a collated batch ((B, T) tensors); returns the loss (token mean over
    response tokens)."""
    model.train()
    with autocast(autocast_dtype):
        loss = model(**{k: v.to(dev) for k, v in batch.items()}).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    model.eval()
    return loss


def _evaluate_into(out_dir: Path, model, task: Task, examples: pd.Series, k: int, ev: EvalConfig, step: int,
                   per_epoch: int) -> None:
    """Per-example and per-group pass@1 at `step` (k samples each), appended to the run's eval files."""
    per_ex, per_group = evaluate_examples(model, task, examples, k, ev, step, desc=f"SFT eval step {step}")
    per_group.insert(1, "epoch", round(step / per_epoch, 3))
    history.append_dicts(out_dir / EVAL_EXAMPLES_FILE, per_ex.to_dict("records"))
    history.append_dicts(out_dir / EVAL_FILE, per_group.to_dict("records"))


def _eval_point(model, tok, opt: torch.optim.Optimizer, out_dir: Path, step: int, tokens: int, t0: float,
                evaluate: Callable[[int], None]) -> None:
    """An eval point: the checkpoint first, then its evaluation, then the state a killed run
    resumes from (written after both, so a resumed run never repeats or skips an eval point)."""
    ck = checkpoint_dir(out_dir, step)
    model.save_pretrained(str(ck))
    tok.save_pretrained(str(ck))
    evaluate(step)
    runs.save_state({"step": step, "opt": opt.state_dict(), "tokens": tokens, "elapsed": time.time() - t0},
                    out_dir / "state.pt")


def train_sft(sft: SFTConfig, base_dir: str | Path, task: Task, examples: pd.Series,
              responses: dict[str, list[str]], out_dir: str | Path, *, eval_cfg: EvalConfig | None = None,
              autocast_dtype: str = "none", stop_after: int | None = None) -> Path:
    """Fine-tune the model at `base_dir` on the chosen examples' correct responses; returns `out_dir`.

    examples: prompt_id -> group (`select_examples`); responses: prompt_id -> correct responses.
    eval_cfg: temperature / top_p / max_new_tokens / seed / batch_prompts of the per-group
    evaluation (default: EvalConfig(), the paper's); k is `sft.eval_k`.
    A folder with DONE is returned as is; one with `state.pt` resumes from its last eval point.
    `stop_after`: stop (without DONE) after that many optimizer steps, as a kill would (tests).
    The run loop: resume, encode, then per step update and log, at each eval point checkpoint
    and evaluate every group.
    """
    out_dir = Path(out_dir)
    if runs.is_done(out_dir):
        return out_dir
    check_section("sft", sft)
    ev = eval_cfg or EvalConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = task.tokenizer
    rows = sft_rows(task, examples, responses, sft.responses_per_example)
    step, model_src, state = _resume(out_dir, base_dir)
    dev = default_device()
    model = load_model(model_src).to(dev)
    limit = model.config.max_position_embeddings
    encoded, table = encode_rows(tok, rows, min(sft.max_length, limit), sft, limit)
    _write_examples(out_dir, table, examples)

    schedule = batch_schedule(len(encoded), sft.batch_size, sft.epochs, sft.seed)
    per_epoch = math.ceil(len(encoded) / sft.batch_size)
    evals = eval_steps(len(schedule), per_epoch, sft.eval_every)
    torch.manual_seed(sft.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=sft.lr, weight_decay=sft.weight_decay)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id  # Llama 3 has no pad token
    if state is not None:
        opt.load_state_dict(state["opt"])

    def evaluate_now(step: int) -> None:
        _evaluate_into(out_dir, model, task, examples, sft.eval_k, ev, step, per_epoch)

    if step == 0:
        evaluate_now(0)
    bar = tqdm(total=len(schedule), initial=step, desc=f"SFT ({len(encoded)} rows)", unit="step", mininterval=2)
    t0 = time.time() - (state["elapsed"] if state else 0.0)
    tokens = state["tokens"] if state else 0
    while step < len(schedule):
        batch = collate([encoded[i] for i in schedule[step]], pad_id)  # (B, T) each
        loss = float(sft_step(model, opt, batch, dev, autocast_dtype, sft.grad_clip).detach())
        step += 1
        last = max((e for e in evals if e < step), default=0)
        runs.check_finite(loss, f"{out_dir} (SFT)", step,
                          f"step {last} ({checkpoint_dir(out_dir, last).name})" if last else "none (the start)")
        tokens += int((batch["labels"] != -100).sum())
        history.append_dicts(out_dir / LOG_FILE, [{"step": step, "epoch": round(step / per_epoch, 3), "loss": loss,
                                                   "tokens": tokens, "lr": sft.lr, "seconds": round(time.time() - t0, 2)}])
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if step in evals:
            _eval_point(model, tok, opt, out_dir, step, tokens, t0, evaluate_now)
        if stop_after is not None and step >= stop_after and step < len(schedule):
            bar.close()
            return out_dir
    bar.close()
    (out_dir / "state.pt").unlink(missing_ok=True)
    runs.mark_done(out_dir)
    return out_dir


def read_sft_eval(out_dir: str | Path, per_example: bool = False) -> pd.DataFrame:
    """The per-group (or per-example) pass@1 table of an SFT folder."""
    path = Path(out_dir) / (EVAL_EXAMPLES_FILE if per_example else EVAL_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no SFT evaluation here (pass the folder `unlearn sft` printed)")
    return pd.read_csv(path, dtype={"prompt_id": str})


# ----------------------------------------------------------------------------- the cached entry point


def sft_key(base: str | Path, examples: pd.Series, responses: dict[str, list[str]], cfg: Config) -> str:
    """Hash of what an SFT folder depends on: base model, `cfg.sft`, chosen ids and their
    responses, prompt template, eval settings, autocast and the scoring version."""
    from unlearnability.data.reward import SCORING_VERSION

    sft = cfg.sft
    used = {i: responses[i][: sft.responses_per_example] for i in examples.index}
    blob = json.dumps({
        "base": Path(base).name if isinstance(base, Path) else str(base),
        "sft": dataclasses.asdict(sft),
        "examples": sorted(examples.items()),
        "responses": hashlib.sha256(json.dumps(used, sort_keys=True).encode()).hexdigest(),
        # data.augment (added later) is left out: SFT trains on the chosen ids only, which it does not change
        "data": {k: v for k, v in dataclasses.asdict(cfg.data).items() if k != "augment"},
        "eval": {k: v for k, v in dataclasses.asdict(cfg.eval).items() if k != "k"},
        "autocast": cfg.model.autocast,
        "scoring": SCORING_VERSION,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_sft(cfg: Config, group_of: pd.Series, *, responses_path: str | Path | None = None,
            quiet: bool = False) -> Path:
    """Run (or reuse, or resume) SFT of `cfg`'s base model per group with the settings `cfg.sft`;
    returns the output folder runs.home() / "sft" / <hash> (see the module docstring for its files).
    Other SFT settings: `config.apply_overrides(cfg, {"sft": {"epochs": 5}})` (or `--set sft.epochs=5`).

    group_of: prompt_id -> group (e.g. `groups.classify(...)["group"]`); groups not named in
    `cfg.sft.per_group` are ignored. responses_path: jsonl of responses from a stronger model
    (required at paper scale); testbed default: the world's worked solutions.
    """
    from unlearnability.data.tasks import load_task
    from unlearnability.policy.model import set_threads
    from unlearnability.train.base import ensure_base_model

    sft = cfg.sft
    check_section("sft", sft)
    set_threads()
    base = ensure_base_model(cfg, quiet=quiet)
    task = load_task(cfg, base)
    train_ids = {p.id for p in task.train}
    stray = [i for i in group_of.index if i not in train_ids]
    if stray:
        raise ValueError(f"{len(stray)} prompt id(s) in the groups are not training problems of preset "
                         f"{cfg.name!r}, e.g. {stray[:5]} (were the groups made with another preset?)")
    if responses_path is not None:
        responses = file_responses(responses_path, task, quiet=quiet)
    elif task.source == "testbed":
        responses = testbed_responses(task.train)
    else:
        raise ValueError(f"data.source={task.source!r}: pass a responses file (--responses FILE, jsonl with "
                         "prompt_id and response from a stronger model); only the testbed has its own")
    available = group_of[[bool(responses.get(i)) for i in group_of.index]]
    counts = scale_counts(sft.per_group, available, sft.scale_to_groups)
    examples = select_examples(available, counts, sft.seed)
    out_dir = runs.home() / "sft" / sft_key(base, examples, responses, cfg)
    with ledger.making("sft", out_dir):
        return _run_sft_into(cfg, base, task, examples, counts, responses, responses_path, out_dir, quiet)


def _run_sft_into(cfg: Config, base, task, examples, counts: dict, responses: dict,
                  responses_path, out_dir: Path, quiet: bool) -> Path:
    sft = cfg.sft
    if runs.is_done(out_dir):
        return out_dir
    if not quiet:
        asked = {g: sft.per_group[g] for g in counts}
        print(f"SFT on {len(examples)} examples {counts} (asked {asked}) -> {out_dir}", flush=True)
    with runs.locked(out_dir):  # one writer per folder; a second process waits, then reuses it
        if runs.is_done(out_dir):
            return out_dir
        runs.atomic_write_text(out_dir / "sft.yaml", yaml.safe_dump({
            "sft": dataclasses.asdict(sft), "counts": counts, "base": str(base),
            "responses": str(responses_path) if responses_path else "testbed worked solutions",
            "config": cfg.to_dict()}, sort_keys=False))
        return train_sft(sft, base, task, examples, responses, out_dir, eval_cfg=cfg.eval,
                         autocast_dtype=cfg.model.autocast)
