"""An LLM judge of reasoning quality (paper §5.2: Figures 1d and 7, Table 2).

What the paper did: sample 100 examples per group, take their rollouts with a correct
final answer, and ask GPT-5-mini for a reasoning-quality score from 0 to 5.

What this module does: the same, against any OpenAI-compatible server (`backends.llm`):

    judge_response(cfg, problem, response) -> JudgeReport(score 0-5, rationale, ...)
    judge_table(cfg, problems_by_id, samples) -> DataFrame(prompt_id, sample, score, rationale)

with the same interface as the testbed's exact step checker
(`world.checker.check_steps(graph, text) -> StepReport` with `.score` 0-5): both are
`Scorer`s (`checker_scorer()`, `judge_scorer(cfg)`), and `score_fn(scorer)` gives a plain
`(problem, response) -> int` so a notebook can swap one for the other.

Every verdict is cached in a JSONL file (default `$UNLEARN_HOME/judge/cache.jsonl`), keyed by
(model, base_url, prompt version, problem, response), one line appended and flushed per
verdict: a rerun costs nothing and a kill loses nothing (a half-written last line is
dropped on the next open). The prompt version is a hash of `JUDGE_PROMPT`, so editing the
prompt starts a fresh set of verdicts.

Simplifications: the paper's judging prompt is not published (its appendix names none for
§5.2); `JUDGE_PROMPT` is ours, with a stated 0-5 rubric. One verdict per response (no
self-consistency voting); the judge sees the reference answer; responses are judged as
given (the caller picks the correct rollouts, as the paper did); the cache key ignores
temperature and token limit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import pandas as pd

from unlearnability.backends.llm import (
    LLMError,
    chat,
    chat_many,
    make_client,
    parse_json_reply,
    redact,
    require_server,
    shorten,
)
from unlearnability.config import LLMConfig
from unlearnability.store.runs import drop_partial_tail
from unlearnability.world.problems import Problem

JUDGE_PROMPT = """\
You are grading the reasoning in a solution to a math problem. The solution's final answer \
is already known to be correct: judge only whether the reasoning that leads to it is valid.

Problem:
{question}

Reference answer: {answer}

Solution to grade (between the markers):
<<<SOLUTION
{response}
SOLUTION>>>

Score the reasoning from 0 to 5:
5 - every step is valid and necessary; the derivation is complete and coherent.
4 - every step is valid; only minor issues (an unneeded step, a small omission, a notational \
slip) that do not affect the logic.
3 - the main line of reasoning is sound, but it has a gap, an unjustified leap, or an error \
that is later corrected.
2 - substantial errors or gaps: parts are valid, but the reasoning does not establish the answer.
1 - mostly invalid, incoherent or self-contradictory reasoning that does not support the answer.
0 - no valid reasoning: the answer only, or reasoning that is entirely wrong or unrelated.

Reply with one JSON object and nothing else:
{"rationale": "<one or two sentences naming the decisive steps or errors>", "score": <integer 0-5>}"""

PROMPT_VERSION = "judge-v1-" + hashlib.sha256(JUDGE_PROMPT.encode()).hexdigest()[:10]

_SCORE_PATTERNS = (
    re.compile(r"""(?i)\bscore\b[\s*"':=]*(?:is|of)?[\s*"':=]*(-?\d+(?:\.\d+)?)"""),  # Score: 4, **Score**: 4
    re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)\s*/\s*5\b"),  # 4/5
)


class JudgeParseError(ValueError):
    """The judge's reply has no usable 0-5 score."""


@dataclass(frozen=True)
class JudgeReport:
    score: int  # 0..5
    rationale: str
    model: str
    prompt_version: str = PROMPT_VERSION
    cached: bool = False  # read from the cache (no request made)


# ----- prompt and parsing (pure) -----

def judge_messages(problem: Problem, response: str) -> list[dict[str, str]]:
    """The chat messages asking for a verdict on `response` to `problem`."""
    values = {"question": problem.question, "answer": problem.answer, "response": response}
    text = re.sub(r"\{(question|answer|response)\}", lambda m: values[m.group(1)], JUDGE_PROMPT)  # one pass
    return [{"role": "user", "content": text}]


def _as_score(value: Any, reply: str) -> int:
    """An integer 0-5 from a JSON / regex value, else JudgeParseError naming the reply."""
    try:
        f = float(str(value).strip())
    except ValueError:
        raise JudgeParseError(f"judge score {value!r} is not a number; reply: {shorten(reply)!r}") from None
    if f != int(f) or not 0 <= f <= 5:
        raise JudgeParseError(f"judge score {value!r} is not an integer from 0 to 5; reply: {shorten(reply)!r}")
    return int(f)


def parse_judge_reply(reply: str) -> tuple[int, str]:
    """(score, rationale) from the judge's reply: a JSON object with "score" first, then a
    "score: N" / "N/5" pattern in the text (rationale = the whole reply). JudgeParseError,
    naming the reply, when neither gives an integer 0-5."""
    try:
        obj = parse_json_reply(reply)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and "score" in obj:
        rationale = obj.get("rationale", obj.get("reason", obj.get("explanation", "")))
        return _as_score(obj["score"], reply), str(rationale or "").strip()
    for pat in _SCORE_PATTERNS:
        m = pat.search(reply)
        if m:
            return _as_score(m.group(1), reply), reply.strip()
    raise JudgeParseError(f"no 0-5 score in the judge's reply (expected JSON with a \"score\" field): "
                          f"{shorten(reply)!r}")


def cache_key(cfg: LLMConfig, problem: Problem, response: str) -> str:
    """The verdict's cache key: a hash of model, base_url, prompt version, problem and response."""
    require_server(cfg)
    parts = [cfg.model, cfg.base_url.rstrip("/"), PROMPT_VERSION, problem.id, problem.question, problem.answer,
             response]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


# ----- cache -----

def default_cache_path() -> Path:
    """$UNLEARN_HOME/judge/cache.jsonl (see runs.home)."""
    from unlearnability.store.runs import home

    return home() / "judge" / "cache.jsonl"


class JudgeCache:
    """Verdicts by cache key, backed by an append-only JSONL file (one verdict a line)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            drop_partial_tail(self.path)
            with self.path.open() as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # tolerated: a damaged line is a verdict to redo
                    if isinstance(rec, dict) and "key" in rec:
                        self.records[rec["key"]] = rec

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path)!r}, {len(self.records)} verdicts)"

    def get(self, key: str) -> JudgeReport | None:
        rec = self.records.get(key)
        if rec is None:
            return None
        return JudgeReport(int(rec["score"]), rec["rationale"], rec["model"], rec["prompt_version"], cached=True)

    def put(self, key: str, report: JudgeReport, cfg: LLMConfig, problem_id: str) -> None:
        """Append one verdict and flush it to disk."""
        rec = {"key": key, "score": report.score, "rationale": redact(report.rationale, patterns=False),
               "model": report.model, "base_url": redact(cfg.base_url), "prompt_version": report.prompt_version,
               "prompt_id": problem_id}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
        self.records[key] = rec


def _open_cache(cache: JudgeCache | str | Path | bool | None) -> JudgeCache | None:
    """None -> the default cache file; False -> no cache; a path -> that file."""
    if cache is False:
        return None
    if isinstance(cache, JudgeCache):
        return cache
    return JudgeCache(default_cache_path() if cache is None or cache is True else cache)


# ----- judging -----

def _report(cfg: LLMConfig, reply: str) -> JudgeReport:
    score, rationale = parse_judge_reply(reply)
    return JudgeReport(score, rationale, cfg.model)


def judge_response(cfg: LLMConfig, problem: Problem, response: str,
                   cache: JudgeCache | str | Path | bool | None = None, client: Any = None) -> JudgeReport:
    """The judge's 0-5 verdict on one response (from the cache when there). cache: a
    JudgeCache or file (default `default_cache_path()`), or False for none. Raises
    LLMError (request failed) or JudgeParseError (no score in the reply)."""
    store = _open_cache(cache)
    key = cache_key(cfg, problem, response)
    hit = store.get(key) if store else None
    if hit is not None:
        return hit
    report = _report(cfg, chat(cfg, judge_messages(problem, response), client=client))
    if store:
        store.put(key, report, cfg, problem.id)
    return report


def judge_table(cfg: LLMConfig, problems_by_id: dict[str, Problem], samples: pd.DataFrame,
                cache: JudgeCache | str | Path | bool | None = None, errors: str = "raise",
                progress: bool = True) -> pd.DataFrame:
    """Verdicts on every row of `samples` (columns prompt_id, sample, response): a DataFrame
    with prompt_id, sample, score (0-5), rationale, in the rows' order. Identical (problem,
    response) pairs are judged once; `cfg.concurrency` requests run at a time; each verdict
    is cached as it arrives. errors="raise": after all other rows are judged and cached,
    raise one error naming the failed rows; "skip": leave their score <NA> and put the
    error in `rationale`. Judge only the correct rollouts, as the paper did."""
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    missing = [c for c in ("prompt_id", "sample", "response") if c not in samples.columns]
    if missing:
        raise ValueError(f"samples table lacks column(s) {missing}; has {list(samples.columns)}")
    store = _open_cache(cache)
    rows = samples[["prompt_id", "sample", "response"]].reset_index(drop=True)
    keys: list[str] = []
    todo: dict[str, tuple[Problem, str]] = {}
    verdicts: dict[str, JudgeReport | Exception] = {}
    for i, (pid, resp) in enumerate(zip(rows["prompt_id"], rows["response"])):
        problem = problems_by_id.get(str(pid))
        if problem is None:
            raise ValueError(f"samples row {i}: prompt_id {pid!r} is not among the {len(problems_by_id)} "
                             "problems given")
        if not isinstance(resp, str):
            raise ValueError(f"samples row {i} (prompt_id {pid!r}): response is {type(resp).__name__}, not text")
        key = cache_key(cfg, problem, resp)
        keys.append(key)
        hit = store.get(key) if store else None
        if hit is not None:
            verdicts[key] = hit
        elif key not in todo:
            todo[key] = (problem, resp)
    _judge_pending(cfg, todo, verdicts, store, progress, total=len(set(keys)))
    return _verdict_frame(rows, keys, verdicts, errors)


def _judge_pending(cfg: LLMConfig, todo: dict[str, tuple[Problem, str]], verdicts: dict, store: JudgeCache | None,
                   progress: bool, total: int) -> None:
    """Ask the judge about every pending (problem, response), filling `verdicts` (a report
    or the exception) and the cache as replies arrive."""
    from tqdm.auto import tqdm

    if not todo:
        return
    order = list(todo)
    bar = tqdm(total=total, initial=total - len(order), desc=f"judge {cfg.model}", unit="resp",
               disable=not progress, mininterval=1)
    try:
        client = make_client(cfg)
        conversations = [judge_messages(*todo[k]) for k in order]
        for i, reply in chat_many(cfg, conversations, client=client):
            key = order[i]
            try:
                if isinstance(reply, Exception):
                    raise reply
                verdicts[key] = _report(cfg, reply)
                if store:
                    store.put(key, verdicts[key], cfg, todo[key][0].id)
            except (LLMError, JudgeParseError) as e:
                verdicts[key] = e
            bar.update(1)
    finally:
        bar.close()


def _verdict_frame(rows: pd.DataFrame, keys: list[str], verdicts: dict, errors: str) -> pd.DataFrame:
    """The output table; raises one error for the failed rows when errors == "raise"."""
    failed = [(i, verdicts[k]) for i, k in enumerate(keys) if isinstance(verdicts[k], Exception)]
    if failed and errors == "raise":
        i, first = failed[0]
        ids = sorted({str(rows.at[j, "prompt_id"]) for j, _ in failed})
        raise LLMError(f"{len(failed)} of {len(rows)} judge verdicts failed (prompt_ids {', '.join(ids[:10])}"
                       f"{' ...' if len(ids) > 10 else ''}); the others are cached, rerun to retry. First failure "
                       f"(samples row {i}): {first}")
    out = rows[["prompt_id", "sample"]].copy()
    out["score"] = pd.array([None if isinstance(verdicts[k], Exception) else verdicts[k].score for k in keys],
                            dtype="Int64")
    out["rationale"] = [f"ERROR: {verdicts[k]}" if isinstance(verdicts[k], Exception) else verdicts[k].rationale
                        for k in keys]
    return out


# ----- one interface for the step checker and the judge -----

class Scored(Protocol):
    score: int  # 0..5


class Scorer(Protocol):
    """Anything that scores a response to a problem 0-5: `checker_scorer()` (testbed,
    exact) or `judge_scorer(cfg)` (an LLM judge)."""

    def __call__(self, problem: Problem, response: str) -> Scored: ...


def checker_scorer() -> Scorer:
    """The testbed's exact step checker as a Scorer (a StepReport per response)."""
    from unlearnability.world import check_steps, graph_of

    def score(problem: Problem, response: str):
        return check_steps(graph_of(problem), response)

    return score


def judge_scorer(cfg: LLMConfig, cache: JudgeCache | str | Path | bool | None = None) -> Scorer:
    """The LLM judge as a Scorer (a JudgeReport per response), sharing one cache and client."""
    store = _open_cache(cache)
    state: dict[str, Any] = {}

    def score(problem: Problem, response: str) -> JudgeReport:
        if "client" not in state:
            state["client"] = make_client(cfg)
        return judge_response(cfg, problem, response, cache=store if store else False, client=state["client"])

    return score


def score_fn(scorer: Scorer) -> Callable[[Problem, str], int]:
    """A plain (problem, response) -> 0-5 score from any Scorer."""
    return lambda problem, response: int(scorer(problem, response).score)
