import random

import pytest

from unlearnability.config import WorldConfig
from unlearnability.world import (
    build_tokenizer,
    check_steps,
    exact_reward,
    extract_answer,
    graph_of,
    load_tokenizer,
    pretraining_stream,
    similar_problems,
    subproblems,
    train_valid_split,
)
from unlearnability.world.generator import apply_op, evaluate, make_graph


def small_world(**kw):
    return WorldConfig(n_train=60, n_valid=20, **kw)


def test_split_is_deterministic_and_disjoint():
    a_tr, a_va = train_valid_split(small_world())
    b_tr, b_va = train_valid_split(small_world())
    assert [p.question for p in a_tr] == [p.question for p in b_tr]
    assert len(a_tr) == 60 and len(a_va) == 20
    assert not {p.question for p in a_tr} & {p.question for p in a_va}
    c_tr, _ = train_valid_split(small_world(seed=1))
    assert [p.question for p in c_tr] != [p.question for p in a_tr]


@pytest.mark.parametrize("tier", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("chain_bias", [0.0, 0.6, 1.0])
def test_every_op_is_needed_and_the_answer_is_the_graph_value(tier, chain_bias):
    cfg = small_world(chain_bias=chain_bias)
    rng = random.Random(tier)
    for _ in range(30):
        g = make_graph(rng, cfg, tier, 2, {s: 1.0 for s in cfg.skills})
        assert len(g.required()) == tier
        assert g.values == evaluate(g.nodes, cfg.p)
        # statement order is a dependency order
        seen = set()
        for n in g.nodes:
            assert all(a in seen for a in n.args)
            seen.add(n.name)


def test_arithmetic_is_mod_p():
    assert apply_op("add", 100, 5, None, 101) == 4
    assert apply_op("sub_c", 3, None, 5, 101) == 99
    assert apply_op("mul_c", 50, None, 3, 101) == 49


def test_distractors_and_knobs_show_in_meta():
    tr, _ = train_valid_split(small_world(distractors_max=3, tiers=[2, 4]))
    assert {p.meta["tier"] for p in tr} == {2, 4}
    assert max(p.meta["distractors"] for p in tr) >= 1
    assert all(p.meta["coverage"] in {"common", "rare", "unseen"} for p in tr)


def test_pretraining_stream_excludes_train_questions_and_follows_coverage():
    cfg = small_world(coverage={"add_c": 1.0, "sub_c": 0.0, "add": 0.0, "sub": 0.0, "mul_c": 0.0, "mul": 0.0},
                      tiers=[1])
    tr, va = train_valid_split(cfg)
    exclude = {p.question for p in tr + va}
    stream = pretraining_stream(cfg, exclude, seed=0)
    for _ in range(200):
        q, sol = next(stream)
        assert q not in exclude
        assert " + " in sol and " - " not in sol and " * " not in sol  # only add_c


def test_worked_solution_scores_five_and_is_exact():
    tr, _ = train_valid_split(small_world())
    for p in tr:
        rep = check_steps(graph_of(p), p.meta["solution"])
        assert rep.exact and rep.score == 5 and rep.correct_answer, (p.question, rep)
        assert exact_reward(p.meta["solution"], p.answer) == 1.0


def test_checker_finds_the_wrong_step_and_guessing_scores_zero():
    tr, _ = train_valid_split(small_world(tiers=[5]))
    p = tr[0]
    g = graph_of(p)
    steps = p.meta["solution"].split(" . ")
    first = g.required()[0]
    wrong = (g.values[first.name] + 1) % g.p
    parts = steps[0].rsplit("= ", 1)
    steps[0] = f"{parts[0]}= {wrong}"
    rep = check_steps(g, " . ".join(steps))
    assert (first.name, "wrong arithmetic") in rep.failed
    assert rep.score == 3  # 4 of 5 steps right -> 4, minus 1 for the invalid line
    assert not rep.exact and rep.correct_answer
    guess = check_steps(g, f"answer {p.answer}")
    assert guess.correct_answer and guess.score == 0 and not guess.exact
    assert {r for _, r in guess.failed} == {"missing"}
    assert check_steps(g, "garbage tokens").score == 0


def test_extract_answer():
    assert extract_answer("x = 1 + 2 = 1 + 2 = 3 . answer 3") == "3"
    assert extract_answer("no answer here at all x") is None
    assert extract_answer("x = 1 + 2 = 0 1 + 0 2 = 0 3 . answer 0 3") == "3"  # digit tokens
    assert exact_reward("answer 0 7", "7") == 1.0 and exact_reward("answer 8", "7") == 0.0


def test_augmentation():
    tr, _ = train_valid_split(small_world(tiers=[4]))
    p = tr[0]
    sims = similar_problems(p, k=5)
    assert len(sims) == 5 and len({s.question for s in sims}) == 5
    for s in sims:
        assert s.meta["tier"] == p.meta["tier"] and s.meta["skills"] == p.meta["skills"]
        assert check_steps(graph_of(s), s.meta["solution"]).exact
    subs = subproblems(p)
    assert len(subs) == 3
    for s in subs:
        assert s.meta["tier"] < p.meta["tier"]
        assert check_steps(graph_of(s), s.meta["solution"]).exact


def test_tokenizer_roundtrip(tmp_path):
    tok = build_tokenizer(101)
    tr, _ = train_valid_split(small_world())
    text = tr[0].question + " " + tr[0].meta["solution"]
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert len(ids) == len(text.split()) + 1  # one token per word
    tok.save_pretrained(tmp_path)
    tok2 = load_tokenizer(tmp_path)
    assert tok2(text)["input_ids"] == ids
    assert tok2.decode(ids, skip_special_tokens=True) == text


def test_digit_numbers_world():
    cfg = small_world(p=100, digits=2)
    tr, _ = train_valid_split(cfg)
    tok = build_tokenizer(100, 2)
    assert len(tok) < 60  # ten digits, not a hundred numbers
    for p in tr:
        g = graph_of(p)
        rep = check_steps(g, p.meta["solution"])
        assert rep.exact, (p.question, rep)
        assert all(len(t) == 1 for t in p.meta["solution"].split() if t.isdigit())  # numbers are digit tokens
        assert tok.unk_token_id not in tok(p.question + " " + p.meta["solution"])["input_ids"]
        assert exact_reward(p.meta["solution"], p.answer) == 1.0
    p = next(x for x in tr if x.meta["tier"] >= 2)
    g = graph_of(p)
    first = g.required()[0]
    line = p.meta["solution"].split(" . ")[0]
    head, _, result = line.rpartition(" = ")
    wrong = f"{(g.values[first.name] + 1) % 100:02d}"
    rep = check_steps(g, p.meta["solution"].replace(line, f"{head} = {wrong[0]} {wrong[1]}", 1))
    assert (first.name, "wrong arithmetic") in rep.failed


def test_commutative_steps_may_swap_operands():
    from unlearnability.world.generator import Graph, Node

    g = Graph([Node("s", None, (), 36), Node("x", None, (), 77), Node("m", "add", ("s", "x")),
               Node("k", "sub", ("x", "s")), Node("q", "add", ("m", "k"))], "q", 100, 2)
    ok = "m = s + x = 7 7 + 3 6 = 1 3 . k = x - s = 7 7 - 3 6 = 4 1 . q = k + m = 1 3 + 4 1 = 5 4 . answer 5 4"
    assert check_steps(g, ok).exact
    bad = "m = s + x = 3 6 + 7 7 = 1 3 . k = x - s = 3 6 - 7 7 = 4 1 . q = m + k = 1 3 + 4 1 = 5 4 . answer 5 4"
    assert ("k", "wrong operand value") in check_steps(g, bad).failed  # subtraction is not commutative


def _listed_in_dependency_order(question: str) -> bool:
    """Whether every statement of a question uses only names defined above it."""
    seen: set[str] = set()
    for part in question.split(" . ")[:-1]:
        name, _, *definition = part.split()
        if any(t.isalpha() and t not in seen for t in definition):
            return False
        seen.add(name)
    return True


def test_disorder_shuffles_a_share_of_problems_and_keeps_their_answers():
    """world.disorder_tasks: that share of the problems lists its statements out of dependency order;
    the answer, the needed nodes and the worked solution (in dependency order) stay right; at 0 the
    problems are those of a world without the knob, with no `order` in their meta."""
    from unlearnability.world.generator import dependency_order, in_dependency_order

    plain_tr, plain_va = train_valid_split(WorldConfig(n_valid=20, tiers=[1, 2, 3, 4], n_train=300))
    assert all("order" not in p.meta for p in plain_tr + plain_va)
    for p in plain_tr:  # statement order is a dependency order, and the solution follows it
        g = graph_of(p)
        assert in_dependency_order(g.nodes)
        assert [n.name for n in g.required()] == [n.name for n in g.nodes if n in g.required()]
    tr, va = train_valid_split(WorldConfig(n_valid=20, tiers=[1, 2, 3, 4], n_train=300, disorder_tasks=0.3))
    orders = [p.meta["order"] for p in tr + va]
    assert set(orders) == {"ordered", "disordered"} and 0.2 < orders.count("disordered") / len(orders) < 0.4
    for p in tr + va:
        g = graph_of(p)
        assert in_dependency_order(g.nodes) == (p.meta["order"] == "ordered"), p.question
        rep = check_steps(g, p.meta["solution"])
        assert rep.exact and rep.score == 5 and p.answer == str(evaluate(dependency_order(g.nodes), g.p)[g.query])
        for style in ("terse", "leap", "answer"):
            assert exact_reward(g.solution(style), p.answer) == 1.0
        assert _listed_in_dependency_order(p.question) == (p.meta["order"] == "ordered")


def test_disorder_in_pretraining_and_its_range_check():
    from unlearnability.config import ConfigError, load_config

    cfg = small_world(tiers=[2, 3], disorder_pretrain=1.0)
    tr, va = train_valid_split(cfg)
    assert all("order" not in p.meta and _listed_in_dependency_order(p.question) for p in tr + va)
    stream = pretraining_stream(cfg, {p.question for p in tr + va}, seed=0)
    for _ in range(50):
        q, sol = next(stream)
        assert not _listed_in_dependency_order(q)
    ordered = pretraining_stream(small_world(tiers=[2, 3]), {p.question for p in tr + va}, seed=0)
    assert all(_listed_in_dependency_order(next(ordered)[0]) for _ in range(50))
    # the same tasks as without the knob: it draws nothing from the task stream
    assert [p.question for p in train_valid_split(small_world(tiers=[2, 3]))[0]] == [p.question for p in tr]
    with pytest.raises(ConfigError, match="world.disorder_tasks"):
        load_config("smoke", {"world": {"disorder_tasks": 1.5}})
