"""The testbed's word-level tokenizer: every number, name and symbol is one token.

Built with `tokenizers` (WordLevel + whitespace split) and saved as a fast tokenizer. Load it
with `PreTrainedTokenizerFast.from_pretrained(folder)`: `AutoTokenizer` on a folder with a
qwen2 config returns a Qwen2Tokenizer and ignores the saved pre-tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from unlearnability.world.generator import LETTERS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
WORDS = ["=", "+", "-", "*", ".", "?", "what", "is", "answer"]


def vocabulary(p: int, digits: int = 0) -> list[str]:
    """Specials, words, names and numbers: 0..p-1 as one token each, or the ten digits."""
    numbers = range(10) if digits else range(max(p, 10))
    return [PAD, BOS, EOS, UNK] + WORDS + list(LETTERS) + [str(i) for i in numbers]


def build_tokenizer(p: int, digits: int = 0) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(vocabulary(p, digits))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, unk_token=UNK)
    fast.padding_side = "left"
    return fast


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast.from_pretrained(str(folder))
    tok.padding_side = "left"
    return tok
