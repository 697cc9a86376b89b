"""NeurocoreTop: one whole MatMul-free layer for one token, bit-exact with ``GoldenModel.layer_step``.

Dataflow (every arrow a valid/ready stream, every box one unit; all six projections' weights on chip)::

    s_axis_act ─► X[j] = x_j, u_j = sat(rs(x_j * attn_gain_j, 12)) ─┬─► front_i ─► core_i ─┐
                                                                    ├─► front_f ─► core_f ─┼─► MlgruCell (h)
                                                                    └─► front_g ─► core_g ─┘        │
        ┌───────────────────────────────────────────────────────────────────────────────────────────┘
        └─► front_o ─► core_o ─► X[j] = sat(X[j] + o_j), u_j = sat(rs(X[j] * mlp_gain_j, 12)) ─► front_gate
        ─► core_gate ─► GluCell ─► front_down ─► core_down ─► sat(X[j] + d_j) ─► m_axis_act

``front_*`` is :class:`~hw.elementwise.BitLinearFront` (absmax codes, per-token scale), ``core_*`` is
:class:`~hw.ternary_core.TernaryCore`. The MLGRU state ``h`` stays in the cell between tokens.

Host interface (Vitis RTL-kernel names): ``ap_clk``, ``ap_rst_n`` (synchronous, active low);
``s_axis_act`` (``d`` words of the residual ``x``, Q RESID_FRAC, per token), ``m_axis_act`` (``d`` words
of the layer's output residual, ``tlast`` on the last); ``s_axis_load`` (parameter frames, below);
``s_axi_control`` (AXI4-Lite registers, below).

Load frames on ``s_axis_load`` (accepted only while idle): the first beat is a header, target in bits
[31:24] and the first word address in [23:0]; every further beat is one word at the next address;
``tlast`` ends the frame. Targets (:data:`LOAD_TARGETS`): ``0..5`` weight memory of projection ``p``
(``i, f, g, o, gate, down``; :func:`~hw.ternary_matvec.weight_memory_image` words), ``6..11`` the RMSNorm
gain of projection ``p``, ``12`` attn_norm gain, ``13`` mlp_norm gain, ``14`` g_norm gain, ``15`` lower
bound, ``16`` static scales (word ``2p`` multiplier, ``2p+1`` shift of projection ``p``), ``17`` state ``h``.

Registers (byte offsets, :data:`REGISTERS`): ``CTRL`` (0x00; write bit 0 = start a token, bit 1 = clear
the state ``h``; read bit 0 busy, bit 1 done — cleared by the read —, bit 2 idle, bit 3 clearing),
``STATUS`` (0x04; bit 0 busy, bit 1 clearing, bits 8-13 which stage holds data), ``HIDDEN`` (0x08),
``GLU`` (0x0C), ``LANES`` (0x10), ``CYCLES`` (0x14, cycles from start to the last output word of the
current or last token), ``TOKENS`` (0x18, tokens completed since reset), ``CLOCK_MHZ`` (0x1C),
``ID`` (0x20, ``0x4E4D4C31``), ``STATE`` (0x24; a read returns ``h[k]`` sign-extended and advances ``k``,
wrapping after ``d - 1``; a write sets ``k``, 0 if it is ``d`` or more; ``k`` is 0 after reset: the host
saves the state with a write of 0 and ``d`` reads while the layer is idle, and restores it with a load
frame of target 17). Reads are answered at once, busy or not, with live values.

Reset (``ap_rst_n`` low, any time): the token in flight is dropped and every stream stage, counter
and register returns to its reset value; the memories (weights, gains, scales, ``h``) keep their
contents. A reset in the middle of a token may leave ``h`` partly updated, so the host clears it (CTRL
bit 1) or reloads it (target 17) before the next sequence.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, ClockSignal, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat as nf
from models.program.integer_program import PROJECTIONS

from hw.axi import AxiLiteRegisters
from hw.elementwise import BitLinearFront, GluCell, MlgruCell
from hw.fixed import round_shift, saturate
from hw.ternary_core import TernaryCore

__all__ = ["NeurocoreTop", "check_layer", "layer_load_frames", "LOAD_TARGETS", "REGISTERS", "ID_WORD", "MAX_LANES", "ONCHIP_WEIGHT_BITS",
           "CLOCK_MHZ_RANGE"]

W = nf.RESID_BITS
#: Load-frame targets.
LOAD_TARGETS = {**{f"weights.{p}": i for i, p in enumerate(PROJECTIONS)},
                **{f"gain.{p}": 6 + i for i, p in enumerate(PROJECTIONS)},
                "attn_gain": 12, "mlp_gain": 13, "g_norm_gain": 14, "lower_bound": 15, "static": 16, "state": 17}
#: AXI4-Lite register byte offsets.
REGISTERS = {"CTRL": 0x00, "STATUS": 0x04, "HIDDEN": 0x08, "GLU": 0x0C, "LANES": 0x10, "CYCLES": 0x14,
             "TOKENS": 0x18, "CLOCK_MHZ": 0x1C, "ID": 0x20, "STATE": 0x24}
ID_WORD = 0x4E4D4C31  # "NML1"
#: One weight-memory word (2 bits per lane) must fit a 32-bit load beat.
MAX_LANES = 16
#: On-chip memory of the VCK190's XCVC1902 (967 BRAM36 + 463 URAM288: 34.8 Mb + 133.4 Mb; AMD DS950,
#: Versal AI Core data sheet, "Device resources"): one layer's 2-bit weights must fit.
ONCHIP_WEIGHT_BITS = 967 * 36 * 1024 + 463 * 288 * 1024
#: Clock frequencies the Vivado script can constrain for this part (MHz).
CLOCK_MHZ_RANGE = (10.0, 500.0)
#: Largest word address a load header carries.
MAX_LOAD_DEPTH = 1 << 24


def _flat_stream(prefix: str, flow, width: int) -> dict:
    rev = In if flow is Out else Out
    return {f"{prefix}_tdata": flow(width), f"{prefix}_tvalid": flow(1), f"{prefix}_tready": rev(1),
            f"{prefix}_tlast": flow(1)}


def check_layer(*, hidden: int, glu: int, lanes: int, clock_mhz: float) -> None:
    """Raise ``TypeError``/``ValueError`` (one line) unless the layer top can hold this configuration."""
    for name, v in (("Hidden size", hidden), ("GLU width", glu), ("Lane count", lanes)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer, not {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v}")
    if lanes > MAX_LANES:
        raise ValueError(f"Lane count {lanes} exceeds {MAX_LANES}: a weight word (2 bits per lane) must fit "
                         f"one 32-bit load beat")
    if hidden % lanes or (2 * glu) % lanes:
        raise ValueError(f"Lane count {lanes} must divide the hidden size {hidden} and the gate projection "
                         f"width {2 * glu}")
    weight_bits = 2 * (4 * hidden * hidden + 2 * hidden * glu + glu * hidden)
    if weight_bits > ONCHIP_WEIGHT_BITS:
        raise ValueError(f"Layer weights need {weight_bits} bits, beyond the {ONCHIP_WEIGHT_BITS}-bit on-chip "
                         f"memory of the XCVC1902")
    depth = max((2 * glu // lanes) * hidden, (hidden // lanes) * glu)
    if depth > MAX_LOAD_DEPTH:
        raise ValueError(f"A weight memory of {depth} words is beyond the {MAX_LOAD_DEPTH}-word load address")
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)):
        raise TypeError(f"Clock frequency must be a number of MHz, not {clock_mhz!r}")
    lo, hi = CLOCK_MHZ_RANGE
    if not lo <= clock_mhz <= hi:
        raise ValueError(f"Clock frequency {clock_mhz} MHz is outside the {lo:g}-{hi:g} MHz the Vivado "
                         f"script can constrain for the XCVC1902")


class NeurocoreTop(wiring.Component):
    """One MatMul-free layer (MLGRU token mixer + GLU channel mixer) per token, AXI host interface.

    Parameters
    ----------
    hidden : int
        ``d`` (= the MLGRU width ``e``; the integer program supports expand ratio 1 only).
    glu : int
        ``m``, the GLU width.
    lanes : int
        ``P`` accumulators of every ternary core; divides ``d`` and ``2m``; at most :data:`MAX_LANES`.
    clock_mhz : float
        Target clock (read back in ``CLOCK_MHZ``; the Vivado script constrains it).

    Members
    -------
    ap_clk, ap_rst_n : In(1)
        Clock and synchronous active-low reset.
    s_axis_act_*, m_axis_act_*, s_axis_load_* : AXI4-Stream (``tdata`` 32 bits, ``tlast``)
    s_axi_control_* : AXI4-Lite slave (8-bit byte addresses)
    """

    def __init__(self, *, hidden: int, glu: int, lanes: int, clock_mhz: float = 200.0):
        check_layer(hidden=hidden, glu=glu, lanes=lanes, clock_mhz=clock_mhz)
        self.hidden, self.glu, self.lanes, self.clock_mhz = hidden, glu, lanes, clock_mhz
        d, m = hidden, glu
        shapes = {"i_proj": (d, d), "f_proj": (d, d), "g_proj": (d, d), "o_proj": (d, d),
                  "gate_proj": (d, 2 * m), "down_proj": (m, d)}
        self.shapes = shapes
        self.cores = {p: TernaryCore(lanes=lanes, fan_in=fi, out_features=fo) for p, (fi, fo) in shapes.items()}
        self.fronts = {p: BitLinearFront(fan_in=fi) for p, (fi, fo) in shapes.items()}
        self.cell = MlgruCell(channels=d)
        self.glu_cell = GluCell(width=m)
        self.axil = AxiLiteRegisters(addr_width=8)
        for unit in (*self.cores.values(), *self.fronts.values(), self.cell, self.glu_cell, self.axil):
            unit._MustUse__silence = True  # elaborated with the top; reading ports alone must not warn
        members = {"ap_clk": In(1), "ap_rst_n": In(1)}
        members.update(_flat_stream("s_axis_act", In, W))
        members.update(_flat_stream("m_axis_act", Out, W))
        members.update(_flat_stream("s_axis_load", In, W))
        for name, member in self.axil.signature.members["bus"].signature.members.items():
            members[f"s_axi_control_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        d, g = self.hidden, self.glu
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]

        for p in PROJECTIONS:
            m.submodules[f"front_{p}"] = self.fronts[p]
            m.submodules[f"core_{p}"] = self.cores[p]
            wiring.connect(m, self.fronts[p].codes, self.cores[p].act)
            wiring.connect(m, self.fronts[p].scale, self.cores[p].scale)
        m.submodules.cell, m.submodules.glu = cell, glu = self.cell, self.glu_cell
        m.submodules.axil = axil = self.axil
        fr, co = self.fronts, self.cores

        # ---------------------------------------------------------------- AXI4-Lite bus
        for name in axil.bus.signature.members:
            port = getattr(self, f"s_axi_control_{name}")
            if axil.bus.signature.members[name].flow == In:  # into the register file
                m.d.comb += getattr(axil.bus, name).eq(port)
            else:
                m.d.comb += port.eq(getattr(axil.bus, name))

        # ---------------------------------------------------------------- parameter memories of the top
        xm = Memory(shape=signed(W), depth=d, init=[])
        agm = Memory(shape=unsigned(W), depth=d, init=[])
        mgm = Memory(shape=unsigned(W), depth=d, init=[])
        m.submodules.x_mem, m.submodules.attn_gain_mem, m.submodules.mlp_gain_mem = xm, agm, mgm

        # ---------------------------------------------------------------- control
        running = Signal()
        done = Signal()
        clearing = Signal()
        clear_addr = Signal(range(d))
        cycles = Signal(32)
        tokens = Signal(32)
        in_cnt = Signal(range(d + 1))
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)

        # ---------------------------------------------------------------- loader
        ld_target = Signal(8)
        ld_addr = Signal(24)
        ld_header = Signal(init=1)
        ld_en = Signal()
        ld_data = Signal(W)
        m.d.comb += [self.s_axis_load_tready.eq(~running & ~clearing), ld_data.eq(self.s_axis_load_tdata)]
        with m.If(self.s_axis_load_tvalid & self.s_axis_load_tready):
            with m.If(ld_header):
                m.d.sync += [ld_target.eq(self.s_axis_load_tdata[24:]), ld_addr.eq(self.s_axis_load_tdata[:24])]
            with m.Else():
                m.d.comb += ld_en.eq(1)
                m.d.sync += ld_addr.eq(ld_addr + 1)
            m.d.sync += ld_header.eq(self.s_axis_load_tlast)

        def load_port(port, target, addr=None):
            m.d.comb += [port.addr.eq(ld_addr if addr is None else addr), port.data.eq(ld_data),
                         port.en.eq(ld_en & (ld_target == target))]

        for i, p in enumerate(PROJECTIONS):
            load_port(co[p].weights, i)
            load_port(fr[p].gain, 6 + i)
            m.d.comb += [fr[p].static.addr.eq(ld_addr[0]), fr[p].static.data.eq(ld_data),
                         fr[p].static.en.eq(ld_en & (ld_target == 16) & (ld_addr[1:] == i))]
        load_port(cell.g_norm_gain, 14)
        load_port(cell.lower_bound, 15)
        for mem, target in ((agm, 12), (mgm, 13)):
            wr = mem.write_port()
            load_port(wr, target)
        with m.If(clearing):
            m.d.comb += [cell.state.addr.eq(clear_addr), cell.state.data.eq(0), cell.state.en.eq(1)]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == d - 1):
                m.d.sync += [clearing.eq(0), clear_addr.eq(0)]
        with m.Else():
            load_port(cell.state, 17)

        # ---------------------------------------------------------------- registers
        with m.If(axil.wr_en & (axil.wr_addr == REGISTERS["CTRL"]) & ~running & ~clearing):
            with m.If(axil.wr_data[0]):
                m.d.sync += [running.eq(1), cycles.eq(0), in_cnt.eq(0)]
            with m.Elif(axil.wr_data[1]):
                m.d.sync += clearing.eq(1)
        busy_map = Signal(6)
        m.d.comb += busy_map.eq(Cat(running & (in_cnt < d), *(co[p].busy for p in ("i_proj", "o_proj", "gate_proj", "down_proj")),
                                    cell.out.valid | glu.out.valid))
        state_ptr = Signal(range(d))
        m.d.comb += cell.state_addr.eq(state_ptr)
        with m.If(axil.wr_en & (axil.wr_addr == REGISTERS["STATE"])):
            m.d.sync += state_ptr.eq(Mux(axil.wr_data < d, axil.wr_data, 0))
        with m.If(axil.rd_en & (axil.rd_addr == REGISTERS["STATE"])):
            m.d.sync += state_ptr.eq(Mux(state_ptr == d - 1, 0, state_ptr + 1))
        reads = {
            "CTRL": Cat(running, done, ~running & ~clearing, clearing),
            "STATUS": Cat(running, clearing, Const(0, 6), busy_map),
            "HIDDEN": d, "GLU": g, "LANES": self.lanes, "CYCLES": cycles, "TOKENS": tokens,
            "CLOCK_MHZ": int(round(self.clock_mhz)), "ID": ID_WORD, "STATE": cell.state_data.as_signed(),
        }
        with m.Switch(axil.rd_addr):
            for name, value in reads.items():
                with m.Case(REGISTERS[name]):
                    m.d.comb += axil.rd_data.eq(value)
        with m.If(axil.rd_en & (axil.rd_addr == REGISTERS["CTRL"])):
            m.d.sync += done.eq(0)

        # ---------------------------------------------------------------- stage 1: x in, attn norm, i/f/g
        x_wr = xm.write_port()
        ag_rd, mg_rd = agm.read_port(domain="comb"), mgm.read_port(domain="comb")
        x_rd1, x_rd2 = xm.read_port(domain="comb"), xm.read_port(domain="comb")
        heads = [fr[p] for p in ("i_proj", "f_proj", "g_proj")]
        take_in = running & (in_cnt < d) & heads[0].inp.ready & heads[1].inp.ready & heads[2].inp.ready
        x_in = self.s_axis_act_tdata.as_signed()
        u1 = saturate(m, round_shift(m, x_in * ag_rd.data.as_signed(), nf.GAIN_FRAC, "u1_rs"), W, "u1")
        m.d.comb += [self.s_axis_act_tready.eq(take_in), ag_rd.addr.eq(in_cnt)]
        for f in heads:
            m.d.comb += [f.inp.valid.eq(self.s_axis_act_tvalid & take_in), f.inp.payload.eq(u1)]
        with m.If(self.s_axis_act_tvalid & take_in):
            m.d.sync += in_cnt.eq(in_cnt + 1)

        # join i/f/g into the MLGRU cell
        tails = [co[p] for p in ("i_proj", "f_proj", "g_proj")]
        all_valid = tails[0].res.valid & tails[1].res.valid & tails[2].res.valid
        m.d.comb += [cell.inp.valid.eq(all_valid), cell.inp.payload.i.eq(tails[0].res.payload),
                     cell.inp.payload.f.eq(tails[1].res.payload), cell.inp.payload.g.eq(tails[2].res.payload)]
        for c in tails:
            m.d.comb += c.res.ready.eq(all_valid & cell.inp.ready)
        wiring.connect(m, cell.out, fr["o_proj"].inp)

        # ---------------------------------------------------------------- stage 2: residual, mlp norm, GLU
        r1 = Signal(range(d))
        o = co["o_proj"].res
        x_mid = saturate(m, x_rd1.data + o.payload, W, "x_mid")
        u2 = saturate(m, round_shift(m, x_mid * mg_rd.data.as_signed(), nf.GAIN_FRAC, "u2_rs"), W, "u2")
        m.d.comb += [x_rd1.addr.eq(r1), mg_rd.addr.eq(r1), fr["gate_proj"].inp.valid.eq(o.valid),
                     fr["gate_proj"].inp.payload.eq(u2), o.ready.eq(fr["gate_proj"].inp.ready)]
        mid_take = o.valid & o.ready
        with m.If(mid_take):
            m.d.sync += r1.eq(Mux(r1 == d - 1, 0, r1 + 1))
        # X is written by the input (stage 1) and by the first residual (stage 2), never at once
        with m.If(self.s_axis_act_tvalid & take_in):
            m.d.comb += [x_wr.addr.eq(in_cnt), x_wr.data.eq(x_in), x_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [x_wr.addr.eq(r1), x_wr.data.eq(x_mid), x_wr.en.eq(mid_take)]
        wiring.connect(m, co["gate_proj"].res, glu.inp)
        wiring.connect(m, glu.out, fr["down_proj"].inp)

        # ---------------------------------------------------------------- stage 3: residual out
        r2 = Signal(range(d))
        dn = co["down_proj"].res
        x_out = saturate(m, x_rd2.data + dn.payload, W, "x_out")
        m.d.comb += [x_rd2.addr.eq(r2), self.m_axis_act_tdata.eq(x_out), self.m_axis_act_tvalid.eq(dn.valid),
                     self.m_axis_act_tlast.eq(r2 == d - 1), dn.ready.eq(self.m_axis_act_tready)]
        with m.If(dn.valid & dn.ready):
            m.d.sync += r2.eq(Mux(r2 == d - 1, 0, r2 + 1))
            with m.If(r2 == d - 1):
                m.d.sync += [running.eq(0), done.eq(1), tokens.eq(tokens + 1)]
        return m


def layer_load_frames(layer, lanes: int) -> list[list[int]]:
    """The ``s_axis_load`` frames (lists of 32-bit words, header first) that load one
    :class:`models.program.integer_program.Layer` into a :class:`NeurocoreTop` with ``lanes`` lanes."""
    from hw.ternary_matvec import weight_memory_image

    def frame(target: str, words) -> list[int]:
        return [LOAD_TARGETS[target] << 24] + [int(w) & 0xFFFFFFFF for w in words]

    frames = []
    for p in PROJECTIONS:
        proj = layer.proj[p]
        frames.append(frame(f"weights.{p}", weight_memory_image(proj.codes, lanes)))
        frames.append(frame(f"gain.{p}", proj.gain))
    frames += [frame("attn_gain", layer.attn_gain), frame("mlp_gain", layer.mlp_gain),
               frame("g_norm_gain", layer.g_norm_gain), frame("lower_bound", layer.lower_bound),
               frame("static", [v for p in PROJECTIONS for v in (layer.proj[p].multiplier, layer.proj[p].shift)])]
    return frames
