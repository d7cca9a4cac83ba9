"""The book pipeline: chapter listing, parameters, tagging, CLI wiring, and a real build in Chromium."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unlearnability import paper
from unlearnability.book import browser_check, charts, notebook
from unlearnability.book import build as book
from unlearnability.book import chapters as book_chapters
from unlearnability.config import parse_value

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- helpers


def write_notebook(path: Path, cells: list, parameters: str = 'profile = "default"') -> None:
    """A clean source notebook: parameters cell first (tagged), then `cells`."""
    first = new_code_cell(parameters)
    first.metadata["tags"] = ["parameters", "remove-cell"]
    nb = new_notebook(cells=[first, *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_book(root: Path, chapters: list[str]) -> None:
    """A book root with the real _config.yml and extension, a root page and the given toc entries."""
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copytree(ROOT / "book" / "_ext", root / "book" / "_ext")
    (root / "book" / "index.md").write_text("# Test book\n\n```{tableofcontents}\n```\n")
    toc = {"format": "jb-book", "root": "book/index", "chapters": [{"file": f"book/{c}"} for c in chapters]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


def require_chromium() -> str:
    path = browser_check.find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium); CI fails instead of skipping")
    return path


# ---------------------------------------------------------------- chapters and configuration


def test_real_toc_lists_introduction_first_and_every_source_exists():
    chapters = book_chapters.list_chapters(ROOT)
    assert chapters[0].name == "introduction" and chapters[0].kind == "notebook"
    assert chapters[0].source == ROOT / "notebooks" / "introduction.ipynb"
    assert chapters[0].output == ROOT / "book" / "introduction.ipynb"
    missing = [c.file for c in chapters if c.kind == "missing"]
    assert not missing, f"_toc.yml lists pages with no notebooks/NAME.ipynb or book/NAME.md: {missing}"
    assert "index" not in [c.name for c in chapters]


def test_config_keeps_execution_to_papermill():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    assert cfg["sphinx"]["local_extensions"]["vega_offline"] == "book/_ext"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "_build/" in ignored and not any("book/" in line and "ipynb" in line for line in ignored)  # committed


def test_list_chapters_order_kinds_and_nesting(tmp_path):
    toc = {"format": "jb-book", "root": "book/index", "parts": [
        {"caption": "One", "chapters": [{"file": "book/alpha", "sections": [{"file": "book/beta.md"}]}]},
        {"caption": "Two", "chapters": [{"file": "book/gamma"}]}]}
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    write_notebook(tmp_path / "notebooks" / "alpha.ipynb", [])
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "beta.md").write_text("# Beta\n")
    chapters = book_chapters.list_chapters(tmp_path)
    assert [(c.name, c.kind) for c in chapters] == [("alpha", "notebook"), ("beta", "markdown"), ("gamma", "missing")]
    assert book_chapters.get_chapter("book/alpha", tmp_path).name == "alpha"
    with pytest.raises(book_chapters.ChapterError, match="no chapter 'delta'"):
        book_chapters.get_chapter("delta", tmp_path)
    with pytest.raises(book_chapters.ChapterError, match="neither notebooks/gamma.ipynb nor book/gamma.md"):
        book.execute_chapter("gamma", "smoke", root=tmp_path)
    with pytest.raises(book_chapters.ChapterError, match="no source"):
        book.execute_all("smoke", root=tmp_path)
    assert book.execute_chapter("beta", "smoke", root=tmp_path) == tmp_path / "book" / "beta.md"


def test_source_notebooks_are_clean():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "code", path
        assert {"parameters", "remove-cell"} <= set(first.metadata.get("tags", [])), path
        assert "profile" in first.source, f"{path}: every chapter takes `profile`"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path}: commit sources without outputs"


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("raw, value", [
    ("3", 3), ("0.5", 0.5), ("1e-4", 1e-4), ("-2E3", -2000.0), ("[1, 42, 37]", [1, 42, 37]),
    ("true", True), ("null", None), ("smoke", "smoke"), ("{a: 1}", {"a": 1}), ("'7'", "7"), ("", ""),
])
def test_parse_value(raw, value):
    assert parse_value(raw) == value


def test_parse_overrides():
    params = book_chapters.parse_overrides(["seeds=[1,42]", "grpo.lr=1e-4", "grpo.steps=30", "world.p=97", "name=x=y"])
    assert params == {"seeds": [1, 42], "name": "x=y",
                      "overrides": {"grpo": {"lr": 1e-4, "steps": 30}, "world": {"p": 97}}}
    assert book_chapters.parse_overrides(None) == {}
    for bad, msg in [("seeds", "expected key=value"), ("1x=2", "not a parameter name"),
                     ("a-b=2", "not a parameter name"), ("class=2", "not a parameter name"),
                     ("profile=smoke", "use --profile")]:
        with pytest.raises(ValueError, match=msg):
            book_chapters.parse_overrides([bad])


def test_check_profile(tmp_path):
    assert book_chapters.check_profile("smoke") == "smoke"
    assert book_chapters.check_profile("default") == "default"
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        book_chapters.check_profile("nope")
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\n")
    assert book_chapters.check_profile(str(custom)) == str(custom.resolve())


def test_show_parameters_keeps_plain_values_and_builds_the_rerun_command():
    import math

    namespace = {"__name__": "__main__", "_hidden": 1, "In": [], "math": math, "print_it": print,
                 "seeds": [1, 42], "profile": "smoke", "note": "two words",
                 "overrides": {"grpo": {"lr": 0.0001}}}
    table = notebook.show_parameters(namespace, chapter="testbed")
    assert list(table.params) == ["profile", "seeds", "note", "overrides"]
    assert table.command() == ("unlearn chapter testbed --profile smoke -p 'seeds=[1, 42]' "
                               "-p 'note=two words' -p grpo.lr=0.0001")
    html_out = table._repr_html_()
    assert "<code>seeds</code>" in html_out and "[1, 42]" in html_out and "unlearn chapter testbed" in html_out
    assert "profile" in repr(table)
    assert list(notebook.show_parameters(namespace, names=["note", "profile", "absent"]).params) == ["profile", "note"]


def test_tag_cells_hides_parameters_and_folds_code(tmp_path):
    cells = [new_markdown_cell("# Title"), new_code_cell("x = 1"), new_code_cell("y = 2"),
             new_code_cell("z = 3"), new_code_cell("show()")]
    cells[2].metadata["tags"] = ["injected-parameters"]
    cells[3].metadata["tags"] = ["remove-input"]
    cells[4].metadata["tags"] = ["show-input"]
    path = tmp_path / "nb.ipynb"
    write_notebook(path, cells)
    book._tag_cells(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters", "remove-cell"], [], ["hide-input"], ["injected-parameters", "remove-cell"],
                    ["remove-input"], ["show-input"]]


# ---------------------------------------------------------------- command line


def test_cli_commands_parse():
    parser = argparse.ArgumentParser(prog="unlearn")
    sub = parser.add_subparsers(dest="command")
    book.add_book_commands(sub)
    args = parser.parse_args(["chapter", "introduction", "--profile", "smoke", "-p", "seeds=[1,2]",
                              "-p", "grpo.lr=1e-4", "--no-build"])
    assert args.func is book._run_chapter
    assert (args.name, args.profile, args.param, args.no_build) == (
        "introduction", "smoke", ["seeds=[1,2]", "grpo.lr=1e-4"], True)
    args = parser.parse_args(["book", "--profile", "smoke"])
    assert args.func is book._run_book and args.profile == "smoke" and not args.no_build
    assert "re-execute one chapter" in parser.format_help()


def test_cli_reports_errors_with_exit_code(capsys, tmp_path):
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/index",
                                                       "chapters": [{"file": "book/absent"}]}))
    parser = argparse.ArgumentParser()
    book.add_book_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["chapter", "absent", "--profile", "smoke", "--root", str(tmp_path)])
    assert args.func(args) == 1
    assert "neither notebooks/absent.ipynb" in capsys.readouterr().err
    args = parser.parse_args(["book", "--profile", "nope", "--root", str(tmp_path)])
    assert args.func(args) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err
    args = parser.parse_args(["site", "--root", str(tmp_path)])  # nothing executed yet: say which chapter
    assert args.func(args) == 1 and "absent" in capsys.readouterr().err


def test_kernel_runs_this_python():
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = KernelSpecManager().get_kernel_spec(book.kernel_name()).argv[0]
    assert argv0 in {"python", "python3", f"python3.{sys.version_info[1]}"} or argv0 == sys.executable


# ---------------------------------------------------------------- charts


def test_chart_builders_make_valid_specs():
    charts.setup()
    df = pd.DataFrame([{"step": s, "reward": 0.1 * s + seed / 100, "group": g, "seed": seed}
                       for s in range(5) for g in ("easy", "unlearnable") for seed in (1, 42)])
    spec = charts.line_by_group(df, "step", "reward", "group", title="t", subtitle="s").to_dict()
    assert len(spec["layer"]) == 2  # per-seed lines + mean
    assert spec["layer"][1]["encoding"]["y"]["aggregate"] == "mean"
    assert spec["layer"][1]["encoding"]["color"]["scale"]["range"][:2] == [
        charts.GROUP_COLORS["easy"], charts.GROUP_COLORS["unlearnable"]]
    single = charts.line_by_group(df[df.seed == 1], "step", "reward", "group").to_dict()
    assert len(single["layer"]) == 1
    bars = charts.bar_table(paper.table1(), "model", "percent", "group").to_dict()
    assert [layer["mark"]["type"] for layer in bars["layer"]] == ["bar", "text"]
    assert paper.table1()["percent"].sum() == pytest.approx(sum(sum(g.values()) for g in paper.TABLE1.values()))


# ---------------------------------------------------------------- execution and the built site


def test_failing_chapter_names_notebook_and_cell(tmp_path):
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/index",
                                                       "chapters": [{"file": "book/broken"}]}))
    write_notebook(tmp_path / "notebooks" / "broken.ipynb",
                   [new_code_cell("x = 1"), new_code_cell("y = x / 0\nprint(y)")])
    with pytest.raises(book_chapters.ChapterError) as err:
        book.execute_chapter("broken", "smoke", root=tmp_path, progress=False)
    msg = str(err.value)
    assert "notebooks/broken.ipynb" in msg and "ZeroDivisionError" in msg
    assert "cell 2 (first line: `y = x / 0`)" in msg  # counted in the source: 0 parameters, 1, 2


SECRET = "sk-test-SECRET-in-the-environment-123"


def secret_chapter_cells() -> list:
    """A chapter that talks to an OpenAI-compatible server with the key from $OPENAI_API_KEY,
    prints what a user would print (the config, the replies, an error), and logs a warning."""
    return [
        new_markdown_cell("# An LLM call"),
        new_code_cell("from unlearnability.backends.llm import LLMError, chat\n"
                      "from unlearnability.config import LLMConfig\n"
                      "cfg = LLMConfig(base_url=base_url, model='stub')\nprint(cfg)\n"
                      "print(chat(cfg, [{'role': 'user', 'content': 'hello'}]))"),
        new_code_cell("try:\n    chat(cfg, [{'role': 'user', 'content': 'fail'}])\n"
                      "except LLMError as e:\n    print('error:', e)"),
    ]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """A small book built by the real pipeline: the real introduction, a chart chapter, a md page,
    and a chapter that calls an LLM server with a key in the environment (served from here)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from llm_stub import Reply, StubServer

    def echo_the_key(body, headers):  # a server that puts the key it received in its replies
        key = headers.get("authorization", "")
        if body["messages"][-1]["content"] == "fail":
            return Reply(401, {"error": {"message": f"invalid key {key}"}})
        return f"hello back, you sent {key}"

    root = tmp_path_factory.mktemp("site")
    make_book(root, ["introduction", "charts", "notes", "secret"])
    write_notebook(root / "notebooks" / "secret.ipynb", secret_chapter_cells(),
                   parameters='profile = "default"\nbase_url = ""')
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = SECRET
    srv = StubServer(echo_the_key).__enter__()
    try:
        book.execute_chapter("secret", "smoke", {"base_url": srv.base_url}, root=root, progress=False)
    finally:
        srv.__exit__(None, None, None)
        os.environ.pop("OPENAI_API_KEY") if old is None else os.environ.__setitem__("OPENAI_API_KEY", old)
    assert srv.requests and all(r["headers"]["authorization"] == f"Bearer {SECRET}" for r in srv.requests)
    write_notebook(root / "notebooks" / "charts.ipynb", [
        new_markdown_cell("# Charts"),
        new_code_cell("import pandas as pd\nfrom unlearnability.book import charts, notebook\ncharts.setup()\n"
                      "notebook.show_parameters(globals(), chapter='charts')"),
        new_code_cell("df = pd.DataFrame([{'step': s, 'reward': s * seeds[0] / 100, 'group': g, 'seed': k}\n"
                      "                   for s in range(4) for g in ('easy', 'learnable') for k in (1, 2)])\n"
                      "charts.line_by_group(df, 'step', 'reward', 'group', title=label)"),
    ], parameters='profile = "default"\nseeds = [1]\nlabel = "reward"')
    shutil.copy(ROOT / "notebooks" / "introduction.ipynb", root / "notebooks" / "introduction.ipynb")
    (root / "book" / "notes.md").write_text("# Notes\n\nA markdown chapter with math: the group advantage "
                                            "$A_i = (r_i - \\bar r) / \\sigma_r$ and\n\n"
                                            "$$\\mathrm{pass@}k = 1 - \\binom{n-c}{k} / \\binom{n}{k}$$\n")
    outputs = [book.execute_chapter(c, "smoke", {"seeds": [3, 4], "label": "override works"}, root=root,
                                    progress=False) for c in ("introduction", "charts", "notes")]
    assert [p.name for p in outputs] == ["introduction.ipynb", "charts.ipynb", "notes.md"]
    assert outputs[0].parent == root / "_build" / "smoke-custom" / "book"  # never over the committed book
    html_dir = book.build_site(root, profile="smoke", params={"seeds": [3, 4]})
    assert html_dir == root / "_build" / "smoke-custom" / "_build" / "html"
    return root, html_dir


def test_built_site_renders_parameters_and_folds_code(built_site):
    root, html_dir = built_site
    page = (html_dir / "book" / "charts.html").read_text()
    assert "Parameters this page was executed with" in page
    assert "override works" in page and "[3, 4]" in page  # overrides reached the notebook
    assert "seeds = [1]" not in page and "injected-parameters" not in page.replace("tag_injected", "")
    assert "hide above-input" in page  # folded code
    assert 'class="provenance-line"' in page and "profile smoke" in page  # where the page came from
    executed = nbformat.read(root / "_build" / "smoke-custom" / "book" / "charts.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    assert (html_dir / "_static" / "vega-offline.js").stat().st_size > 100_000


def test_the_api_key_never_reaches_the_notebook_or_the_site(built_site):
    root, html_dir = built_site
    page = (html_dir / "book" / "secret.html").read_text()
    assert "hello back, you sent" in page and "error:" in page  # the calls ran and their output is shown
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".html" for p in files)
    leaked = [str(p.relative_to(root)) for p in files if SECRET.encode() in p.read_bytes()]
    assert not leaked, f"the key from $OPENAI_API_KEY was written to {leaked}"


@pytest.mark.slow
def test_built_site_draws_every_chart_offline_in_chromium(request, tmp_path):
    chromium = require_chromium()
    _, html_dir = request.getfixturevalue("built_site")
    report = browser_check.check_site(html_dir, chromium, min_charts=2)
    assert report.ok, report.summary()
    pages = {p.page: p for p in report.pages}
    assert len(pages["book/introduction.html"].drawn) == 1 and len(pages["book/charts.html"].drawn) == 1
    assert not pages["book/notes.html"].charts
    assert pages["book/notes.html"].math == 2 and pages["book/notes.html"].typeset == 2  # MathJax, offline

    # Without the offline bundle the same page must fail: the check is not vacuous.
    broken = tmp_path / "html"
    shutil.copytree(html_dir, broken)
    page = broken / "book" / "charts.html"
    text = page.read_text()
    assert "vega-offline.js" in text
    page.write_text("\n".join(line for line in text.splitlines() if "vega-offline.js" not in line))
    shutil.rmtree(broken / "_static" / "mathjax")  # and MathJax served from nowhere: math stays TeX
    bad = browser_check.check_site(broken, chromium)
    assert not bad.ok
    assert any("Error loading script" in e for p in bad.pages for e in p.errors), bad.summary()
    notes = next(p for p in bad.pages if p.page == "book/notes.html")
    assert notes.typeset == 0 and any("2 of 2 formulas not typeset" in e for e in notes.errors), bad.summary()

    # A table wider than the content column is flagged, by its caption.
    wide = "<table><caption>Too wide</caption><tr>" + "".join(f"<td>column_{i}_with_a_long_name</td>" for i in range(40)) + "</tr></table>"
    charts_page = broken / "book" / "charts.html"
    original = html_dir.joinpath("book", "charts.html").read_text()
    charts_page.write_text(re.sub(r"(<article[^>]*>)", lambda m: m.group(1) + wide, original, count=1))
    flagged = next(p for p in browser_check.check_site(broken, chromium).pages if p.page == "book/charts.html")
    assert not flagged.ok  # a scrollbar fails the page
    assert any(w.startswith("table-") and "Too_wide" in w and "wider than the" in w for w in flagged.errors), flagged.errors


def test_static_check_flags_cdn_references():
    html_text = ('<script src="https://cdn.jsdelivr.net/npm/vega@6"></script><script src="_static/a.js"></script>'
                 '<link rel="stylesheet" href="//fonts.example.com/x.css"><a href="https://example.com">x</a>')
    problems = browser_check.static_problems(html_text)
    assert len(problems) == 2 and "vega@6" in problems[0] and "fonts.example.com" in problems[1]


def test_a_chapter_execution_writes_its_cost_ledger(tmp_path, store):
    """The kernel inherits $UNLEARN_LEDGER: artifacts it makes are noted, then the chapter's own time."""
    from unlearnability.store import ledger

    make_book(tmp_path, ["costly"])
    write_notebook(tmp_path / "notebooks" / "costly.ipynb", [new_code_cell(
        "import time\nfrom unlearnability.store import ledger, runs\n"
        "art = runs.home() / 'analysis' / 'x.csv'\n"
        "with ledger.making('analysis', art):\n"
        "    time.sleep(0.3); art.parent.mkdir(parents=True, exist_ok=True); art.write_text('1\\n')")])
    book.execute_chapter("costly", "smoke", root=tmp_path, progress=False)
    rows = ledger.read(ledger.ledger_path("smoke", "costly")).set_index("kind")
    assert rows.loc["analysis", "made"] == 1 and rows.loc["analysis", "seconds"] >= 0.3
    assert rows.loc["chapter", "path"] == "costly" and rows.loc["chapter", "seconds"] >= 0
    assert ledger.ENV not in os.environ  # restored after the execution
    b = ledger.book_budget("smoke", ["costly"])
    assert b.chapters.seconds.iloc[0] == pytest.approx(rows.seconds.sum())


def test_a_chapter_executes_without_a_ledger_when_the_store_cannot_be_written(tmp_path, monkeypatch):
    from unlearnability.store import ledger

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run store should be\n")
    monkeypatch.setenv("UNLEARN_HOME", str(blocker / "runs"))
    make_book(tmp_path, ["plain"])
    write_notebook(tmp_path / "notebooks" / "plain.ipynb", [new_code_cell("print('ran')")])
    out = book.execute_chapter("plain", "smoke", root=tmp_path, progress=False)
    assert "ran" in out.read_text() and ledger.ENV not in os.environ
