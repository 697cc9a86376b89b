"""The golden model: a Numba, event-driven, bit-exact executor of the integer program, token by token.

It carries the MLGRU state between tokens like a stateful neurocore and counts every event per layer
(:class:`models.program.events.LayerEvents`, in that module's vocabulary: input events, synaptic ops,
zero-weight slots and bit spikes of every projection input). It is written independently of the torch
integer view — scalar Numba loops instead of array expressions — and the two must give identical
integer logits.

Weight layout (why): each projection is held once, as 2-bit codes packed four to a byte in
*input-major, plane-strided* order: row ``k`` (one per input neuron) holds every synapse that input
drives, and byte ``b`` of a row holds the codes of outputs ``b``, ``b + B``, ``b + 2B``, ``b + 3B``
(``B = ceil(fan_out / 4)``) in bit pairs 0-1, 2-3, 4-5, 6-7. An input event (non-zero activation)
therefore reads one contiguous row — zero activations read nothing — and unpacking bit pair ``p``
across the row yields a contiguous run of outputs, a loop the compiler vectorizes.
"""

from __future__ import annotations

import numba
import numpy as np

from models.program import numformat as nf
from models.program.events import LayerEvents
from models.program.integer_program import IntegerProgram, Projection
from models.program.spike_attention import head_step, spike_counts_int, spike_trains

__all__ = ["pack_codes", "GoldenModel"]

_SIG = nf.SIGMOID_TABLE.astype(np.int64)
_RSQ = nf.RSQRT_TABLE.astype(np.int64)
_SIG_SHIFT = nf.OUT_FRAC - nf.SIGMOID_STEP_BITS
_SIG_LAST = len(nf.SIGMOID_TABLE) - 1


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Ternary ``codes`` (fan_out, fan_in) int8 → packed (fan_in, ceil(fan_out/4)) uint8, plane-strided."""
    fan_out, fan_in = codes.shape
    b = -(-fan_out // 4)
    padded = np.zeros((4 * b, fan_in), dtype=np.int8)
    padded[:fan_out] = codes
    c = nf.encode_ternary(padded).reshape(4, b, fan_in)  # plane p, byte b, input k
    packed = c[0] | (c[1] << 2) | (c[2] << 4) | (c[3] << 6)
    return np.ascontiguousarray(packed.T.astype(np.uint8))


# ------------------------------------------------------------------------------ scalar spec ops
@numba.njit(cache=True, inline="always")
def _rshift(v, s):
    if s <= 0:
        return v
    half = np.int64(1) << (s - 1)
    if v < 0:
        return -((-v + half) >> s)
    return (v + half) >> s


@numba.njit(cache=True, inline="always")
def _sat(v, bits):
    hi = (np.int64(1) << (bits - 1)) - 1
    lo = -hi - 1
    return lo if v < lo else (hi if v > hi else v)


@numba.njit(cache=True, inline="always")
def _popcount(v):
    """Set bits of ``0 <= v < 2**63``, branch-free: the bit spikes of a value of magnitude ``v``
    (:func:`models.program.events.bit_spikes`)."""
    v = v - ((v >> 1) & 0x5555555555555555)
    v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0F
    return (v * 0x0101010101010101) >> 56  # byte sums gather in the top byte (< 64: the sign bit stays 0)


@numba.njit(cache=True, inline="always")
def _bitlen(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@numba.njit(cache=True)
def _sigmoid(y):
    pos = y + (np.int64(nf.SIGMOID_RANGE) << nf.OUT_FRAC)
    top = np.int64(_SIG_LAST) << _SIG_SHIFT
    pos = 0 if pos < 0 else (top if pos > top else pos)
    idx = pos >> _SIG_SHIFT
    if idx > _SIG_LAST - 1:
        idx = _SIG_LAST - 1
    frac = pos - (idx << _SIG_SHIFT)
    lo = _SIG[idx]
    return lo + _rshift((_SIG[idx + 1] - lo) * frac, _SIG_SHIFT)


@numba.njit(cache=True)
def _silu(y):
    return _rshift(y * _sigmoid(y), nf.GATE_FRAC)


@numba.njit(cache=True)
def _rsqrt(ss):
    e = _bitlen(ss) - 16
    if e & 1:
        e += 1
    q = ss >> e if e >= 0 else ss << (-e)
    idx = (q >> 8) - 64
    lo = _RSQ[idx]
    mant = lo + _rshift((_RSQ[idx + 1] - lo) * (q & 0xFF), 8)
    return mant, nf.RSQRT_TABLE_BITS + 4 + (e >> 1)


@numba.njit(cache=True)
def _sum_squares(u):
    mu = 0
    for v in u:
        a = -v if v < 0 else v
        if a > mu:
            mu = a
    k = _bitlen(mu) - nf.SS_BITS
    if k < 0:
        k = 0
    ss = np.int64(0)
    for v in u:
        w = _rshift(v, k)
        ss += w * w
    return ss, k


# ------------------------------------------------------------------------------ BitLinear
@numba.njit(cache=True, inline="always")
def _weight(byte, sh):
    """The weight in bit pair ``sh`` of a packed byte: code 01 → +1, 11 → -1, 00 and 10 → 0 (int16)."""
    c = np.int16((byte >> sh) & 3)
    return (c & np.int16(1)) * (np.int16(1) - (c & np.int16(2)))


@numba.njit(cache=True)
def _bitlinear(u, gain, packed, row_nnz, fan_out, mult_s, shift_s, ss, k, xq, ev_idx, ev_val, acc16, acc,
               out, ev):
    """One BitLinear, event-driven. ``ev`` (int64[4]) += input events, synaptic ops, weight bytes read, bit spikes."""
    n = u.shape[0]
    nb = packed.shape[1]
    # z = u * gain, its max, and the absmax codes through one reciprocal
    m = np.int64(0)
    for j in range(n):
        z = u[j] * gain[j]  # exact: |u * gain| < 2**47
        xq[j] = z
        a = -z if z < 0 else z
        if a > m:
            m = a
    for j in range(4 * nb):
        acc[j] = 0
    if m == 0:
        for j in range(fan_out):
            out[j] = 0
        return
    kz = _bitlen(m) - nf.Z_BITS
    if kz < 0:
        kz = 0
    mk = _rshift(m, kz)
    sq = _bitlen(mk) + nf.RECIP_BITS - 7
    recip = ((np.int64(nf.QUANT_MAX) << sq) + (mk >> 1)) // mk
    # the input events: non-zero codes, in input order
    events = 0
    synops = 0
    bits = 0
    for j in range(n):
        x = _sat(_rshift(_rshift(xq[j], kz) * recip, sq), nf.ACT_BITS)
        if x != 0:
            ev_idx[events] = j
            ev_val[events] = x
            events += 1
            synops += row_nnz[j]
            bits += _popcount(-x if x < 0 else x)
    # each event adds ±x to the outputs its row reaches; int16 partial sums (|sum| <= 127 * 256 < 2**15)
    # are flushed to the int32 accumulators every 256 events, so the inner loop runs on 16-bit lanes
    e0 = 0
    while e0 < events:
        e1 = min(events, e0 + 256)
        for j in range(4 * nb):
            acc16[j] = 0
        e = e0
        while e + 4 <= e1:  # four events per pass: one accumulator load/store per four products
            r0, r1, r2, r3 = packed[ev_idx[e]], packed[ev_idx[e + 1]], packed[ev_idx[e + 2]], packed[ev_idx[e + 3]]
            x0, x1 = np.int16(ev_val[e]), np.int16(ev_val[e + 1])
            x2, x3 = np.int16(ev_val[e + 2]), np.int16(ev_val[e + 3])
            for p in range(4):
                base = p * nb
                sh = 2 * p
                for b in range(nb):
                    acc16[base + b] += (x0 * _weight(r0[b], sh) + x1 * _weight(r1[b], sh)
                                        + x2 * _weight(r2[b], sh) + x3 * _weight(r3[b], sh))
            e += 4
        while e < e1:
            r0 = packed[ev_idx[e]]
            x0 = np.int16(ev_val[e])
            for p in range(4):
                base = p * nb
                sh = 2 * p
                for b in range(nb):
                    acc16[base + b] += x0 * _weight(r0[b], sh)
            e += 1
        for j in range(4 * nb):
            acc[j] += acc16[j]
        e0 = e1
    ev[0] += events
    ev[1] += synops
    ev[2] += events * nb
    ev[3] += bits
    # per-token scale: static * m * 2**-k * rsqrt(ss), rounded to 16 bits
    rm, rs = _rsqrt(ss)
    bm = _bitlen(m) - 16
    if bm < 0:
        bm = 0
    prod = mult_s * rm * _rshift(m, bm)
    bp = _bitlen(prod) - nf.MULTIPLIER_BITS
    if bp < 0:
        bp = 0
    mult = _rshift(prod, bp)
    shift = shift_s + rs - bm - bp + k
    for j in range(fan_out):
        v = np.int64(acc[j]) * mult
        if shift >= 0:
            v = _rshift(v, shift)
        else:
            v = v << min(-shift, nf.MAX_LEFT_SHIFT)
        out[j] = _sat(v, nf.RESID_BITS)


@numba.njit(cache=True)
def _scale_vec(x, gain, frac, out):
    for j in range(x.shape[0]):
        out[j] = _sat(_rshift(x[j] * gain[j], frac), nf.RESID_BITS)


@numba.njit(cache=True)
def _mlgru_cell(yi, yf, yg, lb, g_norm_gain, h, v):
    """Gates, state update (in place on ``h``) and the output-gate product ``v``."""
    one = np.int64(1) << nf.GATE_FRAC
    for j in range(h.shape[0]):
        f = lb[j] + _rshift((one - lb[j]) * _sigmoid(yf[j]), nf.GATE_FRAC)
        i = _rshift(_silu(yi[j]) * (one - f), nf.GATE_FRAC)
        h[j] = _sat(_rshift(f * h[j], nf.GATE_FRAC) + i, nf.STATE_BITS)
        gg = _sat(_rshift(yg[j] * g_norm_gain[j], nf.GAIN_FRAC), nf.RESID_BITS)
        v[j] = _sat(_rshift(gg * _silu(h[j]), nf.OUT_FRAC), nf.RESID_BITS)


@numba.njit(cache=True)
def _glu(gu, m, v):
    for j in range(m):
        v[j] = _sat(_rshift(_silu(gu[j]) * gu[m + j], nf.OUT_FRAC), nf.RESID_BITS)


@numba.njit(cache=True)
def _residual_add(x, y):
    for j in range(x.shape[0]):
        x[j] = _sat(x[j] + y[j], nf.RESID_BITS)


class _PackedProjection:
    """A projection as the golden model holds it: packed codes, per-row synapse counts, gain, scale."""

    def __init__(self, p: Projection):
        self.packed = pack_codes(p.codes)
        self.row_nnz = np.count_nonzero(p.codes, axis=0).astype(np.int64)
        self.gain = np.ascontiguousarray(p.gain, dtype=np.int64)
        self.fan_in, self.fan_out = p.fan_in, p.fan_out
        self.multiplier, self.shift = np.int64(p.multiplier), np.int64(p.shift)
        self.acc = np.zeros(4 * self.packed.shape[1], dtype=np.int32)
        self.acc16 = np.zeros(4 * self.packed.shape[1], dtype=np.int16)
        self.xq = np.zeros(self.fan_in, dtype=np.int64)
        self.ev_idx = np.zeros(self.fan_in, dtype=np.int64)
        self.ev_val = np.zeros(self.fan_in, dtype=np.int64)
        self.out = np.zeros(self.fan_out, dtype=np.int64)
        self.ev = np.zeros(4, dtype=np.int64)

    def __call__(self, u: np.ndarray, ss_k: tuple[int, int], events: LayerEvents) -> np.ndarray:
        """The projection of ``u`` (with its ``(sum of squares, shift)``); adds its counts to ``events``."""
        d = self.ev
        d[:] = 0
        _bitlinear(u, self.gain, self.packed, self.row_nnz, self.fan_out, self.multiplier, self.shift,
                   ss_k[0], ss_k[1], self.xq, self.ev_idx, self.ev_val, self.acc16, self.acc, self.out, d)
        events.input_events += int(d[0])
        events.synaptic_ops += int(d[1])
        events.weight_bytes_read += int(d[2])
        events.bit_spikes += int(d[3])
        events.zero_weight_slots += int(d[0]) * self.fan_out - int(d[1])  # events x fan-out = ops + slots
        events.dense_macs += self.fan_in * self.fan_out
        events.neuron_updates += self.fan_out
        events.activation_bytes += self.fan_in + 4 * self.fan_out  # int8 codes in, int32 results out
        return self.out


class GoldenModel:
    """Token-by-token executor of an :class:`IntegerProgram` with per-layer event counts.

    ``step(token)`` returns the integer logits (Q OUT_FRAC, int64) and leaves the per-layer counts of
    that token in :attr:`last_events` (one :class:`LayerEvents` per layer, then one for ``lm_head``).
    """

    def __init__(self, program: IntegerProgram):
        program.validate()
        # only the packed copy of the weights is kept: the caller may drop ``program`` afterwards
        self.vocab_size = program.vocab_size
        self.input_dim, self.intermediate_size = program.input_dim, program.intermediate_size
        self.embedding = np.ascontiguousarray(program.embedding, dtype=np.int16)
        self.final_gain = program.final_gain.astype(np.int64)
        self.lm_head = _PackedProjection(program.lm_head)
        self.layers = [{
            "attn_gain": layer.attn_gain.astype(np.int64), "g_norm_gain": layer.g_norm_gain.astype(np.int64),
            "lower_bound": layer.lower_bound.astype(np.int64), "mlp_gain": layer.mlp_gain.astype(np.int64),
            **{n: _PackedProjection(layer.proj[n]) for n in program.projections}} for layer in program.layers]
        self.projections = program.projections
        self.token_mixer, self.timesteps = program.token_mixer, program.timesteps
        self.decay_shifts = list(program.decay_shifts)
        heads = program.num_heads
        dh = program.input_dim // heads
        #: spike attention KV state per layer and head, Q ATTN_STATE_FRAC (unused by MLGRU)
        self.attn_state = np.zeros((len(program.layers), heads, dh, dh) if self.token_mixer == "spike_attention"
                                   else (0, 0, 0, 0), dtype=np.int64)
        d, e, m = program.hidden_size, program.input_dim, program.intermediate_size
        self._u = np.zeros(d, dtype=np.int64)
        self._v = np.zeros(e, dtype=np.int64)
        self._v2 = np.zeros(m, dtype=np.int64)
        self.state = np.zeros((len(program.layers), e), dtype=np.int64)
        self.last_events: list[LayerEvents] = []

    def reset(self) -> None:
        """Zero the recurrent state (a new sequence)."""
        self.state[:] = 0
        self.attn_state[:] = 0

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of the recurrent state (MLGRU ``h`` per layer, spike-attention KV state per layer and head)."""
        return self.state.copy(), self.attn_state.copy()

    def restore(self, snapshot: tuple[np.ndarray, np.ndarray]) -> None:
        """Continue from a :meth:`snapshot` (e.g. another beam's state)."""
        self.state[:], self.attn_state[:] = snapshot

    def weight_bytes(self) -> int:
        """Bytes of packed weights held (one copy)."""
        projs = [self.lm_head] + [L[n] for L in self.layers for n in self.projections]
        return sum(p.packed.nbytes for p in projs)

    def layer_step(self, li: int, x: np.ndarray) -> LayerEvents:
        """Run layer ``li`` on the residual ``x`` (int64, Q RESID_FRAC, updated in place) with its state;
        returns the layer's event counts. The RTL layer top is compared against exactly this."""
        L = self.layers[li]
        e, m = self.input_dim, self.intermediate_size
        ev = LayerEvents()
        u = self._u
        _scale_vec(x, L["attn_gain"], nf.GAIN_FRAC, u)
        ss_k = _sum_squares(u)
        if self.token_mixer == "spike_attention":
            self._spike_mixer(li, u, ss_k, ev)
        else:
            yi = L["i_proj"](u, ss_k, ev).copy()
            yf = L["f_proj"](u, ss_k, ev).copy()
            yg = L["g_proj"](u, ss_k, ev)
            _mlgru_cell(yi, yf, yg, L["lower_bound"], L["g_norm_gain"], self.state[li], self._v)
            ev.state_updates += e
            ev.state_bytes_read += e * nf.STATE_BITS // 8
            ev.state_bytes_written += e * nf.STATE_BITS // 8
            ev.nonlinear_evals += 3 * e  # sigmoid(f), SiLU(i), SiLU(h)
        _residual_add(x, L["o_proj"](self._v, _sum_squares(self._v), ev))
        _scale_vec(x, L["mlp_gain"], nf.GAIN_FRAC, u)
        gu = L["gate_proj"](u, _sum_squares(u), ev)
        _glu(gu, m, self._v2)
        _residual_add(x, L["down_proj"](self._v2, _sum_squares(self._v2), ev))
        ev.nonlinear_evals += m + 4  # SiLU(g) of the GLU, 4 rsqrt
        return ev

    def _spike_mixer(self, li: int, u: np.ndarray, ss_k: tuple[int, int], ev: LayerEvents) -> None:
        """Spike attention of layer ``li``: q/k/v projections, spike counts, one :func:`head_step` per head;
        leaves the o_proj input (Q ATTN_STATE_FRAC) in ``self._v``."""
        L, T = self.layers[li], self.timesteps
        nq = spike_counts_int(L["q_proj"](u, ss_k, ev), 0, T)
        nk = spike_counts_int(L["k_proj"](u, ss_k, ev), 0, 1)
        nv = spike_counts_int(L["v_proj"](u, ss_k, ev), -T, T)
        S = self.attn_state[li]
        heads, dh = S.shape[0], S.shape[1]
        for h in range(heads):
            c = slice(h * dh, (h + 1) * dh)
            o, aev = head_step(S[h], self.decay_shifts[h], nk[c], spike_trains(nv[c], T), spike_trains(nq[c], T))
            self._v[c] = o
            ev.spikes += aev.spikes
            ev.attention_ops += aev.kv_adds + aev.out_adds
            ev.state_updates += aev.state_updates
        cells = heads * dh * dh
        ev.state_bytes_read += cells * nf.ATTN_STATE_BITS // 8
        ev.state_bytes_written += cells * nf.ATTN_STATE_BITS // 8

    def embed(self, token: int) -> np.ndarray:
        """The residual stream entering layer 0 for ``token`` (int64, Q RESID_FRAC)."""
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token} is outside the vocabulary [0, {self.vocab_size})")
        return self.embedding[token].astype(np.int64) << (nf.RESID_FRAC - nf.EMBED_FRAC)

    def head(self, x: np.ndarray) -> tuple[np.ndarray, LayerEvents]:
        """Final norm and ternary ``lm_head`` on the residual ``x``: (integer logits, events)."""
        ev = LayerEvents()
        _scale_vec(x, self.final_gain, nf.GAIN_FRAC, self._u)
        logits = self.lm_head(self._u, _sum_squares(self._u), ev).copy()
        ev.nonlinear_evals += 1
        return logits, ev

    def step(self, token: int) -> np.ndarray:
        """Run one token; returns its integer logits (a fresh array)."""
        x = self.embed(token)
        stats = [self.layer_step(li, x) for li in range(len(self.layers))]
        logits, ev = self.head(x)
        self.last_events = stats + [ev]
        return logits

    def run(self, tokens) -> tuple[np.ndarray, list[LayerEvents]]:
        """Run a sequence from the current state; returns (logits (T, vocab), summed events per layer)."""
        out = np.zeros((len(tokens), self.vocab_size), dtype=np.int64)
        totals = [LayerEvents() for _ in range(len(self.layers) + 1)]
        for t, tok in enumerate(tokens):
            out[t] = self.step(int(tok))
            totals = [a + b for a, b in zip(totals, self.last_events)]
        return out, totals
