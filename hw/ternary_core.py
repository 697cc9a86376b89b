"""The ternary core: the event-driven ternary unit plus the per-token BitLinear scale.

:class:`TernaryCore` is :class:`hw.ternary_matvec.TernaryMatVec` (P lanes, a ``groups * fan_in``-deep
memory of 2-bit weight codes, zero activations skipped, accumulators of the spec's width) composed with
a two-register stream stage that applies the per-token scale exactly as
:func:`models.program.numformat.apply_scale`::

    act ──► TernaryMatVec ──► acc ──► [A: acc, multiplier, shift] ──► [B: apply_scale] ──► res
    scale (one beat per vector) ──┘

One ``scale`` beat is taken per vector and applied to all ``out_features`` results of that vector; a
vector's results wait until its scale has arrived. ``apply_scale`` is
``saturate(round_shift(acc * multiplier, shift), RESID_BITS)`` for ``shift >= 0`` (shift clipped to 62)
and ``saturate((acc * multiplier) << min(-shift, MAX_LEFT_SHIFT), RESID_BITS)`` for ``shift < 0``.
Cycles per vector are those of :class:`~hw.ternary_matvec.TernaryMatVec` plus two of latency.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from models.program import numformat

from hw.fixed import round_shift, saturate
from hw.ternary_matvec import TernaryMatVec, WeightWriteSignature, weight_memory_image

__all__ = ["SCALE_MULTIPLIER_BITS", "SCALE_SHIFT_BITS", "ScaleLayout", "TernaryCore", "weight_memory_image",
           "pack_scale"]

#: Width of the per-token multiplier: :func:`models.program.numformat.bitlinear_scale` rounds to 16 significant
#: bits, and the rounding can carry into bit 16.
SCALE_MULTIPLIER_BITS = numformat.MULTIPLIER_BITS + 1
#: Width of the signed per-token shift.
SCALE_SHIFT_BITS = 8
#: Largest right shift applied (as :func:`models.program.numformat.apply_scale`).
MAX_RIGHT_SHIFT = 62

#: One per-token scale beat.
ScaleLayout = data.StructLayout({
    "multiplier": unsigned(SCALE_MULTIPLIER_BITS),
    "shift": signed(SCALE_SHIFT_BITS),
})


def pack_scale(multiplier: int, shift: int) -> int:
    """The integer a ``scale`` beat carries for ``(multiplier, shift)`` (multiplier in the low bits)."""
    if not 0 <= multiplier < 1 << SCALE_MULTIPLIER_BITS:
        raise ValueError(f"Multiplier {multiplier} does not fit {SCALE_MULTIPLIER_BITS} unsigned bits")
    lo, hi = -(1 << (SCALE_SHIFT_BITS - 1)), (1 << (SCALE_SHIFT_BITS - 1)) - 1
    if not lo <= shift <= hi:
        raise ValueError(f"Shift {shift} is outside [{lo}, {hi}]")
    return multiplier | ((shift & ((1 << SCALE_SHIFT_BITS) - 1)) << SCALE_MULTIPLIER_BITS)


class TernaryCore(wiring.Component):
    """Ternary matrix-vector product with the per-token scale applied to every accumulator.

    Parameters
    ----------
    lanes : int
        Parallel accumulators (P); must divide ``out_features``.
    fan_in : int
        Activations per vector (K).
    out_features : int
        Results per vector (N).
    act_bits : int
        Activation width, one of :data:`models.program.numformat.ACT_BITS_ALLOWED`.
    out_bits : int
        Width of each scaled result (default :data:`models.program.numformat.RESID_BITS`).

    Members
    -------
    act : In(stream.Signature(signed(act_bits)))
        Activation codes, ``fan_in`` beats per vector.
    scale : In(stream.Signature(ScaleLayout))
        The vector's ``(multiplier, shift)``, one beat per vector.
    res : Out(stream.Signature(signed(out_bits)))
        Scaled results, ``out_features`` beats per vector.
    weights : In(WeightWriteSignature)
        Weight-memory write port (:func:`weight_memory_image` layout).
    busy : Out(1)
        The matrix-vector unit is accumulating or emitting.
    """

    def __init__(self, *, lanes: int, fan_in: int, out_features: int, act_bits: int = numformat.ACT_BITS,
                 out_bits: int = numformat.RESID_BITS):
        self.matvec = TernaryMatVec(lanes=lanes, fan_in=fan_in, out_features=out_features, act_bits=act_bits)
        self.matvec._MustUse__silence = True  # elaborated with this core; reading ports alone must not warn
        if not isinstance(out_bits, int) or isinstance(out_bits, bool) or out_bits < 2:
            raise ValueError(f"Output width must be an integer of at least 2, not {out_bits!r}")
        self.lanes, self.fan_in, self.out_features = lanes, fan_in, out_features
        self.act_bits, self.out_bits = act_bits, out_bits
        self.acc_bits = self.matvec.acc_bits
        self.groups = self.matvec.groups
        self.weight_depth = self.matvec.weight_depth
        super().__init__({
            "act": In(stream.Signature(signed(act_bits))),
            "scale": In(stream.Signature(ScaleLayout)),
            "res": Out(stream.Signature(signed(out_bits))),
            "weights": In(WeightWriteSignature(depth=self.weight_depth, width=2 * lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.matvec = mv = self.matvec
        wiring.connect(m, wiring.flipped(self.act), mv.act)
        wiring.connect(m, wiring.flipped(self.weights), mv.weights)
        m.d.comb += self.busy.eq(mv.busy)

        # the scale of the vector now leaving the matrix-vector unit
        have = Signal()
        held = Signal(ScaleLayout)
        count = Signal(range(self.out_features))
        m.d.comb += self.scale.ready.eq(~have)
        with m.If(self.scale.valid & self.scale.ready):
            m.d.sync += [have.eq(1), held.eq(self.scale.payload)]

        # stage A: accumulator and its scale; stage B: the scaled, saturated result
        a_valid = Signal()
        a_acc = Signal(signed(self.acc_bits))
        a_scale = Signal(ScaleLayout)
        scaled = self._apply_scale(m, a_acc, a_scale)
        b_ready = ~self.res.valid | self.res.ready
        a_ready = ~a_valid | b_ready
        m.d.comb += mv.res.ready.eq(have & a_ready)
        with m.If(b_ready):
            m.d.sync += self.res.valid.eq(a_valid)
            with m.If(a_valid):
                m.d.sync += self.res.payload.eq(scaled)
        with m.If(a_ready):
            m.d.sync += a_valid.eq(mv.res.valid & have)
        with m.If(mv.res.valid & mv.res.ready):
            m.d.sync += [a_acc.eq(mv.res.payload), a_scale.eq(held), count.eq(count + 1)]
            with m.If(count == self.out_features - 1):
                m.d.sync += [count.eq(0), have.eq(0)]
        return m

    def _apply_scale(self, m, acc, scale):
        """``apply_scale(acc, multiplier, shift)`` as a combinational expression."""
        prod = Signal(signed(self.acc_bits + SCALE_MULTIPLIER_BITS + 1))
        right = Signal(range(MAX_RIGHT_SHIFT + 1))
        left = Signal(range(numformat.MAX_LEFT_SHIFT + 1))
        shift = scale.shift
        m.d.comb += [
            prod.eq(acc * scale.multiplier),
            right.eq(Mux(shift < 0, 0, Mux(shift > MAX_RIGHT_SHIFT, MAX_RIGHT_SHIFT, shift))),
            left.eq(Mux(shift >= 0, 0, Mux(-shift > numformat.MAX_LEFT_SHIFT, numformat.MAX_LEFT_SHIFT, -shift))),
        ]
        down = round_shift(m, prod, right, name="scaled_down")
        return saturate(m, Mux(shift >= 0, down, prod << left), self.out_bits, name="scaled")
