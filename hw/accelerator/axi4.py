"""AXI4 memory-mapped masters that move 32-bit words: a burst reader and a burst writer.

Both split a request into INCR bursts of at most 256 beats that never cross a 4 KB boundary, 64-bit
addresses, a data width of 128 to 512 bits. The reader keeps up to ``outstanding`` bursts in flight, the
writer one. Any response other than OKAY
sets the ``error`` output until the next request.

:class:`WordReader`
    ``req`` (``addr``: a bus-word-aligned byte address, ``words``: how many) → ``words`` 32-bit words on
    ``data``, lowest address first; the tail of the last bus word is dropped.
:class:`WordWriter`
    ``req`` (``addr``: a 4-byte-aligned byte address, ``words``) and ``words`` words on ``data`` → bursts
    of whole bus words with byte strobes on the words written (a single word is one strobed beat).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DATA_WIDTHS", "ADDR_WIDTH", "MAX_OUTSTANDING", "ReadBusSignature", "WriteBusSignature", "RequestLayout",
           "WordReader", "WordWriter", "check_data_width", "check_outstanding"]

#: Bus widths the masters can be built with (bits).
DATA_WIDTHS = (128, 256, 512)
ADDR_WIDTH = 64
MAX_BURST = 256
PAGE = 4096
#: Most read bursts in flight: the default read-outstanding depth of the Vitis HLS ``m_axi`` adapter
#: (``num_read_outstanding=16``), which an RTL kernel's memory interconnect is configured for.
MAX_OUTSTANDING = 16

#: One request: a byte address and a count of 32-bit words.
RequestLayout = data.StructLayout({"addr": ADDR_WIDTH, "words": 32})


def check_outstanding(outstanding) -> int:
    """``outstanding`` if the reader can keep that many bursts in flight, else ``TypeError``/``ValueError``."""
    if not isinstance(outstanding, int) or isinstance(outstanding, bool):
        raise TypeError(f"Outstanding read bursts must be an integer, not {outstanding!r}")
    if not 1 <= outstanding <= MAX_OUTSTANDING:
        raise ValueError(f"Outstanding read bursts {outstanding} is outside 1-{MAX_OUTSTANDING}, what the AXI4 read "
                         f"port allows")
    return outstanding


def check_data_width(data_width) -> int:
    """``data_width`` if the masters can be built with it, else ``TypeError``/``ValueError`` (one line)."""
    if not isinstance(data_width, int) or isinstance(data_width, bool):
        raise TypeError(f"AXI data width must be an integer number of bits, not {data_width!r}")
    if data_width not in DATA_WIDTHS:
        raise ValueError(f"AXI data width {data_width} is not one of {', '.join(map(str, DATA_WIDTHS))} bits")
    return data_width


class ReadBusSignature(wiring.Signature):
    """AXI4 read address and read data channels, master view (``Out`` = master to slave)."""

    def __init__(self, data_width: int):
        super().__init__({
            "arid": Out(1), "araddr": Out(ADDR_WIDTH), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
            "arvalid": Out(1), "arready": In(1),
            "rid": In(1), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1), "rready": Out(1),
        })


class WriteBusSignature(wiring.Signature):
    """AXI4 write address, write data and write response channels, master view."""

    def __init__(self, data_width: int):
        super().__init__({
            "awid": Out(1), "awaddr": Out(ADDR_WIDTH), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
            "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1), "wvalid": Out(1),
            "wready": In(1),
            "bid": In(1), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        })


def _burst(m: Module, addr, beats_left, log_bytes: int, name: str) -> Signal:
    """Beats of the next burst from the bus-word-aligned ``addr``: the beats left, cut at the 4 KB page end
    and at 256."""
    to_page = Signal(range(PAGE + 1), name=f"{name}_to_page")
    m.d.comb += to_page.eq((PAGE - addr[:12]) >> log_bytes)
    first = Signal(range(PAGE + 1), name=f"{name}_first")
    m.d.comb += first.eq(Mux(beats_left < to_page, beats_left, to_page))
    beats = Signal(range(MAX_BURST + 1), name=f"{name}_beats")
    m.d.comb += beats.eq(Mux(first > MAX_BURST, MAX_BURST, first))
    return beats


class _Master(wiring.Component):
    def __init__(self, data_width: int, bus: type, data_flow):
        self.data_width = check_data_width(data_width)
        self.bytes = data_width // 8
        self.log_bytes = self.bytes.bit_length() - 1
        self.per_beat = data_width // 32
        self.log_per_beat = self.per_beat.bit_length() - 1
        super().__init__({"bus": Out(bus(data_width)), "req": In(stream.Signature(RequestLayout)),
                          "data": data_flow(stream.Signature(32)),
                          "busy": Out(1), "error": Out(1), "stall": Out(1), "beats": Out(1)})


class WordReader(_Master):
    """Reads ``req.words`` 32-bit words from ``req.addr`` (bus-word aligned) onto ``data``.

    ``outstanding`` bursts (1 to :data:`MAX_OUTSTANDING`) may be in flight at once: the next burst's address
    goes out while earlier bursts' data still arrive (one ID, so the memory returns them in order; a burst
    ends at its ``rlast``). Members: ``bus`` (AXI4 read channels), ``req``, ``data`` (32-bit words out),
    ``busy``, ``error`` (a non-OKAY response since the last request), ``stall`` (waiting on the memory this
    cycle), ``beats`` (a data beat arrives this cycle).
    """

    def __init__(self, *, data_width: int, outstanding: int = 1):
        self.outstanding = check_outstanding(outstanding)
        super().__init__(data_width, ReadBusSignature, Out)

    def elaborate(self, platform):
        m = Module()
        bus, n = self.bus, self.per_beat
        active = Signal()            # a request is being served
        addr = Signal(ADDR_WIDTH)    # address of the next burst
        to_request = Signal(32)      # beats not yet requested
        in_flight = Signal(range(self.outstanding + 1))
        unloaded = Signal(32)        # words not yet captured from the bus
        held = Signal(range(n + 1))  # words of the current beat still to emit
        buf = Signal(self.data_width)
        beats = _burst(m, addr, to_request, self.log_bytes, "rd")
        issue = active & (to_request != 0) & (in_flight < self.outstanding)
        emit = self.data.valid & self.data.ready
        can_take = (held == 0) | ((held == 1) & self.data.ready)
        take = bus.rvalid & bus.rready
        ar_take = bus.arvalid & bus.arready
        m.d.comb += [bus.arid.eq(0), bus.arsize.eq(self.log_bytes), bus.arburst.eq(1), bus.araddr.eq(addr),
                     bus.arlen.eq(beats - 1), bus.arvalid.eq(issue), bus.rready.eq(active & can_take),
                     self.data.payload.eq(buf[:32]), self.data.valid.eq(held != 0),
                     self.req.ready.eq(~active & (held == 0)), self.busy.eq(active | (held != 0)),
                     self.stall.eq((issue & ~bus.arready) | (active & can_take & (in_flight != 0) & ~bus.rvalid)),
                     self.beats.eq(take)]
        with m.If(emit):
            m.d.sync += [buf.eq(buf >> 32), held.eq(held - 1)]
        with m.If(self.req.valid & self.req.ready):
            words = self.req.payload.words
            m.d.sync += [addr.eq(self.req.payload.addr), unloaded.eq(words), active.eq(words != 0),
                         to_request.eq((words + n - 1) >> self.log_per_beat), self.error.eq(0)]
        with m.If(ar_take):
            m.d.sync += [addr.eq(addr + (beats << self.log_bytes)), to_request.eq(to_request - beats)]
        with m.If(take):
            part = Mux(unloaded < n, unloaded, n)
            m.d.sync += [buf.eq(bus.rdata), held.eq(part), unloaded.eq(unloaded - part)]
            with m.If(bus.rresp != 0):
                m.d.sync += self.error.eq(1)
        m.d.sync += in_flight.eq(in_flight + ar_take - (take & bus.rlast))
        with m.If(active & (to_request == 0) & (in_flight == 0)):
            m.d.sync += active.eq(0)
        return m


class WordWriter(_Master):
    """Writes the ``req.words`` 32-bit words arriving on ``data`` from ``req.addr`` (4-byte aligned).

    Members: ``bus`` (AXI4 write channels), ``req``, ``data`` (32-bit words in), ``busy`` (until the
    last response), ``error``, ``stall`` (waiting on the memory this cycle), ``beats`` (a data beat
    leaves this cycle).
    """

    def __init__(self, *, data_width: int):
        super().__init__(data_width, WriteBusSignature, In)

    def elaborate(self, platform):
        m = Module()
        bus, n = self.bus, self.per_beat
        addr = Signal(ADDR_WIDTH)   # byte address of the next word
        left = Signal(32)           # words not yet placed in a beat
        beat = Signal(range(MAX_BURST))
        burst = Signal(range(MAX_BURST + 1))
        lane_now = Signal(range(n))
        m.d.comb += lane_now.eq(addr[2:2 + self.log_per_beat])
        beats_left = Signal(33)
        m.d.comb += beats_left.eq((lane_now + left + n - 1) >> self.log_per_beat)
        aligned = Signal(ADDR_WIDTH)
        m.d.comb += aligned.eq(addr & ~(self.bytes - 1))
        beats = _burst(m, aligned, beats_left, self.log_bytes, "wr")
        wdata = Signal(self.data_width)
        wstrb = Signal(self.bytes)
        m.d.comb += [bus.awid.eq(0), bus.awsize.eq(self.log_bytes), bus.awburst.eq(1),
                     bus.awaddr.eq(aligned), bus.awlen.eq(beats - 1), bus.wdata.eq(wdata),
                     bus.wstrb.eq(wstrb)]
        with m.FSM(name="writer"):
            with m.State("IDLE"):
                m.d.comb += self.req.ready.eq(1)
                with m.If(self.req.valid):
                    m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.words), self.error.eq(0)]
                    with m.If(self.req.payload.words != 0):
                        m.next = "ADDR"
            with m.State("ADDR"):
                m.d.comb += [bus.awvalid.eq(1), self.busy.eq(1), self.stall.eq(~bus.awready)]
                with m.If(bus.awready):
                    m.d.sync += [burst.eq(beats), beat.eq(0), wstrb.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [self.busy.eq(1), self.data.ready.eq(~bus.wvalid),
                             self.stall.eq(bus.wvalid & ~bus.wready), self.beats.eq(bus.wvalid & bus.wready)]
                with m.If(self.data.valid & ~bus.wvalid):
                    for k in range(n):
                        with m.If(lane_now == k):
                            m.d.sync += [wdata[32 * k:32 * k + 32].eq(self.data.payload),
                                         wstrb[4 * k:4 * k + 4].eq(0xF)]
                    m.d.sync += [left.eq(left - 1), addr.eq(addr + 4)]
                    with m.If((lane_now == n - 1) | (left == 1)):
                        m.d.sync += [bus.wvalid.eq(1), bus.wlast.eq(beat == burst - 1)]
                with m.If(bus.wvalid & bus.wready):
                    m.d.sync += [bus.wvalid.eq(0), bus.wlast.eq(0), wstrb.eq(0), beat.eq(beat + 1)]
                    with m.If(bus.wlast):
                        m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += [bus.bready.eq(1), self.busy.eq(1), self.stall.eq(~bus.bvalid)]
                with m.If(bus.bvalid):
                    with m.If(bus.bresp != 0):
                        m.d.sync += self.error.eq(1)
                    m.next = "ADDR"
                    with m.If(left == 0):
                        m.next = "IDLE"
        return m
