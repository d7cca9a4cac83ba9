"""Score a response step by step: the testbed's exact stand-in for the paper's LLM judge.

A response is split at " . " into lines. The checker accepts any line order that respects
dependencies. A needed op node is *worked* when it appears once as

    name = definition = substituted values = result

with the problem's definition, the *true* operand values and the true result mod p
(x + y and x * y may be written in either operand order), after its operands; it is *terse*
when it appears as `name = result` with the true result (no working shown, so no order rule).

    score (0-5) = floor(5 * (worked steps + terse steps / 2) / needed steps), minus 1 if any
                  line is invalid (garbled, wrong, or a statement that was not asked for), floor 0
    exact       = every needed step worked, no invalid line, and the right final answer
    style       = the response's form (generator.STYLES): "answer" (no line), "worked" (every
                  line worked form), "terse" / "leap" (every line `name = value`, covering all /
                  not all needed nodes), else "mixed"

So each style of the generator, written correctly, scores: worked 5, terse floor(2.5) = 2,
leap 1 or 2 (tier >= 2; a tier-1 leap is a terse solution), answer-only 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unlearnability.world.generator import Graph, Node, num_tokens, substituted

COMMUTATIVE = {"add", "mul"}

ANSWER_RE = re.compile(r"answer((?:\s+\d+)+)\s*$")


@dataclass
class StepReport:
    score: int  # 0..5
    exact: bool  # a complete, valid worked solution with the right answer
    correct_answer: bool
    answer: str | None  # the final answer as written, or None
    steps_ok: list[str] = field(default_factory=list)  # needed nodes worked correctly
    failed: list[tuple[str, str]] = field(default_factory=list)  # (line or node, reason)
    steps_terse: list[str] = field(default_factory=list)  # needed nodes stated right without working
    style: str = "answer"  # the response's form: answer | worked | terse | leap | mixed


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
    terse: list[str] = []
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
        if toks.count("=") == 1:  # terse: `name = result`
            computed.add(name)
            if toks == [name, "="] + num_tokens(values[name], graph.digits):
                terse.append(name)
            else:
                failed.append((name, "wrong result"))
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
    for name in sorted(needed - set(ok) - set(terse) - {f[0] for f in failed}):
        failed.append((name, "missing"))
    score = (10 * len(ok) + 5 * len(terse)) // (2 * len(needed)) if needed else 5
    if any(reason != "missing" for _, reason in failed):
        score = max(0, score - 1)
    correct = answer == str(values[graph.query])
    exact = correct and len(ok) == len(needed) and not failed
    return StepReport(score, exact, correct, answer, ok, failed, terse, response_style(lines, needed))


def response_style(lines: list[str], needed: set[str]) -> str:
    """The response's form from the syntax of its lines (see the module docstring)."""
    if not lines:
        return "answer"
    kinds = {{3: "worked", 1: "terse"}.get(ln.split().count("="), "other") for ln in lines}
    if kinds == {"worked"}:
        return "worked"
    if kinds == {"terse"}:
        return "terse" if needed <= {ln.split()[0] for ln in lines} else "leap"
    return "mixed"


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
