"""Augmentation (paper §5.3), made exact: similar problems and subproblems of a testbed problem.

- similar: the same graph (same operators, same shape, same distractors) with new leaf
  values and constants and renamed variables;
- subproblems: for each needed intermediate node, the problem that asks for that node
  (its own ancestors only, no distractors).
Answers and worked solutions come from the generator, so no cross-validation is needed.
"""

from __future__ import annotations

import random

from ..problems import Problem
from .generator import LETTERS, SKILLS, Graph, Node, graph_of, problem_from_graph


def similar_problems(problem: Problem, k: int = 5, seed: int = 0, const_max: int = 9) -> list[Problem]:
    """k variants of `problem` with new constants and names (distinct questions)."""
    g = graph_of(problem)
    rng = random.Random(f"similar-{problem.id}-{seed}")
    out: list[Problem] = []
    seen = {problem.question}
    for _ in range(50 * k):
        if len(out) == k:
            break
        names = dict(zip([n.name for n in g.nodes], rng.sample(LETTERS, k=len(g.nodes))))
        nodes = []
        for n in g.nodes:
            if n.skill is None:
                const = rng.randrange(g.p)
            elif SKILLS[n.skill][2]:
                const = rng.randint(2 if n.skill == "mul_c" else 1, const_max)
            else:
                const = None
            nodes.append(Node(names[n.name], n.skill, tuple(names[a] for a in n.args), const))
        h = Graph(nodes, names[g.query], g.p, g.digits)
        prob = problem_from_graph(h, f"{problem.id}-sim{len(out)}",
                                  {"source": problem.id, "kind": "similar"})
        if prob.question not in seen:
            seen.add(prob.question)
            out.append(prob)
    return out


def subproblems(problem: Problem) -> list[Problem]:
    """One problem per needed intermediate node (the query itself excluded)."""
    g = graph_of(problem)
    by = g.by_name
    out = []
    for node in g.required()[:-1]:
        keep: set[str] = set()
        stack = [node.name]
        while stack:
            v = stack.pop()
            if v not in keep:
                keep.add(v)
                stack.extend(by[v].args)
        sub = Graph([n for n in g.nodes if n.name in keep], node.name, g.p, g.digits)
        out.append(problem_from_graph(sub, f"{problem.id}-sub{len(out)}",
                                      {"source": problem.id, "kind": "subproblem"}))
    return out
