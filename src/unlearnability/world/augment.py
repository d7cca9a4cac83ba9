"""Augmentation (paper §5.3), made exact: similar problems and subproblems of a testbed problem.

- similar: the same graph (same operators, same shape, same distractors) with new leaf
  values and constants and renamed variables;
- subproblems: for each needed intermediate node, the problem that asks for that node
  (its own ancestors only, no distractors).
Answers and worked solutions come from the generator, so no cross-validation is needed.

Ids: `<source id>-sim<i>` and `<source id>-sub<i>` (as `world.llm_augment` names the paper-scale
ones); meta["kind"] (similar | subproblem) and meta["source"] / meta["source_id"] (the original).

Training on augmented data (`data.augment` in the config; `tasks.load_task` calls
`augment_training_set`): the training problems kept (all, or `data.train_ids`) followed by the
augmentations of each (or of `data.augment.ids` only), source by source, similar problems
first. An augmentation whose question is a validation question or repeats a question already
in the list is dropped (so no validation problem is trained on; the testbed's small worlds
make such collisions possible, mostly for one-op subproblems).
"""

from __future__ import annotations

import random

from unlearnability.world.generator import (
    LETTERS,
    SKILLS,
    Graph,
    Node,
    coverage_class,
    graph_of,
    problem_from_graph,
)
from unlearnability.world.problems import Problem


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


def augmentations(problem: Problem, kinds: list[str], n_similar: int = 5, seed: int = 0,
                  const_max: int = 9, coverage: dict[str, float] | None = None) -> list[Problem]:
    """The augmented problems of one testbed problem, similar problems first, then subproblems
    (deterministic in (problem, kinds, n_similar, seed)). meta gains source_id and, with
    `coverage`, the coverage class of the problem's skills (as training problems have)."""
    out: list[Problem] = []
    if "similar" in kinds:
        out += similar_problems(problem, n_similar, seed, const_max)
    if "subproblem" in kinds:
        out += subproblems(problem)
    for p in out:
        p.meta["source_id"] = problem.id
        if coverage is not None:
            p.meta["coverage"] = coverage_class(p.meta["skills"], coverage)
    return out


def augment_training_set(train: list[Problem], spec: dict, exclude: set[str], const_max: int = 9,
                         coverage: dict[str, float] | None = None) -> list[Problem]:
    """`train` followed by the augmentations `spec` (a checked `data.augment`: kinds, n_similar,
    seed, ids) asks for, source by source. Augmentations whose question is in `exclude` (the
    validation questions) or already in the list are dropped. ids must be among `train`'s."""
    kept = {p.id for p in train}
    targets = spec.get("ids")
    if targets is not None:
        missing = [i for i in targets if i not in kept]
        if missing:
            raise ValueError(f"data.augment.ids: {len(missing)} ids are not among the training problems kept "
                             f"(data.train_ids), e.g. {missing[:3]}")
    chosen = set(targets) if targets is not None else kept
    seen = {p.question for p in train} | set(exclude)
    out = list(train)
    for p in train:
        if p.id not in chosen:
            continue
        for a in augmentations(p, spec["kinds"], spec["n_similar"], spec["seed"], const_max, coverage):
            if a.question not in seen:
                seen.add(a.question)
                out.append(a)
    return out


def augmentation_kind(problem: Problem) -> tuple[str, str]:
    """(source id, kind) of a problem: (its own id, "original") unless it is an augmentation."""
    kind = problem.meta.get("kind")
    if kind in ("similar", "subproblem"):
        return str(problem.meta.get("source_id", problem.meta.get("source"))), kind
    return problem.id, "original"
