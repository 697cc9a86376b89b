"""Event counts: what one token costs in events, per layer — the input of the system model.

The golden model fills one :class:`LayerEvents` per (token, layer); the system model turns them into
time and energy with a preset's per-event costs. Every field is a count of one kind of event, defined
exactly, so a preset's energy per event multiplies a well-defined number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["LayerEvents", "EVENT_FIELDS"]


@dataclass
class LayerEvents:
    """Counts for one layer and one token (or summed over tokens/layers with ``+``).

    Attributes
    ----------
    input_events : int
        Non-zero activations (or spikes) entering a ternary/crossbar projection: each is one message
        of a source neuron to the synapses it drives. Zero activations are not events.
    synaptic_ops : int
        ``input event x non-zero weight it reaches``: one accumulate (add or subtract) each.
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
        Binary spikes of the spike attention's q, k and v (0 for MLGRU).
    attention_ops : int
        Spike-gated additions of the spike attention: one per (key spike, value spike) pair into the
        KV state, one per (q spike, state column) into the output (0 for MLGRU).
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

    def __add__(self, other: "LayerEvents") -> "LayerEvents":
        return LayerEvents(**{f: getattr(self, f) + getattr(other, f) for f in EVENT_FIELDS})

    def scaled(self, factor: float) -> dict[str, float]:
        """Every count times ``factor`` (e.g. ``1 / tokens`` for a per-token average), as a dict."""
        return {f: getattr(self, f) * factor for f in EVENT_FIELDS}

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


#: The names of every count, in definition order.
EVENT_FIELDS = tuple(f.name for f in fields(LayerEvents))
