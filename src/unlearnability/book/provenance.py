"""Where an executed chapter came from, and whether it is still what its sources would give.

After Papermill executes `notebooks/NAME.ipynb`, the runner (`book.execute_chapter`) records a
`provenance` block in the executed notebook's metadata (`metadata.unlearnability.provenance`)
and in the chapter's results file `NAME.json` beside it:

    commit        the library commit it was executed from (None outside a git checkout)
    clean         whether the checkout's tracked files matched that commit
    date          UTC, ISO 8601
    profile       the preset name (or .yaml file) and `parameters`, the notebook parameters given
    wall_seconds  the execution's wall time; `threads` torch's threads in the runner
    cold_minutes  what the chapter's run-store artifacts and cells cost from a cold store (ledger)

and, for the freshness check, three fingerprints taken at execution:

    notebook_hash  sha256 of the source notebook's code cells (the parameters cell included)
    config_hash    sha256 of the resolved config (profile + overrides) the chapter ran with
    library        {path: sha256} of every file of the library (src/unlearnability/**, presets too)

`staleness(...)` compares them with the working tree now and names what changed: the chapter's
code cells, the resolved preset, the library files. The book shows that line at the top of the
page (book/_ext/provenance.py) and `unlearn site` prints it; nothing is re-executed by it.

Simplification: the fingerprints are of source text, so a change that does not alter a number
(a comment, a docstring) also marks a chapter stale. Stale means "not re-executed since", not
"wrong".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

META_KEY = "unlearnability"
LIBRARY_GLOBS = ("src/unlearnability/**/*.py", "src/unlearnability/presets/*.yaml")
FIELDS = ("commit", "clean", "date", "profile", "parameters", "wall_seconds", "threads", "cold_minutes")


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# ----------------------------------------------------------------------------- fingerprints


def notebook_hash(source: str | Path) -> str:
    """sha256 of a notebook's code cells, in order (outputs, metadata and markdown left out)."""
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    return _sha("\n\0\n".join(c.source.strip() for c in nb.cells if c.cell_type == "code"))


def config_hash(profile: str, overrides: dict | None = None) -> str:
    """sha256 of the resolved config a chapter with `profile` and config `overrides` runs with."""
    from unlearnability.config import load_config

    cfg = load_config(profile, overrides or None)
    return _sha(json.dumps(cfg.to_dict(), sort_keys=True, default=str))


def library_files(root: str | Path) -> dict[str, str]:
    """{path relative to root: sha256} of the library's files under `root`."""
    root = Path(root)
    out = {}
    for pattern in LIBRARY_GLOBS:
        for path in sorted(root.glob(pattern)):
            if "__pycache__" not in path.parts:
                out[path.relative_to(root).as_posix()] = _sha(path.read_bytes())[:16]
    return out


def git_state(root: str | Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files are unchanged) of the checkout at `root`; (None, None)
    when `root` is not a git checkout or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "notebooks")
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, not dirty.strip()


# ----------------------------------------------------------------------------- recording


def collect(root: str | Path, source: str | Path, profile: str, parameters: dict[str, Any],
            wall_seconds: float, threads: int, cold_minutes: float | None) -> dict[str, Any]:
    """The provenance block of one execution (FIELDS plus the three fingerprints)."""
    commit, clean = git_state(root)
    params = {k: v for k, v in parameters.items() if k != "profile"}
    return {
        "commit": commit, "clean": clean,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "profile": profile, "parameters": params,
        "wall_seconds": round(float(wall_seconds), 1), "threads": int(threads),
        "cold_minutes": None if cold_minutes is None else round(float(cold_minutes), 1),
        "notebook_hash": notebook_hash(source),
        "config_hash": config_hash(profile, params.get("overrides")),
        "library": library_files(root),
    }


def write(notebook: str | Path, results: str | Path, block: dict[str, Any]) -> None:
    """Put `block` into the executed notebook's metadata and into the results JSON (created if the
    chapter wrote none), the library fingerprints in the notebook only."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.setdefault(META_KEY, {})["provenance"] = block
    nbformat.write(nb, str(notebook))
    merge_json(results, {"provenance": {k: v for k, v in block.items() if k != "library"}})


def merge_json(path: str | Path, data: dict[str, Any]) -> dict[str, Any]:
    """Update the JSON object in `path` (created if missing) with `data`; numpy / pandas values as
    plain JSON. Returns the merged object."""
    path = Path(path)
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(json.loads(json.dumps(data, default=_plain)))
    path.write_text(json.dumps(merged, indent=1, default=_plain) + "\n")
    return merged


def _plain(value: Any) -> Any:
    """numpy / pandas scalars and arrays as plain JSON values."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read(notebook: str | Path) -> dict[str, Any] | None:
    """The provenance block of an executed notebook, or None (not executed by the runner)."""
    import nbformat

    path = Path(notebook)
    if not path.is_file():
        return None
    nb = nbformat.read(str(path), as_version=4)
    return nb.metadata.get(META_KEY, {}).get("provenance")


# ----------------------------------------------------------------------------- freshness


def staleness(block: dict[str, Any] | None, source: str | Path, root: str | Path) -> list[str]:
    """Why an executed chapter is out of date against the working tree at `root` (empty: fresh).

    block: its provenance (None: never executed by the runner); source: notebooks/NAME.ipynb.
    """
    if block is None:
        return ["no provenance recorded (executed before the book recorded it, or by hand)"]
    reasons = []
    if block.get("notebook_hash") != notebook_hash(source):
        reasons.append(f"its notebook {Path(source).name} changed (code cells)")
    params = block.get("parameters") or {}
    try:
        now = config_hash(block["profile"], params.get("overrides"))
    except Exception as err:  # a profile that no longer exists
        now = f"unresolvable ({err})"
    if block.get("config_hash") != now:
        reasons.append(f"the resolved {block['profile']!r} config changed")
    old, new = block.get("library") or {}, library_files(root)
    changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    if changed:
        shown = ", ".join(p.removeprefix("src/unlearnability/") for p in changed[:8])
        more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        reasons.append(f"library files changed since its commit {str(block.get('commit'))[:10]}: {shown}{more}")
    return reasons


def foreign(block: dict[str, Any] | None, profile: str = "default") -> str | None:
    """Why a committed chapter is not the `profile` book's (another profile, or parameters), or None."""
    if block is None:
        return None
    if block.get("profile") != profile:
        return f"executed with profile {block.get('profile')!r}, not {profile!r}"
    if block.get("parameters"):
        return f"executed with parameters {block['parameters']}"
    return None


def notice(reasons: list[str]) -> str:
    """The one-line notice shown at the top of a stale page ('' when fresh)."""
    return "" if not reasons else "Stale: " + "; ".join(reasons) + \
        ". Re-execute it with `make book` (only the stale chapters run)."


def summary_line(block: dict[str, Any] | None) -> str:
    """'Executed 2026-12-01 from 898ae16 (clean), profile default, 12.3 min at 1 thread; 140 min cold.'"""
    if block is None:
        return "Not executed by the book runner: no provenance."
    commit = (block.get("commit") or "no commit")[:10]
    clean = {True: "clean", False: "uncommitted changes", None: "no git"}[block.get("clean")]
    params = f" with {json.dumps(block['parameters'])}" if block.get("parameters") else ""
    cold = f"; {block['cold_minutes']:.0f} min from a cold store" if block.get("cold_minutes") is not None else ""
    return (f"Executed {str(block.get('date', ''))[:10]} from {commit} ({clean}), profile "
            f"{block.get('profile')}{params}, {block.get('wall_seconds', 0) / 60:.1f} min wall at "
            f"{block.get('threads')} thread{'s' if block.get('threads') != 1 else ''}{cold}.")
