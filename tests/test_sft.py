import json
from pathlib import Path

import pandas as pd
import pytest

from unlearnability.cli.main import main
from unlearnability.config import (
    ConfigError,
    SFTConfig,
    apply_overrides,
    check_section,
    field_help,
    load_config,
)
from unlearnability.data.tasks import Task, load_task
from unlearnability.store import runs
from unlearnability.train import sft as sft_mod
from unlearnability.train.base import ensure_base_model
from unlearnability.train.sft import (
    file_responses,
    read_sft_eval,
    run_sft,
    scale_counts,
    select_examples,
    train_sft,
)
from unlearnability.train.sft import (
    testbed_responses as worked_responses,  # (no "test" prefix: not a test)
)
from unlearnability.world import check_steps, exact_reward, graph_of, train_valid_split

# ----------------------------------------------------------------------------- pure pieces


def labels(n: int = 30) -> pd.Series:
    names = ["easy", "learnable", "unlearnable", "no_reward", "easy"]
    return pd.Series([names[i % 5] for i in range(n)], index=[f"train-{i:04d}" for i in range(n)])


def test_select_examples_counts_determinism_and_missing_group():
    g = labels()  # 12 easy, 6 learnable, 6 unlearnable, 6 no_reward
    chosen = select_examples(g, {"unlearnable": 2, "learnable": 3, "easy": 5}, seed=0)
    assert chosen.value_counts().to_dict() == {"easy": 5, "learnable": 3, "unlearnable": 2}
    assert (g[chosen.index] == chosen).all()  # every id keeps its own group
    # fixed seed, independent of the input order; another seed draws other ids
    pd.testing.assert_series_equal(chosen, select_examples(g.iloc[::-1], {"unlearnable": 2, "learnable": 3,
                                                                          "easy": 5}, seed=0))
    assert set(select_examples(g, {"easy": 5}, seed=1).index) != set(chosen[chosen == "easy"].index)
    with pytest.raises(ValueError, match="group 'ambiguous' has no examples"):
        select_examples(g, {"ambiguous": 1}, seed=0)
    with pytest.raises(ValueError, match="'learnable': 7 examples requested, 6 available"):
        select_examples(g, {"learnable": 7}, seed=0)


def test_scale_counts_min_rule_fractions_and_errors():
    g = labels()
    assert scale_counts({"unlearnable": 200, "learnable": 200, "easy": 400}, g) == \
        {"unlearnable": 6, "learnable": 6, "easy": 12}
    assert scale_counts({"easy": 0.5, "learnable": 2, "unlearnable": 0}, g) == {"easy": 6, "learnable": 2}
    with pytest.raises(ValueError, match="only 6 examples available"):
        scale_counts({"learnable": 7}, g, scale_to_groups=False)
    with pytest.raises(ValueError, match="group 'ambiguous' has no examples"):
        scale_counts({"ambiguous": 5}, g)


def test_sft_section_overrides_merge_and_name_the_key():
    cfg = load_config("default", {"sft": {"per_group": {"easy": 10}, "lr": 1, "epochs": 2}}).sft
    assert cfg.per_group == {"unlearnable": 200, "learnable": 200, "easy": 10} and cfg.lr == 1.0
    assert isinstance(cfg.lr, float) and cfg.per_group["easy"] == 10 and isinstance(cfg.per_group["easy"], int)
    # a preset's sft and a later override merge the same way, key by key
    again = apply_overrides(load_config("default", {"sft": {"per_group": {"easy": 10}}}),
                            {"sft": {"per_group": {"learnable": 0.5}}})
    assert again.sft.per_group == {"unlearnable": 200, "learnable": 0.5, "easy": 10}
    with pytest.raises(ConfigError, match="sft: unknown key 'epoch'"):
        load_config("default", {"sft": {"epoch": 2}})
    with pytest.raises(ConfigError, match="sft.epochs: expected an integer"):
        load_config("default", {"sft": {"epochs": "x"}})
    with pytest.raises(ConfigError, match=r"sft.per_group.easy=1.5: must be a count .* or a fraction in \(0, 1\]"):
        load_config("default", {"sft": {"per_group": {"easy": 1.5}}})
    with pytest.raises(ConfigError, match=r"sft.per_group.easy=-1: must be a count \(an integer >= 0\)"):
        load_config("default", {"sft": {"per_group": {"easy": -1}}})
    with pytest.raises(ConfigError, match="sft.per_group: expected a mapping, merged key by key into"):
        load_config("default", {"sft": {"per_group": 5}})
    with pytest.raises(ConfigError, match="sft.lr=0.0: must be > 0"):
        apply_overrides(load_config("smoke"), {"sft": {"lr": 0}})
    assert "AdamW learning rate" in field_help("sft.lr") and "A.2" in field_help("sft")
    # a section built in code, as train_sft checks it
    with pytest.raises(ConfigError, match="sft.epochs=0: must be >= 1"):
        check_section("sft", SFTConfig(epochs=0))


def test_sft_folder_key_is_the_one_from_before_the_sft_section():
    """The SFT folder's key of these settings, as computed when SFTConfig had its own merger
    (`sft_config`): moving the settings into the config left every SFT folder valid."""
    cfg = load_config("smoke")
    train, _ = train_valid_split(cfg.world)
    names = ["easy", "learnable", "unlearnable"]
    group_of = pd.Series([names[i % 3] for i in range(len(train))], index=[p.id for p in train])
    for over, key in (({}, "66672fcbe419"), ({"per_group": {"easy": 0.5}, "lr": 1, "epochs": 2}, "9b6ebac3ebde")):
        run = apply_overrides(cfg, {"sft": over})
        examples = select_examples(group_of, scale_counts(run.sft.per_group, group_of, run.sft.scale_to_groups),
                                   run.sft.seed)
        assert sft_mod.sft_key(Path("base") / "abc123", examples, worked_responses(train), run) == key


def test_the_sft_section_stays_out_of_every_other_key():
    """SFT settings change the SFT folder's key only: the GRPO run, base model and evaluation keys,
    and the config a chapter's provenance hashes, are those of the config without them."""
    plain = load_config("smoke")
    tuned = apply_overrides(plain, {"sft": {"epochs": 9, "per_group": {"easy": 1}}, "llm": {"model": "m"}})
    assert tuned.section_hash() == plain.section_hash()
    for names in (("world", "model", "pretrain"), ("eval", "data")):
        assert tuned.section_hash(*names) == plain.section_hash(*names)
    assert tuned.section_hash("sft") != plain.section_hash("sft")
    assert "sft" not in plain.to_dict() and "llm" not in plain.to_dict()
    assert tuned.to_dict()["sft"]["epochs"] == 9 and tuned.to_dict()["llm"]["model"] == "m"


def test_testbed_responses_are_rewarded_and_exact():
    train, _ = train_valid_split(load_config("smoke").world)
    resp = worked_responses(train)
    assert sorted(resp) == sorted(p.id for p in train)
    for p in train:
        (r,) = resp[p.id]
        assert exact_reward(r, p.answer) == 1.0
        rep = check_steps(graph_of(p), r)
        assert rep.exact and rep.score == 5 and rep.style == "worked"


def test_file_responses_rejects_wrong_and_names_bad_rows(tmp_path, capsys):
    train, valid = train_valid_split(load_config("smoke").world)
    task = Task(train, valid, None, lambda q: q, exact_reward, "testbed")
    a, b = train[0], train[1]
    wrong = str((int(a.answer) + 1) % 11)
    rows = [{"prompt_id": a.id, "response": f"answer {a.answer.zfill(2)}"},  # correct (answer-only)
            {"prompt_id": a.id, "response": f"answer {wrong.zfill(2)}"},  # wrong
            {"id": b.id, "response": graph_of(b).solution()},  # correct, `id` field
            {"prompt_id": b.id, "response": graph_of(b).solution()},  # duplicate
            {"prompt_id": "valid-0000", "response": "answer 00"}]  # not a training problem
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = file_responses(path, task)
    assert got == {a.id: [rows[0]["response"]], b.id: [rows[2]["response"]]}
    out = capsys.readouterr().out
    assert "5 rows" in out and "kept 2" in out and "rejected 1 wrong" in out and "1 with an id not in" in out
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt_id": a.id, "text": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2: need fields 'prompt_id' \(or 'id'\) and 'response'"):
        file_responses(path, task)
    path.write_text(json.dumps(rows[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not valid JSON"):
        file_responses(path, task)


# ----------------------------------------------------------------------------- on the smoke base model


def smoke():
    cfg = load_config("smoke")
    base = ensure_base_model(cfg, quiet=True)
    return cfg, base, load_task(cfg, base)


def test_train_sft_writes_eval_per_group_and_overfits(smoke_store, tmp_path):
    cfg, base, task = smoke()
    ids = [p.id for p in task.train[:4]]
    examples = pd.Series(["easy", "easy", "unlearnable", "learnable"], index=ids)
    sft = SFTConfig(epochs=60, batch_size=4, lr=5e-3, eval_every=20, eval_k=8)
    out = train_sft(sft, base, task, examples, worked_responses(task.train), tmp_path / "sft", eval_cfg=cfg.eval)
    ev = read_sft_eval(out)
    assert list(ev.columns) == ["step", "epoch", "group", "examples", "pass@1", "exact_rate"]
    assert sorted(ev.step.unique()) == [0, 20, 40, 60]  # base model, then every 20 steps (one step an epoch)
    for _, at in ev.groupby("step"):
        assert dict(zip(at.group, at.examples)) == {"easy": 2, "unlearnable": 1, "learnable": 1}
    per_ex = read_sft_eval(out, per_example=True)
    assert len(per_ex) == 4 * 4 and (per_ex.n == 8).all()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0020", "step_0040", "step_0060"]
    assert (out / "checkpoints" / "step_0060" / "tokenizer.json").exists()
    # overfitting a repeated tiny set: the response loss falls far, and the examples get solved
    log = pd.read_csv(out / "train_log.csv")
    assert list(log.step) == list(range(1, 61))
    assert log.loss.iloc[-3:].mean() < 0.25 * log.loss.iloc[:3].mean()
    at = per_ex.groupby("step")["pass@1"].mean()
    assert at[60] > at[0]
    assert runs.is_done(out) and not (out / "state.pt").exists()


def test_train_sft_same_numbers_and_resume_after_kill(smoke_store, tmp_path):
    cfg, base, task = smoke()
    examples = pd.Series(["easy"] * 3 + ["learnable"] * 3, index=[p.id for p in task.train[:6]])
    resp = worked_responses(task.train)
    sft = SFTConfig(epochs=2, batch_size=2, lr=1e-3, eval_every=2, eval_k=2)
    a = train_sft(sft, base, task, examples, resp, tmp_path / "a", eval_cfg=cfg.eval)
    part = train_sft(sft, base, task, examples, resp, tmp_path / "b", eval_cfg=cfg.eval, stop_after=3)
    assert not runs.is_done(part) and pd.read_csv(part / "train_log.csv").step.max() == 3
    b = train_sft(sft, base, task, examples, resp, tmp_path / "b", eval_cfg=cfg.eval)  # resumes from step 2
    for name in ("eval.csv", "eval_examples.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name))
    la, lb = pd.read_csv(a / "train_log.csv"), pd.read_csv(b / "train_log.csv")
    pd.testing.assert_frame_equal(la.drop(columns="seconds"), lb.drop(columns="seconds"))


def test_run_sft_is_cached(smoke_store, monkeypatch):
    cfg, _, task = smoke()
    group_of = pd.Series(["easy", "learnable", "unlearnable", "no_reward"] * 4, index=[p.id for p in task.train])
    sft = {"epochs": 1, "eval_k": 1, "per_group": {"unlearnable": 2, "learnable": 200, "easy": 0.5}}
    out = run_sft(apply_overrides(cfg, {"sft": sft}), group_of, quiet=True)
    assert out.parent == runs.home() / "sft" and runs.is_done(out)
    ex = pd.read_csv(out / "examples.csv")
    assert ex.group.value_counts().to_dict() == {"learnable": 4, "unlearnable": 2, "easy": 2}  # min(asked, have)
    assert set(read_sft_eval(out).group) == {"easy", "learnable", "unlearnable"}

    def boom(*a, **k):
        raise AssertionError("retrained a cached SFT run")

    monkeypatch.setattr(sft_mod, "train_sft", boom)
    assert run_sft(apply_overrides(cfg, {"sft": sft}), group_of, quiet=True) == out
    with pytest.raises(AssertionError, match="retrained"):  # another config is another folder
        run_sft(apply_overrides(cfg, {"sft": {"epochs": 2, "eval_k": 1}}), group_of, quiet=True)


def test_cli_sft_prints_folder_and_clear_errors(smoke_store, tmp_path, capsys):
    cfg = load_config("smoke")
    train, _ = train_valid_split(cfg.world)
    groups = tmp_path / "groups.csv"
    pd.DataFrame({"prompt_id": [p.id for p in train[:6]], "group": ["easy", "learnable", "unlearnable"] * 2}
                 ).to_csv(groups, index=False)
    args = ["sft", "--preset", "smoke", "--groups", str(groups), "--set", "sft.epochs=1", "--set", "sft.eval_k=1"]
    assert main(args) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert runs.is_done(out) and (out / "eval.csv").exists()
    assert main(args + ["--set", "sft.epoch=2"]) == 2
    assert "sft: unknown key 'epoch'" in capsys.readouterr().err
    pd.DataFrame({"id": ["x"], "group": ["easy"]}).to_csv(groups, index=False)
    assert main(args) == 2
    assert "missing column(s) ['prompt_id']" in capsys.readouterr().err
    pd.DataFrame({"prompt_id": ["valid-0000"], "group": ["easy"]}).to_csv(groups, index=False)
    assert main(args) == 2
    assert "not training problems of preset 'smoke'" in capsys.readouterr().err
