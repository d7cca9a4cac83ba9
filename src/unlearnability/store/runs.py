"""The run store: every expensive result lives in a folder named by the hash of its config.

    $UNLEARN_HOME/                       (default: runs/ in the project, git-ignored)
      base/<hash of world+model+pretrain>/    pretrained tiny model + tokenizer + log
      midtrain/<hash of ...+midtrain>/        mid-trained model (midtrain.py, paper §5.4)
      grpo/<hash of the config less sft, llm>/ one GRPO run (the seed is part of the config)
      eval/<hash>/...                         pass@k tables

A folder with a DONE file is complete and reused; one without is resumed from its last
checkpoint. Writes are atomic (temp file + rename) so a kill never leaves a half file.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

from unlearnability.config import Config

DONE = "DONE"


def home() -> Path:
    env = os.environ.get("UNLEARN_HOME")
    if env:
        return Path(env).expanduser()
    project = Path(__file__).resolve().parents[2]
    if (project / "pyproject.toml").exists():
        return project / "runs"
    return Path.cwd() / "runs"


def base_dir(cfg: Config) -> Path:
    """Folder of the pretrained base model this config starts from."""
    return home() / "base" / cfg.section_hash("world", "model", "pretrain")


def grpo_dir(cfg: Config) -> Path:
    """Folder of the GRPO run this config (seed included) describes."""
    return home() / "grpo" / cfg.section_hash()


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The steps of a run's saved checkpoints (`checkpoints/step_NNNN`), sorted."""
    return sorted(int(p.name.split("_")[1]) for p in (Path(run_dir) / "checkpoints").glob("step_*"))


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE).exists()


def mark_done(folder: Path) -> None:
    (Path(folder) / DONE).write_text("ok\n")


def write_config(folder: Path, cfg: Config) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


class CorruptRunError(RuntimeError):
    """A run folder's resume state or checkpoint cannot be read (a disk fault, a copy cut short)."""


def save_state(state: dict, path: Path) -> None:
    """`torch.save` of a resume state, atomically (a kill mid-write leaves the previous state)."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict:
    """`torch.load` of a resume state (`state.pt`, `train_state.pt`), with a named error when the
    file is damaged: the finished files beside it (logs, earlier checkpoints) stay untouched."""
    import torch

    try:
        state = torch.load(path, weights_only=False)
    except Exception as e:  # pickle, zip and EOF errors all mean the same thing here
        raise CorruptRunError(
            f"{path}: the resume state is damaged and cannot be read ({type(e).__name__}: {e}). Move this file "
            f"away to restart the run from its beginning; its finished checkpoints and logs are kept.") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CorruptRunError(f"{path}: not a resume state of this library (no 'step' entry)")
    return state


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the run stopped without saving the bad step."""


def check_finite(loss: float, where: str, step: int, last_good: str) -> None:
    """Stop a training loop at a NaN / inf loss, before that step is logged or checkpointed."""
    import math

    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"{where}: step {step}: the loss is {loss}; stopped before writing this step. "
            f"The last good checkpoint is {last_good}; rerunning resumes from it "
            f"(lower the learning rate, or turn autocast off, if it happens again).")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def atomic_to_csv(df, path: Path) -> None:
    """`df.to_csv(path, index=False)` written whole or not at all: to a temporary name, then
    renamed, so a reader (or a rerun after a kill) never finds a cut file under `path`. Gzip
    when `path` ends in .gz (the temporary name hides the extension from pandas)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, compression="gzip" if path.name.endswith(".gz") else None)
    tmp.replace(path)


def atomic_save_npy(array, path: Path) -> None:
    """`numpy.save(path, array)`, written whole or not at all (see `atomic_to_csv`)."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    tmp.replace(path)


def drop_partial_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write killed half-way), so appends stay clean."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with path.open("rb+") as f:
            f.truncate(data.rfind(b"\n") + 1)


@contextmanager
def locked(folder: Path, lock_name: str = ".lock"):
    """One writer per folder: an exclusive lock on `folder/.lock`, held while the block runs and
    released by the OS if the process dies. A second process asking for the same run waits,
    then finds it finished (DONE) or resumes it. `lock_name`: one lock per artifact of a folder
    that holds several (the evaluations of one checkpoint), so different ones run side by side."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / lock_name, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            what = folder if lock_name == ".lock" else folder / lock_name.strip(".").removesuffix(".lock")
            print(f"waiting for another process that is writing {what} ...", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
