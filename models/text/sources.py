"""Text sources of the evaluation and calibration studies (``models/text/sources.py``): held-out corpus
lines, CNN/DailyMail test articles, and token windows of a text.

The data lives under ``<data>`` (``$NMLLM_DATA``, else ``../shared/data``; see ``models/text/corpus.py``)
and is read in place.
"""

from __future__ import annotations

import json
import math

__all__ = ["heldout_corpus_text", "news_text", "token_windows"]


def heldout_corpus_text(domain: str, max_chars: int, root=None) -> str:
    """Held-out text of one corpus domain (``wikipedia`` or ``gutenberg``): the last 1% of the lines of
    every file, the part ``models.mmfree.train`` keeps out of training (``val_fraction`` 0.01), files in order."""
    from models.text.corpus import data_root

    sub = {"wikipedia": "wikipedia_enwiki2015", "gutenberg": "gutenberg"}.get(domain)
    if sub is None:
        raise ValueError(f"unknown corpus domain {domain!r}: choose wikipedia or gutenberg")
    files = sorted((data_root(root) / "corpus" / sub).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no corpus files under {data_root(root) / 'corpus' / sub}; set NMLLM_DATA")
    parts, n = [], 0
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        n_val = min(int(math.ceil(len(lines) * 0.01)), max(len(lines) - 1, 0))
        text = "".join(lines[len(lines) - n_val:])
        parts.append(text)
        n += len(text)
        if n >= max_chars:
            break
    return "".join(parts)[:max_chars]


def news_text(first: int, max_chars: int, root=None) -> tuple[str, int]:
    """CNN/DailyMail test articles from index ``first`` on (one per line), up to ``max_chars``; returns
    the text and the index after the last article read."""
    from models.text.corpus import data_root

    path = data_root(root) / "cnn_dailymail" / "cnndm_test_see2017_first2000.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}; set NMLLM_DATA to the folder holding cnn_dailymail/")
    parts, n, i = [], 0, first
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < first:
                continue
            a = json.loads(line)["article"].strip() + "\n"
            parts.append(a)
            n += len(a)
            if n >= max_chars:
                break
    return "".join(parts)[:max_chars], i + 1


def token_windows(tokenizer, text: str, tokens: int, window: int = 256) -> list[list[int]]:
    """The first ``tokens`` tokens of ``text`` in windows of ``window`` ids, each led by ``</s>`` as context."""
    from models.text.tokenizer import EOS_ID, encode

    ids = encode(tokenizer, text)
    if len(ids) < tokens:
        raise ValueError(f"the text gives only {len(ids)} tokens, fewer than the {tokens} asked for: give more text")
    ids = ids[:tokens]
    step = window - 1
    return [[EOS_ID] + ids[b:b + step] for b in range(0, len(ids), step)]
