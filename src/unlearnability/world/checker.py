"""Score a response step by step: the testbed's exact stand-in for the paper's LLM judge.

A response is split at " . " into lines. The checker accepts any line order that respects
dependencies. Each needed op node must appear once as

    name = definition = substituted values = result

with the problem's definition, the *true* operand values and the true result mod p
(x + y and x * y may be written in either operand order).

    score (0-5) = floor(5 * correct needed steps / needed steps), minus 1 if any line is
                  invalid (garbled, wrong, or a statement that was not asked for), floor 0
    exact       = every needed step correct, no invalid line, and the right final answer
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .generator import Graph, Node, num_tokens, substituted

COMMUTATIVE = {"add", "mul"}

ANSWER_RE = re.compile(r"answer((?:\s+\d+)+)\s*$")


@dataclass
class StepReport:
    score: int  # 0..5
    exact: bool  # a complete, valid worked solution with the right answer
    correct_answer: bool
    answer: str | None  # the final answer as written, or None
    steps_ok: list[str] = field(default_factory=list)  # needed nodes computed correctly
    failed: list[tuple[str, str]] = field(default_factory=list)  # (line or node, reason)


def extract_answer(response: str) -> str | None:
    """The number after the final 'answer' (its digit tokens joined, leading zeros dropped), or None."""
    m = ANSWER_RE.search(response.strip())
    return str(int("".join(m.group(1).split()))) if m else None


def exact_reward(response: str, gold: str) -> float:
    """The testbed's outcome reward: 1.0 if the final answer equals the gold answer."""
    return 1.0 if extract_answer(response) == str(gold) else 0.0


def check_steps(graph: Graph, response: str) -> StepReport:
    by = graph.by_name
    needed = {n.name for n in graph.required()}
    values = graph.values
    body = response.strip()
    answer = extract_answer(body)
    if answer is not None:
        body = body[: body.rfind("answer")].strip()
    lines = [ln.strip() for ln in body.split(" .") if ln.strip()]
    ok: list[str] = []
    failed: list[tuple[str, str]] = []
    computed: set[str] = {n.name for n in graph.nodes if n.skill is None}
    for line in lines:
        toks = line.split()
        name = toks[0] if toks else ""
        node = by.get(name)
        if node is None or node.skill is None:
            failed.append((line, "not a statement to compute"))
            continue
        if name not in needed:
            failed.append((line, "not needed for the answer"))
            continue
        if name in computed:
            failed.append((line, "computed twice"))
            continue
        want = _valid_lines(node, values, graph.digits)
        missing = [a for a in node.args if a not in computed]
        computed.add(name)  # attempted: later lines may use it, right or wrong
        if toks not in want:
            failed.append((name, _why(toks, want[0])))
        elif missing:
            failed.append((name, f"uses {', '.join(missing)} before computing it"))
        else:
            ok.append(name)
    for name in sorted(needed - set(ok) - {f[0] for f in failed}):
        failed.append((name, "missing"))
    score = (5 * len(ok)) // len(needed) if needed else 5
    if any(reason != "missing" for _, reason in failed):
        score = max(0, score - 1)
    correct = answer == str(values[graph.query])
    exact = correct and len(ok) == len(needed) and not failed
    return StepReport(score, exact, correct, answer, ok, failed)


def _valid_lines(node: Node, values: dict[str, int], digits: int) -> list[list[str]]:
    """The token lists a correct step may be: `name = definition = values = result`, where
    x + y and x * y may be written in either order (each part on its own)."""
    result = num_tokens(values[node.name], digits)
    nodes = [node]
    if node.skill in COMMUTATIVE:
        nodes.append(Node(node.name, node.skill, node.args[::-1], node.const))
    return [[node.name, "="] + a.definition(digits) + ["="] + substituted(b, values, digits) + ["="] + result
            for a in nodes for b in nodes]


def _why(toks: list[str], want: list[str]) -> str:
    """Which part of `name = definition = values = result` is wrong."""
    got, exp = " ".join(toks).split(" = "), " ".join(want).split(" = ")
    if len(got) != len(exp):
        return "malformed line"
    for part, reason in zip(range(1, 4), ("wrong definition", "wrong operand value", "wrong arithmetic")):
        if got[part] != exp[part]:
            return reason
    return "malformed line"
