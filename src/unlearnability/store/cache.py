"""Analysis results cached in the run store: one CSV (or folder) per analysis key.

    analysis_path(kind, key)        runs.home()/analysis/<kind>-<12 hex of key>
    cached_table(kind, key, fn)     fn() computed once per key, timed in the ledger

A key names its inputs; a run-store path in it (a checkpoint, a base model) is hashed relative to
the store (`store_relative`), so the cache name does not depend on where the store is reached
from (`runs/` through a symlink in another checkout, `$UNLEARN_HOME`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from unlearnability.store import ledger, runs


def store_relative(obj: Any, home: str | None = None) -> Any:
    """`obj` (a key: dicts, lists, strings, paths) with every absolute path inside the run store
    written as "<store>/<path relative to it>", symlinks resolved; everything else unchanged."""
    home = home or os.path.realpath(runs.home())
    if isinstance(obj, dict):
        return {k: store_relative(v, home) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [store_relative(v, home) for v in obj]
    if isinstance(obj, (str, Path)) and os.path.isabs(str(obj)):
        real = os.path.realpath(str(obj))
        if real == home or real.startswith(home + os.sep):
            return "<store>/" + os.path.relpath(real, home)
    return obj


def analysis_path(kind: str, key: dict, suffix: str = "") -> Path:
    """runs.home()/analysis/<kind>-<12 hex of the JSON of `key`><suffix>: an analysis's cache name
    (run-store paths in `key` taken relative to the store)."""
    import hashlib
    import json

    blob = json.dumps(store_relative(key), sort_keys=True, default=str)
    return runs.home() / "analysis" / f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}{suffix}"


def cached_table(kind: str, key: dict, compute) -> pd.DataFrame:
    """`compute()` once per `key` (a JSON-able dict), as a CSV under the run store's analysis/
    (`compute` sets its own torch threads: `policy.model.set_threads`)."""
    path = analysis_path(kind, key, ".csv")
    with runs.locked(path.parent, f".{path.name}.lock"), ledger.making(kind, path):  # one writer per key
        if not path.exists():
            runs.atomic_to_csv(compute(), path)
    return pd.read_csv(path, dtype={"prompt_id": str})
