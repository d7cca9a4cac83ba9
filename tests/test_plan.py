"""The book's artifact graph (plan.py): dedup, order, failures, workers=2 == workers=1, and drift
between a chapter's declared plan and what its notebook makes."""

from __future__ import annotations

import functools
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from unlearnability.book import build as book
from unlearnability.book import plan
from unlearnability.store import ledger

ROOT = Path(__file__).resolve().parents[1]
SECTION3 = "unlearnable-examples"
SIX = {"unlearnable-examples", "section4", "gradients-and-quality", "section5", "augmentation-and-midtraining",
       "forecast"}


# ---------------------------------------------------------------- the graph, without running it


def test_the_graph_dedups_shared_artifacts(store):
    p = plan.build(None, "smoke", {}, ROOT)
    keys = list(p.tasks)
    assert len(keys) == len(set(keys))
    index = {k: i for i, k in enumerate(keys)}
    assert all(index[d] < index[t.key] for t in p for d in t.deps), "a dependency declared after its dependant"
    baseline = [t for t in p if t.kind == "grpo" and "(§3 baseline)" in t.label]
    assert sorted(t.label for t in baseline) == [f"grpo seed {s} (§3 baseline)" for s in (1, 37, 42)]
    for t in baseline:  # one task each, used by the six chapters that read the §3 groups
        assert set(t.chapters) == SIX, t.chapters
        assert t.key.startswith("grpo/") and t.path == t.key
    # the testbed's evaluate_base(cfg, "train") and §3's evaluate_checkpoint(run of seed 1, 0) are one artifact
    initial = [t for t in p if t.kind == "evaluation" and "testbed" in t.chapters and SECTION3 in t.chapters]
    assert len(initial) == 1 and initial[0].within.startswith("base/")
    # Figure 1c's gradients at step 0: asked for by §3's gradient chapter and by §5, made once
    g0 = [t for t in p if t.kind == "gradients" and set(t.chapters) == {"gradients-and-quality", "section5"}]
    assert len(g0) == 1
    first = [t for t in p if t.kind == "base"]  # the first pretraining phase: one, shared by both anneals
    anneals = [t for t in p if t.kind == "anneal"]  # the testbed's final phase and the worked-only control's
    assert len(first) == 1 and len(anneals) == 2 and all(t.deps == (first[0].key,) for t in anneals)
    assert len(p.tasks[baseline[0].deps[0]].chapters) == 7  # the base model: every chapter but the introduction
    fewer = plan.build(None, "smoke", {"seeds": [1, 42]}, ROOT)  # a notebook parameter reaches every chapter
    assert not [t for t in fewer if "seed 37 " in t.label]
    assert len(fewer) < len(p)


def test_every_notebook_chapter_declares_a_plan():
    for name in plan.notebook_chapters(ROOT):
        assert name in plan.CHAPTERS, f"notebooks/{name}.ipynb has no plan in plan.CHAPTERS"
        assert plan.notebook_defaults(name, ROOT)["profile"] == "default"


def test_dry_run_prints_tasks_estimates_and_critical_path(store, capsys):
    assert plan.main(["--profile", "default", "--dry-run", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "base model default" in out and "grpo seed 42 (§3 baseline)" in out
    assert "critical path" in out and "on 2 workers about" in out
    assert "base 1.98e+03 s/artifact (default)" in out and "anneal 300 s/artifact" in out  # no store: the defaults


# ---------------------------------------------------------------- running synthetic graphs


def _stamp(log: str, name: str, sleep: float = 0.0, fail: bool = False) -> str:
    with open(log, "a") as f:
        f.write(f"{name} start {time.time():.6f}\n")
    time.sleep(sleep)
    if fail:
        raise ValueError(f"boom in {name}")
    with open(log, "a") as f:
        f.write(f"{name} end {time.time():.6f}\n")
    return name


@pytest.fixture()
def by_value():
    """Worker processes unpickle this module's functions by value (tests/ is not importable there)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _graph(log: Path, failing: str | None = None, sleep: float = 0.4) -> plan.Plan:
    """a -> b, a -> c, (b, c) -> d; e alone."""
    p = plan.Plan("smoke")
    deps = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}
    for name, ds in deps.items():
        p.add(plan.Task(f"@test {name}", "test", f"task {name}",
                        functools.partial(_stamp, str(log), name, sleep, name == failing),
                        tuple(f"@test {d}" for d in ds)), "test")
    return p


def _events(log: Path) -> dict[tuple[str, str], float]:
    out = {}
    for line in log.read_text().splitlines():
        name, what, t = line.split()
        out[(name, what)] = float(t)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_dependencies_are_respected(workers, tmp_path, store, by_value):
    import os

    log = tmp_path / "log.txt"
    cores = os.sched_getaffinity(0)
    lines: list[str] = []
    # 1.5 s tasks: long beside the dispatch latency of a loaded 2-core machine, so b and c overlap on 2 workers
    summary = plan.run(_graph(log, sleep=1.5), workers, progress=lines.append)
    assert summary.ok and [t["status"] for t in summary.tasks] == ["done"] * 5
    assert os.sched_getaffinity(0) == cores  # the serial path's one-core pin is undone
    for name in "abcde":  # one line when each task starts (from the worker, on Dask) and one when it ends
        assert sum(f"task {name} started" in s for s in lines) == 1, lines
        assert sum(f"task {name} done in" in s and "ETA" in s for s in lines) == 1, lines
    ev = _events(log)
    for child, parents in {"b": "a", "c": "a", "d": "bc"}.items():
        for parent in parents:
            assert ev[(child, "start")] >= ev[(parent, "end")], f"{child} started before {parent} ended"
    overlap = ev[("b", "start")] < ev[("c", "end")] and ev[("c", "start")] < ev[("b", "end")]
    assert overlap == (workers == 2)  # two workers run b and c at once; one worker never does
    assert summary.engine == ("dask" if workers == 2 else "serial")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_task_names_itself_and_the_others_finish(workers, tmp_path, store, by_value):
    log = tmp_path / "log.txt"
    lines: list[str] = []
    summary = plan.run(_graph(log, failing="b", sleep=0.1), workers, progress=lines.append)
    status = {t["key"]: t["status"] for t in summary.tasks}
    assert status == {"@test a": "done", "@test b": "failed", "@test c": "done", "@test d": "skipped",
                      "@test e": "done"}
    failed = summary.failed[0]
    assert "ValueError: boom in b" in failed["error"]
    assert "@test b" in summary.skipped[0]["error"]  # d names the task it waited for
    assert ("d", "start") not in _events(log)  # a dependant of the failure never ran
    with pytest.raises(plan.PlanError, match=r"task 'task b' \[@test b\] failed: ValueError: boom in b"):
        summary.raise_for_failures()
    assert any("task b FAILED" in s for s in lines) and any("ETA" in s for s in lines)


def _environ(name: str) -> str | None:
    import os

    return os.environ.get(name)


def test_dask_workers_run_without_the_nannys_malloc_trim_threshold(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with plan.dask_cluster(1) as (client, _):
        assert client.submit(_environ, "MALLOC_TRIM_THRESHOLD_", pure=False).result() is None  # 1.56x slower with it
        assert client.submit(_environ, "OMP_NUM_THREADS", pure=False).result() == "1"


def test_the_serial_path_runs_on_one_core_with_one_torch_thread():
    import os

    import torch

    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    with plan._one_core():
        assert len(os.sched_getaffinity(0)) == 1 and torch.get_num_threads() == 1
    assert os.sched_getaffinity(0) == cores and torch.get_num_threads() == threads


def test_progress_lines_and_eta_use_the_store_times(tmp_path, store):
    est = plan.Estimator("default")
    t = plan.Task("@x", "grpo", "grpo x", print, units=30)
    assert est.seconds(t) == pytest.approx(30 * plan.DEFAULT_RATES["default"]["grpo"])  # the default per step
    est.observe(t, 60.0)
    assert est.seconds(t) == pytest.approx(60.0)  # what this run measured wins
    span, critical = plan.simulate([plan.Task("@a", "k", "a", print), plan.Task("@b", "k", "b", print),
                                    plan.Task("@c", "k", "c", print, deps=("@a",))],
                                   {"@a": 10, "@b": 10, "@c": 5}, 2)
    assert (span, critical) == (15, 15)
    assert plan.simulate([plan.Task("@a", "k", "a", print), plan.Task("@b", "k", "b", print)],
                         {"@a": 10, "@b": 10}, 1)[0] == 20


# ---------------------------------------------------------------- the §3 chapter on smoke, for real

PARAMS = {"ablation_seeds": []}  # the §3 chapter without its matched control (a second base model: minutes)


@pytest.fixture(scope="module")
def section3_stores(tmp_path_factory, smoke_store):
    """The §3 plan made twice from the same base model: workers=1 (store A) and workers=2 (store B)."""
    from unlearnability.config import load_config
    from unlearnability.train.base import ensure_base_model

    with plan._one_core():  # (one thread: several times faster than two on the smoke model)
        base = Path(ensure_base_model(load_config("smoke")))  # shared by the session's smoke tests
    out = {}
    for workers in (1, 2):
        store = tmp_path_factory.mktemp(f"plan-w{workers}")
        # the model only: other tests of the session may have evaluated it already (evals/ inside it)
        shutil.copytree(base, store / "base" / base.name, ignore=shutil.ignore_patterns("evals"))
        start = time.perf_counter()
        summary = plan.prepare([SECTION3], "smoke", PARAMS, workers=workers, store=store, progress=False, root=ROOT)
        summary.raise_for_failures()
        out[workers] = (store, summary, time.perf_counter() - start)
    return out


def _artifacts(store: Path) -> set[str]:
    skip = (".lock", ".seconds", "made_seconds.txt", ".tmp")
    return {str(p.relative_to(store)) for p in store.rglob("*")
            if p.is_file() and "ledger" not in p.parts and not p.name.endswith(skip)}


def test_two_workers_make_the_same_store_as_one(section3_stores):
    (a, sa, _), (b, sb, _) = section3_stores[1], section3_stores[2]
    assert sa.engine == "serial" and sb.engine == "dask"
    made = [m for t in sb.tasks for m in t["made"]]
    assert sorted(k for k, _, _ in made).count("grpo") == 3 and sum(k == "evaluation" for k, _, _ in made) == 4
    assert _artifacts(a) == _artifacts(b)
    runs_a = sorted((a / "grpo").glob("*/train_log.csv"))
    assert len(runs_a) == 3
    for log in runs_a:
        x = pd.read_csv(log).drop(columns="seconds")
        y = pd.read_csv(b / log.relative_to(a)).drop(columns="seconds")
        pd.testing.assert_frame_equal(x, y)
    for table in sorted(a.glob("**/evals/**/*.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(table), pd.read_csv(b / table.relative_to(a)))
    # each task ran at one thread: a worker pinned to its own core, the serial path pinned while it ran
    for store in (a, b):
        threads = {int(ledger.saved_seconds(d)[1]) for d in (store / "grpo").glob("*/")}
        assert threads == {1}, store


def test_the_section3_notebook_makes_nothing_its_plan_did_not(section3_stores, tmp_path, monkeypatch):
    """Drift: execute the chapter (a real Papermill kernel) on the store its plan filled; its cost
    ledger must show every artifact it used as reused, none made."""
    store, summary, _ = section3_stores[2]
    monkeypatch.setenv("UNLEARN_HOME", str(store))
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / f"{SECTION3}.ipynb", tmp_path / "notebooks")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/index",
                                                       "chapters": [{"file": f"book/{SECTION3}"}]}))
    book.execute_chapter(SECTION3, "smoke", PARAMS, root=tmp_path, progress=False)
    lines = ledger.read(ledger.ledger_path("smoke", SECTION3, PARAMS))
    used = lines[lines.kind != "chapter"]
    made = used[used.made.astype(int) == 1]
    assert made.empty, f"the notebook made artifacts its plan did not declare:\n{made.to_string()}"
    assert set(used.kind) >= {"anneal", "grpo", "evaluation"} and len(used) >= 8  # the ledger saw the chapter's calls
    # the first pretraining phase (kind "base") is read by the anneals the plan made, not by the chapter
    planned = {m[1] for t in summary.tasks for m in t["made"] if m[0] != "base"}
    assert planned and planned <= set(used.path), f"the plan made artifacts the chapter does not use: {planned - set(used.path)}"
