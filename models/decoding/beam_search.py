"""Decoders — greedy, standard beam search and spike-based beam search — and ``nmllm decode``.

Every decoder drives a *stepper* (any object with ``vocab_size``, ``prefill(prompt) -> (logits (V,),
state)`` and ``step(tokens, states) -> (logits (B, V), states)``); :class:`TorchStepper` wraps a
:class:`~models.mmfree.model.MMFreeForCausalLM`, :class:`GoldenStepper` the Numba golden model (which also
counts the events of every forward step it runs).

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

import argparse
import json
import math
import numbers
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from models.program import numformat as nf
from nmllm.command import add_command, run_module
from models.program.events import LayerEvents

__all__ = ["Decoded", "TorchStepper", "GoldenStepper", "log_probs", "banned_tokens", "greedy", "beam_search",
           "spike_beam_search", "if_counts", "register", "main"]

EOS_ID = 2
BOS_ID = 1


# ---------------------------------------------------------------------------- steppers
class TorchStepper:
    """A :class:`~models.mmfree.model.MMFreeForCausalLM` as a stepper (states: one ``(layers, e)`` tensor per beam)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self.vocab_size = int(model.config.vocab_size)

    @torch.no_grad()
    def prefill(self, prompt: Sequence[int]) -> tuple[np.ndarray, Any]:
        logits, state = self.model(torch.tensor([list(prompt)], dtype=torch.long), return_state=True)
        return logits[0, -1].double().numpy(), state[:, 0].clone()

    @torch.no_grad()
    def step(self, tokens: Sequence[int], states: Sequence[Any]) -> tuple[np.ndarray, list]:
        logits, new = self.model.step(torch.tensor(list(tokens), dtype=torch.long), torch.stack(list(states), dim=1))
        return logits.double().numpy(), [new[:, i].clone() for i in range(len(tokens))]


class GoldenStepper:
    """The golden model as a stepper; ``events`` sums the :class:`LayerEvents` (all layers and ``lm_head``)
    of every :meth:`step`, ``prefill_events`` those of the prompt. The prefill of the last prompt is cached,
    so several decoders on one prompt share (and count) one prefill."""

    def __init__(self, golden):
        self.golden = golden
        self.vocab_size = int(golden.vocab_size)
        self.events = LayerEvents()
        self.prefill_events = LayerEvents()
        self._cache: Optional[tuple] = None

    def prefill(self, prompt: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(int(t) for t in prompt)
        if self._cache is None or self._cache[0] != key:
            self.golden.reset()
            logits, per_layer = self.golden.run(key)
            ev = LayerEvents()
            for e in per_layer:
                ev = ev + e
            self.prefill_events = ev
            self._cache = (key, logits[-1].astype(np.float64) / (1 << nf.OUT_FRAC), self.golden.snapshot())
        return self._cache[1].copy(), self._cache[2]

    def step(self, tokens: Sequence[int], states: Sequence[np.ndarray]) -> tuple[np.ndarray, list]:
        g = self.golden
        out = np.empty((len(tokens), self.vocab_size), dtype=np.float64)
        new = []
        for i, (tok, st) in enumerate(zip(tokens, states)):
            g.restore(st)
            out[i] = g.step(int(tok)) / float(1 << nf.OUT_FRAC)
            for e in g.last_events:
                self.events = self.events + e
            new.append(g.snapshot())
        return out, new


# ---------------------------------------------------------------------------- shared pieces
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


def _check_int(name: str, value, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, not {value!r}; {hint}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}; {hint}")
    return int(value)


def _check_common(prompt, max_new_tokens, length_penalty, no_repeat_ngram) -> None:
    if len(prompt) == 0:
        raise ValueError("the prompt is empty; pass at least one token (e.g. BOS = 1)")
    _check_int("max_new_tokens", max_new_tokens, 1, "pass the number of tokens to generate (>= 1)")
    _check_int("no_repeat_ngram", no_repeat_ngram, 0, "pass 0 (off) or the n-gram size to block")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, not {length_penalty!r}; 1.0 divides by length, 0 sums")


def _masked_log_probs(logits: np.ndarray, generated: Sequence[int], no_repeat_ngram: int) -> np.ndarray:
    lp = log_probs(logits)
    ban = banned_tokens(generated, no_repeat_ngram)
    if ban:
        lp[list(ban)] = -np.inf
    return lp


def _normalized(score: float, length: int, length_penalty: float) -> float:
    return score / (max(length, 1) ** length_penalty)


def _best(pool: list[tuple[list[int], float]], length_penalty: float) -> int:
    """Index of the hypothesis with the largest normalized score (the first one on a tie)."""
    norms = [_normalized(score, len(tokens), length_penalty) for tokens, score in pool]
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
    return Decoded(tokens, float(score), _normalized(float(score), len(tokens), 1.0),
                   {"forward_steps": steps, "candidates_compared": len(tokens) * model.vocab_size,
                    "log_prob": float(score)})


# ---------------------------------------------------------------------------- standard beam search
def beam_search(model, prompt: Sequence[int], beam: int, max_new_tokens: int, eos_id: Optional[int] = EOS_ID,
                length_penalty: float = 1.0, no_repeat_ngram: int = 0) -> Decoded:
    """Standard beam search on the sum of ``log p`` (see the module docstring for the order and EOS)."""
    _check_int("beam", beam, 1, "pass the beam width (1 = greedy)")
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
    return Decoded(tokens, float(score), _normalized(float(score), len(tokens), length_penalty),
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
    _check_int("beam", beam, 1, "pass the beam width (1 = spike greedy)")
    _check_int("timesteps", timesteps, 1, "pass the output-layer timesteps T (>= 1)")
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
    norm = _normalized(score, len(tokens), length_penalty)
    st["spike_score"] = int(count)
    st["log_prob"] = float(lp_sum)
    st["compare_events"] = st["output_spikes"] + st["bound_checks"]
    return Decoded(tokens, float(score), norm, st)


# ---------------------------------------------------------------------------- CNN/DailyMail experiment
SUMMARY_CUE = "\nSummary:"


def make_prompt(tok, article: str, article_tokens: int, cue: str = SUMMARY_CUE) -> list[int]:
    """``[BOS] + first article_tokens tokens of the article + cue`` (default ``"\\nSummary:"``)."""
    from models.text.tokenizer import encode

    return [BOS_ID] + encode(tok, article)[:article_tokens] + encode(tok, cue)


def lead3(article: str) -> str:
    """The first three sentences of the article (the extractive baseline)."""
    from models.eval.rouge import split_sentences

    return "\n".join(split_sentences(article).splitlines()[:3])


def _decoder_specs(beam: int, timesteps: Sequence[int]) -> list[tuple[str, dict]]:
    specs = [("greedy", {"kind": "greedy"}), (f"beam k={beam}", {"kind": "beam", "beam": beam})]
    specs += [(f"spike beam k={beam} T={t}", {"kind": "spike", "beam": beam, "timesteps": t}) for t in timesteps]
    return specs


def _run_one(stepper, spec: dict, prompt, args) -> Decoded:
    common = dict(max_new_tokens=args.max_new_tokens, eos_id=EOS_ID, no_repeat_ngram=args.no_repeat_ngram)
    if spec["kind"] == "greedy":
        return greedy(stepper, prompt, **common)
    if spec["kind"] == "beam":
        return beam_search(stepper, prompt, spec["beam"], length_penalty=args.length_penalty, **common)
    return spike_beam_search(stepper, prompt, spec["beam"], spec["timesteps"], window=args.window,
                             length_penalty=args.length_penalty, early_termination=not args.no_early_termination,
                             **common)


def run_experiment(args: argparse.Namespace) -> dict:
    """Every decoder on the first ``--n-articles`` CNN/DailyMail test articles; ROUGE and events per token."""
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.eval.rouge import default_data_path, load_pairs, rouge_scores
    from models.text.tokenizer import decode, load_tokenizer

    timesteps = [_check_int("timesteps", t, 1, "pass T >= 1") for t in args.timesteps]
    _check_int("--beam", args.beam, 1, "pass the beam width (1 = greedy)")
    _check_int("--article-tokens", args.article_tokens, 1, "pass the article length in tokens")
    pairs = load_pairs(Path(args.data) if args.data else default_data_path(), args.n_articles)
    model = load_checkpoint(args.model).eval()
    tok = load_tokenizer(args.model)
    if args.engine == "golden":
        stepper = GoldenStepper(GoldenModel(IntegerProgram.from_model(model)))
    else:
        stepper = TorchStepper(model)
    specs = _decoder_specs(args.beam, timesteps)
    refs = [p["highlights"] for p in pairs]
    preds = {name: [] for name, _ in specs}
    acc = {name: {"tokens": 0, "seconds": 0.0, "events": LayerEvents(), "stats": {}, "score_vs_greedy": []}
           for name, _ in specs}
    samples = []
    prefill_tokens = 0
    prefill_events = LayerEvents()
    from tqdm import tqdm

    for i, pair in enumerate(tqdm(pairs, desc="decode", unit="article", dynamic_ncols=True, disable=args.no_progress)):
        prompt = make_prompt(tok, pair["article"], args.article_tokens, args.cue)
        prefill_tokens += len(prompt)
        stepper.prefill(prompt)
        if isinstance(stepper, GoldenStepper):
            prefill_events = prefill_events + stepper.prefill_events
        out = {}
        for name, spec in specs:
            ev0 = stepper.events if isinstance(stepper, GoldenStepper) else None
            t0 = time.perf_counter()
            d = _run_one(stepper, spec, prompt, args)
            a = acc[name]
            a["seconds"] += time.perf_counter() - t0
            if ev0 is not None:
                a["events"] = a["events"] + _diff(stepper.events, ev0)
            a["tokens"] += len(d.tokens)
            for k, v in d.stats.items():
                a["stats"][k] = a["stats"].get(k, 0) + v
            preds[name].append(decode(tok, [t for t in d.tokens if t != EOS_ID]).strip())
            out[name] = d
        g = out["greedy"]
        for name, spec in specs:
            d = out[name]
            if spec["kind"] == "beam":  # own score: sum log p (length-normalised as the decoder chooses)
                acc[name]["score_vs_greedy"].append(
                    d.normalized - _normalized(g.score, len(g.tokens), args.length_penalty))
        if i < args.samples:
            samples.append({"see_index": pair.get("see_index"), "reference": pair["highlights"],
                            "lead3": lead3(pair["article"]), **{name: preds[name][-1] for name, _ in specs}})
    rows = []
    lead = rouge_scores([lead3(p["article"]) for p in pairs], refs)
    rows.append({"decoder": "lead-3 (extractive)", **lead})
    for name, spec in specs:
        a = acc[name]
        ntok = max(a["tokens"], 1)
        row = {"decoder": name, **rouge_scores(preds[name], refs), "generated_tokens": a["tokens"],
               "tokens_per_summary": a["tokens"] / len(pairs), "seconds": a["seconds"],
               "mean_log_prob_per_token": a["stats"]["log_prob"] / ntok,
               "forward_steps_per_token": a["stats"]["forward_steps"] / ntok,
               "candidates_compared_per_token": a["stats"]["candidates_compared"] / ntok}
        if args.engine == "golden":
            ev = a["events"]
            row["model_input_events_per_token"] = ev.input_events / ntok
            row["model_synaptic_ops_per_token"] = ev.synaptic_ops / ntok
        if spec["kind"] == "spike":
            for k in ("output_neuron_updates", "output_spikes", "compare_events", "bound_checks",
                      "neuron_steps_saved", "forward_steps_saved"):
                row[f"{k}_per_token"] = a["stats"][k] / ntok
            full = a["stats"]["output_neuron_updates"] + a["stats"]["neuron_steps_saved"]
            row["neuron_steps_saved_fraction"] = a["stats"]["neuron_steps_saved"] / max(full, 1)
            done = a["stats"]["forward_steps"] + a["stats"]["forward_steps_saved"]
            row["forward_steps_saved_fraction"] = a["stats"]["forward_steps_saved"] / max(done, 1)
        out_ev = row.get("output_spikes_per_token", 0.0) + row.get("compare_events_per_token", 0.0)
        if args.engine == "golden":
            row["events_per_token"] = row["model_input_events_per_token"] + row["model_synaptic_ops_per_token"] + out_ev
        if a["score_vs_greedy"]:
            diffs = np.array(a["score_vs_greedy"])
            row["articles_scoring_below_greedy"] = int((diffs < 0).sum())
            row["mean_score_gain_over_greedy"] = float(diffs.mean())
        rows.append(row)
    return {
        "model": str(args.model), "engine": args.engine, "data": str(args.data or default_data_path()),
        "n_articles": len(pairs), "article_tokens": args.article_tokens, "prompt": "[BOS] + article[:A] + cue", "cue": args.cue,
        "max_new_tokens": args.max_new_tokens, "no_repeat_ngram": args.no_repeat_ngram,
        "length_penalty": args.length_penalty, "window_nats": args.window, "beam": args.beam, "timesteps": timesteps,
        "early_termination": not args.no_early_termination,
        "prefill_tokens_per_article": prefill_tokens / len(pairs),
        "prefill_synaptic_ops_per_article": prefill_events.synaptic_ops / len(pairs) if args.engine == "golden" else None,
        "prefill_input_events_per_article": prefill_events.input_events / len(pairs) if args.engine == "golden" else None,
        "rows": rows, "samples": samples,
    }


def _diff(a: LayerEvents, b: LayerEvents) -> LayerEvents:
    from models.program.events import EVENT_FIELDS

    return LayerEvents(**{f: getattr(a, f) - getattr(b, f) for f in EVENT_FIELDS})


def plot(result: dict, path: Path) -> None:
    """Left: ROUGE-1 (circles) and ROUGE-Lsum (squares) against events per generated token, one colour per
    decoder, lead-3 as grey lines. Right: ROUGE-1 against the mean log p per token of the answers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key_x = "events_per_token" if any("events_per_token" in r for r in result["rows"]) else "forward_steps_per_token"
    rows = [r for r in result["rows"] if key_x in r]
    scale = 1e6 if key_x == "events_per_token" else 1.0
    lead = result["rows"][0]
    colors = plt.get_cmap("tab10").colors
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, r in enumerate(rows):
        col = colors[i % len(colors)]
        ax.scatter(r[key_x] / scale, r["rouge1"], color=col, marker="o", label=r["decoder"])
        ax.scatter(r[key_x] / scale, r["rougeLsum"], color=col, marker="s", facecolors="none")
        ax2.scatter(r["mean_log_prob_per_token"], r["rouge1"], color=col, marker="o")
    for a in (ax, ax2):
        a.axhline(lead["rouge1"], color="grey", ls=":", lw=1)
        a.grid(alpha=0.3)
    ax.axhline(lead["rougeLsum"], color="grey", ls="--", lw=1)
    ax.set_xlabel("events per generated token (millions: model input events + synaptic ops\n"
                  "+ output spikes + compare events)" if scale > 1
                  else "forward steps per generated token (float engine: no event counts)")
    ax.set_ylabel("ROUGE F1 x 100 (o: ROUGE-1, s: ROUGE-Lsum)")
    ax.set_title(f"{result['n_articles']} CNN/DailyMail test articles, bundled MatMul-free LM ({result['engine']})\n"
                 "grey lines: lead-3 ROUGE-1 (dotted), ROUGE-Lsum (dashed)", fontsize=8)
    ax.legend(fontsize=7, loc="center right")
    ax2.set_xlabel("mean log p per generated token of the answer (nats)")
    ax2.set_ylabel("ROUGE-1 F1 x 100")
    ax2.set_title("ROUGE-1 against the model's own likelihood of the answer (same colours)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(result: dict) -> str:
    lines = ["decoder                      R-1    R-2    R-Lsum  logp/tok  fwd/tok  synops/tok   out-events/tok  events/tok"]
    for r in result["rows"]:
        if "generated_tokens" not in r:
            lines.append(f"{r['decoder']:<28} {r['rouge1']:5.2f}  {r['rouge2']:5.2f}  {r['rougeLsum']:6.2f}")
            continue
        oe = r.get("output_spikes_per_token", 0) + r.get("compare_events_per_token", 0)
        synops = r.get("model_synaptic_ops_per_token", float("nan"))
        lines.append(f"{r['decoder']:<28} {r['rouge1']:5.2f}  {r['rouge2']:5.2f}  {r['rougeLsum']:6.2f}  "
                     f"{r['mean_log_prob_per_token']:8.3f}  {r['forward_steps_per_token']:7.3f}  {synops:10.4g}   "
                     f"{oe:14.4g}  {r.get('events_per_token', float('nan')):10.4g}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def _cmd_decode(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.prompt is not None:
        return _cmd_prompt(args)
    out = Path(args.out)
    if args.replot:
        r = json.loads((out / "results.json").read_text())
        plot(r, out / "rouge_vs_events.png")
        print(_table(r))
        return 0
    r = run_experiment(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(r, indent=1) + "\n")
    plot(r, out / "rouge_vs_events.png")
    print(_table(r))
    print(f"wrote {out / 'results.json'} and {out / 'rouge_vs_events.png'}")
    return 0


def _cmd_prompt(args: argparse.Namespace) -> int:
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import decode, encode, load_tokenizer

    model = load_checkpoint(args.model).eval()
    tok = load_tokenizer(args.model)
    stepper = (GoldenStepper(GoldenModel(IntegerProgram.from_model(model))) if args.engine == "golden"
               else TorchStepper(model))
    prompt = [BOS_ID] + encode(tok, args.prompt)
    for name, spec in _decoder_specs(args.beam, args.timesteps):
        d = _run_one(stepper, spec, prompt, args)
        print(f"{name:<24} score {d.score:9.3f}  {decode(tok, [t for t in d.tokens if t != EOS_ID])!r}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 4,8,16, not {text!r}") from None


def add_decode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="models/bundled", help="MatMul-free checkpoint directory (default models/bundled)")
    p.add_argument("--engine", choices=("golden", "float"), default="golden",
                   help="golden: Numba golden model, counts model events (default); float: torch QAT view, no model events")
    p.add_argument("--prompt", default=None, help="decode this text with every decoder and print (no ROUGE run)")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--n-articles", type=int, default=200, help="first N test articles (default 200)")
    p.add_argument("--article-tokens", type=int, default=256, help="article cut to its first N tokens (default 256)")
    p.add_argument("--cue", default=SUMMARY_CUE, help="text after the article (default '\\nSummary:')")
    p.add_argument("--max-new-tokens", type=int, default=64, help="summary length limit in tokens (default 64)")
    p.add_argument("--beam", type=int, default=4, help="beam width k (default 4)")
    p.add_argument("--timesteps", type=_int_list, default=[4, 8, 16], help="spike decoder T values (default 4,8,16)")
    p.add_argument("--window", type=float, default=8.0, help="D: log p window in nats; drive clip(log p + D, 0, D), threshold D (default 8)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="final choice by score / length**p (default 1)")
    p.add_argument("--no-repeat-ngram", type=int, default=3, help="block repeated generated n-grams (0: off; default 3)")
    p.add_argument("--no-early-termination", action="store_true", help="spike decoder: run every neuron all T steps")
    p.add_argument("--samples", type=int, default=5, help="summaries of the first N articles kept in the JSON")
    p.add_argument("--out", default="docs/beam_search", help="output directory (results.json, rouge_vs_events.png)")
    p.add_argument("--replot", action="store_true", help="only redraw the plot and table from --out/results.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``decode``: greedy, beam and spike beam search on a prompt or on CNN/DailyMail (ROUGE, events)."""
    return add_command(subparsers, "decode", "greedy / beam / spike-based beam search: ROUGE and events per token",
                       __doc__, add_decode_arguments, _cmd_decode)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m models.decoding.beam_search [...]``."""
    return run_module("python -m models.decoding.beam_search", __doc__, add_decode_arguments, _cmd_decode, argv)


if __name__ == "__main__":
    sys.exit(main())
