"""ROUGE on CNN/DailyMail test pairs — ``nmllm eval rouge`` (dense or spike-converted Hugging Face model).

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

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from models.text.corpus import data_root

__all__ = ["PROMPT", "default_data_path", "load_pairs", "split_sentences", "summarize", "rouge_scores",
           "evaluate_rouge", "register_rouge", "add_spike_arguments", "load_model_for_eval"]

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
                   progress: bool = True) -> dict:
    """Summaries of ``pairs`` and their mean ROUGE; per-article records under ``"articles"``."""
    preds, refs, recs = [], [], []
    it = pairs
    if progress:
        from tqdm import tqdm
        it = tqdm(pairs, desc="rouge", unit="article", dynamic_ncols=True)
    t0 = time.perf_counter()
    n_gen = n_prompt = 0
    for rec in it:
        text, n_p, n_g = summarize(model, tokenizer, rec["article"], max_new_tokens, max_article_tokens)
        preds.append(text)
        refs.append(rec["highlights"])
        n_gen += n_g
        n_prompt += n_p
        recs.append({"see_index": rec.get("see_index"), "summary": text})
    dt = time.perf_counter() - t0
    r = rouge_scores(preds, refs)
    r.update({"n_articles": len(pairs), "max_new_tokens": max_new_tokens, "max_article_tokens": max_article_tokens,
              "prompt_tokens": n_prompt, "generated_tokens": n_gen, "seconds": dt, "articles": recs})
    return r


# ---------------------------------------------------------------------------- model loading for eval
def add_spike_arguments(p: argparse.ArgumentParser) -> None:
    """Spike-conversion options shared by ``eval perplexity``/``eval rouge`` on Hugging Face models."""
    p.add_argument("--spike-coding", default=None,
                   help="convert to spikes with this coding (rate, ttfs, ttfs-linear, unary, bitplane); "
                        "'none' = int8 weights, dense activations; default: the dense float model")
    p.add_argument("--timesteps", default="8", help="T, or a schedule 'default=4,3.mlp_out=16' or a .json file")
    p.add_argument("--weights", default="int8", choices=("int8", "ternary", "float"), help="weight format of converted layers")
    p.add_argument("--thresholds", default="tensor", choices=("tensor", "channel"),
                   help="one threshold per site (tensor) or per input neuron (channel)")
    p.add_argument("--calib-tokens", type=int, default=4096, help="corpus tokens for threshold calibration")
    p.add_argument("--calib-cache", default=None, help="calibration cache file (default runs/spike/calib_<model>_<N>.pt)")


def load_model_for_eval(args: argparse.Namespace, progress: bool = True):
    """``(model, tokenizer, spike_model or None)`` from ``--model`` and the spike options."""
    from models.transformer.loader import load_hf_model, load_hf_tokenizer

    model = load_hf_model(args.model)
    tok = load_hf_tokenizer(args.model)
    coding = getattr(args, "spike_coding", None)
    if coding is None:
        return model, tok, None
    from experiments.spike_study import get_calibration
    from models.transformer.convert import convert, parse_schedule

    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=progress)
    sched = parse_schedule(args.timesteps)
    sm = convert(model, calibration=calib, coding=None if coding == "none" else coding,
                 timesteps=sched if len(sched) > 1 else sched["default"], weights=args.weights,
                 thresholds=args.thresholds)
    return model, tok, sm


def _cmd_rouge(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    pairs = load_pairs(Path(args.data) if args.data else default_data_path(), args.n_articles)
    model, tok, sm = load_model_for_eval(args, progress=not args.no_progress)
    r = evaluate_rouge(model, tok, pairs, args.max_new_tokens, args.max_article_tokens, progress=not args.no_progress)
    r["model"] = str(args.model)
    if sm is not None:
        r["spike"] = sm.describe()
        ev = sm.events_per_token()
        r["events_per_token"] = ev["total"]
        r["event_tokens"] = ev["tokens"]
    articles = r.pop("articles")
    print(json.dumps(r, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**r, "articles": articles}, indent=1) + "\n")
    return 0


def add_rouge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="smollm2-135m or a Hugging Face layout directory")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--n-articles", type=int, default=200, help="first N test articles (default 200)")
    p.add_argument("--max-new-tokens", type=int, default=80, help="summary length limit in tokens (default 80)")
    p.add_argument("--max-article-tokens", type=int, default=512, help="article cut to N tokens (0: whole; default 512)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--json", default=None, help="also write the result JSON (with the summaries) here")
    add_spike_arguments(p)


def _cmd_perplexity_any(args: argparse.Namespace) -> int:
    """``eval perplexity``: Hugging Face models (dense or spike-converted) here, MatMul-free checkpoints
    through :mod:`models.eval.perplexity` unchanged."""
    from models.transformer.loader import hf_text_perplexity, is_hf_ref
    from models.eval.perplexity import _cmd_perplexity, default_data_path as wiki_path

    if not is_hf_ref(args.model):
        if args.spike_coding is not None:
            raise ValueError("--spike-coding applies to Hugging Face models (smollm2-135m or an HF directory)")
        return _cmd_perplexity(args)
    torch.set_num_threads(args.threads)
    model, tok, sm = load_model_for_eval(args, progress=not args.no_progress)
    data = Path(args.data) if args.data else wiki_path()
    text = data.read_text(encoding="utf-8")
    fn = sm.logits_fn() if sm is not None else (lambda ids: model(input_ids=ids, use_cache=False).logits)
    with torch.no_grad():
        r = hf_text_perplexity(fn, tok, text, window=args.window, stride=args.stride, max_tokens=args.max_tokens,
                               batch_size=args.batch_size, progress=not args.no_progress,
                               resume_file=args.resume_file)
    r.update({"model": str(args.model), "data": str(data)})
    if sm is not None:
        r["spike"] = sm.describe()
        r["events_per_token"] = sm.events_per_token()["total"]
    else:
        r["view"] = "dense-float32"
    out = json.dumps(r, indent=1)
    print(out)
    if args.json:
        Path(args.json).write_text(out + "\n")
    return 0


def register_rouge(eval_subparsers) -> None:
    """Add ``rouge`` under ``nmllm eval`` and extend ``eval perplexity`` to Hugging Face models.

    ``eval_subparsers`` is what :func:`models.eval.perplexity.register` returns. ``eval perplexity`` gains the
    spike options (:func:`add_spike_arguments`) and runs ``--model smollm2-135m`` (or an HF directory)
    through :func:`models.transformer.loader.hf_text_perplexity`; MatMul-free checkpoints go on through
    :mod:`models.eval.perplexity` unchanged."""
    p = eval_subparsers.add_parser("rouge", help="ROUGE-1/2/Lsum on CNN/DailyMail test pairs (HF models, dense or spiking)",
                                   description=__doc__.split("\n\n")[0])
    add_rouge_arguments(p)
    p.set_defaults(func=_cmd_rouge)
    ppl = eval_subparsers.choices.get("perplexity")
    if ppl is not None:
        add_spike_arguments(ppl)
        ppl.set_defaults(func=_cmd_perplexity_any)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m models.eval.rouge --model smollm2-135m [...]``."""
    parser = argparse.ArgumentParser(prog="python -m models.eval.rouge", description=__doc__.split("\n\n")[0])
    add_rouge_arguments(parser)
    return _cmd_rouge(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
