"""Analysis results cached in the run store: one CSV (or folder) per analysis key.

    analysis_path(kind, key)        runs.home()/analysis/<kind>-<12 hex of key>
    cached_table(kind, key, fn)     fn() computed once per key, timed in the ledger
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearnability.store import ledger, runs


def analysis_path(kind: str, key: dict, suffix: str = "") -> Path:
    """runs.home()/analysis/<kind>-<12 hex of the JSON of `key`><suffix>: an analysis's cache name."""
    import hashlib
    import json

    blob = json.dumps(key, sort_keys=True, default=str)
    return runs.home() / "analysis" / f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}{suffix}"


def cached_table(kind: str, key: dict, compute) -> pd.DataFrame:
    """`compute()` once per `key` (a JSON-able dict), as a CSV under the run store's analysis/
    (`compute` sets its own torch threads: `policy.model.set_threads`)."""
    path = analysis_path(kind, key, ".csv")
    with ledger.making(kind, path):
        if not path.exists():
            df = compute()
            path.parent.mkdir(parents=True, exist_ok=True)
            runs.atomic_write_text(path, df.to_csv(index=False))
    return pd.read_csv(path, dtype={"prompt_id": str})
