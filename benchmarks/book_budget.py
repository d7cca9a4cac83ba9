"""What the whole book costs from a cold store, from the ledgers its last executions wrote.

    python benchmarks/book_budget.py [--profile default] [--budget-min 60] [--store DIR]

`unlearn chapter` / `unlearn book` write one ledger per chapter (`store.ledger`): every run-store
artifact the chapter used (base and mid-trained models, GRPO and SFT runs, pass@k evaluations,
gradient and other analyses) and its cells' own time. A cold store pays for each artifact once,
in the first chapter (book order) that uses it, at the seconds recorded when it was made on this
machine, under whatever ran beside it, at the thread count recorded. Artifacts made before the
ledger existed have no time unless they are models or GRPO runs (then their saved training
seconds); they are counted as untimed, so the total is a lower bound when any are.

Target (performance issue): the default book <= 60 min on 2 cores; the smoke book <= 3 min.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _min(sec: float) -> str:
    return f"{sec / 60:7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--budget-min", type=float, default=None, help="target in minutes (default: 60, smoke 3)")
    ap.add_argument("--store", default=None, help="run store (default: $UNLEARN_HOME or runs/)")
    args = ap.parse_args()

    from unlearnability.book.chapters import list_chapters
    from unlearnability.store import ledger

    chapters = [c.name for c in list_chapters() if c.kind == "notebook"]
    b = ledger.book_budget(args.profile, chapters, Path(args.store) if args.store else None)
    budget = args.budget_min if args.budget_min is not None else (3.0 if args.profile == "smoke" else 60.0)
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
    print(f"\ntotal {b.seconds / 60:.1f} min{bound}; budget {budget:g} min: "
          f"{'met' if b.seconds / 60 <= budget and not bound else 'NOT met' if b.seconds / 60 > budget else 'unknown'}")
    print(f"timed at {', '.join(map(str, threads)) or 'unrecorded'} thread(s); {b.untimed} artifact(s) untimed; "
          f"{missing} chapter(s) without a ledger")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
