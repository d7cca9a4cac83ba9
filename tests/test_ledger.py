"""The cost ledger (ledger.py): artifacts timed when made, noted when used, a book's cold cost."""

import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import load_benchmark
from unlearnability.store import ledger, runs


@pytest.fixture()
def record(store, tmp_path, monkeypatch):
    path = tmp_path / "ledger.tsv"
    monkeypatch.setenv(ledger.ENV, str(path))
    return path


def make_file(path, wait):
    time.sleep(wait)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n")


def test_a_new_artifact_is_timed_saved_and_noted_then_reused_at_its_saved_time(store, record):
    art = store / "analysis" / "a.csv"
    with ledger.making("analysis", art):
        make_file(art, 0.15)
    with ledger.making("analysis", art):
        pass
    rows = ledger.read(record)
    assert list(rows.made) == [1, 0] and list(rows.source) == ["measured", "saved"]
    assert rows.seconds.iloc[0] == rows.seconds.iloc[1] >= 0.1
    assert rows.path.iloc[0] == "analysis/a.csv"  # relative to the store
    sec, threads = ledger.saved_seconds(art)
    assert sec == rows.seconds.iloc[0] and threads >= 1


def test_an_artifact_made_inside_another_is_not_counted_twice(store, record):
    outer, inner = store / "grpo" / "run", store / "evals" / "e.csv"

    def make_outer():
        with ledger.making("evaluation", inner):
            make_file(inner, 0.4)
        time.sleep(0.1)
        outer.mkdir(parents=True)
        runs.mark_done(outer)

    with ledger.making("grpo", outer):
        make_outer()
    rows = ledger.read(record).set_index("kind")
    assert rows.loc["evaluation", "seconds"] >= 0.35
    assert rows.loc["grpo", "seconds"] < 0.35  # its own 0.1 s, not the evaluation's 0.4 s on top
    assert (outer / ledger.SECONDS_FILE).exists()


def test_a_failed_block_notes_and_saves_nothing(store, record):
    art = store / "analysis" / "b.csv"
    with pytest.raises(RuntimeError):
        with ledger.making("analysis", art):
            raise RuntimeError("killed")
    assert ledger.read(record).empty and not ledger.seconds_path(art).exists()


def test_artifacts_made_before_the_ledger_use_their_legacy_times(store, record):
    base = store / "base" / "b1"
    base.mkdir(parents=True)
    (base / "pretrain_seconds.txt").write_text("1234.5\n")
    runs.mark_done(base)
    run = store / "grpo" / "r1"
    run.mkdir(parents=True)
    pd.DataFrame({"step": [1, 2], "seconds": [10.0, 12.5]}).to_csv(run / "train_log.csv", index=False)
    runs.mark_done(run)
    ev = store / "grpo" / "r1" / "evals" / "old.csv"
    make_file(ev, 0)
    for kind, path in (("base", base), ("grpo", run), ("evaluation", ev)):
        with ledger.making(kind, path):
            pass
    rows = ledger.read(record).set_index("kind")
    assert rows.loc["base", "seconds"] == 1234.5 and rows.loc["grpo", "seconds"] == 22.5
    assert pd.isna(rows.loc["evaluation", "seconds"]) and set(rows.source) == {"legacy"}


def test_without_the_environment_variable_nothing_is_written(store, tmp_path, monkeypatch):
    monkeypatch.delenv(ledger.ENV, raising=False)
    art = store / "analysis" / "c.csv"
    with ledger.making("analysis", art):
        make_file(art, 0)
    assert ledger.seconds_path(art).exists()  # the artifact still keeps its time
    assert not list(tmp_path.glob("*.tsv"))


def test_the_book_budget_pays_each_artifact_once_in_the_first_chapter_that_uses_it(store):
    def write(chapter, lines):
        path = ledger.ledger_path("p", chapter)
        for kind, art, made, sec, src in lines:
            ledger.note(kind, art, made, sec, src, 1, target=path)

    write("one", [("base", "base/b", 1, 600.0, "measured"), ("grpo", "grpo/r", 1, 300.0, "measured"),
                  ("chapter", "one", 1, 20.0, "measured")])
    write("two", [("base", "base/b", 0, 600.0, "saved"), ("evaluation", "grpo/r/e.csv", 0, None, "legacy"),
                  ("gradients", "analysis/g", 1, 50.0, "measured"), ("chapter", "two", 1, 5.0, "measured")])
    b = ledger.book_budget("p", ["one", "two", "three"])
    ch = b.chapters.set_index("chapter")
    assert ch.loc["one", "seconds"] == 920.0 and ch.loc["one", "new"] == 2
    assert ch.loc["two", "seconds"] == 55.0 and ch.loc["two", "new"] == 2 and ch.loc["two", "untimed"] == 1
    assert ch.loc["two", "artifacts"] == 3  # the base is used there too, but paid by chapter one
    assert not ch.loc["three", "executed"] and ch.loc["three", "seconds"] == 0
    assert b.seconds == 975.0 and b.untimed == 1
    assert b.kinds.loc["base", "seconds"] == 600.0


def test_a_chapter_with_parameters_gets_its_own_ledger(store):
    assert ledger.ledger_path("default", "section4") == store / "ledger" / "default" / "section4.tsv"
    other = ledger.ledger_path("default", "section4", {"tau": 0.2})
    assert other.parent == store / "ledger" / "default" and other.name.startswith("section4-")


def test_a_build_is_recorded_as_cold_only_when_it_made_every_artifact(store, tmp_path, monkeypatch, capsys):
    import json
    import os
    import sys

    from unlearnability.book.chapters import list_chapters

    bb = load_benchmark("book_budget")
    since = time.time() - 100
    arts = {"base/b": since + 10, "grpo/r": since + 50}
    for art, made in arts.items():
        (store / art).mkdir(parents=True)
        ledger.seconds_path(store / art).write_text("30.0 1\n")
        os.utime(ledger.seconds_path(store / art), (made, made))
    for ch in [c.name for c in list_chapters() if c.kind == "notebook"]:
        path = ledger.ledger_path("default", ch)
        ledger.note("base", "base/b", 0, 30.0, "saved", 1, target=path)
        ledger.note("grpo", "grpo/r", 0, 30.0, "saved", 1, target=path)
        ledger.note("chapter", ch, 1, 6.0, "measured", 1, target=path)

    def run(*extra):
        monkeypatch.setattr(sys, "argv", ["book_budget.py", "--root", str(tmp_path), *extra])
        assert bb.main() == 0
        return capsys.readouterr().out

    report = tmp_path / "book" / "book.json"
    out = run("--cold-since", str(since + 20), "--wall-seconds", "600")  # the base was there before
    assert "not cold (1 artifact(s) made before it started" in out and not report.exists()
    out = run("--cold-since", str(since), "--wall-seconds", "600")
    r = json.loads(report.read_text())
    assert r["cold_wall_minutes"] == 10.0 and r["met"] and r["target_minutes"] == 180.0
    assert set(r["chapters"]) == {c.name for c in list_chapters() if c.kind == "notebook"}
    assert r["one_core_minutes"] == round((60 + 6 * len(r["chapters"])) / 60, 1)
    assert "10 min wall against 180: met" in run()  # printed from the record afterwards
    assert "NOT met" in run("--target-min", "5")


def test_a_reused_annealed_base_notes_its_first_phase_too(store, monkeypatch, tmp_path):
    """The final phase's own seconds leave out the first phase: a chapter that only reuses the
    annealed model must still list the first phase, or the book's cold cost misses it."""
    from unlearnability.config import load_config
    from unlearnability.train.base import ensure_base_model

    cfg = load_config("smoke", {"pretrain": {"tokens": 3000, "anneal_tokens": 1000}})
    for name in ("made", "reused"):
        path = tmp_path / f"{name}.tsv"
        monkeypatch.setenv(ledger.ENV, str(path))
        ensure_base_model(cfg, quiet=True)
        lines = ledger.read(path).set_index("kind")
        assert set(lines.index) == {"base", "anneal"}, lines
        assert set(lines.made.astype(int)) == ({1} if name == "made" else {0})
        assert lines.loc["base", "seconds"] > 0 and lines.loc["anneal", "seconds"] > 0


def test_an_analysis_cache_name_does_not_depend_on_the_path_to_the_store(tmp_path, monkeypatch):
    from unlearnability.store.cache import analysis_path

    real = tmp_path / "store"
    (real / "grpo" / "r1").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "runs").symlink_to(real)
    names = []
    for home in (real, tmp_path / "checkout" / "runs"):
        monkeypatch.setenv("UNLEARN_HOME", str(home))
        key = {"policy": str(home / "grpo" / "r1" / "checkpoint-10"), "ids": [("a", "easy")], "k": 8}
        names.append(analysis_path("gradients", key).name)
    assert names[0] == names[1]
    other = analysis_path("gradients", {"policy": str(tmp_path / "elsewhere" / "checkpoint-10"), "ids": [("a", "easy")],
                                        "k": 8})
    assert other.name != names[0]  # a path outside the store is hashed as it is
    assert analysis_path("gradients", {"k": 9}).name != analysis_path("gradients", {"k": 8}).name
