"""Activity statistics: what fraction of a projection's inputs are events, and of its weights non-zero.

The system model needs, per compiler stage (``L3.ifg`` = the MLGRU i/f/g projections of layer 3, ``L3.o``,
``L3.gate``, ``L3.down``, ``lm_head``) or at least per projection kind (``ifg``, ``o``, ``gate``, ``down``,
``lm_head``): the activation density (the share of the dense MACs' inputs that are input events, each
reading one synapse row), the weight density (the share of the weights those events reach that are
non-zero: synaptic ops, the rest zero-weight slots), the sign-magnitude bit spikes per input event (what
the binary spike format sends), all as the event vocabulary (:mod:`models.program.events`) defines them,
and the fraction of int32 values between layers that are non-zero (only those are sent as packets).

Three sources, and every :class:`Activity` says which:

* :func:`measure_activity` / :func:`activity_from_stage_events` -- MEASURED per stage: each projection's
  counts on real tokens (:func:`stage_events`: the integer program's int8 inputs, so each layer's stages add
  up to the golden model's record of that layer); ``nmllm simulate CHECKPOINT`` uses them.
* :func:`activity_from_layer_events` -- MEASURED per layer (``GoldenModel.run``'s records): the blocks'
  projections mixed, so every block kind gets one density.
* :func:`assumed_activity` -- ASSUMED, for shapes without weights: inputs are Gaussian
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

from models.program import numformat as nf
from models.program.events import (LayerEvents, activation_density, bit_spikes, events_per_input, input_events, reach,
                                   weight_density, weights_per_input)

from sim.system.shapes import ModelShape

__all__ = ["KINDS", "PROJ_KIND", "STAGE_KEYS", "SHAPE_KEYS", "Activity", "stage_names", "gaussian_ternary_density",
           "assumed_activity", "activity_from_layer_events", "stage_events", "activity_from_stage_events",
           "checkpoint_tokens", "measure_activity"]

#: Projection kinds the compiler maps (one compute stage each).
KINDS = ("ifg", "o", "gate", "down", "lm_head")


def gaussian_ternary_density() -> float:
    """Non-zero fraction of absmean-ternary Gaussian weights: ``P(|w| >= E|w|/2) = 1 - erf(1/(2 sqrt(pi)))``."""
    return 1.0 - math.erf(1.0 / (2.0 * math.sqrt(math.pi)))


#: Golden-model projection -> the compiler stage kind that holds it (:mod:`sim.system.compiler`).
PROJ_KIND = {"i_proj": "ifg", "f_proj": "ifg", "g_proj": "ifg", "q_proj": "ifg", "k_proj": "ifg", "v_proj": "ifg",
             "o_proj": "o", "gate_proj": "gate", "down_proj": "down"}
#: What a measured stage records: the event vocabulary's densities and bit spikes per input event.
STAGE_KEYS = ("input_nonzero", "weight_density", "bit_spikes_per_event")
#: The model dimensions per-stage densities belong to (they apply only to a mapping of the same model).
SHAPE_KEYS = ("layers", "hidden", "input_dim", "intermediate", "vocab")
_FIELDS = ("input_nonzero", "weight_density", "value_density", "source", "measured", "attention_adds_per_cell",
           "bit_spikes_per_event", "stages", "shape", "tokens")


def _fraction(what: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"activity {what} must be a fraction in [0, 1], got {v!r}")
    return float(v)


def _bits(what: str, v) -> float:
    top = nf.QUANT_MAX.bit_length()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= top:
        raise ValueError(f"activity {what} must be a number of bit spikes per input event in [0, {top}], got {v!r}")
    return float(v)


def stage_names(shape: ModelShape) -> list[str]:
    """The compiler stages that hold projections, in order: ``L0.ifg, L0.o, L0.gate, L0.down, ..., lm_head``."""
    return [f"L{li}.{k}" for li in range(shape.layers) for k in KINDS[:-1]] + ["lm_head"]


@dataclass(frozen=True)
class Activity:
    """Event densities per projection kind (and, when measured, per compiler stage), with their source.

    ``weight_density`` is one fraction for every kind or a dict per kind. ``stages`` (measured only) maps
    each stage name of :func:`stage_names` to its :data:`STAGE_KEYS`; they apply to a mapping of a model
    with the same ``shape`` (:data:`SHAPE_KEYS`), any other model gets the per-kind values. Replacing the
    per-kind densities of a measured activity (``dataclasses.replace``) must drop ``stages`` too.
    """

    input_nonzero: dict[str, float]
    weight_density: float | dict[str, float]
    value_density: float
    source: str
    measured: bool
    #: spike attention only: spike-gated additions per KV-state cell and token (0 for MLGRU)
    attention_adds_per_cell: float = 0.0
    #: sign-magnitude bit spikes per input event, per kind (None: not known; the binary spike format needs it)
    bit_spikes_per_event: dict[str, float] | None = None
    stages: dict[str, dict[str, float]] | None = None
    shape: dict[str, int] | None = None
    #: tokens the densities were measured on (0: not measured)
    tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_nonzero", "bit_spikes_per_event") + (("weight_density",) if isinstance(self.weight_density, dict) else ()):
            table = getattr(self, name)
            if table is None:
                continue
            if not isinstance(table, dict):
                raise ValueError(f"activity {name} must be a mapping of {', '.join(KINDS)}, got {table!r}")
            missing = [k for k in KINDS if k not in table]
            if missing:
                raise ValueError(f"activity {name} has no value for {missing[0]!r}: give all of {', '.join(KINDS)}")
            extra = sorted(set(table) - set(KINDS))
            if extra:
                raise ValueError(f"activity {name} has an unknown kind {extra[0]!r}: the kinds are {', '.join(KINDS)}")
            for k, v in table.items():
                (_bits if name == "bit_spikes_per_event" else _fraction)(f"{name}.{k}", v)
        if not isinstance(self.weight_density, dict):
            _fraction("weight_density", self.weight_density)
        _fraction("value_density", self.value_density)
        a = self.attention_adds_per_cell
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0:
            raise ValueError(f"attention_adds_per_cell must be a non-negative number, got {a!r}")
        t = self.tokens
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"activity tokens must be a non-negative integer, got {t!r}")
        if (self.stages is None) != (self.shape is None):
            raise ValueError("activity stages and shape come together: give both (measured per stage) or neither")
        if self.stages is not None:
            self._check_stages()

    def _check_stages(self) -> None:
        shape = self.shape
        if not isinstance(shape, dict) or sorted(shape) != sorted(SHAPE_KEYS) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape.values()):
            raise ValueError(f"activity shape must give positive integers {', '.join(SHAPE_KEYS)}, got {shape!r}")
        if not isinstance(self.stages, dict):
            raise ValueError(f"activity stages must map stage names to {', '.join(STAGE_KEYS)}")
        want = [f"L{li}.{k}" for li in range(shape["layers"]) for k in KINDS[:-1]] + ["lm_head"]
        odd = sorted(set(self.stages) ^ set(want))
        if odd:
            raise ValueError(f"activity stages {'has an unknown' if odd[0] in self.stages else 'lacks the'} stage "
                             f"{odd[0]!r}: a {shape['layers']}-layer model has L0.ifg ... L{shape['layers'] - 1}.down, lm_head")
        for name, entry in self.stages.items():
            if not isinstance(entry, dict) or sorted(entry) != sorted(STAGE_KEYS):
                raise ValueError(f"activity stage {name!r} must give exactly {', '.join(STAGE_KEYS)}, got {entry!r}")
            _fraction(f"{name}.input_nonzero", entry["input_nonzero"])
            _fraction(f"{name}.weight_density", entry["weight_density"])
            _bits(f"{name}.bit_spikes_per_event", entry["bit_spikes_per_event"])

    def weight_of(self, kind: str) -> float:
        """Weight density of projection kind ``kind``."""
        w = self.weight_density
        return float(w[kind]) if isinstance(w, dict) else float(w)

    def per_stage_for(self, model: dict) -> bool:
        """True when the per-stage densities belong to ``model`` (a mapping's model dict)."""
        return self.stages is not None and all(model.get(k) == self.shape[k] for k in SHAPE_KEYS)

    def for_stage(self, name: str, kind: str, model: dict) -> tuple[float, float, float | None]:
        """``(activation density, weight density, bit spikes per event or None)`` of stage ``name``."""
        if self.per_stage_for(model):
            s = self.stages[name]
            return s["input_nonzero"], s["weight_density"], s["bit_spikes_per_event"]
        bits = self.bit_spikes_per_event[kind] if self.bit_spikes_per_event is not None else None
        return self.input_nonzero[kind], self.weight_of(kind), bits

    def to_dict(self) -> dict:
        w = self.weight_density
        return {"input_nonzero": dict(self.input_nonzero), "weight_density": dict(w) if isinstance(w, dict) else w,
                "value_density": self.value_density, "source": self.source, "measured": self.measured,
                "attention_adds_per_cell": self.attention_adds_per_cell,
                "bit_spikes_per_event": None if self.bit_spikes_per_event is None else dict(self.bit_spikes_per_event),
                "stages": None if self.stages is None else {k: dict(v) for k, v in self.stages.items()},
                "shape": None if self.shape is None else dict(self.shape), "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "Activity":
        """The inverse of :meth:`to_dict` (a ``provenance`` entry is allowed and ignored); one-line errors."""
        if not isinstance(d, dict):
            raise ValueError(f"an activity record must be a JSON object with {', '.join(_FIELDS[:5])}, got {type(d).__name__}")
        extra = sorted(set(d) - set(_FIELDS) - {"provenance"})
        if extra:
            raise ValueError(f"activity record has an unknown key {extra[0]!r}: known keys are {', '.join(_FIELDS)}")
        missing = [k for k in _FIELDS[:5] if k not in d]
        if missing:
            raise ValueError(f"activity record is missing {missing[0]!r}: expected keys {', '.join(_FIELDS[:5])} "
                             f"(write one with `nmllm activity`)")
        if not isinstance(d["source"], str) or not isinstance(d["measured"], bool):
            raise ValueError("activity record needs source (a string) and measured (true or false)")
        return cls(**{k: d[k] for k in _FIELDS if k in d})


def _absmax_codes(z: np.ndarray) -> tuple[float, float]:
    """Of the codes ``round_half_away(127 z / max|z|)`` per row of ``z``: the non-zero fraction and the
    sign-magnitude bit spikes per non-zero code (:func:`models.program.events.bit_spikes`)."""
    m = np.abs(z).max(axis=1, keepdims=True)
    q = np.floor(np.abs(z) * (nf.QUANT_MAX / m) + 0.5).astype(np.int64)
    nonzero = int(np.count_nonzero(q))
    return nonzero / q.size, float(bit_spikes(q).sum()) / max(nonzero, 1)


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
    normal = _absmax_codes(rng.standard_normal((samples, d)))
    o_in = _absmax_codes(rng.standard_normal((samples, e)) * _silu(rng.standard_normal((samples, e))))
    down_in = _absmax_codes(_silu(rng.standard_normal((samples, m))) * rng.standard_normal((samples, m)))
    per_kind = {"ifg": normal, "o": o_in, "gate": normal, "down": down_in, "lm_head": normal}
    spike = shape.token_mixer == "spike_attention"
    return Activity(
        input_nonzero={k: v[0] for k, v in per_kind.items()}, weight_density=gaussian_ternary_density(),
        value_density=1.0, measured=False, bit_spikes_per_event={k: v[1] for k, v in per_kind.items()},
        attention_adds_per_cell=_assumed_attention_adds() if spike else 0.0,
        source=(f"ASSUMED (no golden-model counts for {shape.name}): Gaussian inputs quantised absmax-int8 "
                f"(Monte Carlo, {samples} vectors at the layer widths, seed {seed}), Gaussian weights "
                f"absmean-ternary (non-zero {gaussian_ternary_density():.3f}), all int32 values non-zero"
                + (", spike attention: half the keys fire, q and |v| average T/2 = 2 spikes" if spike else "")))


def _check_events(events: Sequence[LayerEvents], what: str) -> None:
    for i, ev in enumerate(events):
        reached = ev.synaptic_ops + ev.zero_weight_slots
        if (ev.input_events and not reached) or reached > ev.dense_macs:
            raise ValueError(f"{what} {i}: {ev.input_events} input events but {reached} synaptic ops + "
                             f"zero-weight slots for {ev.dense_macs} dense MACs: pass the golden model's counts, "
                             f"which fill all three")


def _bits_per_event(ev: LayerEvents) -> float:
    return ev.bit_spikes / ev.input_events if ev.input_events else 0.0


def activity_from_layer_events(events: Sequence[LayerEvents], shape: ModelShape, tokens: int,
                               what: str = "golden model") -> Activity:
    """MEASURED densities from golden-model counts per layer: one :class:`LayerEvents` per block, then ``lm_head``.

    ``events`` are summed over ``tokens`` tokens (``GoldenModel.run`` returns them so). A block record mixes
    its projections, so every block kind gets the blocks' activation density (synaptic ops + zero-weight
    slots over dense MACs), ``lm_head`` its own, and the weight density is synaptic ops over synaptic ops +
    zero-weight slots of every record (:func:`activity_from_stage_events` keeps each stage apart).
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    if len(events) != shape.layers + 1:
        raise ValueError(f"expected {shape.layers + 1} LayerEvents ({shape.layers} blocks + lm_head) for {shape.name}, "
                         f"got {len(events)}: pass GoldenModel.run(...)[1] of a model with this shape")
    _check_events(events, "LayerEvents")
    blocks = sum(events[:-1], LayerEvents())
    block = activation_density(blocks)
    cells = tokens * shape.layers * shape.heads * shape.head_dim ** 2
    attn = blocks.attention_ops / cells if shape.token_mixer == "spike_attention" else 0.0
    bits = {k: _bits_per_event(blocks) for k in KINDS[:-1]} | {"lm_head": _bits_per_event(events[-1])}
    return Activity(input_nonzero={"ifg": block, "o": block, "gate": block, "down": block,
                                   "lm_head": activation_density(events[-1])},
                    weight_density=weight_density(blocks + events[-1]), value_density=1.0, measured=True,
                    attention_adds_per_cell=attn, bit_spikes_per_event=bits, tokens=tokens,
                    source=f"MEASURED: {what}, {tokens} tokens, activation and weight densities of the event "
                           f"vocabulary; int32 values between layers taken as all non-zero")


def stage_events(program, tokens) -> dict[str, LayerEvents]:
    """Per compiler stage (``L0.ifg`` ... ``lm_head``), the projections' counts of the integer program
    ``program`` on the token ids ``tokens``, summed over the tokens.

    The program runs in the torch integer view (bit-exact with the golden model) through its documented
    ``accumulate`` hook, which hands over each projection's int8 input codes and ternary weights; the counts
    are the event vocabulary's functions of those (input events, synaptic ops, zero-weight slots, bit spikes,
    dense MACs), so each layer's stages add up to the golden model's record of that layer.
    """
    import torch

    from models.program.integer_view import IntegerView

    records = {n: LayerEvents() for n in [f"L{li}.{k}" for li in range(len(program.layers)) for k in KINDS[:-1]] + ["lm_head"]}

    def accumulate(name: str, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        stage = "lm_head" if name == "lm_head" else f"L{name.split('.')[1]}.{PROJ_KIND[name.split('.')[2]]}"
        fan_out, fan_in = codes.shape
        ops, slots = reach(events_per_input(x), weights_per_input(codes), fan_out)
        rec = records[stage]
        n = input_events(x)
        rec.input_events += n
        rec.weight_bytes_read += n * ((fan_out + 3) // 4)   # a packed 2-bit synapse row per input event
        rec.synaptic_ops += ops
        rec.zero_weight_slots += slots
        rec.dense_macs += x.shape[0] * fan_in * fan_out
        rec.bit_spikes += int(bit_spikes(x).sum())
        return x.astype(np.int64) @ codes.astype(np.int64).T

    IntegerView(program, accumulate=accumulate).forward(torch.as_tensor([list(tokens)], dtype=torch.int64))
    return records


def activity_from_stage_events(stages: dict[str, LayerEvents], shape: ModelShape, tokens: int,
                               what: str = "golden model", attention_ops: int = 0) -> Activity:
    """MEASURED densities per compiler stage (:func:`stage_events`), and per kind over the layers.

    Each stage's activation density, weight density and bit spikes per input event are those of the event
    vocabulary over its own projections, so the system model reproduces the measured synaptic ops and
    zero-weight slots of every stage; ``attention_ops`` are the spike attention's additions (per-layer records).
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    want = stage_names(shape)
    if sorted(stages) != sorted(want):
        raise ValueError(f"expected the stages {want[0]} ... {want[-1]} of {shape.name}, got {sorted(stages)[:3]}...: "
                         f"pass stage_events(...) of a model with this shape")
    _check_events([stages[n] for n in want], "stage")
    kinds = {k: sum((stages[n] for n in want if n.split(".")[-1] == k), LayerEvents()) for k in KINDS}
    entry = lambda ev: {"input_nonzero": activation_density(ev), "weight_density": weight_density(ev),  # noqa: E731
                        "bit_spikes_per_event": _bits_per_event(ev)}
    per_kind = {k: entry(ev) for k, ev in kinds.items()}
    cells = tokens * shape.layers * shape.heads * shape.head_dim ** 2
    return Activity(input_nonzero={k: v["input_nonzero"] for k, v in per_kind.items()},
                    weight_density={k: v["weight_density"] for k, v in per_kind.items()}, value_density=1.0,
                    measured=True, bit_spikes_per_event={k: v["bit_spikes_per_event"] for k, v in per_kind.items()},
                    attention_adds_per_cell=attention_ops / cells if shape.token_mixer == "spike_attention" else 0.0,
                    stages={n: entry(stages[n]) for n in want},
                    shape={k: getattr(shape, k) for k in SHAPE_KEYS}, tokens=tokens,
                    source=f"MEASURED per stage: {what}, {tokens} tokens, activation and weight densities and bit "
                           f"spikes of the event vocabulary; int32 values between layers taken as all non-zero")


def checkpoint_tokens(checkpoint_dir, text_path, tokenizer_path, tokens: int) -> list[int]:
    """The first ``tokens`` token ids of a text file under a checkpoint's tokenizer (one-line errors)."""
    from pathlib import Path

    from models.text.tokenizer import encode, load_tokenizer

    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"--tokens must be a positive integer, not {tokens!r}")
    ckpt, text, tok_path = Path(checkpoint_dir), Path(text_path), Path(tokenizer_path)
    for p, what in ((ckpt, "checkpoint directory"), (text, "text file"), (tok_path, "tokenizer.json")):
        if not p.exists():
            raise FileNotFoundError(f"no {what} at {str(p)!r}")
    ids = encode(load_tokenizer(tok_path), text.read_text(encoding="utf-8")[: 20 * tokens])[:tokens]
    if len(ids) < tokens:
        raise ValueError(f"{text.name} gives only {len(ids)} tokens, fewer than the {tokens} asked for: use a longer text")
    return ids


def measure_activity(checkpoint_dir, text_path, tokenizer_path, tokens: int = 256) -> Activity:
    """MEASURED per-stage densities: the golden model of a checkpoint on the first ``tokens`` tokens of a
    text file (``nmllm activity`` writes them as JSON; ``nmllm simulate CHECKPOINT`` measures them itself)."""
    from pathlib import Path

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram

    ids = checkpoint_tokens(checkpoint_dir, text_path, tokenizer_path, tokens)
    ckpt, text = Path(checkpoint_dir), Path(text_path)
    model = load_checkpoint(ckpt)
    program = IntegerProgram.from_model(model)
    shape = ModelShape.from_config(ckpt.name, model.config, f"checkpoint {ckpt}", False)
    attention_ops = 0
    if shape.token_mixer == "spike_attention":   # the spike attention's additions are the golden model's per layer
        attention_ops = sum(ev.attention_ops for ev in GoldenModel(program).run(ids)[1])
    return activity_from_stage_events(stage_events(program, ids), shape, len(ids), attention_ops=attention_ops,
                                      what=f"golden model of {ckpt} on {tokens} tokens of {text.name} (per stage: "
                                           f"its integer program's projection inputs)")
