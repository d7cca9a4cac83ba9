"""Two writers of one run-store artifact: the second waits for the first and reuses its result,
and no reader (or rerun after a kill) finds a half-written file. Found by a calibration trial
run as two processes on one store, where one read the other's half-written samples file."""

import threading
import time

import pandas as pd
import pytest

from unlearnability.config import load_config
from unlearnability.pipeline import experiment
from unlearnability.store import cache, runs


def _two_threads(fn):
    results, errors = [], []

    def call():
        try:
            results.append(fn())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_two_evaluations_of_one_checkpoint_at_once_make_it_once(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "store"))
    made = []

    def slow_evaluate_into(cfg, src, folder, out, name, whole, split, keep_text, sampler, limit, ids):
        if out.exists():  # as the real one: a finished evaluation is reused
            return out
        time.sleep(0.3)  # both callers are inside now, unless the second waits for the first
        made.append(name)
        folder.mkdir(parents=True, exist_ok=True)
        runs.atomic_to_csv(pd.DataFrame({"prompt_id": ["a"], "pass@1": [0.5]}), out)
        return out

    monkeypatch.setattr(experiment, "_evaluate_into", slow_evaluate_into)
    run = tmp_path / "run1"
    (run / "checkpoints" / "step_0006").mkdir(parents=True)
    runs.write_config(run, load_config("smoke", {"grpo": {"seed": 1}}))
    paths = _two_threads(lambda: experiment.evaluate_checkpoint(run, 6))
    assert len(made) == 1 and paths[0] == paths[1] and paths[0].exists()


def test_two_computations_of_one_cached_table_at_once_compute_it_once(store):
    calls = []

    def compute():
        time.sleep(0.3)
        calls.append(1)
        return pd.DataFrame({"prompt_id": ["007"], "x": [1.0]})

    tables = _two_threads(lambda: cache.cached_table("test-kind", {"k": 1}, compute))
    assert len(calls) == 1
    assert all(t.prompt_id.tolist() == ["007"] for t in tables)


class _CutWrite:
    """A table whose to_csv writes part of the file, then fails (a kill half-way)."""

    def to_csv(self, path, **kw):
        with open(path, "w") as f:
            f.write("prompt_id,correct\n0")
        raise KeyboardInterrupt


def test_a_write_cut_half_way_leaves_the_old_file_or_none(tmp_path):
    out = tmp_path / "table.csv"
    with pytest.raises(KeyboardInterrupt):
        runs.atomic_to_csv(_CutWrite(), out)
    assert not out.exists()
    runs.atomic_to_csv(pd.DataFrame({"a": [1, 2]}), out)
    with pytest.raises(KeyboardInterrupt):
        runs.atomic_to_csv(_CutWrite(), out)
    assert pd.read_csv(out).a.tolist() == [1, 2]  # the finished version, whole


def test_a_gzip_table_round_trips_through_its_temporary_name(tmp_path):
    out = tmp_path / "x-samples.csv.gz"
    runs.atomic_to_csv(pd.DataFrame({"prompt_id": ["01"], "text": ["a, b"]}), out)
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip, though the temporary name had no .gz
    assert pd.read_csv(out, dtype={"prompt_id": str}).to_dict("list") == {"prompt_id": ["01"], "text": ["a, b"]}
    assert not list(tmp_path.glob("*.tmp"))
