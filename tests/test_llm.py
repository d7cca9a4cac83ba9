"""The OpenAI-compatible client, the LLM judge and LLM augmentation, against a loopback stub
server (tests/llm_stub.py): no network, and the API key must never leak."""

import json
import logging

import datasets
import math_verify  # noqa: F401  (slow first imports, here rather than inside a test's time)
import openai  # noqa: F401
import pandas as pd
import pytest
from llm_stub import Reply, StubServer

from unlearnability.analysis.judge import (
    PROMPT_VERSION,
    JudgeCache,
    JudgeParseError,
    JudgeReport,
    checker_scorer,
    judge_response,
    judge_scorer,
    judge_table,
    parse_judge_reply,
    score_fn,
)
from unlearnability.backends.llm import (
    LLMError,
    chat,
    chat_many,
    describe,
    parse_json_reply,
    redact,
)
from unlearnability.config import LLMConfig
from unlearnability.world.problems import Problem

SECRET = "sk-test-SECRET123"


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("UNLEARN_TEST_KEY", SECRET)
    return SECRET


@pytest.fixture()
def server():
    """A factory: server(responder) -> a running StubServer, shut down after the test."""
    started = []

    def start(responder=None):
        srv = StubServer(responder).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__()


def cfg_for(srv, model="judge-model", **kw) -> LLMConfig:
    kw = {"max_retries": 1, "retry_backoff": 0.01, "timeout": 5, "concurrency": 4, **kw}
    return LLMConfig(base_url=srv.base_url, model=model, api_key_env="UNLEARN_TEST_KEY", **kw)


def leaks(obj) -> bool:
    return SECRET in str(obj) or SECRET in repr(obj)


# ----- client -----

def test_chat_round_trip_sends_the_key_only_in_the_header(server, key):
    srv = server(lambda body, headers: "echo: " + body["messages"][-1]["content"])
    cfg = cfg_for(srv, temperature=0.0, max_tokens=64)
    assert chat(cfg, [{"role": "user", "content": "2+2?"}]) == "echo: 2+2?"
    (req,) = srv.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"
    assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0.0
    assert req["body"]["max_completion_tokens"] == 64
    assert "api_key_env" in repr(cfg) and not leaks(cfg) and not leaks(describe(cfg))
    assert "key" not in {f for f in cfg.__dataclass_fields__ if f != "api_key_env"}
    # defaults send neither temperature nor a token limit (GPT-5 models accept only defaults)
    chat(cfg_for(srv), [{"role": "user", "content": "x"}])
    assert "temperature" not in srv.requests[-1]["body"] and "max_completion_tokens" not in srv.requests[-1]["body"]


def test_the_llm_section_is_checked_and_an_unset_server_named(server, key):
    from unlearnability.config import ConfigError, apply_overrides, field_help, load_config

    cfg = apply_overrides(load_config("smoke"), {"llm": {"base_url": "http://x/v1", "model": "m", "timeout": 5}})
    assert cfg.llm.timeout == 5.0 and isinstance(cfg.llm.timeout, float) and cfg.llm.api_key_env == "OPENAI_API_KEY"
    with pytest.raises(ConfigError, match=r"llm.max_tokens_field='max_len': must be one of: max_completion_tokens, "
                                          r"max_tokens"):
        apply_overrides(cfg, {"llm": {"max_tokens_field": "max_len"}})
    with pytest.raises(ConfigError, match="llm.model: expected a string"):
        apply_overrides(cfg, {"llm": {"model": 5}})
    assert "environment variable" in field_help("llm.api_key_env")
    srv = server()
    with pytest.raises(LLMError, match="llm.base_url and llm.model are not set"):
        chat(LLMConfig(), [{"role": "user", "content": "hi"}])
    with pytest.raises(LLMError, match="llm.model is not set"):
        judge_response(LLMConfig(base_url=srv.base_url), PROBLEM, "5", cache=False)
    assert srv.count == 0


def test_missing_env_var_is_a_clear_error(server, monkeypatch):
    monkeypatch.delenv("UNLEARN_TEST_KEY", raising=False)
    srv = server()
    with pytest.raises(LLMError, match="environment variable UNLEARN_TEST_KEY is not set"):
        chat(cfg_for(srv), [{"role": "user", "content": "hi"}])
    assert srv.count == 0


def test_errors_and_logs_never_contain_the_key(server, key, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx's debug logs too
    echo_key = lambda body, headers: Reply(500, {"error": {"message": f"boom, you sent {headers['authorization']}"}})
    srv = server(echo_key)
    with pytest.raises(LLMError) as info:
        chat(cfg_for(srv), [{"role": "user", "content": "hi"}])
    e = info.value
    assert "HTTP 500" in str(e) and "after 2 attempts" in str(e) and srv.count == 2  # retried once
    assert "[REDACTED]" in str(e) and not leaks(e) and not leaks(e.args)
    assert e.__cause__ is None and e.__context__ is None  # the SDK exception (with the request) is not attached

    for bad in (Reply(200, b"this is not json"), Reply(200, {"unexpected": SECRET}),
                Reply(200, {"choices": []}), Reply(400, {"error": {"message": f"bad key {SECRET}"}})):
        srv.queue.append(bad)
        n = srv.count
        with pytest.raises(LLMError) as info:
            chat(cfg_for(srv), [{"role": "user", "content": "hi"}])
        assert not leaks(info.value) and srv.count == n + 1  # not transient: no retry
    # a reply that echoes the key comes back without it
    srv.queue.append(f"your key is {SECRET}")
    assert chat(cfg_for(srv), [{"role": "user", "content": "hi"}]) == "your key is [REDACTED]"
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and SECRET not in caplog.text
    assert "POST" in caplog.text  # the client's debug logs were captured (and are clean)


def test_transient_error_is_retried_then_succeeds(server, key):
    srv = server(lambda body, headers: "fine")
    srv.queue += [Reply(503, {"error": {"message": "busy"}}), Reply(429, {"error": {"message": "slow down"}})]
    assert chat(cfg_for(srv, max_retries=2), [{"role": "user", "content": "x"}]) == "fine"
    assert srv.count == 3
    got = dict(chat_many(cfg_for(srv), [[{"role": "user", "content": str(i)}] for i in range(5)]))
    assert got == {i: "fine" for i in range(5)}


def test_redact_and_json_parsing():
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer [REDACTED]"
    assert redact("key sk-abcdef123456 and https://user:pw@host/v1") == "key [REDACTED] and https://[REDACTED]@host/v1"
    assert parse_json_reply('{"a": 1}') == {"a": 1}
    assert parse_json_reply('Sure!\n```json\n{"a": [1, 2]}\n```\nDone.') == {"a": [1, 2]}
    assert parse_json_reply('Here: {"a": 2} and more text') == {"a": 2}
    # LaTeX with single backslashes: \f \b \t \n \r would silently become control characters
    got = parse_json_reply(r'{"q": "\frac{1}{2} \times \binom{4}{2} \neq \sqrt{3}, \right)", "s": "line1\nline2"}')
    assert got["q"] == r"\frac{1}{2} \times \binom{4}{2} \neq \sqrt{3}, \right)" and got["s"] == "line1\nline2"
    assert parse_json_reply(r'{"q": "\\frac{1}{2}"}') == {"q": r"\frac{1}{2}"}  # correctly escaped stays
    with pytest.raises(ValueError, match="no JSON object"):
        parse_json_reply("no json here")


# ----- judge -----

PROBLEM = Problem("p1", "What is 2 + 3?", "5")


def test_parse_judge_reply():
    assert parse_judge_reply('{"rationale": "all steps valid", "score": 5}') == (5, "all steps valid")
    assert parse_judge_reply('```json\n{"score": "3", "rationale": "a gap"}\n```') == (3, "a gap")
    assert parse_judge_reply('{"score": 4.0}')[0] == 4
    assert parse_judge_reply("The reasoning skips a step.\n**Score**: 3")[0] == 3
    assert parse_judge_reply("Overall I'd give it 2/5.")[0] == 2
    with pytest.raises(JudgeParseError, match="no 0-5 score.*I cannot grade this"):
        parse_judge_reply("I cannot grade this.")
    with pytest.raises(JudgeParseError, match="not an integer from 0 to 5"):
        parse_judge_reply('{"score": 7}')
    with pytest.raises(JudgeParseError, match="not a number"):
        parse_judge_reply('{"score": "high"}')


def judge_stub(body, headers):
    """Scores by the response's length, so different responses get different verdicts."""
    text = body["messages"][-1]["content"]
    response = text.split("<<<SOLUTION\n", 1)[1].split("\nSOLUTION>>>", 1)[0]
    if "GARBAGE" in response:
        return "I refuse."
    return json.dumps({"rationale": f"judged {len(response)} chars; auth {headers['authorization']}",
                       "score": min(5, len(response) % 6)})


def test_judge_caches_verdicts(server, key, tmp_path, capsys):
    srv = server(judge_stub)
    cfg, cache = cfg_for(srv), tmp_path / "judge" / "cache.jsonl"
    r1 = judge_response(cfg, PROBLEM, "2 + 3 = 5", cache=cache)
    assert isinstance(r1, JudgeReport) and r1.score == 9 % 6 and not r1.cached and r1.prompt_version == PROMPT_VERSION
    assert srv.count == 1 and PROBLEM.question in srv.prompts()[0]
    r2 = judge_response(cfg, PROBLEM, "2 + 3 = 5", cache=cache)
    assert r2.cached and r2.score == r1.score and srv.count == 1  # no second request
    judge_response(cfg, PROBLEM, "5", cache=cache)
    assert srv.count == 2
    # another model or server is another verdict
    judge_response(cfg_for(srv, model="other"), PROBLEM, "5", cache=cache)
    assert srv.count == 3
    # a half-written last line (a kill) is dropped, the rest is kept
    with cache.open("a") as f:
        f.write('{"key": "trunc')
    assert len(JudgeCache(cache).records) == 3 and cache.read_text().endswith("\n")
    assert not leaks(r1) and not leaks(cache.read_text()) and "[REDACTED]" in r1.rationale
    with pytest.raises(JudgeParseError, match="I refuse"):
        judge_response(cfg, PROBLEM, "GARBAGE", cache=cache)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


def test_judge_table(server, key, tmp_path):
    srv = server(judge_stub)
    cfg, cache = cfg_for(srv), tmp_path / "cache.jsonl"
    problems = {"p1": PROBLEM, "p2": Problem("p2", "What is 1 + 1?", "2")}
    samples = pd.DataFrame({"prompt_id": ["p1", "p1", "p2", "p1"], "sample": [0, 1, 0, 2],
                            "response": ["a", "bb", "a", "a"], "reward": [1.0, 1.0, 1.0, 1.0]})
    table = judge_table(cfg, problems, samples, cache=cache, progress=False)
    assert list(table.columns) == ["prompt_id", "sample", "score", "rationale"]
    assert table["score"].tolist() == [1, 2, 1, 1] and srv.count == 3  # (p1, "a") judged once
    again = judge_table(cfg, problems, samples, cache=cache, progress=False)
    assert srv.count == 3 and again.equals(table)  # a rerun costs nothing
    bad = pd.concat([samples, pd.DataFrame({"prompt_id": ["p2"], "sample": [1], "response": ["GARBAGE"]})],
                    ignore_index=True)
    with pytest.raises(LLMError, match=r"1 of 5 judge verdicts failed \(prompt_ids p2\).*I refuse"):
        judge_table(cfg, problems, bad, cache=cache, progress=False)
    skipped = judge_table(cfg, problems, bad, cache=cache, errors="skip", progress=False)
    assert skipped["score"].isna().tolist() == [False] * 4 + [True]
    with pytest.raises(ValueError, match="row 0: prompt_id 'p1' is not among"):
        judge_table(cfg, {}, samples, cache=cache, progress=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['response'\]"):
        judge_table(cfg, problems, samples.drop(columns="response"), cache=cache, progress=False)
    assert not leaks(cache.read_text()) and not leaks(table.to_string())


def test_judge_cli(server, key, tmp_path, capsys):
    from unlearnability.cli.main import main

    srv = server(judge_stub)
    (tmp_path / "problems.jsonl").write_text(json.dumps({"problem": PROBLEM.question, "answer": "5",
                                                         "unique_id": "p1"}) + "\n")
    pd.DataFrame({"prompt_id": ["p1", "p1"], "sample": [0, 1], "response": ["ab", "abc"],
                  "reward": [1.0, 0.0]}).to_csv(tmp_path / "samples.csv", index=False)
    out = tmp_path / "verdicts.csv"
    assert main(["judge", "--samples", str(tmp_path / "samples.csv"), "--problems", str(tmp_path / "problems.jsonl"),
                 "--out", str(out), "--cache", str(tmp_path / "c.jsonl"), "--base-url", srv.base_url, "--model", "j",
                 "--api-key-env", "UNLEARN_TEST_KEY"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out) and SECRET not in captured.out + captured.err
    table = pd.read_csv(out)
    assert table["sample"].tolist() == [0] and table["score"].tolist() == [2] and srv.count == 1  # correct only
    # the llm section's other fields by --set, checked as at load before any request
    argv = ["judge", "--samples", str(tmp_path / "samples.csv"), "--problems", str(tmp_path / "problems.jsonl"),
            "--out", str(out), "--cache", str(tmp_path / "c2.jsonl"), "--base-url", srv.base_url, "--model", "j"]
    assert main(argv + ["--set", "llm.timeout=0"]) == 2
    assert "llm.timeout=0.0: must be > 0 (llm.timeout: seconds per request)" in capsys.readouterr().err
    assert main(argv + ["--set", "grpo.lr=1"]) == 2
    assert "unlearn judge takes llm.KEY=VALUE only" in capsys.readouterr().err
    assert main(argv + ["--concurrency", "0"]) == 2 and "llm.concurrency=0: must be >= 1" in capsys.readouterr().err
    assert srv.count == 1


def test_prompts_fill_in_one_pass():
    from unlearnability.analysis.judge import judge_messages
    from unlearnability.backends.llm_augment import generation_messages

    tricky = Problem("t", "Say {answer} and {response} literally", "42")
    text = judge_messages(tricky, "resp {question}")[0]["content"]
    assert "Say {answer} and {response} literally" in text and "resp {question}" in text and "answer: 42" in text
    assert "Say {answer} and {response} literally" in generation_messages(tricky, "similar", 5)[0]["content"]


def test_checker_and_judge_are_interchangeable_scorers(server, key, tmp_path):
    import random

    from unlearnability.config import WorldConfig
    from unlearnability.world.generator import make_graph, problem_from_graph

    wc = WorldConfig(n_train=10, n_valid=5)
    tb = problem_from_graph(make_graph(random.Random(0), wc, 2, 0, {s: 1.0 for s in wc.skills}), "tb0")
    srv = server(judge_stub)
    for scorer, expect in ((checker_scorer(), 5), (judge_scorer(cfg_for(srv), cache=tmp_path / "c.jsonl"), None)):
        score = score_fn(scorer)(tb, tb.meta["solution"])
        assert isinstance(score, int) and 0 <= score <= 5
        assert expect is None or score == expect


# ----- augmentation -----

# generated question -> (the generator's answer, the checker's reply)
AUG = {
    "p1 similar A": ("2", "so \\boxed{2}"),
    "p1 similar B": ("\\frac{1}{2}", "it is \\boxed{0.5}"),  # equivalent: kept
    "p1 sub A": ("4", "\\boxed{5}"),  # disagrees
    "p1 sub B": ("7", "no idea"),  # checker gives no answer
    "p2 similar C": ("x+1", "\\boxed{1+x}"),
}


def aug_stub(body, headers):
    text = body["messages"][-1]["content"]
    if body["model"] == "checker":
        q = text.split("\nPlease reason step by step")[0]
        return AUG[q][1]
    source = "p1" if "What is 2 + 3?" in text else "p2"
    item = lambda q: {"question": q, "solution": "steps ...", "answer": AUG[q][0]}  # noqa: E731
    if "new math problems" in text:
        if source == "p1":
            return json.dumps({"problems": [item("p1 similar A"), item("p1 similar B")]})
        return "```json\n" + json.dumps({"problems": [{"question": "no answer here"},
                                                      {"question": "What is 1 + 1?", "answer": "2"},
                                                      item("p2 similar C")]}) + "\n```"
    if "Decompose" in text:
        if source == "p1":
            return json.dumps({"subproblems": [item("p1 sub A"), item("p1 sub B")]})
        return "Sorry, I can't decompose this."
    raise AssertionError(text)


def write_inputs(path):
    rows = [{"problem": "What is 2 + 3?", "answer": "5", "unique_id": "p1", "level": 1},
            {"problem": "What is 1 + 1?", "solution": "It is $\\boxed{2}$.", "unique_id": "p2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_augment_end_to_end_and_resume(server, key, tmp_path, capsys):
    from unlearnability.backends.llm_augment import augment_file

    srv = server(aug_stub)
    inputs, out = write_inputs(tmp_path / "in.jsonl"), tmp_path / "aug"
    gen, check = cfg_for(srv, model="generator"), cfg_for(srv, model="checker")
    s = augment_file(inputs, out, gen, check, n_similar=3, progress=False)
    assert srv.count == 9 and s.skipped == 0 and not s.failed  # p1: 2 + 4 checks; p2: 2 + 1 check
    assert s.report["kept"] == {"similar": 3} and s.report["kept_total"] == 3
    assert s.report["rejected"] == {"checker_disagrees": 1, "checker_no_answer": 1, "malformed_item": 1,
                                    "duplicate": 1, "bad_json": 1}
    ds = datasets.load_dataset("json", data_files=str(s.out), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 3 and {"id", "question", "answer", "solution", "kind", "source_id", "generator_model",
                                 "checker_model"} <= set(ds.column_names)
    assert sorted(ds["id"]) == ["p1-sim0", "p1-sim1", "p2-sim2"] and set(ds["checker_model"]) == {"checker"}
    rej = [json.loads(ln) for ln in (out / "rejections.jsonl").read_text().splitlines()]
    assert {(r["source_id"], r["reason"]) for r in rej} >= {("p1", "checker_disagrees"), ("p2", "bad_json")}
    report = json.loads((out / "report.json").read_text())
    assert report["rejected_total"] == 5 and report["checker"]["model"] == "checker"

    # resume: nothing new to ask
    s2 = augment_file(inputs, out, gen, check, n_similar=3, progress=False)
    assert srv.count == 9 and s2.skipped == 2 and s2.report["kept_total"] == 3

    # a kill after p2's lines but before its marker (plus a half line): only p2 is redone, no duplicates
    src = out / "sources.jsonl"
    lines = src.read_text().splitlines(keepends=True)
    src.write_text("".join(ln for ln in lines if '"p2"' not in ln) + '{"source_id": "p')
    s3 = augment_file(inputs, out, gen, check, n_similar=3, progress=False)
    assert srv.count == 12 and s3.skipped == 1 and s3.report["kept_total"] == 3 and s3.report["rejected_total"] == 5

    with pytest.raises(ValueError, match="was augmented with generator 'generator' / checker 'checker'"):
        augment_file(inputs, out, gen, cfg_for(srv, model="other-checker"), n_similar=3, progress=False)
    for f in out.iterdir():
        assert not leaks(f.read_text()), f
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def test_augment_cli(server, key, tmp_path, capsys):
    from unlearnability.cli.main import main

    srv = server(aug_stub)
    inputs, out = write_inputs(tmp_path / "in.jsonl"), tmp_path / "cli-aug"
    argv = ["augment", "--problems", str(inputs), "--out", str(out), "--base-url", srv.base_url, "--model",
            "generator", "--check-model", "checker", "--n-similar", "3", "--api-key-env", "UNLEARN_TEST_KEY",
            "--limit", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out / "augmented.jsonl")
    assert "kept 2" in captured.err and srv.count == 6  # --limit 1: p1 only
    assert SECRET not in captured.out + captured.err
    # a missing env var names it; a missing file names it
    assert main(argv[:-4] + ["--api-key-env", "NO_SUCH_KEY_VAR"]) == 2
    assert "NO_SUCH_KEY_VAR" in capsys.readouterr().err
    assert main(["augment", "--problems", str(tmp_path / "nope.jsonl"), "--out", str(out), "--base-url",
                 srv.base_url, "--model", "m"]) == 2
    assert "nope.jsonl: problems file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["augment", "--help"])
    helped = capsys.readouterr().out
    assert "--check-model" in helped and "llm.max_retries = 4\n      extra attempts after a transient error" in helped
