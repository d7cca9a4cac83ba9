"""What the book costs from a cold store: a ledger of the run-store artifacts each chapter uses.

Every artifact the library makes or reuses from the run store (a base or mid-trained model, a
GRPO or SFT run, a pass@k evaluation, an analysis) passes through `making(kind, path)`:

- made inside the block: the seconds it took, less those of artifacts made inside it (each is
  timed on its own), are saved beside it (`seconds_path`) with the thread count;
- when `$UNLEARN_LEDGER` names a file, one line is appended to it: kind, path, made now or
  reused, and its seconds (measured now, saved when it was made, or a legacy time).

`unlearn chapter` / `unlearn book` point `$UNLEARN_LEDGER` at `ledger_path(profile, chapter)` for
the chapter's kernel and add a `chapter` line: the execution's wall time less the artifacts made
during it (charts, statistics, uncached small work). `book_budget` reads the ledgers in the
book's order; a cold store pays for each artifact once, in the first chapter that uses it.
`benchmarks/book_budget.py` prints it.

Limits, stated with every budget: the times are what this machine measured when each artifact
was made, under whatever else ran beside it, at the thread count recorded. An artifact made
before this ledger existed has no saved time, except base and mid-trained models (their
`*_seconds.txt`) and GRPO runs (the step seconds of `train_log.csv`, so without validations);
the rest are counted as untimed. A run resumed after a kill saves the resumed part only. An
annealed base model is two artifacts, each timed on its own: the first phase (kind `base`) and the
final one (`anneal`); a chapter that uses the annealed model notes both.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from unlearnability.store import runs

ENV = "UNLEARN_LEDGER"
COLUMNS = ["kind", "path", "made", "seconds", "source", "threads"]
SECONDS_FILE = "made_seconds.txt"  # in a folder artifact; a file artifact gets NAME.seconds beside it
_nested: list[float] = []  # per open `making` block: seconds of the artifacts made inside it


def seconds_path(path: Path) -> Path:
    """Where the time it took to make `path` is saved."""
    path = Path(path)
    return path / SECONDS_FILE if path.is_dir() else path.with_name(path.name + ".seconds")


def saved_seconds(path: Path) -> tuple[float, int] | None:
    """(seconds, threads) saved when `path` was made, or None."""
    f = seconds_path(path)
    try:
        sec, threads = f.read_text().split()[:2]
        return float(sec), int(threads)
    except (OSError, ValueError):
        return None


def legacy_seconds(kind: str, path: Path) -> float | None:
    """The time an artifact made before the ledger recorded itself, where one exists."""
    path = Path(path)
    try:
        if kind == "base":
            return float((path / "pretrain_seconds.txt").read_text().split()[0])
        if kind == "anneal":
            return float((path / "anneal_seconds.txt").read_text().split()[0])
        if kind == "midtrain":
            return float((path / "midtrain_seconds.txt").read_text().split()[0])
        if kind == "grpo":
            return float(pd.read_csv(path / "train_log.csv")["seconds"].sum())
    except (OSError, ValueError, IndexError, KeyError, pd.errors.EmptyDataError):
        return None
    return None


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(runs.home().resolve()))
    except ValueError:
        return str(path)


def note(kind: str, path: Path | str, made: bool, seconds: float | None, source: str, threads: int | None,
         target: Path | None = None) -> None:
    """Append one line to `target` or else `$UNLEARN_LEDGER`, if set (one write: lines never
    interleave). path: an artifact (written relative to the run store) or a plain name."""
    target = target or os.environ.get(ENV)
    if not target:
        return
    row = [kind, _relative(path) if isinstance(path, Path) else path, str(int(made)), "" if seconds is None else f"{seconds:.1f}", source,
           "" if threads is None else str(threads)]
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as f:
        f.write("\t".join(row) + "\n")


@contextmanager
def making(kind: str, path: Path, done: Callable[[], bool] | None = None):
    """Wrap the code that returns (and, if missing, makes) the artifact `path`.

    done: whether the artifact is complete (default: a folder's DONE file, or the file exists).
    """
    path = Path(path)
    done = done or (lambda: runs.is_done(path) if path.is_dir() else path.exists())
    before = done()
    start = time.perf_counter()
    _nested.append(0.0)
    try:
        yield
    finally:
        inner = _nested.pop()
        took = time.perf_counter() - start
        if _nested:
            _nested[-1] += took
    if before:
        saved = saved_seconds(path)
        if saved:
            note(kind, path, False, saved[0], "saved", saved[1])
        else:
            note(kind, path, False, legacy_seconds(kind, path), "legacy", None)
    elif done():
        own, threads = took - inner, _threads()
        try:
            runs.atomic_write_text(seconds_path(path), f"{own:.1f} {threads}\n")
        except OSError:
            pass  # a read-only store: the ledger line still has it
        note(kind, path, True, own, "measured", threads)


# ----------------------------------------------------------------------------- per chapter


def ledger_path(profile: str, chapter: str, params: dict | None = None, store: Path | None = None) -> Path:
    """<store>/ledger/<profile>/<chapter>.tsv, the store being runs.home() unless given (a chapter
    executed with parameters gets a name with their hash, so the default execution's ledger stays
    the book's)."""
    name = chapter
    if params:
        import hashlib
        import json

        name += "-" + hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return (Path(store) if store else runs.home()) / "ledger" / profile / f"{name}.tsv"


def read(path: Path) -> pd.DataFrame:
    """A ledger's lines (COLUMNS); empty if the file is missing."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(path, sep="\t", names=COLUMNS, dtype={"path": str, "source": str}, keep_default_na=False,
                       na_values={"seconds": [""], "threads": [""]})


def artifacts(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per artifact of ledger `lines` (chapter lines left out), in first-use order: path,
    kind, and the seconds, source and threads of its last line with a time (NaN seconds and
    source "untimed" when none has one)."""
    arts = lines[lines.kind != "chapter"]
    timed = arts.dropna(subset=["seconds"]).drop_duplicates("path", keep="last")
    out = arts.drop_duplicates("path")[["path", "kind"]].merge(
        timed[["path", "seconds", "source", "threads"]], on="path", how="left")
    return out.assign(source=out.source.fillna("untimed"))


def close_chapter(path: Path, chapter: str, wall: float) -> None:
    """Add the chapter's own line: `wall` seconds less the artifacts it made (the cells' own work)."""
    made = read(path)
    made = made[made.made.astype(int) == 1]
    own = max(0.0, wall - float(made.seconds.sum()))
    note("chapter", chapter, True, own, "measured", _threads(), target=Path(path))


@contextmanager
def recording(profile: str, chapter: str, params: dict | None = None):
    """Point `$UNLEARN_LEDGER` at the chapter's ledger (emptied first) while the block executes it,
    then restore it; on success, add the chapter's own line. Yields the ledger's path, or None
    (and records nothing) when the run store cannot be written."""
    path = ledger_path(profile, chapter, params)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    except OSError as err:  # a read-only run store: execute without a ledger
        print(f"[book] no cost ledger ({err})", file=sys.stderr, flush=True)
        yield None
        return
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    start = time.perf_counter()
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
    close_chapter(path, chapter, time.perf_counter() - start)


def chapter_cost(path: Path | None = None) -> tuple[float, int, int] | None:
    """What the artifacts in one ledger (default: the running chapter's, `$UNLEARN_LEDGER`) cost
    to make: (seconds of the timed ones, how many, how many untimed); None without a ledger."""
    target = path or os.environ.get(ENV)
    if not target:
        return None
    sec = artifacts(read(Path(target))).seconds
    return float(sec.sum()), int(sec.notna().sum()), int(sec.isna().sum())


# ----------------------------------------------------------------------------- the book


@dataclass
class Budget:
    chapters: pd.DataFrame  # per chapter: artifacts, new (first used there), seconds, untimed, executed
    kinds: pd.DataFrame  # per kind of artifact: count, seconds, untimed
    artifacts: pd.DataFrame  # one row per artifact: chapter (first use), kind, path, seconds, source, threads

    @property
    def seconds(self) -> float:
        return float(self.chapters.seconds.sum())

    @property
    def untimed(self) -> int:
        return int(self.chapters.untimed.sum())


def book_budget(profile: str, chapters: list[str], store: Path | None = None) -> Budget:
    """The cold-store cost of executing `chapters` in this order, from their ledgers: each
    artifact is paid once, by the first chapter that uses it, at its recorded seconds."""
    paid, rows = [], []
    seen: set[str] = set()
    for ch in chapters:
        f = ledger_path(profile, ch, store=store)
        lines = read(f)
        used = artifacts(lines)
        new = used[~used.path.isin(seen)].assign(chapter=ch)
        seen.update(new.path)
        paid.append(new)
        own = lines.loc[lines.kind == "chapter", "seconds"]
        own_sec = float(own.iloc[-1]) if len(own) else float("nan")
        sec = float(new.seconds.sum())
        rows.append({"chapter": ch, "executed": f.exists(), "artifacts": len(used), "new": len(new),
                     "artifact_seconds": sec, "chapter_seconds": own_sec,
                     "seconds": sec + (own_sec if own_sec == own_sec else 0.0),
                     "untimed": int(new.seconds.isna().sum())})
    art = pd.concat(paid, ignore_index=True)[["chapter", "kind", "path", "seconds", "source", "threads"]]
    kinds = art.groupby("kind").agg(count=("path", "size"), seconds=("seconds", "sum"),
                                    untimed=("seconds", lambda s: int(s.isna().sum())))
    return Budget(pd.DataFrame(rows), kinds, art)
