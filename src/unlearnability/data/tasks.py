"""A task = training problems + validation problems + how to prompt and reward them.

The one place that knows the data source: the testbed world (exact-answer reward, a step
checker for reasoning quality) or MATH-style text (templates and math-verify, from
`mathdata` and `reward`). GRPO, pass@k and the analyses only see a Task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unlearnability.config import Config
from unlearnability.world.problems import Problem


@dataclass
class Task:
    train: list[Problem]
    valid: list[Problem]
    tokenizer: object  # a transformers tokenizer
    template: Callable[[str], str]  # question -> prompt text
    reward_fn: Callable[[str, str], float]  # (response text, gold answer) -> reward
    source: str

    def prompt_ids(self, problem: Problem) -> list[int]:
        return self.tokenizer(self.template(problem.question))["input_ids"]

    def reward(self, problem: Problem, response: str) -> float:
        return self.reward_fn(response, problem.answer)

    def by_id(self) -> dict[str, Problem]:
        return {p.id: p for p in self.train + self.valid}


def load_task(cfg: Config, base: str | Path) -> Task:
    """The task for `cfg`, tokenised with the base model's tokenizer at `base`
    (`data.train_ids`: only those training problems, in the given order; `data.augment`: then
    their augmentations appended, see `augment_train`)."""
    task = _load_task(cfg, base)
    if cfg.data.train_ids is not None:
        task.train = subset(task.train, cfg.data.train_ids)
    if cfg.data.augment is not None:
        task.train = augment_train(cfg, task)
    return task


def augment_train(cfg: Config, task: Task) -> list[Problem]:
    """Hook for `data.augment` (paper §5.3): the task's training problems followed by their
    testbed augmentations (`world.augment.augment_training_set`; none equals a validation
    question). Testbed only: at paper scale, train on `unlearn augment`'s file instead."""
    if task.source != "testbed":
        raise ValueError(f"data.augment: generated augmentation needs data.source=testbed (got {task.source!r}); "
                         "at paper scale write the augmented set with `unlearn augment` and train on it (data.train)")
    from unlearnability.config import check_augment
    from unlearnability.world.augment import augment_training_set

    return augment_training_set(task.train, check_augment(cfg.data.augment), {p.question for p in task.valid},
                                cfg.world.const_max, cfg.world.coverage)


def subset(problems: list[Problem], ids: list[str], what: str = "data.train_ids") -> list[Problem]:
    """The problems with these ids, in the order given; an unknown id is an error naming it
    (and `what` asked for it)."""
    by_id = {p.id: p for p in problems}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{what}: {len(missing)} ids are not training problems, e.g. {missing[:3]}")
    if not ids:
        raise ValueError(f"{what} is empty: give at least one training problem id (or null for all)")
    return [by_id[i] for i in ids]


def _load_task(cfg: Config, base: str | Path) -> Task:
    if cfg.data.source == "testbed":
        from unlearnability.world import exact_reward, load_tokenizer, train_valid_split

        train, valid = train_valid_split(cfg.world)
        return Task(train, valid, load_tokenizer(base), lambda q: q, exact_reward, "testbed")
    from transformers import AutoTokenizer

    from unlearnability.data import mathdata, reward

    train = mathdata.load_problems(cfg.data, "train")
    valid = mathdata.load_problems(cfg.data, "valid")  # data.limit is applied to train there
    tok = AutoTokenizer.from_pretrained(str(base))
    return Task(train, valid, tok, lambda q: mathdata.apply_template(cfg.data.template, q),
                reward.math_reward, cfg.data.source)
