"""LLM data augmentation for real math problems (paper §5.3, Appendix C; `unlearn augment`).

What the paper did: for each unlearnable example (and 100 random learnable ones) it asked
GPT-5 for (1) 5 similar problems "that can be solved with the same strategy" and (2) a
decomposition into subproblems "such that solving the subproblems would readily give the
answer of the original problem", each with an answer and a step-by-step solution; the
answers were cross-validated by Gemini-2.5-pro, and (book/protocol.md) kept only when
math-verify finds the two equivalent.

What this module does, against any OpenAI-compatible server (`backends.llm`):

    augment_file(problems.jsonl, out_dir, gen_cfg, check_cfg) -> AugmentSummary
      out_dir/augmented.jsonl   kept problems: id, question, answer, solution, kind
                                (similar | subproblem), source_id, generator_model,
                                checker_model, checker_answer  (`datasets.load_dataset("json")`
                                reads it; so do `mathdata.load_math_file` and `problems.read_jsonl`)
      out_dir/rejections.jsonl  every rejected candidate with its reason
      out_dir/sources.jsonl     one line per finished source problem (the resume marker)
      out_dir/report.json       counts: kept per kind, rejected per reason, sources

Per source: two generation requests (similar, subproblems; JSON requested), then one
request per candidate asking the checker model to solve it independently
(`SOLVE_PROMPT`, the paper's boxed-answer instruction); math-verify
(`reward.math_reward_detail`, the checker's reply against the generator's answer) decides.
`concurrency` sources are in flight at once; each source's results are appended (and
flushed) only when all of its requests are done, its line in sources.jsonl last. A rerun
skips finished sources, drops the lines of a source that was killed half-way, and cuts a
half-written last line. A request that fails after its retries leaves the source
unfinished (retried on the next run); the run goes on with the other sources.

Simplifications: the paper's prompts (Appendix C.1) did not survive in our copy of the
paper, so `SIMILAR_PROMPT` / `SUBPROBLEM_PROMPT` are ours, written from its description;
the checker defaults to the generator model (a self-consistency check, weaker than the
paper's second model: pass `check_model`); the checker sees only the question (not the
generator's solution); the generator's solution is not checked against its own answer; at
most `n_similar` similar problems and `MAX_SUBPROBLEMS` subproblems are kept from a reply
(extras dropped, fewer accepted); duplicates are caught only as identical text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearnability.backends.llm import (
    LLMError,
    chat,
    describe,
    make_client,
    parse_json_reply,
    redact,
    require_server,
    shorten,
)
from unlearnability.config import LLMConfig
from unlearnability.store.runs import drop_partial_tail
from unlearnability.world.problems import Problem

_PROBLEM_BLOCK = """\
Here is a math problem and its answer.

Problem:
{question}

Answer: {answer}
{solution_block}
"""

SIMILAR_PROMPT = _PROBLEM_BLOCK + """\
Write {n} new math problems that can be solved with the same strategy as this one. Each new \
problem must be self-contained, have a single final answer, and differ from the original \
(for example in its numbers, objects or wording). For each new problem give a step-by-step \
solution and its final answer.

Reply with one JSON object and nothing else, in this form:
{"problems": [{"question": "...", "solution": "step-by-step solution", \
"answer": "final answer only, in LaTeX without $ signs"}]}
Escape every backslash inside JSON strings (write \\\\frac, not \\frac)."""

SUBPROBLEM_PROMPT = _PROBLEM_BLOCK + """\
Decompose this problem into subproblems such that solving the subproblems, in order, would \
readily give the answer of the original problem. Write each subproblem as a self-contained \
problem (restate every quantity it needs; never refer to another subproblem) with a single \
final answer. Use from 2 to {max_sub} subproblems. For each subproblem give a step-by-step \
solution and its final answer.

Reply with one JSON object and nothing else, in this form:
{"subproblems": [{"question": "...", "solution": "step-by-step solution", \
"answer": "final answer only, in LaTeX without $ signs"}]}
Escape every backslash inside JSON strings (write \\\\frac, not \\frac)."""

SOLVE_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."

MAX_SUBPROBLEMS = 5
KINDS = {"similar": "problems", "subproblem": "subproblems"}  # kind -> the reply's JSON list key
OUT_FILE, REJECT_FILE, SOURCES_FILE, REPORT_FILE = "augmented.jsonl", "rejections.jsonl", "sources.jsonl", "report.json"

# math-verify's reason (reward.REASONS) for the checker's reply vs the generator's answer -> rejection reason
CHECK_REJECTIONS = {
    "wrong": "checker_disagrees",
    "no_answer": "checker_no_answer",
    "pred_unparsable": "checker_answer_unparsable",
    "gold_unparsable": "answer_unparsable",
    "timeout": "verify_timeout",
    "error": "verify_error",
}
REJECTION_REASONS = {
    "bad_json": "the generator's reply had no JSON object with the expected list",
    "malformed_item": "an item without a question or an answer",
    "duplicate": "the same question as the source or an earlier candidate",
    "checker_disagrees": "the checker model's answer is not equivalent to the generator's (math-verify)",
    "checker_no_answer": "the checker model's reply has no final answer",
    "checker_answer_unparsable": "math-verify could not parse the checker's answer",
    "answer_unparsable": "math-verify could not parse the generator's answer",
    "verify_timeout": "math-verify timed out",
    "verify_error": "math-verify raised an error",
}


@dataclass(frozen=True)
class Candidate:
    """One generated problem before the check."""

    source_id: str
    kind: str  # similar | subproblem
    index: int  # its position in the generator's list
    question: str
    answer: str
    solution: str

    @property
    def id(self) -> str:
        return f"{self.source_id}-{'sim' if self.kind == 'similar' else 'sub'}{self.index}"


@dataclass
class SourceResult:
    """What the requests for one source gave: candidates with the checker's reply, and the
    rejections found before any check (or `error` when a request failed)."""

    source_id: str
    checked: list[tuple[Candidate, str]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class AugmentSummary:
    """One run of `augment_problems` (counts cover the whole output folder)."""

    out: Path  # augmented.jsonl
    report: dict[str, Any]
    skipped: int  # sources already finished before this run
    failed: dict[str, str]  # source id -> error, for sources left unfinished by this run


# ----- prompts and parsing (pure) -----

def _fill(template: str, **values: Any) -> str:
    """Each {name} of the template replaced in one pass (the templates contain JSON braces,
    so no str.format; a value that itself contains "{answer}" is left alone)."""
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
    return pattern.sub(lambda m: str(values[m.group(1)]), template)


def _solution_block(problem: Problem) -> str:
    sol = problem.meta.get("solution")
    return f"\nReference solution:\n{sol}\n" if isinstance(sol, str) and sol.strip() else ""


def generation_messages(problem: Problem, kind: str, n_similar: int = 5) -> list[dict[str, str]]:
    """The request for `kind` (similar | subproblem) candidates of `problem`."""
    template = SIMILAR_PROMPT if kind == "similar" else SUBPROBLEM_PROMPT
    text = _fill(template, question=problem.question, answer=problem.answer, solution_block=_solution_block(problem),
                 n=n_similar, max_sub=MAX_SUBPROBLEMS)
    return [{"role": "user", "content": text}]


def solve_messages(question: str) -> list[dict[str, str]]:
    """The checker's request: solve `question` on its own, answer in \\boxed{}."""
    return [{"role": "user", "content": _fill(SOLVE_PROMPT, question=question)}]


def clean_answer(answer: Any) -> str:
    """A generated answer as bare LaTeX: the inside of a \\boxed{}, without $ signs."""
    from unlearnability.data.reward import last_boxed

    s = str(answer).strip()
    boxed = last_boxed(s)
    if boxed:
        s = boxed
    s = s.strip().strip("$").strip()
    return s


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def parse_candidates(reply: str, kind: str, source: Problem, limit: int,
                     seen: set[str] | None = None) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Candidates from a generator reply (at most `limit`), and rejection records for the
    reply (bad_json) or its items (malformed_item, duplicate). `seen` (normalised questions,
    updated) catches duplicates across both kinds."""
    seen = seen if seen is not None else {_norm(source.question)}
    key = KINDS[kind]
    try:
        obj = parse_json_reply(reply)
    except ValueError:
        obj = None
    items = obj.get(key) if isinstance(obj, dict) else obj if isinstance(obj, list) else None
    if not isinstance(items, list):
        return [], [rejection(source.id, kind, -1, "bad_json", detail=f"expected {{\"{key}\": [...]}}; "
                              f"reply: {shorten(reply, 300)}")]
    out: list[Candidate] = []
    rejected: list[dict[str, Any]] = []
    for i, item in enumerate(items[:limit]):
        q = item.get("question", item.get("problem")) if isinstance(item, dict) else None
        a = item.get("answer") if isinstance(item, dict) else None
        if not isinstance(q, str) or not q.strip() or a is None or not clean_answer(a):
            rejected.append(rejection(source.id, kind, i, "malformed_item", detail=shorten(json.dumps(item), 300)))
            continue
        if _norm(q) in seen:
            rejected.append(rejection(source.id, kind, i, "duplicate", question=q, answer=clean_answer(a)))
            continue
        seen.add(_norm(q))
        sol = item.get("solution", "")
        sol = sol if isinstance(sol, str) else json.dumps(sol)
        out.append(Candidate(source.id, kind, i, q.strip(), clean_answer(a), sol))
    return out, rejected


def rejection(source_id: str, kind: str, index: int, reason: str, question: str = "", answer: str = "",
              checker_answer: str = "", detail: str = "") -> dict[str, Any]:
    """One line of rejections.jsonl (every field always present, same types)."""
    return {"source_id": source_id, "kind": kind, "index": index, "reason": reason, "question": question,
            "answer": answer, "checker_answer": checker_answer, "detail": detail}


def verdict(candidate: Candidate, checker_reply: str) -> tuple[str | None, str]:
    """(rejection reason or None when kept, the checker's extracted answer). Call from the
    main thread: math-verify's timeouts work only there."""
    from unlearnability.data.reward import math_reward_detail

    res = math_reward_detail(checker_reply, candidate.answer)
    return (None if res.reason == "correct" else CHECK_REJECTIONS.get(res.reason, res.reason)), res.extracted or ""


def kept_record(candidate: Candidate, checker_answer: str, generator_model: str, checker_model: str) -> dict[str, Any]:
    """One line of augmented.jsonl."""
    return {"id": candidate.id, "question": candidate.question, "answer": candidate.answer,
            "solution": candidate.solution, "kind": candidate.kind, "source_id": candidate.source_id,
            "generator_model": generator_model, "checker_model": checker_model, "checker_answer": checker_answer}


# ----- requests (run in worker threads) -----

def ask_source(problem: Problem, gen_cfg: LLMConfig, check_cfg: LLMConfig, n_similar: int, gen_client: Any,
               check_client: Any, json_mode: bool = False) -> SourceResult:
    """All requests for one source: generate both kinds, then have the checker solve each
    candidate. A failed request is `error` (nothing else kept: the source is redone later)."""
    result = SourceResult(problem.id)
    seen = {_norm(problem.question)}
    try:
        candidates: list[Candidate] = []
        for kind, limit in (("similar", n_similar), ("subproblem", MAX_SUBPROBLEMS)):
            reply = chat(gen_cfg, generation_messages(problem, kind, n_similar), client=gen_client, json_mode=json_mode)
            got, rejected = parse_candidates(reply, kind, problem, limit, seen)
            candidates += got
            result.rejected += rejected
        for c in candidates:
            result.checked.append((c, chat(check_cfg, solve_messages(c.question), client=check_client)))
    except LLMError as e:
        return SourceResult(problem.id, error=str(e))
    return result


# ----- files -----

def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (damaged lines skipped: they are redone)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()


def prepare_out_dir(out_dir: Path, generator_model: str, checker_model: str) -> set[str]:
    """Make `out_dir` ready to append to, and return the ids of its finished sources. Lines
    of unfinished sources (a kill between writes) and half-written last lines are dropped.
    A folder made with other models is an error."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (OUT_FILE, REJECT_FILE, SOURCES_FILE):
        drop_partial_tail(out_dir / name)
    sources = _read_lines(out_dir / SOURCES_FILE)
    for rec in sources:
        if (rec.get("generator_model"), rec.get("checker_model")) != (generator_model, checker_model):
            raise ValueError(f"{out_dir / SOURCES_FILE}: source {rec.get('source_id')!r} was augmented with generator "
                             f"{rec.get('generator_model')!r} / checker {rec.get('checker_model')!r}, not "
                             f"{generator_model!r} / {checker_model!r}; use another --out folder")
    done = {str(rec["source_id"]) for rec in sources if "source_id" in rec}
    for name in (OUT_FILE, REJECT_FILE):
        path = out_dir / name
        if not path.exists():
            continue
        lines = path.read_text().splitlines(keepends=True)
        keep = [ln for ln in lines if _source_of(ln) in done]
        if len(keep) != len(lines):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(keep))
            tmp.replace(path)
    return done


def _source_of(line: str) -> str | None:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(rec.get("source_id")) if isinstance(rec, dict) else None


def build_report(out_dir: Path, gen_cfg: LLMConfig, check_cfg: LLMConfig, n_input: int,
                 failed: dict[str, str]) -> dict[str, Any]:
    """report.json's content, counted from the folder's files (so it covers every run)."""
    kept = _read_lines(out_dir / OUT_FILE)
    rejected = _read_lines(out_dir / REJECT_FILE)
    return {
        "sources_in_input": n_input,
        "sources_done": len(_read_lines(out_dir / SOURCES_FILE)),
        "sources_failed_last_run": {k: redact(v) for k, v in failed.items()},
        "kept": dict(Counter(r["kind"] for r in kept)),
        "kept_total": len(kept),
        "rejected": dict(Counter(r["reason"] for r in rejected)),
        "rejected_total": len(rejected),
        "rejected_by_kind": dict(Counter(r["kind"] for r in rejected)),
        "reasons": REJECTION_REASONS,
        "generator": describe(gen_cfg),
        "checker": describe(check_cfg),
        "files": {"kept": OUT_FILE, "rejected": REJECT_FILE, "sources": SOURCES_FILE},
    }


# ----- the pipeline -----

def _scrub(rec: dict[str, Any]) -> dict[str, Any]:
    """A record with any API key removed from its text fields (model text: no pattern rules)."""
    return {k: redact(v, patterns=False) if isinstance(v, str) else v for k, v in rec.items()}


def _finish_source(out_dir: Path, res: SourceResult, gen_model: str, check_model: str) -> tuple[int, int]:
    """Check a source's candidates (main thread), append its kept / rejected lines and then
    its sources.jsonl marker. (kept, rejected) counts."""
    kept, rejected = [], list(res.rejected)
    for cand, reply in res.checked:
        reason, checker_answer = verdict(cand, reply)
        if reason is None:
            kept.append(kept_record(cand, checker_answer, gen_model, check_model))
        else:
            rejected.append(rejection(cand.source_id, cand.kind, cand.index, reason, cand.question, cand.answer,
                                      checker_answer, detail=shorten(reply, 300)))
    _append(out_dir / OUT_FILE, [_scrub(r) for r in kept])
    _append(out_dir / REJECT_FILE, [_scrub(r) for r in rejected])
    _append(out_dir / SOURCES_FILE, [{"source_id": res.source_id, "kept": len(kept), "rejected": len(rejected),
                                      "generator_model": gen_model, "checker_model": check_model}])
    return len(kept), len(rejected)


def augment_problems(problems: list[Problem], out_dir: str | Path, gen_cfg: LLMConfig,
                     check_cfg: LLMConfig | None = None, n_similar: int = 5, limit: int | None = None,
                     json_mode: bool = False, progress: bool = True) -> AugmentSummary:
    """Augment the first `limit` problems (all when None) into `out_dir` (see the module
    docstring); finished sources are skipped. check_cfg None: the generator checks itself."""
    from tqdm.auto import tqdm

    if n_similar < 1 or (limit is not None and limit < 0):
        raise ValueError(f"n_similar must be at least 1 and limit at least 0 (got {n_similar}, {limit})")
    check_cfg = check_cfg or gen_cfg
    require_server(gen_cfg)
    require_server(check_cfg)
    out_dir = Path(out_dir)
    chosen = problems[:limit] if limit is not None else problems
    done = prepare_out_dir(out_dir, gen_cfg.model, check_cfg.model)
    todo = [p for p in chosen if p.id not in done]
    failed: dict[str, str] = {}
    if todo:
        gen_client = make_client(gen_cfg)
        check_client = make_client(check_cfg) if check_cfg is not gen_cfg else gen_client
        bar = tqdm(total=len(chosen), initial=len(chosen) - len(todo), desc=f"augment {gen_cfg.model}",
                   unit="problem", disable=not progress, mininterval=1)
        counts = Counter()
        with ThreadPoolExecutor(max_workers=max(1, gen_cfg.concurrency)) as pool:
            futures = [pool.submit(ask_source, p, gen_cfg, check_cfg, n_similar, gen_client, check_client, json_mode)
                       for p in todo]
            try:
                for fut in as_completed(futures):
                    res = fut.result()
                    if res.error is not None:
                        failed[res.source_id] = res.error
                    else:
                        k, r = _finish_source(out_dir, res, gen_cfg.model, check_cfg.model)
                        counts.update(kept=k, rejected=r)
                    bar.update(1)
                    bar.set_postfix(kept=counts["kept"], rejected=counts["rejected"], failed=len(failed))
            finally:
                for fut in futures:
                    fut.cancel()
                bar.close()
    report = build_report(out_dir, gen_cfg, check_cfg, len(problems), failed)
    tmp = out_dir / (REPORT_FILE + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    tmp.replace(out_dir / REPORT_FILE)
    return AugmentSummary(out_dir / OUT_FILE, report, skipped=len(chosen) - len(todo), failed=failed)


def augment_file(problems_path: str | Path, out_dir: str | Path, gen_cfg: LLMConfig,
                 check_cfg: LLMConfig | None = None, **kw: Any) -> AugmentSummary:
    """`augment_problems` on a .jsonl / .parquet file (MATH layouts or Problem records;
    errors name the file and row)."""
    from unlearnability.data.mathdata import load_math_file

    path = Path(problems_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: problems file not found")
    problems = load_math_file(str(path), split="input", name=path.name)
    if not problems:
        raise ValueError(f"{path}: no problems in the file")
    return augment_problems(problems, out_dir, gen_cfg, check_cfg, **kw)
