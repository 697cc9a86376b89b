"""Byte-level BPE tokenizer trained with Hugging Face ``tokenizers`` on the shared corpus.

Special tokens take the first ids, matching the LLaMA-style ids of the ``hgrn_bit`` config
(``bos_token_id=1``, ``eos_token_id=2``): ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<pad>`` = 3.
Byte-level pre-tokenisation (GPT-2 regex, no prefix space, no normaliser) makes ``decode(encode(t)) == t``
for every string, so ``<unk>`` is never produced. The tokenizer is saved as ``tokenizer.json`` beside a
checkpoint's ``config.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from models.text.corpus import corpus_files, iter_lines

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD)
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
TOKENIZER_NAME = "tokenizer.json"
#: smallest vocabulary: 256 byte symbols + the special tokens
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE tokenizer."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer_from_iterator(lines: Iterable[str], vocab_size: int, show_progress: bool = False) -> Tokenizer:
    """Train a byte-level BPE of ``vocab_size`` ids on an iterable of text lines."""
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), got {vocab_size}")
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=show_progress)
    tok.train_from_iterator(lines, trainer=trainer)
    check_special_ids(tok)
    return tok


def train_tokenizer(vocab_size: int, files: Optional[Sequence[Path]] = None, max_bytes: Optional[int] = None,
                    show_progress: bool = False) -> Tokenizer:
    """Train on the corpus files (default: all of ``corpus_files()``), reading at most ``max_bytes``."""
    files = corpus_files() if files is None else list(files)
    return train_tokenizer_from_iterator(iter_lines(files, max_bytes), vocab_size, show_progress)


def check_special_ids(tok: Tokenizer) -> None:
    """Raise ``ValueError`` unless ``<unk> <s> </s> <pad>`` have ids 0, 1, 2, 3."""
    for i, t in enumerate(SPECIAL_TOKENS):
        got = tok.token_to_id(t)
        if got != i:
            raise ValueError(f"tokenizer special token {t!r} has id {got}, expected {i}")


def check_matches_config(tok: Tokenizer, config) -> None:
    """Raise ``ValueError`` if the tokenizer does not fit a model config (vocab size, bos/eos/pad ids)."""
    n = tok.get_vocab_size()
    if n > config.vocab_size:
        raise ValueError(f"tokenizer has {n} ids but config.vocab_size is {config.vocab_size}")
    for name, tid in (("bos_token_id", BOS_ID), ("eos_token_id", EOS_ID), ("pad_token_id", PAD_ID)):
        v = getattr(config, name)
        if v is not None and v != tid:
            raise ValueError(f"config.{name}={v} but the tokenizer's {SPECIAL_TOKENS[tid]!r} is id {tid}")


def save_tokenizer(tok: Tokenizer, path: str | os.PathLike) -> Path:
    """Write ``tokenizer.json`` (``path`` may be a checkpoint directory or a file path)."""
    p = Path(path)
    if p.is_dir():
        p = p / TOKENIZER_NAME
    tmp = p.with_name(p.name + ".tmp")
    tok.save(str(tmp))
    os.replace(tmp, p)
    return p


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load ``tokenizer.json`` from a file or a checkpoint directory."""
    p = Path(path)
    if p.is_dir():
        p = p / TOKENIZER_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {p}: put the one the weights were trained with there "
                                f"(`nmllm train` writes it to its --out folder and to final/; a downloaded checkpoint "
                                f"ships it beside config.json, so download it too)")
    return Tokenizer.from_file(str(p))


def encode(tok: Tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` (no special tokens added)."""
    return tok.encode(text, add_special_tokens=False).ids


def decode(tok: Tokenizer, ids: Sequence[int]) -> str:
    """Text of token ids (special tokens skipped)."""
    return tok.decode(list(ids), skip_special_tokens=True)
