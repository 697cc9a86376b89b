"""Digital twin of a crossbar tile's periphery: bit-serial driver, column sums, ADC, shift-and-add, LFSR noise.

The analog array is represented by its quantised cells (signed ``cell_bits`` integers, the device
model's ``level+ - level-``); everything else is the periphery of the integer twin
:func:`models.program.crossbar.tile_mvm_integer`, cycle by cycle::

    act stream ──► LOAD: rows activations into the input buffer
                   SLICE j = 0 .. S-1 (S = act_bits / dac_bits, least significant first):
                     ROWS: one row per cycle, acc[c] += s_ij * cell[i][c] for every column c, where s_ij
                           is bits [j d, (j+1) d) of x_i (the top slice signed): the bit-serial driver
                     ADC:  one column per cycle (one ADC shared by the tile): v = acc[c] + noise,
                           code = saturate(round_shift(v, adc_shift), adc_bits), out[c] += code << j d
                   OUTPUT: out[0 .. cols-1] on the res stream ──► res stream

Noise: with ``noise_en`` high, every conversion first steps the 32-bit Galois LFSR
(:data:`models.program.crossbar.LFSR_MASK`) and adds its low ``noise_bits`` bits as a two's complement
number; ``lfsr_load`` loads ``lfsr_seed`` (the seed the functional model takes). With ``noise_en`` low
the LFSR holds. Cycles per vector: ``rows + S * (rows + 1 + cols) + cols`` without stalls.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat
from models.program.crossbar import LFSR_BITS, LFSR_MASK, MAX_NOISE_BITS

from hw.ternary_matvec import WeightWriteSignature

__all__ = ["CrossbarTile", "cell_memory_image"]


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


class CrossbarTile(wiring.Component):
    """The periphery of one ``rows x cols`` crossbar tile, bit-exact to the functional model.

    Parameters
    ----------
    rows, cols : int
        Word lines (inputs per vector) and differential column pairs (outputs per vector).
    act_bits : int
        Activation width (:data:`models.program.numformat.ACT_BITS_ALLOWED`).
    dac_bits : int
        Bits per input slice; divides ``act_bits``.
    cell_bits : int
        Width of a signed quantised cell value (2 .. 16).
    adc_bits : int
        ADC resolution (1 .. 24), signed codes.
    max_adc_shift : int
        Largest ADC step exponent the ``adc_shift`` input may select.
    noise_bits : int
        LFSR noise width (0: no noise hardware), at most :data:`models.program.crossbar.MAX_NOISE_BITS`.

    Members
    -------
    act : In(stream.Signature(signed(act_bits)))
        Activations, ``rows`` beats per vector.
    res : Out(stream.Signature(signed(out_bits)))
        Shift-and-add results, ``cols`` beats per vector, column 0 first (``out_bits = adc_bits + act_bits``).
    cells : In(WeightWriteSignature)
        Cell-memory write port: word ``i`` holds row ``i``, column ``c`` in bits ``[c*cell_bits, (c+1)*cell_bits)``.
    adc_shift : In(range(max_adc_shift + 1))
        ADC step ``2**adc_shift`` column units (the ADC range); hold it while a vector is in flight.
    noise_en, lfsr_seed, lfsr_load : In
        Noise on/off; LFSR seed and its load strobe.
    busy : Out(1)
        High from the last activation of a vector until its last result has been taken.
    """

    def __init__(self, *, rows: int, cols: int, act_bits: int = numformat.ACT_BITS, dac_bits: int = 1,
                 cell_bits: int = 5, adc_bits: int = 6, max_adc_shift: int = 7, noise_bits: int = 3):
        _check_int("Row count", rows, 1, 4096)
        _check_int("Column count", cols, 1, 4096)
        numformat.check_act_bits(act_bits)
        _check_int("DAC bits", dac_bits, 1, act_bits)
        if act_bits % dac_bits:
            raise ValueError(f"DAC bits {dac_bits} must divide the activation width {act_bits}")
        _check_int("Cell bits", cell_bits, 2, 16)
        _check_int("ADC bits", adc_bits, 1, 24)
        _check_int("Noise bits", noise_bits, 0, MAX_NOISE_BITS)
        self.rows, self.cols, self.act_bits, self.dac_bits = rows, cols, act_bits, dac_bits
        self.cell_bits, self.adc_bits, self.noise_bits = cell_bits, adc_bits, noise_bits
        self.slices = act_bits // dac_bits
        max_slice = max((1 << dac_bits) - 1, 1 << (dac_bits - 1))
        worst = rows * max_slice * (1 << (cell_bits - 1)) + ((1 << (noise_bits - 1)) if noise_bits else 0)
        self.acc_bits = worst.bit_length() + 1
        _check_int("Largest ADC shift", max_adc_shift, 0, self.acc_bits)
        self.max_adc_shift = max_adc_shift
        self.out_bits = adc_bits + act_bits
        super().__init__({
            "act": In(stream.Signature(signed(act_bits))),
            "res": Out(stream.Signature(signed(self.out_bits))),
            "cells": In(WeightWriteSignature(depth=rows, width=cols * cell_bits)),
            "adc_shift": In(range(max_adc_shift + 1)),
            "noise_en": In(1),
            "lfsr_seed": In(LFSR_BITS),
            "lfsr_load": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, S, d, cb = self.rows, self.cols, self.slices, self.dac_bits, self.cell_bits

        m.submodules.cmem = cmem = Memory(shape=unsigned(C * cb), depth=R, init=[])
        c_wr = cmem.write_port()
        c_rd = cmem.read_port(domain="sync")
        m.d.comb += [c_wr.addr.eq(self.cells.addr), c_wr.data.eq(self.cells.data), c_wr.en.eq(self.cells.en)]

        m.submodules.xmem = xmem = Memory(shape=signed(self.act_bits), depth=R, init=[])
        x_wr = xmem.write_port()
        x_rd = xmem.read_port(domain="comb")

        k = Signal(range(R))                   # next activation in LOAD, next row in ROWS
        j = Signal(range(S))                   # slice
        col = Signal(range(C))                 # column in ADC and OUTPUT
        s_d = Signal(signed(d + 1))            # slice value, aligned with the cell read data
        issued_d = Signal()
        accs = Array(Signal(signed(self.acc_bits), name=f"acc{c}") for c in range(C))
        outs = Array(Signal(signed(self.out_bits), name=f"out{c}") for c in range(C))

        # bit-serial driver: slice j of x_k (unsigned below the top slice, signed at the top)
        x = x_rd.data
        lower = x.as_unsigned().bit_select(j * d, d)
        top = x[(S - 1) * d:].as_signed()
        m.d.comb += x_rd.addr.eq(k)

        # column accumulation, one cycle after a row was issued
        with m.If(issued_d):
            for c in range(C):
                cell = c_rd.data[c * cb:(c + 1) * cb].as_signed()
                m.d.sync += accs[c].eq(accs[c] + s_d * cell)

        # LFSR and the ADC of the selected column
        lfsr = Signal(LFSR_BITS, init=1)
        lfsr_next = Signal(LFSR_BITS)
        m.d.comb += lfsr_next.eq((lfsr >> 1) ^ Mux(lfsr[0], LFSR_MASK, 0))
        noise = Signal(signed(max(self.noise_bits, 1)))
        if self.noise_bits:
            m.d.comb += noise.eq(Mux(self.noise_en, lfsr_next[:self.noise_bits].as_signed(), 0))
        adc_in = Signal(signed(self.acc_bits + 1))
        code = Signal(signed(self.adc_bits))
        # ADC: round half away from zero by 2**adc_shift ((|v| >> (s-1)) + 1) >> 1, then saturate
        mag = Signal(self.acc_bits + 1)
        rounded = Signal(self.acc_bits + 1)
        quant = Signal(signed(self.acc_bits + 2))
        lo, hi = -(1 << (self.adc_bits - 1)), (1 << (self.adc_bits - 1)) - 1
        m.d.comb += [
            adc_in.eq(accs[col] + noise),
            mag.eq(Mux(adc_in < 0, -adc_in, adc_in)),
            rounded.eq(Mux(self.adc_shift == 0, mag, ((mag >> (self.adc_shift - 1)[:len(self.adc_shift)]) + 1) >> 1)),
            quant.eq(Mux(adc_in < 0, -rounded, rounded)),
            code.eq(Mux(quant > hi, hi, Mux(quant < lo, lo, quant))),
        ]
        converting = Signal()

        with m.If(self.lfsr_load):
            m.d.sync += lfsr.eq(self.lfsr_seed)
        if self.noise_bits:
            with m.Elif(converting & self.noise_en):
                m.d.sync += lfsr.eq(lfsr_next)

        m.d.comb += self.res.payload.eq(outs[col])
        m.d.sync += issued_d.eq(0)

        with m.FSM(name="phase"):
            with m.State("LOAD"):
                m.d.comb += [self.act.ready.eq(1), x_wr.addr.eq(k), x_wr.data.eq(self.act.payload),
                             x_wr.en.eq(self.act.valid)]
                with m.If(self.act.valid):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == R - 1):
                        m.d.sync += [k.eq(0), j.eq(0)]
                        m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += [self.busy.eq(1), c_rd.addr.eq(k), c_rd.en.eq(1)]
                m.d.sync += [s_d.eq(Mux(j == S - 1, top, lower)), issued_d.eq(1), k.eq(k + 1)]
                with m.If(k == R - 1):
                    m.d.sync += [k.eq(0), col.eq(0)]
                    m.next = "SETTLE"
            with m.State("SETTLE"):  # the last row's accumulation lands
                m.d.comb += self.busy.eq(1)
                m.next = "ADC"
            with m.State("ADC"):
                m.d.comb += [self.busy.eq(1), converting.eq(1)]
                m.d.sync += [outs[col].eq(outs[col] + (code << (j * d))), accs[col].eq(0), col.eq(col + 1)]
                with m.If(col == C - 1):
                    m.d.sync += col.eq(0)
                    with m.If(j == S - 1):
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
                        m.next = "ROWS"
            with m.State("OUTPUT"):
                m.d.comb += [self.busy.eq(1), self.res.valid.eq(1)]
                with m.If(self.res.ready):
                    m.d.sync += [outs[col].eq(0), col.eq(col + 1)]
                    with m.If(col == C - 1):
                        m.d.sync += col.eq(0)
                        m.next = "LOAD"
        return m


def cell_memory_image(cells, cell_bits: int) -> list[int]:
    """Cell-memory words for integer ``cells`` of shape ``(rows, cols)``: row ``i``, column ``c`` at bits
    ``[c*cell_bits, (c+1)*cell_bits)`` in two's complement. Raises ``ValueError`` if a cell does not fit."""
    c = np.asarray(cells, dtype=np.int64)
    if c.ndim != 2:
        raise ValueError(f"Cells must be a 2-D (rows, cols) array, not shape {c.shape}")
    lo, hi = -(1 << (cell_bits - 1)), (1 << (cell_bits - 1)) - 1
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"Cell values must lie in [{lo}, {hi}] for {cell_bits}-bit cells")
    mask = (1 << cell_bits) - 1
    return [sum((int(v) & mask) << (col * cell_bits) for col, v in enumerate(row)) for row in c]
