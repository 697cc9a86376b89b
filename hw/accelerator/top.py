"""The model-level top: whole tokens of a MatMul-free LM from a memory image, bit-exact with ``GoldenModel.step``.

Vitis RTL-kernel style: ``ap_clk``, ``ap_rst_n`` (synchronous, active low), ``interrupt``, the AXI4-Lite
slave ``s_axi_control_*`` and one AXI4 master ``m_axi_*`` (64-bit addresses, 128/256/512-bit data, INCR
bursts that never cross 4 KB, up to ``read_outstanding`` read bursts in flight; :mod:`hw.accelerator.axi4`). This slice runs the *stationary* weight mode:

* **load** (a start with ``FLAGS`` bit 0): read the image header (:mod:`hw.accelerator.image`), check magic,
  version, shape fields, section sizes, alignment and the 64-bit address range, then stream the load section
  into the units — layer ``i``'s records into the ``s_axis_load`` port of a :class:`~hw.neurocore_top.NeurocoreTop`
  (one per layer, its weights and MLGRU state ``h`` kept on chip), the head's records into the final-norm gain
  memory and the ``lm_head`` :class:`~hw.elementwise.BitLinearFront` and :class:`~hw.ternary_core.TernaryCore` —
  and compare the load checksum.
* **token loop**: for ``N_TOKENS`` steps, read the embedding row of the current token from device memory,
  run it through every layer (each layer started by a write of its ``CTRL`` register), the final RMSNorm
  and the ternary ``lm_head``; write the logits (when ``LOGITS`` is set), take the argmax (first index of
  the largest logit, as ``numpy.argmax``), write it as one 32-bit word to ``OUT + 4 * step``, and feed it
  back as the next token. ``FLAGS`` bit 1 clears every layer's ``h`` first; bit 2 stops after a step
  whose argmax is ``EOS``. The state persists between starts, so a host feeds a prompt one start per token.
* **state save and restore**: ``FLAGS`` bit 4 reads ``L * d`` words from ``STATE`` (a 64-byte-aligned
  pointer) into every layer's ``h`` before the first token (after the clear of bit 1), bit 3 writes every
  layer's ``h`` there after the last token (layer-major, ``h[layer][j]`` as a sign-extended 32-bit word at
  ``STATE + 4 * (layer * d + j)``; each layer read back through its ``STATE`` register). ``N_TOKENS`` 0
  saves or restores alone, so one top can serve several sessions, or a long run can stop and resume.

Registers (:data:`REGISTERS`): the standard map — ``CTRL`` 0x00 (bit 0 ``ap_start``, 1 ``ap_done`` and
3 ``ap_ready`` cleared by the read, 2 ``ap_idle``, 7 ``auto_restart``), ``GIE`` 0x04, ``IER`` 0x08, ``ISR``
0x0C (toggle on write) — then the arguments from 0x10 (64-bit pointers as two 32-bit words, low first;
written only while idle), ``STATUS`` (:data:`ERRORS` bits, cleared by a start; bit 16: an image is loaded)
and the performance counters of the last start (cycles, bytes, stall cycles, busy cycles per unit).
A start that raises an error bit ends at once with ``ap_done``, before any further token; a failed load
leaves no image marked loaded (after a checksum error reset the kernel before the next load: a corrupted
record length can leave a layer's loader inside a frame).
"""

from __future__ import annotations

from amaranth.hdl import (Array, Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module, Mux, ResetSignal, Signal,
                          unsigned)
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat as nf

from hw.accelerator.axi4 import (ReadBusSignature, WordReader, WordWriter, WriteBusSignature, check_data_width,
                                 check_outstanding)
from hw.accelerator.image import HEAD_TARGETS, HEADER_FIELDS, HEADER_WORDS, MAGIC, VERSION, emb_stride, load_words
from hw.axi import AxiLiteRegisters
from hw.elementwise import BitLinearFront
from hw.fixed import round_shift, saturate
from hw.neurocore_top import LOAD_TARGETS, NeurocoreTop, check_layer
from hw.neurocore_top import REGISTERS as LAYER_REGISTERS
from hw.ternary_core import TernaryCore

__all__ = ["Accelerator", "check_accelerator", "REGISTERS", "ERRORS", "FLAGS", "ID_WORD", "MAX_VOCAB"]

W = nf.RESID_BITS
#: AXI4-Lite byte offsets.
REGISTERS = {"CTRL": 0x00, "GIE": 0x04, "IER": 0x08, "ISR": 0x0C,
             "IMAGE_LO": 0x10, "IMAGE_HI": 0x14, "OUT_LO": 0x18, "OUT_HI": 0x1C, "LOGITS_LO": 0x20,
             "LOGITS_HI": 0x24, "TOKEN": 0x28, "N_TOKENS": 0x2C, "FLAGS": 0x30, "EOS": 0x34, "STATE_LO": 0x38,
             "STATE_HI": 0x3C,
             "STATUS": 0x40, "TOKENS_DONE": 0x44, "LAST_TOKEN": 0x48, "CYCLES_TOKEN": 0x4C, "CYCLES_RUN": 0x50,
             "BYTES_READ": 0x54, "BYTES_WRITTEN": 0x58, "READ_STALLS": 0x5C, "WRITE_STALLS": 0x60,
             "BUSY_LAYERS": 0x64, "BUSY_HEAD": 0x68, "HASH_LO": 0x6C, "HASH_HI": 0x70, "HIDDEN": 0x74,
             "VOCAB": 0x78, "ID": 0x7C}
_ARGS = ("IMAGE_LO", "IMAGE_HI", "OUT_LO", "OUT_HI", "LOGITS_LO", "LOGITS_HI", "TOKEN", "N_TOKENS", "FLAGS", "EOS",
         "STATE_LO", "STATE_HI")
#: ``STATUS`` error bits.
ERRORS = {"no_buffers": 0, "bad_magic": 1, "bad_version": 2, "config_mismatch": 3, "checksum": 4,
          "axi_response": 5, "not_loaded": 6, "bad_token": 7, "address_fault": 8}
LOADED_BIT = 16
#: ``FLAGS`` bits.
FLAGS = {"load": 0, "reset_state": 1, "stop_at_eos": 2, "save_state": 3, "restore_state": 4}
ID_WORD = 0x4E4D4C41  # "NMLA"
#: Largest vocabulary (a token id and a logit count fit 24 bits).
MAX_VOCAB = 1 << 24


def check_accelerator(*, hidden: int, glu: int, layers: int, vocab: int, lanes: int, data_width: int,
                      clock_mhz: float, read_outstanding: int = 1) -> None:
    """Raise ``TypeError``/``ValueError`` (one line) unless the top can be built with these parameters."""
    check_layer(hidden=hidden, glu=glu, lanes=lanes, clock_mhz=clock_mhz)
    check_data_width(data_width)
    check_outstanding(read_outstanding)
    for name, v in (("Layer count", layers), ("Vocabulary size", vocab)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    if not 1 <= layers <= 255:
        raise ValueError(f"Layer count must be between 1 and 255 (an image record names its unit in 8 bits), "
                         f"not {layers}")
    if not 2 <= vocab <= MAX_VOCAB:
        raise ValueError(f"Vocabulary size must be between 2 and {MAX_VOCAB}, not {vocab}")
    if vocab % lanes:
        raise ValueError(f"Lane count {lanes} must divide the vocabulary size {vocab} (the lm_head core)")


class Accelerator(wiring.Component):
    """A whole MatMul-free LM (MLGRU + GLU layers, final norm, ternary ``lm_head``) behind AXI4.

    Parameters
    ----------
    hidden, glu, layers, vocab : int
        The model's shape (``d``, ``m``, layer count, vocabulary).
    lanes : int
        Accumulators of every ternary core (divides ``d``, ``2m`` and the vocabulary; at most 16).
    data_width : int
        Width of ``m_axi`` data in bits: 128, 256 or 512.
    read_outstanding : int
        Read bursts the ``m_axi`` master keeps in flight (1 to 16).
    clock_mhz : float
        Target clock (the layers' Vivado constraint range applies).
    """

    def __init__(self, *, hidden: int, glu: int, layers: int, vocab: int, lanes: int, data_width: int = 128,
                 read_outstanding: int = 4, clock_mhz: float = 200.0):
        check_accelerator(hidden=hidden, glu=glu, layers=layers, vocab=vocab, lanes=lanes, data_width=data_width,
                          clock_mhz=clock_mhz, read_outstanding=read_outstanding)
        self.hidden, self.glu, self.layers, self.vocab = hidden, glu, layers, vocab
        self.lanes, self.data_width, self.clock_mhz = lanes, data_width, clock_mhz
        self.read_outstanding = read_outstanding
        self.load_words = load_words(hidden=hidden, glu=glu, layers=layers, vocab=vocab, lanes=lanes)
        self.emb_stride = emb_stride(hidden)
        self.layer_tops = [NeurocoreTop(hidden=hidden, glu=glu, lanes=lanes, clock_mhz=clock_mhz)
                           for _ in range(layers)]
        self.front = BitLinearFront(fan_in=hidden)
        self.core = TernaryCore(lanes=lanes, fan_in=hidden, out_features=vocab)
        self.reader = WordReader(data_width=data_width, outstanding=read_outstanding)
        self.writer = WordWriter(data_width=data_width)
        self.axil = AxiLiteRegisters(addr_width=8)
        for unit in (*self.layer_tops, self.front, self.core, self.reader, self.writer, self.axil):
            unit._MustUse__silence = True  # elaborated with the top; reading ports alone must not warn
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        for name, member in self.axil.signature.members["bus"].signature.members.items():
            members[f"s_axi_control_{name}"] = member
        for bus in (ReadBusSignature(data_width), WriteBusSignature(data_width)):
            for name, member in bus.members.items():
                members[f"m_axi_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        d, V, L = self.hidden, self.vocab, self.layers
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        rd, wr, front, core, axil = self.reader, self.writer, self.front, self.core, self.axil
        m.submodules.reader, m.submodules.writer, m.submodules.axil = rd, wr, axil
        m.submodules.head_front, m.submodules.head_core = front, core
        wiring.connect(m, front.codes, core.act)
        wiring.connect(m, front.scale, core.scale)
        lt = self.layer_tops
        for i, layer in enumerate(lt):
            m.submodules[f"layer{i}"] = DomainRenamer({"sync": f"layer{i}"})(layer)
            m.d.comb += [layer.ap_clk.eq(self.ap_clk), layer.ap_rst_n.eq(self.ap_rst_n)]

        # ---------------------------------------------------------------- external buses
        for unit, bus in ((rd, ReadBusSignature(self.data_width)), (wr, WriteBusSignature(self.data_width))):
            for name, member in bus.members.items():
                port, inner = getattr(self, f"m_axi_{name}"), getattr(unit.bus, name)
                m.d.comb += (port.eq(inner) if member.flow == Out else inner.eq(port))
        for name, member in axil.bus.signature.members.items():
            port, inner = getattr(self, f"s_axi_control_{name}"), getattr(axil.bus, name)
            m.d.comb += (inner.eq(port) if member.flow == In else port.eq(inner))

        # ---------------------------------------------------------------- registers
        args = {n: Signal(32, name=f"arg_{n.lower()}") for n in _ARGS}
        image, out = Cat(args["IMAGE_LO"], args["IMAGE_HI"]), Cat(args["OUT_LO"], args["OUT_HI"])
        logits = Cat(args["LOGITS_LO"], args["LOGITS_HI"])
        state = Cat(args["STATE_LO"], args["STATE_HI"])
        flags = args["FLAGS"]
        status = Signal(len(ERRORS))
        loaded = Signal()
        done, auto_restart, gie = Signal(), Signal(), Signal()
        ier, isr = Signal(2), Signal(2)
        counters = {n: Signal(32, name=n.lower()) for n in ("TOKENS_DONE", "LAST_TOKEN", "CYCLES_TOKEN", "CYCLES_RUN",
                                                             "BYTES_READ", "BYTES_WRITTEN", "READ_STALLS",
                                                             "WRITE_STALLS", "BUSY_LAYERS", "BUSY_HEAD")}
        hdr = Array(Signal(32, name=f"hdr{i}") for i in range(HEADER_WORDS))
        hf = {name: hdr[i] for name, i in HEADER_FIELDS.items()}
        idle = Signal()
        start = Signal()
        m.d.comb += self.interrupt.eq(gie & (isr != 0))
        with m.If(axil.wr_en):
            with m.Switch(axil.wr_addr):
                with m.Case(REGISTERS["CTRL"]):
                    m.d.sync += auto_restart.eq(axil.wr_data[7])
                    m.d.comb += start.eq(axil.wr_data[0] & idle)
                with m.Case(REGISTERS["GIE"]):
                    m.d.sync += gie.eq(axil.wr_data[0])
                with m.Case(REGISTERS["IER"]):
                    m.d.sync += ier.eq(axil.wr_data[:2])
                with m.Case(REGISTERS["ISR"]):
                    m.d.sync += isr.eq(isr ^ axil.wr_data[:2])
                for n in _ARGS:
                    with m.Case(REGISTERS[n]):
                        with m.If(idle):
                            m.d.sync += args[n].eq(axil.wr_data)
        reads = {"CTRL": Cat(~idle, done, idle, done, Const(0, 3), auto_restart), "GIE": gie, "IER": ier,
                 "ISR": isr, **args, "STATUS": status | (loaded << LOADED_BIT), **counters,
                 "HASH_LO": hf["hash_lo"], "HASH_HI": hf["hash_hi"], "HIDDEN": d, "VOCAB": V, "ID": ID_WORD}
        with m.Switch(axil.rd_addr):
            for name, value in reads.items():
                with m.Case(REGISTERS[name]):
                    m.d.comb += axil.rd_data.eq(value)
        with m.If(axil.rd_en & (axil.rd_addr == REGISTERS["CTRL"])):
            m.d.sync += done.eq(0)

        # ---------------------------------------------------------------- layer commands (their CTRL register)
        # a one-cycle write to every layer at once (CTRL: start or clear; STATE: rewind the state pointer);
        # the state is saved by reading one layer's STATE register d times
        cmd_pulse, cmd_addr, cmd_data = Signal(), Signal(8), Signal(2)
        m.d.sync += cmd_pulse.eq(0)
        sv_layer, sv_issue = Signal(range(L)), Signal()
        for i, layer in enumerate(lt):
            m.d.comb += [layer.s_axi_control_awaddr.eq(cmd_addr), layer.s_axi_control_awvalid.eq(cmd_pulse),
                         layer.s_axi_control_wdata.eq(cmd_data), layer.s_axi_control_wvalid.eq(cmd_pulse),
                         layer.s_axi_control_wstrb.eq(0xF), layer.s_axi_control_bready.eq(1),
                         layer.s_axi_control_araddr.eq(LAYER_REGISTERS["STATE"]),
                         layer.s_axi_control_arvalid.eq(sv_issue & (sv_layer == i)),
                         layer.s_axi_control_rready.eq(1)]
        sv_rvalid = Array(layer.s_axi_control_rvalid for layer in lt)[sv_layer]
        sv_rdata = Array(layer.s_axi_control_rdata for layer in lt)[sv_layer]

        # ---------------------------------------------------------------- counters of the running start
        running = ~idle
        m.d.sync += [counters["BYTES_READ"].eq(counters["BYTES_READ"] + Mux(rd.beats, self.data_width // 8, 0)),
                     counters["BYTES_WRITTEN"].eq(counters["BYTES_WRITTEN"] + Mux(wr.beats, self.data_width // 8, 0)),
                     counters["READ_STALLS"].eq(counters["READ_STALLS"] + rd.stall),
                     counters["WRITE_STALLS"].eq(counters["WRITE_STALLS"] + wr.stall),
                     counters["BUSY_HEAD"].eq(counters["BUSY_HEAD"] + core.busy)]
        with m.If(running):
            m.d.sync += counters["CYCLES_RUN"].eq(counters["CYCLES_RUN"] + 1)
        with m.If(rd.error | wr.error):
            m.d.sync += status[ERRORS["axi_response"]].eq(1)
        layers_busy = Signal()
        with m.If(layers_busy):
            m.d.sync += counters["BUSY_LAYERS"].eq(counters["BUSY_LAYERS"] + 1)

        # ---------------------------------------------------------------- reader routing
        RD_HDR, RD_LOAD, RD_EMB, RD_STATE = 0, 1, 2, 3
        rd_target = Signal(2)
        word = rd.data.payload
        rd_valid = rd.data.valid

        # header words
        hcnt = Signal(range(HEADER_WORDS + 1))
        # load records
        ld_cnt, ld_sum = Signal(32), Signal(32)
        ld_unit, ld_left, ld_in = Signal(8), Signal(24), Signal()
        hd_first, hd_target, hd_addr = Signal(), Signal(8), Signal(24)
        fg_mem = Memory(shape=unsigned(W), depth=d, init=[])
        m.submodules.final_gain = fg_mem
        fg_wr, fg_rd = fg_mem.write_port(), fg_mem.read_port(domain="comb")
        ld_take = Signal()
        sel_ready = Signal()
        m.d.comb += sel_ready.eq(1)
        st_hdr, st_rows = Signal(), Signal()  # restoring h: a layer's frame header (made here), then its d words
        for i, layer in enumerate(lt):
            sel = (((rd_target == RD_LOAD) & ld_in) | st_hdr | st_rows) & (ld_unit == i)
            m.d.comb += [layer.s_axis_load_tdata.eq(Mux(st_hdr, LOAD_TARGETS["state"] << 24, word)),
                         layer.s_axis_load_tvalid.eq((rd_valid | st_hdr) & sel),
                         layer.s_axis_load_tlast.eq(~st_hdr & (ld_left == 1))]
            with m.If(sel):
                m.d.comb += sel_ready.eq(layer.s_axis_load_tready)
        head_write = Signal()
        m.d.comb += head_write.eq(ld_take & ld_in & (ld_unit == L) & ~hd_first)
        for port, target in ((core.weights, "weights"), (front.gain, "gain"), (fg_wr, "final_gain")):
            m.d.comb += [port.addr.eq(hd_addr), port.data.eq(word),
                         port.en.eq(head_write & (hd_target == HEAD_TARGETS[target]))]
        m.d.comb += [front.static.addr.eq(hd_addr[0]), front.static.data.eq(word),
                     front.static.en.eq(head_write & (hd_target == HEAD_TARGETS["static"]))]
        with m.If(ld_take):
            m.d.sync += [ld_cnt.eq(ld_cnt + 1), ld_sum.eq(ld_sum + word)]
            with m.If(~ld_in):
                m.d.sync += [ld_unit.eq(word[24:]), ld_left.eq(word[:24]), ld_in.eq(word[:24] != 0), hd_first.eq(1)]
            with m.Else():
                m.d.sync += [ld_left.eq(ld_left - 1), hd_first.eq(0)]
                with m.If(ld_left == 1):
                    m.d.sync += ld_in.eq(0)
                with m.If(hd_first):
                    m.d.sync += [hd_target.eq(word[24:]), hd_addr.eq(word[:24])]
                with m.Else():
                    m.d.sync += hd_addr.eq(hd_addr + 1)

        # embedding row → layer 0 (two int16 per word, shifted to the residual format)
        l0, last = lt[0], lt[-1]
        e_cnt, e_hi = Signal(range(d)), Signal()
        half = Mux(e_hi, word[16:], word[:16]).as_signed()
        emb_valid = rd_valid & (rd_target == RD_EMB)
        m.d.comb += [l0.s_axis_act_tdata.eq(half << (nf.RESID_FRAC - nf.EMBED_FRAC)),
                     l0.s_axis_act_tvalid.eq(emb_valid), l0.s_axis_act_tlast.eq(e_cnt == d - 1)]
        with m.If(emb_valid & l0.s_axis_act_tready):
            m.d.sync += [e_cnt.eq(Mux(e_cnt == d - 1, 0, e_cnt + 1)), e_hi.eq(~e_hi & (e_cnt != d - 1))]
        with m.Switch(rd_target):
            with m.Case(RD_HDR):
                m.d.comb += rd.data.ready.eq(1)
            with m.Case(RD_LOAD):
                m.d.comb += [rd.data.ready.eq(sel_ready), ld_take.eq(rd_valid & sel_ready)]
            with m.Case(RD_EMB):
                m.d.comb += rd.data.ready.eq(l0.s_axis_act_tready & (e_hi | (e_cnt == d - 1)))
            with m.Case(RD_STATE):
                m.d.comb += rd.data.ready.eq(st_rows & sel_ready)

        # ---------------------------------------------------------------- layer chain → final norm → lm_head
        for a, b in zip(lt, lt[1:]):
            m.d.comb += [b.s_axis_act_tdata.eq(a.m_axis_act_tdata), b.s_axis_act_tvalid.eq(a.m_axis_act_tvalid),
                         b.s_axis_act_tlast.eq(a.m_axis_act_tlast), a.m_axis_act_tready.eq(b.s_axis_act_tready)]
        j = Signal(range(d))
        x = last.m_axis_act_tdata.as_signed()
        u = saturate(m, round_shift(m, x * fg_rd.data.as_signed(), nf.GAIN_FRAC, "final_rs"), W, "final_u")
        m.d.comb += [fg_rd.addr.eq(j), front.inp.valid.eq(last.m_axis_act_tvalid), front.inp.payload.eq(u),
                     last.m_axis_act_tready.eq(front.inp.ready)]
        with m.If(last.m_axis_act_tvalid & front.inp.ready):
            m.d.sync += j.eq(Mux(j == d - 1, 0, j + 1))
            with m.If(j == d - 1):
                m.d.sync += layers_busy.eq(0)

        # ---------------------------------------------------------------- logits: argmax and the writer
        res = core.res
        v_idx, best, best_idx = Signal(range(V)), Signal(W), Signal(24)
        logits_on = logits != 0
        in_run = Signal()
        m.d.comb += res.ready.eq(in_run & Mux(logits_on, wr.data.ready, 1))
        res_take = res.valid & res.ready
        with m.If(res_take):
            m.d.sync += v_idx.eq(Mux(v_idx == V - 1, 0, v_idx + 1))
            with m.If((v_idx == 0) | (res.payload > best.as_signed())):
                m.d.sync += [best.eq(res.payload), best_idx.eq(v_idx)]
        tok_word = Signal()
        saving, sv_full, sv_word = Signal(), Signal(), Signal(32)
        m.d.comb += [wr.data.valid.eq(Mux(saving, sv_full, Mux(tok_word, 1, res.valid & in_run & logits_on))),
                     wr.data.payload.eq(Mux(saving, sv_word, Mux(tok_word, best_idx, res.payload)))]

        # ---------------------------------------------------------------- sequence control
        tok, step = Signal(32), Signal(32)
        wait = Signal(range(d + 16))
        t_cycles = Signal(32)
        m.d.sync += t_cycles.eq(t_cycles + 1)
        expect = {"hidden": d, "glu": self.glu, "layers": L, "vocab": V, "lanes": self.lanes,
                  "load_words": self.load_words, "emb_stride": self.emb_stride}
        mismatch = Signal()
        m.d.comb += mismatch.eq((Cat(*(hf[k] != v for k, v in expect.items())) != 0)
                                | (hf["load_offset"][:6] != 0) | (hf["emb_offset"][:6] != 0)
                                | (hf["image_bytes"] < hf["emb_offset"] + V * self.emb_stride)
                                | (hf["image_bytes"] < hf["load_offset"] + 4 * self.load_words))
        end = Signal(65)
        m.d.comb += end.eq(image + hf["image_bytes"])
        state_io = flags[FLAGS["save_state"]] | flags[FLAGS["restore_state"]]
        state_end = Signal(65)
        m.d.comb += state_end.eq(state + 4 * L * d)
        sv_cnt, sv_sent = Signal(range(d)), Signal(range(L * d + 1))
        sv_wait, sv_read_all = Signal(), Signal()
        rq = rd.req.payload
        wq = wr.req.payload

        def fail(bit: str):
            m.d.sync += status[ERRORS[bit]].eq(1)
            m.next = "FINISH"

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(start):
                    m.d.sync += [status.eq(0), step.eq(0), tok.eq(args["TOKEN"]), *(c.eq(0) for c in counters.values())]
                    with m.If((image == 0) | (out == 0) | (state_io & (state == 0))):
                        fail("no_buffers")
                    with m.Elif((image[:6] != 0) | (out[:2] != 0) | (logits[:2] != 0)
                                | (state_io & ((state[:6] != 0) | state_end[64]))):
                        fail("address_fault")
                    with m.Elif(flags[FLAGS["load"]]):
                        m.d.sync += [loaded.eq(0), hcnt.eq(0)]
                        m.next = "HDR_REQ"
                    with m.Else():
                        m.next = "READY"
            with m.State("HDR_REQ"):
                m.d.comb += [rd.req.valid.eq(1), rq.addr.eq(image), rq.words.eq(HEADER_WORDS)]
                with m.If(rd.req.ready):
                    m.d.sync += rd_target.eq(RD_HDR)
                    m.next = "HDR"
            with m.State("HDR"):
                with m.If(rd_valid):
                    m.d.sync += [hdr[hcnt].eq(word), hcnt.eq(hcnt + 1)]
                    with m.If(hcnt == HEADER_WORDS - 1):
                        m.next = "HDR_CHECK"
            with m.State("HDR_CHECK"):
                with m.If(status[ERRORS["axi_response"]]):
                    m.next = "FINISH"
                with m.Elif(hf["magic"] != MAGIC):
                    fail("bad_magic")
                with m.Elif(hf["version"] != VERSION):
                    fail("bad_version")
                with m.Elif(mismatch):
                    fail("config_mismatch")
                with m.Elif(end[64]):
                    fail("address_fault")
                with m.Else():
                    m.d.sync += [ld_cnt.eq(0), ld_sum.eq(0), ld_in.eq(0)]
                    m.next = "LOAD_REQ"
            with m.State("LOAD_REQ"):
                m.d.comb += [rd.req.valid.eq(1), rq.addr.eq(image + hf["load_offset"]), rq.words.eq(self.load_words)]
                with m.If(rd.req.ready):
                    m.d.sync += rd_target.eq(RD_LOAD)
                    m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(ld_take & (ld_cnt == self.load_words - 1)):
                    m.next = "LOAD_CHECK"
            with m.State("LOAD_CHECK"):
                with m.If(status[ERRORS["axi_response"]]):
                    m.next = "FINISH"
                with m.Elif(ld_sum != hf["load_checksum"]):
                    fail("checksum")
                with m.Else():
                    m.d.sync += loaded.eq(1)
                    m.next = "READY"
            with m.State("READY"):
                with m.If(~loaded):
                    fail("not_loaded")
                with m.Elif(flags[FLAGS["reset_state"]]):
                    m.d.sync += [cmd_pulse.eq(1), cmd_addr.eq(LAYER_REGISTERS["CTRL"]), cmd_data.eq(2), wait.eq(0)]
                    m.next = "CLEAR"
                with m.Else():
                    m.next = "RESTORE_REQ"
            with m.State("CLEAR"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == d + 8):
                    m.next = "RESTORE_REQ"
            # restore h: L * d words from STATE into every layer's load port, each behind a state frame header
            with m.State("RESTORE_REQ"):
                m.d.comb += [rd.req.valid.eq(flags[FLAGS["restore_state"]]), rq.addr.eq(state), rq.words.eq(L * d)]
                with m.If(~flags[FLAGS["restore_state"]]):
                    m.next = "T_START"
                with m.Elif(rd.req.ready):
                    m.d.sync += [rd_target.eq(RD_STATE), ld_unit.eq(0)]
                    m.next = "RESTORE_HDR"
            with m.State("RESTORE_HDR"):
                m.d.comb += st_hdr.eq(1)
                with m.If(sel_ready):
                    m.d.sync += ld_left.eq(d)
                    m.next = "RESTORE"
            with m.State("RESTORE"):
                m.d.comb += st_rows.eq(1)
                with m.If(rd_valid & sel_ready):
                    m.d.sync += ld_left.eq(ld_left - 1)
                    with m.If(ld_left == 1):
                        m.d.sync += ld_unit.eq(ld_unit + 1)
                        m.next = "RESTORE_HDR"
                        with m.If(ld_unit == L - 1):
                            m.next = "RESTORE_END"
            with m.State("RESTORE_END"):
                with m.If(status[ERRORS["axi_response"]]):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "T_START"
            with m.State("T_START"):
                with m.If(step == args["N_TOKENS"]):
                    m.next = "SAVE_START"
                with m.Elif(tok >= V):
                    fail("bad_token")
                with m.Else():
                    m.d.sync += [cmd_pulse.eq(1), cmd_addr.eq(LAYER_REGISTERS["CTRL"]), cmd_data.eq(1),
                                 t_cycles.eq(1), layers_busy.eq(1),
                                 e_cnt.eq(0), e_hi.eq(0), v_idx.eq(0), j.eq(0)]
                    m.next = "T_READ"
            with m.State("T_READ"):
                emb_base = image + hf["emb_offset"]
                m.d.comb += [rd.req.valid.eq(1), rq.addr.eq(emb_base + tok[:24] * self.emb_stride),
                             rq.words.eq((d + 1) // 2)]
                with m.If(rd.req.ready):
                    m.d.sync += rd_target.eq(RD_EMB)
                    m.next = "T_WRITE"
            with m.State("T_WRITE"):
                m.d.comb += [wr.req.valid.eq(logits_on), wq.addr.eq(logits + step[:24] * (4 * V)), wq.words.eq(V)]
                with m.If(~logits_on | wr.req.ready):
                    m.next = "T_RUN"
            with m.State("T_RUN"):
                m.d.comb += in_run.eq(1)
                with m.If(res_take & (v_idx == V - 1)):
                    m.next = "T_TOKEN"
            with m.State("T_TOKEN"):
                m.d.comb += [wr.req.valid.eq(1), wq.addr.eq(out + (step << 2)), wq.words.eq(1)]
                with m.If(wr.req.ready):
                    m.next = "T_TOKEN_DATA"
            with m.State("T_TOKEN_DATA"):
                m.d.comb += tok_word.eq(1)
                with m.If(wr.data.ready):
                    m.next = "T_TOKEN_WAIT"
            with m.State("T_TOKEN_WAIT"):
                with m.If(wr.req.ready):  # the writer is idle again: the response has come
                    m.d.sync += [step.eq(step + 1), tok.eq(best_idx), counters["LAST_TOKEN"].eq(best_idx),
                                 counters["TOKENS_DONE"].eq(counters["TOKENS_DONE"] + 1),
                                 counters["CYCLES_TOKEN"].eq(t_cycles)]
                    with m.If(status[ERRORS["axi_response"]]):
                        m.next = "FINISH"
                    with m.Elif(flags[FLAGS["stop_at_eos"]] & (best_idx == args["EOS"])):
                        m.next = "SAVE_START"
                    with m.Else():
                        m.next = "T_START"
            # save h: rewind every layer's state pointer, then L * d reads of the layers' STATE registers to STATE
            with m.State("SAVE_START"):
                with m.If(flags[FLAGS["save_state"]]):
                    m.d.sync += [cmd_pulse.eq(1), cmd_addr.eq(LAYER_REGISTERS["STATE"]), cmd_data.eq(0),
                                 sv_layer.eq(0), sv_cnt.eq(0), sv_sent.eq(0), sv_full.eq(0), sv_wait.eq(0),
                                 sv_read_all.eq(0)]
                    m.next = "SAVE_REQ"
                with m.Else():
                    m.next = "FINISH"
            with m.State("SAVE_REQ"):
                m.d.comb += [wr.req.valid.eq(1), wq.addr.eq(state), wq.words.eq(L * d)]
                with m.If(wr.req.ready):
                    m.next = "SAVE"
            with m.State("SAVE"):
                m.d.comb += [saving.eq(1), sv_issue.eq(~sv_full & ~sv_wait & ~sv_read_all)]
                with m.If(sv_issue):
                    m.d.sync += sv_wait.eq(1)
                with m.If(sv_wait & sv_rvalid):  # the word of layer sv_layer has come: on to the next word
                    m.d.sync += [sv_word.eq(sv_rdata), sv_full.eq(1), sv_wait.eq(0)]
                    with m.If(sv_cnt == d - 1):
                        m.d.sync += [sv_cnt.eq(0), sv_layer.eq(sv_layer + 1)]
                        with m.If(sv_layer == L - 1):
                            m.d.sync += sv_read_all.eq(1)
                    with m.Else():
                        m.d.sync += sv_cnt.eq(sv_cnt + 1)
                with m.If(sv_full & wr.data.ready):
                    m.d.sync += [sv_full.eq(0), sv_sent.eq(sv_sent + 1)]
                    with m.If(sv_sent == L * d - 1):
                        m.next = "SAVE_WAIT"
            with m.State("SAVE_WAIT"):
                with m.If(wr.req.ready):  # the writer is idle again: the last response has come
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += [done.eq(1), isr.eq(isr | ier)]
                m.next = "IDLE"
        with m.If(auto_restart & done & idle):
            m.d.comb += start.eq(1)
        return m
