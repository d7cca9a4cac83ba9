import math

import pandas as pd
import pytest
import torch

from unlearnability.config import load_config
from unlearnability.data.tasks import load_task
from unlearnability.store import history, runs
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import (
    PromptStream,
    group_advantages,
    kl_penalty,
    policy_loss,
    token_mean,
    train_grpo,
)

# ----------------------------------------------------------------------------- hand-computed pieces


def test_group_advantages_population_std():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    # mean 0.25, population std sqrt(0.1875) = 0.4330
    assert adv[0].tolist() == pytest.approx([0.75 / 0.4330127, -0.25 / 0.4330127, -0.25 / 0.4330127,
                                             -0.25 / 0.4330127], rel=1e-4)
    assert adv[1].abs().max() == 0  # no variance, no signal


def test_policy_loss_hand_computed():
    # four tokens: ratios 1.5, 0.5, 1.1, 5.0 ; advantages +1, +1, -1, -1 ; eps 0.2 / 0.28
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 5.0]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipped = policy_loss(logp, old, adv, eps_low=0.2, eps_high=0.28, clip_ratio_c=3.0)
    # tok0: max(-1.5, -1.28) = -1.28 (clipped)   tok1: max(-0.5, -0.8) = -0.5
    # tok2: max(1.1, 1.1) = 1.1                   tok3: max(5, 1.28) = 5 -> dual clip min(5, 3) = 3
    assert loss[0].tolist() == pytest.approx([-1.28, -0.5, 1.1, 3.0], rel=1e-5)
    assert clipped[0].tolist() == [True, False, False, False]
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert token_mean(loss, mask).item() == pytest.approx((-1.28 - 0.5 + 1.1) / 3, rel=1e-5)


def test_kl_k3_hand_computed():
    logp = torch.tensor([math.log(0.5)])
    ref = torch.tensor([math.log(0.25)])
    d = math.log(0.25) - math.log(0.5)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(d) - d - 1, rel=1e-6)
    assert kl_penalty(logp, logp, "k3").item() == 0
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(logp, ref, "k9")


def test_prompt_stream_epochs_and_resume():
    s = PromptStream([f"p{i}" for i in range(5)], seed=1)
    first = s.take(7)
    assert sorted(first[:5]) == [f"p{i}" for i in range(5)]  # one full epoch first
    t = PromptStream([f"p{i}" for i in range(5)], seed=1, epoch=s.epoch, pos=s.pos)
    assert s.take(6) == t.take(6)


# ----------------------------------------------------------------------------- runs on the smoke model


def parity_reward(response: str, gold: str) -> float:
    """A reward with variance even for an untrained model: 1 if the response has an even word count."""
    return float(len(response.split()) % 2 == 0)


def smoke_run(tmp, **grpo):
    cfg = load_config("smoke", {"grpo": {"steps": 4, **grpo}})
    base = ensure_base_model(cfg, quiet=True)
    task = load_task(cfg, base)
    task.reward_fn = parity_reward
    return cfg, base, task


def test_history_format_and_dynamic_sampling(smoke_store, tmp_path):
    cfg, base, task = smoke_run(tmp_path)
    run = train_grpo(cfg, tmp_path / "run", base, task)
    h = history.read_history(run)
    assert list(h.columns) == history.HISTORY_COLUMNS
    assert set(h["prompt_id"]) <= {p.id for p in task.train}
    assert sorted(h["step"].unique()) == [1, 2, 3, 4]
    assert (h["n"] == cfg.grpo.rollouts_per_prompt).all()
    # dynamic sampling: groups without reward variance are dropped, the rest enter the loss
    assert ((h["std_reward"] == 0) == (h["processed"] == 0)).all()
    per_step = h[h.processed == 1].groupby("step").size()
    log = pd.read_csv(run / "train_log.csv")
    assert (per_step.values <= cfg.grpo.prompts_per_step).all()
    assert (log["groups_trained"].values == per_step.values).all()
    # when a step drew more kept groups than it could train, the surplus was carried over
    assert (log["carried"].shift(1, fill_value=0) <= log["groups_trained"]).all()
    # mean reward and std are the group's
    assert h["mean_reward"].between(0, 1).all()
    assert h.loc[h.processed == 1, "clip_frac"].notna().all() and h.loc[h.processed == 0, "clip_frac"].isna().all()
    v = history.read_validation(run)
    assert sorted(v["step"].unique()) == [0, 2, 4] and len(v) == 3 * len(task.valid)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0002", "step_0004"]
    assert runs.is_done(run)


def test_dynamic_sampling_off_processes_every_group(smoke_store, tmp_path):
    cfg, base, task = smoke_run(tmp_path, dynamic_sampling=False, steps=2)
    h = history.read_history(train_grpo(cfg, tmp_path / "run", base, task))
    assert (h["processed"] == 1).all() and (h.groupby("step").size() == cfg.grpo.prompts_per_step).all()


def test_same_seed_same_history_and_resume_after_kill(smoke_store, tmp_path):
    cfg, base, task = smoke_run(tmp_path, checkpoint_every=2)
    full = train_grpo(cfg, tmp_path / "a", base, task)
    again = train_grpo(cfg, tmp_path / "b", base, task)
    ha, hb = history.read_history(full), history.read_history(again)
    pd.testing.assert_frame_equal(ha, hb)
    # "kill" after step 3: step 3's rows are on disk but its checkpoint is not
    part = train_grpo(cfg, tmp_path / "c", base, task, stop_after=3)
    assert not runs.is_done(part) and history.read_history(part)["step"].max() == 3
    resumed = train_grpo(cfg, tmp_path / "c", base, task)
    pd.testing.assert_frame_equal(ha, history.read_history(resumed))
    pd.testing.assert_frame_equal(history.read_validation(full), history.read_validation(resumed))
    # "kill" before the first checkpoint: a fresh start that leaves no stale rows
    early = train_grpo(cfg, tmp_path / "e", base, task, stop_after=1)
    assert not (early / "state.pt").exists()
    pd.testing.assert_frame_equal(ha, history.read_history(train_grpo(cfg, tmp_path / "e", base, task)))
    pd.testing.assert_frame_equal(history.read_validation(full), history.read_validation(early))
    # a different seed gives a different history
    cfg2, _, _ = smoke_run(tmp_path, checkpoint_every=2, seed=2)
    other = history.read_history(train_grpo(cfg2, tmp_path / "d", base, task))
    assert not ha[["prompt_id", "mean_reward"]].equals(other[["prompt_id", "mean_reward"]])


def test_one_update_per_step_skips_the_old_policy_forward_and_matches_it(tiny_model, monkeypatch):
    """With one mini-batch and one epoch the old log-probs are the current ones: the step uses
    them detached (no separate forward), and they equal what the separate forward gives."""
    import dataclasses

    from unlearnability.policy.model import load_model
    from unlearnability.train import grpo

    folder, tok = tiny_model
    g = dataclasses.replace(load_config("smoke").grpo, rollouts_per_prompt=4, mini_batch_prompts=2, ppo_epochs=1,
                            loss_chunk_tokens=None)
    torch.manual_seed(0)
    groups = [grpo.Group(f"p{i}", [1, 5 + i, 7], [torch.randint(3, len(tok), (L,)).tolist() for L in (3, 5, 2, 6)],
                         [1.0, 0.0, 0.0, 1.0]) for i in range(2)]
    model, ref = load_model(folder), load_model(folder)
    full = grpo.pad_groups(groups, tok.pad_token_id)
    with torch.no_grad():
        separate = grpo.token_logprobs(model, full, g.temperature, "none")
    model.train()
    current, _ = grpo.token_logprobs(model, full, g.temperature, "none", with_entropy=True)
    mask = full["response_mask"].bool()
    assert torch.allclose(separate[mask], current.detach()[mask], atol=1e-6)
    calls = []
    real = grpo.token_logprobs
    monkeypatch.setattr(grpo, "token_logprobs", lambda m, *a, **k: calls.append(m is model) or real(m, *a, **k))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    metrics, clip = grpo.train_step(model, ref, opt, groups, g, tok.pad_token_id, "none", seed=0)
    assert calls == [False, True] and metrics["updates"] == 1  # the reference, then the one update
    assert metrics["clip_frac"] == 0.0  # ratio exactly 1
    calls.clear()
    grpo.train_step(model, ref, opt, groups, dataclasses.replace(g, mini_batch_prompts=1), tok.pad_token_id, "none", 0)
    assert calls == [True, False, True, True]  # two updates: the old policy's forward comes back


def test_length_buckets():
    from unlearnability.train.grpo import length_buckets

    assert length_buckets([5, 1, 3, 9, 2], 9) == [[1, 4, 2], [0], [3]]  # 3 rows x 3 tokens, then 5, then 9
    assert sorted(i for c in length_buckets([4] * 10, 16) for i in c) == list(range(10))
    assert length_buckets([20, 3], 10) == [[1], [0]]  # a row longer than the budget goes alone


def test_loss_in_length_buckets_gives_the_same_update(tiny_model):
    """`loss_chunk_tokens`: the same token-mean loss over fewer padded tokens, so the same step."""
    import dataclasses

    from unlearnability.policy.model import load_model
    from unlearnability.train import grpo

    folder, tok = tiny_model
    g = dataclasses.replace(load_config("smoke").grpo, rollouts_per_prompt=4, mini_batch_prompts=2, ppo_epochs=1)
    torch.manual_seed(0)
    groups = [grpo.Group(f"p{i}", [1, 5 + i, 7][: 2 + i % 2],
                         [torch.randint(3, len(tok), (L,)).tolist() for L in (3, 9, 1, 6)], [1.0, 0.0, 0.0, 1.0])
              for i in range(4)]
    out = {}
    for chunk in (None, 24):
        model, ref = load_model(folder), load_model(folder)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)  # plain SGD: the update is the gradient (Adam would
        # blow up float noise in near-zero gradient entries to +-lr)
        metrics, clip = grpo.train_step(model, ref, opt, groups, dataclasses.replace(g, loss_chunk_tokens=chunk),
                                        tok.pad_token_id, "none", seed=0)
        out[chunk] = (grpo.param_vector(model), metrics, clip)
    (p0, m0, c0), (p1, m1, c1) = out[None], out[24]
    assert m0["updates"] == m1["updates"] == 2 and not torch.equal(p0, grpo.param_vector(load_model(folder)))
    assert torch.allclose(p0, p1, atol=1e-6)
    for k in ("loss", "pg_loss", "kl", "entropy", "grad_norm", "clip_frac"):
        assert m0[k] == pytest.approx(m1[k], rel=1e-5, abs=1e-7), k
    assert c0 == pytest.approx(c1)


def _sampled_groups(model, tok, n: int, prompts: list[list[int]]):
    """Groups drawn by the fast decoder from `model`, with the sampler's log-probs attached."""
    from unlearnability.policy.decoder import FastSampler
    from unlearnability.policy.sampling import SamplingParams
    from unlearnability.train import grpo

    comps = FastSampler(model, tok).generate(prompts, SamplingParams(n=n, temperature=1.0, max_new_tokens=12, seed=3))
    return [grpo.Group(f"p{i}", p, [c.token_ids for c in comps[i * n:(i + 1) * n]],
                       [float(j % 2) for j in range(n)], logprobs=[c.logprobs for c in comps[i * n:(i + 1) * n]])
            for i, p in enumerate(prompts)]


def test_sampler_old_logprobs_equal_a_recomputed_forward_and_save_it(tiny_model, monkeypatch):
    """grpo.old_logprobs = sampler: the sampler's log-probs stand in for the old policy's forward
    (equal to 1e-5 on every response token); a group without them (carried over) is recomputed."""
    import dataclasses

    from unlearnability.policy.model import load_model
    from unlearnability.train import grpo

    folder, tok = tiny_model
    g = dataclasses.replace(load_config("smoke").grpo, rollouts_per_prompt=4, mini_batch_prompts=1, ppo_epochs=1,
                            temperature=1.0, old_logprobs="recompute")
    model = load_model(folder)
    groups = _sampled_groups(model, tok, 4, [[1, 5, 7], [1, 6], [1, 8, 9, 7]])
    groups[1] = dataclasses.replace(groups[1], logprobs=None)  # as a carried group
    full = grpo.pad_groups(groups, tok.pad_token_id)
    mask = full["response_mask"].bool()
    want = grpo.frozen_logprobs(model, groups, full, g, tok.pad_token_id, "none")
    calls = []
    real = grpo.token_logprobs
    monkeypatch.setattr(grpo, "token_logprobs", lambda m, b, *a, **k: calls.append(len(b["input_ids"])) or real(m, b, *a, **k))
    got = grpo.old_logprobs(model, groups, full, dataclasses.replace(g, old_logprobs="sampler"), tok.pad_token_id, "none")
    assert (got[mask] - want[mask]).abs().max().item() < 1e-5
    assert sum(calls) == 4  # one forward, over the carried group's 4 rollouts only
    calls.clear()
    recomputed = grpo.old_logprobs(model, groups, full, g, tok.pad_token_id, "none")  # recompute: every row
    assert sum(calls) == 12 and torch.equal(recomputed[mask], want[mask])


def test_sampler_old_logprobs_give_the_same_update(tiny_model):
    """Three updates from sampler log-probs and from the recomputed ones: the same step up to float order."""
    import dataclasses

    from unlearnability.policy.model import load_model
    from unlearnability.train import grpo

    folder, tok = tiny_model
    g = dataclasses.replace(load_config("smoke").grpo, rollouts_per_prompt=4, mini_batch_prompts=1, ppo_epochs=1,
                            temperature=1.0, old_logprobs="recompute")
    groups = _sampled_groups(load_model(folder), tok, 4, [[1, 5, 7], [1, 6], [1, 8, 9, 7]])
    out = {}
    for how in ("recompute", "sampler"):
        model, ref = load_model(folder), load_model(folder)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        metrics, clip = grpo.train_step(model, ref, opt, groups, dataclasses.replace(g, old_logprobs=how),
                                        tok.pad_token_id, "none", seed=0)
        out[how] = (grpo.param_vector(model), metrics, clip)
    (p0, m0, c0), (p1, m1, c1) = out["recompute"], out["sampler"]
    assert m0["updates"] == m1["updates"] == 3 and m0["clip_frac"] > 0  # later mini-batches move off-policy
    assert torch.allclose(p0, p1, atol=1e-5)
    for k in ("loss", "pg_loss", "kl", "entropy", "grad_norm", "clip_frac"):
        assert m0[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-6), k
    assert c0 == pytest.approx(c1)


def test_sampler_old_logprobs_run_resumes_and_carries_no_stale_logprobs(smoke_store, tmp_path, monkeypatch):
    """A run with grpo.old_logprobs = sampler: the same history after a kill; the groups a step carries
    to the next one hold no log-probs of the policy that drew them."""
    import dataclasses

    from unlearnability.config import ConfigError
    from unlearnability.train import grpo

    cfg, base, task = smoke_run(tmp_path, checkpoint_every=2, old_logprobs="sampler")
    full = train_grpo(cfg, tmp_path / "a", base, task)
    part = train_grpo(cfg, tmp_path / "b", base, task, stop_after=3)
    resumed = train_grpo(cfg, tmp_path / "b", base, task)
    pd.testing.assert_frame_equal(history.read_history(full), history.read_history(resumed))
    assert part == resumed and runs.is_done(resumed)
    # a step that keeps 7 groups for 4 places carries 3, without the log-probs of this step's policy
    g = dataclasses.replace(cfg.grpo, prompts_per_step=4)
    drawn = iter([[[1.0, 1.0]] + [[0.0, 1.0]] * 3, [[1.0, 0.0]] * 4])

    def fake_groups(sampler, task, ids, g, seed, n=None):
        return [grpo.Group(i, [1], [[2], [3]], r, logprobs=[[-0.5], [-0.7]]) for i, r in zip(ids, next(drawn))]

    monkeypatch.setattr(grpo, "generate_groups", fake_groups)
    b = grpo.fill_batch(None, task, grpo.PromptStream([p.id for p in task.train], 1), g, 1, [], None)
    assert len(b.kept) == 4 and len(b.dropped) == 1 and len(b.carry) == 3
    assert all(gr.logprobs is not None for gr in b.kept) and all(gr.logprobs is None for gr in b.carry)
    with pytest.raises(ConfigError, match="grpo.old_logprobs"):
        load_config("smoke", {"grpo": {"old_logprobs": "vllm"}})
    with pytest.raises(ConfigError, match="model.autocast"):
        load_config("smoke", {"grpo": {"old_logprobs": "sampler"}, "model": {"autocast": "bfloat16"}})
