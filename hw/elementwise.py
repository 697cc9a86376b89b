"""The elementwise unit: the MLGRU and GLU non-linear parts and the per-token BitLinear front end.

Everything here is the integer program of :mod:`models.program.numformat` and :mod:`models.program.golden` in hardware,
bit for bit:

:class:`MlgruCell`
    Per channel ``j``: ``f = lb + rs((1 - lb) * sigmoid(yf), 15)``, ``i = rs(silu(yi) * (1 - f), 15)``,
    ``h = sat24(rs(f * h, 15) + i)`` (``h`` held on chip between tokens), ``v = sat32(rs(sat32(rs(yg * gn,
    12)) * silu(h), 16))``. A seven-register pipeline, one channel per cycle; ``rs`` is
    :func:`~models.program.numformat.round_shift`, the sigmoid the spec's piecewise-linear table as a ROM.
:class:`GluCell`
    Takes the ``2m`` gate-projection results of a token, keeps the first ``m`` (``g``) and emits
    ``sat32(rs(silu(g_j) * u_j, 16))`` as the second half (``u``) arrives.
:class:`BitLinearFront`
    Per token and projection: ``z = u * gain`` (exact, 48 bits), ``max|z|``, the absmax int8 codes through one
    reciprocal (a 17-cycle restoring divider), the sum of squares of ``u`` and the reciprocal square root
    (:data:`~models.program.numformat.RSQRT_TABLE` as a ROM), and the per-token ``(multiplier, shift)`` of
    :func:`~models.program.numformat.bitlinear_scale` — the codes and the scale a :class:`~hw.ternary_core.TernaryCore`
    consumes.
:class:`Elementwise`
    The three side by side (the unit a testbench drives).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat as nf

from hw.fixed import at_least_zero, bit_length, round_shift, saturate
from hw.ternary_core import SCALE_SHIFT_BITS, ScaleLayout
from hw.ternary_matvec import WeightWriteSignature

__all__ = ["CellInLayout", "MlgruCell", "GluCell", "BitLinearFront", "Elementwise", "sigmoid"]

W = nf.RESID_BITS
#: Width of ``z = u * gain``: a 32-bit input times an int16 gain, exact.
ZW = nf.RESID_BITS + nf.GAIN_BITS
ONE = 1 << nf.GATE_FRAC
_SIG_SHIFT = nf.OUT_FRAC - nf.SIGMOID_STEP_BITS
_SIG_LAST = len(nf.SIGMOID_TABLE) - 1

#: One MLGRU channel: the i, f and g projection results (Q OUT_FRAC).
CellInLayout = data.StructLayout({"i": signed(W), "f": signed(W), "g": signed(W)})


def _check_size(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


def _pair_rom(m: Module, name: str, table) -> tuple:
    """A ROM of ``(t[i], t[i+1] - t[i])`` for ``i < len(table) - 1``; returns (read address, base, slope)."""
    base = [int(v) for v in table[:-1]]
    diff = [int(b) - int(a) for a, b in zip(table[:-1], table[1:])]
    bw = max(v.bit_length() for v in base) + 1
    dw = max(abs(v).bit_length() for v in diff) + 1
    mem = Memory(shape=unsigned(bw + dw), depth=len(base),
                 init=[(b & ((1 << bw) - 1)) | ((d & ((1 << dw) - 1)) << bw) for b, d in zip(base, diff)])
    m.submodules[name] = mem
    rd = mem.read_port(domain="comb")
    return rd.addr, rd.data[:bw].as_signed(), rd.data[bw:].as_signed()


def sigmoid(m: Module, name: str, y):
    """:func:`models.program.numformat.sigmoid_q` of a signed Q OUT_FRAC value: Q GATE_FRAC, a ROM and one multiply."""
    pos = Signal(range((_SIG_LAST << _SIG_SHIFT) + 1), name=f"{name}_pos")
    raw = y + (nf.SIGMOID_RANGE << nf.OUT_FRAC)
    m.d.comb += pos.eq(Mux(raw < 0, 0, Mux(raw > (_SIG_LAST << _SIG_SHIFT), _SIG_LAST << _SIG_SHIFT, raw)))
    index = Signal(range(_SIG_LAST), name=f"{name}_index")
    m.d.comb += index.eq(Mux((pos >> _SIG_SHIFT) > _SIG_LAST - 1, _SIG_LAST - 1, pos >> _SIG_SHIFT))
    frac = pos - (index << _SIG_SHIFT)
    addr, base, slope = _pair_rom(m, f"{name}_rom", nf.SIGMOID_TABLE)
    m.d.comb += addr.eq(index)
    out = Signal(unsigned(nf.GATE_FRAC + 1), name=name)
    m.d.comb += out.eq(base + round_shift(m, slope * frac, _SIG_SHIFT, name=f"{name}_interp"))
    return out


def _silu(m: Module, y, sig, name: str):
    return round_shift(m, y * sig, nf.GATE_FRAC, name=name)


def _product_out(m: Module, out, valid, a, b, enable) -> None:
    """The output register of a cell: ``sat32(rs(a * b, OUT_FRAC))`` (a Hadamard product back to Q OUT_FRAC)."""
    v = saturate(m, round_shift(m, a * b, nf.OUT_FRAC, name="v_rs"), W, name="v")
    with m.If(enable):
        m.d.sync += [out.valid.eq(valid), out.payload.eq(v)]


def _stage(m: Module, name: str, shape, value, enable):
    reg = Signal(shape, name=name)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg


class MlgruCell(wiring.Component):
    """The MLGRU gates, state update and output-gate product, one channel per cycle.

    Parameters
    ----------
    channels : int
        Width ``e`` of the recurrence; channel ``j`` of every token uses ``h[j]``, ``lb[j]``, ``gn[j]``.

    Members
    -------
    inp : In(stream.Signature(CellInLayout))
        ``(yi, yf, yg)`` of channels ``0 .. e-1``, token after token.
    out : Out(stream.Signature(signed(32)))
        ``v`` per channel, in the same order.
    lower_bound, g_norm_gain, state : In(WeightWriteSignature)
        Write ports of ``lb`` (Q GATE_FRAC, unsigned), ``gn`` (Q GAIN_FRAC) and the state ``h``
        (``STATE_BITS``; the host clears or restores it here while the cell is idle).
    state_addr : In(range(channels)), state_data : Out(signed(STATE_BITS))
        A read port of ``h`` (combinational) for saving the state while the cell is idle.
    """

    def __init__(self, *, channels: int):
        self.channels = _check_size("Channel count", channels)
        super().__init__({
            "inp": In(stream.Signature(CellInLayout)),
            "out": Out(stream.Signature(signed(W))),
            "lower_bound": In(WeightWriteSignature(depth=channels, width=nf.GATE_FRAC + 1)),
            "g_norm_gain": In(WeightWriteSignature(depth=channels, width=W)),
            "state": In(WeightWriteSignature(depth=channels, width=nf.STATE_BITS)),
            "state_addr": In(range(channels)), "state_data": Out(signed(nf.STATE_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        C = self.channels
        adv = Signal()
        m.d.comb += [adv.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(adv)]

        lbm = Memory(shape=unsigned(nf.GATE_FRAC + 1), depth=C, init=[])
        gnm = Memory(shape=unsigned(W), depth=C, init=[])
        hm = Memory(shape=signed(nf.STATE_BITS), depth=C, init=[])
        m.submodules.lb_mem, m.submodules.gn_mem, m.submodules.h_mem = lbm, gnm, hm
        for mem, port in ((lbm, self.lower_bound), (gnm, self.g_norm_gain)):
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(port.addr), wr.data.eq(port.data), wr.en.eq(port.en)]
        lb_rd, gn_rd, h_rd = lbm.read_port(domain="comb"), gnm.read_port(domain="comb"), hm.read_port(domain="comb")
        h_wr = hm.write_port()
        h_save = hm.read_port(domain="comb")
        m.d.comb += [h_save.addr.eq(self.state_addr), self.state_data.eq(h_save.data)]

        j = Signal(range(C))
        take = self.inp.valid & adv
        with m.If(take):
            m.d.sync += j.eq(Mux(j == C - 1, 0, j + 1))
        m.d.comb += [lb_rd.addr.eq(j), gn_rd.addr.eq(j)]
        p = self.inp.payload

        # s1: the channel's inputs and parameters
        v1 = _stage(m, "v1", 1, self.inp.valid, adv)
        yi1, yf1, yg1 = (_stage(m, f"{n}1", signed(W), getattr(p, n[1]), adv) for n in ("yi", "yf", "yg"))
        lb1 = _stage(m, "lb1", unsigned(nf.GATE_FRAC + 1), lb_rd.data, adv)
        gn1 = _stage(m, "gn1", signed(W), gn_rd.data.as_signed(), adv)
        j1 = _stage(m, "j1", range(C), j, adv)
        # s2: sigmoid(yf), sigmoid(yi)
        v2 = _stage(m, "v2", 1, v1, adv)
        sf2 = _stage(m, "sf2", unsigned(nf.GATE_FRAC + 1), sigmoid(m, "sig_f", yf1), adv)
        si2 = _stage(m, "si2", unsigned(nf.GATE_FRAC + 1), sigmoid(m, "sig_i", yi1), adv)
        yi2, yg2 = _stage(m, "yi2", signed(W), yi1, adv), _stage(m, "yg2", signed(W), yg1, adv)
        lb2, gn2 = _stage(m, "lb2", unsigned(nf.GATE_FRAC + 1), lb1, adv), _stage(m, "gn2", signed(W), gn1, adv)
        j2 = _stage(m, "j2", range(C), j1, adv)
        # s3: f (lower-bound mix) and silu(yi)
        v3 = _stage(m, "v3", 1, v2, adv)
        f3 = _stage(m, "f3", unsigned(nf.GATE_FRAC + 1),
                    lb2 + round_shift(m, (ONE - lb2) * sf2, nf.GATE_FRAC, name="mix"), adv)
        sil3 = _stage(m, "silu_i3", signed(W), _silu(m, yi2, si2, "silu_i"), adv)
        yg3, gn3 = _stage(m, "yg3", signed(W), yg2, adv), _stage(m, "gn3", signed(W), gn2, adv)
        j3 = _stage(m, "j3", range(C), j2, adv)
        # s4: h <- sat(rs(f h, 15) + rs(silu(yi) (1 - f), 15)), read-modified-written in this step
        m.d.comb += h_rd.addr.eq(j3)
        gate_i = round_shift(m, sil3 * (ONE - f3), nf.GATE_FRAC, name="gate_i")
        h_new = Signal(signed(nf.STATE_BITS))
        keep = round_shift(m, f3 * h_rd.data, nf.GATE_FRAC, name="keep")
        m.d.comb += h_new.eq(saturate(m, keep + gate_i, nf.STATE_BITS, name="h_sat"))
        with m.If(self.state.en):
            m.d.comb += [h_wr.addr.eq(self.state.addr), h_wr.data.eq(self.state.data), h_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [h_wr.addr.eq(j3), h_wr.data.eq(h_new), h_wr.en.eq(v3 & adv)]
        v4 = _stage(m, "v4", 1, v3, adv)
        h4 = _stage(m, "h4", signed(nf.STATE_BITS), h_new, adv)
        yg4, gn4 = _stage(m, "yg4", signed(W), yg3, adv), _stage(m, "gn4", signed(W), gn3, adv)
        # s5: sigmoid(h), gg = sat(rs(yg gn, 12))
        v5 = _stage(m, "v5", 1, v4, adv)
        sh5 = _stage(m, "sh5", unsigned(nf.GATE_FRAC + 1), sigmoid(m, "sig_h", h4), adv)
        h5 = _stage(m, "h5", signed(nf.STATE_BITS), h4, adv)
        gg5 = _stage(m, "gg5", signed(W), saturate(m, round_shift(m, yg4 * gn4, nf.GAIN_FRAC, name="gg_rs"), W, name="gg"), adv)
        # s6: silu(h)
        v6 = _stage(m, "v6", 1, v5, adv)
        silh6 = _stage(m, "silu_h6", signed(nf.STATE_BITS), _silu(m, h5, sh5, "silu_h"), adv)
        gg6 = _stage(m, "gg6", signed(W), gg5, adv)
        # out: v = sat(rs(gg silu(h), 16))
        _product_out(m, self.out, v6, gg6, silh6, adv)
        return m


class GluCell(wiring.Component):
    """The GLU product ``sat32(rs(silu(g) * u, 16))`` from the gate projection's ``[g, u]`` results.

    Parameters
    ----------
    width : int
        ``m``: the token's first ``m`` input beats are ``g`` (kept on chip), the next ``m`` are ``u``.

    Members
    -------
    inp : In(stream.Signature(signed(32)))
        ``2m`` beats per token.
    out : Out(stream.Signature(signed(32)))
        ``m`` beats per token.
    """

    def __init__(self, *, width: int):
        self.width = _check_size("GLU width", width)
        super().__init__({
            "inp": In(stream.Signature(signed(W))),
            "out": Out(stream.Signature(signed(W))),
        })

    def elaborate(self, platform):
        m = Module()
        M = self.width
        adv = Signal()
        m.d.comb += adv.eq(~self.out.valid | self.out.ready)
        gm = Memory(shape=signed(W), depth=M, init=[])
        m.submodules.g_mem = gm
        g_wr, g_rd = gm.write_port(), gm.read_port(domain="comb")
        c = Signal(range(2 * M))
        second = c >= M
        m.d.comb += [self.inp.ready.eq(~second | adv), g_wr.addr.eq(c), g_wr.data.eq(self.inp.payload),
                     g_wr.en.eq(self.inp.valid & ~second), g_rd.addr.eq(c - M)]
        with m.If(self.inp.valid & self.inp.ready):
            m.d.sync += c.eq(Mux(c == 2 * M - 1, 0, c + 1))
        v1 = _stage(m, "v1", 1, self.inp.valid & second, adv)
        g1 = _stage(m, "g1", signed(W), g_rd.data, adv)
        u1 = _stage(m, "u1", signed(W), self.inp.payload, adv)
        v2 = _stage(m, "v2", 1, v1, adv)
        sg2 = _stage(m, "sg2", unsigned(nf.GATE_FRAC + 1), sigmoid(m, "sig_g", g1), adv)
        g2, u2 = _stage(m, "g2", signed(W), g1, adv), _stage(m, "u2", signed(W), u1, adv)
        v3 = _stage(m, "v3", 1, v2, adv)
        sil3 = _stage(m, "silu_g3", signed(W), _silu(m, g2, sg2, "silu_g"), adv)
        u3 = _stage(m, "u3", signed(W), u2, adv)
        _product_out(m, self.out, v3, sil3, u3, adv)
        return m


class BitLinearFront(wiring.Component):
    """Per-token front end of one BitLinear: absmax int8 codes and the per-token scale.

    Parameters
    ----------
    fan_in : int
        Inputs ``n`` per token (at most :data:`models.program.integer_program.MAX_BITLINEAR_FAN_IN`).

    Members
    -------
    inp : In(stream.Signature(signed(32)))
        ``u`` (Q OUT_FRAC or Q RESID_FRAC), ``n`` beats per token.
    codes : Out(stream.Signature(signed(ACT_BITS)))
        ``absmax_quantize(u * gain)``, ``n`` beats per token.
    scale : Out(stream.Signature(ScaleLayout))
        ``bitlinear_scale(static, max|z|, sum_of_squares(u))``, one beat per token; its shift is
        saturated to 8 bits, which changes nothing (``apply_scale`` clips shifts to [-22, 62]).
    gain : In(WeightWriteSignature)
        The projection's RMSNorm gain (Q GAIN_FRAC, int16 two's complement, sign-extended), ``n`` words.
    static : In(WeightWriteSignature)
        Word 0: the static multiplier (16 bits); word 1: the static shift (two's complement).

    Cycles per token: ``n`` (receive) + 18 (reciprocal) + ``n`` (codes at full rate) + 5 (scale).
    """

    def __init__(self, *, fan_in: int):
        from models.program.integer_program import MAX_BITLINEAR_FAN_IN
        _check_size("Fan-in", fan_in)
        if fan_in > MAX_BITLINEAR_FAN_IN:
            raise ValueError(f"Fan-in {fan_in} exceeds the spec's largest BitLinear fan-in {MAX_BITLINEAR_FAN_IN}")
        self.fan_in = fan_in
        self.ss_bits = 2 * nf.SS_BITS + 1 + fan_in.bit_length()
        super().__init__({
            "inp": In(stream.Signature(signed(W))),
            "codes": Out(stream.Signature(signed(nf.ACT_BITS))),
            "scale": Out(stream.Signature(ScaleLayout)),
            "gain": In(WeightWriteSignature(depth=fan_in, width=W)),
            "static": In(WeightWriteSignature(depth=2, width=nf.MULTIPLIER_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.fan_in
        gmem = Memory(shape=unsigned(W), depth=n, init=[])
        bmem = Memory(shape=signed(W), depth=n, init=[])
        m.submodules.gain_mem, m.submodules.u_buf = gmem, bmem
        g_wr = gmem.write_port()
        m.d.comb += [g_wr.addr.eq(self.gain.addr), g_wr.data.eq(self.gain.data), g_wr.en.eq(self.gain.en)]
        g_rd, b_wr, b_rd = gmem.read_port(domain="comb"), bmem.write_port(), bmem.read_port(domain="comb")

        # parameters, like the memories, survive a reset
        mult_s = Signal(nf.MULTIPLIER_BITS, reset_less=True)
        shift_s = Signal(signed(nf.MULTIPLIER_BITS), reset_less=True)
        with m.If(self.static.en):
            with m.If(self.static.addr == 0):
                m.d.sync += mult_s.eq(self.static.data)
            with m.Else():
                m.d.sync += shift_s.eq(self.static.data.as_signed())

        cnt = Signal(range(n))
        zmax = Signal(ZW)                    # max |u * gain| < 2**47
        umax = Signal(W)                     # max |u|
        u_now = Signal(signed(W))
        z = Signal(signed(ZW))
        m.d.comb += [g_rd.addr.eq(cnt), b_rd.addr.eq(cnt), b_wr.addr.eq(cnt), b_wr.data.eq(self.inp.payload),
                     z.eq(u_now * g_rd.data[:nf.GAIN_BITS].as_signed())]  # exact: the spec never saturates z
        z_abs = Signal(ZW)
        m.d.comb += z_abs.eq(abs(z))

        # reciprocal of max|z|: kz, mk, sq and a restoring divider
        kz = Signal(range(ZW))
        mk = Signal(nf.Z_BITS + 1)
        sq = Signal(range(nf.Z_BITS + 1 + nf.RECIP_BITS))
        rem = Signal(nf.Z_BITS + 1 + nf.RECIP_BITS + 7)
        div = Signal(nf.Z_BITS + 1 + nf.RECIP_BITS + 1)
        recip = Signal(nf.RECIP_BITS + 1)
        step = Signal(range(nf.RECIP_BITS + 2))
        k = Signal(range(W))
        ss = Signal(self.ss_bits)

        # scale: rsqrt(ss), bm, the 16-bit product, bp
        q = Signal(16)
        half_e = Signal(signed(8))
        rm = Signal(17)
        rshift = Signal(signed(8))
        bm = Signal(range(ZW))
        mr = Signal(17)
        p1 = Signal(nf.MULTIPLIER_BITS + 17)
        prod = Signal(nf.MULTIPLIER_BITS + 34)

        addr, base, slope = _pair_rom(m, "rsqrt_rom", nf.RSQRT_TABLE)
        m.d.comb += addr.eq((q >> 8) - 64)

        # combinational values of each step, registered by the state that needs them
        zlen = bit_length(m, zmax, "zmax_len")
        kz_v = at_least_zero(m, zlen - nf.Z_BITS, "kz_v")
        mk_v = round_shift(m, zmax, kz_v, "mk_v")
        sq_v = Signal(range(nf.Z_BITS + 2 + nf.RECIP_BITS))
        m.d.comb += sq_v.eq(bit_length(m, mk_v, "mk_len") + (nf.RECIP_BITS - 7))
        k_v = at_least_zero(m, bit_length(m, umax, "umax_len") - nf.SS_BITS, "k_v")
        zk = round_shift(m, z, kz, "zk")
        code = saturate(m, round_shift(m, zk * Mux(zmax == 0, 0, recip), sq, "code_rs"), nf.ACT_BITS, "code")
        uk = round_shift(m, b_rd.data, k, "uk")
        ss_eff = Signal(self.ss_bits)
        m.d.comb += ss_eff.eq(Mux(zmax == 0, 1, ss))  # the spec's rsqrt of 1 for an all-zero z
        e = Signal(signed(8))
        e_even = Signal(signed(8))
        m.d.comb += [e.eq(bit_length(m, ss_eff, "ss_len") - 16), e_even.eq(e + e[0])]
        bm_v = at_least_zero(m, zlen - 16, "bm_v")
        mr_v = round_shift(m, zmax, bm_v, "mr_v")
        rm_v = Signal(17)
        m.d.comb += rm_v.eq(base + round_shift(m, slope * q[:8], 8, "rsqrt_interp"))
        bp = at_least_zero(m, bit_length(m, prod, "prod_len") - nf.MULTIPLIER_BITS, "bp")
        mult_v = round_shift(m, prod, bp, "mult_v")
        shift_v = saturate(m, shift_s + rshift - bm - bp + k, SCALE_SHIFT_BITS, "shift_v")
        divisor_fits = Signal()
        m.d.comb += divisor_fits.eq(rem >= div)

        with m.If(self.codes.ready):
            m.d.sync += self.codes.valid.eq(0)
        with m.If(self.scale.ready):
            m.d.sync += self.scale.valid.eq(0)

        with m.FSM(name="front"):
            with m.State("RECV"):
                m.d.comb += [self.inp.ready.eq(1), u_now.eq(self.inp.payload), b_wr.en.eq(self.inp.valid)]
                with m.If(self.inp.valid):
                    with m.If(z_abs > zmax):
                        m.d.sync += zmax.eq(z_abs)
                    with m.If(abs(self.inp.payload) > umax):
                        m.d.sync += umax.eq(abs(self.inp.payload))
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == n - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "RECIP"
            with m.State("RECIP"):
                m.d.sync += [kz.eq(kz_v), mk.eq(mk_v), sq.eq(sq_v), k.eq(k_v),
                             rem.eq((nf.QUANT_MAX << sq_v) + (mk_v >> 1)),
                             div.eq(mk_v << nf.RECIP_BITS), recip.eq(0), step.eq(0)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                m.d.sync += [recip.eq(Cat(divisor_fits, recip[:-1])), div.eq(div >> 1), step.eq(step + 1)]
                with m.If(divisor_fits):
                    m.d.sync += rem.eq(rem - div)
                with m.If(step == nf.RECIP_BITS):
                    m.d.sync += [cnt.eq(0), ss.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += u_now.eq(b_rd.data)
                with m.If(~self.codes.valid | self.codes.ready):
                    m.d.sync += [self.codes.valid.eq(1), self.codes.payload.eq(code), ss.eq(ss + uk * uk),
                                 cnt.eq(cnt + 1)]
                    with m.If(cnt == n - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "RSQRT"
            with m.State("RSQRT"):
                # ss normalised by an even power of two into [2**14, 2**16)
                m.d.sync += [q.eq(Mux(e_even >= 0, ss_eff >> e_even[:6], ss_eff << (-e_even)[:5])),
                             half_e.eq(e_even >> 1)]
                m.next = "TABLE"
            with m.State("TABLE"):
                m.d.sync += [rm.eq(rm_v), rshift.eq(nf.RSQRT_TABLE_BITS + 4 + half_e), bm.eq(bm_v), mr.eq(mr_v)]
                m.next = "PRODUCT1"
            with m.State("PRODUCT1"):
                m.d.sync += p1.eq(mult_s * rm)
                m.next = "PRODUCT2"
            with m.State("PRODUCT2"):
                m.d.sync += prod.eq(p1 * mr)
                m.next = "SCALE"
            with m.State("SCALE"):
                m.d.sync += [self.scale.valid.eq(1), self.scale.payload.multiplier.eq(mult_v),
                             self.scale.payload.shift.eq(shift_v)]
                m.next = "OFFER"
            with m.State("OFFER"):
                with m.If(self.scale.ready):
                    m.d.sync += [zmax.eq(0), umax.eq(0)]
                    m.next = "RECV"
        return m


class Elementwise(wiring.Component):
    """One :class:`MlgruCell`, one :class:`GluCell` and one :class:`BitLinearFront`, side by side.

    Parameters
    ----------
    channels : int
        MLGRU width ``e``.
    glu_width : int
        GLU width ``m``.
    fan_in : int
        Fan-in of the BitLinear front end.

    Members
    -------
    cell_in, cell_out, lower_bound, g_norm_gain, state
        The MLGRU cell's members.
    glu_in, glu_out
        The GLU cell's members.
    front_in, front_codes, front_scale, front_gain, front_static
        The BitLinear front end's members.
    """

    def __init__(self, *, channels: int, glu_width: int, fan_in: int):
        self.cell = MlgruCell(channels=channels)
        self.glu = GluCell(width=glu_width)
        self.front = BitLinearFront(fan_in=fan_in)
        for unit in (self.cell, self.glu, self.front):
            unit._MustUse__silence = True  # elaborated with this unit; reading ports alone must not warn
        self._members = {
            "cell_in": (self.cell, "inp"), "cell_out": (self.cell, "out"),
            "lower_bound": (self.cell, "lower_bound"), "g_norm_gain": (self.cell, "g_norm_gain"),
            "state": (self.cell, "state"), "glu_in": (self.glu, "inp"), "glu_out": (self.glu, "out"),
            "front_in": (self.front, "inp"), "front_codes": (self.front, "codes"),
            "front_scale": (self.front, "scale"), "front_gain": (self.front, "gain"),
            "front_static": (self.front, "static"),
        }
        super().__init__({name: unit.signature.members[member]
                          for name, (unit, member) in self._members.items()})

    def elaborate(self, platform):
        m = Module()
        m.submodules.cell, m.submodules.glu, m.submodules.front = self.cell, self.glu, self.front
        for name, (unit, member) in self._members.items():
            outer, inner = getattr(self, name), getattr(unit, member)
            wiring.connect(m, wiring.flipped(outer), inner)
        return m
