"""Variant runs of the §4 chapter: late config fields keep old caches, overrides merge, subsets."""

import pandas as pd
import pytest

from unlearnability import config
from unlearnability.config import GRPOConfig, load_config, merge_overrides
from unlearnability.data.tasks import load_task
from unlearnability.pipeline import experiment
from unlearnability.store import runs
from unlearnability.train.base import ensure_base_model
from unlearnability.train.grpo import checkpoint_dir


def test_late_fields_stay_out_of_the_cache_key_at_their_default():
    cfg = load_config("default")
    d = config._cache_dict(cfg)
    assert "oversample_n" not in d["grpo"] and "train_ids" not in d["data"]
    assert "lr" in d["grpo"]  # ordinary fields are always in it
    over = load_config("default", {"grpo": {"oversample_n": 64}})
    assert config._cache_dict(over)["grpo"]["oversample_n"] == 64
    assert over.section_hash() != cfg.section_hash()
    # back at the default value: the same key as never set
    assert load_config("default", {"grpo": {"oversample_n": 0}}).section_hash() == cfg.section_hash()
    # a run's config.yaml holds every field and rebuilds the same key
    assert config.config_from_dict(over.to_dict()).section_hash() == over.section_hash()
    assert GRPOConfig().max_replay == 2 and GRPOConfig().replay_capacity == 5


def test_merge_overrides_is_deep_and_left_to_right():
    a = {"grpo": {"lr": 1e-4, "seed": 1}, "world": {"p": 97}}
    b = {"grpo": {"seed": 2, "eps_high": 0.28}}
    assert merge_overrides(a, b, None) == {"grpo": {"lr": 1e-4, "seed": 2, "eps_high": 0.28}, "world": {"p": 97}}
    assert a["grpo"]["seed"] == 1  # inputs untouched
    assert merge_overrides({"data": {"train_ids": ["x"]}}, {"data": {"train_ids": ["y"]}}) == {"data": {"train_ids": ["y"]}}


def test_train_ids_subset_and_errors(smoke_store):
    cfg = load_config("smoke")
    base = ensure_base_model(cfg)
    full = load_task(cfg, base)
    ids = [full.train[3].id, full.train[0].id]
    sub = load_task(load_config("smoke", {"data": {"train_ids": ids}}), base)
    assert [p.id for p in sub.train] == ids and len(sub.valid) == len(full.valid)
    with pytest.raises(ValueError, match="not training problems"):
        load_task(load_config("smoke", {"data": {"train_ids": ids + ["nope"]}}), base)
    with pytest.raises(ValueError, match="empty"):
        load_task(load_config("smoke", {"data": {"train_ids": []}}), base)


def test_evaluate_on_ids_and_checkpoint_near(smoke_store):
    run = experiment.run_grpo(load_config("smoke", {"grpo": {"steps": 4, "checkpoint_every": 2}}))
    cfg = experiment.load_run_config(run)
    task = load_task(cfg, ensure_base_model(cfg))
    ids = [task.train[5].id, task.train[1].id]
    path = experiment.evaluate_checkpoint(run, 4, ids=ids)
    t = experiment.read_eval(path)
    assert sorted(t.prompt_id) == sorted(ids) and "ids2-" in path.name
    assert experiment.evaluate_checkpoint(run, 4, ids=list(reversed(ids))) == path  # order does not matter
    with pytest.raises(ValueError, match="not training problems"):
        experiment.evaluate_checkpoint(run, 4, ids=["nope"])
    assert experiment.checkpoint_near(run, 0.42) == 2 and experiment.checkpoint_near(run, 1.0) == 4
    assert runs.is_done(run)


def test_curriculum_two_stages(smoke_store):
    cfg = load_config("smoke")
    task = load_task(cfg, ensure_base_model(cfg))
    ids = [p.id for p in task.train]
    group_of = pd.Series({i: ("unlearnable" if k < 3 else "easy") for k, i in enumerate(ids)})
    cur = experiment.curriculum("smoke", {"grpo": {"valid_every": 0}}, group_of, seed=1, stage1_steps=2, stage2_steps=2)
    c1, c2 = experiment.load_run_config(cur.stage1), experiment.load_run_config(cur.stage2)
    assert not set(c1.data.train_ids) & set(cur.unlearnable) and len(c1.data.train_ids) == len(ids) - 3
    assert c2.data.train_ids == cur.unlearnable + cur.mixed_in and len(cur.mixed_in) == 3
    assert set(cur.mixed_in) <= set(c1.data.train_ids)
    assert c2.grpo.init_from == str(checkpoint_dir(cur.stage1, 2))
    # stage 2's step 0 is stage 1's last checkpoint, not the base model
    t0 = experiment.read_eval(experiment.evaluate_checkpoint(cur.stage2, 0, ids=cur.unlearnable))
    assert str(cur.stage2) in str(experiment.evaluate_checkpoint(cur.stage2, 0, ids=cur.unlearnable))
    assert sorted(t0.prompt_id) == sorted(cur.unlearnable)
    with pytest.raises(ValueError, match="no unlearnable"):
        experiment.curriculum("smoke", {}, group_of.replace("unlearnable", "easy"))


def test_evaluation_on_ids_reuses_the_whole_split(smoke_store):
    run = experiment.run_grpo(load_config("smoke", {"grpo": {"steps": 2, "checkpoint_every": 2, "seed": 5}}))
    whole = experiment.read_eval(experiment.evaluate_checkpoint(run, 2, k=3))
    ids = sorted(whole.prompt_id)[:3]
    part = experiment.read_eval(experiment.evaluate_checkpoint(run, 2, k=3, ids=ids))
    pd.testing.assert_frame_equal(part.reset_index(drop=True),
                                  whole[whole.prompt_id.isin(ids)].reset_index(drop=True))
    s_whole = experiment.read_eval(experiment.evaluate_checkpoint(run, 2, k=3), samples=True)
    s_part = experiment.read_eval(experiment.evaluate_checkpoint(run, 2, k=3, ids=ids), samples=True)
    assert len(s_part) == 3 * 3 and s_part.response.tolist() == s_whole[s_whole.prompt_id.isin(ids)].response.tolist()
