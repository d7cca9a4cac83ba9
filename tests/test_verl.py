"""backends/verl.py and cli_verl.py: export (parquet, reward file, overrides checked against
verl 0.9.1's own resolved config, run scripts) and ingest (verl's documented dump format)."""

import argparse
import importlib.util
import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from unlearnability.backends import verl
from unlearnability.cli.verl import add_verl_commands
from unlearnability.config import load_config
from unlearnability.data.mathdata import apply_template
from unlearnability.data.reward import math_reward
from unlearnability.store.history import HISTORY_COLUMNS, read_history, read_validation

REPO = Path(__file__).resolve().parents[1]
MATH500 = REPO.parent / "shared" / "data" / "math500" / "test.jsonl"
DUMP = REPO / "tests" / "data" / "verl_dump"
PRESETS = ["paper-qwen0.5b-math", "paper-llama3b-math", "paper-qwen3b-deepscaler"]


def verl_package_dir() -> Path:
    """verl's installed package folder, found without importing verl (it needs ray, vllm, ...)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("verl is not installed: .venv/bin/pip install --no-deps verl==0.9.1 (see Makefile)")
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="module")
def verl_defaults():
    pkg = verl_package_dir()
    version = (pkg / "version" / "version").read_text().strip()
    assert version == verl.VERL_VERSION, f"installed verl {version}, overrides target {verl.VERL_VERSION}"
    path = pkg / "trainer" / "config" / "_generated_ppo_trainer.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing (verl {verl.VERL_VERSION} ships it)")
    return OmegaConf.load(path)


def small_config(name="paper-qwen0.5b-math"):
    data = {"train": str(MATH500), "valid": str(MATH500), "limit": 20}
    if name == "paper-qwen3b-deepscaler":
        data = {"train": str(MATH500), "limit": 20}
    return load_config(name, {"data": data})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    verl.export(small_config(), out)
    return out


def hydra_value(text: str):
    """Enough of Hydra's value grammar for our overrides: quoted strings, lists, bool, null, numbers."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text.startswith("[") and text.endswith("]"):
        return [hydra_value(x) for x in text[1:-1].split(",") if x]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "null":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def check_against_defaults(defaults, pairs):
    """Every key exists in verl's resolved defaults, with a value of a compatible type."""
    tree = OmegaConf.to_container(defaults, resolve=False)  # "???" (mandatory) and "${...}" kept as text
    cfg = OmegaConf.create(tree)
    OmegaConf.set_struct(cfg, True)
    for key, value in pairs:
        node = tree
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key}: not in verl's config ({part!r} missing)"
            node = node[part]
        default = node
        OmegaConf.update(cfg, key, value, merge=False)  # struct mode: raises on unknown keys
        if default is None or (isinstance(default, str) and default.startswith(("${", "???"))):
            continue
        if isinstance(default, bool):
            assert isinstance(value, bool), f"{key}={value!r}: verl's default is a bool"
        elif isinstance(default, (int, float)):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{key}={value!r}: expected a number"
        elif isinstance(default, str):
            assert isinstance(value, str), f"{key}={value!r}: expected a string"
        else:  # list / dict
            assert isinstance(value, type(default)), f"{key}={value!r}: expected a {type(default).__name__}"


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("variant", verl.VARIANTS)
def test_override_keys_exist_in_verl_config(verl_defaults, preset, variant):
    pairs = verl.overrides(load_config(preset), variant)
    assert len({k for k, _ in pairs}) == len(pairs), "duplicate keys"
    check_against_defaults(verl_defaults, pairs)


def test_override_values_follow_the_paper():
    cfg = load_config("paper-qwen0.5b-math")
    base = dict(verl.overrides(cfg, "baseline"))
    assert base["algorithm.adv_estimator"] == "grpo"
    assert base["algorithm.filter_groups.enable"] is True
    assert base["data.train_batch_size"] == 256 and base["actor_rollout_ref.rollout.n"] == 8
    assert base["actor_rollout_ref.actor.ppo_mini_batch_size"] == 64
    assert base["actor_rollout_ref.actor.optim.lr"] == 5e-7
    assert (base["data.max_prompt_length"], base["data.max_response_length"]) == (1024, 5120)
    assert (base["actor_rollout_ref.actor.use_kl_loss"], base["actor_rollout_ref.actor.kl_loss_coef"],
            base["actor_rollout_ref.actor.kl_loss_type"]) == (True, 1e-4, "low_var_kl")
    assert base["actor_rollout_ref.actor.entropy_coeff"] == 1e-3
    assert (base["actor_rollout_ref.actor.clip_ratio_low"], base["actor_rollout_ref.actor.clip_ratio_high"]) == (0.2, 0.2)
    assert base["actor_rollout_ref.actor.loss_agg_mode"] == "token-mean"
    assert (base["actor_rollout_ref.rollout.val_kwargs.temperature"], base["actor_rollout_ref.rollout.val_kwargs.top_p"]) == (0.7, 0.95)
    assert base["trainer.rollout_data_dir"].endswith("/rollouts")
    assert base["reward.custom_reward_function.name"] == "compute_score"
    clip = dict(verl.overrides(cfg, "clip-higher"))
    assert clip["actor_rollout_ref.actor.clip_ratio_high"] == 0.28
    nokl = dict(verl.overrides(cfg, "no-kl"))
    assert nokl["actor_rollout_ref.actor.use_kl_loss"] is False
    assert {k for k in base if base[k] != clip[k]} == {
        "actor_rollout_ref.actor.clip_ratio_high", "trainer.experiment_name", "trainer.default_local_dir",
        "trainer.rollout_data_dir", "trainer.validation_data_dir"}
    big = dict(verl.overrides(load_config("paper-qwen3b-deepscaler"), "baseline"))
    assert (big["actor_rollout_ref.actor.optim.lr"], big["data.max_response_length"]) == (1e-6, 8192)
    assert big["actor_rollout_ref.model.path"] == "Qwen/Qwen2.5-3B"


def test_override_files_parse_back(exported, verl_defaults):
    for variant in verl.VARIANTS:
        lines = (exported / "overrides" / f"{variant}.txt").read_text().splitlines()
        pairs = [(line.split("=", 1)[0], hydra_value(line.split("=", 1)[1])) for line in lines]
        assert pairs == [(k, v) for k, v in verl.overrides(small_config(), variant)]
        check_against_defaults(verl_defaults, pairs)


def test_run_script_passes_every_override(exported, verl_defaults, tmp_path):
    # a stand-in `python3` that prints its arguments: checks the script's shell quoting for real
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "SEED": "42", "N_GPUS": "4"}
    out = subprocess.run(["bash", str(exported / "run_no-kl.sh"), "trainer.save_freq=5"], env=env,
                         capture_output=True, text=True, check=True).stdout
    args = json.loads(out)
    assert args[:2] == ["-m", "verl.trainer.main_ppo"]
    pairs = [(a.split("=", 1)[0], hydra_value(a.split("=", 1)[1])) for a in args[2:]]
    got = dict(pairs)
    assert got["data.train_files"] == f"{exported.resolve()}/train.parquet"
    assert got["data.seed"] == 42 and got["trainer.experiment_name"] == "paper-qwen0.5b-math-no-kl-seed42"
    assert got["actor_rollout_ref.model.custom_chat_template"] == verl.CHAT_TEMPLATE
    assert got["actor_rollout_ref.actor.use_kl_loss"] is False
    assert (got["trainer.n_gpus_per_node"], got["trainer.nnodes"], got["trainer.save_freq"]) == (4, 1, 5)
    check_against_defaults(verl_defaults, pairs)


def test_chat_template_renders_the_library_prompt():
    from jinja2.sandbox import (
        ImmutableSandboxedEnvironment,  # as transformers renders chat templates
    )
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tpl = env.from_string(verl.CHAT_TEMPLATE)
    text = apply_template("question-answer", "What is $1+1$?")
    msgs = [{"role": "user", "content": text}]
    assert tpl.render(messages=msgs, bos_token="<|begin_of_text|>", add_generation_prompt=True) == "<|begin_of_text|>" + text
    assert tpl.render(messages=msgs, bos_token=None, add_generation_prompt=True) == text


def test_parquet_rows(exported):
    cfg = small_config()
    train = pq.read_table(exported / "train.parquet").to_pylist()
    valid = pq.read_table(exported / "valid.parquet").to_pylist()
    assert (len(train), len(valid)) == (20, 500)
    raw = [json.loads(line) for line in MATH500.open()]
    easy = [r for r in raw if r["level"] <= 4][:20]
    for i, (row, r) in enumerate(zip(train, easy)):
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert row["data_source"] == "unlearnability/math"
        assert row["prompt"] == [{"role": "user", "content": apply_template(cfg.data.template, r["problem"])}]
        assert row["reward_model"] == {"style": "rule", "ground_truth": r["answer"]}
        assert row["extra_info"] == {"split": "train", "index": i, "id": r["unique_id"]}
    assert [row["extra_info"]["index"] for row in valid] == list(range(500))
    manifest = json.loads((exported / "export.json").read_text())
    assert (manifest["n_train"], manifest["n_valid"], manifest["verl_version"]) == (20, 500, "0.9.1")


def test_reward_file_is_the_library_reward(exported):
    text = (exported / "reward_fn.py").read_text()
    assert "from ." not in text and "import unlearnability" not in text  # self-contained
    spec = importlib.util.spec_from_file_location("exported_reward", exported / "reward_fn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    raw = [json.loads(line) for line in MATH500.open()][:40]
    for i, r in enumerate(raw):
        gold = raw[(i + i % 2) % 40]["answer"]  # half matching, half not
        assert mod.compute_score("unlearnability/math", r["solution"], gold, extra_info={"index": i}) == \
            math_reward(r["solution"], gold)


def test_readme_names_the_entry_point(exported):
    readme = (exported / "README.md").read_text()
    assert "python3 -m verl.trainer.main_ppo" in readme and "trainer.use_v1" in readme
    assert "recipe.dapo.main_dapo" in readme and "verl-recipe" in readme


def test_ingest_fixture(exported, tmp_path):
    run = tmp_path / "run"
    s = verl.ingest(DUMP, run, export_dir=exported)
    assert s["steps"] == [1, 2] and s["history_rows"] == 5 and s["validation_rows"] == 2
    h = read_history(run)
    assert list(h.columns) == HISTORY_COLUMNS
    got = [(r.step, r.prompt_id, r.mean_reward, r.n, r.processed) for r in h.itertuples()]
    assert got == [
        (1, "test/precalculus/807.json", 0.5, 4, 1),
        (1, "test/algebra/2584.json", 0.25, 4, 1),
        (1, "test/number_theory/572.json", 0.75, 4, 1),
        (2, "test/algebra/1349.json", 0.75, 4, 1),
        (2, "test/prealgebra/1622.json", 0.25, 4, 1),  # trailing newline lost: whitespace-insensitive match
    ]
    assert math.isclose(h.std_reward[0], 0.5) and math.isclose(h.std_reward[1], math.sqrt(3) / 4)
    assert h.clip_frac.isna().all()
    v = read_validation(run)
    assert [(r.step, r.prompt_id, r.mean_reward, r.n) for r in v.itertuples()] == [
        (0, "test/precalculus/807.json", 0.5, 2), (0, "test/intermediate_algebra/1994.json", 0.0, 2)]
    assert load_config(str(run / "config.yaml")).name == "paper-qwen0.5b-math"


def test_ingest_finds_export_above_dump(exported, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    shutil.copytree(DUMP, export / "runs" / "paper-qwen0.5b-math-baseline-seed1")
    s = verl.ingest(export / "runs" / "paper-qwen0.5b-math-baseline-seed1" / "rollouts", tmp_path / "run")
    assert s["history_rows"] == 5 and s["validation_rows"] == 2  # validation/ found beside rollouts/


def test_ingest_unknown_prompt_fails_clearly(exported, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    good = (DUMP / "rollouts" / "1.jsonl").read_text().splitlines()[0]
    bad = json.loads(good) | {"input": "user\nWhat is the airspeed of an unladen swallow?\nassistant\n"}
    (dump / "3.jsonl").write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"3\.jsonl:2: prompt matches no example"):
        verl.ingest(dump, tmp_path / "run", export_dir=exported)
    (dump / "3.jsonl").write_text('{"output": "x"}\n')
    with pytest.raises(ValueError, match=r"3\.jsonl:1: missing key"):
        verl.ingest(dump, tmp_path / "run", export_dir=exported)


def test_strip_special():
    qwen = apply_template("qwen-boxed", "Q?")
    assert verl.strip_special(qwen) == ("system\nYou are a helpful assistant.\nuser\nQ?\nPlease reason step by "
                                        "step, and put your final answer within \\boxed{}.\nassistant\n")
    assert verl.strip_special("<|begin_of_text|>Question:\nQ?") == "Question:\nQ?"


def _parser():
    parser = argparse.ArgumentParser(prog="unlearn")
    sub = parser.add_subparsers(dest="command")
    add_verl_commands(sub)
    return parser


def test_cli_export_and_ingest(tmp_path, capsys):
    parser = _parser()
    out = tmp_path / "export"
    args = parser.parse_args(["verl", "export", "--preset", "paper-qwen0.5b-math", "--set", f"data.train={MATH500}",
                              "--set", f"data.valid={MATH500}", "--set", "data.limit=20", "--out", str(out)])
    assert args.func(args) == 0
    assert (out / "run_baseline.sh").exists() and (out / "overrides" / "clip-higher.txt").exists()
    args = parser.parse_args(["verl", "ingest", str(DUMP), "--out", str(tmp_path / "run"), "--export", str(out)])
    assert args.func(args) == 0
    assert "5 groups over steps 1-2" in capsys.readouterr().out
    args = parser.parse_args(["verl", "ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run2")])
    assert args.func(args) == 1
    assert "not a folder" in capsys.readouterr().err
    args = parser.parse_args(["verl", "export", "--preset", "no-such-preset", "--out", str(tmp_path / "x")])
    assert args.func(args) == 1


@pytest.mark.parametrize("argv", [["verl", "--help"], ["verl", "export", "--help"], ["verl", "ingest", "--help"]])
def test_cli_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "verl" in text and len(text) > 200


def test_duplicate_prompts_go_to_the_first_example(tmp_path):
    from unlearnability.data.mathdata import load_math500
    from unlearnability.world.problems import Problem
    probs = [p for p in load_math500(str(MATH500)) if p.meta["level"] <= 4][:20]  # the fixture's problems
    twin = Problem(id="copy-of-first", question=probs[0].question, answer=probs[0].answer)
    out = tmp_path / "export"
    manifest = verl.export(small_config(), out, train=probs + [twin], valid=load_math500(str(MATH500)))
    assert manifest["duplicate_prompts"] == 1
    assert manifest["duplicate_prompt_ids"] == {probs[0].id: ["copy-of-first"]}
    s = verl.ingest(DUMP / "rollouts", tmp_path / "run", export_dir=out, val_dump=DUMP / "validation")
    assert s["duplicate_prompts"] == {probs[0].id: ["copy-of-first"]}
    assert "copy-of-first" not in set(read_history(tmp_path / "run").prompt_id)
