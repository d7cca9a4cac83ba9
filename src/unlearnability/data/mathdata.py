"""MATH, MATH-500 and DeepScaleR as `Problem` records, and the paper's two prompt templates.

Every loader takes either a hub id (read with `datasets.load_dataset`) or a local .jsonl /
.parquet path, and returns the same records either way:

    Problem(id, question, answer, meta={"level": int | None, "subject": str | None,
                                        "solution": str | None, "source": str})

Field names are mapped from the common layouts: question from `problem` / `question`;
answer from `answer` / `expected_answer`, else the last `\\boxed{}` of `solution` (which is
how MATH-500's `answer` was made: the two agree on all 500 problems); level from `level`
("Level 3" or 3); subject from `subject` / `type`; id from `unique_id` / `id`, else
"<split>/<row>" (row = position in the file or hub split, so stable for a given version).

`load_problems(data_cfg, split)` applies a `DataConfig`: source "math" (training data from
`train`, kept by `levels`; validation from `valid`, e.g. MATH-500) or "deepscaler" (one
set, split 90/10 into train / valid by a permutation seeded with `split_seed`).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from unlearnability.config import DataConfig
from unlearnability.data.reward import last_boxed
from unlearnability.world.problems import Problem, check_unique_ids

# The paper's level ranges (book/protocol.md): Qwen2.5-0.5B trains on 1-4, Llama-3.2-3B on 3-5.
LEVELS = {"easy": [1, 2, 3, 4], "hard": [3, 4, 5]}

TEMPLATES = {
    # SimpleRL "qwen-boxed": Qwen chat format (the Qwen models of the paper)
    "qwen-boxed": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n{question}\nPlease reason step by step, and put your final answer "
        "within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
    ),
    # the base-model ("abel" / "llama") template (Llama-3.2-3B-Instruct in the paper)
    "question-answer": "Question:\n{question}\nAnswer:\nLet's think step by step.\n",
}

VALID_FRACTION = 0.1  # DeepScaleR: 90 / 10 train / validation


def apply_template(template_name: str, question: str) -> str:
    """The prompt text for `question` (the tokenizer adds BOS, if the model has one)."""
    if template_name not in TEMPLATES:
        hint = " (the testbed's prompts are made by unlearnability.world)" if template_name == "testbed" else ""
        raise ValueError(f"unknown prompt template {template_name!r}{hint}; "
                         f"choose one of: {', '.join(TEMPLATES)}")
    # str.replace, not str.format: the template itself contains "\boxed{}"
    return TEMPLATES[template_name].replace("{question}", question)


def _parse_level(value: Any) -> int | None:
    """3, "3" or "Level 3" -> 3; "Level ?" / None -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = re.search(r"\d+", str(value))
    return int(m.group()) if m else None


def record_to_problem(d: dict[str, Any], row: int, split: str, source: str, where: str) -> Problem:
    """One raw record (any of the layouts in the module docstring) as a Problem."""
    if "question" in d and "meta" in d and "id" in d:  # already our own Problem jsonl
        return Problem.from_dict(d, where=where)
    question = d.get("problem", d.get("question"))
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: no question text (expected a 'problem' or 'question' field); "
                         f"got keys {sorted(d)}")
    solution = d.get("solution")
    answer = d.get("answer", d.get("expected_answer"))
    if answer is None and isinstance(solution, str):
        answer = last_boxed(solution)
    if answer is None or str(answer).strip() == "":
        raise ValueError(f"{where}: no answer (no 'answer' field and no \\boxed{{}} in 'solution')")
    pid = d.get("unique_id", d.get("id"))
    pid = str(pid) if pid is not None else f"{split}/{row}"
    meta = {"level": _parse_level(d.get("level")), "subject": d.get("subject", d.get("type")),
            "solution": solution if isinstance(solution, str) else None, "source": source}
    return Problem(id=pid, question=question, answer=str(answer).strip(), meta=meta)


def _read_records(source: str, hub_split: str) -> tuple[list[dict[str, Any]], str]:
    """Raw records from a local .jsonl / .parquet file, or from a data set's split through
    `datasets` (a hub id, or a local folder `datasets.load_dataset` reads)."""
    path = Path(source).expanduser()
    if path.suffix in (".jsonl", ".parquet"):
        if not path.exists():
            raise FileNotFoundError(f"{path}: data file not found")
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq
            return pq.read_table(path).to_pylist(), str(path)
        rows = []
        with path.open() as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        return rows, str(path)
    if path.is_file():
        raise ValueError(f"{path}: expected a .jsonl or .parquet file (or a hub id)")
    import datasets  # hub id: needs the network, or a warm `datasets` cache
    try:
        ds = datasets.load_dataset(source, split=hub_split)
    except Exception as e:
        raise RuntimeError(f"could not load data set {source!r} (split {hub_split!r}) with datasets: {e}. "
                           "Pass a local .jsonl / .parquet path instead when offline.") from e
    return [dict(r) for r in ds], f"{source}[{hub_split}]"


def load_math_file(source: str, split: str = "train", levels: list[int] | None = None,
                   hub_split: str | None = None, name: str = "math") -> list[Problem]:
    """Problems from a hub id or local file; `levels` keeps only those MATH levels.

    split: the id prefix for records without an id ("train" / "test"); hub_split: the
    `datasets` split to read (default: `split`). name: recorded as meta["source"].
    """
    rows, where = _read_records(source, hub_split or split)
    if not rows:
        raise ValueError(f"{where}: no problems in it (the file is empty)")
    problems = [record_to_problem(r, i, split, name, f"{where} row {i + 1}") for i, r in enumerate(rows)]
    if levels is not None:
        keep = set(levels)
        problems = [p for p in problems if p.meta.get("level") in keep]
    check_unique_ids(problems, where)
    return problems


def load_math500(source: str) -> list[Problem]:
    """MATH-500 (the paper's validation set): `HuggingFaceH4/MATH-500` or data/math500/test.jsonl."""
    return load_math_file(source, split="test", name="math500")


def split_train_valid(problems: list[Problem], seed: int,
                      valid_fraction: float = VALID_FRACTION) -> tuple[list[Problem], list[Problem]]:
    """Seeded 90 / 10 split (DeepScaleR): a permutation of the rows; order kept within each part."""
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    n_valid = round(len(problems) * valid_fraction)
    valid_rows = set(order[:n_valid])
    train = [p for i, p in enumerate(problems) if i not in valid_rows]
    valid = [p for i, p in enumerate(problems) if i in valid_rows]
    return train, valid


def load_deepscaler(source: str, seed: int) -> tuple[list[Problem], list[Problem]]:
    """DeepScaleR (`agentica-org/DeepScaleR-Preview-Dataset` or a local file), split 90 / 10."""
    return split_train_valid(load_math_file(source, split="train", name="deepscaler"), seed)


def load_problems(data_cfg: DataConfig, split: str) -> list[Problem]:
    """The training ("train") or validation ("valid") problems a DataConfig names."""
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    if data_cfg.source == "testbed":
        raise ValueError("data.source 'testbed': the testbed's problems come from unlearnability.world, "
                         "not from mathdata (which reads MATH / MATH-500 / DeepScaleR)")
    if data_cfg.source == "math":
        if split == "train":
            if not data_cfg.train:
                raise ValueError("data.train: set a hub id or a .jsonl / .parquet path for MATH training data")
            problems = load_math_file(data_cfg.train, "train", data_cfg.levels)
        else:
            if not data_cfg.valid:
                raise ValueError("data.valid: set a hub id or path for the validation set (e.g. MATH-500)")
            problems = load_math500(data_cfg.valid)
    elif data_cfg.source == "deepscaler":
        if not data_cfg.train:
            raise ValueError("data.train: set the DeepScaleR hub id or a local .jsonl / .parquet path")
        if data_cfg.valid:
            raise ValueError("data.valid: DeepScaleR's validation set is its seeded 10% split "
                             "(data.split_seed); leave data.valid empty")
        if data_cfg.levels is not None:
            raise ValueError("data.levels: DeepScaleR has no MATH levels; leave it empty")
        train, valid = load_deepscaler(data_cfg.train, data_cfg.split_seed)
        problems = train if split == "train" else valid
    else:
        raise ValueError(f"data.source {data_cfg.source!r}: expected testbed, math or deepscaler")
    if split == "train" and data_cfg.limit is not None:
        problems = problems[:data_cfg.limit]
    if not problems:
        raise ValueError(f"data ({data_cfg.source}, {split}): no problems left "
                         f"(levels={data_cfg.levels}, limit={data_cfg.limit})")
    return problems
