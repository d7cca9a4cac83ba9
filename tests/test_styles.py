"""The response styles of the testbed world: each parses, and the checker scores it as documented."""

import random

import pytest

from unlearnability.config import WorldConfig
from unlearnability.world import (
    check_steps,
    extract_answer,
    pretraining_stream,
    train_valid_split,
)
from unlearnability.world.checker import response_style
from unlearnability.world.generator import STYLES, make_graph, style_weights

CFG = WorldConfig(p=100, digits=2, n_train=40, n_valid=10)


def graphs(tier, n=20):
    rng = random.Random(tier)
    return [make_graph(rng, CFG, tier, 2, {s: 1.0 for s in CFG.skills}) for _ in range(n)]


# the documented score of each style written correctly: worked 5, terse floor(2.5), answer 0;
# a leap writes ceil(tier / 2) terse lines: floor(5 * ceil(t/2) / (2 t))
EXPECTED = {"worked": lambda t: 5, "terse": lambda t: 2, "answer": lambda t: 0,
            "leap": lambda t: (5 * ((t + 1) // 2)) // (2 * t)}


@pytest.mark.parametrize("tier", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("style", STYLES)
def test_each_style_parses_and_scores_as_documented(style, tier):
    for g in graphs(tier):
        text = g.solution(style)
        rep = check_steps(g, text)
        assert rep.correct_answer and extract_answer(text) == str(g.values[g.query])
        assert rep.score == EXPECTED[style](tier), (style, tier, text, rep)
        assert rep.exact == (style == "worked")
        want_style = "terse" if (style == "leap" and tier == 1) else style
        assert rep.style == want_style, (text, rep.style)
        assert not [f for f in rep.failed if f[1] != "missing"]  # a correct response has no invalid line
        if style == "terse":
            assert sorted(rep.steps_terse) == sorted(n.name for n in g.required())


def test_a_wrong_terse_value_is_an_invalid_line():
    g = graphs(3)[0]
    lines = g.solution("terse").split(" . ")
    name, _, value = lines[0].partition(" = ")
    wrong = " ".join(str((int(value.replace(" ", "")) + 1) % 100).zfill(2))
    rep = check_steps(g, " . ".join([f"{name} = {wrong}"] + lines[1:]))
    assert (name, "wrong result") in rep.failed
    assert rep.score == max(0, (5 * 2) // (2 * 3) - 1) and not rep.exact


def test_response_style_of_mixed_and_garbled_lines():
    assert response_style([], {"a"}) == "answer"
    assert response_style(["b = a + 0 1 = 0 2 + 0 1 = 0 3", "c = 0 4"], {"b", "c"}) == "mixed"
    assert response_style(["b = = ="], {"b"}) == "worked"  # the syntax of a worked line, however wrong
    assert response_style(["b"], {"b"}) == "mixed"


def test_pretraining_styles_follow_the_shares_and_never_depend_on_the_problem():
    cfg = WorldConfig(p=100, digits=2, n_train=40, n_valid=10, tiers=[3],
                      styles={"worked": 0.5, "terse": 0.2, "leap": 0.15, "answer": 0.15})
    tr, va = train_valid_split(cfg)
    stream = pretraining_stream(cfg, {p.question for p in tr + va}, seed=0)
    counts = dict.fromkeys(STYLES, 0)
    n = 4000
    for _ in range(n):
        q, a = next(stream)
        lines = [x for x in a.rsplit("answer", 1)[0].split(" . ") if x.strip()]
        kind = "answer" if not lines else "worked" if lines[0].split().count("=") == 3 else \
            "terse" if len(lines) == 3 else "leap"
        counts[kind] += 1
    for s, w in cfg.styles.items():
        assert abs(counts[s] / n - w) < 0.03, counts


def test_one_style_stream_is_unchanged_and_bad_styles_are_named():
    cfg = WorldConfig(p=100, digits=2, n_train=10, n_valid=5)  # styles default: worked only
    stream = pretraining_stream(cfg, set(), 0)
    for _ in range(50):
        _, a = next(stream)
        assert all(line.split().count("=") == 3 for line in a.rsplit("answer", 1)[0].split(" . ") if line.strip())
    with pytest.raises(ValueError, match="unknown style"):
        style_weights({"worked": 1.0, "poem": 0.1})
    with pytest.raises(ValueError, match="at least one"):
        style_weights({"worked": 0.0})


def test_pretraining_batches_mix_styles():
    """Batches are bucketed by prompt length, so short (answer-only) and long (worked) responses
    share batches and the token-mean loss weighs their style choices alike."""
    from unlearnability.train.text import _length_bucketed
    from unlearnability.world import build_tokenizer

    cfg = WorldConfig(p=100, digits=2, n_train=10, n_valid=5, styles={"worked": 0.5, "answer": 0.5})
    tok = build_tokenizer(cfg.p, cfg.digits)
    batches = _length_bucketed(tok, pretraining_stream(cfg, set(), seed=0), batch_size=16, pool_batches=16)
    mixed = 0
    for _ in range(8):
        b = next(batches)
        resp_len = (b["labels"] != -100).sum(1)  # answer-only responses: 4 tokens (answer d d <eos>)
        mixed += int((resp_len <= 4).any() and (resp_len > 4).any())
        prompt_len = (b["labels"] == -100).logical_and(b["attention_mask"].bool()).sum(1)
        assert prompt_len.max() - prompt_len.min() <= 8  # similar problem sizes (prompts span ~15-60 tokens)
    assert mixed >= 6


def test_skill_route_coupling_shows_a_skill_only_in_its_styles():
    """world.skill_styles: problems needing mul_c never come worked; the others keep world.styles,
    and the stream without the knob is byte-identical to before."""
    from unlearnability.world.generator import coupled_styles

    base = dict(p=100, digits=2, n_train=10, n_valid=5, tiers=[2, 3], styles={"worked": 0.7, "answer": 0.3},
                coverage={"add_c": 1.0, "sub_c": 1.0, "add": 1.0, "sub": 1.0, "mul_c": 1.0, "mul": 0.0})
    plain = pretraining_stream(WorldConfig(**base), set(), 0)
    same = pretraining_stream(WorldConfig(**base, skill_styles=None), set(), 0)
    assert [next(plain) for _ in range(200)] == [next(same) for _ in range(200)]

    cfg = WorldConfig(**base, skill_styles={"mul_c": {"terse": 1.0, "answer": 1.0}})
    stream = pretraining_stream(cfg, set(), 0)
    worked = {True: 0, False: 0}
    n_mul = 0
    for _ in range(1500):
        q, a = next(stream)
        has_mul = " * " in a or " * " in q  # crude: a mul_c statement in the problem
        lines = [x for x in a.rsplit("answer", 1)[0].split(" . ") if x.strip()]
        is_worked = bool(lines) and lines[0].split().count("=") == 3
        if has_mul and " * " in a:
            pytest.fail(f"a mul_c problem came with a worked line: {a}")
        n_mul += has_mul
        worked[has_mul] += is_worked
    assert n_mul > 200 and worked[False] > 0.5 * (1500 - n_mul)  # the others still mostly worked
    with pytest.raises(ValueError, match="world.skill_styles: unknown skill 'pow'"):
        coupled_styles({"pow": {"terse": 1.0}})
    with pytest.raises(ValueError, match=r"world.skill_styles.mul_c: unknown style"):
        coupled_styles({"mul_c": {"poem": 1.0}})
