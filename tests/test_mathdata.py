"""mathdata.py on the official MATH-500 file: loaders (jsonl, parquet, hub), levels, splits, templates, presets."""

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unlearnability.config import DataConfig, load_config
from unlearnability.data import mathdata
from unlearnability.data.mathdata import (
    LEVELS,
    apply_template,
    load_math500,
    load_math_file,
    load_problems,
    split_train_valid,
)

MATH500 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"

QWEN_BOXED = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{question}\n"
              "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
              "<|im_start|>assistant\n")
QUESTION_ANSWER = "Question:\n{question}\nAnswer:\nLet's think step by step.\n"


@pytest.fixture(scope="module")
def raw():
    assert MATH500.exists(), f"{MATH500} is missing"
    return [json.loads(line) for line in MATH500.open()]


def _same(a, b):
    assert [(p.id, p.question, p.answer, p.meta) for p in a] == [(p.id, p.question, p.answer, p.meta) for p in b]


def test_math500_records(raw):
    probs = load_math500(str(MATH500))
    assert len(probs) == 500
    for p, r in zip(probs, raw):
        assert (p.id, p.question, p.answer) == (r["unique_id"], r["problem"], r["answer"])
        assert p.meta == {"level": r["level"], "subject": r["subject"], "solution": r["solution"],
                          "source": "math500"}


def test_same_records_from_parquet_and_hub(raw, tmp_path, monkeypatch):
    from_jsonl = load_math500(str(MATH500))
    pq.write_table(pa.Table.from_pylist(raw), tmp_path / "test.parquet")
    _same(load_math500(str(tmp_path / "test.parquet")), from_jsonl)

    import datasets
    calls = []

    def fake_load_dataset(name, split=None, **kw):  # the hub, offline: same rows as the file
        calls.append((name, split))
        return datasets.Dataset.from_list(raw)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    _same(load_math500("HuggingFaceH4/MATH-500"), from_jsonl)
    assert calls == [("HuggingFaceH4/MATH-500", "test")]


def test_answer_from_solution_and_other_layouts(raw, tmp_path):
    # MATH train layout: no answer / unique_id, "Level N" strings, subject under "type"
    path = tmp_path / "train.jsonl"
    with path.open("w") as f:
        for r in raw:
            f.write(json.dumps({"problem": r["problem"], "solution": r["solution"],
                                "level": f"Level {r['level']}", "type": r["subject"]}) + "\n")
    probs = load_math_file(str(path), split="train")
    assert [p.answer for p in probs] == [r["answer"] for r in raw]  # answer = last \boxed{} of solution
    assert [p.id for p in probs[:2]] == ["train/0", "train/1"]
    assert [p.meta["level"] for p in probs] == [r["level"] for r in raw]
    assert probs[0].meta["subject"] == raw[0]["subject"]


def test_level_filters(raw):
    counts = Counter(r["level"] for r in raw)
    easy = load_math_file(str(MATH500), "test", LEVELS["easy"])
    hard = load_math_file(str(MATH500), "test", LEVELS["hard"])
    assert len(easy) == sum(counts[lv] for lv in (1, 2, 3, 4))
    assert len(hard) == sum(counts[lv] for lv in (3, 4, 5))
    assert {p.meta["level"] for p in hard} == {3, 4, 5}


def test_load_problems_math(raw):
    cfg = DataConfig(source="math", train=str(MATH500), valid=str(MATH500), levels=[1, 2, 3, 4],
                     template="qwen-boxed", limit=20)
    train = load_problems(cfg, "train")
    assert len(train) == 20 and all(p.meta["level"] <= 4 for p in train)
    assert len(load_problems(cfg, "valid")) == 500


def test_deepscaler_split_is_seeded_90_10(tmp_path, raw):
    path = tmp_path / "deepscaler.jsonl"  # DeepScaleR's layout: problem, answer, solution
    with path.open("w") as f:
        for r in raw:
            f.write(json.dumps({"problem": r["problem"], "answer": r["answer"], "solution": r["solution"]}) + "\n")
    cfg = DataConfig(source="deepscaler", train=str(path), split_seed=7, template="qwen-boxed")
    train, valid = load_problems(cfg, "train"), load_problems(cfg, "valid")
    assert (len(train), len(valid)) == (450, 50)
    assert not {p.id for p in train} & {p.id for p in valid}
    again = load_problems(cfg, "valid")
    assert [p.id for p in again] == [p.id for p in valid]
    other = split_train_valid(load_math_file(str(path)), seed=8)[1]
    assert {p.id for p in other} != {p.id for p in valid}
    with pytest.raises(ValueError, match="data.valid"):
        load_problems(DataConfig(source="deepscaler", train=str(path), valid=str(path)), "valid")


def test_clear_errors(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **kw):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="local .jsonl / .parquet path"):
        load_math500("HuggingFaceH4/MATH-500")
    (tmp_path / "data.csv").write_text("problem,answer\n")
    with pytest.raises(ValueError, match="expected a .jsonl or .parquet"):
        load_math_file(str(tmp_path / "data.csv"))
    with pytest.raises(ValueError, match="unlearnability.world"):
        load_problems(DataConfig(source="testbed"), "train")
    with pytest.raises(ValueError, match="data.train"):
        load_problems(DataConfig(source="math"), "train")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_math_file(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"solution": "no question"}\n')
    with pytest.raises(ValueError, match="row 2"):
        load_math_file(str(bad))


def test_templates():
    q = "What is $\\{1, 2\\}$ with {question} inside?"
    assert apply_template("qwen-boxed", q) == QWEN_BOXED.replace("{question}", q)
    assert apply_template("question-answer", q) == QUESTION_ANSWER.replace("{question}", q)
    assert set(mathdata.TEMPLATES) == {"qwen-boxed", "question-answer"}
    with pytest.raises(ValueError, match="qwen-boxed"):
        apply_template("testbed", q)


@pytest.mark.parametrize("name, hub, source, levels, template, lr, max_new", [
    ("paper-qwen0.5b-math", "Qwen/Qwen2.5-0.5B", "math", [1, 2, 3, 4], "qwen-boxed", 5e-7, 5120),
    ("paper-llama3b-math", "meta-llama/Llama-3.2-3B-Instruct", "math", [3, 4, 5], "question-answer", 5e-7, 5120),
    ("paper-qwen3b-deepscaler", "Qwen/Qwen2.5-3B", "deepscaler", None, "qwen-boxed", 1e-6, 8192),
])
def test_paper_presets(name, hub, source, levels, template, lr, max_new):
    cfg = load_config(name)
    assert (cfg.name, cfg.model.hub_id, cfg.data.source, cfg.data.levels, cfg.data.template) == (
        name, hub, source, levels, template)
    g = cfg.grpo
    assert (g.lr, g.max_new_tokens, cfg.eval.max_new_tokens) == (lr, max_new, max_new)
    assert (g.prompts_per_step, g.rollouts_per_prompt, g.mini_batch_prompts, g.ppo_epochs) == (256, 8, 64, 1)
    assert (g.eps_low, g.eps_high, g.kl_coef, g.kl_estimator, g.entropy_coef, g.grad_clip) == (
        0.2, 0.2, 1e-4, "k3", 1e-3, 1.0)
    assert (g.temperature, g.top_p, g.dynamic_sampling) == (1.0, 1.0, True)
    assert (cfg.eval.k, cfg.eval.temperature, cfg.eval.top_p) == (32, 0.7, 0.95)
    if source == "math":
        assert cfg.data.valid == "HuggingFaceH4/MATH-500"
    else:
        assert cfg.data.train == "agentica-org/DeepScaleR-Preview-Dataset" and cfg.data.valid is None


def test_own_problem_jsonl_round_trip(tmp_path):
    from unlearnability.world.problems import write_jsonl
    probs = load_math500(str(MATH500))
    write_jsonl(probs, tmp_path / "cached.jsonl")  # a local cache of hub data, as the book page shows
    _same(load_math_file(str(tmp_path / "cached.jsonl"), "test"), probs)
    assert len(load_math_file(str(tmp_path / "cached.jsonl"), "test", LEVELS["hard"])) == \
        sum(p.meta["level"] in (3, 4, 5) for p in probs)
