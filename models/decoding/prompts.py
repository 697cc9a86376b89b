"""Summarisation prompts for CNN/DailyMail (``models/decoding/prompts.py``): the prompt and the lead-3 baseline.

The tokenizer and ROUGE modules are imported inside the functions, so :data:`SUMMARY_CUE` is a light import
(it is the default of ``nmllm decode --cue``).
"""

from __future__ import annotations

__all__ = ["SUMMARY_CUE", "make_prompt", "lead3"]

SUMMARY_CUE = "\nSummary:"


def make_prompt(tok, article: str, article_tokens: int, cue: str = SUMMARY_CUE) -> list[int]:
    """``[BOS] + first article_tokens tokens of the article + cue`` (default ``"\\nSummary:"``)."""
    from models.text.tokenizer import BOS_ID, encode

    return [BOS_ID] + encode(tok, article)[:article_tokens] + encode(tok, cue)


def lead3(article: str) -> str:
    """The first three sentences of the article (the extractive baseline)."""
    from models.eval.rouge import split_sentences

    return "\n".join(split_sentences(article).splitlines()[:3])
