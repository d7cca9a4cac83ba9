"""Oversampling with replay (paper §4.1, Algorithm 1) on hand-built draws, then in a GRPO run."""

import math
import random

import pandas as pd
import pytest
import torch
from test_grpo import smoke_run

from unlearnability.store import history
from unlearnability.train.grpo import REPLAY_FILE, group_advantages, train_grpo
from unlearnability.train.replay import ReplayBuffer, downsample


def draw(rewards):
    """Responses whose single token is their index in the draw (so we can trace them)."""
    return [[i] for i in range(len(rewards))], [float(r) for r in rewards]


def test_enough_positives_gives_exactly_n_pos_and_fills_the_buffer():
    buf = ReplayBuffer(capacity=5, max_replay=2)
    resp, rew = draw([1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    d = downsample("p", resp, rew, n=8, n_pos=1, buffer=buf, rng=random.Random(0))
    assert d.kept and len(d.responses) == 8 and sum(d.rewards) == 1.0
    assert (d.drawn, d.drawn_pos, d.replayed, d.extra_pos) == (16, 4, 0, 0)
    # the kept rollouts come from the draw, with their own rewards
    assert all(rew[r[0]] == x for r, x in zip(d.responses, d.rewards))
    assert len({r[0] for r in d.responses}) == 8
    assert buf.available("p") == 4  # every positive of the draw is buffered, none replayed


def test_empty_buffer_and_no_positive_filters_the_prompt():
    buf = ReplayBuffer()
    resp, rew = draw([0] * 16)
    d = downsample("p", resp, rew, 8, 1, buf, random.Random(0))
    assert not d.kept and d.responses == [] and d.replayed == 0 and buf.items == {}


def test_replay_is_bounded_counted_and_most_recent_first():
    buf = ReplayBuffer(capacity=5, max_replay=2)
    buf.add("p", [[100], [101]], [1.0, 1.0])  # two earlier positives; 101 is the most recent
    resp, rew = draw([0] * 16)
    replayed = []
    for step in range(5):
        d = downsample("p", resp, rew, 8, 1, buf, random.Random(step))
        if d.kept:
            pos = [r for r, x in zip(d.responses, d.rewards) if x > 0]
            assert len(pos) == 1 and d.replayed == 1 and sum(d.rewards) == 1.0
            replayed.append(pos[0][0])
        else:
            assert d.replayed == 0
    # each buffered positive replayed at most twice, the most recent first; then filtered
    assert replayed == [101, 101, 100, 100]
    assert d.buffered == 2  # both still buffered, just used up
    assert buf.replays() == 4 and buf.available("p") == 0


def test_buffer_keeps_the_most_recent_capacity_positives():
    buf = ReplayBuffer(capacity=5, max_replay=2)
    buf.add("p", [[i] for i in range(7)], [1.0] * 7)
    assert [e[0][0] for e in buf.items["p"]] == [2, 3, 4, 5, 6]
    assert ReplayBuffer.from_state(buf.state()) == buf


def test_too_few_negatives_are_filled_with_positives_and_logged():
    resp, rew = draw([1] * 14 + [0] * 2)
    d = downsample("p", resp, rew, 8, 1, ReplayBuffer(), random.Random(0))
    assert d.kept and d.extra_pos == 5 and sum(d.rewards) == 6.0 and len(d.responses) == 8


def test_n_pos_two_and_bad_parameters():
    resp, rew = draw([1, 1, 1] + [0] * 13)
    d = downsample("p", resp, rew, 8, 2, ReplayBuffer(), random.Random(1))
    assert sum(d.rewards) == 2.0 and len(d.responses) == 8
    with pytest.raises(ValueError, match="n_pos"):
        downsample("p", resp, rew, 8, 8, ReplayBuffer(), random.Random(0))
    with pytest.raises(ValueError, match="oversample_n"):
        downsample("p", resp[:4], rew[:4], 8, 1, ReplayBuffer(), random.Random(0))


def test_advantages_are_computed_after_downsampling():
    # 12 of 16 drawn are correct (draw pass rate 0.75), but the kept group has 1 of 8
    resp, rew = draw([1] * 12 + [0] * 4)
    d = downsample("p", resp, rew, 8, 1, ReplayBuffer(), random.Random(0))
    d2 = downsample("q", *draw([1] + [0] * 15), 8, 1, ReplayBuffer(), random.Random(0))
    assert d.extra_pos == 3  # only 4 negatives: 3 extra positives fill the group
    adv = group_advantages(torch.tensor([d2.rewards]))[0]
    assert math.isclose(float(adv[torch.tensor(d2.rewards) > 0][0]), math.sqrt(7), rel_tol=1e-5)


def test_grpo_with_oversampling_logs_replays_and_original_rewards(smoke_store, tmp_path):
    cfg, base, task = smoke_run(tmp_path, oversample_n=8, n_pos=1, steps=4, checkpoint_every=2)
    # rare positives, and none at all for about half the gold answers: replays and filtered prompts
    task.reward_fn = lambda response, gold: float(sum(map(ord, gold)) % 2 == 0 and len(response.split()) % 5 == 0)
    run = train_grpo(cfg, tmp_path / "run", base, task)
    h = history.read_history(run)
    rep = pd.read_csv(run / REPLAY_FILE, dtype={"prompt_id": str})
    assert (h["n"] == 8).all()  # the history reports the original draw of 8, not the group of 4
    assert len(rep) == len(h) and (rep["drawn"] == 8).all()
    by_step = pd.DataFrame({"pos_h": (h["mean_reward"] * 8).round().groupby(h["step"]).sum(),
                            "pos_r": rep.groupby("step")["drawn_pos"].sum(),
                            "processed": h.groupby("step")["processed"].sum(),
                            "kept": rep.groupby("step")["kept"].sum()})
    # the history's mean is the draw's positives / draw size; filtered prompts are not processed
    assert (by_step["pos_h"] == by_step["pos_r"]).all() and (by_step["processed"] == by_step["kept"]).all()
    # a replay only happens when the draw had no positive
    assert (rep.loc[rep.replayed > 0, "drawn_pos"] == 0).all()
    assert rep["replayed"].sum() > 0 and (rep["kept"] == 0).any()  # both paths ran
    assert (rep.loc[rep.kept == 0, "drawn_pos"] == 0).all() and (rep["buffered"] <= cfg.grpo.replay_capacity).all()
    log = pd.read_csv(run / "train_log.csv")
    assert log["replayed"].sum() == rep["replayed"].sum()
    # resume after a "kill" between checkpoints restores the buffer: same replays, same history
    part = train_grpo(cfg, tmp_path / "c", base, task, stop_after=3)
    resumed = train_grpo(cfg, tmp_path / "c", base, task)
    pd.testing.assert_frame_equal(h, history.read_history(resumed))
    pd.testing.assert_frame_equal(rep, pd.read_csv(resumed / REPLAY_FILE, dtype={"prompt_id": str}))
    assert part == resumed
