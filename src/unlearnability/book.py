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

Each execution records its provenance (`provenance.py`: commit, date, profile, parameters, wall
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
hide/remove tag or `show-input`. Chapters show their parameters with `show_parameters(...)`.
"""

from __future__ import annotations

import argparse
import html
import keyword
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import parse_value

PROFILES = ("default", "smoke")  # always known; presets/*.yaml add more
KERNEL_NAME = "unlearnability"  # kernelspec installed into the venv when "python3" is not this python
HIDE_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell", "show-input"}
PARAMETER_TAGS = {"parameters", "injected-parameters"}


class ChapterError(RuntimeError):
    """A chapter could not be executed (missing source, or a cell raised). The message says where."""


@dataclass(frozen=True)
class Chapter:
    """One `_toc.yml` entry below the root page."""

    name: str  # "introduction"
    file: str  # the toc entry, e.g. "book/introduction"
    kind: str  # "notebook" (has notebooks/NAME.ipynb), "markdown" (book/NAME.md) or "missing"
    source: Path | None  # notebooks/NAME.ipynb or book/NAME.md
    output: Path  # the page Jupyter Book renders: book/NAME.ipynb or book/NAME.md


# ---------------------------------------------------------------- chapters


def find_root(start: str | Path | None = None) -> Path:
    """The book's root: the nearest folder at or above `start` (default: cwd) holding `_toc.yml`.

    `$UNLEARN_BOOK_ROOT` wins when set. Falls back to the source checkout this module lives in.
    """
    if os.environ.get("UNLEARN_BOOK_ROOT"):
        return Path(os.environ["UNLEARN_BOOK_ROOT"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "_toc.yml").is_file():
        return checkout
    raise FileNotFoundError(f"no _toc.yml in {here} or above; run from the repository root")


def _toc_files(node: Any) -> list[str]:
    """Every `file:` entry below a toc node, in reading order (chapters, parts, sections)."""
    out: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(str(node["file"]))
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                out.extend(_toc_files(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(_toc_files(child))
    return out


def list_chapters(root: str | Path | None = None) -> list[Chapter]:
    """The chapters of `_toc.yml` in reading order (the root page excluded)."""
    root = Path(root) if root else find_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text()) or {}
    chapters = []
    for file in _toc_files({k: v for k, v in toc.items() if k != "file"}):
        file = re.sub(r"\.(ipynb|md)$", "", file)
        name = Path(file).name
        notebook, markdown = root / "notebooks" / f"{name}.ipynb", root / f"{file}.md"
        if notebook.is_file():
            chapters.append(Chapter(name, file, "notebook", notebook, root / f"{file}.ipynb"))
        elif markdown.is_file():
            chapters.append(Chapter(name, file, "markdown", markdown, markdown))
        else:
            chapters.append(Chapter(name, file, "missing", None, root / f"{file}.ipynb"))
    return chapters


def get_chapter(name: str, root: str | Path | None = None) -> Chapter:
    """The chapter called `name` (or listed as `name` in the toc, e.g. "book/testbed")."""
    chapters = list_chapters(root)
    key = Path(re.sub(r"\.(ipynb|md)$", "", name)).name
    for ch in chapters:
        if ch.name == key:
            return ch
    raise ChapterError(f"no chapter {name!r} in _toc.yml; chapters: {', '.join(c.name for c in chapters)}")


def book_label(profile: str, params: dict[str, Any] | None = None) -> str | None:
    """None for the committed book (the default profile, no parameters); else the name of the
    separate book under `_build/` that the execution lands in ("smoke", "default-custom", ...)."""
    if profile == "default" and not params:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(profile).stem if profile.endswith((".yaml", ".yml")) else profile)
    return name + ("-custom" if params else "")


def book_root(root: Path, profile: str, params: dict[str, Any] | None = None) -> Path:
    """The book root an execution with `profile` and `params` writes to: `root` itself for the
    committed default book, else `root/_build/<label>`, laid out as a book (the same `_config.yml`,
    `_toc.yml`, markdown pages and extensions, copied fresh)."""
    import shutil

    label = book_label(profile, params)
    if label is None:
        return root
    stage = root / "_build" / label
    (stage / "book").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        if (root / name).is_file():
            shutil.copy2(root / name, stage / name)
    for page in (root / "book").glob("*.md"):
        shutil.copy2(page, stage / "book" / page.name)
    if (root / "book" / "_ext").is_dir():
        shutil.copytree(root / "book" / "_ext", stage / "book" / "_ext", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return stage


def results_path(output: Path) -> Path:
    """`book/NAME.json` beside an executed `book/NAME.ipynb`: the chapter's numbers and provenance."""
    return output.with_suffix(".json")


RESULTS_ENV = "UNLEARN_RESULTS"  # where the running chapter's `save_results` writes


def save_results(results: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Called by a chapter: merge its headline numbers (every verdict with its numbers) into its
    results file `book/NAME.json` ($UNLEARN_RESULTS, set by the runner). Outside the runner,
    with no path, nothing is written. Returns the results."""
    from .provenance import merge_json

    target = path or os.environ.get(RESULTS_ENV)
    if target:
        merge_json(target, results)
    return results


def save_table(name: str, table, path: str | Path | None = None) -> Path | None:
    """Called by a chapter: write a per-example table as `book/data/NAME.csv` beside its results
    file (so anyone can recompute its numbers without the run store). Outside the runner, with no
    path, nothing is written. Returns the path written, or None."""
    target = Path(path) if path else (Path(os.environ[RESULTS_ENV]).parent / "data" / f"{name}.csv"
                                      if os.environ.get(RESULTS_ENV) else None)
    if target is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(target, index=False, float_format="%.6g")
    return target


def chapter_status(root: Path, profile: str = "default", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per notebook chapter of the book for `profile`/`params`: name, output, provenance
    block (or None), stale reasons (empty: fresh), missing."""
    from . import provenance

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


# ---------------------------------------------------------------- parameters


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """['seeds=[1,42]', 'grpo.lr=1e-4'] -> {'seeds': [1, 42], 'overrides': {'grpo': {'lr': 1e-4}}}.

    A plain key names a notebook parameter; a dotted key is a config override, collected
    (nested) into the parameter `overrides`.
    """
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"-p {item!r}: expected key=value, e.g. -p seeds=[1,42] or -p grpo.lr=1e-4")
        key, raw = (s.strip() for s in item.split("=", 1))
        parts = key.split(".")
        if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
            raise ValueError(f"-p {item!r}: {key!r} is not a parameter name (letters, digits, _ and dots)")
        value = parse_value(raw)
        if len(parts) == 1:
            if key == "profile":
                raise ValueError("-p profile=...: use --profile instead")
            params[key] = value
            continue
        node = params.setdefault("overrides", {})
        if not isinstance(node, dict):
            raise ValueError(f"-p {item!r}: 'overrides' was already set to a non-mapping")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return params


def known_profiles() -> list[str]:
    """Profile names a chapter accepts: the built-in pair plus every preset file."""
    names = list(PROFILES)
    try:
        from unlearnability.config import preset_names

        names += [n for n in preset_names() if n not in names]
    except Exception:  # config module unavailable: the built-in names still work
        pass
    return names


def check_profile(profile: str) -> str:
    """`profile` if it is a known preset name or an existing .yaml file (made absolute), else an error."""
    if profile in known_profiles():
        return profile
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return str(path.resolve())
    raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(known_profiles())} (or a .yaml path)")


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

    from . import ledger, provenance

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
    from . import ledger

    if ledger_file is None or not Path(ledger_file).exists():
        return None
    lines = ledger.read(Path(ledger_file))
    arts = ledger.artifacts(lines).seconds.sum()
    own = lines.loc[lines.kind == "chapter", "seconds"]
    return float(arts + (own.iloc[-1] if len(own) else 0.0)) / 60


def prepare_artifacts(names: list[str], profile: str, params: dict[str, Any] | None, root: Path,
                      workers: int) -> None:
    """With `workers` > 1, make the run-store artifacts the chapters `names` declare (`plan.py`) on
    that many worker processes first, so the chapters then execute from a warm store. A failed
    artifact does not stop here: its chapter fails with the same error when it executes."""
    if workers <= 1 or not names:
        return
    from . import plan

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
    from . import provenance

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


# ---------------------------------------------------------------- shown in chapters


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)


def _is_parameter(name: str, value: Any) -> bool:
    return (not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _PLAIN))


class ParametersTable:
    """The parameters a chapter ran with, as a small table (HTML in the book, text elsewhere)."""

    def __init__(self, params: dict[str, Any], chapter: str | None = None):
        self.params = params
        self.chapter = chapter

    def command(self) -> str:
        """The command that re-executes the chapter with exactly these parameters."""
        return chapter_command(self.chapter or "NAME", str(self.params.get("profile", "default")), self.params)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(_yaml_flow(v))}</code></td></tr>"
                       for k, v in self.params.items())
        return ("<div class=\"chapter-parameters\"><table class=\"table\" style=\"width: auto\">"
                "<caption>Parameters this page was executed with</caption>"
                f"<thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
                f"<p>Re-run this chapter: <code>{html.escape(self.command())}</code></p></div>")

    def __repr__(self) -> str:
        width = max((len(k) for k in self.params), default=0)
        lines = [f"{k:<{width}}  {_yaml_flow(v)}" for k, v in self.params.items()]
        return "\n".join(["Parameters this page was executed with:", *lines, f"re-run: {self.command()}"])


def chapter_command(chapter: str, profile: str, params: dict[str, Any]) -> str:
    """`unlearn chapter CHAPTER --profile PROFILE -p key=value ...` for these notebook parameters
    (`profile` skipped; an `overrides` dict spelled as dotted keys; values as YAML)."""
    args = ["unlearn", "chapter", chapter, "--profile", shlex.quote(profile)]
    for key, value in params.items():
        if key == "profile":
            continue
        if key == "overrides" and isinstance(value, dict):
            for dotted, leaf in _flatten(value):
                args += ["-p", shlex.quote(f"{dotted}={_yaml_flow(leaf)}")]
        else:
            args += ["-p", shlex.quote(f"{key}={_yaml_flow(value)}")]
    return " ".join(args)


def _yaml_flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def show_parameters(namespace: dict[str, Any], names: list[str] | None = None,
                    chapter: str | None = None) -> ParametersTable:
    """A table of the parameters a chapter ran with, for the cell right after the parameters.

    Pass `globals()` (plain values are kept: numbers, strings, lists, dicts; modules, functions
    and names starting with "_" are dropped) or an explicit dict; `names` picks and orders.
    `profile` comes first. `chapter` fills in the re-run command shown under the table.
    """
    if names is not None:
        params = {n: namespace[n] for n in names if n in namespace}
    else:
        params = {k: v for k, v in namespace.items() if _is_parameter(k, v)}
    if "profile" in params:
        params = {"profile": params.pop("profile"), **params}
    return ParametersTable(params, chapter)


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
    """`python -m unlearnability.book chapter|book ...` (the same commands as `unlearn`)."""
    parser = argparse.ArgumentParser(prog="python -m unlearnability.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_book_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
