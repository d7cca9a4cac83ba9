"""GRPO as in the paper's baseline (verl), small enough to read in one sitting.

One step:
  1. generate groups of `rollouts_per_prompt` responses for the next prompts of a shuffled
     epoch order; with dynamic sampling, drop groups whose rewards all agree and keep
     generating until `prompts_per_step` groups are kept; surplus groups carry over;
     with `oversample_n` > 0, draw that many rollouts per prompt instead and downsample each
     draw to a group with exactly `n_pos` positives, replaying buffered positives when the
     draw has too few (paper §4.1, Algorithm 1; `train/replay.py`, log in `replay.csv`);
  2. advantages (r - mean) / (std + eps) within each group (population std);
  3. old log-probs (and reference log-probs for the KL term) from the current policy: a no-grad
     forward, or (grpo.old_logprobs = sampler) the sampler's own for the groups it just drew;
  4. for each mini-batch of `mini_batch_prompts` groups: clipped policy loss (eps_low /
     eps_high, verl's dual clip for negative advantages), + KL (k3) to the initial policy,
     - entropy bonus, token-mean over the mini-batch; one optimizer update each;
  5. log one history row per drawn prompt (see `store.history`) and the step's metrics, with the
     relative parameter change ||theta_after - theta_before|| / ||theta_before||; validate,
     checkpoint.

Simplifications against verl, all harmless at this scale:
  - single process; rollouts come from the torch sampler with the policy's current weights
    (`decoder.FastSampler`, or `sampling.TorchSampler` with grpo.decoder=transformers);
  - old log-probs are recomputed at the start of every step (as verl does), so groups carried
    over from the previous step are slightly off-policy (as in verl's DAPO recipe); with
    grpo.old_logprobs = sampler, the groups drawn this step take the sampler's log-probs instead
    (the same policy, equal to ~1e-6 in fp32), and only carried or replayed groups are recomputed;
  - no sequence packing, no micro-batching: each mini-batch is one forward/backward;
  - if `max_gen_batches` rounds cannot fill the batch, the step trains on the groups it has
    (none: no update), where verl's DAPO trainer stops with an error.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from unlearnability.config import ADV_EPS, Config, GRPOConfig
from unlearnability.data.tasks import Task
from unlearnability.policy.decoder import make_sampler
from unlearnability.policy.model import autocast, default_device, load_model
from unlearnability.policy.sampling import Sampler, SamplingParams
from unlearnability.store import history, runs
from unlearnability.train.replay import ReplayBuffer, downsample

ADAMW_BETAS = (0.9, 0.999)  # verl's actor optimizer (torch's defaults)

# ----------------------------------------------------------------------------- core algorithm


def group_advantages(rewards: torch.Tensor, eps: float = ADV_EPS) -> torch.Tensor:
    """rewards (G, n) -> advantages (G, n): (r - group mean) / (group population std + eps)."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + eps)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float,
                eps_high: float, clip_ratio_c: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate per token, as verl's `compute_policy_loss` (vanilla, dual-clip).

    logp, old_logp: (B, T) token log-probs; adv: (B, 1) or (B, T).
    Returns (loss per token (B, T), clipped (B, T) bool: the clipped branch was taken).
    """
    ratio = torch.exp(logp - old_logp)
    loss1 = -adv * ratio
    loss2 = -adv * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    clipped = loss2 > loss1
    loss = torch.maximum(loss1, loss2)
    loss3 = -adv * clip_ratio_c  # dual clip: bound the loss of negative-advantage tokens
    loss = torch.where(adv < 0, torch.minimum(loss, loss3), loss)
    return loss, clipped


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token KL(policy || ref) estimate. k3 = exp(ref - logp) - (ref - logp) - 1 (>= 0),
    clamped to [-10, 10] as in verl's low_var_kl; k1 = logp - ref."""
    if kind == "k1":
        return logp - ref_logp
    if kind != "k3":
        raise ValueError(f"grpo.kl_estimator={kind!r}: use 'k3' or 'k1'")
    d = ref_logp - logp
    return torch.clamp(torch.exp(d) - d - 1, -10, 10)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V) -> entropy of each position's distribution (B, T)."""
    logp = F.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the tokens where mask is 1 (the whole mini-batch at once)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


# ----------------------------------------------------------------------------- batches

METRICS = ("loss", "pg_loss", "kl", "entropy", "grad_norm", "clip_frac", "updates")


@dataclass
class Group:
    """One prompt's rollouts: the unit dynamic sampling keeps or drops."""

    prompt_id: str
    prompt_ids: list[int]
    responses: list[list[int]]  # n token-id lists (EOS included when produced)
    rewards: list[float]
    drawn: list[float] | None = None  # rewards of the original draw when it was downsampled (oversampling)
    # the sampler's log-prob of each response token (n lists), under the weights that drew them; None
    # once the policy has moved on (a group carried to the next step, a downsampled or replayed draw)
    logprobs: list[list[float]] | None = None

    def drawn_rewards(self) -> list[float]:
        """What the reward history reports: the original draw's rewards."""
        return self.rewards if self.drawn is None else self.drawn


def pad_groups(groups: list[Group], pad_id: int) -> dict[str, torch.Tensor]:
    """Flatten groups into right-padded sequences.

    returns input_ids (B, L), attention_mask (B, L), response_mask (B, L-1): 1 where the
    *next* token (the one position t predicts) is a response token; B = sum of group sizes.
    """
    return pad_rows([(g.prompt_ids, r) for g in groups for r in g.responses], pad_id)


def pad_rows(seqs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """(prompt ids, response ids) pairs as right-padded sequences (see `pad_groups`)."""
    L = max(len(p) + len(r) for p, r in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), L), dtype=torch.long)
    resp = torch.zeros((len(seqs), L - 1), dtype=torch.float32)
    for i, (p, r) in enumerate(seqs):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        attn[i, : len(p) + len(r)] = 1
        resp[i, len(p) - 1: len(p) + len(r) - 1] = 1
    return {"input_ids": ids, "attention_mask": attn, "response_mask": resp}


def token_logprobs(model, batch: dict[str, torch.Tensor], temperature: float, amp: str,
                   with_entropy: bool = False):
    """Log-prob of each next token under softmax(logits / T): (B, L-1) [, entropy (B, L-1)],
    on the model's device."""
    dev = next(model.parameters()).device
    ids = batch["input_ids"].to(dev)
    with autocast(amp):
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(dev)).logits
    logits = logits[:, :-1].float() / temperature
    logp = torch.gather(F.log_softmax(logits, -1), -1, ids[:, 1:, None])[..., 0]
    return (logp, entropy_from_logits(logits)) if with_entropy else logp


def length_buckets(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Row indices sorted by length and cut into chunks of at most `max_tokens` padded tokens
    (rows x the chunk's longest row; a row longer than that is a chunk alone)."""
    chunks, cur = [], []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if cur and (len(cur) + 1) * lengths[i] > max_tokens:
            chunks.append(cur)
            cur = []
        cur.append(i)
    return chunks + [cur] if cur else chunks


# ----------------------------------------------------------------------------- the run


class PromptStream:
    """Prompts in shuffled epochs (seeded by run seed and epoch); the cursor is resumable."""

    def __init__(self, ids: list[str], seed: int, epoch: int = 0, pos: int = 0):
        self.ids, self.seed, self.epoch, self.pos = ids, seed, epoch, pos
        self._order = self._perm()

    def _perm(self) -> list[str]:
        order = list(self.ids)
        random.Random(f"prompts-{self.seed}-{self.epoch}").shuffle(order)
        return order

    def take(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._perm()
            out.append(self._order[self.pos])
            self.pos += 1
        return out


def _seed(*parts) -> int:
    return random.Random("-".join(map(str, parts))).randrange(2**31)


def generate_groups(sampler: Sampler, task: Task, ids: list[str], g: GRPOConfig,
                    seed: int, n: int | None = None) -> list[Group]:
    """One group of `n` (default: the group size) rollouts per prompt id, with rewards."""
    n = n or g.rollouts_per_prompt
    probs = task.by_id()
    prompts = [task.prompt_ids(probs[i]) for i in ids]
    params = SamplingParams(n=n, temperature=g.temperature, top_p=g.top_p,
                            max_new_tokens=g.max_new_tokens, seed=seed)
    comps = sampler.generate(prompts, params)
    groups = []
    for j, pid in enumerate(ids):
        cs = comps[j * n: (j + 1) * n]
        groups.append(Group(pid, prompts[j], [c.token_ids for c in cs],
                            [task.reward(probs[pid], c.text) for c in cs], logprobs=[c.logprobs for c in cs]))
    return groups


REPLAY_FILE = "replay.csv"  # oversampling: one row per (step, drawn prompt)


def _downsample(gr: Group, g: GRPOConfig, buffer: ReplayBuffer, rng: random.Random) -> tuple[Group, dict]:
    """Algorithm 1 on one oversampled draw: (the group to train on, or the draw itself when the
    prompt is filtered; its replay.csv row)."""
    d = downsample(gr.prompt_id, gr.responses, gr.rewards, g.rollouts_per_prompt, g.n_pos, buffer, rng)
    row = {"prompt_id": gr.prompt_id, "drawn": d.drawn, "drawn_pos": d.drawn_pos, "buffered": d.buffered,
           "replayed": d.replayed, "extra_pos": d.extra_pos, "kept": int(d.kept)}
    if not d.kept:
        return gr, row
    return Group(gr.prompt_id, gr.prompt_ids, d.responses, d.rewards, drawn=gr.rewards), row


@torch.no_grad()
def frozen_logprobs(model, groups: list[Group], full: dict[str, torch.Tensor], g: GRPOConfig, pad_id: int,
                    amp: str) -> torch.Tensor:
    """Token log-probs (B, L-1) of every rollout under a model that this step does not train
    (the old policy, the reference), laid out as `full` (`pad_groups(groups)`). With
    `g.loss_chunk_tokens`, computed over length buckets (less padding); the rows are right-padded,
    so each bucket's columns line up with `full`'s."""
    if not g.loss_chunk_tokens:
        return token_logprobs(model, full, g.temperature, amp)
    seqs = [(gr.prompt_ids, r) for gr in groups for r in gr.responses]
    out = torch.zeros(full["response_mask"].shape, device=next(model.parameters()).device)
    for chunk in length_buckets([len(p) + len(r) for p, r in seqs], g.loss_chunk_tokens):
        lp = token_logprobs(model, pad_rows([seqs[i] for i in chunk], pad_id), g.temperature, amp)  # (b, T)
        out[torch.tensor(chunk), : lp.shape[1]] = lp
    return out


def old_logprobs(model, groups: list[Group], full: dict[str, torch.Tensor], g: GRPOConfig, pad_id: int,
                 amp: str) -> torch.Tensor:
    """The old policy's token log-probs (B, L-1), laid out as `full` (`pad_groups(groups)`): a no-grad
    forward over every rollout (grpo.old_logprobs = recompute), or the sampler's own log-probs where a
    group still has them (`Group.logprobs`: drawn with the current weights) and a forward over the
    rest (grpo.old_logprobs = sampler). Only response positions (`full["response_mask"]`) are read."""
    if g.old_logprobs != "sampler":
        return frozen_logprobs(model, groups, full, g, pad_id, amp)
    n = g.rollouts_per_prompt
    out = torch.zeros(full["response_mask"].shape, device=next(model.parameters()).device)
    stale = [gi for gi, gr in enumerate(groups) if gr.logprobs is None]
    if stale:
        sub = [groups[gi] for gi in stale]
        lp = frozen_logprobs(model, sub, pad_groups(sub, pad_id), g, pad_id, amp)  # (len(stale) * n, T)
        rows = torch.tensor([gi * n + j for gi in stale for j in range(n)])
        out[rows, : lp.shape[1]] = lp
    for gi, gr in enumerate(groups):
        start = len(gr.prompt_ids) - 1  # response token t sits at column len(prompt) - 1 + t
        for j, lps in enumerate(gr.logprobs or []):
            out[gi * n + j, start: start + len(lps)] = torch.tensor(lps, dtype=out.dtype)
    return out


def train_step(model, ref_model, opt, groups: list[Group], g: GRPOConfig, pad_id: int, amp: str,
               seed: int) -> tuple[dict, dict[str, float]]:
    """One GRPO step on `groups`: returns (metrics, clip fraction per prompt id)."""
    n = g.rollouts_per_prompt
    dev = next(model.parameters()).device
    rewards = torch.tensor([gr.rewards for gr in groups])  # (G, n)
    adv = group_advantages(rewards, g.adv_eps).reshape(-1, 1).to(dev)  # (G*n, 1)
    full = pad_groups(groups, pad_id)
    # One update a step (one mini-batch, one epoch): the old policy is the current one, so the
    # ratio is exactly 1 and the old log-probs are the current ones, detached: no extra forward.
    on_policy = g.ppo_epochs == 1 and len(groups) <= g.mini_batch_prompts
    with torch.no_grad():
        old = None if on_policy else old_logprobs(model, groups, full, g, pad_id, amp)
        ref = frozen_logprobs(ref_model, groups, full, g, pad_id, amp) if ref_model is not None else None
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    clipped_tokens = torch.zeros(len(groups) * n)  # (G*n,) clipped response tokens per rollout, summed over epochs
    sums = dict.fromkeys(METRICS[:-2], 0.0)
    updates = 0
    model.train()
    for _ in range(g.ppo_epochs):
        for s in range(0, len(order), g.mini_batch_prompts):
            rows = [gi * n + j for gi in order[s: s + g.mini_batch_prompts] for j in range(n)]
            seqs = [(groups[r // n].prompt_ids, groups[r // n].responses[r % n]) for r in rows]
            for k, v in minibatch_update(model, opt, seqs, rows, adv, old, ref, g, pad_id, amp,
                                         clipped_tokens).items():
                sums[k] += v
            updates += 1
    model.eval()
    n_tokens = full["response_mask"].sum(-1)  # (G*n,)
    clip_frac = {}
    for gi, gr in enumerate(groups):
        r = slice(gi * n, (gi + 1) * n)
        clip_frac[gr.prompt_id] = float(clipped_tokens[r].sum() / (n_tokens[r].sum() * g.ppo_epochs).clamp(min=1))
    metrics = {k: v / max(1, updates) for k, v in sums.items()}
    metrics["clip_frac"] = float(clipped_tokens.sum() / (n_tokens.sum() * g.ppo_epochs).clamp(min=1))
    metrics["updates"] = updates
    return metrics, clip_frac


def minibatch_update(model, opt, seqs: list[tuple[list[int], list[int]]], rows: list[int], adv: torch.Tensor,
                     old: torch.Tensor | None, ref: torch.Tensor | None, g: GRPOConfig, pad_id: int, amp: str,
                     clipped_tokens: torch.Tensor) -> dict[str, float]:
    """One optimiser step on a mini-batch: `seqs` the (prompt, response) pairs of step rows `rows`.

    adv: (G*n, 1) advantages of every row of the step; old / ref: (G*n, T) frozen log-probs of the
    old and reference policies (None: on-policy, the current log-probs detached / no KL term).
    The loss is the token mean over the mini-batch's response tokens, computed in length buckets
    of `g.loss_chunk_tokens` (gradients accumulated) or in one forward. Adds each row's clipped
    tokens to `clipped_tokens` (G*n,); returns the mini-batch's loss parts and gradient norm."""
    dev = next(model.parameters()).device
    if g.loss_chunk_tokens:  # rows bucketed by length: less padding, gradients accumulated
        chunks = length_buckets([len(p) + len(r) for p, r in seqs], g.loss_chunk_tokens)
    else:  # the whole mini-batch in one forward
        chunks = [list(range(len(seqs)))]
    n_tok = max(1, sum(len(r) for _, r in seqs))  # the mini-batch's response tokens
    opt.zero_grad(set_to_none=True)
    parts = dict.fromkeys(("loss", "pg_loss", "kl", "entropy"), 0.0)
    for chunk in chunks:
        r_idx = torch.tensor([rows[i] for i in chunk])
        mb = pad_rows([seqs[i] for i in chunk], pad_id)
        T = mb["response_mask"].shape[1]
        mask = mb["response_mask"].to(dev)  # (b, T)
        scale = float(mask.sum()) / n_tok  # the chunk's share of the token mean
        logp, ent = token_logprobs(model, mb, g.temperature, amp, with_entropy=True)  # (b, T) each
        old_mb = logp.detach() if old is None else old[r_idx, :T]  # (b, T)
        pg, clipped = policy_loss(logp, old_mb, adv[r_idx], g.eps_low, g.eps_high, g.clip_ratio_c)
        pg_loss = token_mean(pg, mask) * scale
        entropy = token_mean(ent, mask) * scale
        loss = pg_loss - g.entropy_coef * entropy
        kl = torch.zeros((), device=dev)
        if ref is not None:
            kl = token_mean(kl_penalty(logp, ref[r_idx, :T], g.kl_estimator), mask) * scale
            loss = loss + g.kl_coef * kl
        loss.backward()
        clipped_tokens[r_idx] += (clipped.float() * mask).sum(-1).detach().cpu()
        for k, v in (("loss", loss), ("pg_loss", pg_loss), ("kl", kl), ("entropy", entropy)):
            parts[k] += float(v.detach())
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), g.grad_clip)
    opt.step()
    return {**parts, "grad_norm": float(gn)}


def validate(sampler, task: Task, cfg: Config, step: int) -> list[history.ValidationRow]:
    from unlearnability.evaluation.evaluate import rollouts

    g, e = cfg.grpo, cfg.eval
    df = rollouts(sampler, task, task.valid, g.valid_k, e.temperature, e.top_p, e.max_new_tokens,
                  _seed(g.seed, "valid", step), e.batch_prompts, keep_text=False, desc=f"validate@{step}")
    means = df.groupby("prompt_id", sort=False)["reward"].agg(["mean", "size"])
    return [history.ValidationRow(step, pid, float(r["mean"]), int(r["size"])) for pid, r in means.iterrows()]


def param_vector(model) -> torch.Tensor:
    """All parameters as one flat fp32 vector (for the relative change per step)."""
    return torch.cat([p.detach().float().flatten() for p in model.parameters()])


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:04d}"


def train_grpo(cfg: Config, run_dir: Path, base: str | Path, task: Task,
               stop_after: int | None = None) -> Path:
    """Run (or resume, or reuse) the GRPO run of `cfg` in `run_dir`.

    `stop_after` ends the process-level loop early after that step (tests use it to simulate
    a kill between checkpoints); the run folder is then resumable.
    """
    if runs.is_done(run_dir):
        return run_dir
    with runs.locked(run_dir):  # one writer per run folder
        if runs.is_done(run_dir):
            return run_dir
        return _train(cfg, run_dir, base, task, stop_after)


@dataclass
class _Resume:
    """Where a run (re)starts: step 0 from the base model, or the state of its last checkpoint."""

    step: int = 0
    stream: tuple[int, int] = (0, 0)  # PromptStream (epoch, pos)
    carry: list[Group] = field(default_factory=list)  # kept groups beyond the last step's batch
    buffer: ReplayBuffer | None = None
    model_src: str | Path = ""  # the base model, or the checkpoint resumed from
    opt: dict | None = None  # the optimizer's state dict when resumed


def _resume(run_dir: Path, base: str | Path, g) -> _Resume:
    """Read `state.pt` if the run has one; else a fresh start from `base`."""
    state_path = run_dir / "state.pt"
    r = _Resume(buffer=ReplayBuffer(g.replay_capacity, g.max_replay), model_src=base)
    if state_path.exists():
        state = runs.load_state(state_path)
        r.step, r.stream = state["step"], state["stream"]
        r.carry = [Group(*c) for c in state["carry"]]
        if state.get("replay"):
            r.buffer = ReplayBuffer.from_state(state["replay"])
        r.model_src, r.opt = checkpoint_dir(run_dir, r.step), state["opt"]
    return r


def _load_policy(run_dir: Path, base: str | Path, r: _Resume, g):
    """(policy, frozen reference policy or None when kl_coef = 0, AdamW) on the default device."""
    dev = default_device()
    try:
        model = load_model(r.model_src).to(dev)
    except runs.CorruptRunError as e:
        if r.model_src == base:
            raise
        raise runs.CorruptRunError(f"{e}. It is the checkpoint {run_dir / 'state.pt'} resumes from: move both away "
                                   "to restart this run from step 0.") from None
    ref_model = load_model(base).to(dev) if g.kl_coef > 0 else None
    if ref_model is not None:
        ref_model.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=g.lr, weight_decay=g.weight_decay, betas=ADAMW_BETAS)
    if r.opt is not None:
        opt.load_state_dict(r.opt)
    return model, ref_model, opt


@dataclass
class _Batch:
    """One step's groups: `kept` (trained, at most prompts_per_step), `dropped` (no reward
    variance under dynamic sampling, or filtered by oversampling), `carry` (kept beyond the step)."""

    kept: list[Group]
    dropped: list[Group]
    carry: list[Group]
    rounds: int  # generation rounds (each draws prompts_per_step prompts)
    drawn: int  # prompts drawn
    gen_tokens: int  # response tokens generated
    replay_rows: list[dict]  # one row per generated group when oversampling


def fill_batch(sampler, task: Task, stream: PromptStream, g, step: int, carry: list[Group],
               buffer: ReplayBuffer) -> _Batch:
    """Generate groups until prompts_per_step are kept or max_gen_batches rounds are spent (DAPO's
    dynamic sampling; with oversample_n, each group is first drawn large and downsampled, replay
    filling in positives)."""
    batch, dropped, rounds, drawn, replay_rows, gen_tokens = list(carry), [], 0, 0, [], 0
    while len(batch) < g.prompts_per_step and rounds < g.max_gen_batches:
        ids = stream.take(g.prompts_per_step)
        drawn += len(ids)
        for gr in generate_groups(sampler, task, ids, g, _seed(g.seed, step, rounds), g.oversample_n or None):
            gen_tokens += sum(len(r) for r in gr.responses)
            kept = True
            if g.oversample_n:
                gr, row = _downsample(gr, g, buffer, random.Random(_seed(g.seed, "replay", step, gr.prompt_id)))
                replay_rows.append({"step": step, **row})
                kept = row["kept"]
            keep = kept and (not g.dynamic_sampling or len(set(gr.rewards)) > 1)
            (batch if keep else dropped).append(gr)
        rounds += 1
    carry = [dataclasses.replace(gr, logprobs=None) for gr in batch[g.prompts_per_step:]]  # next step's policy differs
    return _Batch(batch[: g.prompts_per_step], dropped, carry, rounds, drawn, gen_tokens, replay_rows)


def _update(model, ref_model, opt, b: _Batch, g, tok, amp, run_dir: Path, step: int) -> tuple[dict, dict]:
    """One policy update on the kept groups: (metrics, clip fraction per prompt_id); zeros and no
    update when no group was kept."""
    if not b.kept:  # every group agreed in max_gen_batches rounds: nothing to learn from this step
        tqdm.write(f"GRPO step {step}: no group with reward variance in {b.rounds} rounds; no update")
        return dict.fromkeys(METRICS + ("rel_change",), 0.0), {}
    before = param_vector(model)
    metrics, clip = train_step(model, ref_model, opt, b.kept, g, tok.pad_token_id, amp, _seed(g.seed, "mb", step))
    last = (step - 1) // g.checkpoint_every * g.checkpoint_every
    runs.check_finite(metrics["loss"], f"{run_dir} (GRPO)", step,
                      f"step {last} ({checkpoint_dir(run_dir, last).name})" if last else "none (step 0)")
    metrics["rel_change"] = float((param_vector(model) - before).norm() / before.norm())
    return metrics, clip


def _log_step(run_dir: Path, step: int, b: _Batch, metrics: dict, clip: dict, g, seconds: float) -> dict:
    """Append the step's history rows (one per drawn prompt), replay rows and train-log row; returns the latter."""
    rows = []
    for gr, processed in [(x, 1) for x in b.kept] + [(x, 0) for x in b.dropped]:
        mean, std = history.group_stats(gr.drawn_rewards())
        rows.append(history.HistoryRow(step, gr.prompt_id, mean, std, len(gr.drawn_rewards()), processed,
                                       clip.get(gr.prompt_id, float("nan")) if processed else float("nan")))
    history.append_rows(run_dir / history.HISTORY_FILE, rows, history.HISTORY_COLUMNS)
    all_r = [r for gr in b.kept + b.dropped for r in gr.drawn_rewards()]
    history.append_dicts(run_dir / REPLAY_FILE, b.replay_rows)
    log = {"step": step, "prompts_drawn": b.drawn, "gen_rounds": b.rounds, "gen_tokens": b.gen_tokens,
           "groups_trained": len(b.kept),
           "groups_dropped": len(b.dropped), "carried": len(b.carry),
           "mean_reward": sum(all_r) / max(1, len(all_r)), **metrics, "seconds": round(seconds, 2)}
    if g.oversample_n:
        log.update(replayed=sum(r["replayed"] for r in b.replay_rows),
                   filtered=sum(not r["kept"] for r in b.replay_rows))
    history.append_dicts(run_dir / "train_log.csv", [log])
    return log


def _validate_into(run_dir: Path, sampler, task: Task, cfg: Config, step: int) -> None:
    history.append_rows(run_dir / history.VALIDATION_FILE, validate(sampler, task, cfg, step), history.VALIDATION_COLUMNS)


def _train(cfg: Config, run_dir: Path, base: str | Path, task: Task, stop_after: int | None) -> Path:
    """The run loop: resume, then per step fill the batch, update, log, validate, checkpoint."""
    g = cfg.grpo
    runs.write_config(run_dir, cfg)
    torch.manual_seed(g.seed)
    r = _resume(run_dir, base, g)
    model, ref_model, opt = _load_policy(run_dir, base, r, g)
    history.restart_logs([run_dir / n for n in (history.HISTORY_FILE, history.VALIDATION_FILE, "train_log.csv", REPLAY_FILE)],
                         r.step)
    tok, step, carry, buffer = task.tokenizer, r.step, r.carry, r.buffer
    sampler = make_sampler(model, tok, g.decoder)  # decoder.FastSampler unless grpo.decoder=transformers
    stream = PromptStream([p.id for p in task.train], g.seed, *r.stream)
    if step == 0 and g.valid_every:
        _validate_into(run_dir, sampler, task, cfg, 0)
    bar = tqdm(total=g.steps, initial=step, desc=f"GRPO seed {g.seed}", unit="step")
    while step < g.steps:
        step += 1
        t0 = time.time()
        b = fill_batch(sampler, task, stream, g, step, carry, buffer)
        carry = b.carry
        metrics, clip = _update(model, ref_model, opt, b, g, tok, cfg.model.autocast, run_dir, step)
        log = _log_step(run_dir, step, b, metrics, clip, g, time.time() - t0)
        if g.valid_every and step % g.valid_every == 0:
            _validate_into(run_dir, sampler, task, cfg, step)
        if step % g.checkpoint_every == 0 or step == g.steps:
            save_checkpoint(run_dir, step, model, tok, opt, (stream.epoch, stream.pos), carry, buffer)
        bar.update(1)
        bar.set_postfix(reward=f"{log['mean_reward']:.3f}", kl=f"{metrics.get('kl', 0):.4f}")
        if stop_after is not None and step >= stop_after:
            bar.close()
            return run_dir
    bar.close()
    runs.mark_done(run_dir)
    return run_dir


def save_checkpoint(run_dir: Path, step: int, model, tok, opt, stream_state, carry,
                    buffer: ReplayBuffer | None = None) -> None:
    ck = checkpoint_dir(run_dir, step)
    model.save_pretrained(str(ck))
    tok.save_pretrained(str(ck))
    runs.save_state({"step": step, "opt": opt.state_dict(), "stream": stream_state,
                     "carry": [dataclasses.astuple(c) for c in carry],
                     "replay": buffer.state() if buffer is not None else None}, run_dir / "state.pt")
