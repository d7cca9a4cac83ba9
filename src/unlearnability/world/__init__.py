"""Stage 2, the testbed world: procedural verifiable problems, worked solutions, a step checker,
augmentation and a word-level tokenizer. (`backends.llm_augment` is the paper-scale
augmentation through an OpenAI-compatible model, `unlearn augment`; not imported here.)"""

from unlearnability.world.augment import similar_problems, subproblems
from unlearnability.world.checker import (
    StepReport,
    check_steps,
    exact_reward,
    extract_answer,
)
from unlearnability.world.generator import (
    SKILLS,
    Graph,
    coverage_class,
    graph_of,
    pretraining_stream,
    train_valid_split,
)
from unlearnability.world.tokenizer import build_tokenizer, load_tokenizer

__all__ = ["SKILLS", "Graph", "StepReport", "build_tokenizer", "check_steps", "coverage_class",
           "exact_reward", "extract_answer", "graph_of", "load_tokenizer", "pretraining_stream",
           "similar_problems", "subproblems", "train_valid_split"]
