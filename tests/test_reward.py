"""reward.py: answer extraction, math-verify check, counted reasons, and the MATH-500 check."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from unlearnability.data.reward import (
    REASONS,
    count_reasons,
    cut_at_end,
    extract_answer,
    last_boxed,
    math_reward,
    math_reward_detail,
)

MATH500 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"

# Measured: every official MATH-500 solution is rewarded 1 against its own `answer` (the
# last \boxed{} of each solution is exactly its answer field, and math-verify parses and
# matches all 500). A regression in extraction or parsing changes this count.
MATH500_SOLUTIONS_NOT_REWARDED = 0
# Measured: solution i checked against problem i+1's answer is "correct" 3 times
# (5 vs 5, 7 vs 7, and 5 vs "x=5", which math-verify treats as equal). Pins leniency.
MATH500_SHIFTED_REWARDED = 3


@pytest.fixture(scope="module")
def math500():
    assert MATH500.exists(), f"{MATH500} is missing (the official MATH-500, see shared/data/README.md)"
    return [json.loads(line) for line in MATH500.open()]


def test_math500_official_solutions_are_rewarded(math500):
    assert len(math500) == 500
    results = [math_reward_detail(r["solution"], r["answer"]) for r in math500]
    failed = {r["unique_id"]: (x.reason, x.extracted) for r, x in zip(math500, results) if x.reward != 1.0}
    assert len(failed) == MATH500_SOLUTIONS_NOT_REWARDED, failed
    assert count_reasons(results)["correct"] == 500 - MATH500_SOLUTIONS_NOT_REWARDED


def test_math500_wrong_answers_are_not_rewarded(math500):
    shifted = [math_reward(math500[i]["solution"], math500[(i + 1) % 500]["answer"]) for i in range(500)]
    assert sum(shifted) == MATH500_SHIFTED_REWARDED


@pytest.mark.parametrize("text, expected", [
    ("so $\\boxed{\\frac{1}{2}}$.", ("\\frac{1}{2}", "boxed")),
    ("\\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", ("\\left( 3, \\frac{\\pi}{2} \\right)", "boxed")),
    ("\\fbox{7}", ("7", "boxed")),
    ("$\\boxed 5$", ("5", "boxed")),
    ("\\boxed{3} and then \\boxed{4", ("3", "boxed")),  # unclosed last one: the earlier box
    ("The answer is $\\frac{3}{4}$.", ("\\frac{3}{4}", "answer_is")),
    ("so the final answer is 42.\nDone", ("42", "answer_is")),
    ("we get 12 apples and 1,234 pears", ("1234", "last_number")),
    ("no idea", (None, "none")),
    ("\\boxed{}", (None, "none")),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_cut_at_end_token():
    assert cut_at_end("a<|im_end|>b<|eot_id|>c") == "a"
    assert math_reward("\\boxed{3}<|im_end|>\n\\boxed{4}", "3") == 1.0
    assert math_reward("\\boxed{3}<|eot_id|>\\boxed{4}", "4") == 0.0
    assert last_boxed("x") is None


@pytest.mark.parametrize("response, gold, reward, reason", [
    ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1.0, "correct"),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1.0, "correct"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", 1.0, "correct"),
    ("\\boxed{5}", "6", 0.0, "wrong"),
    ("I give up.", "6", 0.0, "no_answer"),
    ("the answer is }{", "6", 0.0, "pred_unparsable"),
    ("\\boxed{3}", "}{", 0.0, "gold_unparsable"),
])
def test_reasons(response, gold, reward, reason):
    r = math_reward_detail(response, gold)
    assert (r.reward, r.reason) == (reward, reason)
    assert r.reason in REASONS


def test_counted_reasons_and_threads():
    cases = [("\\boxed{2}", "2"), ("\\boxed{3}", "2"), ("nothing", "2")] * 4
    with ThreadPoolExecutor(2) as pool:  # no SIGALRM outside the main thread: must not crash
        results = list(pool.map(lambda c: math_reward_detail(*c), cases))
    assert count_reasons(results) == {"correct": 4, "wrong": 4, "no_answer": 4}
