"""The Problem record every data source produces, and its jsonl / parquet / `datasets` I/O.

A problem is a question with a verifiable answer. `id` is stable across runs and is the key
of every per-example table in the book (`prompt_id` in the GRPO history).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


@dataclass(frozen=True)
class Problem:
    id: str  # stable, unique within a data set
    question: str  # the question text, before any prompt template
    answer: str  # gold answer (testbed: a number; MATH: LaTeX)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # meta: testbed -> tier, n_ops, depth, distractors, skills, coverage, ...;
    #       MATH -> level, subject, solution

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "record") -> "Problem":
        missing = [k for k in ("id", "question", "answer") if k not in d]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}; got keys {sorted(d)}")
        return cls(id=str(d["id"]), question=str(d["question"]), answer=str(d["answer"]),
                   meta=dict(d.get("meta") or {}))


def write_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for p in problems:
            f.write(json.dumps(p.to_dict(), sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def iter_jsonl(path: str | Path):
    """(line number, parsed object) for each non-blank line; bad JSON is an error naming file:line."""
    path = Path(path)
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None


def read_jsonl(path: str | Path) -> list[Problem]:
    out = [Problem.from_dict(d, where=f"{path}:{i}") for i, d in iter_jsonl(path)]
    check_unique_ids(out, str(path))
    return out


def check_unique_ids(problems: list[Problem], where: str) -> None:
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.id in seen:
            raise ValueError(f"{where}: duplicate problem id {p.id!r} (rows {seen[p.id] + 1} and {i + 1})")
        seen[p.id] = i
