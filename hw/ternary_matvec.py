"""Event-driven ternary x int8 matrix-vector unit: P parallel lanes, zero activations skipped.

Data flow for one vector (``fan_in`` activations in, ``out_features`` results out)::

    act stream ──► LOAD: every non-zero activation is written to the event memory as (index, value);
                   a zero costs its stream beat and nothing else
                   ACCUM (once per output group of P lanes): one event per cycle reads the weight word
                   of (group, index) — P 2-bit codes — and each lane adds, subtracts or skips
                   OUTPUT: the P accumulators leave on the res stream, saturated to ``out_bits``
                   ──► res stream

Cycles per vector: ``fan_in`` (load, at full stream rate) + ``groups * (events + 2)`` + ``out_features``
(at full stream rate), where ``groups = out_features / lanes``.

Weight memory layout: word ``g * fan_in + k`` holds the codes of outputs ``g*P .. g*P+P-1`` for input
``k``, lane ``p`` in bits ``[2p, 2p+2)``; :func:`weight_memory_image` builds it. The codes and the
accumulator width are the number-format spec's (:mod:`models.program.numformat`).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat

__all__ = ["WeightWriteSignature", "TernaryMatVec", "weight_memory_image"]


class WeightWriteSignature(wiring.Signature):
    """A plain synchronous write port into a weight memory: ``addr``, ``data``, ``en`` (driven by the loader)."""

    def __init__(self, *, depth: int, width: int):
        super().__init__({
            "addr": Out(range(depth)),
            "data": Out(unsigned(width)),
            "en": Out(1),
        })


def _check_positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


class TernaryMatVec(wiring.Component):
    """Ternary weights x signed activations, ``lanes`` outputs computed in parallel.

    Parameters
    ----------
    lanes : int
        Parallel accumulators (P). Must divide ``out_features``.
    fan_in : int
        Activations per vector (K), at most :data:`models.program.numformat.MAX_FAN_IN`.
    out_features : int
        Results per vector (N).
    act_bits : int
        Activation width; one of :data:`models.program.numformat.ACT_BITS_ALLOWED`.
    out_bits : int or None
        Width of each result; the accumulator saturates into it. ``None`` means the full accumulator
        width :func:`models.program.numformat.acc_bits` (no saturation can occur).

    Members
    -------
    act : In(stream.Signature(signed(act_bits)))
        Activations, ``fan_in`` beats per vector.
    res : Out(stream.Signature(signed(out_bits)))
        Results, ``out_features`` beats per vector, output 0 first.
    weights : In(WeightWriteSignature)
        Weight-memory write port (see :func:`weight_memory_image`).
    busy : Out(1)
        High from the last activation of a vector until its last result has been taken.
    """

    def __init__(self, *, lanes: int, fan_in: int, out_features: int,
                 act_bits: int = numformat.ACT_BITS, out_bits: int | None = None):
        _check_positive_int("Lane count", lanes)
        _check_positive_int("Fan-in", fan_in)
        _check_positive_int("Output feature count", out_features)
        numformat.check_act_bits(act_bits)
        if out_features % lanes:
            raise ValueError(f"Lane count {lanes} must divide the output feature count {out_features}")
        self.lanes = lanes
        self.fan_in = fan_in
        self.out_features = out_features
        self.act_bits = act_bits
        self.groups = out_features // lanes
        self.acc_bits = numformat.acc_bits(fan_in, act_bits)
        if out_bits is None:
            out_bits = self.acc_bits
        _check_positive_int("Output width", out_bits)
        if not 2 <= out_bits <= self.acc_bits:
            raise ValueError(
                f"Output width {out_bits} must be between 2 and the accumulator width {self.acc_bits}")
        self.out_bits = out_bits
        self.weight_depth = self.groups * fan_in
        super().__init__({
            "act": In(stream.Signature(signed(act_bits))),
            "res": Out(stream.Signature(signed(out_bits))),
            "weights": In(WeightWriteSignature(depth=self.weight_depth, width=2 * lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P, K = self.lanes, self.fan_in

        m.submodules.wmem = wmem = Memory(shape=unsigned(2 * P), depth=self.weight_depth, init=[])
        w_wr = wmem.write_port()
        w_rd = wmem.read_port(domain="sync")
        m.d.comb += [
            w_wr.addr.eq(self.weights.addr),
            w_wr.data.eq(self.weights.data),
            w_wr.en.eq(self.weights.en),
        ]

        event_layout = data.StructLayout({"index": range(K), "value": signed(self.act_bits)})
        m.submodules.emem = emem = Memory(shape=event_layout, depth=K, init=[])
        e_wr = emem.write_port()
        e_rd = emem.read_port(domain="comb")

        k = Signal(range(K))                  # next activation index in LOAD
        n_events = Signal(range(K + 1))       # events stored for this vector
        e = Signal(range(K + 1))              # next event to issue in ACCUM
        group = Signal(range(self.groups))
        lane = Signal(range(P))               # next lane to emit in OUTPUT
        x_d = Signal(signed(self.act_bits))   # event value, aligned with the weight read data
        issued_d = Signal()                   # an event was issued last cycle
        accs = Array(Signal(signed(self.acc_bits), name=f"acc{p}") for p in range(P))

        # Accumulate: one cycle after an event is issued, its weight word is on w_rd.data.
        with m.If(issued_d):
            for p in range(P):
                code = w_rd.data[2 * p:2 * p + 2]
                with m.If(code == 0b01):
                    m.d.sync += accs[p].eq(accs[p] + x_d)
                with m.Elif(code == 0b11):
                    m.d.sync += accs[p].eq(accs[p] - x_d)

        # Saturate the selected accumulator into the output word.
        lo = -(1 << (self.out_bits - 1))
        hi = (1 << (self.out_bits - 1)) - 1
        selected = accs[lane]
        m.d.comb += self.res.payload.eq(
            Mux(selected > hi, Const(hi, signed(self.out_bits)),
                Mux(selected < lo, Const(lo, signed(self.out_bits)), selected)))

        m.d.comb += e_rd.addr.eq(e)
        m.d.sync += issued_d.eq(0)

        with m.FSM(name="phase"):
            with m.State("LOAD"):
                m.d.comb += self.act.ready.eq(1)
                with m.If(self.act.valid):
                    with m.If(self.act.payload != 0):
                        m.d.comb += [
                            e_wr.addr.eq(n_events),
                            e_wr.data.index.eq(k),
                            e_wr.data.value.eq(self.act.payload),
                            e_wr.en.eq(1),
                        ]
                        m.d.sync += n_events.eq(n_events + 1)
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == K - 1):
                        m.d.sync += [k.eq(0), e.eq(0), group.eq(0)]
                        m.next = "ACCUM"
            with m.State("ACCUM"):
                m.d.comb += self.busy.eq(1)
                with m.If(e < n_events):
                    m.d.comb += [
                        w_rd.addr.eq(group * K + e_rd.data.index),
                        w_rd.en.eq(1),
                    ]
                    m.d.sync += [x_d.eq(e_rd.data.value), issued_d.eq(1), e.eq(e + 1)]
                with m.Elif(~issued_d):
                    m.d.sync += lane.eq(0)
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [self.busy.eq(1), self.res.valid.eq(1)]
                with m.If(self.res.ready):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(lane == P - 1):
                        m.d.sync += [acc.eq(0) for acc in accs]
                        with m.If(group == self.groups - 1):
                            m.d.sync += n_events.eq(0)
                            m.next = "LOAD"
                        with m.Else():
                            m.d.sync += [group.eq(group + 1), e.eq(0)]
                            m.next = "ACCUM"
        return m


def weight_memory_image(weights, lanes: int) -> list[int]:
    """Weight-memory words for a ternary matrix ``weights`` of shape ``(out_features, fan_in)``.

    Word ``g * fan_in + k`` packs the 2-bit codes of outputs ``g*lanes + p`` (``p`` in lane order,
    lane ``p`` at bits ``[2p, 2p+2)``) for input ``k``. Raises ``ValueError`` for non-ternary weights.
    """
    _check_positive_int("Lane count", lanes)
    codes = numformat.encode_ternary(weights)
    if codes.ndim != 2:
        raise ValueError(f"Weights must be a 2-D (out_features, fan_in) matrix, not shape {codes.shape}")
    n_out, fan_in = codes.shape
    if n_out % lanes:
        raise ValueError(f"Lane count {lanes} must divide the output feature count {n_out}")
    grouped = codes.reshape(n_out // lanes, lanes, fan_in).astype(object)  # (g, p, k)
    shifts = np.array([2 * p for p in range(lanes)], dtype=object)[None, :, None]
    words = (grouped << shifts).sum(axis=1)  # (g, k)
    return [int(w) for w in words.reshape(-1)]
