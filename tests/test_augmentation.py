"""§5.3 augmentation: data.augment composes the training set; GRPO runs on it; Figure 10's table."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from unlearnability.analysis import augmentation as aug
from unlearnability.analysis import gradients
from unlearnability.config import ConfigError, load_config
from unlearnability.data.tasks import load_task
from unlearnability.pipeline import experiment
from unlearnability.store import runs
from unlearnability.store.history import read_history
from unlearnability.train.base import ensure_base_model
from unlearnability.world import graph_of


def test_augment_spec_is_normalised_and_bad_keys_are_named():
    short = load_config("smoke", {"data": {"augment": {"kinds": ["subproblem", "similar"]}}})
    assert short.data.augment == {"ids": None, "kinds": ["similar", "subproblem"], "n_similar": 5, "seed": 0}
    full = load_config("smoke", {"data": {"augment": {"ids": None, "kinds": ["similar", "subproblem"],
                                                      "n_similar": 5, "seed": 0}}})
    assert short.section_hash() == full.section_hash() != load_config("smoke").section_hash()
    with pytest.raises(ConfigError, match=r"data\.augment\.kinds: unknown kind 'paraphrase'"):
        load_config("smoke", {"data": {"augment": {"kinds": ["similar", "paraphrase"]}}})
    with pytest.raises(ConfigError, match=r"data\.augment: unknown key 'kind'"):
        load_config("smoke", {"data": {"augment": {"kind": "similar"}}})
    with pytest.raises(ConfigError, match=r"data\.augment\.n_similar"):
        load_config("smoke", {"data": {"augment": {"kinds": ["similar"], "n_similar": 0}}})
    with pytest.raises(ConfigError, match=r"data\.augment\.ids"):
        load_config("smoke", {"data": {"augment": {"ids": []}}})


def test_augmented_task_composition(smoke_store):
    cfg = load_config("smoke")
    base = ensure_base_model(cfg)
    full = load_task(cfg, base)
    ids = [full.train[1].id, full.train[3].id, full.train[4].id]  # tiers 2, 2, 1 (tiers cycle 1, 2)
    tiers = {i: full.by_id()[i].meta["tier"] for i in ids}
    assert tiers == {ids[0]: 2, ids[1]: 2, ids[2]: 1}
    over = {"data": {"train_ids": ids, "augment": {"kinds": ["similar", "subproblem"], "n_similar": 2}}}
    task = load_task(load_config("smoke", over), base)
    assert [p.id for p in task.train[:3]] == ids  # the originals first, in the given order
    table = aug.augmentation_table(task.train)
    counts = table.groupby(["source_id", "kind"]).size().to_dict()
    for i in ids:  # 2 similar each; one subproblem per needed intermediate node (tier - 1)
        assert counts[(i, "original")] == 1 and counts[(i, "similar")] == 2
        assert counts.get((i, "subproblem"), 0) == tiers[i] - 1
    assert len(task.train) == 3 + 3 * 2 + 2
    added = task.train[3:]
    assert [p.id for p in added] == [f"{ids[0]}-sim0", f"{ids[0]}-sim1", f"{ids[0]}-sub0",
                                     f"{ids[1]}-sim0", f"{ids[1]}-sim1", f"{ids[1]}-sub0",
                                     f"{ids[2]}-sim0", f"{ids[2]}-sim1"]
    for p in added:
        src = task.by_id()[p.meta["source_id"]]
        assert p.meta["kind"] in ("similar", "subproblem") and p.meta["coverage"] in ("common", "rare", "unseen")
        assert p.question != src.question and p.meta["solution"].endswith(f"answer {' '.join(p.answer.zfill(2))}")
        if p.meta["kind"] == "similar":  # same operators, same shape
            assert [n.skill for n in graph_of(p).nodes] == [n.skill for n in graph_of(src).nodes]
    assert not {p.question for p in task.train} & {p.question for p in task.valid}
    again = load_task(load_config("smoke", over), base)  # deterministic
    assert [(p.id, p.question, p.answer) for p in again.train] == [(p.id, p.question, p.answer) for p in task.train]
    reseeded = {"data": {**over["data"], "augment": {"n_similar": 2, "seed": 1}}}
    other_seed = load_task(load_config("smoke", reseeded), base)
    assert [p.question for p in other_seed.train[3:5]] != [p.question for p in added[:2]]
    # only similar problems, of one chosen original
    one = load_task(load_config("smoke", {"data": {"train_ids": ids, "augment": {
        "kinds": ["similar"], "n_similar": 3, "ids": [ids[1]]}}}), base)
    assert [p.id for p in one.train] == ids + [f"{ids[1]}-sim{k}" for k in range(3)]
    with pytest.raises(ValueError, match=r"data\.augment\.ids"):
        load_task(load_config("smoke", {"data": {"train_ids": ids[:1], "augment": {"ids": [ids[1]]}}}), base)


def test_grpo_runs_on_an_augmented_set_and_evaluates_the_originals(smoke_store):
    cfg = load_config("smoke")
    full = load_task(cfg, ensure_base_model(cfg))
    ids = [full.train[1].id, full.train[3].id]
    changes = aug.augmentation_changes(ids, "both", n_similar=2)
    assert changes == {"data": {"train_ids": ids, "augment": {"kinds": ["similar", "subproblem"],
                                                                "n_similar": 2, "seed": 0}}}
    over = {"grpo": {"steps": 2, "checkpoint_every": 2, "valid_every": 0, "prompts_per_step": 4}}
    run = experiment.variant_runs("smoke", [1], over, changes)[1]
    assert runs.is_done(run) and experiment.load_run_config(run).data.augment["kinds"] == ["similar", "subproblem"]
    trained = {p.id for p in load_task(experiment.load_run_config(run), ensure_base_model(cfg)).train}
    drawn = set(read_history(run).prompt_id)
    assert drawn <= trained and drawn - set(ids)  # augmented problems were drawn
    path = experiment.evaluate_checkpoint(run, 2, k=2, ids=ids)  # Figure 8: the originals over training
    assert sorted(experiment.read_eval(path).prompt_id) == sorted(ids)
    with pytest.raises(ValueError, match="composition"):
        aug.augmentation_changes(ids, "paraphrase")


def test_similarity_rows_by_hand():
    C = np.array([[1.0, 0.5, 0.1, 0.9],
                  [0.5, 1.0, 0.3, 0.2],
                  [0.1, 0.3, 1.0, 0.0],
                  [0.9, 0.2, 0.0, 1.0]])
    ids = ["a", "b", "c", "a-sim0"]
    rows = aug.similarity_rows(ids, C, ["a", "b", "c", "gone"], {"a-sim0": "a"}).set_index("prompt_id")
    assert rows.loc["a", "sim_train"] == pytest.approx((0.5 + 0.1) / 2)  # itself excluded
    assert rows.loc["a-sim0", "sim_train"] == pytest.approx((0.9 + 0.2 + 0.0) / 3)
    assert rows.loc["a-sim0", "sim_source"] == pytest.approx(0.9) and np.isnan(rows.loc["b", "sim_source"])


def test_figure10_gradients_are_cached(smoke_store, monkeypatch):
    cfg = load_config("smoke")
    task = load_task(cfg, ensure_base_model(cfg))
    groups = ["easy", "learnable", "unlearnable", "learnable", "unlearnable", "easy"]
    group_of = pd.Series({p.id: g for p, g in zip(task.train[:6], groups)})
    study = SimpleNamespace(cfg=cfg, seeds=[1], run_dirs={})
    kw = {"kinds": ["similar", "subproblem"], "n_similar": 2, "gradient_overrides": {"rollouts": 8, "per_group": 2}}
    long = aug.augmentation_gradients(study, group_of, **kw)
    originals = long[long.kind == "original"]
    assert sorted(originals.prompt_id) == sorted(group_of.index)
    augmented = long[long.kind != "original"]
    assert set(augmented.source_id) == set(group_of[group_of != "easy"].index)
    assert (augmented.group == augmented.source_id.map(group_of)).all()
    assert set(long.columns) >= {"prompt_id", "group", "source_id", "kind", "rollouts", "correct", "kept",
                                 "sim_train", "sim_source"}
    kept = long[long.kept.astype(bool)]
    assert kept.sim_train.dropna().between(-1, 1).all()
    # NaN exactly where no *other* original has a gradient to compare with (itself excluded)
    ref = set(originals[originals.kept.astype(bool)].prompt_id)
    alone = kept.prompt_id.map(lambda i: len(ref - {i}) == 0)
    assert (kept.sim_train.isna() == alone).all()
    fig = aug.per_source_similarity(long)
    assert sorted(fig.prompt_id) == sorted(group_of[group_of != "easy"].index)
    assert (fig.n_similar == 2).all() and {"sim_augmented", "sim_subproblem", "kept_similar"} <= set(fig.columns)

    def boom(*a, **k):
        raise AssertionError("recomputed a cached table")

    monkeypatch.setattr(gradients, "example_gradients", boom)
    pd.testing.assert_frame_equal(aug.augmentation_similarity(study, group_of, **kw), fig)
