"""The golden model: a Numba, bit-exact executor of the integer program, token by token, with event counts.

It carries the MLGRU state between tokens like a stateful neurocore and counts every event per layer
(:class:`models.program.events.LayerEvents`, in that module's vocabulary: input events, synaptic ops,
zero-weight slots and bit spikes of every projection input). It is written independently of the torch
integer view — scalar Numba loops instead of array expressions — and the two must give identical
integer logits.

Weight layout (why): each projection is held once, bit-sliced (:mod:`models.program.bitsliced`): two
bit masks per output (+1 and 0 weights, 2 bits per weight), so a projection is popcounts of masks and
activation bit planes, with no weight decode and no multiply, blocks of outputs over
``numba.get_num_threads()`` threads. That kernel does dense work; the event counts are those of the
event-driven hardware (each input event reads its packed 2-bit synapse row), computed from the
quantised activations and the weights' per-input non-zero counts, as the torch integer view's are.
"""

from __future__ import annotations

import copy
from collections import namedtuple

import numba
import numpy as np

from models.program import numformat as nf
from models.program.bitsliced import BLOCK, WORD, BitslicedWeights, accumulate_block, compiled, planes, popcount
from models.program.events import LayerEvents
from models.program.integer_program import IntegerProgram, Projection
from models.program.spike_attention import head_step, spike_counts_int, spike_trains

__all__ = ["DYNAMIC_COUNTS", "GoldenModel"]

_SIG = nf.SIGMOID_TABLE.astype(np.int64)
_RSQ = nf.RSQRT_TABLE.astype(np.int64)
_SIG_SHIFT = nf.OUT_FRAC - nf.SIGMOID_STEP_BITS
_SIG_LAST = len(nf.SIGMOID_TABLE) - 1


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
    """Set bits of ``0 <= v < 2**63``: the bit spikes of a value of magnitude ``v``
    (:func:`models.program.events.bit_spikes`)."""
    return popcount(v)


@numba.njit(cache=True, inline="always")
def _bitlen(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def _silu(y):
    return _rshift(y * _sigmoid(y), nf.GATE_FRAC)


@numba.njit(cache=True, nogil=True)
def _rsqrt(ss):
    e = _bitlen(ss) - 16
    if e & 1:
        e += 1
    q = ss >> e if e >= 0 else ss << (-e)
    idx = (q >> 8) - 64
    lo = _RSQ[idx]
    mant = lo + _rshift((_RSQ[idx + 1] - lo) * (q & 0xFF), 8)
    return mant, nf.RSQRT_TABLE_BITS + 4 + (e >> 1)


@numba.njit(cache=True, nogil=True)
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
#: The counts a projection's input adds, in the order of the ``ev`` rows of the compiled functions.
DYNAMIC_COUNTS = ("input_events", "synaptic_ops", "weight_bytes_read", "bit_spikes", "zero_weight_slots")


@numba.njit(cache=True, nogil=True)
def _sparsify(x, threshold, topk, hist):
    """The spec's input sparsity (:func:`models.program.numformat.sparsify_codes`) on codes ``x`` in place, by a
    magnitude histogram ``hist`` (scratch, 129 entries): codes below ``threshold`` zeroed, then all but the
    ``topk`` largest magnitudes, ties kept in index order (``topk`` 0: off)."""
    n = x.shape[0]
    if threshold > 1:
        for j in range(n):
            a = -x[j] if x[j] < 0 else x[j]
            if a < threshold:
                x[j] = 0
    if topk <= 0 or topk >= n:
        return
    hist[:] = 0
    for j in range(n):
        hist[-x[j] if x[j] < 0 else x[j]] += 1
    above = 0  # codes of magnitude above ``cut``
    cut = hist.shape[0] - 1
    while cut > 0 and above + hist[cut] < topk:
        above += hist[cut]
        cut -= 1
    if cut == 0:
        return  # fewer than topk non-zero codes
    ties = topk - above  # codes of magnitude ``cut`` kept, the first ones by index
    for j in range(n):
        a = -x[j] if x[j] < 0 else x[j]
        if a < cut:
            x[j] = 0
        elif a == cut:
            if ties > 0:
                ties -= 1
            else:
                x[j] = 0


@numba.njit(cache=True, nogil=True)
def _quantise(u, gain, row_nnz, fan_out, mult_s, shift_s, ss, k, sparsity, xq, x, q, ev):
    """The front end of one BitLinear: absmax int8 codes ``x`` of ``u * gain`` (with the input ``sparsity``
    ``(threshold, topk)`` of the spec applied, ``xq`` its scratch), their bit planes ``q``
    (:func:`models.program.bitsliced.planes`) and the per-token scale. Returns ``(live, sum of u + 128,
    multiplier, shift)``; ``live`` is False for an all-zero input (every output 0). The counts come from the
    codes and the weights' per-input non-zero counts: ``ev`` += the counts of :data:`DYNAMIC_COUNTS`
    (weight bytes: a packed 2-bit synapse row per input event, what an event-driven core reads)."""
    n = u.shape[0]
    # z = u * gain, its max, and the absmax codes through one reciprocal
    m = np.int64(0)
    for j in range(n):
        z = u[j] * gain[j]  # exact: |u * gain| < 2**47
        xq[j] = z
        a = -z if z < 0 else z
        if a > m:
            m = a
    if m == 0:
        return False, np.int64(0), np.int64(0), np.int64(0)
    kz = _bitlen(m) - nf.Z_BITS
    if kz < 0:
        kz = 0
    mk = _rshift(m, kz)
    sq = _bitlen(mk) + nf.RECIP_BITS - 7
    recip = ((np.int64(nf.QUANT_MAX) << sq) + (mk >> 1)) // mk
    for j in range(n):
        x[j] = _sat(_rshift(_rshift(xq[j], kz) * recip, sq), nf.ACT_BITS)
    _sparsify(x, sparsity[0], sparsity[1], xq[:129])
    events = 0
    synops = 0
    bits = 0
    for j in range(n):
        v = x[j]
        live = np.int64(v != 0)
        events += live
        synops += live * row_nnz[j]
        bits += _popcount(-v if v < 0 else v)
    ev[0] += events
    ev[1] += synops
    ev[2] += events * ((fan_out + 3) // 4)
    ev[3] += bits
    ev[4] += events * fan_out - synops  # events x fan-out = ops + slots
    usum = planes(x, q)
    # per-token scale: static * m * 2**-k * rsqrt(ss), rounded to 16 bits
    rm, rs = _rsqrt(ss)
    bm = _bitlen(m) - 16
    if bm < 0:
        bm = 0
    prod = mult_s * rm * _rshift(m, bm)
    bp = _bitlen(prod) - nf.MULTIPLIER_BITS
    if bp < 0:
        bp = 0
    return True, usum, _rshift(prod, bp), shift_s + rs - bm - bp + k


def _project(plus, zero, rowsum, q, usum, mult, shift, acc, out):
    """The ternary accumulation (bit-sliced, blocks of outputs over threads) and the rescale of each block."""
    fan_out = out.shape[0]
    for blk in numba.prange((fan_out + BLOCK - 1) // BLOCK):
        j0 = blk * BLOCK
        j1 = min(fan_out, j0 + BLOCK)
        accumulate_block(plus, zero, rowsum, q, usum, j0, j1, acc)
        a, o = acc[j0:j1], out[j0:j1]
        for j in range(o.shape[0]):
            v = a[j] * mult
            if shift >= 0:
                v = _rshift(v, shift)
            else:
                v = v << min(-shift, nf.MAX_LEFT_SHIFT)
            o[j] = _sat(v, nf.RESID_BITS)


_project_serial = compiled(_project, parallel=False)
_project_parallel = compiled(_project, parallel=True)


@numba.njit(cache=True, nogil=True)
def _scale_vec(x, gain, frac, out):
    for j in range(x.shape[0]):
        out[j] = _sat(_rshift(x[j] * gain[j], frac), nf.RESID_BITS)


@numba.njit(cache=True, nogil=True)
def _mlgru_cell(yi, yf, yg, lb, g_norm_gain, h, v):
    """Gates, state update (in place on ``h``) and the output-gate product ``v``."""
    one = np.int64(1) << nf.GATE_FRAC
    for j in range(h.shape[0]):
        f = lb[j] + _rshift((one - lb[j]) * _sigmoid(yf[j]), nf.GATE_FRAC)
        i = _rshift(_silu(yi[j]) * (one - f), nf.GATE_FRAC)
        h[j] = _sat(_rshift(f * h[j], nf.GATE_FRAC) + i, nf.STATE_BITS)
        gg = _sat(_rshift(yg[j] * g_norm_gain[j], nf.GAIN_FRAC), nf.RESID_BITS)
        v[j] = _sat(_rshift(gg * _silu(h[j]), nf.OUT_FRAC), nf.RESID_BITS)


@numba.njit(cache=True, nogil=True)
def _glu(gu, m, v, act):
    """``v = act(g) * u`` of the gate projection's halves; ``act`` indexes ``numformat.GLU_ACTIVATIONS``
    (0 SiLU, 1 ReLU, 2 ReLU²)."""
    for j in range(m):
        g = gu[j]
        if act == 0:
            a = _silu(g)
        else:
            a = g if g > 0 else np.int64(0)
            if act == 2:
                a = _sat(_rshift(a * a, nf.OUT_FRAC), nf.RESID_BITS)
        v[j] = _sat(_rshift(a * gu[m + j], nf.OUT_FRAC), nf.RESID_BITS)


@numba.njit(cache=True, nogil=True)
def _residual_add(x, y):
    for j in range(x.shape[0]):
        x[j] = _sat(x[j] + y[j], nf.RESID_BITS)


_Store = namedtuple("_Store", "plus zero rowsum row_nnz gain meta out xq x q acc")
_Store.__doc__ = """Every projection of a program in flat arrays: ``meta[p]`` = (mask offset, words, fan_out, fan_in,
output offset, input offset, multiplier, shift, input threshold, input top-k) of projection ``p``; ``out`` holds each projection's
outputs at its output offset; ``xq``, ``x``, ``q``, ``acc`` are scratch."""
_Layers = namedtuple("_Layers", "attn_gain g_norm_gain lower_bound mlp_gain final_gain u v v2 glu")
_Layers.__doc__ = """Per-layer vectors (layers, width) of an MLGRU program, the final norm gain, scratch, and the GLU
activation's index in ``numformat.GLU_ACTIVATIONS``."""


def _store(projections: list[Projection], sparsity: list[tuple[int, int]]) -> _Store:
    """Bit-slice every projection into one :class:`_Store` (the weights are held only there), each with its
    input ``sparsity`` ``(threshold, topk)``."""
    sliced = [BitslicedWeights(p.codes) for p in projections]
    meta = np.zeros((len(projections), 10), dtype=np.int64)
    mo = oo = io = 0
    for i, (p, w) in enumerate(zip(projections, sliced)):
        meta[i] = mo, w.words, p.fan_out, p.fan_in, oo, io, p.multiplier, p.shift, *sparsity[i]
        mo, oo, io = mo + w.plus.size, oo + p.fan_out, io + p.fan_in
    words = max(max(w.words for w in sliced), 3)  # xq doubles as the sparsity histogram (129 entries)
    return _Store(
        plus=np.concatenate([w.plus.ravel() for w in sliced]), zero=np.concatenate([w.zero.ravel() for w in sliced]),
        rowsum=np.concatenate([w.rowsum for w in sliced]),
        row_nnz=np.concatenate([np.count_nonzero(p.codes, axis=0) for p in projections]).astype(np.int64),
        gain=np.concatenate([p.gain for p in projections]).astype(np.int64), meta=meta,
        out=np.zeros(oo, dtype=np.int64), xq=np.zeros(words * WORD, dtype=np.int64),
        x=np.zeros(words * WORD, dtype=np.int64), q=np.zeros(8 * words, dtype=np.int64),
        acc=np.zeros(max(p.fan_out for p in projections), dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _bitlinear(S, p, u, ss, k, parallel, ev):
    """Projection ``p`` of :class:`_Store` ``S`` on ``u`` (with its sum of squares ``ss``, shift ``k``): its
    outputs (a view into ``S.out``); adds its :data:`DYNAMIC_COUNTS` to ``ev``."""
    mo, words, fo, fi, oo, io = S.meta[p, 0], S.meta[p, 1], S.meta[p, 2], S.meta[p, 3], S.meta[p, 4], S.meta[p, 5]
    out = S.out[oo:oo + fo]
    q = S.q[:8 * words].reshape((8, words))
    live, usum, mult, shift = _quantise(u, S.gain[io:io + fi], S.row_nnz[io:io + fi], fo, S.meta[p, 6], S.meta[p, 7],
                                        ss, k, S.meta[p, 8:10], S.xq, S.x[:fi], q, ev)
    if not live:
        out[:] = 0
        return out
    plus = S.plus[mo:mo + words * fo].reshape((words, fo))
    zero = S.zero[mo:mo + words * fo].reshape((words, fo))
    if parallel:
        _project_parallel(plus, zero, S.rowsum[oo:oo + fo], q, usum, mult, shift, S.acc[:fo], out)
    else:
        _project_serial(plus, zero, S.rowsum[oo:oo + fo], q, usum, mult, shift, S.acc[:fo], out)
    return out


@numba.njit(cache=True, nogil=True)
def _project_input(S, p, u, parallel, ev):
    """:func:`_bitlinear` of ``u`` with its own sum of squares."""
    ss, k = _sum_squares(u)
    return _bitlinear(S, p, u, ss, k, parallel, ev)


@numba.njit(cache=True, nogil=True)
def _channel_mixer(S, p, x, gain, u, v2, act, parallel, ev):
    """GLU channel mixer (projections ``p``, ``p + 1``, gate non-linearity ``act``) and its residual add, on
    ``x`` in place."""
    _scale_vec(x, gain, nf.GAIN_FRAC, u)
    gu = _project_input(S, p, u, parallel, ev)
    _glu(gu, v2.shape[0], v2, act)
    _residual_add(x, _project_input(S, p + 1, v2, parallel, ev))


@numba.njit(cache=True, nogil=True)
def _mlgru_layer(S, V, li, x, state, parallel, ev):
    """MLGRU layer ``li`` (projections ``6 li`` .. ``6 li + 5``) on the residual ``x`` in place."""
    p = 6 * li
    u = V.u
    _scale_vec(x, V.attn_gain[li], nf.GAIN_FRAC, u)
    ss, k = _sum_squares(u)
    yi = _bitlinear(S, p, u, ss, k, parallel, ev)
    yf = _bitlinear(S, p + 1, u, ss, k, parallel, ev)
    yg = _bitlinear(S, p + 2, u, ss, k, parallel, ev)
    _mlgru_cell(yi, yf, yg, V.lower_bound[li], V.g_norm_gain[li], state[li], V.v)
    _residual_add(x, _project_input(S, p + 3, V.v, parallel, ev))
    _channel_mixer(S, p + 4, x, V.mlp_gain[li], u, V.v2, V.glu, parallel, ev)


@numba.njit(cache=True, nogil=True)
def _head(S, V, x, parallel, ev):
    """Final norm and ``lm_head`` (the last projection): the logits (a view into ``S.out``)."""
    _scale_vec(x, V.final_gain, nf.GAIN_FRAC, V.u)
    return _project_input(S, S.meta.shape[0] - 1, V.u, parallel, ev)


@numba.njit(cache=True, nogil=True)
def _mlgru_token(S, V, x, state, parallel, ev):
    """One token through every MLGRU layer and ``lm_head`` in one call; ``ev`` (layers + 1, counts)."""
    layers = state.shape[0]
    for li in range(layers):
        _mlgru_layer(S, V, li, x, state, parallel, ev[li])
    return _head(S, V, x, parallel, ev[layers])


@numba.njit(cache=True, nogil=True)
def _mlgru_run(S, V, embedding, tokens, state, parallel, ev, sums, out):
    """:func:`_mlgru_token` over ``tokens`` (valid ids) from ``state``: logits into ``out`` (T, vocab), the
    counts summed into ``sums``, the last token's left in ``ev``."""
    x = np.zeros(embedding.shape[1], dtype=np.int64)
    for t in range(tokens.shape[0]):
        for j in range(x.shape[0]):
            x[j] = np.int64(embedding[tokens[t], j]) << (nf.RESID_FRAC - nf.EMBED_FRAC)
        ev[:] = 0
        out[t] = _mlgru_token(S, V, x, state, parallel, ev)
        sums += ev


def _projection_events(fan_in: int, fan_out: int) -> LayerEvents:
    """The counts of one projection that do not depend on its input."""
    return LayerEvents(dense_macs=fan_in * fan_out, neuron_updates=fan_out,
                       activation_bytes=fan_in + 4 * fan_out)  # int8 codes in, int32 results out


def _with_counts(static: dict, ev: np.ndarray) -> LayerEvents:
    """The counts ``static`` (a :meth:`LayerEvents.as_dict`) plus the :data:`DYNAMIC_COUNTS` of ``ev``."""
    counts = dict(static)
    for f, v in zip(DYNAMIC_COUNTS, ev.tolist()):
        counts[f] += v
    return LayerEvents(**counts)


class _PackedProjection:
    """Projection ``p`` of a :class:`_Store`, callable on its own (the spike-attention layers, tests)."""

    def __init__(self, model: "GoldenModel", p: int):
        self.model, self.p = model, p
        self.fan_in, self.fan_out = (int(v) for v in model._store.meta[p, [3, 2]])

    def __call__(self, u: np.ndarray, ss_k: tuple[int, int], events: LayerEvents) -> np.ndarray:
        """The projection of ``u`` (with its ``(sum of squares, shift)``); adds its counts to ``events``.
        Returns a view that the next call of this projection overwrites."""
        ev = np.zeros(len(DYNAMIC_COUNTS), dtype=np.int64)
        out = _bitlinear(self.model._store, self.p, u, np.int64(ss_k[0]), np.int64(ss_k[1]), self.model.parallel, ev)
        for f, v in zip(DYNAMIC_COUNTS, ev):
            setattr(events, f, getattr(events, f) + int(v))
        for f, v in _projection_events(self.fan_in, self.fan_out).as_dict().items():
            setattr(events, f, getattr(events, f) + v)
        return out


class GoldenModel:
    """Token-by-token executor of an :class:`IntegerProgram` with per-layer event counts.

    ``step(token)`` returns the integer logits (Q OUT_FRAC, int64) and leaves the per-layer counts of
    that token in :attr:`last_events` (one :class:`LayerEvents` per layer, then one for ``lm_head``).
    An MLGRU token runs as one compiled call over every layer and ``lm_head``. ``threads``: 1 runs
    every projection on the calling thread; more runs blocks of outputs on Numba's threads
    (``NUMBA_NUM_THREADS``, or ``numba.set_num_threads``); the default is ``NUMBA_NUM_THREADS``.
    Results are identical for any thread count.
    """

    def __init__(self, program: IntegerProgram, threads: int | None = None):
        threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
        if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads must be between 1 and NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, "
                             f"not {threads}; set NUMBA_NUM_THREADS before starting Python for more")
        program.validate()
        self.parallel = threads > 1
        # only the bit-sliced copy of the weights is kept: the caller may drop ``program`` afterwards
        self.vocab_size = program.vocab_size
        self.input_dim, self.intermediate_size = program.input_dim, program.intermediate_size
        self.embedding = np.ascontiguousarray(program.embedding, dtype=np.int16)
        self.projections = program.projections
        projs = [layer.proj[n] for layer in program.layers for n in self.projections] + [program.lm_head]
        sparsity = [program.sparsity(n) for _ in program.layers for n in self.projections] + [program.sparsity("lm_head")]
        self._store = _store(projs, sparsity)
        self._bind()
        stack = lambda name: np.stack([getattr(layer, name) for layer in program.layers]).astype(np.int64)  # noqa: E731
        d, e, m = program.hidden_size, program.input_dim, program.intermediate_size
        self._vectors = _Layers(stack("attn_gain"), stack("g_norm_gain"), stack("lower_bound"), stack("mlp_gain"),
                                program.final_gain.astype(np.int64), np.zeros(d, dtype=np.int64),
                                np.zeros(e, dtype=np.int64), np.zeros(m, dtype=np.int64),
                                np.int64(nf.GLU_ACTIVATIONS.index(program.glu_activation)))
        self.token_mixer, self.timesteps = program.token_mixer, program.timesteps
        self.decay_shifts = list(program.decay_shifts)
        heads = program.num_heads
        dh = program.input_dim // heads
        #: spike attention KV state per layer and head, Q ATTN_STATE_FRAC (unused by MLGRU)
        self.attn_state = np.zeros((len(program.layers), heads, dh, dh) if self.token_mixer == "spike_attention"
                                   else (0, 0, 0, 0), dtype=np.int64)
        self.state = np.zeros((len(program.layers), e), dtype=np.int64)
        # the counts that do not depend on the input, per layer and for the head
        mixer = (LayerEvents(state_bytes_read=heads * dh * dh * nf.ATTN_STATE_BITS // 8,
                             state_bytes_written=heads * dh * dh * nf.ATTN_STATE_BITS // 8)
                 if self.token_mixer == "spike_attention" else
                 LayerEvents(state_updates=e, state_bytes_read=e * nf.STATE_BITS // 8,
                             state_bytes_written=e * nf.STATE_BITS // 8, nonlinear_evals=3 * e))  # sigmoid(f), SiLU(i, h)
        self._static = [sum((_projection_events(p.fan_in, p.fan_out) for p in layer.values()),
                            mixer + LayerEvents(nonlinear_evals=m + 4)).as_dict() for layer in self.layers]  # SiLU(g), 4 rsqrt
        self._static_head = (_projection_events(self.lm_head.fan_in, self.lm_head.fan_out)
                             + LayerEvents(nonlinear_evals=1)).as_dict()
        self._ev = np.zeros((len(program.layers) + 1, len(DYNAMIC_COUNTS)), dtype=np.int64)
        self.last_events: list[LayerEvents] = []
        self.batch_events: list[LayerEvents] = []

    def _bind(self) -> None:
        """Callable handles on this model's projections: :attr:`layers` (a dict per layer) and :attr:`lm_head`."""
        n, last = len(self.projections), self._store.meta.shape[0] - 1
        self.layers = [{name: _PackedProjection(self, li * n + j) for j, name in enumerate(self.projections)}
                       for li in range(last // n)]
        self.lm_head = _PackedProjection(self, last)

    def fork(self, threads: int = 1) -> "GoldenModel":
        """A model sharing this one's weights, with its own zero state and scratch (one per Python thread)."""
        g = copy.copy(self)
        S, V = self._store, self._vectors
        g._store = S._replace(**{f: np.zeros_like(getattr(S, f)) for f in ("out", "xq", "x", "q", "acc")})
        g._vectors = V._replace(**{f: np.zeros_like(getattr(V, f)) for f in ("u", "v", "v2")})
        g.state, g.attn_state, g._ev = np.zeros_like(self.state), np.zeros_like(self.attn_state), np.zeros_like(self._ev)
        g.parallel, g.last_events = threads > 1, []
        g._bind()
        return g

    def run_batch(self, rows, threads: int | None = None) -> np.ndarray:
        """Logits (B, T, vocab) of each row of token ids (B, T), every row from the zero state, rows over
        ``threads`` Python threads (default ``NUMBA_NUM_THREADS``), each a :meth:`fork` on one core: the same
        integers as :meth:`run` row by row, for any thread count. Leaves this model's state untouched; the
        event counts summed over every row are left in :attr:`batch_events`."""
        from concurrent.futures import ThreadPoolExecutor

        rows = [list(map(int, r)) for r in rows]
        threads = max(1, min(len(rows), numba.config.NUMBA_NUM_THREADS if threads is None else threads))
        out = np.zeros((len(rows), len(rows[0]) if rows else 0, self.vocab_size), dtype=np.int64)
        sums = [[LayerEvents() for _ in range(len(self.layers) + 1)] for _ in range(threads)]

        def work(i: int) -> None:
            g = self.fork()
            for r in range(i, len(rows), threads):
                g.reset()
                out[r], ev = g.run(rows[r])
                sums[i] = [a + b for a, b in zip(sums[i], ev)]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        #: the counts of the last :meth:`run_batch`, per layer then ``lm_head``, summed over every row's tokens
        self.batch_events = [sum(col, LayerEvents()) for col in zip(*sums)]
        return out

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
        """Bytes of weights held (one copy: bit masks, row sums, per-input synapse counts)."""
        S = self._store
        return S.plus.nbytes + S.zero.nbytes + S.rowsum.nbytes + S.row_nnz.nbytes

    def layer_step(self, li: int, x: np.ndarray) -> LayerEvents:
        """Run layer ``li`` on the residual ``x`` (int64, Q RESID_FRAC, updated in place) with its state;
        returns the layer's event counts. The RTL layer top is compared against exactly this."""
        ev = self._ev[li]
        ev[:] = 0
        if self.token_mixer == "spike_attention":
            extra = self._spike_layer(li, x, ev)
        else:
            _mlgru_layer(self._store, self._vectors, li, x, self.state, self.parallel, ev)
            extra = LayerEvents()
        return _with_counts(self._static[li], ev) + extra

    def _spike_layer(self, li: int, x: np.ndarray, ev: np.ndarray) -> LayerEvents:
        """Spike-attention layer ``li`` on ``x`` in place: q/k/v projections, spike counts, one :func:`head_step`
        per head, ``o_proj`` and the channel mixer; returns the attention's counts."""
        S, V, T, n = self._store, self._vectors, self.timesteps, len(self.projections)
        p = li * n
        u = V.u
        _scale_vec(x, V.attn_gain[li], nf.GAIN_FRAC, u)
        ss, k = _sum_squares(u)
        nq = spike_counts_int(_bitlinear(S, p, u, ss, k, self.parallel, ev), 0, T)
        nk = spike_counts_int(_bitlinear(S, p + 1, u, ss, k, self.parallel, ev), 0, 1)
        nv = spike_counts_int(_bitlinear(S, p + 2, u, ss, k, self.parallel, ev), -T, T)
        state = self.attn_state[li]
        heads, dh = state.shape[0], state.shape[1]
        att = LayerEvents()
        for h in range(heads):
            c = slice(h * dh, (h + 1) * dh)
            o, aev = head_step(state[h], self.decay_shifts[h], nk[c], spike_trains(nv[c], T), spike_trains(nq[c], T))
            V.v[c] = o
            att.spikes += aev.spikes
            att.attention_ops += aev.kv_adds + aev.out_adds
            att.state_updates += aev.state_updates
        _residual_add(x, _project_input(S, p + 3, V.v, self.parallel, ev))
        _channel_mixer(S, p + 4, x, V.mlp_gain[li], u, V.v2, V.glu, self.parallel, ev)
        return att

    def embed(self, token: int) -> np.ndarray:
        """The residual stream entering layer 0 for ``token`` (int64, Q RESID_FRAC)."""
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token} is outside the vocabulary [0, {self.vocab_size})")
        return self.embedding[token].astype(np.int64) << (nf.RESID_FRAC - nf.EMBED_FRAC)

    def head(self, x: np.ndarray) -> tuple[np.ndarray, LayerEvents]:
        """Final norm and ternary ``lm_head`` on the residual ``x``: (integer logits, events)."""
        ev = self._ev[-1]
        ev[:] = 0
        logits = _head(self._store, self._vectors, x, self.parallel, ev).copy()
        return logits, _with_counts(self._static_head, ev)

    def step(self, token: int) -> np.ndarray:
        """Run one token; returns its integer logits (a fresh array)."""
        x = self.embed(token)
        if self.token_mixer == "spike_attention":
            stats = [self.layer_step(li, x) for li in range(len(self.layers))]
            logits, ev = self.head(x)
            self.last_events = stats + [ev]
            return logits
        self._ev[:] = 0
        logits = _mlgru_token(self._store, self._vectors, x, self.state, self.parallel, self._ev).copy()
        self.last_events = [_with_counts(s, ev) for s, ev in zip(self._static + [self._static_head], self._ev)]
        return logits

    def run(self, tokens) -> tuple[np.ndarray, list[LayerEvents]]:
        """Run a sequence from the current state; returns (logits (T, vocab), summed events per layer). An
        MLGRU sequence runs as one compiled call; :attr:`last_events` are its last token's."""
        out = np.zeros((len(tokens), self.vocab_size), dtype=np.int64)
        if self.token_mixer == "spike_attention" or not len(tokens):
            totals = [LayerEvents() for _ in range(len(self.layers) + 1)]
            for t, tok in enumerate(tokens):
                out[t] = self.step(int(tok))
                totals = [a + b for a, b in zip(totals, self.last_events)]
            return out, totals
        ids = np.asarray(tokens, dtype=np.int64)
        for tok in (ids.min(), ids.max()):
            self.embed(int(tok))  # the vocabulary check, before any compute
        sums = np.zeros_like(self._ev)
        _mlgru_run(self._store, self._vectors, self.embedding, ids, self.state, self.parallel, self._ev, sums, out)
        static = self._static + [self._static_head]
        self.last_events = [_with_counts(s, ev) for s, ev in zip(static, self._ev)]
        return out, [_with_counts({f: v * len(ids) for f, v in s.items()}, ev) for s, ev in zip(static, sums)]
