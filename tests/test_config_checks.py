"""Semantic checks at load (config.RULES and the cross-field checks): every out-of-range value is
refused before any work starts, with an error that names the key and what is allowed."""

import pytest

from unlearnability.config import RULES, ConfigError, load_config


def override(key: str, value) -> dict:
    section, name = key.split(".")
    return {section: {name: value}}


@pytest.mark.parametrize("key,rule", RULES, ids=[k for k, _ in RULES])
def test_every_ranged_field_refuses_its_out_of_range_value(key, rule):
    _, what, bad = rule
    with pytest.raises(ConfigError) as e:
        load_config("default", override(key, bad))
    assert str(e.value).startswith(f"{key}=") and what in str(e.value)


@pytest.mark.parametrize("key,value,words", [
    ("grpo.rollouts_per_prompt", 0, ">= 2"),  # the issue's five: each was accepted, or a ZeroDivisionError
    ("grpo.steps", -3, ">= 1"),
    ("grpo.temperature", -1, "> 0"),
    ("grpo.top_p", 2, "(0, 1]"),
    ("grpo.mini_batch_prompts", 3, "must divide grpo.prompts_per_step=32"),
    ("grpo.oversample_n", 4, "downsamples to the group"),
    ("grpo.n_pos", 9, "<= grpo.rollouts_per_prompt=8"),
    ("model.num_attention_heads", 3, "must divide model.hidden_size=128"),
    ("model.num_key_value_heads", 3, "must divide model.num_attention_heads=4"),
    ("world.coverage", {"div": 1.0}, "unknown skill 'div'"),
    ("world.task_mix", {"add": 0.0}, "at least one skill"),
    ("world.tiers", [0, 1], "integers >= 1"),
    ("world.styles", {"worked": 0.0}, "positive total"),
    ("sft.per_group", {"easy": 1.5}, "sft.per_group.easy=1.5: must be a count (an integer >= 0) or a fraction"),
    ("sft.per_group", {"learnable": -2}, "sft.per_group.learnable=-2"),
    ("sft.per_group", {"easy": "all"}, "sft.per_group.easy='all'"),
    ("llm.max_tokens", "many", "llm.max_tokens: expected an integer"),  # optional fields: null or their type
    ("llm.temperature", "hot", "llm.temperature: expected a number"),
    ("data.template", 5, "data.template: expected a string"),
])
def test_the_issues_values_and_the_cross_field_checks(key, value, words):
    over = override(key, value)
    if key == "world.task_mix":  # every other skill off too
        over = {"world": {"task_mix": {s: 0.0 for s in load_config("default").world.skills}}}
    with pytest.raises(ConfigError, match=None) as e:
        load_config("default", over)
    assert key.split(".")[1] in str(e.value) and words in str(e.value), str(e.value)


def test_every_preset_passes_the_checks():
    from unlearnability.config import preset_names

    for name in preset_names():
        load_config(name)


def test_boundary_values_are_accepted():
    cfg = load_config("default", {"grpo": {"rollouts_per_prompt": 2, "mini_batch_prompts": 32, "top_p": 1.0,
                                           "kl_coef": 0.0, "valid_every": 0},
                                  "eval": {"temperature": 0.0}, "world": {"chain_bias": 1.0},
                                  "sft": {"epochs": 1, "eval_every": 0, "per_group": {"easy": 1.0, "learnable": 0}},
                                  "llm": {"temperature": 0, "max_retries": 0, "max_tokens": None}})
    assert cfg.grpo.rollouts_per_prompt == 2 and cfg.eval.temperature == 0.0
    assert cfg.sft.per_group == {"unlearnable": 200, "learnable": 0, "easy": 1.0} and cfg.llm.temperature == 0.0


@pytest.mark.parametrize("n,expected", [(3, (3, 3)), (8, (8, 8)), (10, (10, 5)), (12, (12, 6)), (13, (13, 1)),
                                        (32, (32, 8)), (500, (32, 8))])
def test_small_set_batch_keeps_one_epoch_a_step_and_equal_updates(n, expected):
    from unlearnability.config import small_set_batch

    g = load_config("default").grpo  # 32 prompts a step, mini-batches of 8
    got = small_set_batch(n, g)
    assert (got["prompts_per_step"], got["mini_batch_prompts"]) == expected
    load_config("default", {"grpo": got})  # and the checks accept it


def test_every_field_has_help_text_from_its_comment():
    import dataclasses

    from unlearnability.config import Config, field_help

    cfg = Config()
    keys = []
    for sec in dataclasses.fields(Config):
        obj = getattr(cfg, sec.name)
        keys += [f"{sec.name}.{f.name}" for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
        assert field_help(sec.name), sec.name
    assert len(keys) > 100
    missing = [k for k in keys if not field_help(k)]
    assert not missing, f"fields without a comment (their help text): {missing}"
    assert "nucleus" in field_help("grpo.top_p") and "1/p" in field_help("world.p")
    with pytest.raises(ConfigError, match="unknown config key 'grpo.nope'"):
        field_help("grpo.nope")


def test_a_range_error_quotes_the_fields_help_and_unlearn_config_prints_it(capsys):
    from unlearnability.cli import main as cli

    with pytest.raises(ConfigError, match=r"grpo.top_p=2.0: must be in \(0, 1\] \(grpo.top_p: nucleus sampling"):
        load_config("default", {"grpo": {"top_p": 2}})
    assert cli.main(["config", "--preset", "smoke", "grpo.steps", "eval"]) == 0
    out = capsys.readouterr().out
    assert "grpo.steps = 4\n    # training steps" in out and "eval.k = 4\n" in out and "# eval: pass@k evaluation" in out
