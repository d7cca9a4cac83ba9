"""Procedural problems: small dependency graphs of variables over arithmetic mod p.

    question:  a = 7 . c = 3 * a . d = c - 2 . b = a + c . what is b ?
    solution:  c = 3 * a = 3 * 7 = 21 . b = a + c = 7 + 21 = 28 . answer 28

Every number and name is one token. Statements are listed in a valid dependency order (or, for
the share `disorder_pretrain` / `disorder_tasks` of problems, shuffled out of it: a rare surface
form); distractors (statements the answer does not need) are interleaved. A worked solution
computes exactly the needed ("required") op nodes, in statement order where that respects the
dependencies (else the earliest statement whose operands are known first), each as
`name = definition = substituted values = result`.

Response styles (`STYLES`, the `styles` knob: their shares in the pretraining corpus). The
prompt never says which style to use; a pretraining example's style is drawn at random,
independently of its problem:

    worked  c = 3 * a = 3 * 7 = 21 . b = a + c = 7 + 21 = 28 . answer 28   (every step shown)
    terse   c = 21 . b = 28 . answer 28                      (results only, no working)
    leap    b = 28 . answer 28        (results of every second needed node, counted from the
                                       answer backwards: two operations in one line)
    answer  answer 28                                         (the answer alone)

Knobs (WorldConfig): modulus p (answer space), skills (operators) and their pretraining
coverage, difficulty tiers (ops the answer needs), distractors, chain bias (depth), styles.
Everything is a pure function of (config, seed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from unlearnability.config import WorldConfig
from unlearnability.world.problems import Problem

# skill -> (symbol, arity, uses a constant)
SKILLS: dict[str, tuple[str, int, bool]] = {
    "add_c": ("+", 1, True),  # x + c
    "sub_c": ("-", 1, True),  # x - c
    "add": ("+", 2, False),  # x + y
    "sub": ("-", 2, False),  # x - y
    "mul_c": ("*", 1, True),  # c * x
    "mul": ("*", 2, False),  # x * y
}
LETTERS = "abcdefghijklmnopqrstuvwxyz"
STYLES = ("worked", "terse", "leap", "answer")


@dataclass
class Node:
    name: str
    skill: str | None  # None for a leaf (given value)
    args: tuple[str, ...] = ()  # operand names
    const: int | None = None  # constant operand (add_c / sub_c / mul_c) or leaf value

    def definition(self, digits: int = 0) -> list[str]:
        """Right-hand side tokens in terms of names: ['3', '*', 'a'] or ['a', '+', 'c'] or ['7']
        (with digits = 2: ['0', '3', '*', 'a'])."""
        if self.skill is None:
            return num_tokens(self.const, digits)
        sym, arity, uses_const = SKILLS[self.skill]
        if self.skill == "mul_c":
            return num_tokens(self.const, digits) + [sym, self.args[0]]
        if uses_const:
            return [self.args[0], sym] + num_tokens(self.const, digits)
        return [self.args[0], sym, self.args[1]]


def num_tokens(v: int, digits: int = 0) -> list[str]:
    """A number as tokens: one token (digits = 0) or `digits` decimal digits, zero-padded."""
    return [str(v)] if digits == 0 else list(str(v).zfill(digits))


def num_text(v: int, digits: int = 0) -> str:
    return " ".join(num_tokens(v, digits))


@dataclass
class Graph:
    nodes: list[Node]  # statement order (a valid dependency order unless the problem is disordered)
    query: str
    p: int
    digits: int = 0  # tokens per number: 0 = one token, else zero-padded decimal digits
    values: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.values:
            self.values = evaluate(self.nodes, self.p)

    @property
    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def required(self) -> list[Node]:
        """Op nodes the query depends on (itself included), in statement order when that is a
        dependency order, else in `dependency_order`."""
        by = self.by_name
        need: set[str] = set()
        stack = [self.query]
        while stack:
            v = stack.pop()
            if v in need:
                continue
            need.add(v)
            stack.extend(by[v].args)
        return [n for n in dependency_order(self.nodes) if n.name in need and n.skill is not None]

    def depth(self) -> int:
        by = self.by_name
        memo: dict[str, int] = {}

        def d(v: str) -> int:
            if v not in memo:
                n = by[v]
                memo[v] = 0 if n.skill is None else 1 + max(d(a) for a in n.args)
            return memo[v]

        return d(self.query)

    def question(self) -> str:
        parts = [f"{n.name} = {' '.join(n.definition(self.digits))} ." for n in self.nodes]
        return " ".join(parts + [f"what is {self.query} ?"])

    def solution(self, style: str = "worked") -> str:
        """The response in one of `STYLES` (without EOS); "worked" is the full worked solution."""
        req = self.required()
        if style == "worked":
            lines = [step_text(n, self.values, self.digits) for n in req]
        elif style == "terse":
            lines = [terse_text(n, self.values, self.digits) for n in req]
        elif style == "leap":
            lines = [terse_text(n, self.values, self.digits) for n in leap_nodes(req)]
        elif style == "answer":
            lines = []
        else:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        return " ".join(lines + [f"answer {num_text(self.values[self.query], self.digits)}"])


def apply_op(skill: str, x: int, y: int | None, c: int | None, p: int) -> int:
    if skill == "add_c":
        return (x + c) % p
    if skill == "sub_c":
        return (x - c) % p
    if skill == "add":
        return (x + y) % p
    if skill == "sub":
        return (x - y) % p
    if skill == "mul_c":
        return (c * x) % p
    if skill == "mul":
        return (x * y) % p
    raise ValueError(f"unknown skill {skill!r}; known: {sorted(SKILLS)}")


def node_value(n: Node, values: dict[str, int], p: int) -> int:
    if n.skill is None:
        return n.const % p
    x = values[n.args[0]]
    y = values[n.args[1]] if len(n.args) > 1 else None
    return apply_op(n.skill, x, y, n.const, p)


def dependency_order(nodes: list[Node]) -> list[Node]:
    """`nodes` reordered so every node comes after its operands: repeatedly the earliest statement
    whose operands are all placed (statement order itself when it is a dependency order)."""
    if in_dependency_order(nodes):  # every problem of an ordered world: one pass, no search
        return list(nodes)
    placed: set[str] = set()
    left, out = list(nodes), []
    while left:
        i = next((i for i, n in enumerate(left) if all(a in placed for a in n.args)), None)
        if i is None:
            raise ValueError(f"statements {[n.name for n in left]} depend on each other or on undefined names")
        n = left.pop(i)
        placed.add(n.name)
        out.append(n)
    return out


def in_dependency_order(nodes: list[Node]) -> bool:
    """Whether every node comes after its operands."""
    seen: set[str] = set()
    for n in nodes:
        if any(a not in seen for a in n.args):
            return False
        seen.add(n.name)
    return True


def disordered(g: Graph, rng: random.Random) -> Graph:
    """The same problem with its statements shuffled out of dependency order (a few redraws; the
    reversed order, which always breaks it, if they all happen to keep it)."""
    nodes = list(g.nodes)
    for _ in range(8):
        rng.shuffle(nodes)
        if not in_dependency_order(nodes):
            break
    else:
        nodes = g.nodes[::-1]
    return Graph(nodes, g.query, g.p, g.digits, dict(g.values))


def evaluate(nodes: list[Node], p: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for n in dependency_order(nodes):
        values[n.name] = node_value(n, values, p)
    return values


def substituted(n: Node, values: dict[str, int], digits: int = 0) -> list[str]:
    """Definition with operand names replaced by their values: ['3', '*', '7']."""
    out: list[str] = []
    for t in n.definition(digits):
        out += num_tokens(values[t], digits) if t in values and not t.isdigit() else [t]
    return out


def step_text(n: Node, values: dict[str, int], digits: int = 0) -> str:
    return (f"{n.name} = {' '.join(n.definition(digits))} = {' '.join(substituted(n, values, digits))}"
            f" = {num_text(values[n.name], digits)} .")


def terse_text(n: Node, values: dict[str, int], digits: int = 0) -> str:
    """A step with its result only: `c = 2 1 .`"""
    return f"{n.name} = {num_text(values[n.name], digits)} ."


def leap_nodes(required: list[Node]) -> list[Node]:
    """The nodes a leap writes: every second needed node counted back from the query
    (the query's line is always written; tier 1 leaps equal terse solutions)."""
    return required[::-1][::2][::-1]


def _pick_skill(rng: random.Random, weights: dict[str, float]) -> str:
    names = [s for s, w in weights.items() if w > 0]
    return rng.choices(names, weights=[weights[s] for s in names])[0]


def make_graph(rng: random.Random, cfg: WorldConfig, n_ops: int, n_distractors: int,
               skill_weights: dict[str, float]) -> Graph:
    """A random graph whose query needs exactly `n_ops` op nodes, plus `n_distractors` statements
    (one function: the order of its random draws is what every preset's problems are made of, and a
    split would have to keep that order across calls).

    Built forward, keeping the "dangling" op nodes that no later op uses yet. Each op either
    chains (consumes the newest dangling node; probability `chain_bias`: deeper graphs),
    branches (starts from leaves: wider graphs) or merges two dangling nodes with a binary op.
    Merges are forced when needed so exactly one dangling node, the query, is left: every op
    is needed for the answer.
    """
    fresh = iter(rng.sample(LETTERS[: cfg.n_vars], k=cfg.n_vars))
    nodes: list[Node] = []
    leaves: list[str] = []
    dangling: list[str] = []
    binary = {s: w for s, w in skill_weights.items() if SKILLS[s][1] == 2 and w > 0}

    def leaf(new_prob: float = 0.5) -> str:
        if leaves and rng.random() > new_prob:
            return rng.choice(leaves)
        n = Node(next(fresh), None, (), rng.randrange(cfg.p))
        nodes.append(n)
        leaves.append(n.name)
        return n.name

    def other_operand() -> str:  # second operand of a chained binary op: a leaf or a used node
        used = [n.name for n in nodes if n.skill is not None and n.name not in dangling]
        return rng.choice(used) if used and rng.random() < 0.3 else leaf()

    for i in range(n_ops):
        remaining = n_ops - i - 1
        d = len(dangling)
        if d >= 2 and d - 1 > remaining:
            action = "merge"
        elif d == 0:
            action = "branch"
        else:
            u = rng.random()
            if u < cfg.chain_bias:
                action = "chain"
            elif binary and d <= remaining and u < cfg.chain_bias + (1 - cfg.chain_bias) / 2:
                action = "branch"
            elif binary and d >= 2:
                action = "merge"
            else:
                action = "chain"
        skill = _pick_skill(rng, binary if action == "merge" else skill_weights)
        arity = SKILLS[skill][1]
        if action == "merge":
            args = [dangling.pop(), dangling.pop(rng.randrange(len(dangling)))]
        elif action == "chain":
            args = [dangling.pop()] + ([other_operand()] if arity == 2 else [])
        else:  # branch: from leaves only
            args = [leaf() for _ in range(arity)]
            if arity == 2 and args[0] == args[1]:
                args[1] = leaf(new_prob=1.0)
        if arity == 2 and rng.random() < 0.5:
            args.reverse()
        const = rng.randint(2 if skill == "mul_c" else 1, cfg.const_max) if SKILLS[skill][2] else None
        node = Node(next(fresh), skill, tuple(args), const)
        nodes.append(node)
        dangling.append(node.name)
    assert len(dangling) == 1, dangling
    query = dangling[0]
    # distractors: statements the query does not depend on, inserted after their operands
    for _ in range(n_distractors):
        skill = _pick_skill(rng, skill_weights)
        _, arity, uses_const = SKILLS[skill]
        pos = rng.randint(1, len(nodes) - 1)  # before the query, after at least one statement
        earlier = [n.name for n in nodes[:pos]]
        args = tuple(rng.choice(earlier) for _ in range(arity))
        const = rng.randint(2 if skill == "mul_c" else 1, cfg.const_max) if uses_const else None
        nodes.insert(pos, Node(next(fresh), skill, args, const))
    return Graph(nodes, query, cfg.p, cfg.digits)


def problem_from_graph(g: Graph, pid: str, extra: dict | None = None) -> Problem:
    req = g.required()
    skills = sorted({n.skill for n in req})
    meta = {
        "tier": len(req),
        "n_ops": len(req),
        "depth": g.depth(),
        "distractors": sum(1 for n in g.nodes if n.skill is not None) - len(req),
        "skills": skills,
        "p": g.p,
        "solution": g.solution(),
        "graph": graph_to_dict(g),
    }
    meta.update(extra or {})
    return Problem(id=pid, question=g.question(), answer=str(g.values[g.query]), meta=meta)


def graph_to_dict(g: Graph) -> dict:
    return {"query": g.query, "p": g.p, "digits": g.digits,
            "nodes": [[n.name, n.skill, list(n.args), n.const] for n in g.nodes]}


def graph_from_dict(d: dict) -> Graph:
    nodes = [Node(name, skill, tuple(args), const) for name, skill, args, const in d["nodes"]]
    return Graph(nodes, d["query"], d["p"], d.get("digits", 0))


def graph_of(problem: Problem) -> Graph:
    if "graph" not in problem.meta:
        raise ValueError(f"problem {problem.id!r} is not a testbed problem (no meta['graph'])")
    return graph_from_dict(problem.meta["graph"])


def coverage_class(skills: list[str], coverage: dict[str, float]) -> str:
    """'common' if every needed skill is well covered in pretraining, 'rare' if one is rare,
    'unseen' if one never appears there."""
    ws = [coverage.get(s, 0.0) for s in skills]
    if any(w == 0 for w in ws):
        return "unseen"
    if any(w < 0.5 for w in ws):
        return "rare"
    return "common"


def sample_problem(rng: random.Random, cfg: WorldConfig, tier: int, skill_weights: dict[str, float],
                   pid: str, disorder: float = 0.0) -> Problem:
    """One problem of `tier`; with `disorder` > 0, that share of problems shuffled out of dependency
    order (`meta["order"]`: "disordered" or "ordered"; absent at 0, which draws nothing more from `rng`)."""
    n_distractors = rng.randint(0, cfg.distractors_max)
    g = make_graph(rng, cfg, tier, n_distractors, skill_weights)
    shuffled = disorder > 0 and rng.random() < disorder
    if shuffled:
        g = disordered(g, rng)
    prob = problem_from_graph(g, pid)
    prob.meta["coverage"] = coverage_class(prob.meta["skills"], cfg.coverage)
    if disorder > 0:
        prob.meta["order"] = "disordered" if shuffled else "ordered"
    return prob


def train_valid_split(cfg: WorldConfig) -> tuple[list[Problem], list[Problem]]:
    """The training and held-out validation problems: tiers cycled evenly, skills by `task_mix`.

    Question strings are unique across both splits.
    """
    rng = random.Random(f"world-{cfg.seed}")
    mix = {s: cfg.task_mix.get(s, 0.0) for s in cfg.skills}
    seen: set[str] = set()
    out: dict[str, list[Problem]] = {"train": [], "valid": []}
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid)):
        i = 0
        while len(out[split]) < n:
            tier = cfg.tiers[i % len(cfg.tiers)]
            prob = sample_problem(rng, cfg, tier, mix, f"{split}-{len(out[split]):04d}", cfg.disorder_tasks)
            i += 1
            if prob.question in seen:
                continue
            seen.add(prob.question)
            out[split].append(prob)
    return out["train"], out["valid"]


def style_weights(styles: dict[str, float]) -> dict[str, float]:
    """`world.styles` checked: known style names, non-negative shares, at least one positive."""
    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        raise ValueError(f"world.styles: unknown style(s) {unknown}; known: {', '.join(STYLES)}")
    if any(w < 0 for w in styles.values()) or not any(w > 0 for w in styles.values()):
        raise ValueError(f"world.styles: shares must be >= 0 with at least one > 0, got {styles}")
    return {s: float(styles.get(s, 0.0)) for s in STYLES}


def coupled_styles(skill_styles: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float]]:
    """`world.skill_styles` checked: known skills and styles, shares as in `style_weights`."""
    out = {}
    for skill, styles in (skill_styles or {}).items():
        if skill not in SKILLS:
            raise ValueError(f"world.skill_styles: unknown skill {skill!r}; known: {', '.join(SKILLS)}")
        try:
            out[skill] = style_weights(styles)
        except ValueError as e:
            raise ValueError(f"world.skill_styles.{skill}: {str(e).removeprefix('world.styles: ')}") from None
    return out


def draw_style(rng: random.Random, skills: list[str], styles: dict[str, float],
               coupled: dict[str, dict[str, float]]) -> str:
    """A response style for a problem needing `skills`: from the first coupled skill's shares
    (sorted by name) if it needs one, else from `styles`. One style with a positive share draws
    nothing from `rng` (so a one-style corpus is the stream it was before styles existed)."""
    hit = sorted(s for s in set(skills) if s in coupled)
    shares = coupled[hit[0]] if hit else styles
    names = [s for s in STYLES if shares.get(s, 0) > 0]
    return names[0] if len(names) == 1 else rng.choices(names, [shares[s] for s in names])[0]


def pretraining_stream(cfg: WorldConfig, exclude: set[str], seed: int):
    """Endless (question, response) pairs whose skill mix follows `cfg.coverage` and whose
    response style is drawn from `cfg.styles` (independently of the problem), or, for a
    problem needing a skill of `cfg.skill_styles`, from that skill's styles.

    Problems whose question is in `exclude` (the train / validation questions) are skipped,
    so the base model never saw a training problem's solution in any style.
    """
    rng = random.Random(f"pretrain-{cfg.seed}-{seed}")
    weights = {s: cfg.coverage.get(s, 0.0) for s in cfg.skills}
    if not any(w > 0 for w in weights.values()):
        raise ValueError("world.coverage: every skill has weight 0; pretraining would have no data")
    styles = style_weights(cfg.styles)
    coupled = coupled_styles(cfg.skill_styles)
    i = 0
    while True:
        tier = rng.choice(cfg.tiers)
        prob = sample_problem(rng, cfg, tier, weights, f"pre-{i}", cfg.disorder_pretrain)
        i += 1
        if prob.question in exclude:
            continue
        style = draw_style(rng, prob.meta["skills"], styles, coupled)
        yield prob.question, graph_of(prob).solution(style) if style != "worked" else prob.meta["solution"]
