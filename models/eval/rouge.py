"""ROUGE on CNN/DailyMail test pairs — ``nmllm eval rouge`` (:mod:`nmllm.commands.eval`; dense or
spike-converted Hugging Face model).

Method
------
* Data: ``<data>/cnn_dailymail/cnndm_test_see2017_first2000.jsonl`` (See et al. 2017 test split,
  lower-cased and tokenized), the first ``--n-articles`` pairs in file order.
* Prompt: one user turn ``"Summarize the following news article:\\n\\n" + article`` through the
  tokenizer's chat template with the generation prompt; the article is cut to its first
  ``--max-article-tokens`` tokens (whole text when 0) so that the prompt length is fixed and bounded.
* Decoding: greedy (``do_sample=False``), at most ``--max-new-tokens`` new tokens, stopping at the
  end-of-turn token.
* Scoring: ``rouge-score`` with ``use_stemmer=True``: ROUGE-1 and ROUGE-2 F1 on the texts, ROUGE-Lsum F1
  on sentences one per line — the references' highlights are already one sentence a line; the
  prediction is split after ``.``, ``!`` or ``?`` followed by white space (nltk's punkt cannot be
  downloaded here). Reported numbers are means over articles, x 100.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Optional

import torch

from models.eval.perplexity import Carry, save_progress, restore_carry
from models.text.corpus import data_root

__all__ = ["PROMPT", "default_data_path", "load_pairs", "split_sentences", "summarize", "rouge_scores",
           "evaluate_rouge"]

PROMPT = "Summarize the following news article:"


def default_data_path() -> Path:
    return data_root() / "cnn_dailymail" / "cnndm_test_see2017_first2000.jsonl"


def load_pairs(path: Path, n: int) -> list[dict]:
    """The first ``n`` ``{"article", "highlights"}`` records of a JSONL file."""
    if n < 1:
        raise ValueError(f"--n-articles must be at least 1, not {n}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CNN/DailyMail file (set NMLLM_DATA or --data)")
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
            if len(out) == n:
                break
    return out


_SENT_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """One sentence a line (split after ``.``, ``!``, ``?`` + white space; existing newlines kept)."""
    lines = []
    for para in text.strip().splitlines():
        lines.extend(s.strip() for s in _SENT_END.split(para) if s.strip())
    return "\n".join(lines)


def build_prompt(tokenizer, article: str, max_article_tokens: int) -> torch.Tensor:
    if max_article_tokens > 0:
        backend = tokenizer.backend_tokenizer
        ids = backend.encode(article, add_special_tokens=False).ids
        if len(ids) > max_article_tokens:
            article = backend.decode(ids[:max_article_tokens])
    messages = [{"role": "user", "content": f"{PROMPT}\n\n{article}"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return torch.tensor([tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids], dtype=torch.long)


@torch.no_grad()
def summarize(model, tokenizer, article: str, max_new_tokens: int = 80, max_article_tokens: int = 512) -> tuple[str, int, int]:
    """Greedy summary of ``article``: ``(text, prompt tokens, generated tokens)``."""
    ids = build_prompt(tokenizer, article, max_article_tokens)
    eos = tokenizer.eos_token_id
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, eos_token_id=eos, pad_token_id=eos if eos is not None else 0)
    new = out[0, ids.shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), int(ids.shape[1]), int(new.numel())


def rouge_scores(predictions: list[str], references: list[str]) -> dict:
    """Mean ROUGE-1/2/Lsum F1 (x 100) with the stemmer (see the module docstring)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    acc = {"rouge1": 0.0, "rouge2": 0.0, "rougeLsum": 0.0}
    for p, r in zip(predictions, references):
        s = scorer.score(r, split_sentences(p))
        for k in acc:
            acc[k] += s[k].fmeasure
    n = max(len(predictions), 1)
    return {k: 100.0 * v / n for k, v in acc.items()}


def evaluate_rouge(model, tokenizer, pairs: list[dict], max_new_tokens: int = 80, max_article_tokens: int = 512,
                   progress: bool = True, resume_file: Optional[Path] = None, run_tag: str = "",
                   carry: Optional[Carry] = None) -> dict:
    """Summaries of ``pairs`` and their mean ROUGE; per-article records under ``"articles"``.

    With ``resume_file`` the summaries so far are saved there atomically after every article and a later
    call with the same articles, lengths and ``run_tag`` (the model and its conversion) continues after the
    last one; another run's file is refused. ``carry = (get, set)`` saves and restores more running state
    (a spiking model's event counts), as in :func:`models.eval.perplexity.sequence_nll`."""
    key = {"run": run_tag, "articles": [p.get("see_index", i) for i, p in enumerate(pairs)],
           "max_new_tokens": max_new_tokens, "max_article_tokens": max_article_tokens}
    recs, n_gen, n_prompt, spent = [], 0, 0, 0.0
    if resume_file is not None and Path(resume_file).exists():
        state = json.loads(Path(resume_file).read_text(encoding="utf-8"))
        if state.get("key") != key:
            raise ValueError(f"{resume_file} holds summaries of another run (model, articles or lengths): delete it "
                             f"or pass another --resume-file")
        recs, n_gen, n_prompt, spent = state["articles"], state["generated_tokens"], state["prompt_tokens"], state["seconds"]
        restore_carry(carry, state, resume_file)
    it = pairs[len(recs):]
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="rouge", unit="article", dynamic_ncols=True, total=len(pairs), initial=len(recs))
    t0 = time.perf_counter()
    for rec in it:
        text, n_p, n_g = summarize(model, tokenizer, rec["article"], max_new_tokens, max_article_tokens)
        n_gen += n_g
        n_prompt += n_p
        recs.append({"see_index": rec.get("see_index"), "summary": text})
        if resume_file is not None:
            save_progress(Path(resume_file), {"key": key, "articles": recs, "generated_tokens": n_gen,
                                               "prompt_tokens": n_prompt, "seconds": spent + time.perf_counter() - t0,
                                               **({"carry": carry[0]()} if carry else {})})
    dt = spent + time.perf_counter() - t0
    r = rouge_scores([a["summary"] for a in recs], [p["highlights"] for p in pairs])
    r.update({"n_articles": len(pairs), "max_new_tokens": max_new_tokens, "max_article_tokens": max_article_tokens,
              "prompt_tokens": n_prompt, "generated_tokens": n_gen, "seconds": dt, "articles": recs})
    return r
