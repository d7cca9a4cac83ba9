"""Provenance and freshness of executed chapters; other profiles never overwrite the committed book."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell

from unlearnability.book import build as book
from unlearnability.book import chapters as book_chapters
from unlearnability.book import provenance

ROOT = Path(__file__).resolve().parents[1]


def make_root(root: Path, chapters: dict[str, list[str]]) -> None:
    """A book root with the given chapters (name -> code cells after a parameters cell) and a
    library file under src/unlearnability, so that library changes can be detected."""
    (root / "book").mkdir(parents=True)
    (root / "book" / "index.md").write_text("# Test\n")
    toc = {"format": "jb-book", "root": "book/index", "chapters": [{"file": f"book/{c}"} for c in chapters]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    for name, cells in chapters.items():
        first = new_code_cell('profile = "default"\ntau = 0.1')
        first.metadata["tags"] = ["parameters", "remove-cell"]
        nb = nbformat.v4.new_notebook(cells=[first, *[new_code_cell(c) for c in cells]])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        (root / "notebooks").mkdir(exist_ok=True)
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
    lib = root / "src" / "unlearnability"
    lib.mkdir(parents=True)
    (lib / "stats.py").write_text("RULE = 1\n")


SAVE = "from unlearnability.book import notebook\nnotebook.save_results({'verdict': {'claim': 'x', 'holds': True, 'p': 0.03}})"


def edit_cell(source: Path, index: int, text: str) -> None:
    nb = nbformat.read(source, as_version=4)
    nb.cells[index].source = text
    nbformat.write(nb, source)


def test_execution_records_provenance_in_the_notebook_and_the_results(tmp_path, store):
    make_root(tmp_path, {"alpha": [SAVE]})
    out = book.execute_chapter("alpha", "default", root=tmp_path, progress=False)
    assert out == tmp_path / "book" / "alpha.ipynb"  # the default profile writes the committed book
    block = provenance.read(out)
    assert set(provenance.FIELDS) <= set(block) and block["profile"] == "default" and block["parameters"] == {}
    assert block["wall_seconds"] > 0 and block["threads"] >= 1 and block["cold_minutes"] is not None
    assert block["library"] == {"src/unlearnability/stats.py": provenance.library_files(tmp_path)["src/unlearnability/stats.py"]}
    data = json.loads((tmp_path / "book" / "alpha.json").read_text())
    assert data["verdict"] == {"claim": "x", "holds": True, "p": 0.03}  # the chapter's own numbers
    assert set(data["provenance"]) >= set(provenance.FIELDS) and "library" not in data["provenance"]
    assert "profile default" in provenance.summary_line(block)


def test_staleness_names_a_changed_parameter_code_cell_and_library_file(tmp_path, store):
    make_root(tmp_path, {"alpha": ["x = tau * 2"]})
    out = book.execute_chapter("alpha", "default", root=tmp_path, progress=False)
    source = tmp_path / "notebooks" / "alpha.ipynb"
    check = lambda: provenance.staleness(provenance.read(out), source, tmp_path)  # noqa: E731
    assert check() == []

    edit_cell(source, 0, 'profile = "default"\ntau = 0.2')  # a changed parameter default
    assert len(check()) == 1 and "alpha.ipynb changed" in check()[0]
    edit_cell(source, 0, 'profile = "default"\ntau = 0.1')
    assert check() == []
    edit_cell(source, 1, "x = tau * 3")  # a changed code cell
    assert "alpha.ipynb changed" in check()[0]
    edit_cell(source, 1, "x = tau * 2")
    (tmp_path / "src" / "unlearnability" / "stats.py").write_text("RULE = 2\n")
    reasons = check()
    assert len(reasons) == 1 and reasons[0].startswith("library files changed since its commit")
    assert reasons[0].endswith(": stats.py")  # named
    assert provenance.notice(check()).startswith("Stale: ")


def test_a_changed_preset_marks_the_chapter_stale(tmp_path, store):
    preset = tmp_path / "mine.yaml"
    preset.write_text((ROOT / "src" / "unlearnability" / "presets" / "smoke.yaml").read_text())
    make_root(tmp_path, {"alpha": ["x = 1"]})
    out = book.execute_chapter("alpha", str(preset), root=tmp_path, progress=False)
    assert out == tmp_path / "_build" / "mine" / "book" / "alpha.ipynb"
    source = tmp_path / "notebooks" / "alpha.ipynb"
    assert provenance.staleness(provenance.read(out), source, tmp_path) == []
    preset.write_text(preset.read_text().replace("steps: 4", "steps: 5"))
    assert provenance.staleness(provenance.read(out), source, tmp_path) == [f"the resolved {str(preset)!r} config changed"]


def test_other_profiles_and_parameters_never_overwrite_the_committed_book(tmp_path, store):
    make_root(tmp_path, {"alpha": ["x = 1"]})
    smoke = book.execute_chapter("alpha", "smoke", root=tmp_path, progress=False)
    custom = book.execute_chapter("alpha", "default", {"tau": 0.3}, root=tmp_path, progress=False)
    assert smoke == tmp_path / "_build" / "smoke" / "book" / "alpha.ipynb"
    assert custom == tmp_path / "_build" / "default-custom" / "book" / "alpha.ipynb"
    assert not (tmp_path / "book" / "alpha.ipynb").exists()
    assert provenance.read(custom)["parameters"] == {"tau": 0.3}
    # a smoke chapter copied over the committed book by hand is refused by the site build
    shutil.copy(smoke, tmp_path / "book" / "alpha.ipynb")
    with pytest.raises(book_chapters.ChapterError, match="not the default book's: executed with profile 'smoke'"):
        book.build_site(tmp_path)
    assert provenance.foreign(provenance.read(custom)) == "executed with parameters {'tau': 0.3}"


def test_book_re_executes_only_missing_or_stale_chapters(tmp_path, store):
    make_root(tmp_path, {"alpha": ["x = 1"], "beta": ["y = 2"]})
    assert [p.name for p in book.execute_all("default", root=tmp_path, progress=False)] == ["alpha.ipynb", "beta.ipynb"]
    assert book.execute_all("default", root=tmp_path, progress=False) == []
    edit_cell(tmp_path / "notebooks" / "beta.ipynb", 1, "y = 3")
    assert [p.name for p in book.execute_all("default", root=tmp_path, progress=False)] == ["beta.ipynb"]
    assert len(book.execute_all("default", root=tmp_path, progress=False, fresh=True)) == 2


def test_committed_chapters_are_the_default_books():
    """Every executed chapter in the repository's book/ was executed with the default profile and
    no parameters (CI fails on another profile; staleness is reported, not failed)."""
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        block = provenance.read(path)
        assert block is not None, f"{path.name}: committed without provenance"
        assert provenance.foreign(block) is None, f"{path.name}: {provenance.foreign(block)}"
        assert (ROOT / "book" / f"{path.stem}.json").is_file(), f"{path.name}: its results file is missing"


def test_book_prepares_the_stale_chapters_artifacts_on_workers_first(tmp_path, store, monkeypatch):
    """--workers 2: plan.prepare gets exactly the chapters about to execute, before they execute."""
    from unlearnability.book import plan

    calls = []
    monkeypatch.setattr(plan, "prepare", lambda names, profile, params, workers, root: calls.append(
        (list(names), profile, workers, (root / "book" / "alpha.ipynb").exists())) or "summary")
    make_root(tmp_path, {"alpha": ["x = 1"], "beta": ["y = 2"]})
    book.execute_all("default", root=tmp_path, progress=False, workers=2)
    assert calls == [(["alpha", "beta"], "default", 2, False)]  # before any chapter executed
    edit_cell(tmp_path / "notebooks" / "beta.ipynb", 1, "y = 3")
    book.execute_all("default", root=tmp_path, progress=False, workers=2)
    book.execute_all("default", root=tmp_path, progress=False, workers=1)  # serial: no plan
    assert calls[1:] == [(["beta"], "default", 2, True)]
