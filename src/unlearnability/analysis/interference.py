"""Interference between correct and incorrect rollouts' updates (paper A.3, Figure 16).

For an example with both correct and incorrect rollouts, GRPO's update is the sum of two
parts: raise the correct responses (A > 0) and lower the incorrect ones (A < 0). The paper
asks whether the second part undoes the first: (a) within the example (Fig 16a), and (b)
against the incorrect rollouts of every example in the batch (Fig 16b). The authors released
no code for it; we reuse the gradient set-up of `gradients.py` (§5.1) so the numbers compare:

  - rollouts from the analysed policy (temperature / top_p / count of the GradientConfig),
    advantages A = rewards z-scored within the example over *all* its rollouts; an example
    whose rewards agree has no GRPO gradient and gets NaN;
  - per-rollout loss -A * (mean over response tokens of log p) at temperature 1 (ratio 1 at
    the analysed policy), gradients w.r.t. the fixed random LoRA adapter of `lora_policy`;
  - correct = reward > 0, incorrect = reward <= 0; each side's gradient is the mean over up
    to `max_each` (= g.max_correct) of its rollouts, drawn at random with a seeded rng.

Sign convention. Both vectors are gradients of the GRPO *loss*, each with its own advantage
sign already in it: g_correct = mean(-A_i grad m_i) with A_i > 0, g_incorrect = mean(-A_j
grad m_j) with A_j < 0 (m = mean token log p). The update directions are -g_correct and
-g_incorrect, and cos(g_correct, g_incorrect) = cos(-g_correct, -g_incorrect), so the cosine
is that of the two *update* directions: negative means the step that pushes the incorrect
responses down also pushes the correct ones down (interference); identical correct and
incorrect responses give exactly -1.

(b) Our choices: a "batch" is `batch_prompts` consecutive examples (the sampling chunk);
its incorrect-rollout update is the sum over its examples of their g_incorrect, the example
itself included, each example weighted equally (examples without variance add nothing, as in
GRPO). A batch of one example gives cos_batch = cos_within.

    split_gradients    (g_correct (D,), g_incorrect (D,)) of one example, or None
    cosine             cosine of two flat vectors
    batch_cosines      (b) for the examples of one batch
    interference       sample, differentiate and measure a list of problems
    interference_at    the same on a study's examples, at a policy (cached)
    cancel_table, cancel_long, cancel_means, cancel_claims, within_change
                       Figure 16's tables and its claims (unlearnable vs learnable)
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from unlearnability.analysis.gradients import analysis_setup, rollout_gradient
from unlearnability.config import GradientConfig
from unlearnability.data.tasks import Task, load_task
from unlearnability.pipeline.experiment import Study
from unlearnability.policy.decoder import make_sampler
from unlearnability.policy.model import set_threads
from unlearnability.policy.sampling import SamplingParams
from unlearnability.store.cache import cached_table
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import group_advantages
from unlearnability.world.problems import Problem

COLUMNS = ["prompt_id", "rollouts", "correct", "cos_within", "cos_batch"]


def split_gradients(model, prompt_ids: list[int], responses: list[list[int]], rewards: list[float],
                    pad_id: int, max_each: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(g_correct (D,), g_incorrect (D,)) of one example, or None when its rewards have no
    variance (or no rollout is incorrect, possible only with non-binary rewards).

    Each is the mean over up to `max_each` rollouts of that side (correct first, then
    incorrect, drawn from `rng`) of the gradient of -A * mean_t log p; A = rewards z-scored
    over all rollouts of the example (population std, as `gradients.example_gradient`).
    """
    r = torch.tensor(rewards, dtype=torch.float32)
    if r.std(unbiased=False) == 0:
        return None
    adv = group_advantages(r[None])[0]  # (n,): GRPO's advantage of each rollout in its group
    correct = [i for i, x in enumerate(rewards) if x > 0]
    incorrect = [i for i, x in enumerate(rewards) if x <= 0]
    if not correct or not incorrect:
        return None
    out = []
    for side in (correct, incorrect):
        keep = rng.sample(side, min(max_each, len(side)))
        out.append(rollout_gradient(model, prompt_ids, [responses[i] for i in keep], adv[keep], pad_id))
    return out[0], out[1]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two flat vectors; NaN if either is zero."""
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return float("nan")
    return float(a @ b / (na * nb))


def batch_cosines(splits: list[tuple[torch.Tensor, torch.Tensor] | None]) -> list[float]:
    """(b) for one batch: cos(g_correct of example i, sum over the batch's examples of their
    g_incorrect), NaN for an example without a split."""
    incorrect = [s[1] for s in splits if s is not None]
    if not incorrect:
        return [float("nan")] * len(splits)
    total = torch.stack(incorrect).sum(0)  # (D,)
    return [cosine(s[0], total) if s is not None else float("nan") for s in splits]


def interference(model_dir: str | Path, task: Task, problems: list[Problem], g: GradientConfig,
                 max_new_tokens: int, batch_prompts: int = 16, rollouts: int | None = None) -> pd.DataFrame:
    """Per example: prompt_id, rollouts, correct (count), cos_within (a), cos_batch (b).

    Rollouts of batch b (problems[s: s + batch_prompts]) are sampled with seed g.seed + s, as
    in `gradients.example_gradients`; `rollouts` overrides g.rollouts. Deterministic given g.
    """
    from unlearnability.analysis.gradients import lora_policy

    n = g.rollouts if rollouts is None else rollouts
    model = lora_policy(model_dir, g)
    sampler = make_sampler(model, task.tokenizer, g.decoder)
    rng = random.Random(g.seed)
    rows = []
    for s in tqdm(range(0, len(problems), batch_prompts), desc="interference", unit="batch", mininterval=2):
        chunk = problems[s: s + batch_prompts]
        prompts = [task.prompt_ids(p) for p in chunk]
        comps = sampler.generate(prompts, SamplingParams(n=n, temperature=g.temperature, top_p=g.top_p,
                                                         max_new_tokens=max_new_tokens, seed=g.seed + s))
        splits, stats = [], []
        for j, p in enumerate(chunk):
            cs = comps[j * n: (j + 1) * n]
            rewards = [task.reward(p, c.text) for c in cs]
            splits.append(split_gradients(model, prompts[j], [c.token_ids for c in cs], rewards,
                                          task.tokenizer.pad_token_id, g.max_correct, rng))
            stats.append((p.id, len(cs), int(sum(x > 0 for x in rewards))))
        for (pid, k, c), sp, cb in zip(stats, splits, batch_cosines(splits)):
            rows.append({"prompt_id": pid, "rollouts": k, "correct": c,
                         "cos_within": cosine(*sp) if sp is not None else math.nan, "cos_batch": cb})
    return pd.DataFrame(rows, columns=COLUMNS)


def interference_at(study: Study, group_of: pd.Series, step: int = 0, seed: int | None = None,
                    gradient_overrides: dict | None = None) -> pd.DataFrame:
    """Correct vs incorrect rollouts' gradients (paper A.3, Figure 16) of up to
    `gradients.per_group` examples per group, at the base model (step 0) or a seed's
    checkpoint: prompt_id, group, rollouts, correct, cos_within, cos_batch."""
    import dataclasses

    from unlearnability.analysis.interference import interference

    cfg = study.cfg
    g, chosen, policy = analysis_setup(study, group_of, step, seed, gradient_overrides)

    def compute() -> pd.DataFrame:

        set_threads()
        task = load_task(cfg, ensure_base_model(cfg))
        by_id = task.by_id()
        df = interference(policy, task, [by_id[i] for i in chosen.index], g, cfg.eval.max_new_tokens)
        return df.assign(group=df["prompt_id"].map(chosen))

    key = {"g": dataclasses.asdict(g), "policy": str(policy), "ids": sorted(chosen.items()),
           "max_new": cfg.eval.max_new_tokens}
    return cached_table("interference", key, compute)


# ---------------------------------------------------------------- Figure 16's tables and claims

MEASURE_WORDS = {"within": "(a) within the example", "batch": "(b) against the batch's incorrect rollouts"}


def cancel_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """{policy label: `interference_at` table} -> those tables stacked, each row with policy (its
    label), within = -cos_within and batch = -cos_batch: the cosine of the correct and incorrect
    rollouts' *log-likelihood* gradients, the quantity the paper plots (high: the updates cancel).
    Rows without a within value (no correct or no incorrect rollout) are dropped."""
    parts = [df.assign(policy=label, within=-df["cos_within"], batch=-df["cos_batch"]) for label, df in frames.items()]
    return pd.concat(parts).dropna(subset=["within"])


def cancel_long(itf: pd.DataFrame) -> pd.DataFrame:
    """`cancel_table` in long form for the figure: prompt_id, group, policy, measure (in words,
    `MEASURE_WORDS`), cosine; the within rows first, then the batch rows."""
    long = itf.melt(id_vars=["prompt_id", "group", "policy"], value_vars=["within", "batch"],
                    var_name="measure", value_name="cosine")
    long["measure"] = long["measure"].map(MEASURE_WORDS)
    return long


def cancel_means(itf: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, group) of `cancel_table`: examples, within (mean), batch (mean)."""
    return itf.groupby(["policy", "group"]).agg(examples=("within", "size"), within=("within", "mean"),
                                                batch=("batch", "mean"))


def cancel_claims(itf: pd.DataFrame) -> list[dict]:
    """Figure 16's claims, one summary row (hypothesis, paper, testbed, numbers) per policy of
    `cancel_table` and measure (within, batch): unlearnable vs learnable examples, two-sided
    permutation test (`dynamics.shift_verdict`). The paper expects no difference at the initial
    policy and against the batch (testbed: the verdict); within the example at a later policy it
    expects the learnable ones to shift and the unlearnable ones not (testbed: "see numbers")."""
    from unlearnability.analysis.dynamics import shift_verdict

    hard = itf[itf.group.isin(["learnable", "unlearnable"])]
    rows = []
    for label in hard.policy.unique():
        sub = hard[hard.policy == label]
        for m in ("within", "batch"):
            v = shift_verdict(sub[m], sub["group"] == "unlearnable", "two-sided")
            plain = m == "batch" or label == "initial policy"
            rows.append({"hypothesis": f"interference: {m} at {label} (Fig 16{'a' if m == 'within' else 'b'})",
                         "paper": "no learnable/unlearnable difference" if plain else "learnable shift, unlearnable do not",
                         "testbed": v["verdict"] if plain else "see numbers",
                         "numbers": f"unlearnable - learnable {v['gap']:+.3f}, p = {v['p']:.3f} ({v['n_group']} vs {v['n_rest']})"})
    return rows


def within_change(means: pd.DataFrame, later: str, first: str = "initial policy") -> pd.Series | None:
    """Per group, the change of the mean within cosine from policy `first` to policy `later`
    (`cancel_means`'s table), named "change of (a), initial -> mid"; None unless the table holds
    exactly two policies."""
    shift = means["within"].unstack("policy") if len(means) else pd.DataFrame()
    if shift.shape[1] != 2:
        return None
    return (shift[later] - shift[first]).rename("change of (a), initial -> mid")
