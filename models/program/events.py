"""THE event vocabulary: what an event is, defined once; every other module imports it, none redefines it.

Definitions, for one projection ``y = W x`` (``W`` of shape ``(fan_out, fan_in)``, ``x`` the integer
activations entering it):

input event
    A non-zero activation ``x_k`` entering a projection; zero activations are not events. Where the
    input is a spike train, each spike (a non-zero entry of one timestep's binary train) is one event.
synaptic op
    An input event x a non-zero weight it reaches: one add or subtract.
zero-weight slot
    An input event x a zero weight it reaches: the work that skipping zero weights saves. Hence
    ``input events x fan_out = synaptic ops + zero-weight slots``.
dense MAC
    ``fan_in x fan_out`` per projection and token: what a dense implementation does.
bit spike
    A value ``q`` sent as sign-magnitude bit planes costs ``popcount(|q|)`` spikes; its sign is which
    neuron of a sign-split pair fires. So ``-1`` costs one spike (not the eight one-bits of its two's
    complement), ``-128`` one, ``127`` seven, ``0`` none. The ``bitplane`` spike coding
    (:mod:`models.transformer.coding`) emits exactly these spikes.

Densities of a record (one projection, a layer, or a sum over tokens and layers):

* **activation density** ``= (synaptic ops + zero-weight slots) / dense MACs``: the share of the dense
  MACs' inputs that are events (for one projection, exactly ``input events / fan_in``; for a mix, the
  non-zero fraction of inputs weighted by their fan-out; a spike train may carry several events per
  value, so its density can exceed 1);
* **weight density** ``= synaptic ops / (synaptic ops + zero-weight slots)``: the non-zero share of the
  weights that events reach (measured, not the static share of non-zero weights);
* so ``synaptic ops = dense MACs x activation density x weight density``: skipping zero activations
  saves ``1 / activation density``, skipping zero weights ``1 / weight density``.

The golden model fills one :class:`LayerEvents` per (token, layer); the system model turns them into
time and energy with a preset's per-event costs. Every study reports "events per token" through
:func:`token_events`: one named breakdown and one documented total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["LayerEvents", "EVENT_FIELDS", "bit_spikes", "input_events", "events_per_input", "weights_per_input",
           "reach", "synaptic_ops", "zero_weight_slots", "activation_density", "weight_density", "TOKEN_EVENT_PARTS",
           "token_events"]


def _integers(q) -> np.ndarray:
    a = np.asarray(q)
    if a.dtype.kind not in "iub":
        raise TypeError(f"event counts need integer values, not {a.dtype}")
    return a.astype(np.int64, copy=False)


def bit_spikes(q) -> np.ndarray:
    """Sign-magnitude bit spikes of each integer ``q``: ``popcount(|q|)`` (int64, the shape of ``q``)."""
    return np.bitwise_count(np.abs(_integers(q))).astype(np.int64)  # int64 first: |int8 -128| is 128


def input_events(x) -> int:
    """Input events of activations ``x`` (any shape): the non-zero entries."""
    return int(np.count_nonzero(x))


def events_per_input(x) -> np.ndarray:
    """Input events per input neuron of activations ``x`` of shape ``(..., fan_in)`` (int64, ``(fan_in,)``)."""
    x = np.asarray(x)
    return np.count_nonzero(x.reshape(-1, x.shape[-1]), axis=0).astype(np.int64)


def weights_per_input(w) -> np.ndarray:
    """Non-zero weights each input reaches, of weights ``w`` of shape ``(fan_out, fan_in)`` (int64, ``(fan_in,)``)."""
    return np.count_nonzero(np.asarray(w), axis=0).astype(np.int64)


def reach(events: np.ndarray, nonzero: np.ndarray, fan_out: int) -> tuple[int, int]:
    """``(synaptic ops, zero-weight slots)`` of ``events[k]`` input events on input ``k``, which reaches
    ``nonzero[k]`` non-zero weights of its ``fan_out``."""
    e, nz = _integers(events), _integers(nonzero)
    ops = int(e @ nz)
    return ops, int(e.sum()) * int(fan_out) - ops


def synaptic_ops(x, w) -> int:
    """Synaptic ops of activations ``x`` ``(..., fan_in)`` through weights ``w`` ``(fan_out, fan_in)``."""
    return reach(events_per_input(x), weights_per_input(w), np.shape(w)[0])[0]


def zero_weight_slots(x, w) -> int:
    """Zero-weight slots of activations ``x`` ``(..., fan_in)`` through weights ``w`` ``(fan_out, fan_in)``."""
    return reach(events_per_input(x), weights_per_input(w), np.shape(w)[0])[1]


@dataclass
class LayerEvents:
    """Counts for one layer and one token (or summed over tokens/layers with ``+``), in the vocabulary
    of the module docstring.

    Attributes
    ----------
    input_events : int
        Input events entering the layer's projections (each projection counts the events it receives).
        Each is one message of a source neuron to the synapses it drives.
    synaptic_ops : int
        Input event x non-zero weight it reaches: one accumulate (add or subtract) each.
    dense_macs : int
        What a dense implementation would do: ``fan_in x fan_out`` per projection (for ratios).
    neuron_updates : int
        Output neurons computed by projections (accumulator read-out and rescale), one per output.
    state_updates : int
        Recurrent-state elements updated (MLGRU ``h``; spike-attention KV cells).
    nonlinear_evals : int
        Sigmoid / SiLU / reciprocal-square-root evaluations (table lookups).
    weight_bytes_read : int
        Bytes of packed weight codes read: a full synapse row per input event, at 2 bits per code.
    state_bytes_read : int
        Bytes of recurrent state read.
    state_bytes_written : int
        Bytes of recurrent state written.
    activation_bytes : int
        Bytes of activations moved between units (inputs read + outputs written, at their widths).
    spikes : int
        Binary spikes of the spike attention's q, k and v trains (unary counts: ``n`` spikes for a count
        ``n``; 0 for MLGRU). Not the projections' inputs: those are ``input_events`` and ``bit_spikes``.
    attention_ops : int
        Spike-gated additions of the spike attention: one per (key spike, value spike) pair into the
        KV state, one per (q spike, state column) into the output (0 for MLGRU).
    zero_weight_slots : int
        Input event x zero weight it reaches: what skipping zero weights saves
        (``input events x fan_out = synaptic_ops + zero_weight_slots`` per projection).
    bit_spikes : int
        The projections' input values sent as sign-magnitude bit planes: ``popcount(|q|)`` per value
        (:func:`bit_spikes`), counted where ``input_events`` are.
    """

    input_events: int = 0
    synaptic_ops: int = 0
    dense_macs: int = 0
    neuron_updates: int = 0
    state_updates: int = 0
    nonlinear_evals: int = 0
    weight_bytes_read: int = 0
    state_bytes_read: int = 0
    state_bytes_written: int = 0
    activation_bytes: int = 0
    spikes: int = 0
    attention_ops: int = 0
    zero_weight_slots: int = 0
    bit_spikes: int = 0

    def __add__(self, other: "LayerEvents") -> "LayerEvents":
        return LayerEvents(**{f: getattr(self, f) + getattr(other, f) for f in EVENT_FIELDS})

    def scaled(self, factor: float) -> dict[str, float]:
        """Every count times ``factor`` (e.g. ``1 / tokens`` for a per-token average), as a dict."""
        return {f: getattr(self, f) * factor for f in EVENT_FIELDS}

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def activation_density(ev: LayerEvents) -> float:
    """``(synaptic ops + zero-weight slots) / dense MACs`` of a record (0 where it has no dense MACs)."""
    return (ev.synaptic_ops + ev.zero_weight_slots) / ev.dense_macs if ev.dense_macs else 0.0


def weight_density(ev: LayerEvents) -> float:
    """``synaptic ops / (synaptic ops + zero-weight slots)`` of a record (0 where no event reached a weight)."""
    reached = ev.synaptic_ops + ev.zero_weight_slots
    return ev.synaptic_ops / reached if reached else 0.0


#: The names of every count, in definition order.
EVENT_FIELDS = tuple(f.name for f in fields(LayerEvents))


#: The parts of the events per token a study reports (:func:`token_events`), in the order they are added up.
TOKEN_EVENT_PARTS = ("input_events", "synaptic_ops", "attention_ops", "output_spikes", "compare_events")


def token_events(ev: LayerEvents, tokens: int, output_spikes: int = 0, compare_events: int = 0) -> dict[str, float]:
    """The events per token every study reports, from counts ``ev`` summed over ``tokens`` tokens (all layers and
    ``lm_head``) and, for a decoder, its ``output_spikes`` and ``compare_events`` over the same tokens.

    Returns, each divided by ``tokens``: ``events``, the sum of :data:`TOKEN_EVENT_PARTS` -- every message into a
    projection (``input_events``), every accumulate it causes (``synaptic_ops``), every spike-gated attention
    addition (``attention_ops``), the decoder's output spikes and its comparisons (each spike is added to a
    candidate's count and compared; :func:`models.decoding.beam_search.spike_beam_search`) -- and each part by
    name; ``bit_spikes`` is reported beside, not added: the same inputs sent as sign-magnitude bit planes (the
    message count of that coding in place of ``input_events``)."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or tokens < 1:
        raise ValueError(f"events per token need at least one token, not {tokens!r}")
    parts = {"input_events": ev.input_events, "synaptic_ops": ev.synaptic_ops, "attention_ops": ev.attention_ops,
             "output_spikes": output_spikes, "compare_events": compare_events}
    return {"events": sum(parts[k] for k in TOKEN_EVENT_PARTS) / tokens,
            **{k: v / tokens for k, v in parts.items()}, "bit_spikes": ev.bit_spikes / tokens}
