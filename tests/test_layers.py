"""The package is laid out as its pipeline: a module imports only its own stage and the stages
below it, and no import cycle exists (function-local imports included: they are real edges)."""

import ast
from pathlib import Path

import pytest

import unlearnability

ROOT = Path(unlearnability.__file__).parent

# lowest first; a module of stage i may import stages 0..i (see unlearnability/__init__.py)
STAGES = [("config", "paper", "presets"), ("store",), ("world",), ("data",), ("policy",), ("evaluation",),
          ("train",), ("backends",), ("pipeline",), ("analysis",), ("book",), ("cli",)]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every unlearnability module `path` imports, at any depth in the file."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("unlearnability"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("unlearnability")}
    return {m for m in out if m in known and m != name and m != "unlearnability"}


def stage(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_stage():
    missing = sorted(n for n in modules() if n != "unlearnability" and stage(n) not in RANK)
    assert not missing, f"modules outside every stage (add them to STAGES): {missing}"


def test_no_import_from_a_higher_stage():
    bad = [f"{a} (stage {stage(a)}) imports {b} (stage {stage(b)})"
           for a, deps in graph().items() if a != "unlearnability" for b in deps
           if RANK[stage(b)] > RANK[stage(a)]]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_the_checks_can_fail(tmp_path):
    """The walker sees a function-local import (the kind that hid the old pretrain/midtrain cycle)."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from unlearnability.train import grpo\n")
    assert imports_of("unlearnability.store.x", f, {"unlearnability.train.grpo"}) == {"unlearnability.train.grpo"}
