"""Perplexity on raw text (default: WikiText-2 test, ``wiki.test.raw``) — ``nmllm eval perplexity``
(:mod:`nmllm.commands.eval`).

Method
------
1. The raw file is read as UTF-8 and tokenized **once, as a whole** with the checkpoint's
   ``tokenizer.json`` (no special tokens). ``</s>`` (the document separator the model was trained with)
   is prepended as context, so every one of the ``N`` text tokens is predicted and scored, the first
   one included. ``--max-tokens`` keeps the first ``N`` tokens (and counts words and bytes on the text
   they decode to).
2. Sliding window: windows of ``window`` tokens start every ``stride`` tokens. The first window scores
   all its predictions; each later window scores only its last ``stride`` predictions, so every token
   is scored exactly once and (after the first window) with at least ``window - stride`` tokens of
   context. Each window starts from an empty recurrent state (the model is evaluated as a function of
   the window's token ids, so any logits callable — float QAT view, integer view — plugs in).
3. With ``NLL`` the summed natural-log negative log-likelihood of the scored tokens:

   * token-level perplexity ``exp(NLL / N)``;
   * word-level perplexity ``exp(NLL / W)``, ``W`` = number of whitespace-separated words of the raw
     text (``len(text.split())``; 241,211 for ``wiki.test.raw``), the usual tokenizer-independent
     normalisation for WikiText raw;
   * bits per byte ``NLL / ln 2 / B``, ``B`` = UTF-8 bytes of the text.

The model is trained on ``../shared/data/corpus`` (Wikipedia + Gutenberg), not on WikiText-2 train.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.eval.options import check_options
from models.text.corpus import data_root
from models.text.tokenizer import EOS_ID

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def default_data_path() -> Path:
    """``<data>/wikitext-2/wiki.test.raw`` (``$NMLLM_DATA`` or ``../shared/data``)."""
    return data_root() / "wikitext-2" / "wiki.test.raw"


def window_plan(n_inputs: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_scored) windows over a sequence of ``n_inputs`` positions whose predictions are
    scored: positions ``end - n_scored .. end - 1`` of each window are scored; each position once."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    if stride > window:
        raise ValueError(f"stride ({stride}) must not exceed window ({window}), or tokens would be skipped")
    plan, prev_end, begin = [], 0, 0
    while prev_end < n_inputs:
        end = min(begin + window, n_inputs)
        plan.append((begin, end, end - prev_end))
        prev_end = end
        begin += stride
    return plan


#: Seconds between saves of a resume file (a module constant so that tests can save at every batch).
SAVE_EVERY_S = 60.0


def _run_key(ids: Sequence[int], window: int, stride: int, context_id: int, batch_size: int, run_tag: str) -> str:
    h = hashlib.sha256(np.asarray([context_id, window, stride, batch_size] + list(ids), dtype=np.int64).tobytes())
    return h.hexdigest() + (":" + hashlib.sha256(run_tag.encode()).hexdigest()[:16] if run_tag else "")


#: More running state saved in a resume file beside the sums: ``(get, set)`` of a JSON-able dict.
Carry = tuple[Callable[[], dict], Callable[[dict], None]]


def restore_carry(carry: Optional[Carry], state: dict, resume_file) -> None:
    """Hand the ``"carry"`` of a resume file's ``state`` to ``carry``; refuse a file saved without it."""
    if carry is None:
        return
    if "carry" not in state:
        raise ValueError(f"{resume_file} was saved without the running event counts this run needs: delete it to "
                         f"start over")
    carry[1](state["carry"])


def save_progress(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state) + "\n")
    os.replace(tmp, path)


@torch.no_grad()
def sequence_nll(logits_fn: LogitsFn, ids: Sequence[int], window: int, stride: int, context_id: int = EOS_ID,
                 batch_size: int = 8, progress: bool = False, resume_file: Optional[Path] = None,
                 carry: Optional[Carry] = None, run_tag: str = "") -> dict:
    """Summed NLL of ``ids`` (every token scored once, ``context_id`` prepended) with the sliding window.

    ``logits_fn`` maps int64 token ids (B, T) to logits (B, T, vocab). With ``resume_file`` the running sums
    are saved there (atomically, every :data:`SAVE_EVERY_S` seconds) and a later call on the same ids,
    settings and ``run_tag`` (the model and its conversion) continues from them; the sums are taken in the same order, so the result equals an
    uninterrupted run bit for bit. A file from other ids or settings is refused. ``carry = (get, set)``
    saves more running state beside the sums (a spiking model's event counts) and restores it on resume."""
    seq = torch.tensor([context_id] + list(ids), dtype=torch.long)
    n_in = len(seq) - 1                      # positions whose next token is predicted
    plan = window_plan(n_in, window, stride)
    total, scored, fwd_tokens = 0.0, 0, 0
    i, spent = 0, 0.0
    key = _run_key(ids, window, stride, context_id, batch_size, run_tag) if resume_file is not None else None
    if resume_file is not None and Path(resume_file).exists():
        state = json.loads(Path(resume_file).read_text())
        if state.get("key") != key:
            raise ValueError(f"{resume_file} holds a run on other text or settings: delete it or pass another --resume-file")
        i, total, scored, fwd_tokens, spent = state["window"], state["nll"], state["tokens"], state["forward_tokens"], state["seconds"]
        restore_carry(carry, state, resume_file)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(ids), initial=scored, desc="perplexity", unit="tok", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)
    t0 = last_save = time.perf_counter()
    while i < len(plan):
        # batch consecutive windows of the same length
        L = plan[i][1] - plan[i][0]
        j = i
        while j < len(plan) and j - i < batch_size and plan[j][1] - plan[j][0] == L:
            j += 1
        group = plan[i:j]
        inp = torch.stack([seq[b:e] for b, e, _ in group])
        tgt = torch.stack([seq[b + 1:e + 1] for b, e, _ in group])
        logits = logits_fn(inp).double()          # float64 log-softmax: exact sums over long texts
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none").view(len(group), L)
        for r, (b, e, k) in enumerate(group):
            total += float(nll[r, L - k:].double().sum())
            scored += k
        fwd_tokens += inp.numel()
        if bar is not None:
            bar.update(sum(k for _, _, k in group))
            bar.set_postfix(ppl=f"{math.exp(total / max(scored, 1)):.2f}", refresh=False)
        i = j
        now = time.perf_counter()
        if resume_file is not None and (now - last_save >= SAVE_EVERY_S or i == len(plan)):
            save_progress(Path(resume_file), {"key": key, "window": i, "windows": len(plan), "nll": total,
                                               "tokens": scored, "forward_tokens": fwd_tokens,
                                               "seconds": spent + now - t0,
                                               **({"carry": carry[0]()} if carry else {})})
            last_save = now
    if bar is not None:
        bar.close()
    dt = spent + time.perf_counter() - t0
    assert scored == len(ids)
    return {"nll": total, "tokens": scored, "forward_tokens": fwd_tokens, "seconds": dt,
            "scored_tok_per_s": scored / dt if dt > 0 else float("inf"),
            "forward_tok_per_s": fwd_tokens / dt if dt > 0 else float("inf")}


def text_perplexity(logits_fn: LogitsFn, tokenizer, text: str, window: int = 256, stride: int = 128,
                    max_tokens: Optional[int] = None, batch_size: int = 8, progress: bool = False,
                    context_id: int = EOS_ID, resume_file: Optional[Path] = None,
                    carry: Optional[Carry] = None, run_tag: str = "") -> dict:
    """Token-level and word-level perplexity and bits per byte of ``text`` (see the module docstring);
    ``tokenizer`` is a ``tokenizers.Tokenizer``, ``context_id`` the token prepended as context."""
    check_options(window=window, stride=stride, max_tokens=max_tokens, batch_size=batch_size)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if max_tokens is not None and max_tokens < len(ids):
        ids = ids[:max_tokens]
        text = tokenizer.decode(ids, skip_special_tokens=False)
    if not ids:
        raise ValueError("the text has no tokens")
    words = len(text.split())
    n_bytes = len(text.encode("utf-8"))
    r = sequence_nll(logits_fn, ids, window, stride, context_id=context_id, batch_size=batch_size,
                     progress=progress, resume_file=resume_file, carry=carry,
                     run_tag=run_tag)
    nll = r["nll"]
    r.update({
        "words": words, "bytes": n_bytes, "window": window, "stride": stride,
        "token_ppl": math.exp(nll / r["tokens"]),
        "word_ppl": math.exp(nll / words) if words else float("nan"),
        "bits_per_byte": nll / math.log(2) / n_bytes,
    })
    return r


def model_logits_fn(model: torch.nn.Module) -> LogitsFn:
    """Wrap a model whose ``__call__(ids)`` returns logits (the float QAT view) as a logits callable."""
    model.eval()

    def fn(ids: torch.Tensor) -> torch.Tensor:
        return model(ids)

    return fn
