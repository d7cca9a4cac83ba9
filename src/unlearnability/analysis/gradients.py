"""Per-example gradients and their cosine similarity (paper §5.1, Figures 1c, 6, 17).

For an example: sample `rollouts` responses from the policy (temperature 0.7), z-score their
rewards within the example (drop the example if they all agree), keep up to `max_correct`
correct rollouts at random. The per-rollout loss is -A * (mean over response tokens of
log p); the ratio is 1 at the policy being analysed, so this is the GRPO gradient direction.
The example's gradient is the mean over its kept rollouts, taken with respect to a fixed,
randomly initialised LoRA adapter only (r = 16, alpha = 32, q_proj and v_proj, init seed 42).
With peft's default init (B = 0) only the B matrices get non-zero gradients, as the paper's
code notes.

"Average gradient similarity" of an example (Figure 1c) = mean cosine with every other
analysed example; Figure 6 = mean cosine of intra- and inter-group pairs.

On a study (cached in the run store's analysis/, keyed by the gradient config, the policy and
the examples): `gradient_similarity` (the three tables), `gradient_matrix` (the cosine matrix),
and `analysis_setup`, what every per-example analysis of a policy starts from (also used by
`likelihood.reference_logliks` and `interference.interference_at`).

The §5 chapter's tables and claims: `similarity_tables`, `examples_per_policy`, `outlier_claims`
(Figures 6, 17), `lora_full_claim` (LoRA vs full parameters), `outlier_gap` and
`rollouts_agreement` (the number of rollouts).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from unlearnability.config import GradientConfig
from unlearnability.data.tasks import Task, load_task
from unlearnability.pipeline.experiment import Study
from unlearnability.policy.decoder import make_sampler
from unlearnability.policy.model import load_model, set_threads
from unlearnability.policy.sampling import SamplingParams
from unlearnability.store import ledger, runs
from unlearnability.store.cache import analysis_path
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import (
    Group,
    checkpoint_dir,
    group_advantages,
    pad_groups,
    token_logprobs,
)
from unlearnability.world.problems import Problem


def lora_policy(model_dir: str | Path, g: GradientConfig):
    """The policy at `model_dir` wrapped in a fresh LoRA adapter (peft); only LoRA params train."""
    from peft import LoraConfig, get_peft_model


    model = load_model(model_dir)
    torch.manual_seed(g.lora_seed)
    conf = LoraConfig(r=g.lora_r, lora_alpha=g.lora_alpha, target_modules=list(g.lora_targets),
                      lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, conf)
    peft_model.eval()  # no dropout; gradients still flow
    return peft_model


def full_policy(model_dir: str | Path):
    """The policy at `model_dir` with every parameter trainable (to check LoRA against)."""

    model = load_model(model_dir)
    model.eval()
    model.requires_grad_(True)
    return model


def lora_params(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def example_gradient(model, prompt_ids: list[int], responses: list[list[int]], rewards: list[float],
                     g: GradientConfig, pad_id: int, rng: random.Random) -> torch.Tensor | None:
    """Flattened LoRA gradient (D,) of one example, or None when its rewards have no variance."""
    r = torch.tensor(rewards)
    if r.std(unbiased=False) == 0:
        return None
    adv = group_advantages(r[None])[0]  # (n,): GRPO's advantage of each rollout in its group
    correct = [i for i, x in enumerate(rewards) if x > 0]
    keep = rng.sample(correct, min(g.max_correct, len(correct)))
    return rollout_gradient(model, prompt_ids, [responses[i] for i in keep], adv[keep], pad_id)


def flat_grad(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The current .grad of `params` as one flat vector (D,); zeros where a grad is None."""
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device)
                      for p in params]).detach()


def rollout_gradient(model, prompt_ids: list[int], responses: list[list[int]], adv: torch.Tensor,
                     pad_id: int) -> torch.Tensor:
    """Gradient (D,) w.r.t. the trainable params (the LoRA adapter, or every parameter of a
    `full_policy`) of mean_k [-adv_k * mean_t log p_k(t)]: the GRPO loss at ratio 1.

    responses: K token-id lists of one prompt; adv: (K,) their advantages.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    batch = pad_groups([Group("x", prompt_ids, responses, [0.0] * len(responses))], pad_id)
    model.zero_grad(set_to_none=True)
    logp = token_logprobs(model, batch, 1.0, "none")  # (K, L-1)
    mask = batch["response_mask"].to(logp.device)  # (K, L-1)
    seq_mean = (logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # (K,)
    loss = (-adv.to(logp.device) * seq_mean).mean()
    loss.backward()
    out = flat_grad(params)
    model.zero_grad(set_to_none=True)
    return out


def example_gradients(model_dir: str | Path, task: Task, problems: list[Problem], g: GradientConfig,
                      batch_prompts: int = 16, max_new_tokens: int = 128,
                      full: bool = False) -> tuple[list[str], torch.Tensor, pd.DataFrame]:
    """Gradients of `problems` at the policy in `model_dir`, w.r.t. the LoRA adapter (or, with
    `full`, every parameter: the paper's check that LoRA similarity tracks the full one). The
    rollouts are the same either way (a fresh LoRA adapter has B = 0, so it leaves the policy
    unchanged).

    returns (ids kept, gradients (N_kept, D), per-example stats: prompt_id, rollouts, correct, kept)
    """
    model = full_policy(model_dir) if full else lora_policy(model_dir, g)
    sampler = make_sampler(model, task.tokenizer, g.decoder)  # LoRA deltas merged by the fast decoder
    rng = random.Random(g.seed)
    ids, grads, stats = [], [], []
    for s in tqdm(range(0, len(problems), batch_prompts), desc="gradients", unit="batch", mininterval=2):
        chunk = problems[s: s + batch_prompts]
        prompts = [task.prompt_ids(p) for p in chunk]
        comps = sampler.generate(prompts, SamplingParams(n=g.rollouts, temperature=g.temperature, top_p=g.top_p,
                                                         max_new_tokens=max_new_tokens, seed=g.seed + s))
        for j, p in enumerate(chunk):
            cs = comps[j * g.rollouts: (j + 1) * g.rollouts]
            rewards = [task.reward(p, c.text) for c in cs]
            vec = example_gradient(model, prompts[j], [c.token_ids for c in cs], rewards, g,
                                   task.tokenizer.pad_token_id, rng)
            n_correct = int(sum(x > 0 for x in rewards))
            stats.append({"prompt_id": p.id, "rollouts": len(cs), "correct": n_correct,
                          "kept": vec is not None})
            if vec is not None:
                ids.append(p.id)
                grads.append(vec)
    G = torch.stack(grads) if grads else torch.zeros(0, 0)
    return ids, G, pd.DataFrame(stats, columns=["prompt_id", "rollouts", "correct", "kept"])


def cosine_matrix(G: torch.Tensor) -> np.ndarray:
    """G (N, D) -> pairwise cosine similarity (N, N)."""
    U = G / G.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return (U @ U.T).numpy()


def average_similarity(C: np.ndarray) -> np.ndarray:
    """Mean cosine of each example with every *other* example: (N,)."""
    n = C.shape[0]
    return (C.sum(1) - np.diag(C)) / max(1, n - 1)


def group_pair_means(C: np.ndarray, groups: list[str]) -> pd.DataFrame:
    """Mean cosine over pairs (i != j) for every pair of groups: long table group_a, group_b, mean, pairs."""
    g = np.array(groups)
    rows = []
    for a in dict.fromkeys(groups):
        for b in dict.fromkeys(groups):
            block = C[np.ix_(g == a, g == b)]
            if a == b:
                n = block.shape[0]
                vals = block[~np.eye(n, dtype=bool)]
            else:
                vals = block.ravel()
            rows.append({"group_a": a, "group_b": b, "mean_cosine": float(vals.mean()) if vals.size else float("nan"),
                         "pairs": int(vals.size)})
    return pd.DataFrame(rows)


def sample_per_group(groups: pd.Series, per_group: int, seed: int,
                     keep: tuple[str, ...] = ("easy", "learnable", "unlearnable")) -> pd.Series:
    """Up to `per_group` prompt ids of each group in `keep`, drawn with a fixed seed."""
    out = []
    for name in keep:
        ids = sorted(groups[groups == name].index)
        random.Random(f"{seed}-{name}").shuffle(ids)
        out += [(i, name) for i in ids[:per_group]]
    return pd.Series(dict(out), name="group")


def upper_pairs(C: np.ndarray) -> np.ndarray:
    """The (i < j) entries of a square matrix, row by row: (N (N - 1) / 2,)."""
    return C[np.triu_indices(C.shape[0], k=1)]


def matrix_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Pearson and Spearman correlation of two cosine matrices over the same examples (their
    pairs i < j), and of the examples' average similarities."""
    pa, pb = pd.Series(upper_pairs(a)), pd.Series(upper_pairs(b))
    ea, eb = pd.Series(average_similarity(a)), pd.Series(average_similarity(b))
    return {"pairs": len(pa), "pearson": pa.corr(pb), "spearman": spearman(pa, pb),
            "examples": len(ea), "avg_pearson": ea.corr(eb), "avg_spearman": spearman(ea, eb)}


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation (Pearson on average ranks; no scipy needed)."""
    return a.rank().corr(b.rank())


def gradient_similarity(study: Study, group_of: pd.Series, step: int = 0, seed: int | None = None,
                        gradient_overrides: dict | None = None,
                        full: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per-example gradient similarity at the base model (step 0) or a seed's checkpoint
    (`full`: gradients w.r.t. every parameter instead of the LoRA adapter).

    group_of: group per prompt_id (e.g. `groups.classify(...)["group"]`).
    Returns (per example: prompt_id, group, avg_similarity; group pair means; sampling stats).
    Cached under the run store by the gradient config, the policy and the chosen examples.
    """
    folder = _gradient_folder(study, group_of, step, seed, gradient_overrides, full, need_matrix=False)
    return tuple(pd.read_csv(folder / n, dtype={"prompt_id": str}) for n in GRADIENT_FILES[:3])


def gradient_matrix(study: Study, group_of: pd.Series, step: int = 0, seed: int | None = None,
                    gradient_overrides: dict | None = None, full: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """(per example: prompt_id, group, avg_similarity; their cosine matrix (N, N), same order)."""
    folder = _gradient_folder(study, group_of, step, seed, gradient_overrides, full, need_matrix=True)
    return pd.read_csv(folder / "examples.csv", dtype={"prompt_id": str}), np.load(folder / "cosine.npy")


GRADIENT_FILES = ("examples.csv", "pairs.csv", "stats.csv", "cosine.npy")


def analysis_setup(study: Study, group_of: pd.Series, step: int = 0, seed: int | None = None,
                   gradient_overrides: dict | None = None):
    """What every per-example analysis of a policy starts from: (the gradient config with
    `gradient_overrides`, the examples it samples: up to `per_group` per group with its seed,
    the policy folder: the base model at step 0, else seed's checkpoint at `step`)."""
    import dataclasses

    from unlearnability.analysis.gradients import sample_per_group

    g = dataclasses.replace(study.cfg.gradients, **(gradient_overrides or {}))
    chosen = sample_per_group(group_of, g.per_group, g.seed)
    seed = study.seeds[0] if seed is None else seed
    policy = ensure_base_model(study.cfg) if step == 0 else checkpoint_dir(study.run_dirs[seed], step)
    return g, chosen, policy


def _gradient_folder(study: Study, group_of: pd.Series, step: int, seed: int | None,
                     gradient_overrides: dict | None, full: bool, need_matrix: bool) -> Path:
    """The analysis folder of one gradient-similarity computation, computed if missing (or if
    `need_matrix` and it was written before the cosine matrix was kept)."""
    import dataclasses

    cfg = study.cfg
    g, chosen, policy = analysis_setup(study, group_of, step, seed, gradient_overrides)
    key = {"g": dataclasses.asdict(g), "policy": str(policy), "ids": sorted(chosen.items()),
           "max_new": cfg.eval.max_new_tokens}
    if full:
        key["full"] = True  # (absent for LoRA: older caches stay valid)
    folder = analysis_path("gradients", key)
    files = [folder / n for n in GRADIENT_FILES]
    needed = files if need_matrix else files[:3]
    complete = lambda: all(f.exists() for f in needed)  # noqa: E731
    with runs.locked(folder), ledger.making("gradients", folder, complete):  # one writer per analysis
        if not complete():
            _compute_gradients(study, g, chosen, policy, files, full)
    return folder


def _compute_gradients(study: Study, g, chosen: pd.Series, policy, files: list[Path], full: bool) -> None:
    """Sample, take per-example gradients and write `files` (GRADIENT_FILES in one analysis folder)."""
    from unlearnability.analysis.gradients import (
        average_similarity,
        cosine_matrix,
        example_gradients,
        group_pair_means,
    )

    cfg = study.cfg
    set_threads()
    task = load_task(cfg, ensure_base_model(cfg))
    by_id = task.by_id()
    ids, G, stats = example_gradients(policy, task, [by_id[i] for i in chosen.index], g,
                                      max_new_tokens=cfg.eval.max_new_tokens, full=full)
    C = cosine_matrix(G) if len(ids) else np.zeros((0, 0))
    grp = [chosen[i] for i in ids]
    ex = pd.DataFrame({"prompt_id": ids, "group": grp, "avg_similarity": average_similarity(C) if len(ids) else []})
    pairs = group_pair_means(C, grp) if len(ids) else pd.DataFrame(columns=["group_a", "group_b", "mean_cosine", "pairs"])
    stats["group"] = stats.prompt_id.map(chosen)
    files[0].parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_save_npy(C, files[3])  # each file whole or absent: `complete` checks that they exist
    for df, f in zip((ex, pairs, stats), files):
        runs.atomic_to_csv(df, f)


# ---------------------------------------------------------------- the §5.1 chapter's tables and claims


def similarity_tables(study: Study, group_of: pd.Series, step: int, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`gradient_similarity` at `step`, its per-example and group-pair tables each with a column
    policy = `label` (e.g. "initial policy", "step 50"): (examples, pairs)."""
    ex, pairs, _ = gradient_similarity(study, group_of, step=step)
    return ex.assign(policy=label), pairs.assign(policy=label)


def examples_per_policy(ex: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Examples with a gradient per policy and group: `similarity_tables`' examples of several
    policies stacked (policy, group, ...) -> index policy, one column per group of `order` present."""
    return ex.groupby(["policy", "group"]).size().unstack("group").reindex(columns=[o for o in order if o in set(ex.group)])


def outlier_claims(ex: pd.DataFrame) -> list[dict]:
    """Figures 6 and 17's claim, "the unlearnable examples have the lowest average similarity", per
    policy of `ex` (stacked `similarity_tables` examples: policy, group, avg_similarity), in order of
    appearance. One summary row each (claim, paper, testbed, numbers): reproduced when the
    unlearnable group's mean is lower than the rest's (one-sided permutation p < 0.05,
    `dynamics.shift_verdict`), untestable without unlearnable (or other) examples, else not."""
    from unlearnability.analysis.dynamics import shift_verdict

    rows = []
    for label, e in ex.groupby("policy", sort=False):
        v = shift_verdict(e["avg_similarity"], e["group"] == "unlearnable", "less")
        lowest = e.groupby("group")["avg_similarity"].mean().idxmin() if len(e) else "-"
        rows.append({"claim": f"unlearnable are gradient outliers, {label} (Fig {'6' if label == 'initial policy' else '17'})",
                     "paper": "lowest similarity", "testbed": "untestable" if v["verdict"] == "untestable" else
                     ("reproduced" if v["verdict"] == "not" else "not"),
                     "numbers": f"lowest group: {lowest}; unlearnable - rest {v['gap']:+.4f}, p = {v['p']:.3f} (one-sided)"})
    return rows


def lora_full_claim(a: dict) -> dict:
    """The paper's "LoRA similarity is highly correlated with full-parameter similarity" on
    `matrix_agreement(C_lora, C_full)`: reproduced when the pairwise cosines' Spearman >= 0.7,
    partly >= 0.4, else not. Returns "verdict", "numbers" (the summary's cell) and "line" (the
    sentence on the page, with both correlations of pairs and of average similarities)."""
    verdict = "reproduced" if a["spearman"] >= 0.7 else ("partly" if a["spearman"] >= 0.4 else "not")
    line = (f"LoRA vs full-parameter gradients at the initial policy, {a['examples']} examples ({a['pairs']} pairs): "
            f"pairwise cosines Pearson {a['pearson']:.3f}, Spearman {a['spearman']:.3f}; the examples' average "
            f"similarity Pearson {a['avg_pearson']:.3f}, Spearman {a['avg_spearman']:.3f}.")
    return {"verdict": verdict, "line": line,
            "numbers": f"pairs Spearman {a['spearman']:.3f}, Pearson {a['pearson']:.3f} (reproduced: >= 0.7)"}


def outlier_gap(name: str, rollouts: int, ex: pd.DataFrame) -> dict:
    """One row of the "average-similarity gap under each setting" table: gradients (`name`),
    rollouts, examples (rows of `ex`: group, avg_similarity), "unlearnable - rest" (gap of the
    means) and p (one-sided permutation p for a lower unlearnable mean, `dynamics.shift_verdict`)."""
    from unlearnability.analysis.dynamics import shift_verdict

    v = shift_verdict(ex["avg_similarity"], ex["group"] == "unlearnable", "less")
    return {"gradients": name, "rollouts": rollouts, "examples": len(ex), "unlearnable - rest": v["gap"], "p": v["p"]}


def rollouts_agreement(ex: pd.DataFrame, ex_alt: pd.DataFrame, rollouts: int, rollouts_alt: int) -> str | None:
    """The sentence comparing each example's average similarity with `rollouts` (ex) and with
    `rollouts_alt` (ex_alt) rollouts (both: prompt_id, group, avg_similarity): their Spearman over
    the examples with a gradient in both; None with fewer than three such examples."""
    both = ex.merge(ex_alt, on=["prompt_id", "group"], suffixes=("", "_alt"))
    if len(both) <= 2:
        return None
    return (f"Per example, the average similarity with {rollouts} and with {rollouts_alt} rollouts correlates at "
            f"Spearman {spearman(both.avg_similarity, both.avg_similarity_alt):.3f} "
            f"({len(both)} examples with a gradient in both).")
