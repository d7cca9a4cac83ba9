"""pass@k: sample k responses per problem from a policy and reward them.

pass@1 is the mean reward over the k samples (paper: k = 32, temperature 0.7, top_p 0.95),
and pass@k the unbiased estimator of Chen et al. (2021). For testbed problems every
response is also scored by the step checker (0-5, exact worked solution).
"""

from __future__ import annotations

from math import comb

import pandas as pd
from tqdm.auto import tqdm

from unlearnability.config import EvalConfig
from unlearnability.data.tasks import Task
from unlearnability.policy.sampling import Sampler, SamplingParams
from unlearnability.world.problems import Problem


def rollouts(sampler: Sampler, task: Task, problems: list[Problem], k: int, temperature: float,
             top_p: float, max_new_tokens: int, seed: int, batch_prompts: int = 64,
             keep_text: bool = True, desc: str = "sampling") -> pd.DataFrame:
    """One row per sample: prompt_id, sample, reward, n_tokens, finished (+ response text;
    + score, exact, style for testbed problems)."""
    from unlearnability.world import check_steps, graph_of

    rows = []
    params_base = dict(n=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    for s in tqdm(range(0, len(problems), batch_prompts), desc=desc, unit="batch", mininterval=2):
        chunk = problems[s: s + batch_prompts]
        params = SamplingParams(seed=seed + s, **params_base)
        comps = sampler.generate([task.prompt_ids(p) for p in chunk], params)
        for c in comps:
            prob = chunk[c.prompt_index]
            row = {"prompt_id": prob.id, "sample": len(rows) % k, "reward": task.reward(prob, c.text),
                   "n_tokens": len(c.token_ids), "finished": c.finished}
            if task.source == "testbed":
                rep = check_steps(graph_of(prob), c.text)
                row.update(score=rep.score, exact=rep.exact, style=rep.style)
            if keep_text:
                row["response"] = c.text
            rows.append(row)
    return pd.DataFrame(rows)


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(samples: pd.DataFrame, ks: tuple[int, ...] = (1,)) -> pd.DataFrame:
    """Per-problem table: prompt_id, n, correct, pass@1 (= mean reward), pass@k for ks > 1,
    and for testbed samples exact_rate / mean_score."""
    g = samples.groupby("prompt_id", sort=False)
    out = pd.DataFrame({"n": g["reward"].size(), "correct": g["reward"].apply(lambda r: int((r > 0).sum())),
                        "pass@1": g["reward"].mean()})
    for k in ks:
        if k > 1:
            out[f"pass@{k}"] = [pass_at_k_estimate(n, c, k) for n, c in zip(out["n"], out["correct"])]
    if "exact" in samples:
        out["exact_rate"] = g["exact"].mean()
        out["mean_score"] = g["score"].mean()
    return out.reset_index()


def evaluate_policy(sampler: Sampler, task: Task, problems: list[Problem], cfg: EvalConfig,
                    keep_text: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample rows, per-problem summary) for `problems` under `cfg` (k, temperature, top_p)."""
    samples = rollouts(sampler, task, problems, cfg.k, cfg.temperature, cfg.top_p, cfg.max_new_tokens,
                       cfg.seed, cfg.batch_prompts, keep_text=keep_text, desc=f"pass@{cfg.k}")
    return samples, summarize(samples)
