"""Spike attention unit: one head of the spike-based linear attention per token, the KV state on chip.

Executes :mod:`models.program.spike_attention` (the spec) for one head of width ``dh`` with ``T`` timesteps and
decay shift ``s``, bit-exactly as :func:`models.program.spike_attention.head_step`. Data flow of one token::

    spikes stream ──► LOAD (T beats, one per timestep): k bits and the clear flag from beat 0; per
                      channel, the v spikes are summed into n_v[j] in [-T, T] and the q spikes into
                      n_q[i] in [0, T] (one small adder per channel, no multiplier)
                      UPDATE (dense, P cells per cycle, pipelined): every state word is read once and
                      written back as saturate(S - (S >> s) + (k[i] ? n_v[j] << ATTN_STATE_FRAC : 0))
                      OUTPUT, per group of P columns: only the rows with n_q[i] > 0 are read (a
                      priority encoder skips the others); row i is added n_q[i] times into the P lane
                      accumulators, one addition per q spike and cycle, then the P words leave saturated
                      to ATTN_OUT_BITS
                      ──► res stream (dh words, column 0 first)

Cycles per token (no stalls): ``T`` (load) ``+ dh*G`` (update) ``+ G * (q_spikes + 2)`` (output
accumulation; ``G * 1`` when the token has no q spike) ``+ dh`` (output words), with ``G = dh / lanes``
column groups and ``q_spikes`` the token's q spike count (``sum_i n_q[i]``); :func:`cycles_per_token` is
that formula. The update pass is dense (every cell decays every token); the output pass costs one cycle
per q spike and column group, so a token with few q spikes is cheap.

Input beat (:func:`token_beats` packs it), ``4 * dh + 1`` bits, low bits first:

====================  =========================================================================
bits                  field
====================  =========================================================================
``[0, dh)``           ``q``: the q spikes of this timestep, channel ``i`` at bit ``i``
``[dh, 3 dh)``        ``v``: the v spikes of this timestep, 2-bit codes as ternary weights
                      (:data:`models.program.numformat.TERNARY_CODES`: ``+1 -> 01``, ``0 -> 00``,
                      ``-1 -> 11``; the reserved ``10`` reads as 0), channel ``j`` at ``[dh + 2j, +2)``
``[3 dh, 4 dh)``      ``k``: the key spikes of the token (read from beat 0 only)
``4 dh``              ``clear``: the state before this token reads as zero — a new sequence
                      (read from beat 0 only)
====================  =========================================================================

State memory (``dh * G`` words of ``lanes`` cells, ``ATTN_STATE_BITS`` each, two's complement): word
``g * dh + i`` holds ``S[i, g*P .. g*P+P-1]``, lane ``p`` in bits ``[p*ATTN_STATE_BITS, (p+1)*...)``;
:func:`state_memory_image` builds it. The state powers up at zero and is kept across tokens; ``rst``
does not clear it (``clear`` does). The ``state`` write port lets a host load a state (context restore)
while ``busy`` is low; writes while ``busy`` is high are ignored.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from models.program import numformat as nf

from hw.fixed import saturate
from hw.ternary_matvec import WeightWriteSignature

__all__ = ["BUNDLED_HEAD", "SpikeAttention", "beat_layout", "token_beats", "state_memory_image", "cycles_per_token",
           "dense_cycles_per_token"]

#: One head of the bundled spike-attention model (``models/configs/bundled_spike_attention.yaml``: head width
#: 64, T 4, head 0's decay shift 2) with 8 lanes: the configuration of the Yosys row and the port fixture.
BUNDLED_HEAD = dict(head_dim=64, timesteps=4, decay_shift=2, lanes=8)


def beat_layout(head_dim: int) -> data.StructLayout:
    """The layout of one ``spikes`` beat (see the module docstring)."""
    return data.StructLayout({
        "q": unsigned(head_dim),
        "v": data.ArrayLayout(unsigned(nf.WEIGHT_CODE_BITS), head_dim),
        "k": unsigned(head_dim),
        "clear": unsigned(1),
    })


def _check_int(name: str, value, lo: int, hi: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        where = f"at least {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {where}, not {value}{hint}")
    return int(value)


class SpikeAttention(wiring.Component):
    """One head of the spike-based linear attention, the ``dh x dh`` KV state in on-chip memory.

    Parameters
    ----------
    head_dim : int
        Head width ``dh`` (channels of q, k, v and outputs), at least 1.
    timesteps : int
        Spike timesteps ``T`` (beats per token), at least 1.
    decay_shift : int
        The head's decay shift ``s`` in ``[1, MAX_DECAY_SHIFT]`` (decay ``1 - 2**-s`` per token).
    lanes : int
        State cells updated and output columns accumulated per cycle (P); must divide ``head_dim``.

    Members
    -------
    spikes : In(stream.Signature(beat_layout(head_dim)))
        ``T`` beats per token, timestep 0 first (see the module docstring for the fields).
    res : Out(stream.Signature(signed(ATTN_OUT_BITS)))
        ``head_dim`` output words per token, column 0 first.
    state : In(WeightWriteSignature(depth=head_dim * head_dim / lanes, width=lanes * ATTN_STATE_BITS))
        Host write port into the state memory (honoured while ``busy`` is low).
    busy : Out(1)
        High from the cycle after a token's last beat until its last output word has been taken.
    """

    def __init__(self, *, head_dim: int, timesteps: int = nf.SPIKE_TIMESTEPS, decay_shift: int, lanes: int):
        self.head_dim = _check_int("Head width", head_dim, 1)
        self.timesteps = _check_int("Spike timesteps", timesteps, 1)
        self.decay_shift = _check_int("Decay shift", decay_shift, 1, nf.MAX_DECAY_SHIFT,
                                      ": the state would overflow or never decay")
        self.lanes = _check_int("Lane count", lanes, 1)
        if head_dim % lanes:
            raise ValueError(f"Lane count {lanes} must divide the head width {head_dim}")
        self.groups = head_dim // lanes
        self.state_depth = head_dim * self.groups
        # |sum of dh*T rows| <= dh * T * 2**(ATTN_STATE_BITS-1): the accumulator cannot overflow
        self.acc_bits = max((head_dim * self.timesteps << (nf.ATTN_STATE_BITS - 1)).bit_length() + 1,
                            nf.ATTN_OUT_BITS)
        super().__init__({
            "spikes": In(stream.Signature(beat_layout(head_dim))),
            "res": Out(stream.Signature(signed(nf.ATTN_OUT_BITS))),
            "state": In(WeightWriteSignature(depth=self.state_depth, width=lanes * nf.ATTN_STATE_BITS)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        dh, T, P, G, s = self.head_dim, self.timesteps, self.lanes, self.groups, self.decay_shift
        SB, FRAC = nf.ATTN_STATE_BITS, nf.ATTN_STATE_FRAC

        m.submodules.smem = smem = Memory(shape=data.ArrayLayout(signed(SB), P), depth=self.state_depth, init=[])
        s_wr = smem.write_port()
        s_rd = smem.read_port(domain="sync", transparent_for=(s_wr,))  # ACCUM may read the last word written
        m.d.comb += s_rd.en.eq(0)  # (its reset value is 1) the read data holds unless a word is read

        # ---------------------------------------------------------------- per-token registers
        t = Signal(range(T))                                           # next beat's timestep
        k = Signal(dh)
        clear = Signal()
        n_v = [Signal(range(-T, T + 1), name=f"n_v{j}") for j in range(dh)]
        n_q = [Signal(range(T + 1), name=f"n_q{i}") for i in range(dh)]

        # ---------------------------------------------------------------- LOAD: count the spikes
        beat = self.spikes.payload
        with m.If(self.spikes.valid & self.spikes.ready):
            first = t == 0
            with m.If(first):
                m.d.sync += [k.eq(beat.k), clear.eq(beat.clear)]
            for j in range(dh):
                code = beat.v[j]
                spike = Mux(code == nf.TERNARY_CODES[1], 1, Mux(code == nf.TERNARY_CODES[-1], -1, 0))
                m.d.sync += n_v[j].eq(Mux(first, 0, n_v[j]) + spike)
                m.d.sync += n_q[j].eq(Mux(first, 0, n_q[j]) + beat.q[j])
            m.d.sync += t.eq(Mux(t == T - 1, 0, t + 1))

        # ---------------------------------------------------------------- UPDATE: decay + key-value adds
        addr = Signal(range(self.state_depth))   # next state word to read: g * dh + i
        row = Signal(range(dh))
        grp = Signal(range(G))
        upd_valid = Signal()                     # a word read last cycle is to be written back now
        upd_addr = Signal.like(addr)
        upd_row = Signal.like(row)
        upd_grp = Signal.like(grp)
        m.d.sync += upd_valid.eq(0)
        k_bits = Array(k[i] for i in range(dh))
        new_words = []
        for p in range(P):
            nv_p = Array(n_v[g * P + p] for g in range(G))[upd_grp]
            old = Mux(clear, 0, s_rd.data[p])
            add = Mux(k_bits[upd_row], nv_p << FRAC, 0)
            new_words.append(saturate(m, old - (old >> s) + add, SB, name=f"new{p}"))
        with m.If(upd_valid):
            m.d.comb += [s_wr.addr.eq(upd_addr), s_wr.data.eq(Cat(*new_words)), s_wr.en.eq(1)]

        # ---------------------------------------------------------------- OUTPUT: q-spike row additions
        mask = Signal(dh)                        # rows of this group still to be read (n_q > 0)
        rem = Signal(range(T + 1))               # additions left with the row on s_rd.data
        gbase = Signal(range(self.state_depth))  # g * dh of the current column group
        lane = Signal(range(P))
        accs = Array(Signal(signed(self.acc_bits), name=f"acc{p}") for p in range(P))
        lowest = Signal(dh)                      # the lowest set bit of mask, one-hot
        m.d.comb += lowest.eq(mask & (-mask)[:dh])
        idx = Signal(range(dh))
        m.d.comb += idx.eq(Cat(*[Cat(*[lowest[b] for b in range(dh) if b >> n & 1]).any()
                                 for n in range(len(idx))]))
        n_q_at = Array(n_q)
        nonzero_q = Cat(*[n != 0 for n in n_q])
        out_word = saturate(m, accs[lane], nf.ATTN_OUT_BITS, name="out_word")
        m.d.comb += self.res.payload.eq(out_word)

        with m.FSM(name="phase"):
            with m.State("LOAD"):
                m.d.comb += self.spikes.ready.eq(1)
                with m.If(self.state.en):
                    m.d.comb += [s_wr.addr.eq(self.state.addr), s_wr.data.eq(self.state.data), s_wr.en.eq(1)]
                with m.If(self.spikes.valid & (t == T - 1)):
                    m.d.sync += [addr.eq(0), row.eq(0), grp.eq(0)]
                    m.next = "UPDATE"
            with m.State("UPDATE"):
                m.d.comb += [self.busy.eq(1), s_rd.addr.eq(addr), s_rd.en.eq(1)]
                m.d.sync += [upd_valid.eq(1), upd_addr.eq(addr), upd_row.eq(row), upd_grp.eq(grp),
                             addr.eq(addr + 1), row.eq(Mux(row == dh - 1, 0, row + 1))]
                with m.If(row == dh - 1):
                    m.d.sync += grp.eq(grp + 1)
                with m.If(addr == self.state_depth - 1):
                    m.d.sync += [mask.eq(nonzero_q), rem.eq(0), gbase.eq(0)]
                    m.next = "ACCUM"
            with m.State("ACCUM"):
                # rem additions of the row on s_rd.data are pending; when the last one happens now, the
                # next row with q spikes is read in the same cycle, so every cycle adds one row.
                m.d.comb += self.busy.eq(1)
                with m.If(rem != 0):
                    m.d.sync += [acc.eq(acc + s_rd.data[p]) for p, acc in enumerate(accs)]
                last = rem <= 1
                with m.If(last & (mask != 0)):
                    m.d.comb += [s_rd.addr.eq(gbase + idx), s_rd.en.eq(1)]
                    m.d.sync += [mask.eq(mask & ~lowest), rem.eq(n_q_at[idx])]
                with m.Elif(rem != 0):
                    m.d.sync += rem.eq(rem - 1)
                with m.If((rem == 0) & (mask == 0)):
                    m.d.sync += lane.eq(0)
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [self.busy.eq(1), self.res.valid.eq(1)]
                with m.If(self.res.ready):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(lane == P - 1):
                        m.d.sync += [acc.eq(0) for acc in accs]
                        with m.If(gbase == (G - 1) * dh):
                            m.next = "LOAD"
                        with m.Else():
                            m.d.sync += [gbase.eq(gbase + dh), mask.eq(nonzero_q), rem.eq(0)]
                            m.next = "ACCUM"
        return m


def _codes(v) -> np.ndarray:
    """Ternary spikes -> 2-bit codes (the weight codes of the spec)."""
    return nf.encode_ternary(np.asarray(v)).astype(np.int64)


def token_beats(k, v_trains, q_trains, clear: bool = False, *, later_k=None, later_clear=None) -> list[int]:
    """The ``T`` ``spikes`` beats of one token: ``k`` (dh,) in {0, 1}, ``v_trains`` (T, dh) in {-1, 0, 1},
    ``q_trains`` (T, dh) in {0, 1} (:func:`models.program.spike_attention.spike_trains`), ``clear`` to start a new
    sequence. ``k`` and ``clear`` go in beat 0; beats 1.. carry ``later_k`` (T-1, dh) and ``later_clear``
    (T-1,) when given (the unit ignores them; testbenches fill them with noise), else zeros."""
    k = np.asarray(k, dtype=np.int64)
    v, q = np.asarray(v_trains), np.asarray(q_trains, dtype=np.int64)
    T, dh = q.shape
    if v.shape != (T, dh) or k.shape != (dh,):
        raise ValueError(f"spike shapes k {k.shape}, v {v.shape}, q {q.shape} do not match (T, dh) = {(T, dh)}")
    for name, x, ok in (("k", k, (0, 1)), ("q", q, (0, 1))):
        if not np.isin(x, ok).all():
            raise ValueError(f"{name} spikes must be 0 or 1, got {sorted(set(np.unique(x).tolist()) - set(ok))}")
    codes = _codes(v)
    ks = [k] + [np.zeros(dh, dtype=np.int64) if later_k is None else np.asarray(later_k[t - 1]) for t in range(1, T)]
    cs = [int(bool(clear))] + [0 if later_clear is None else int(later_clear[t - 1]) for t in range(1, T)]
    weights = [1 << b for b in range(dh)]
    beats = []
    for t in range(T):
        word = sum(int(b) * w for b, w in zip(q[t], weights))
        word |= sum(int(c) << (2 * j) for j, c in enumerate(codes[t])) << dh
        word |= sum(int(b) * w for b, w in zip(ks[t], weights)) << (3 * dh)
        word |= cs[t] << (4 * dh)
        beats.append(word)
    return beats


def state_memory_image(S, lanes: int) -> list[int]:
    """State-memory words of a state ``S`` (dh, dh) of ``ATTN_STATE_BITS``-bit integers: word
    ``g * dh + i`` packs ``S[i, g*P + p]`` in lane ``p`` (two's complement, lane 0 in the low bits)."""
    S = np.asarray(S, dtype=np.int64)
    dh = S.shape[0]
    if S.shape != (dh, dh):
        raise ValueError(f"the state must be a square (dh, dh) array, got shape {S.shape}")
    if dh % lanes:
        raise ValueError(f"Lane count {lanes} must divide the head width {dh}")
    lo, hi = -(1 << (nf.ATTN_STATE_BITS - 1)), (1 << (nf.ATTN_STATE_BITS - 1)) - 1
    if S.min() < lo or S.max() > hi:
        raise ValueError(f"state values must fit {nf.ATTN_STATE_BITS} signed bits, got [{S.min()}, {S.max()}]")
    mask = (1 << nf.ATTN_STATE_BITS) - 1
    words = []
    for g in range(dh // lanes):
        for i in range(dh):
            words.append(sum((int(S[i, g * lanes + p]) & mask) << (p * nf.ATTN_STATE_BITS) for p in range(lanes)))
    return words


def cycles_per_token(head_dim: int, timesteps: int, lanes: int, q_spikes: int) -> int:
    """Cycles of one token without stalls (the formula of the module docstring)."""
    groups = head_dim // lanes
    return timesteps + head_dim * groups + groups * (q_spikes + 2 if q_spikes else 1) + head_dim


def dense_cycles_per_token(head_dim: int, timesteps: int, lanes: int) -> int:
    """The same unit without event skipping: every (timestep, row) pair costs one cycle per column group."""
    return cycles_per_token(head_dim, timesteps, lanes, head_dim * timesteps)
