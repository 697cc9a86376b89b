"""AXI4-Lite slave for a register file: one outstanding write and one outstanding read.

The bus side has the AXI4-Lite channel names (``awaddr`` ... ``rready``, no ``*prot``); the register side
gives the parent a one-cycle write strobe (``wr_en`` with ``wr_addr``/``wr_data``, byte strobes
ignored: every register is written whole) and asks it for the word at ``rd_addr`` (``rd_data``,
combinational), with ``rd_en`` high in the cycle the read is captured (for clear-on-read bits).
Responses are always OKAY. A read never waits for the design: registers read while it is busy return
their live values.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiLiteSignature", "AxiLiteRegisters"]


class AxiLiteSignature(wiring.Signature):
    """An AXI4-Lite bus as seen from the master (``Out`` = master to slave)."""

    def __init__(self, *, addr_width: int, data_width: int = 32):
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AxiLiteRegisters(wiring.Component):
    """AXI4-Lite slave front of a register file.

    Parameters
    ----------
    addr_width : int
        Byte-address width of the register space (at least 2).

    Members
    -------
    bus : In(AxiLiteSignature)
        The AXI4-Lite slave port.
    wr_addr, wr_data, wr_en : Out
        A write: address, data, one-cycle strobe.
    rd_addr, rd_en : Out
        The address being read and its one-cycle capture strobe.
    rd_data : In
        The word at ``rd_addr`` (combinational).
    """

    def __init__(self, *, addr_width: int):
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 2:
            raise ValueError(f"AXI4-Lite address width must be an integer of at least 2, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({
            "bus": In(AxiLiteSignature(addr_width=addr_width)),
            "wr_addr": Out(addr_width), "wr_data": Out(32), "wr_en": Out(1),
            "rd_addr": Out(addr_width), "rd_data": In(32), "rd_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        # write: address and data accepted together, then one response
        accept_w = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(accept_w), bus.wready.eq(accept_w), bus.bresp.eq(0),
                     self.wr_addr.eq(bus.awaddr), self.wr_data.eq(bus.wdata), self.wr_en.eq(accept_w)]
        with m.If(accept_w):
            m.d.sync += bus.bvalid.eq(1)
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        # read: the word is captured when the address is accepted
        accept_r = bus.arvalid & ~bus.rvalid
        m.d.comb += [bus.arready.eq(accept_r), bus.rresp.eq(0), self.rd_addr.eq(bus.araddr),
                     self.rd_en.eq(accept_r)]
        with m.If(accept_r):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(self.rd_data)]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
