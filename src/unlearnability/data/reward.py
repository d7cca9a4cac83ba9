"""The paper's reward on real text: extract the final answer, check it with math-verify.

    math_reward(response, gold) -> 1.0 if the response's final answer is equivalent to gold, else 0.0

Steps (book/protocol.md): cut the response at the first end-of-turn token; extract the answer
from the last `\\boxed{...}` (fallbacks: "final answer is ...", "the answer is ...", the last
number); parse gold and extracted answer with math-verify (each wrapped in `\\boxed{}`, so
math-verify sees exactly that expression, not whatever else is in the text) and
`verify(gold, pred)`. No format penalty. Nothing raises: every failure is reward 0 with a
reason (see `REASONS`), and `count_reasons` tallies them.

math-verify guards parsing and verification with SIGALRM timeouts, which only work in the
main thread; elsewhere (thread pools, Ray actors' worker threads) the timeouts are switched
off. This file imports only the standard library and math_verify: `unlearn verl export`
copies it verbatim into verl's custom reward file (which verl loads by path, without
adding it to sys.modules).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import NamedTuple

END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>", "</s>")
TIMEOUT_SECONDS = 5  # math-verify's own default, for parsing and for verification

# Why a response got its reward. "correct" is the only reason with reward 1.
REASONS = {
    "correct": "extracted answer is equivalent to gold",
    "wrong": "extracted answer parsed but is not equivalent to gold",
    "no_answer": "no \\boxed{}, no 'the answer is', no number in the response",
    "pred_unparsable": "math-verify could not parse the extracted answer",
    "gold_unparsable": "math-verify could not parse the gold answer",
    "timeout": "math-verify timed out (main thread only)",
    "error": "math-verify raised an error",
}

_ANSWER_IS = re.compile(r"(?:final answer is|the answer is)\s*:?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


class RewardResult(NamedTuple):  # a NamedTuple, not a dataclass: verl loads this file without
    # registering it in sys.modules, where dataclasses' annotation lookups would fail
    reward: float  # 1.0 or 0.0
    reason: str  # a key of REASONS
    extracted: str | None  # the answer taken from the response (None if none)
    method: str  # how it was extracted: boxed | answer_is | last_number | none


def cut_at_end(response: str, end_tokens: tuple[str, ...] = END_TOKENS) -> str:
    """The response up to (not including) its first end-of-turn / EOS token."""
    cut = len(response)
    for tok in end_tokens:
        i = response.find(tok)
        if i != -1:
            cut = min(cut, i)
    return response[:cut]


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`); None if absent or unclosed."""
    starts = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)", text)]
    for start in reversed(starts):
        i = start + (6 if text.startswith("\\boxed", start) else 5)
        if i < len(text) and text[i] == " ":  # "\boxed 5": up to the next $ or whitespace
            m = re.match(r" +([^\s$]+)", text[i:])
            if m:
                return m.group(1)
            continue
        if i >= len(text) or text[i] != "{":
            continue
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j].strip()
        # unclosed (e.g. truncated response): try an earlier one
    return None


def _answer_is(text: str) -> str | None:
    """What follows the last "the answer is" / "final answer is", to the end of its line."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():].split("\n", 1)[0].strip()
    math = re.match(r"\$+([^$]+)\$+", rest) or re.match(r"\\\((.+?)\\\)", rest)
    if math:
        rest = math.group(1)
    rest = rest.strip().rstrip(".").strip()
    return rest or None


def extract_answer(response: str) -> tuple[str | None, str]:
    """(answer, method): method is boxed | answer_is | last_number, or (None, "none")."""
    text = cut_at_end(response)
    boxed = last_boxed(text)
    if boxed:
        return boxed, "boxed"
    said = _answer_is(text)
    if said:
        return said, "answer_is"
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", ""), "last_number"
    return None, "none"


def _timeouts() -> int | None:
    # math-verify's timeouts use SIGALRM, which may only be set from the main thread
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


def _parse(expr: str, timeout: int | None) -> list:
    from math_verify import (
        parse,  # imported here: importing math_verify loads sympy (slow)
    )
    return parse("\\boxed{" + expr + "}", parsing_timeout=timeout, raise_on_error=True)


def math_reward_detail(response: str, gold: str) -> RewardResult:
    """The reward with its reason and the extracted answer. Never raises."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    extracted, method = extract_answer(response)
    if extracted is None:
        return RewardResult(0.0, "no_answer", None, method)
    timeout = _timeouts()
    try:
        gold_parsed = _parse(gold, timeout)
        if not gold_parsed:
            return RewardResult(0.0, "gold_unparsable", extracted, method)
        pred_parsed = _parse(extracted, timeout)
        if not pred_parsed:
            return RewardResult(0.0, "pred_unparsable", extracted, method)
        ok = verify(gold_parsed, pred_parsed, timeout_seconds=timeout, raise_on_error=True)
    except TimeoutException:
        return RewardResult(0.0, "timeout", extracted, method)
    except Exception:  # sympy / latex2sympy errors on odd input: reward 0, counted
        return RewardResult(0.0, "error", extracted, method)
    return RewardResult(1.0 if ok else 0.0, "correct" if ok else "wrong", extracted, method)


def math_reward(response: str, gold: str) -> float:
    """1.0 if the response's final answer is equivalent to `gold` (math-verify), else 0.0."""
    return math_reward_detail(response, gold).reward


def count_reasons(results: list[RewardResult]) -> Counter:
    """How many results have each reason, e.g. Counter({'correct': 497, 'wrong': 3})."""
    return Counter(r.reason for r in results)

# Bump when the scoring of cached samples changes (reward or step checker), so stale
# evaluations are not reused: 2 = commutative operands may be swapped in a step; 3 = terse
# steps, response styles.
SCORING_VERSION = 3
