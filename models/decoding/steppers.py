"""Steppers: the models the decoders of :mod:`models.decoding.beam_search` drive.

A stepper has ``vocab_size``, ``prefill(prompt) -> (logits (V,), state)`` and
``step(tokens, states) -> (logits (B, V), states)``. :class:`TorchStepper` wraps a
:class:`~models.mmfree.model.MMFreeForCausalLM`, :class:`GoldenStepper` the Numba golden model (which also
counts the events of every forward step it runs), :class:`ViewStepper` the integer program's torch executor
(:class:`~models.program.integer_view.IntegerView`; with an ``accumulate`` hook, e.g. crossbar tiles).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from models.program import numformat as nf
from models.program.events import LayerEvents

__all__ = ["TorchStepper", "GoldenStepper", "ViewStepper"]


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


class ViewStepper:
    """An :class:`~models.program.integer_view.IntegerView` as a stepper (states: one integer state tensor per
    beam; logits: the integer logits over ``2**OUT_FRAC``, as :class:`GoldenStepper`'s); ``tokens`` counts the tokens it has run
    (prompts and steps)."""

    def __init__(self, view):
        self.view = view
        self.vocab_size = int(view.program.vocab_size)
        self.tokens = 0

    def prefill(self, prompt: Sequence[int]) -> tuple[np.ndarray, Any]:
        logits, state = self.view.forward(torch.tensor([list(prompt)], dtype=torch.long))
        self.tokens += len(prompt)
        return logits[0, -1].double().numpy() / (1 << nf.OUT_FRAC), state[:, 0]

    def step(self, tokens: Sequence[int], states: Sequence[Any]) -> tuple[np.ndarray, list]:
        logits, new = self.view.forward(torch.tensor(list(tokens), dtype=torch.long)[:, None],
                                        torch.stack(list(states), 1))
        self.tokens += len(tokens)
        return logits[:, 0].double().numpy() / (1 << nf.OUT_FRAC), [new[:, i] for i in range(len(tokens))]
