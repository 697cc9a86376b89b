"""Decoders — greedy, standard beam search and spike-based beam search (``models/decoding/beam_search.py``).

Every decoder drives a *stepper* (any object with ``vocab_size``, ``prefill(prompt) -> (logits (V,),
state)`` and ``step(tokens, states) -> (logits (B, V), states)``); :mod:`models.decoding.steppers` wraps
the torch and golden models. The CNN/DailyMail study that compares them is ``nmllm decode``
(:mod:`experiments.decode`).

Common rules
------------
* ``log p`` is the float64 log-softmax of the output layer's logits (:func:`log_probs`).
* **n-gram blocking** (``no_repeat_ngram = n > 0``, all decoders alike): a token that would repeat an
  n-gram already in the *generated* tokens is not a candidate (the prompt is not looked at, so an
  article may still be copied from).
* **EOS**: each step keeps the best ``width`` candidates, ``width`` = beam − finished hypotheses; a kept
  candidate ending in ``eos_id`` is finished, so the beam shrinks by one. Decoding stops when no
  hypothesis is live or after ``max_new_tokens``. The answer is the finished or live hypothesis with the
  best ``score / length ** length_penalty`` (first one on a tie: finished in finishing order, then live).
* **Candidate order** (a total order, so results never depend on array order): standard beam search
  ranks ``(S + log p)`` descending, then ``log p`` descending, then beam position, then token id; with one
  beam this is exactly "largest ``log p``, lowest token id on a tie", i.e. :func:`greedy`.

Spike-based beam search (:func:`spike_beam_search`)
----------------------------------------------------
For each live beam the output layer's log-probabilities drive one integrate-and-fire neuron per
candidate token for ``T`` timesteps: constant input ``a = clip(log p + D, 0, D)`` (``D`` = ``window``
nats), threshold ``theta = D``, membrane starting at ``theta / 2``, reset by subtraction — exactly the
``rate`` neuron of :mod:`models.transformer.coding` (same float64 operations, so the same spikes): the count
is ``c = floor(T a / D + 1/2)``, so a token with ``log p < -D + D / (2T)`` never fires and one within
``D / (2T)`` of 0 fires every step; the count decodes to ``c D / T - D``, a ``D / T``-nat quantisation
of ``log p``. A beam's score ``S`` is its accumulated spike
evidence, the sum of its tokens' counts (an integer); candidates are ranked by ``S + c`` descending,
then beam position, then token id.

**Early termination.** The selection needs only the ``width`` best candidates. A neuron fires at most
once per step, so after ``t`` steps candidate ``(b, v)`` can end with at most ``S_b + c(t) + (T - t)``.
Beams are run one after the other, best ``S`` first; ``L`` is the ``width``-th largest guaranteed score
known so far (final scores of earlier beams' candidates, ``S_b + c(t)`` of the current one). A
candidate whose bound is *strictly* below ``L`` can never be selected, so it is dropped and its neuron
stops (timesteps saved); a whole beam with ``S_b + T < L`` is dropped before its forward step (the
model's events for that step are saved). Since only candidates that cannot be among the ``width``
best are dropped, the result is identical to running without early termination (tested).

Costs (``stats`` of a :class:`Decoded`): ``forward_steps`` (model steps run while decoding; the prompt
is prefill), and for the spike decoder ``output_neuron_updates`` (live neuron x timestep),
``output_spikes``, ``compare_events`` (one per spike: the selection unit adds it to the candidate's
count and compares with ``L``; plus one per live neuron and step for the bound check when early
termination is on), ``neuron_steps_saved`` and ``forward_steps_saved``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from models.text.tokenizer import EOS_ID

__all__ = ["Decoded", "log_probs", "banned_tokens", "check_int", "normalized_score", "greedy", "beam_search",
           "if_counts", "spike_beam_search"]


@dataclass
class Decoded:
    """A decoder's answer: the generated ``tokens`` (a final EOS included), ``score`` under the decoder's
    own scoring (sum of ``log p``; spike decoder: decoded count sum ``sum(c) D / T - D len``),
    ``normalized`` = ``score / len ** length_penalty``, and cost counters in ``stats``."""

    tokens: list[int]
    score: float
    normalized: float
    stats: dict = field(default_factory=dict)


def log_probs(logits: np.ndarray) -> np.ndarray:
    """Float64 log-softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def banned_tokens(generated: Sequence[int], n: int) -> set[int]:
    """Tokens that would repeat an ``n``-gram of ``generated`` (none when ``n`` is 0)."""
    if n <= 0 or len(generated) < n:
        return set()
    if n == 1:
        return set(generated)
    tail = tuple(generated[len(generated) - n + 1:])
    return {generated[i + n - 1] for i in range(len(generated) - n + 1) if tuple(generated[i:i + n - 1]) == tail}


def check_int(name: str, value, minimum: int, hint: str) -> int:
    """``value`` as an int; a ``ValueError`` (with ``hint``) if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, not {value!r}; {hint}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}; {hint}")
    return int(value)


def _check_common(prompt, max_new_tokens, length_penalty, no_repeat_ngram) -> None:
    if len(prompt) == 0:
        raise ValueError("the prompt is empty; pass at least one token (e.g. BOS = 1)")
    check_int("max_new_tokens", max_new_tokens, 1, "pass the number of tokens to generate (>= 1)")
    check_int("no_repeat_ngram", no_repeat_ngram, 0, "pass 0 (off) or the n-gram size to block")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, not {length_penalty!r}; 1.0 divides by length, 0 sums")


def _masked_log_probs(logits: np.ndarray, generated: Sequence[int], no_repeat_ngram: int) -> np.ndarray:
    lp = log_probs(logits)
    ban = banned_tokens(generated, no_repeat_ngram)
    if ban:
        lp[list(ban)] = -np.inf
    return lp


def normalized_score(score: float, length: int, length_penalty: float) -> float:
    """``score / length ** length_penalty`` (length at least 1)."""
    return score / (max(length, 1) ** length_penalty)


def _best(pool: list[tuple[list[int], float]], length_penalty: float) -> int:
    """Index of the hypothesis with the largest normalized score (the first one on a tie)."""
    norms = [normalized_score(score, len(tokens), length_penalty) for tokens, score in pool]
    return max(range(len(pool)), key=lambda i: (norms[i], -i))


# ---------------------------------------------------------------------------- greedy
def greedy(model, prompt: Sequence[int], max_new_tokens: int, eos_id: Optional[int] = EOS_ID,
           no_repeat_ngram: int = 0) -> Decoded:
    """The largest ``log p`` at every step (lowest token id on a tie); stops after EOS."""
    _check_common(prompt, max_new_tokens, 1.0, no_repeat_ngram)
    logits, state = model.prefill(prompt)
    tokens: list[int] = []
    score = 0.0
    steps = 0
    for n in range(max_new_tokens):
        if n > 0:
            lg, st = model.step([tokens[-1]], [state])
            logits, state = lg[0], st[0]
            steps += 1
        lp = _masked_log_probs(logits, tokens, no_repeat_ngram)
        tok = int(np.argmax(lp))
        score = score + lp[tok]
        tokens.append(tok)
        if eos_id is not None and tok == eos_id:
            break
    return Decoded(tokens, float(score), normalized_score(float(score), len(tokens), 1.0),
                   {"forward_steps": steps, "candidates_compared": len(tokens) * model.vocab_size,
                    "log_prob": float(score)})


# ---------------------------------------------------------------------------- standard beam search
def beam_search(model, prompt: Sequence[int], beam: int, max_new_tokens: int, eos_id: Optional[int] = EOS_ID,
                length_penalty: float = 1.0, no_repeat_ngram: int = 0) -> Decoded:
    """Standard beam search on the sum of ``log p`` (see the module docstring for the order and EOS)."""
    check_int("beam", beam, 1, "pass the beam width (1 = greedy)")
    _check_common(prompt, max_new_tokens, length_penalty, no_repeat_ngram)
    logits, state = model.prefill(prompt)
    live = [([], 0.0, state, logits)]  # (tokens, score, state before tokens[-1], logits for the next token)
    finished: list[tuple[list[int], float]] = []
    steps = compared = 0
    for n in range(max_new_tokens):
        if n > 0:
            lg, st = model.step([h[0][-1] for h in live], [h[2] for h in live])
            live = [(h[0], h[1], st[i], lg[i]) for i, h in enumerate(live)]
            steps += len(live)
        width = beam - len(finished)  # the beam shrinks by one per finished hypothesis
        lp = np.stack([_masked_log_probs(h[3], h[0], no_repeat_ngram) for h in live])  # (B, V)
        total = np.array([h[1] for h in live])[:, None] + lp
        compared += lp.size
        flat, flat_lp = total.ravel(), lp.ravel()
        ok = np.flatnonzero(np.isfinite(flat))
        if ok.size > width:
            thr = np.partition(flat[ok], ok.size - width)[ok.size - width]
            ok = ok[flat[ok] >= thr]
        vocab = lp.shape[1]
        order = np.lexsort((ok % vocab, ok // vocab, -flat_lp[ok], -flat[ok]))[:width]
        nxt = []
        for j in ok[order]:
            b, tok = divmod(int(j), vocab)
            hyp = (live[b][0] + [tok], live[b][1] + lp[b, tok])
            if eos_id is not None and tok == eos_id:
                finished.append(hyp)
            else:
                nxt.append((hyp[0], hyp[1], live[b][2], None))
        live = nxt
        if not live:
            break
    hyps = finished + [(h[0], h[1]) for h in live]
    tokens, score = hyps[_best(hyps, length_penalty)]
    return Decoded(tokens, float(score), normalized_score(float(score), len(tokens), length_penalty),
                   {"forward_steps": steps, "candidates_compared": compared, "log_prob": float(score)})


# ---------------------------------------------------------------------------- spike-based beam search
def if_counts(drive: np.ndarray, timesteps: int, theta: float, base: int = 0, pool: Optional[np.ndarray] = None,
              width: int = 1, early: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run rate integrate-and-fire output neurons (constant ``drive`` in ``[0, theta]``, membrane from
    ``theta / 2``, reset by subtraction) for ``timesteps`` steps.

    With ``early``, after each step (before the last) a neuron whose ``base + count + remaining steps``
    is strictly below ``L`` — the ``width``-th largest of ``pool`` (guaranteed scores known elsewhere) and
    of the live neurons' ``base + count`` — stops. Returns ``(counts (int64), live mask, stats)``; counts
    of stopped neurons are those at their stop."""
    drive = np.asarray(drive, dtype=np.float64)
    n = drive.size
    v = np.full(n, theta / 2.0)
    c = np.zeros(n, dtype=np.int64)
    idx = np.arange(n)
    pool = np.zeros(0, dtype=np.int64) if pool is None else np.asarray(pool, dtype=np.int64)
    updates = spikes = checks = saved = 0
    for t in range(1, timesteps + 1):
        vl = v[idx] + drive[idx]
        s = vl >= theta
        v[idx] = np.where(s, vl - theta, vl)
        c[idx] += s
        updates += idx.size
        spikes += int(s.sum())
        if early and t < timesteps and idx.size:
            lb = base + c[idx]
            both = np.concatenate([pool, lb])
            if both.size >= width:
                kth = np.partition(both, both.size - width)[both.size - width]
                checks += idx.size
                drop = lb + (timesteps - t) < kth
                if drop.any():
                    saved += (timesteps - t) * int(drop.sum())
                    idx = idx[~drop]
    live = np.zeros(n, dtype=bool)
    live[idx] = True
    return c, live, {"output_neuron_updates": updates, "output_spikes": spikes, "bound_checks": checks,
                     "neuron_steps_saved": saved}


def spike_beam_search(model, prompt: Sequence[int], beam: int, timesteps: int, max_new_tokens: int,
                      eos_id: Optional[int] = EOS_ID, window: float = 8.0, length_penalty: float = 1.0,
                      no_repeat_ngram: int = 0, early_termination: bool = True) -> Decoded:
    """Beam search scored by output-layer spike counts over ``timesteps`` steps (module docstring)."""
    check_int("beam", beam, 1, "pass the beam width (1 = spike greedy)")
    check_int("timesteps", timesteps, 1, "pass the output-layer timesteps T (>= 1)")
    _check_common(prompt, max_new_tokens, length_penalty, no_repeat_ngram)
    if isinstance(window, bool) or not isinstance(window, numbers.Real) or not (math.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive finite number of nats, not {window!r}; e.g. 8.0")
    T, D = int(timesteps), float(window)
    logits, state = model.prefill(prompt)
    live = [([], 0, state, logits, 0.0)]  # (tokens, count sum S, state before tokens[-1], logits or None, sum log p)
    finished: list[tuple[list[int], int, float]] = []
    st = {"forward_steps": 0, "forward_steps_saved": 0, "output_neuron_updates": 0, "output_spikes": 0,
          "bound_checks": 0, "neuron_steps_saved": 0, "candidates_compared": 0}
    for n in range(max_new_tokens):
        width = beam - len(finished)  # the beam shrinks by one per finished hypothesis
        pool = np.zeros(0, dtype=np.int64)  # the `width` best final scores so far
        cand_score, cand_pos, cand_tok, cand_lp = [], [], [], []
        for pos, (tokens, S, state, logits, lps) in enumerate(live):  # best S first
            ban = banned_tokens(tokens, no_repeat_ngram)
            if early_termination and pool.size >= width and S + T < pool.min():
                st["forward_steps_saved"] += 1 if n > 0 else 0
                st["neuron_steps_saved"] += (model.vocab_size - len(ban)) * T
                continue
            if n > 0:
                lg, sts = model.step([tokens[-1]], [state])
                logits = lg[0]
                st["forward_steps"] += 1
            lp = log_probs(logits)
            elig = np.ones(lp.size, dtype=bool)
            if ban:
                elig[list(ban)] = False
            toks = np.flatnonzero(elig)
            drive = np.clip(lp[toks] + D, 0.0, D)
            c, alive, s = if_counts(drive, T, D, base=S, pool=pool, width=width, early=early_termination)
            for k in ("output_neuron_updates", "output_spikes", "bound_checks", "neuron_steps_saved"):
                st[k] += s[k]
            final = S + c[alive]
            st["candidates_compared"] += int(final.size)
            both = np.concatenate([pool, final])
            pool = np.sort(both)[-width:] if both.size > width else both
            cand_score.append(final)
            cand_pos.append(np.full(final.size, pos))
            cand_tok.append(toks[alive])
            cand_lp.append(lp[toks[alive]])
            if n > 0:
                live[pos] = (tokens, S, sts[0], None, lps)
        score, bpos, tok, clp = (np.concatenate(a) for a in (cand_score, cand_pos, cand_tok, cand_lp))
        order = np.lexsort((tok, bpos, -score))[:width]
        nxt = []
        for j in order:
            b, t = int(bpos[j]), int(tok[j])
            hyp = (live[b][0] + [t], int(score[j]), live[b][4] + clp[j])
            if eos_id is not None and t == eos_id:
                finished.append(hyp)
            else:
                nxt.append((hyp[0], hyp[1], live[b][2], None, hyp[2]))
        live = nxt
        if not live:
            break
    hyps = finished + [(h[0], h[1], h[4]) for h in live]
    i = _best([(tk, S * D / T - D * len(tk)) for tk, S, _ in hyps], length_penalty)
    tokens, count, lp_sum = hyps[i]
    score = count * D / T - D * len(tokens)
    norm = normalized_score(score, len(tokens), length_penalty)
    st["spike_score"] = int(count)
    st["log_prob"] = float(lp_sum)
    st["compare_events"] = st["output_spikes"] + st["bound_checks"]
    return Decoded(tokens, float(score), norm, st)

