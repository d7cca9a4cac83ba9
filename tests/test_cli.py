from pathlib import Path

import pandas as pd
import pytest

from unlearnability.cli.main import main
from unlearnability.config import ConfigError, load_config, parse_set


def test_presets_and_overrides():
    cfg = load_config("default", parse_set(["grpo.lr=1e-4", "world.p=97"]))
    assert cfg.grpo.lr == 1e-4 and cfg.world.p == 97
    with pytest.raises(ConfigError, match="grpo: unknown key 'lrr'"):
        load_config("default", parse_set(["grpo.lrr=1"]))
    with pytest.raises(ConfigError, match="grpo.steps: expected an integer"):
        load_config("default", parse_set(["grpo.steps=abc"]))
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")
    paper = load_config("paper-qwen0.5b-math")
    assert (paper.grpo.prompts_per_step, paper.grpo.rollouts_per_prompt, paper.grpo.mini_batch_prompts) == (256, 8, 64)
    assert (paper.grpo.lr, paper.grpo.kl_coef, paper.grpo.entropy_coef) == (5e-7, 1e-4, 1e-3)


def test_equal_configs_share_one_cache_key():
    """`{worked: 1}` and `{worked: 1.0}` are the same corpus: the same base model folder."""
    one = load_config("default", parse_set(["world.styles={worked: 1}"]))
    one_f = load_config("default", parse_set(["world.styles={worked: 1.0}"]))
    assert one.world.styles == {"worked": 1.0} and isinstance(one.world.styles["worked"], float)
    assert one.section_hash("world", "model", "pretrain") == one_f.section_hash("world", "model", "pretrain")
    assert one.section_hash() != load_config("default").section_hash()
    with pytest.raises(ConfigError, match=r"world\.styles\.worked: expected a number, got 'lots'"):
        load_config("default", parse_set(["world.styles={worked: lots}"]))


def test_answer_space_must_fit_the_digit_tokens():
    assert load_config("default", parse_set(["world.p=50"])).world.p == 50
    assert load_config("default", parse_set(["world.p=211", "world.digits=3"])).world.p == 211
    with pytest.raises(ConfigError, match=r"world\.p=211 with world\.digits=2: .* world\.digits >= 3"):
        load_config("default", parse_set(["world.p=211", "world.digits=2"]))  # 100-210 would be three digit tokens, the rest two


def test_grpo_prints_run_folder_and_evaluate_writes_pass1(smoke_store, capsys):
    assert main(["grpo", "--preset", "smoke", "--seed", "7", "--set", "grpo.steps=2"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run / "prompt_rewards.csv").exists() and (run / "config.yaml").exists()
    assert (run / "validation.csv").exists() and (run / "checkpoints" / "step_0002").exists()
    assert main(["evaluate", "--run", str(run), "--checkpoint", "2", "--k", "3"]) == 0
    table = pd.read_csv(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(table.columns[:4]) == ["prompt_id", "n", "correct", "pass@1"]
    assert (table["n"] == 3).all() and len(table) == load_config("smoke").world.n_train
    # the same command again is a cache hit on the same file
    assert main(["grpo", "--preset", "smoke", "--seed", "7", "--set", "grpo.steps=2"]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == run


def test_clear_errors(smoke_store, capsys, tmp_path):
    assert main(["grpo", "--preset", "smoke", "--set", "grpo.nope=1"]) == 2
    assert "unknown key 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path), "--checkpoint", "1"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_groups_writes_a_file_that_sft_reads(smoke_store, capsys, tmp_path):
    from unlearnability.evaluation.groups import GROUPS
    from unlearnability.train.sft import read_groups

    out = tmp_path / "groups.csv"
    argv = ["groups", "--preset", "smoke", "--seeds", "1", "2", "--set", "grpo.steps=2", "--out", str(out)]
    assert main(argv) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == out
    g = read_groups(out)
    assert len(g) == load_config("smoke").world.n_train and set(g) <= set(GROUPS)
    assert {"seed_1", "seed_2", "initial"} <= set(pd.read_csv(out).columns)
