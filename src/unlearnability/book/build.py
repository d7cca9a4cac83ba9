"""The book pipeline: chapters from `_toc.yml`, executed by Papermill, rendered by Jupyter Book.

A notebook chapter has a clean source `notebooks/NAME.ipynb` (no outputs; first cell tagged
`parameters`) and is listed in `_toc.yml` as `book/NAME`. Markdown chapters (`book/NAME.md`) are
rendered as they are.

Where an execution lands:
- the default profile with the chapters' own parameters: `book/NAME.ipynb` and its results
  `book/NAME.json`, committed to the repository (the published book); `jupyter-book build .`
  renders them into `_build/html`;
- any other profile, or any parameter given: a book of its own under `_build/<label>/` (label =
  the profile's name, plus `-custom` when parameters are given), the same toc and pages, built
  into `_build/<label>/_build/html`. So a smoke or custom execution never overwrites the book.

Each execution records its provenance (`book.provenance`: commit, date, profile, parameters, wall
time, cold-store cost, fingerprints of the notebook, config and library). `unlearn book` only
re-executes the chapters that are missing or stale against those fingerprints (as make does);
`--fresh` re-executes every chapter.

Every chapter takes the parameter `profile` (a preset name: "default" = the full CPU testbed,
"smoke" = seconds) plus any overrides, given on the command line as YAML values:

    unlearn chapter testbed --profile smoke -p seeds=[1,42] -p grpo.lr=1e-4
    unlearn book --profile smoke

`-p name=value` sets the notebook parameter `name`; a dotted key (`grpo.lr=1e-4`) is a config
override and is collected into the parameter `overrides` (a nested dict, as `--set` in the CLI).

On the executed copy the runner hides the `parameters` and `injected-parameters` cells
(`remove-cell`) and folds every other code cell (`hide-input`) unless it already carries a
hide/remove tag or `show-input`. Chapters show their parameters with `notebook.show_parameters(...)`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from unlearnability.book.chapters import (
    RESULTS_ENV,
    ChapterError,
    book_label,
    book_root,
    check_profile,
    find_root,
    get_chapter,
    list_chapters,
    parse_overrides,
    results_path,
)

KERNEL_NAME = "unlearnability"  # kernelspec installed into the venv when "python3" is not this python
HIDE_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell", "show-input"}
PARAMETER_TAGS = {"parameters", "injected-parameters"}


def chapter_status(root: Path, profile: str = "default", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per notebook chapter of the book for `profile`/`params`: name, output, provenance
    block (or None), stale reasons (empty: fresh), missing."""
    from unlearnability.book import provenance

    stage = root if book_label(profile, params) is None else root / "_build" / book_label(profile, params)
    rows = []
    for ch in list_chapters(root):
        if ch.kind != "notebook":
            continue
        out = stage / "book" / ch.output.name
        block = provenance.read(out)
        rows.append({"name": ch.name, "output": out, "missing": not out.is_file(), "provenance": block,
                     "stale": provenance.staleness(block, ch.source, root) if out.is_file() else ["not executed"]})
    return rows


# ---------------------------------------------------------------- kernel


def kernel_name() -> str:
    """A Jupyter kernel that runs *this* Python (the venv's).

    "python3" qualifies when its kernelspec launches `python`/`python3` (jupyter_client swaps
    in `sys.executable`) or this interpreter by path. Otherwise a kernelspec named
    "unlearnability" is installed into `sys.prefix` (ipykernel install --sys-prefix) once.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    plain = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    for name in ("python3", KERNEL_NAME):
        try:
            argv0 = ksm.get_kernel_spec(name).argv[0]
        except (NoSuchKernel, IndexError):
            continue
        if argv0 in plain or os.path.abspath(argv0) == os.path.abspath(sys.executable):
            return name
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name=f"Python ({Path(sys.prefix).name})", prefix=sys.prefix)
    return KERNEL_NAME


# ---------------------------------------------------------------- execution


def _tag_cells(path: Path) -> None:
    """Hide the parameter cells from readers and fold the code of every other code cell."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if PARAMETER_TAGS & set(tags):
            new = ["remove-cell"]
        elif cell.cell_type == "code" and not HIDE_TAGS & set(tags):
            new = ["hide-input"]
        else:
            new = []
        if new and not set(new) <= set(tags):
            cell.metadata["tags"] = tags + [t for t in new if t not in tags]
    nbformat.write(nb, path)


def _failed_cell(source: Path, cell_source: str | None) -> str:
    """'cell 4 (first line: `train(...)`)': where `cell_source` sits in the clean source notebook."""
    text = (cell_source or "").strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    try:
        import nbformat

        cells = nbformat.read(source, as_version=4).cells
        index = next((i for i, c in enumerate(cells) if c.source.strip() == text), None)
    except Exception:
        index = None
    if index is None:
        return f"the injected parameters cell (`{first[:80]}`)" if first.startswith("# Parameters") \
            else f"a cell (first line: `{first[:80]}`)"
    return f"cell {index} (first line: `{first[:80]}`)"


def execute_chapter(name: str, profile: str = "default", params: dict[str, Any] | None = None,
                    root: str | Path | None = None, progress: bool = True) -> Path:
    """Run `notebooks/NAME.ipynb` with Papermill into `book/NAME.ipynb` of the book for `profile` and
    `params` (`book_root`); returns that path, after recording its provenance.

    Markdown chapters are not executed (their path is returned). Raises ChapterError naming the
    notebook and the failing cell when a cell raises.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from unlearnability.book import provenance
    from unlearnability.store import ledger

    root = Path(root) if root else find_root()
    chapter = get_chapter(name, root)
    if chapter.kind == "markdown":
        return chapter.output
    if chapter.kind == "missing":
        raise ChapterError(f"chapter {chapter.name!r}: _toc.yml lists {chapter.file} but neither "
                           f"notebooks/{chapter.name}.ipynb nor {chapter.file}.md exists")
    parameters = {"profile": check_profile(profile), **(params or {})}
    output = book_root(root, profile, params) / "book" / chapter.output.name
    output.parent.mkdir(parents=True, exist_ok=True)
    source = chapter.source.relative_to(root)
    print(f"[book] executing {source} -> {_shown(output, root)} with {parameters}", file=sys.stderr, flush=True)
    results = results_path(output)
    results.unlink(missing_ok=True)  # the chapter writes its numbers afresh
    start = time.time()
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(results)
    try:
        # the kernel notes every run-store artifact it uses (ledger.py): what this chapter costs from a cold store
        with ledger.recording(profile, chapter.name, params) as ledger_file:
            # progress: the library's own bars (pretraining tokens, GRPO steps, sampling batches)
            # stream from the kernel's stderr to the terminal, instead of Papermill's cell counter
            pm.execute_notebook(str(chapter.source), str(output), parameters=parameters,
                                kernel_name=kernel_name(), progress_bar=False, cwd=str(root),
                                stderr_file=sys.stderr if progress else None)
    except PapermillExecutionError as err:
        where = _failed_cell(chapter.source, err.source)
        raise ChapterError(f"chapter {chapter.name!r} failed in {source}, {where}, "
                           f"In [{err.exec_count}]: {err.ename}: {err.evalue}\n"
                           f"(the partly executed notebook is {_shown(output, root)})") from err
    except Exception as err:  # kernel start-up or death, a cell timeout, I/O
        raise ChapterError(f"chapter {chapter.name!r} failed in {source}: "
                           f"{type(err).__name__}: {err}") from err
    finally:
        os.environ.pop(RESULTS_ENV, None) if previous is None else os.environ.__setitem__(RESULTS_ENV, previous)
    wall = time.time() - start
    _tag_cells(output)
    cold = _cold_minutes(ledger_file)
    provenance.write(output, results, provenance.collect(
        root, chapter.source, parameters["profile"], parameters, wall, ledger._threads(), cold))
    print(f"[book] {chapter.name}: done in {wall:.1f}s", file=sys.stderr, flush=True)
    return output


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _cold_minutes(ledger_file: Path | None) -> float | None:
    """What the chapter's ledger says its artifacts and cells cost (None without a ledger)."""
    from unlearnability.store import ledger

    if ledger_file is None or not Path(ledger_file).exists():
        return None
    lines = ledger.read(Path(ledger_file))
    arts = ledger.artifacts(lines).seconds.sum()
    own = lines.loc[lines.kind == "chapter", "seconds"]
    return float(arts + (own.iloc[-1] if len(own) else 0.0)) / 60


def prepare_artifacts(names: list[str], profile: str, params: dict[str, Any] | None, root: Path,
                      workers: int) -> None:
    """With `workers` > 1, make the run-store artifacts the chapters `names` declare (`book.plan`) on
    that many worker processes first, so the chapters then execute from a warm store. A failed
    artifact does not stop here: its chapter fails with the same error when it executes."""
    if workers <= 1 or not names:
        return
    from unlearnability.book import plan

    summary = plan.prepare(names, profile, params, workers=workers, root=root)
    print(f"[book] artifacts prepared on {workers} workers: {summary}", file=sys.stderr, flush=True)


def execute_all(profile: str = "default", params: dict[str, Any] | None = None,
                root: str | Path | None = None, progress: bool = True, fresh: bool = False,
                workers: int = 1) -> list[Path]:
    """Execute the notebook chapters in toc order (stops at the first failure): every chapter with
    `fresh`, else only those missing or stale in the book for `profile`/`params` (as make does).
    With `workers` > 1 their artifacts are made on that many workers first (`prepare_artifacts`).
    Returns the executed notebooks."""
    root = Path(root) if root else find_root()
    check_profile(profile)
    chapters = list_chapters(root)
    missing = [c for c in chapters if c.kind == "missing"]
    if missing:
        raise ChapterError("_toc.yml lists chapters with no source: " + ", ".join(
            f"{c.file} (want notebooks/{c.name}.ipynb or {c.file}.md)" for c in missing))
    status = {r["name"]: r for r in chapter_status(root, profile, params)}
    todo = [c for c in chapters if c.kind == "notebook" and (fresh or status[c.name]["stale"])]
    for c in chapters:
        if c.kind == "notebook" and c not in todo:
            print(f"[book] {c.name}: up to date, not re-executed", file=sys.stderr, flush=True)
        elif c in todo and not fresh:
            print(f"[book] {c.name}: {'; '.join(status[c.name]['stale'])}", file=sys.stderr, flush=True)
    prepare_artifacts([c.name for c in todo], profile, params, root, workers)
    return [execute_chapter(c.name, profile, params, root, progress) for c in todo]


def build_site(root: str | Path | None = None, extra_args: list[str] | None = None,
               profile: str = "default", params: dict[str, Any] | None = None) -> Path:
    """`jupyter-book build` of the book for `profile`/`params` (the committed book by default) with
    this venv's jupyter-book; returns its `_build/html`. Prints a line per stale chapter first; the
    committed book refuses to build with a chapter executed under another profile or parameters."""
    from unlearnability.book import provenance

    root = Path(root) if root else find_root()
    label = book_label(profile, params)
    stage = book_root(root, profile, params)
    absent = [ch for ch in list_chapters(root) if not (stage / "book" / ch.output.name).is_file()]
    if label is not None:  # a separate book: chapters it has not executed are the committed book's
        import shutil

        for ch in [c for c in absent if c.output.is_file()]:
            shutil.copy2(ch.output, stage / "book" / ch.output.name)
            if results_path(ch.output).is_file():
                shutil.copy2(results_path(ch.output), stage / "book" / results_path(ch.output).name)
        absent = [c for c in absent if not (stage / "book" / c.output.name).is_file()]
    if absent:
        how = "make book" if label is None else f"unlearn book --profile {profile}"
        raise ChapterError("cannot build: " + ", ".join(_shown(stage / "book" / c.output.name, root) for c in absent)
                           + f" not executed yet (run `{how}`, or `unlearn chapter NAME` for one)")
    for row in chapter_status(root, profile, params):
        if label is None and (why := provenance.foreign(row["provenance"])):
            raise ChapterError(f"{_shown(row['output'], root)} is not the default book's: {why}. Re-execute "
                               f"it with `unlearn chapter {row['name']}` (other profiles write to _build/<profile>/)")
        if row["stale"]:
            print(f"[book] {row['name']}: {provenance.notice(row['stale'])}", file=sys.stderr, flush=True)
    script = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(script)] if script.is_file() else [
        sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]
    cmd += ["build", ".", *(extra_args or [])]
    print(f"[book] {' '.join(cmd)}  (in {stage})", file=sys.stderr, flush=True)
    start = time.time()
    env = {**os.environ, "UNLEARN_PROJECT_ROOT": str(root), "UNLEARN_BOOK_PROFILE": profile,
           "UNLEARN_BOOK_LABEL": label or ""}
    result = subprocess.run(cmd, cwd=stage, env=env)
    if result.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {result.returncode}); see the log above")
    html_dir = stage / "_build" / "html"
    print(f"[book] site built in {time.time() - start:.1f}s: {html_dir / 'index.html'}", file=sys.stderr)
    return html_dir


# ---------------------------------------------------------------- command line


def _run_chapter(args: argparse.Namespace) -> int:
    def run(params):
        root = Path(args.root) if args.root else find_root()
        prepare_artifacts([get_chapter(args.name, root).name], args.profile, params, root, args.workers)
        return execute_chapter(args.name, args.profile, params, root, progress=not args.no_progress)

    return _execute_then_build(args, run)


def _run_book(args: argparse.Namespace) -> int:
    return _execute_then_build(args, lambda params: execute_all(
        args.profile, params, args.root, progress=not args.no_progress, fresh=args.fresh, workers=args.workers))


def _run_site(args: argparse.Namespace) -> int:
    try:
        print(build_site(args.root, profile=args.profile))
    except (ChapterError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _execute_then_build(args: argparse.Namespace, execute) -> int:
    """Parse -p values, execute, rebuild the site unless --no-build; errors -> message, exit 1."""
    try:
        params = parse_overrides(args.param)
        execute(params)
        if not args.no_build:
            build_site(args.root, profile=args.profile, params=params)
    except (ChapterError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default",
                   help="preset the chapter runs with: 'default' (the full CPU testbed), 'smoke' "
                        "(seconds, CI size), another preset name or a .yaml file (default: %(default)s)")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", default=[],
                   help="override a notebook parameter; VALUE is YAML (-p seeds=[1,42]); a dotted key "
                        "is a config override collected into `overrides` (-p grpo.lr=1e-4). Repeatable.")
    p.add_argument("--no-build", action="store_true", help="execute only; do not rebuild the HTML site")
    p.add_argument("--no-progress", action="store_true", help="do not stream the library's progress bars")
    p.add_argument("--root", default=None, help="book root holding _toc.yml (default: found from cwd)")
    p.add_argument("--workers", type=int, default=1,
                   help="make the chapters' run-store artifacts on this many worker processes (Dask, one "
                        "thread each) before executing them; 1 = the notebooks make them as they go "
                        "(cheaper for the smoke book) (default: %(default)s)")


def add_book_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `chapter` and `book` on an argparse subparsers object (e.g. the `unlearn` CLI's)."""
    ch = subparsers.add_parser(
        "chapter", help="re-execute one chapter with new parameters, then rebuild the site",
        description="Execute notebooks/NAME.ipynb with Papermill into book/NAME.ipynb (the page the "
                    "book renders), then rebuild the HTML site in _build/html unless --no-build. "
                    "Training runs are reused from the run store ($UNLEARN_HOME, default runs/).",
        epilog="example: unlearn chapter testbed --profile smoke -p seeds=[1,42] -p grpo.lr=1e-4")
    ch.add_argument("name", help="chapter name as in _toc.yml, e.g. introduction (book/introduction)")
    _common(ch)
    ch.set_defaults(func=_run_chapter)

    bk = subparsers.add_parser(
        "book", help="bring the book up to date: re-execute the missing or stale chapters, then build the site",
        description="Execute, in _toc.yml order, every notebook chapter that is missing or stale (its "
                    "notebook, the resolved preset or a library file changed since its recorded "
                    "execution; --fresh: every chapter), then run `jupyter-book build`. The default "
                    "profile writes the committed book (book/, site in _build/html); another profile or "
                    "any -p writes its own book under _build/<profile>/ (site in _build/<profile>/_build/html).",
        epilog="examples: unlearn book   |   unlearn book --fresh   |   unlearn book --profile smoke")
    _common(bk)
    bk.add_argument("--fresh", action="store_true", help="re-execute every chapter, stale or not")
    bk.set_defaults(func=_run_book)

    st = subparsers.add_parser(
        "site", help="only build the HTML site from the executed chapters in book/ (seconds, no training)",
        description="Run `jupyter-book build .` on the executed chapters already in book/ (the "
                    "committed default book) into _build/html; prints a line for each stale chapter.")
    st.add_argument("--root", default=None, help="book root holding _toc.yml (default: found from cwd)")
    st.add_argument("--profile", default="default",
                    help="which book: 'default' (the committed one in book/) or the profile of a book under _build/")
    st.set_defaults(func=_run_site)


def main(argv: list[str] | None = None) -> int:
    """`python -m unlearnability.book.build chapter|book ...` (the same commands as `unlearn`)."""
    parser = argparse.ArgumentParser(prog="python -m unlearnability.book.build", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_book_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
