"""Per-layer activity statistics: what fraction of a projection's inputs are events, and of its weights non-zero.

The system model needs, per projection kind (``ifg`` = the MLGRU i/f/g projections, ``o``, ``gate``,
``down``, ``lm_head``): the activation density (the fraction of int8 input codes that are input events,
each reading one synapse row), the weight density (the fraction of the weights those events reach that
are non-zero: synaptic ops, the rest zero-weight slots), both as the event vocabulary
(:mod:`models.program.events`) defines them, and the fraction of int32 values between layers that are
non-zero (only those are sent as packets).

Two sources, and every :class:`Activity` says which:

* :func:`activity_from_layer_events` -- MEASURED: from the golden model's per-layer
  :class:`models.program.events.LayerEvents` of real tokens (the interface of ``models/program/golden.py``).
* :func:`assumed_activity` -- ASSUMED, until measured counts exist for a shape: inputs are Gaussian
  (after RMSNorm for ``ifg``/``gate``/``lm_head``; ``g * SiLU(h)`` with independent standard normals for
  ``o``; ``SiLU(g) * u`` for ``down``), quantised absmax-int8 per token as the spec does, sampled by
  Monte Carlo at the layer's real width; weights are Gaussian, quantised absmean-ternary, so a weight is
  zero when ``|w| < E|w|/2``, i.e. a fraction ``erf(1 / (2 sqrt(pi))) = 0.310`` is zero; every int32 value
  between layers is non-zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.program.events import LayerEvents, activation_density, weight_density

from sim.system.shapes import ModelShape

__all__ = ["KINDS", "Activity", "gaussian_ternary_density", "assumed_activity", "activity_from_layer_events"]

#: Projection kinds the compiler maps (one compute stage each).
KINDS = ("ifg", "o", "gate", "down", "lm_head")


def gaussian_ternary_density() -> float:
    """Non-zero fraction of absmean-ternary Gaussian weights: ``P(|w| >= E|w|/2) = 1 - erf(1/(2 sqrt(pi)))``."""
    return 1.0 - math.erf(1.0 / (2.0 * math.sqrt(math.pi)))


@dataclass(frozen=True)
class Activity:
    """Event densities per projection kind, with where they come from."""

    input_nonzero: dict[str, float]
    weight_density: float
    value_density: float
    source: str
    measured: bool
    #: spike attention only: spike-gated additions per KV-state cell and token (0 for MLGRU)
    attention_adds_per_cell: float = 0.0

    def __post_init__(self) -> None:
        missing = [k for k in KINDS if k not in self.input_nonzero]
        if missing:
            raise ValueError(f"activity has no input density for {missing[0]!r}: give all of {', '.join(KINDS)}")
        for k, v in {**self.input_nonzero, "weight_density": self.weight_density,
                     "value_density": self.value_density}.items():
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"activity {k} must be a fraction in [0, 1], got {v!r}")
        a = self.attention_adds_per_cell
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0:
            raise ValueError(f"attention_adds_per_cell must be a non-negative number, got {a!r}")

    def to_dict(self) -> dict:
        return {"input_nonzero": dict(self.input_nonzero), "weight_density": self.weight_density,
                "value_density": self.value_density, "source": self.source, "measured": self.measured,
                "attention_adds_per_cell": self.attention_adds_per_cell}

    @classmethod
    def from_dict(cls, d: dict) -> "Activity":
        try:
            return cls(input_nonzero={k: float(v) for k, v in d["input_nonzero"].items()},
                       weight_density=float(d["weight_density"]), value_density=float(d["value_density"]),
                       source=str(d["source"]), measured=bool(d["measured"]),
                       attention_adds_per_cell=float(d.get("attention_adds_per_cell", 0.0)))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"activity record is missing or malformed: {exc}; expected keys input_nonzero, "
                             f"weight_density, value_density, source, measured") from None


def _absmax_nonzero(z: np.ndarray) -> float:
    """Fraction of non-zero codes ``round_half_away(127 z / max|z|)`` per row of ``z``."""
    m = np.abs(z).max(axis=1, keepdims=True)
    q = np.floor(np.abs(z) * (127.0 / m) + 0.5)
    return float((q != 0).mean())


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _assumed_attention_adds(timesteps: int = 4) -> float:
    """Spike-gated additions per KV cell and token if half the keys fire and q, |v| average T/2 spikes:
    ``P(k) E|n_v|`` state additions plus ``E n_q`` output additions per cell."""
    return 0.5 * timesteps / 2 + timesteps / 2


def assumed_activity(shape: ModelShape, samples: int = 64, seed: int = 0) -> Activity:
    """ASSUMED densities for ``shape`` (Gaussian inputs and weights; see the module docstring)."""
    rng = np.random.default_rng(seed)
    d, e, m = shape.hidden, shape.input_dim, shape.intermediate
    normal = _absmax_nonzero(rng.standard_normal((samples, d)))
    o_in = _absmax_nonzero(rng.standard_normal((samples, e)) * _silu(rng.standard_normal((samples, e))))
    down_in = _absmax_nonzero(_silu(rng.standard_normal((samples, m))) * rng.standard_normal((samples, m)))
    spike = shape.token_mixer == "spike_attention"
    return Activity(
        input_nonzero={"ifg": normal, "o": o_in, "gate": normal, "down": down_in, "lm_head": normal},
        weight_density=gaussian_ternary_density(), value_density=1.0, measured=False,
        attention_adds_per_cell=_assumed_attention_adds() if spike else 0.0,
        source=(f"ASSUMED (no golden-model counts for {shape.name}): Gaussian inputs quantised absmax-int8 "
                f"(Monte Carlo, {samples} vectors at the layer widths, seed {seed}), Gaussian weights "
                f"absmean-ternary (non-zero {gaussian_ternary_density():.3f}), all int32 values non-zero"
                + (", spike attention: half the keys fire, q and |v| average T/2 = 2 spikes" if spike else "")))


def activity_from_layer_events(events: Sequence[LayerEvents], shape: ModelShape, tokens: int,
                               what: str = "golden model") -> Activity:
    """MEASURED densities from golden-model counts: one :class:`LayerEvents` per block, then ``lm_head``.

    ``events`` are summed over ``tokens`` tokens (``GoldenModel.run`` returns them so). The densities are
    those of the event vocabulary (:mod:`models.program.events`): a block record mixes its projections,
    so every block kind gets the blocks' activation density (synaptic ops + zero-weight slots over dense
    MACs), ``lm_head`` its own, and the weight density is synaptic ops over synaptic ops + zero-weight
    slots of every record. The system model's ``events x fan_out`` and ``x weight density`` then
    reproduce the measured zero-weight slots and synaptic ops.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    if len(events) != shape.layers + 1:
        raise ValueError(f"expected {shape.layers + 1} LayerEvents ({shape.layers} blocks + lm_head) for {shape.name}, "
                         f"got {len(events)}: pass GoldenModel.run(...)[1] of a model with this shape")
    for i, ev in enumerate(events):
        reached = ev.synaptic_ops + ev.zero_weight_slots
        if (ev.input_events and not reached) or reached > ev.dense_macs:
            raise ValueError(f"LayerEvents {i}: {ev.input_events} input events but {reached} synaptic ops + "
                             f"zero-weight slots for {ev.dense_macs} dense MACs: pass the golden model's counts, "
                             f"which fill all three")
    blocks = sum(events[:-1], LayerEvents())
    block = activation_density(blocks)
    cells = tokens * shape.layers * shape.heads * shape.head_dim ** 2
    attn = blocks.attention_ops / cells if shape.token_mixer == "spike_attention" else 0.0
    return Activity(input_nonzero={"ifg": block, "o": block, "gate": block, "down": block,
                                   "lm_head": activation_density(events[-1])},
                    weight_density=weight_density(blocks + events[-1]), value_density=1.0, measured=True,
                    attention_adds_per_cell=attn,
                    source=f"MEASURED: {what}, {tokens} tokens, activation and weight densities of the event "
                           f"vocabulary; int32 values between layers taken as all non-zero")


def measure_activity(checkpoint_dir, text_path, tokenizer_path, tokens: int = 256) -> Activity:
    """MEASURED densities: the golden model of a checkpoint on the first ``tokens`` tokens of a text file
    (``nmllm activity`` writes them as JSON)."""
    from pathlib import Path

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import encode, load_tokenizer

    ckpt, text, tok_path = Path(checkpoint_dir), Path(text_path), Path(tokenizer_path)
    for p, what in ((ckpt, "checkpoint directory"), (text, "text file"), (tok_path, "tokenizer.json")):
        if not p.exists():
            raise FileNotFoundError(f"no {what} at {str(p)!r}")
    model = load_checkpoint(ckpt)
    ids = encode(load_tokenizer(tok_path), text.read_text(encoding="utf-8")[: 20 * tokens])[:tokens]
    if len(ids) < tokens:
        raise ValueError(f"{text.name} gives only {len(ids)} tokens, fewer than the {tokens} asked for: use a longer text")
    _, events = GoldenModel(IntegerProgram.from_model(model)).run(ids)
    shape = ModelShape.from_config(ckpt.name, model.config, f"checkpoint {ckpt}", False)
    return activity_from_layer_events(events, shape, len(ids), what=f"golden model of {ckpt} on {tokens} tokens of {text.name}")
