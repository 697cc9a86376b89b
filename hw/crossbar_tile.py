"""A crossbar tile as a crossbar macro: parallel array read per input slice, shared ADCs, noise at the ADC input.

``rows x cols`` signed ``cell_bits`` cells (the device model's ``level+ - level-``) in a behavioural array
(:class:`hw.crossbar_array.CrossbarArray`, simulation only) and the periphery that synthesises around it,
bit-exact to :func:`models.program.crossbar.tile_mvm_integer`::

    act stream ──► LOAD: rows activations into the input buffer (one per cycle)
                   RUN, per slice j = 0 .. S-1 (S = act_bits / dac_bits, least significant first):
                     READ: the DACs drive slice j of every row (bits [j d, (j+1) d), the top slice signed) and
                           the array answers every column at once; after read_cycles the sample-and-hold
                           takes every column plus its noise sample
                     CONVERT: cols / cols_per_adc ADCs, each converting its cols_per_adc columns one after
                           another (conv_cycles each): code = saturate(round_shift(v, adc_shift), adc_bits),
                           out[c] += code << j d — while the array reads slice j + 1
                   OUTPUT: out[0 .. cols-1] ──► res stream

Cycles per vector without stalls: :func:`models.program.crossbar.mvm_cycles`.

The update port takes one pulse slot of the stochastic pulse update per beat (which row and column lines fire
and which are marked down, :func:`hw.crossbar_array.pulse_layout`) while the tile is idle (no vector being
loaded or in flight) and applies it to the array in that cycle: every cell whose row and column both fire
moves one level, down where exactly one of its two lines is marked down, saturating at
``+-(2**(cell_bits - 1) - 1)`` — :func:`apply_pulse_slot`, the integer form of the pulsed update rule on an
ideal finite-state device. An update beat waiting when a vector could start goes first.

Noise (``noise_sel``, :data:`models.program.crossbar.NOISE_OFF` / ``NOISE_LFSR`` / ``NOISE_PORT``), added
to every column when it is sampled: the 32-bit Galois LFSR (:data:`models.program.crossbar.LFSR_MASK`,
stepped once per column, column 0 first; its low ``noise_bits`` bits as two's complement; ``lfsr_load``
loads ``lfsr_seed``), or one beat of the ``noise`` stream per slice carrying a sample for every column
(the device model's, :class:`models.program.crossbar.DeviceNoise`); the sampling waits for that beat.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from models.program import numformat
from models.program.crossbar import (LFSR_BITS, LFSR_MASK, MAX_NOISE_BITS, NOISE_LFSR, NOISE_PORT, check_adc_sharing,
                                     mvm_cycles)

from hw.crossbar_array import CrossbarArray, pulse_layout
from hw.ternary_matvec import WeightWriteSignature

__all__ = ["CrossbarTile", "cell_memory_image", "apply_pulse_slot", "pack_pulse_slot"]


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


class CrossbarTile(wiring.Component):
    """One ``rows x cols`` crossbar tile: the array read at once per slice, ``cols / cols_per_adc`` shared ADCs.

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
        LFSR noise width (0: no LFSR), at most :data:`models.program.crossbar.MAX_NOISE_BITS`.
    cols_per_adc : int
        Columns one ADC converts one after another; divides ``cols``.
    read_cycles, conv_cycles : int
        Clock cycles of one array read (DAC drive, settling, sample-and-hold) and of one ADC conversion.

    Members
    -------
    act : In(stream.Signature(signed(act_bits)))
        Activations, ``rows`` beats per vector.
    noise : In(stream.Signature(ArrayLayout(signed(noise_port_bits), cols)))
        With ``noise_sel == NOISE_PORT``: one beat per slice, the sample of every column
        (``noise_port_bits = adc_bits + max_adc_shift``; a sample must lie in the ADC's range).
    res : Out(stream.Signature(signed(out_bits)))
        Shift-and-add results, ``cols`` beats per vector, column 0 first (``out_bits = adc_bits + act_bits``).
    cells : In(WeightWriteSignature)
        Cell write port: word ``i`` holds row ``i``, column ``c`` in bits ``[c*cell_bits, (c+1)*cell_bits)``.
    adc_shift : In(range(max_adc_shift + 1))
        ADC step ``2**adc_shift`` column units (the ADC range); hold it while a vector is in flight.
    noise_sel, lfsr_seed, lfsr_load : In
        Noise source (off, LFSR, port); LFSR seed and its load strobe. Hold ``noise_sel`` while a vector is in flight.
    update : In(stream.Signature(pulse_layout(rows, cols)))
        Pulse slots of the in-situ update, taken while no vector is being loaded or in flight.
    busy : Out(1)
        High from the last activation of a vector until its last result has been taken.
    """

    def __init__(self, *, rows: int, cols: int, act_bits: int = numformat.ACT_BITS, dac_bits: int = 1,
                 cell_bits: int = 5, adc_bits: int = 6, max_adc_shift: int = 7, noise_bits: int = 3,
                 cols_per_adc: int = 1, read_cycles: int = 1, conv_cycles: int = 1):
        _check_int("Row count", rows, 1, 4096)
        _check_int("Column count", cols, 1, 4096)
        numformat.check_act_bits(act_bits)
        _check_int("DAC bits", dac_bits, 1, act_bits)
        if act_bits % dac_bits:
            raise ValueError(f"DAC bits {dac_bits} must divide the activation width {act_bits}")
        _check_int("Cell bits", cell_bits, 2, 16)
        _check_int("ADC bits", adc_bits, 1, 24)
        _check_int("Noise bits", noise_bits, 0, MAX_NOISE_BITS)
        _check_int("Read cycles", read_cycles, 1, 1 << 16)
        _check_int("Conversion cycles", conv_cycles, 1, 1 << 16)
        self.adcs = check_adc_sharing(cols, cols_per_adc)
        self.rows, self.cols, self.act_bits, self.dac_bits = rows, cols, act_bits, dac_bits
        self.cell_bits, self.adc_bits, self.noise_bits = cell_bits, adc_bits, noise_bits
        self.cols_per_adc, self.read_cycles, self.conv_cycles = cols_per_adc, read_cycles, conv_cycles
        self.slices = act_bits // dac_bits
        max_slice = max((1 << dac_bits) - 1, 1 << (dac_bits - 1))
        self.col_bits = (rows * max_slice * (1 << (cell_bits - 1))).bit_length() + 1
        _check_int("Largest ADC shift", max_adc_shift, 0, self.col_bits)
        self.max_adc_shift = max_adc_shift
        self.noise_port_bits = adc_bits + max_adc_shift
        self.out_bits = adc_bits + act_bits
        super().__init__({
            "act": In(stream.Signature(signed(act_bits))),
            "noise": In(stream.Signature(data.ArrayLayout(signed(self.noise_port_bits), cols))),
            "res": Out(stream.Signature(signed(self.out_bits))),
            "cells": In(WeightWriteSignature(depth=rows, width=cols * cell_bits)),
            "adc_shift": In(range(max_adc_shift + 1)),
            "noise_sel": In(2),
            "lfsr_seed": In(LFSR_BITS),
            "lfsr_load": In(1),
            "update": In(stream.Signature(pulse_layout(rows, cols))),
            "busy": Out(1),
        })

    @property
    def cycles_per_vector(self) -> int:
        """Cycles of one MVM, first activation to last result, without stalls (:func:`mvm_cycles`)."""
        return mvm_cycles(self.rows, self.cols, self.slices, self.cols_per_adc, self.read_cycles, self.conv_cycles)

    def elaborate(self, platform):
        m = Module()
        R, C, S, d = self.rows, self.cols, self.slices, self.dac_bits
        cpa, T_read, T_conv = self.cols_per_adc, self.read_cycles, self.conv_cycles

        m.submodules.array = array = CrossbarArray(rows=R, cols=C, cell_bits=self.cell_bits, slice_bits=d + 1,
                                                   col_bits=self.col_bits)
        wiring.connect(m, wiring.flipped(self.cells), array.cells)
        m.d.comb += array.pulse.eq(self.update.payload)

        # input buffer and the DACs: slice jr of every row (unsigned below the top slice, signed at the top)
        xs = Array(Signal(signed(self.act_bits), name=f"x{i}") for i in range(R))
        k = Signal(range(R))
        jr = Signal(range(S))
        for i in range(R):
            lower = xs[i].as_unsigned().bit_select(jr * d, d)
            top = xs[i][(S - 1) * d:].as_signed()
            m.d.comb += array.slices[i].eq(Mux(jr == S - 1, top, lower))

        # noise of every column at sampling: the LFSR stepped once per column, or the port's beat
        lfsr = Signal(LFSR_BITS, init=1)
        states = [lfsr]
        for c in range(C):
            step = Signal(LFSR_BITS, name=f"lfsr_step{c}")
            m.d.comb += step.eq((states[-1] >> 1) ^ Mux(states[-1][0], LFSR_MASK, 0))
            states.append(step)
        sh_bits = max(self.col_bits, self.noise_port_bits, self.noise_bits) + 1
        sh = [Signal(signed(sh_bits), name=f"sh{c}") for c in range(C)]
        outs = [Signal(signed(self.out_bits), name=f"out{c}") for c in range(C)]

        # read and conversion engines
        rd_active, rd_t = Signal(), Signal(range(T_read))
        cv_active, cv_t, cv_k, cv_j = Signal(), Signal(range(T_conv)), Signal(range(cpa)), Signal(range(S))
        step_end = Signal()
        cv_done = Signal()
        free = Signal()
        cap = Signal()
        m.d.comb += [
            step_end.eq(cv_active & (cv_t == T_conv - 1)),
            cv_done.eq(step_end & (cv_k == cpa - 1)),
            free.eq(rd_active & (rd_t == T_read - 1) & (~cv_active | cv_done)),
            self.noise.ready.eq(free & (self.noise_sel == NOISE_PORT)),
            cap.eq(free & ((self.noise_sel != NOISE_PORT) | self.noise.valid)),
        ]

        # the ADCs: ADC a converts column a * cols_per_adc + cv_k; round half away by 2**adc_shift, saturate
        lo, hi = -(1 << (self.adc_bits - 1)), (1 << (self.adc_bits - 1)) - 1
        shift = self.adc_shift
        for a in range(self.adcs):
            v = Signal(signed(sh_bits), name=f"adc{a}_in")
            mag = Signal(sh_bits, name=f"adc{a}_mag")
            rounded = Signal(sh_bits, name=f"adc{a}_rounded")
            quant = Signal(signed(sh_bits + 1), name=f"adc{a}_quant")
            code = Signal(signed(self.adc_bits), name=f"adc{a}_code")
            m.d.comb += [
                v.eq(Array(sh[a * cpa:(a + 1) * cpa])[cv_k]),
                mag.eq(Mux(v < 0, -v, v)),
                rounded.eq(Mux(shift == 0, mag, ((mag >> (shift - 1)[:len(shift)]) + 1) >> 1)),
                quant.eq(Mux(v < 0, -rounded, rounded)),
                code.eq(Mux(quant > hi, hi, Mux(quant < lo, lo, quant))),
            ]
            weighted = Signal(signed(self.out_bits), name=f"adc{a}_weighted")
            m.d.comb += weighted.eq(code << (cv_j * d))
            for kk in range(cpa):
                with m.If(step_end & (cv_k == kk)):
                    m.d.sync += outs[a * cpa + kk].eq(outs[a * cpa + kk] + weighted)

        with m.If(self.lfsr_load):
            m.d.sync += lfsr.eq(self.lfsr_seed)
        if self.noise_bits:
            with m.Elif(cap & (self.noise_sel == NOISE_LFSR)):
                m.d.sync += lfsr.eq(states[C])

        with m.If(rd_active & (rd_t != T_read - 1)):
            m.d.sync += rd_t.eq(rd_t + 1)
        with m.If(cv_active):
            m.d.sync += cv_t.eq(Mux(cv_t == T_conv - 1, 0, cv_t + 1))
            with m.If(step_end):
                m.d.sync += cv_k.eq(Mux(cv_k == cpa - 1, 0, cv_k + 1))
                with m.If(cv_done):
                    m.d.sync += cv_active.eq(0)
        with m.If(cap):  # sample every column with its noise; start converting, read the next slice
            for c in range(C):
                if self.noise_bits:
                    lfsr_c = states[c + 1][:self.noise_bits].as_signed()
                else:
                    lfsr_c = 0
                noise = Mux(self.noise_sel == NOISE_PORT, self.noise.payload[c],
                            Mux(self.noise_sel == NOISE_LFSR, lfsr_c, 0))
                m.d.sync += sh[c].eq(array.columns[c] + noise)
            m.d.sync += [cv_active.eq(1), cv_t.eq(0), cv_k.eq(0), cv_j.eq(jr), rd_t.eq(0)]
            with m.If(jr == S - 1):
                m.d.sync += [rd_active.eq(0), jr.eq(0)]
            with m.Else():
                m.d.sync += jr.eq(jr + 1)

        col = Signal(range(C))
        m.d.comb += self.res.payload.eq(Array(outs)[col])
        with m.FSM(name="phase"):
            with m.State("LOAD"):
                idle = k == 0
                m.d.comb += [self.update.ready.eq(idle), array.pulse_en.eq(idle & self.update.valid),
                             self.act.ready.eq(~(idle & self.update.valid))]
                with m.If(self.act.valid & self.act.ready):
                    m.d.sync += [xs[k].eq(self.act.payload), k.eq(k + 1)]
                    with m.If(k == R - 1):
                        m.d.sync += [k.eq(0), jr.eq(0), rd_active.eq(1), rd_t.eq(0)]
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(cv_done & (cv_j == S - 1)):
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [self.busy.eq(1), self.res.valid.eq(1)]
                with m.If(self.res.ready):
                    for c in range(C):
                        with m.If(col == c):
                            m.d.sync += outs[c].eq(0)
                    m.d.sync += col.eq(col + 1)
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


def apply_pulse_slot(cells, row_fire, row_down, col_fire, col_down, cell_bits: int) -> np.ndarray:
    """The cells ``(rows, cols)`` after one pulse slot (the reference of the tile's update port): where row ``i``
    and column ``c`` both fire, the cell moves one level, down if exactly one of ``row_down[i]``,
    ``col_down[c]`` is set, and not past ``+-(2**(cell_bits - 1) - 1)``."""
    c = np.asarray(cells, dtype=np.int64)
    top = (1 << (cell_bits - 1)) - 1
    hit = np.outer(np.asarray(row_fire, dtype=bool), np.asarray(col_fire, dtype=bool))
    down = np.logical_xor.outer(np.asarray(row_down, dtype=bool), np.asarray(col_down, dtype=bool))
    step = np.where(down, -(c > -top).astype(np.int64), (c < top).astype(np.int64))
    return c + np.where(hit, step, 0)


def pack_pulse_slot(row_fire, row_down, col_fire, col_down) -> int:
    """One update beat: the fields of :func:`hw.crossbar_array.pulse_layout` packed, row or column 0 first."""
    word, pos = 0, 0
    for field in (row_fire, row_down, col_fire, col_down):
        for bit in field:
            word |= int(bool(bit)) << pos
            pos += 1
    return word
