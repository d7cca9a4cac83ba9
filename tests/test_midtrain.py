"""§5.4 mid-training: mixtures shift the stream, the mid-trained model is cached like the base
model, GRPO and Figure 11's measure start from it, and old cache keys are unchanged."""

import hashlib
from collections import Counter

import pytest

from unlearnability import config
from unlearnability.analysis import gradients, midtraining
from unlearnability.config import MidtrainConfig, load_config
from unlearnability.data.tasks import load_task
from unlearnability.pipeline import experiment
from unlearnability.store import runs
from unlearnability.train import base, midtrain
from unlearnability.train.base import ensure_base_model, ensure_midtrained
from unlearnability.train.midtrain import (
    midtrain_dir,
    midtraining_problems,
    midtraining_stream,
    resolve_mixture,
    without_midtrain,
)
from unlearnability.train.pretrain import final_styles, without_anneal

TINY = {"tokens": 3000, "warmup_steps": 2}  # a few optimizer steps on the smoke model
# testbed v3 as first adopted: mul_c rare (10% coverage), GRPO at lr 2e-4, old log-probs recomputed
V3_FIRST = {"world": {"coverage": {"add_c": 1.0, "sub_c": 1.0, "add": 1.0, "sub": 1.0, "mul_c": 0.1, "mul": 0.0}},
            "grpo": {"lr": 2e-4, "old_logprobs": "recompute"}}


def v3(over: dict) -> dict:
    return config.merge_overrides(V3_FIRST, over)


def test_new_fields_keep_existing_cache_keys():
    # the default preset: an annealed base (its first phase keeps the key it had before the anneal landed)
    # GRPO keys changed once on purpose when grpo/eval/gradients.decoder arrived (the fast decoder draws a
    # new random stream: runs sampled with the old one are not reused); base-model keys did not. The
    # default preset itself changed to testbed v3 (answers mod 1000, tiers 1-4, 256 problems, k = 128):
    # its keys below are v3's, with the world and learning rate v3 had before mul_c went to full coverage
    # and grpo.lr to 5e-5 (V3_FIRST: the keys are a function of the values, not of the preset's history)
    assert runs.grpo_dir(load_config("default", v3({"grpo": {"seed": 1}}))).name == "4e0c64bd75af"
    assert runs.base_dir(load_config("default", V3_FIRST)).name == "23e0c760fe46"
    assert runs.base_dir(without_anneal(load_config("default", V3_FIRST))).name == "843d907c8d92"
    assert runs.grpo_dir(load_config("default", v3({"grpo": {"seed": 1, "loss_chunk_tokens": None},
                                                    "pretrain": {"anneal_styles": None}}))).name == "7861199700a6"
    # the default with mul_c at full coverage and GRPO at lr 5e-5, old log-probs recomputed (grpo.old_logprobs
    # at its late default: out of the key), then as it is now (the sampler's: every GRPO key new, on purpose)
    assert runs.grpo_dir(load_config("default", {"grpo": {"seed": 1, "old_logprobs": "recompute"}})).name == "0121be122e28"
    assert runs.grpo_dir(load_config("default", {"grpo": {"seed": 1}})).name == "482fe71c5728"
    assert runs.base_dir(load_config("default")).name == "c7f48dca01a7"
    assert runs.base_dir(load_config("smoke")).name == "027a3c41fc44"  # smoke.yaml: a final phase too
    assert runs.base_dir(without_anneal(load_config("smoke"))).name == "9d7970db8806"
    # smoke.yaml: gradients.rollouts 64, grpo.loss_chunk_tokens 512, then grpo.old_logprobs sampler
    assert runs.grpo_dir(load_config("smoke", {"grpo": {"old_logprobs": "recompute"}})).name == "d6c508a18a8c"
    assert runs.grpo_dir(load_config("smoke")).name == "deefd55070ba"
    d = config._cache_dict(load_config("default", V3_FIRST))
    assert "midtrain" not in d and "augment" not in d["data"]
    # spelled out at their defaults: the same keys
    same = load_config("default", v3({"grpo": {"seed": 1}, "midtrain": {"tokens": MidtrainConfig().tokens},
                                      "data": {"augment": None}}))
    assert runs.grpo_dir(same).name == "4e0c64bd75af"
    on = load_config("default", v3({"midtrain": {"mixture": "hybrid"}}))
    assert runs.base_dir(on).name == "23e0c760fe46"  # the pretrained model it starts from
    assert on.section_hash() != load_config("default", V3_FIRST).section_hash()
    assert config.config_from_dict(on.to_dict()).section_hash() == on.section_hash()


def _shares(world, mix, n=600):
    probs = midtraining_problems(world, mix, set(), seed=0)
    sample = [next(probs) for _ in range(n)]
    tiers = Counter(p.meta["tier"] for p in sample)
    skills = Counter(s for p in sample for s in p.meta["skills"])
    return {t: c / n for t, c in tiers.items()}, {s: c / n for s, c in skills.items()}


def test_mixtures_shift_the_tier_and_skill_distribution():
    world = load_config("default", {"world": {"tiers": [1, 2, 3, 4, 5, 6], "coverage": {
        "add_c": 1.0, "sub_c": 1.0, "add": 1.0, "sub": 1.0, "mul_c": 0.15, "mul": 0.0}}}).world  # mul_c rare, mul unseen
    mixes = {name: resolve_mixture(world, MidtrainConfig(mixture=name)) for name in midtrain.MIXTURES}
    assert mixes["long"].tiers == {1: 0, 2: 0, 3: 0, 4: 4, 5: 5, 6: 6} and mixes["long"].styles["worked"] == 1.0
    assert mixes["hybrid"].skills["mul_c"] == 1.0 and mixes["pretrain"].skills["mul_c"] == 0.15
    tiers, skills = {}, {}
    for name, mix in mixes.items():
        tiers[name], skills[name] = _shares(world, mix)
    mean = {name: sum(t * s for t, s in ts.items()) for name, ts in tiers.items()}
    assert mean["pretrain"] == pytest.approx(3.5, abs=0.25)  # uniform over 1-6, as in pretraining
    assert mean["hybrid"] > mean["pretrain"] + 0.5 and min(tiers["long"]) == 4
    assert skills["hybrid"]["mul_c"] > 3 * skills["pretrain"]["mul_c"]
    assert skills["long"]["mul_c"] < 2 * skills["pretrain"]["mul_c"]
    assert all("mul" not in s for s in skills.values())  # the unseen skill stays unseen
    # explicit weights replace the mixture's parts
    only6 = resolve_mixture(world, MidtrainConfig(mixture="hybrid", tier_weights={6: 1.0}, skill_weights={"add": 1}))
    t6, s6 = _shares(world, only6, n=50)
    assert t6 == {6: 1.0} and set(s6) == {"add"}
    for bad, match in [({"mixture": "octo"}, "midtrain.mixture"), ({"mixture": "long", "tier_weights": {9: 1}},
                       "midtrain.tier_weights"), ({"mixture": "long", "skill_weights": {"div": 1}},
                       "midtrain.skill_weights"), ({"mixture": "long", "styles": {"poem": 1}}, "midtrain.styles")]:
        with pytest.raises(ValueError, match=match):
            resolve_mixture(world, MidtrainConfig(**bad))


def test_stream_styles_and_exclusion():
    world = load_config("smoke").world
    hybrid = resolve_mixture(world, MidtrainConfig(mixture="hybrid"))
    first = [q for q, _ in zip(midtraining_stream(world, hybrid, set(), 0), range(60))]
    questions = [q for q, _ in first]
    kept = [q for (q, _), _ in zip(midtraining_stream(world, hybrid, set(questions[:30]), 0), range(200))]
    assert not set(kept) & set(questions[:30])  # never a question it was told to exclude
    assert any(a.startswith("answer") for _, a in first)  # pretraining's styles: answer-only among them
    long = resolve_mixture(world, MidtrainConfig(mixture="long"))
    probs = midtraining_problems(world, long, set(), 0)
    pairs = midtraining_stream(world, long, set(), 0)
    for _ in range(30):  # worked solutions only
        p, (q, a) = next(probs), next(pairs)
        assert q == p.question and a == p.meta["solution"]
    assert [q for q, _ in zip(midtraining_stream(world, hybrid, set(), 0), range(60))] == first  # deterministic


def _snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def _weights(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_ensure_midtrained_caches_and_leaves_the_base_model_alone(smoke_store, monkeypatch):
    cfg = load_config("smoke", {"midtrain": {"mixture": "hybrid", **TINY}})
    base = ensure_base_model(without_midtrain(cfg))
    before, base_weights = _snapshot(base), _weights(base)
    folder = ensure_midtrained(cfg, quiet=True)
    assert folder == midtrain_dir(cfg) and runs.is_done(folder) and folder != base
    assert (folder / "mixture.yaml").exists() and (folder / "tokenizer.json").exists()
    assert _weights(folder) != base_weights
    assert _snapshot(base) == before and _weights(base) == base_weights  # only read
    assert ensure_base_model(cfg) == folder  # the hook: mid-training on, the mid-trained model is the base

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(midtrain, "train_on_text", boom)
    assert ensure_midtrained(cfg) == folder  # cached
    keys = {midtrain_dir(load_config("smoke", {"midtrain": {"mixture": m, **TINY, **extra}}))
            for m, extra in [("hybrid", {}), ("long", {}), ("hybrid", {"seed": 1}), ("hybrid", {"tokens": 4000})]}
    assert len(keys) == 4  # keyed by the midtrain section
    assert runs.base_dir(cfg) == runs.base_dir(without_midtrain(cfg)) == base
    with pytest.raises(ValueError, match="midtrain.mixture is null"):
        ensure_midtrained(without_midtrain(cfg))


def test_grpo_and_figure11_from_the_midtrained_model(smoke_store, monkeypatch):
    over = {"midtrain": {"mixture": "hybrid", **TINY}}
    cfg = load_config("smoke", over)
    seen = {}
    real = experiment.train_grpo

    def spy(cfg_, run_dir, base, task):
        seen["base"] = base
        return real(cfg_, run_dir, base, task)

    monkeypatch.setattr(experiment, "train_grpo", spy)
    one_step = {"grpo": {"steps": 1, "checkpoint_every": 1, "valid_every": 0}}
    run = experiment.variant_runs("smoke", [1], over, one_step)[1]
    assert seen["base"] == ensure_midtrained(cfg) and runs.is_done(run)
    assert experiment.load_run_config(run).midtrain.mixture == "hybrid"
    task = load_task(cfg, ensure_midtrained(cfg))
    difficult = [task.train[1].id, task.train[3].id]
    kw = {"n_reference": 6, "midtrain_overrides": TINY, "gradient_overrides": {"rollouts": 8}}
    fig = midtraining.midtrain_similarity("smoke", None, difficult, mixtures=("hybrid",), **kw)
    assert set(fig.model) == {"base", "hybrid"}
    for _, rows in fig.groupby("model"):
        assert rows.reference.sum() == 6 and set(rows.prompt_id[rows.difficult]) == set(difficult)
        assert (rows.n_reference_kept <= 6).all() and rows.similarity[rows.kept].between(-1, 1).all()
    assert midtraining.reference_ids([p.id for p in task.train], 6) == midtraining.reference_ids(
        [p.id for p in reversed(task.train)], 6)
    monkeypatch.setattr(gradients, "example_gradients", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = midtraining.midtrain_similarity("smoke", None, difficult, mixtures=("hybrid",), **kw)
    assert again.equals(fig)  # cached per model


def test_anneal_is_a_cached_final_phase_equal_to_midtraining_on_the_pretrain_mixture(smoke_store, monkeypatch):
    styles = {"worked": 0.25, "terse": 0.25, "leap": 0.25, "answer": 0.25}
    cfg = load_config("smoke", {"pretrain": {"anneal_styles": styles, "anneal_tokens": 3000}})
    first = ensure_base_model(without_anneal(cfg))
    folder = ensure_base_model(cfg, quiet=True)
    assert folder == runs.base_dir(cfg) != first and runs.is_done(folder)
    assert final_styles(cfg) == styles and final_styles(without_anneal(cfg)) == cfg.world.styles
    assert (folder / "anneal_seconds.txt").exists() and (folder / "tokenizer.json").exists()
    assert _weights(folder) != _weights(first)
    # the same computation as mid-training the first phase on the pretraining mixture with those styles
    mid = load_config("smoke", {"pretrain": {"anneal_styles": None},
                                "midtrain": {"mixture": "pretrain", "styles": styles, "tokens": 3000}})
    assert _weights(ensure_midtrained(mid, quiet=True)) == _weights(folder)
    # mid-training on top of an annealed base starts from it, and its "pretrain" mixture is the final mix
    on_top = load_config("smoke", {"pretrain": {"anneal_styles": styles, "anneal_tokens": 3000},
                                   "midtrain": {"mixture": "pretrain", **TINY}})
    seen = {}
    monkeypatch.setattr(base, "midtrain_phase", lambda c, base, f, mix, q: seen.update(base=base, mix=mix) or f)
    ensure_midtrained(on_top)
    assert seen["base"] == folder and seen["mix"].styles == styles
    # the matched control turns the last phase's extra styles off: the anneal when there is one ...
    annealed = load_config("smoke", {"pretrain": {"anneal_styles": styles}})
    control = load_config("smoke", config.merge_overrides(
        {"pretrain": {"anneal_styles": styles}}, experiment.control_overrides(annealed)))
    assert control.pretrain.anneal_styles == {"worked": 1.0, "terse": 0.0, "leap": 0.0, "answer": 0.0}
    assert control.world == annealed.world
    assert experiment.has_control(annealed) and not experiment.has_control(control)
    # ... else the single pretraining phase
    single = load_config("smoke", {"pretrain": {"anneal_styles": None}})
    control = load_config("smoke", config.merge_overrides(
        {"pretrain": {"anneal_styles": None}}, experiment.control_overrides(single)))
    assert control.pretrain.anneal_styles is None and control.world.styles["worked"] == 1.0
    assert sum(control.world.styles.values()) == 1.0
    assert experiment.has_control(single) and not experiment.has_control(control)
    with pytest.raises(ValueError, match="pretrain.anneal_styles"):
        ensure_base_model(load_config("smoke", {"pretrain": {"anneal_styles": {"worked": -1.0}}}))
