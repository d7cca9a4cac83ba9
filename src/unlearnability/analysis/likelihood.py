"""Reference log-likelihood of correct rollouts (paper §4.2, Figure 3).

The paper reports, per group (easy / learnable / unlearnable), how likely the initial policy
finds the correct responses it samples for an example: an unlearnable example's correct
rollouts should be unusually unlikely under the policy (lucky guesses, not a skill it has).
The authors released no code for this figure, so these choices are ours:

  - a rollout's score is the *mean* log-prob per response token (`mean_logp`; the sum,
    `sum_logp`, is kept too), so long and short responses compare;
  - log-probs at temperature 1 (the policy itself, not the tempered sampling distribution);
  - the response is re-tokenised from its decoded text (the per-sample table keeps text, not
    token ids), plus the EOS token when the rollout finished: the sampler decodes with
    `skip_special_tokens=True`, so EOS is missing from the text but was part of the rollout
    (and of what GRPO trains on). For the testbed's word-level tokenizer the round trip is
    exact; a BPE tokenizer may re-tokenise a decoded text differently (rarely), and a rollout
    that stopped at another end-of-turn token gets EOS in its place;
  - an example's value is the mean over its correct rollouts; a group's is the mean over its
    examples, with the standard error of that mean.

    rollout_logliks    per-rollout mean / sum log-prob of the response under a policy
    per_example        mean over each example's correct rollouts
    per_group          mean and SEM over the examples of each group
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from unlearnability.analysis.gradients import analysis_setup
from unlearnability.data.reward import SCORING_VERSION
from unlearnability.data.tasks import Task, load_task
from unlearnability.pipeline.experiment import Study, make_sampler
from unlearnability.policy.model import set_threads
from unlearnability.store.cache import cached_table
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import Group, pad_groups, token_logprobs

COLUMNS = ["prompt_id", "sample", "reward", "n_tokens", "mean_logp", "sum_logp"]


def response_ids(tokenizer, text: str, finished: bool) -> list[int]:
    """Token ids of a decoded response: the text re-tokenised, + EOS if the rollout finished."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if finished else ids


def sequence_logprobs(model, prompts: list[list[int]], responses: list[list[int]],
                      pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p (temperature 1) over each response's tokens, and its token count: (B,), (B,)."""
    batch = pad_groups([Group("", p, [r], [0.0]) for p, r in zip(prompts, responses)], pad_id)
    logp = token_logprobs(model, batch, 1.0, "none").cpu()  # (B, L-1)
    mask = batch["response_mask"]  # (B, L-1): 1 where position t predicts a response token
    return (logp * mask).sum(-1), mask.sum(-1)


def _load(model_dir_or_model):
    if isinstance(model_dir_or_model, (str, Path)):
        from unlearnability.policy.model import default_device, load_model

        return load_model(model_dir_or_model).to(default_device())
    return model_dir_or_model


@torch.no_grad()
def rollout_logliks(model_dir_or_model, task: Task, samples: pd.DataFrame, batch_size: int = 64,
                    correct_only: bool = True) -> pd.DataFrame:
    """Log-likelihood of each sampled response under a policy (a model folder or a loaded model).

    samples: one row per rollout, as `evaluate.rollouts(..., keep_text=True)` writes them
    (prompt_id, sample, reward, response[, finished]); without `finished`, no EOS is added.
    Returns prompt_id, sample, reward, n_tokens (response tokens scored), mean_logp (per token;
    NaN for an empty response), sum_logp - for the correct rows only (reward > 0) unless
    `correct_only` is False. Rows come back in the order of `samples`.
    """
    rows = samples[samples["reward"] > 0] if correct_only else samples
    rows = rows.reset_index(drop=True)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    model = _load(model_dir_or_model)
    tok = task.tokenizer
    by_id = task.by_id()
    finished = rows["finished"] if "finished" in rows else pd.Series(False, index=rows.index)
    prompts = [task.prompt_ids(by_id[str(pid)]) for pid in rows["prompt_id"]]
    responses = [response_ids(tok, "" if pd.isna(t) else str(t), bool(f))
                 for t, f in zip(rows["response"], finished)]
    order = sorted(range(len(rows)), key=lambda i: len(prompts[i]) + len(responses[i]))  # less padding
    sums, counts = torch.zeros(len(rows)), torch.zeros(len(rows))
    for s in tqdm(range(0, len(order), batch_size), desc="log-likelihood", unit="batch", mininterval=2):
        idx = order[s: s + batch_size]
        sums[idx], counts[idx] = sequence_logprobs(model, [prompts[i] for i in idx],
                                                   [responses[i] for i in idx], tok.pad_token_id)
    out = rows[["prompt_id", "sample", "reward"]].copy()
    out["n_tokens"] = counts.long().numpy()
    out["sum_logp"] = sums.double().numpy()
    out["mean_logp"] = np.where(out["n_tokens"] > 0, out["sum_logp"] / out["n_tokens"].clip(lower=1), np.nan)
    return out[COLUMNS]


def per_example(df: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: n_correct, mean_logp (mean of its correct rollouts' per-token means) and
    mean_sum_logp (mean of their sums). Rows with reward <= 0 are ignored."""
    c = df[df["reward"] > 0]
    g = c.groupby("prompt_id", sort=False)
    return pd.DataFrame({"n_correct": g.size(), "mean_logp": g["mean_logp"].mean(),
                         "mean_sum_logp": g["sum_logp"].mean()}).reset_index()


def per_group(per_example_df: pd.DataFrame, group_of: pd.Series, value: str = "mean_logp") -> pd.DataFrame:
    """Per group: examples, mean and sem (std with ddof 1 / sqrt(n); NaN below 2 examples) of
    `value` over its examples. group_of: group per prompt_id; examples it lacks are dropped.
    Groups in `groups.GROUPS` order, then any others by name."""
    from unlearnability.evaluation.groups import GROUPS

    d = per_example_df.assign(group=per_example_df["prompt_id"].map(group_of)).dropna(subset=["group", value])
    g = d.groupby("group")[value]
    out = pd.DataFrame({"examples": g.size(), "mean": g.mean(), "sem": g.sem(ddof=1)})
    names = [x for x in GROUPS if x in out.index] + sorted(x for x in out.index if x not in GROUPS)
    return out.loc[names].rename_axis("group").reset_index()


def reference_logliks(study: Study, group_of: pd.Series, step: int = 0, seed: int | None = None,
                      gradient_overrides: dict | None = None) -> pd.DataFrame:
    """Log-likelihood under the *initial* policy of correct rollouts drawn by the policy at
    `step` (0 = the initial policy; else the checkpoint of `seed`), paper §4.2, Figure 3.

    The examples and the sampling follow the gradient analysis (§5.1): up to
    `gradients.per_group` examples per group, `gradients.rollouts` samples each at
    `gradients.temperature`, so hard examples have correct rollouts to score. One row per
    correct rollout: prompt_id, group, sample, reward, n_tokens, mean_logp, sum_logp."""
    import dataclasses

    from unlearnability.analysis.likelihood import rollout_logliks
    from unlearnability.evaluation.evaluate import rollouts

    cfg = study.cfg
    g, chosen, policy = analysis_setup(study, group_of, step, seed, gradient_overrides)
    base = ensure_base_model(cfg)

    def compute() -> pd.DataFrame:

        set_threads()
        task = load_task(cfg, base)
        by_id = task.by_id()
        sampler = make_sampler("torch", policy, task.tokenizer, g.decoder)
        samples = rollouts(sampler, task, [by_id[i] for i in chosen.index],
                           g.rollouts, g.temperature, g.top_p, cfg.eval.max_new_tokens, g.seed,
                           cfg.eval.batch_prompts, keep_text=True, desc="rollouts to score")
        df = rollout_logliks(base, task, samples[samples["reward"] > 0])
        return df.assign(group=df["prompt_id"].map(chosen))

    key = {"g": dataclasses.asdict(g), "policy": str(policy), "reference": str(base), "ids": sorted(chosen.items()),
           "max_new": cfg.eval.max_new_tokens, "v": SCORING_VERSION}
    return cached_table("loglik", key, compute)
