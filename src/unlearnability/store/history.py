"""The per-example reward history every chapter reads, and its CSV format.

`prompt_rewards.csv`, one row per (step, drawn prompt):
    step         int    GRPO step (1-based) in which the prompt's group was generated
    prompt_id    str    stable Problem.id
    mean_reward  float  mean reward of the group's rollouts (before any downsampling)
    std_reward   float  population std of those rewards
    n            int    rollouts in the group
    processed    int    1 if the group entered the loss (dynamic sampling keeps only groups
                        with reward variance), else 0
    clip_frac    float  share of the group's response tokens whose ratio was clipped in the
                        loss (NaN when not processed, or unknown, e.g. ingested from verl)

`validation.csv`, one row per (step, validation prompt): step, prompt_id, mean_reward, n.
Step 0 is the initial policy.

Local GRPO runs and ingested verl runs write the same files, so every notebook reads either.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from unlearnability.store.runs import drop_partial_tail

HISTORY_FILE = "prompt_rewards.csv"
VALIDATION_FILE = "validation.csv"


@dataclass
class HistoryRow:
    step: int
    prompt_id: str
    mean_reward: float
    std_reward: float
    n: int
    processed: int
    clip_frac: float = math.nan


@dataclass
class ValidationRow:
    step: int
    prompt_id: str
    mean_reward: float
    n: int


HISTORY_COLUMNS = [f.name for f in fields(HistoryRow)]
VALIDATION_COLUMNS = [f.name for f in fields(ValidationRow)]


def group_stats(rewards: list[float]) -> tuple[float, float]:
    """Mean and population std of one group's rewards."""
    n = len(rewards)
    mean = sum(rewards) / n
    var = sum((r - mean) ** 2 for r in rewards) / n
    return mean, math.sqrt(var)


def append_rows(path: str | Path, rows: list, columns: list[str]) -> None:
    """Append dataclass rows to a CSV, writing the header when the file is new."""
    append_dicts(path, [asdict(r) for r in rows], columns)


def append_dicts(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Append dict rows to a CSV (columns: the first row's keys unless given); header when new.
    An existing file keeps its header's columns: keys it lacks are dropped, missing ones empty."""
    if not rows:
        return
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    if not new:  # keep the file's own columns (a run resumed by newer code may log more: dropped)
        with path.open(newline="") as f:
            columns = next(csv.reader(f))
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns or list(rows[0]), extrasaction="ignore", restval="")
        if new:
            w.writeheader()
        w.writerows(rows)


def restart_logs(paths, step: int) -> None:
    """A run resumed at `step`: drop each log's rows written after it (`truncate_after`); a fresh
    start (step 0, or a kill before the first checkpoint) drops the logs, so no stale rows stay."""
    for path in paths:
        if step == 0:
            Path(path).unlink(missing_ok=True)
        else:
            truncate_after(path, step)


def truncate_after(path: str | Path, step: int) -> None:
    """Drop rows of a CSV with a `step` column above `step` (resume: later rows are rewritten),
    and a partial last line left by a kill inside an append."""
    path = Path(path)
    if not path.exists():
        return
    drop_partial_tail(path)  # a kill inside an append left half a line
    if path.stat().st_size == 0:  # not even a whole header: the next append starts the file again
        path.unlink()
        return
    lines = path.read_bytes().splitlines(keepends=True)  # raw lines: kept rows stay byte-identical
    header = next(csv.reader([lines[0].decode()]))
    if "step" not in header:
        raise ValueError(f"{path}: no 'step' column to resume by; header is {header}")
    col = header.index("step")
    keep = [lines[0]] + [ln for ln in lines[1:] if float(next(csv.reader([ln.decode()]))[col]) <= step]
    if len(keep) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(keep))
        tmp.replace(path)


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """The run's per-example history as a DataFrame with HISTORY_COLUMNS."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-example history here (is {run_dir} a finished run folder?)")
    df = pd.read_csv(path, dtype={"prompt_id": str})
    missing = set(HISTORY_COLUMNS) - set(df.columns) - {"clip_frac"}
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    if "clip_frac" not in df.columns:
        df["clip_frac"] = math.nan
    return df[HISTORY_COLUMNS]


def read_validation(run_dir: str | Path) -> pd.DataFrame:
    path = Path(run_dir) / VALIDATION_FILE
    if not path.exists():
        return pd.DataFrame(columns=VALIDATION_COLUMNS)
    return pd.read_csv(path, dtype={"prompt_id": str})
