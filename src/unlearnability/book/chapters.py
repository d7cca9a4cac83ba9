"""The book's chapters and profiles: what `_toc.yml` lists, where an execution lands, how a
command line names a profile and its parameters (`book.build` executes them; `book.notebook` is
what a running chapter calls)."""

from __future__ import annotations

import keyword
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from unlearnability.config import parse_value

PROFILES = ("default", "smoke")  # always known; presets/*.yaml add more


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
