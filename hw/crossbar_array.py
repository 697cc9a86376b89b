"""The analog array of a crossbar tile as a behavioural block: every row and every column in one read.

SIMULATION ONLY. The cells are registers and each column is a combinational sum ``sum_i s_i c_ij`` over
all rows — what a memristor array computes in one analog read. A pulse slot (``pulse_en``) moves every cell
whose row and column line both fire by one level, down where exactly one of the two lines is marked down,
saturating at ``+-(2**(cell_bits - 1) - 1)``: the stochastic pulse update on finite-state devices
(:func:`hw.crossbar_tile.apply_pulse_slot` is its reference). As FPGA resources this is meaningless (a
128 x 128 array is 16,384 multipliers), so synthesis reports black-box this module
(:data:`SIMULATION_ONLY`) and count only the periphery around it (:class:`hw.crossbar_tile.CrossbarTile`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.ternary_matvec import WeightWriteSignature

__all__ = ["SIMULATION_ONLY", "CrossbarArray", "pulse_layout"]

#: The submodule name the tile gives its array; its Verilog module is ``<top>.array``.
SIMULATION_ONLY = "array"


def pulse_layout(rows: int, cols: int) -> data.StructLayout:
    """One pulse slot: which row and column lines fire and which of them are marked down."""
    return data.StructLayout({"row_fire": rows, "row_down": rows, "col_fire": cols, "col_down": cols})


class CrossbarArray(wiring.Component):
    """``rows x cols`` signed ``cell_bits`` cells; ``columns[c] = sum_i slices[i] * cell[i][c]``, combinational.

    Members
    -------
    cells : In(WeightWriteSignature)
        Row ``i`` at address ``i``, column ``c`` in bits ``[c*cell_bits, (c+1)*cell_bits)``.
    slices : In(ArrayLayout(signed(slice_bits), rows))
        The DAC value of every row.
    columns : Out(ArrayLayout(signed(col_bits), cols))
        Every column's sum.
    pulse, pulse_en : In(pulse_layout(rows, cols)), In(1)
        One pulse slot, applied at the clock edge while ``pulse_en`` is high (a cell write wins over it).
    """

    def __init__(self, *, rows: int, cols: int, cell_bits: int, slice_bits: int, col_bits: int):
        self.rows, self.cols, self.cell_bits = rows, cols, cell_bits
        super().__init__({
            "cells": In(WeightWriteSignature(depth=rows, width=cols * cell_bits)),
            "slices": In(data.ArrayLayout(signed(slice_bits), rows)),
            "columns": Out(data.ArrayLayout(signed(col_bits), cols)),
            "pulse": In(pulse_layout(rows, cols)),
            "pulse_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cb = self.cell_bits
        words = [Signal(unsigned(self.cols * cb), name=f"row{i}") for i in range(self.rows)]
        top = (1 << (cb - 1)) - 1
        p = self.pulse
        for i, word in enumerate(words):
            with m.If(self.cells.en & (self.cells.addr == i)):
                m.d.sync += word.eq(self.cells.data)
            with m.Elif(self.pulse_en & p.row_fire[i]):
                for c in range(self.cols):
                    cell = word[c * cb:(c + 1) * cb].as_signed()
                    down = p.row_down[i] ^ p.col_down[c]
                    with m.If(p.col_fire[c] & Mux(down, cell > -top, cell < top)):
                        m.d.sync += word[c * cb:(c + 1) * cb].eq(Mux(down, cell - 1, cell + 1))
        for c in range(self.cols):
            terms = [self.slices[i] * words[i][c * cb:(c + 1) * cb].as_signed() for i in range(self.rows)]
            while len(terms) > 1:  # a balanced adder tree
                terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
            m.d.comb += self.columns[c].eq(terms[0])
        return m
