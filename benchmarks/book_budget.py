"""What the whole book costs from a cold store: the chapters' ledgers, and the wall time of a cold build.

    python benchmarks/book_budget.py [--profile default] [--target-min 180] [--store DIR]
    python benchmarks/book_budget.py --cold-since EPOCH --wall-seconds S   # `make book` does this

`unlearn chapter` / `unlearn book` write one ledger per chapter (`store.ledger`): every run-store
artifact the chapter used (base and mid-trained models, GRPO and SFT runs, pass@k evaluations,
gradient and other analyses) and its cells' own time. A cold store pays for each artifact once,
in the first chapter (book order) that uses it, at the seconds recorded when it was made on this
machine, under whatever ran beside it, at the thread count recorded. Artifacts made before the
ledger existed have no time unless they are models or GRPO runs (then their saved training
seconds); they are counted as untimed, so the total is a lower bound when any are.

The ledgers add up one-core work; `unlearn book` makes the artifacts on several workers, so the
wall time of a cold build is what the target is about. `make book` times `unlearn book` and passes
`--cold-since` (when it started) and `--wall-seconds`: if every artifact in the ledgers was made
after that start (a cold store), the build is recorded in `book.json` beside the executed chapters
(`book/book.json` for the default profile): cold_wall_minutes, cores, date, commit, and per chapter
the ledger's minutes. A warm build is not recorded (it says how many artifacts it found made).
Without those flags the script prints the ledgers and the recorded cold build, if any.

Targets (performance issue): the default book cold in at most 180 min wall on 2 cores; the smoke
book in at most 3 min (serial: its ledger total is its wall time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path


def _min(sec: float) -> str:
    return f"{sec / 60:7.1f}"


def cold_report_path(profile: str, root: Path) -> Path:
    """book.json beside the executed chapters of `profile` (book/ for the default profile)."""
    from unlearnability.book.chapters import book_label

    label = book_label(profile, None)
    return (root if label is None else root / "_build" / label) / "book" / "book.json"


def made_before(budget, since: float, store: Path) -> list[str]:
    """The artifacts of `budget` whose saved time (written when each was made) predates `since`,
    or that have none: a build that started at `since` did not make them all."""
    from unlearnability.store import ledger

    old = []
    for path in budget.artifacts.path:
        full = Path(path) if Path(path).is_absolute() else store / path
        f = ledger.seconds_path(full)
        if not f.exists() or f.stat().st_mtime < since:
            old.append(str(path))
    return old


def cold_report(budget, profile: str, wall_seconds: float, target_min: float, root: Path) -> dict:
    from unlearnability.book.provenance import git_state  # commit and clean as each chapter records them

    commit, clean = git_state(root)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    minutes = {r.chapter: round(r.seconds / 60, 1) for r in budget.chapters.itertuples()}
    return {"profile": profile, "cold_wall_minutes": round(wall_seconds / 60, 1), "cores": cores,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "clean": clean,
            "one_core_minutes": round(budget.seconds / 60, 1), "target_minutes": target_min,
            "met": wall_seconds / 60 <= target_min, "chapters": minutes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--target-min", type=float, default=None,
                    help="target in minutes of wall time (default: 180 on 2 cores; smoke 3)")
    ap.add_argument("--store", default=None, help="run store (default: $UNLEARN_HOME or runs/)")
    ap.add_argument("--cold-since", type=float, default=None,
                    help="when the build started (Unix seconds): record it as cold if it made every artifact")
    ap.add_argument("--wall-seconds", type=float, default=None, help="the build's wall time (with --cold-since)")
    ap.add_argument("--root", default=".", help="the book's root (where book/ is)")
    args = ap.parse_args()
    if (args.cold_since is None) != (args.wall_seconds is None):
        ap.error("--cold-since and --wall-seconds go together")

    from unlearnability.book.chapters import list_chapters
    from unlearnability.store import ledger, runs

    store = Path(args.store) if args.store else runs.home()
    chapters = [c.name for c in list_chapters() if c.kind == "notebook"]
    b = ledger.book_budget(args.profile, chapters, store)
    target = args.target_min if args.target_min is not None else (3.0 if args.profile == "smoke" else 180.0)
    print(f"profile {args.profile}: cold-store cost by chapter (minutes on this machine, book order)\n")
    print(f"{'chapter':30s} {'artifacts':>9s} {'new':>4s} {'untimed':>7s} {'artifacts':>9s} {'cells':>7s} {'total':>7s}")
    for r in b.chapters.itertuples():
        if not r.executed:
            print(f"{r.chapter:30s}  (no ledger: execute it with `unlearn chapter {r.chapter} --profile {args.profile}`)")
            continue
        cells = "    n/a" if r.chapter_seconds != r.chapter_seconds else _min(r.chapter_seconds)
        print(f"{r.chapter:30s} {r.artifacts:9d} {r.new:4d} {r.untimed:7d} {_min(r.artifact_seconds):>9s} "
              f"{cells:>7s} {_min(r.seconds):>7s}")
    print("\nby kind of artifact (each paid once):")
    for kind, r in b.kinds.iterrows():
        print(f"  {kind:22s} {int(r['count']):4d} x, {r.seconds / 60:7.1f} min, {int(r.untimed)} untimed")
    threads = sorted({int(t) for t in b.artifacts.threads.dropna()})
    missing = int((~b.chapters.executed).sum())
    bound = " (a lower bound: untimed artifacts or unexecuted chapters)" if b.untimed or missing else ""
    print(f"\none-core work {b.seconds / 60:.1f} min{bound}, timed at {', '.join(map(str, threads)) or 'unrecorded'} "
          f"thread(s); {b.untimed} artifact(s) untimed; {missing} chapter(s) without a ledger")
    if args.profile == "smoke":  # made serially: the ledger's total is the wall time
        print(f"smoke budget {b.seconds / 60:.1f} min against {target:g}: "
              f"{'met' if b.seconds / 60 <= target and not bound else 'NOT met' if b.seconds / 60 > target else 'unknown'}")
    report = cold_report_path(args.profile, Path(args.root))
    if args.cold_since is not None:
        old = made_before(b, args.cold_since, store)
        if missing or old:
            print(f"this build was not cold ({len(old)} artifact(s) made before it started, {missing} chapter(s) "
                  f"without a ledger): {report} not written")
        else:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(cold_report(b, args.profile, args.wall_seconds, target, Path(args.root)),
                                         indent=1) + "\n")
            print(f"cold build recorded in {report}")
    if report.exists():
        r = json.loads(report.read_text())
        print(f"cold build ({r['date'][:10]}, commit {str(r['commit'])[:10]}, {r['cores']} cores): "
              f"{r['cold_wall_minutes']:g} min wall against {target:g}: {'met' if r['cold_wall_minutes'] <= target else 'NOT met'}")
    elif args.profile != "smoke":
        print(f"no cold build recorded ({report}): `make book FRESH=1` on a cold store records one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
