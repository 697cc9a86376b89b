"""SimPy system model: neurocores as processes on a 2-D mesh with barrier-synchronised timesteps.

Execution (Loihi's): one timestep per compiled step. At the start of a step the step's source cores run
their neuron phase (accumulator read-out, MLGRU/residual state, table lookups) — each core is a SimPy
process that waits for the step's start event, holds for its phase time and then injects its messages.
A message (one per source core, destination core and step) leaves the core's output port one packet per
``axon_out`` time and is XY-routed (x first, then y) over the router mesh; each directed link, mesh or
chip-to-chip, is reserved first come first served in injection order (wormhole: the head waits for the
link, the link is then busy for the message's packets), so messages that share links contend. At the
destination core a message is integrated in arrival order (input events x synapse rows: synaptic ops;
crossbar cores buffer the inputs and run one bit-serial MVM after the last one, its latency and energy
from the crossbar model, :mod:`sim.crossbar.costs`). The step ends when the
last integration ends (and not before the idle cores have serviced their neurons), then the barrier
synchronisation takes its time and the next step starts.

Decode: a token's steps run one after another (the next token needs this token's sample). Prefill:
prompt tokens are known, so every stage works on a different token in the same timestep; one such
pipelined timestep is simulated with every stage active and the time to first token of a ``P``-token
prompt is ``(P - 1 + steps) x`` that timestep.

Non-linear and element-wise work (sigmoid, SiLU, rsqrt, the MLGRU state update, the products) runs in the
neurocores, or, where the hardware's ``nonlinear_unit`` is ``x86`` (Loihi 1: fixed LIF neurons), on each
chip's embedded x86 cores: a step's elements on a chip are shared by its x86 cores, each element costs
``offload_op`` plus two ``offload_io`` (there and back), and its sources wait for the results before sending;
its energy is the ``offload`` category.

Multicast records (``fanout: multicast``, :mod:`sim.system.compiler`): one record stands for ``ndst`` copies
to consecutive destination cores. The source core still injects one packet per spike per destination core,
copy after copy through its output port, and the energy counts every copy's hops exactly; but a copy is not
routed link by link: it arrives after its injection slot plus its no-contention XY path latency, the step
cannot end before the most loaded mesh or chip link has passed its packets (each copy's packets are added to
the links of its XY path), and a destination integrates its copies work-conservingly (from its first arrival
on, and not before its last arrival plus that copy's work). This keeps the model linear in copies without
storing them (13B on ``loihi1`` sends about 10^9 copies per token).

Spike formats: ``graded`` sends every value of a message in ``ceil(value_bits / payload_bits)`` packets
and each non-zero int8 code reads one synapse row; ``binary`` sends one packet per bit spike (the stage's
measured bit spikes per input event for the int8 codes, :data:`INT32_BIT_SHARE` of the magnitude bits for
int32 values) and each bit spike reads its own axon's synapse row, so synaptic ops scale with bit spikes.

Energy per token = counts x the preset's per-event energies, in the categories of :data:`CATEGORIES`;
static power x chips x token time is its own category, so the breakdown sums to the total. The report
keeps static and dynamic energy apart and names the preset's energy boundary (``chip``, ``board`` or
``system``: what its static power covers). Activation and weight densities are the activity's per stage
when it was measured on this model, otherwise its per-kind values (the report says which).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numba
import numpy as np
import simpy
from tqdm import tqdm

from sim.system.activity import KINDS, Activity
from sim.system.compiler import MSG_CTRL, MSG_RED, MSG_SYN, Mapping
from sim.system.energy import Preset

__all__ = ["CATEGORIES", "INT32_BIT_SHARE", "Report", "SystemModel", "simulate"]

#: Energy categories of a token (joules each; they sum to ``total``).
CATEGORIES = ("synaptic_ops", "neuron_state_updates", "memory", "noc", "chip_to_chip", "adc_dac", "offload", "static")

#: Binary spike format: the share of an int32 value's magnitude bits that are one (residual stream, partial
#: sums, control values). ASSUMED (the golden model counts the bit spikes of the int8 codes only).
INT32_BIT_SHARE = 0.5

_E, _W, _N, _S = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _multicast(t, sx, sy, d0, nd, p, base, col, xs, ys, cols, tx, ty, lat_ew, lat_ns, lat_local, ser, chip_lat,
               chip_ser, axon, g, load_x, load_y):
    """Inject the ``nd`` copies of one multicast record (see the module docstring); returns the port's time."""
    for c in range(d0, d0 + nd):
        head = t + axon
        t += p * axon
        dx, dy = xs[c], ys[c]
        cx = abs(dx // tx - sx // tx)
        cy = abs(dy // ty - sy // ty)
        ew = abs(dx - sx) - cx
        ns = abs(dy - sy) - cy
        lat = ew * lat_ew + ns * lat_ns + (cx + cy) * chip_lat
        if dx == sx and dy == sy:
            lat += lat_local
        bott = axon
        if cx + cy > 0 and chip_ser > bott:
            bott = chip_ser
        elif ew + ns > 0 and ser > bott:
            bott = ser
        arr = head + lat + max(p - 1.0, 0.0) * bott
        w = base + col * cols[c]
        if arr < g[0, c]:       # g: first arrival, last arrival, the last copy's work, total work
            g[0, c] = arr
        if arr >= g[1, c]:
            g[1, c] = arr
            g[2, c] = w
        g[3, c] += w
        if dx > sx:     # east links x .. dx-1 on row sy, then north/south links on column dx
            load_x[0, sy, sx] += p
            load_x[0, sy, dx] -= p
        elif dx < sx:
            load_x[1, sy, dx + 1] += p
            load_x[1, sy, sx + 1] -= p
        if dy > sy:
            load_y[0, dx, sy] += p
            load_y[0, dx, dy] -= p
        elif dy < sy:
            load_y[1, dx, dy + 1] += p
            load_y[1, dx, sy + 1] -= p
    return t


@numba.njit(cache=True, nogil=True)
def _route(t0, port_free, sx, sy, ri, rf, xs, ys, cols, link_free, cf, tx, ty, arrival, ok, g, load_x, load_y):
    """Inject one core's messages in order and XY-route them, reserving links (multicast records: see
    :func:`_multicast`); ``ri`` holds each record's destination and copies, ``rf`` its packets per copy, work
    per copy and work per destination column, ``cf`` the latencies; returns the port's free time."""
    lat_ew, lat_ns, lat_local, ser, chip_lat, chip_ser, axon = cf[0], cf[1], cf[2], cf[3], cf[4], cf[5], cf[6]
    t = max(t0, port_free)
    for i in range(ri.shape[0]):
        p = rf[i, 0]
        if ri[i, 1] > 1:
            t = _multicast(t, sx, sy, ri[i, 0], ri[i, 1], p, rf[i, 1], rf[i, 2], xs, ys, cols, tx, ty, lat_ew, lat_ns,
                           lat_local, ser, chip_lat, chip_ser, axon, g, load_x, load_y)
            ok[i] = False
            continue
        head = t + axon
        t += p * axon
        x, y, dx, dy = sx, sy, xs[ri[i, 0]], ys[ri[i, 0]]
        bott = axon
        if x == dx and y == dy:
            head += lat_local
        while x != dx:
            d = 0 if dx > x else 1
            nx = x + 1 if d == 0 else x - 1
            cross = (x // tx) != (nx // tx)
            lat = chip_lat if cross else lat_ew
            s = chip_ser if cross else ser
            start = max(head, link_free[d, x, y])
            link_free[d, x, y] = start + p * s
            head = start + lat
            if s > bott:
                bott = s
            x = nx
        while y != dy:
            d = 2 if dy > y else 3
            ny = y + 1 if d == 2 else y - 1
            cross = (y // ty) != (ny // ty)
            lat = chip_lat if cross else lat_ns
            s = chip_ser if cross else ser
            start = max(head, link_free[d, x, y])
            link_free[d, x, y] = start + p * s
            head = start + lat
            if s > bott:
                bott = s
            y = ny
        arrival[i] = head + max(p - 1.0, 0.0) * bott
        ok[i] = (x == dx) and (y == dy)
    return t


@numba.njit(cache=True, nogil=True)
def _integrate(order, dst, arrival, work, syn, ok, free, mvm, busy, received):
    """Integrate messages at their destinations in arrival order; returns the last finish time."""
    t_end = 0.0
    n = order.shape[0]
    i = 0
    while i < n:
        c = dst[order[i]]
        t = free[c]
        any_syn = False
        j = i
        while j < n and dst[order[j]] == c:
            m = order[j]
            if ok[m]:
                if arrival[m] > t:
                    t = arrival[m]
                t += work[m]
                busy[c] += work[m]
                any_syn = any_syn or syn[m]
                received[c] += 1
            j += 1
        if any_syn and mvm[c] > 0.0:
            t += mvm[c]
            busy[c] += mvm[c]
        free[c] = t
        if t > t_end:
            t_end = t
        i = j
    return t_end


@numba.njit(cache=True, nogil=True)
def _finish_multicast(free, busy, mvm, g, load_x, load_y, tx, ty, ser, chip_ser, t0):
    """End of a step's multicast copies: each destination's work-conserving finish, the most loaded link's
    floor; clears the accumulators and returns the later of the two."""
    t_end = t0
    for c in range(free.shape[0]):
        if g[1, c] > -1.0:
            t = max(free[c], g[0, c]) + g[3, c]
            if g[1, c] + g[2, c] > t:
                t = g[1, c] + g[2, c]
            t += mvm[c]
            busy[c] += g[3, c] + mvm[c]
            free[c] = t
            if t > t_end:
                t_end = t
            g[0, c] = np.inf
            g[1, c] = -np.inf
            g[2, c] = 0.0
            g[3, c] = 0.0
    worst = 0.0
    for d in range(2):
        for y in range(load_x.shape[1]):
            run = 0.0
            for x in range(load_x.shape[2]):
                run += load_x[d, y, x]
                load_x[d, y, x] = 0.0
                # east link x -> x+1 crosses a chip edge when x+1 is a multiple of tx; west link x -> x-1 when x is
                edge = ((x + 1) % tx == 0) if d == 0 else (x % tx == 0)
                s = chip_ser if edge else ser
                if run * s > worst:
                    worst = run * s
        for x in range(load_y.shape[1]):
            run = 0.0
            for y in range(load_y.shape[2]):
                run += load_y[d, x, y]
                load_y[d, x, y] = 0.0
                edge = ((y + 1) % ty == 0) if d == 0 else (y % ty == 0)
                s = chip_ser if edge else ser
                if run * s > worst:
                    worst = run * s
    return max(t_end, t0 + worst)


@numba.njit(cache=True, nogil=True)
def _copy_hops(src, dst, ndst, xs, ys, tx, ty):
    """Per record: mean E-W hops, N-S hops, chip crossings and local share over its copies."""
    n = src.shape[0]
    out = np.zeros((4, n))
    for i in range(n):
        sx, sy = xs[src[i]], ys[src[i]]
        for c in range(dst[i], dst[i] + ndst[i]):
            dx, dy = xs[c], ys[c]
            cx = abs(dx // tx - sx // tx)
            cy = abs(dy // ty - sy // ty)
            out[0, i] += abs(dx - sx) - cx
            out[1, i] += abs(dy - sy) - cy
            out[2, i] += cx + cy
            out[3, i] += 1.0 if (dx == sx and dy == sy) else 0.0
        for k in range(4):
            out[k, i] /= ndst[i]
    return out


@dataclass
class Report:
    """What one decode token (and a prompt) costs on a mapping."""

    model: str
    preset: str
    estimate: bool
    activity_source: str
    chips: int
    cores: int
    steps_per_token: int
    token_latency_s: float
    tokens_per_s: float
    prompt_tokens: int
    ttft_s: float
    pipelined_step_s: float
    energy_j: dict[str, float]
    energy_per_token_j: float
    static_j: float
    static_range_j: tuple[float, float]
    dynamic_j: float
    offload_elements: float
    offload_unit: str
    energy_boundary: str
    static_source: str
    power_w: float
    prefill_energy_per_token_j: float
    core_utilisation: float
    core_utilisation_max: float
    messages_sent: int
    messages_received: int
    packets_per_token: float
    mean_hops: float
    chip_crossing_packets: float
    slowest_steps: list[tuple[str, float]]
    sim_wall_s: float
    decode_sim_wall_s: float
    analytic_token_latency_s: float
    overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def text(self) -> str:
        """A short human-readable report."""
        tag = " (ESTIMATE preset)" if self.estimate else ""
        e = self.energy_j
        lines = [
            f"model {self.model} on {self.chips} x {self.preset}{tag}: {self.cores} cores, {self.steps_per_token} timesteps/token",
            f"  decode      {self.tokens_per_s:,.1f} tokens/s ({self.token_latency_s * 1e3:.3f} ms/token; closed-form no-contention estimate {self.analytic_token_latency_s * 1e3:.3f} ms)",
            f"  prefill     time to first token for a {self.prompt_tokens}-token prompt {self.ttft_s * 1e3:.2f} ms "
            f"(pipelined timestep {self.pipelined_step_s * 1e6:.2f} us)",
            f"  energy      {self.energy_per_token_j * 1e3:.4f} mJ/token at {self.power_w:.3f} W; prefill {self.prefill_energy_per_token_j * 1e3:.4f} mJ/token",
            f"  static      {self.static_j * 1e3:.4f} mJ/token ({self.static_j / self.energy_per_token_j if self.energy_per_token_j else 0:.0%}) "
            f"inside the {self.energy_boundary} boundary, {self.static_range_j[0] * 1e3:.4f}-{self.static_range_j[1] * 1e3:.4f} "
            f"over the preset's stated static range: {self.static_source}",
            f"  dynamic     {self.dynamic_j * 1e3:.4f} mJ/token: "
            + ", ".join(f"{k} {v * 1e3:.4f}" for k, v in e.items() if k not in ("total", "static")) + " (mJ)",
            f"  non-linear  {self.offload_elements:,.0f} element-wise/non-linear evaluations per token in the {self.offload_unit}"
            + (f", {e['offload'] * 1e3:.4f} mJ with their traffic" if self.offload_unit != "neurocores" else ""),
            f"  cores       utilisation mean {self.core_utilisation:.1%}, max {self.core_utilisation_max:.1%}",
            f"  network     {self.messages_sent:,} messages sent / {self.messages_received:,} received per token, "
            f"{self.packets_per_token:,.0f} packets, {self.mean_hops:.2f} mean hops, {self.chip_crossing_packets:,.0f} packet chip crossings",
            "  slowest     " + ", ".join(f"{n} {t * 1e6:.1f} us" for n, t in self.slowest_steps),
            f"  activity    {self.activity_source}",
            f"  simulated in {self.sim_wall_s:.2f} s",
        ]
        return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def _periphery_costs():
    """The crossbar periphery cost table, loaded once per process."""
    from sim.crossbar.costs import PeripheryCosts
    return PeripheryCosts.load()


class SystemModel:
    """Timing and energy of a :class:`~sim.system.compiler.Mapping` under a :class:`~sim.system.energy.Preset`."""

    def __init__(self, mapping: Mapping, preset: Preset, activity: Activity, adc_bits: int = 8):
        mapping.validate()
        self.adc_bits = adc_bits  # crossbar ADC resolution (costed by sim.crossbar.costs)
        self.mapping, self.preset, self.activity = mapping, preset, activity
        hw = self.hw = preset.hardware
        if mapping.hardware.to_dict() != hw.to_dict():
            raise ValueError(f"mapping was compiled for {mapping.preset} {mapping.hardware.to_dict()} but the preset "
                             f"gives {hw.to_dict()}: recompile, or simulate with the same preset and --set overrides")
        cores, msgs = mapping.cores, mapping.messages
        self.n = mapping.n_cores
        st_kind = np.asarray([s.kind for s in mapping.stages])
        pc = np.asarray([s.proj_count for s in mapping.stages])
        self.core_kind = st_kind[cores["stage"]]
        cols = (cores["col1"] - cores["col0"]) * pc[cores["stage"]]
        self.cols = cols.astype(np.float64)
        self.xbar = cores["xbar_arrays"] > 0

        # ---- per message counts
        kind = msgs["kind"]
        vals = msgs["values"].astype(np.float64)
        dst = msgs["dst"]
        self.ndst = msgs["ndst"]
        self.multicast = bool(len(self.ndst)) and int(self.ndst.max()) > 1
        copies = self.ndst.astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(self.cols)])
        cols_sum = csum[dst + self.ndst] - csum[dst]     # columns of all a record's destinations
        self.per_stage = activity.per_stage_for(mapping.model)
        per_stage = [activity.for_stage(s.name, s.kind, mapping.model) if s.kind in KINDS else (0.0, 0.0, 0.0)
                     for s in mapping.stages]
        syn = kind == MSG_SYN
        self.binary = hw.spike_format == "binary"
        if self.binary and any(b is None for _, _, b in per_stage):
            raise ValueError("the binary spike format needs bit spikes per input event, which this activity lacks: "
                             "measure it with `nmllm activity` (or simulate a shape on its assumed activity)")
        st_dens = np.asarray([(a, w, b or 0.0) for a, w, b in per_stage]).reshape(-1, 3)
        dens, wdens, bits = (st_dens[cores["stage"][dst], i] for i in range(3))
        self.values = vals
        # per copy: packets, input events and work (``work_col`` per destination column); totals over copies below
        if self.binary:   # one packet per bit spike: the int8 codes' measured ones, the int32 values' assumed ones
            self.copy_packets = vals * np.where(syn, dens * bits, (hw.value_bits - 1) * INT32_BIT_SHARE)
            events = np.where(syn, self.copy_packets, 0.0)
            received = self.copy_packets
        else:
            vd = np.where((kind == MSG_CTRL) | (kind == MSG_RED), 1.0, activity.value_density)
            self.copy_packets = vals * vd * hw.packets_per_value
            events = np.where(syn, vals * dens, 0.0)
            received = vals
        self.packets = self.copy_packets * copies
        self.received = received * copies
        slots = events * cols_sum
        synops = slots * wdens
        digital = ~self.xbar[dst]
        self.syn = syn
        self.synops = synops
        self.slots_digital = np.where(digital, slots, 0.0)
        p = preset
        self.work_base = received * p.ns("input_event")
        self.work_col = np.where(digital, events * (wdens * p.ns("synaptic_op") + p.ns("synapse_slot")), 0.0)
        self.work = self.work_base + self.work_col * self.cols[dst]    # one copy's (a unicast record's) work
        # crossbar: one bit-serial MVM per receiving core and token, costed by the crossbar model
        self.mvm, self.mvm_pj = self._crossbar_mvm(cores, pc)

        # ---- hops (XY: every x hop, then every y hop; chip boundaries every tiles_x / tiles_y routers), the mean
        # over a record's copies; ``local``: the share of its copies that stay in the source's tile
        self.hops_ew, self.hops_ns, self.crossings, self.local = _copy_hops(msgs["src"], dst, self.ndst, cores["x"],
                                                                           cores["y"], hw.tiles_x, hw.tiles_y)

        # ---- steps: phase time per source, message slices per (step, source)
        self.steps = mapping.steps
        key = msgs["step"] * (self.n + 1) + msgs["src"]
        ukey, first, count = np.unique(key, return_index=True, return_counts=True)
        self._slices = {int(k): (int(a), int(a + c)) for k, a, c in zip(ukey, first, count)}
        self.phase = []
        self.offload = hw.nonlinear_unit == "x86"
        per_element = p.ns("offload_op") + 2 * p.ns("offload_io")
        for s in self.steps:
            w = s["work"]
            t = (w["neuron_updates"] * p.ns("neuron_update") + w["sram_bytes"] * p.ns("sram_read_byte")
                 + w["attention_cells"] * activity.attention_adds_per_cell * p.ns("synaptic_op"))
            if self.offload:   # the chip's x86 cores share its sources' elements; a source waits for its results
                chip = cores["chip"][s["sources"]]
                elements = np.bincount(chip, weights=w["state_updates"] + w["nonlinear_evals"], minlength=hw.chips)
                t = t + elements[chip] * per_element / hw.x86_cores_per_chip
            else:
                t = t + w["state_updates"] * p.ns("state_update") + w["nonlinear_evals"] * p.ns("nonlinear_eval")
            self.phase.append(t)
        self.step_of = msgs["step"]
        bounds = np.searchsorted(msgs["step"], np.arange(len(self.steps) + 1))
        self._step_slice = [(int(bounds[k]), int(bounds[k + 1])) for k in range(len(self.steps))]
        tiles = hw.chips * hw.tiles_x * hw.tiles_y
        gx, gy = hw.grid
        self.barrier_ns = (p.ns("barrier_1tile") + (p.ns("barrier_32tiles") - p.ns("barrier_1tile")) * math.log2(tiles) / 5.0
                           + (gx - 1 + gy - 1) * p.ns("chip_link"))
        self.neurons = cores["neurons"].astype(np.float64)

    def _crossbar_mvm(self, cores: dict, pc: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Latency (ns) and energy parts (pJ) of each crossbar core's MVM, from :mod:`sim.crossbar.costs`."""
        hw = self.hw
        lat = np.zeros(self.n)
        parts = {k: np.zeros(self.n) for k in ("adc_dac", "cells", "shift_add", "buffers")}
        idx = np.nonzero(self.xbar)[0]
        if not len(idx):
            return lat, parts
        from sim.crossbar.costs import mvm_cost, mvm_events
        from models.program.crossbar import Periphery
        periphery, table = Periphery(act_bits=hw.xbar_input_bits, adc_bits=self.adc_bits), _periphery_costs()
        cache: dict[tuple[int, int], dict] = {}
        for c in idx:
            key = (int(cores["row1"][c] - cores["row0"][c]), int((cores["col1"][c] - cores["col0"][c]) * pc[cores["stage"][c]]))
            if key not in cache:
                ev = mvm_events(key[0], key[1], hw.xbar_rows, hw.xbar_cols // hw.xbar_cells_per_weight, periphery,
                                hw.xbar_cols_per_adc)
                cache[key] = mvm_cost(ev, periphery, table)
            cost = cache[key]
            e = cost["energy_pj"]
            lat[c] = cost["latency_ns"]
            parts["adc_dac"][c] = e["dac"] + e["adc"] + e["sample_hold"]
            parts["cells"][c] = e["cell_read"]
            parts["shift_add"][c] = e["shift_add"]
            parts["buffers"][c] = e["buffers"]
        return lat, parts

    # ------------------------------------------------------------------ timing
    def _idle_floor(self, sources: np.ndarray) -> float:
        mask = np.ones(self.n, dtype=bool)
        mask[sources] = False
        return float(self.neurons[mask].max()) * self.preset.ns("neuron_idle") if mask.any() else 0.0

    def _run(self, plan: list[tuple[str, np.ndarray, np.ndarray, list[tuple[int, int]], float]], progress: bool,
             desc: str) -> tuple[list[float], np.ndarray, int, int]:
        """Simulate ``plan`` (name, sources, phase times, message slices per source, idle floor) in SimPy."""
        hw, p = self.hw, self.preset
        msgs = self.mapping.messages
        cores = self.mapping.cores
        mx, my = hw.mesh
        env = simpy.Environment()
        link_free = np.zeros((4, mx, my))
        port_free = np.zeros(self.n)
        free = np.zeros(self.n)
        busy = np.zeros(self.n)
        received = np.zeros(self.n, dtype=np.int64)
        m = len(msgs["src"])
        arrival = np.zeros(m)
        ok = np.zeros(m, dtype=np.bool_)
        xs, ys = cores["x"], cores["y"]
        ri = np.ascontiguousarray(np.stack([msgs["dst"], self.ndst], axis=1))
        rf = np.ascontiguousarray(np.stack([self.copy_packets, self.work_base, self.work_col], axis=1))
        cf = np.asarray([p.ns("hop_ew"), p.ns("hop_ns"), p.ns("local_spike"), p.ns("link_packet"), p.ns("chip_link"),
                         p.ns("chip_link_packet"), p.ns("axon_out")])
        # multicast copies: per destination first and last arrival, the last copy's work, total work; link loads
        g = np.zeros((4, self.n))
        g[0], g[1] = np.inf, -np.inf
        load_x, load_y = np.zeros((2, my, mx + 1)), np.zeros((2, mx, my + 1))
        group = self.ndst > 1
        multi = np.concatenate([[0], np.cumsum(self.ndst)]) if group.any() else None   # copies before a record
        starts = [env.event() for _ in plan]
        all_sent = [env.event() for _ in plan]
        pending = [len(src) for _, src, _, _, _ in plan]
        sent, copies = [0], [0]
        durations: list[float] = []

        acts: dict[int, list[tuple[int, int]]] = {}
        for k, (_, src, _, _, _) in enumerate(plan):
            for pos, c in enumerate(src):
                acts.setdefault(int(c), []).append((k, pos))

        def core(c: int, my_acts: list[tuple[int, int]]):
            for k, pos in my_acts:
                yield starts[k]
                dt = float(plan[k][2][pos])
                busy[c] += dt
                free[c] = env.now + dt
                yield env.timeout(dt)
                a, b = plan[k][3][pos]
                if b > a:
                    port_free[c] = _route(env.now, port_free[c], xs[c], ys[c], ri[a:b], rf[a:b], xs, ys, self.cols,
                                          link_free, cf, hw.tiles_x, hw.tiles_y, arrival[a:b], ok[a:b], g, load_x, load_y)
                    sent[0] += b - a if multi is None else int(multi[b] - multi[a])
                pending[k] -= 1
                if pending[k] == 0:
                    all_sent[k].succeed()

        for c, my_acts in acts.items():
            env.process(core(c, my_acts))

        def stepper():
            bar = tqdm(total=len(plan), desc=desc, unit="step", disable=not progress, leave=False)
            for k, (name, src, phase, slices, floor) in enumerate(plan):
                t0 = env.now
                free[:] = t0
                starts[k].succeed()
                if pending[k]:
                    yield all_sent[k]
                lo = min((a for a, b in slices if b > a), default=0)
                hi = max((b for a, b in slices if b > a), default=0)
                t_end = env.now
                if hi > lo:
                    sl = slice(lo, hi)
                    order = np.lexsort((arrival[sl], msgs["dst"][sl])).astype(np.int64)
                    t_end = max(t_end, _integrate(order, msgs["dst"][sl], arrival[sl], self.work[sl], self.syn[sl],
                                                  ok[sl], free, self.mvm, busy, received))
                    if group[sl].any():
                        copies[0] += int(self.ndst[sl][group[sl]].sum())
                        t_end = max(t_end, _finish_multicast(free, busy, self.mvm, g, load_x, load_y, hw.tiles_x,
                                                             hw.tiles_y, p.ns("link_packet"),
                                                             p.ns("chip_link_packet"), t0))
                t_end = max(t_end, t0 + floor)
                yield env.timeout(t_end - env.now)
                yield env.timeout(self.barrier_ns)
                durations.append(env.now - t0)
                bar.update(1)
            bar.close()

        env.process(stepper())
        env.run()
        return durations, busy, sent[0], int(received.sum()) + copies[0]

    def decode_token_latency(self, progress: bool = False) -> float:
        """Simulate one decode token only; its latency in seconds."""
        return sum(self._run(self._decode_plan(), progress, "decode token")[0]) * 1e-9

    def _decode_plan(self) -> list:
        plan = []
        for k, s in enumerate(self.steps):
            src = s["sources"]
            slices = [self._slices.get(int(k * (self.n + 1) + c), (0, 0)) for c in src]
            plan.append((s["name"], src, self.phase[k], slices, self._idle_floor(src)))
        return plan

    def _pipelined_plan(self) -> list:
        """Every step's sources at once; their messages must be contiguous, so route them as one slice each."""
        srcs, phases, slices = [], [], []
        for k, s in enumerate(self.steps):
            for pos, c in enumerate(s["sources"]):
                srcs.append(int(c))
                phases.append(float(self.phase[k][pos]))
                slices.append(self._slices.get(int(k * (self.n + 1) + c), (0, 0)))
        return [("pipelined", np.asarray(srcs, dtype=np.int64), np.asarray(phases), slices, 0.0)]

    # ------------------------------------------------------------------ energy
    def energy_counts(self, idle_neurons: bool = True) -> dict[str, float]:
        """Per-token dynamic energies (J) by category (static excluded); ``idle_neurons=False`` leaves out the
        updates of neurons without input (none in a pipelined prefill timestep, where every stage works)."""
        return self._energy(range(len(self.steps)), slice(None), idle_neurons)

    def energy_by_step(self) -> list[dict[str, float]]:
        """The dynamic energies (J) of :meth:`energy_counts`, step by step (they add up to it): each step's
        work, the messages its sources send (and their integration) and its idle neurons."""
        return [self._energy([k], slice(*self._step_slice[k]), True) for k in range(len(self.steps))]

    def _energy(self, steps, sel: slice, idle_neurons: bool) -> dict[str, float]:
        """Dynamic energies (J) by category of the work of ``steps`` and of the message records ``sel``."""
        p, hw = self.preset, self.hw
        pj = 1e-12
        nu = su = nl = sram = sbytes = attn = idle = 0.0
        for k in steps:
            w = self.steps[k]["work"]
            nu += w["neuron_updates"].sum()
            su += w["state_updates"].sum()
            nl += w["nonlinear_evals"].sum()
            sram += w["sram_bytes"].sum()
            sbytes += w["state_bytes"].sum()
            attn += w["attention_cells"].sum() * self.activity.attention_adds_per_cell
            if idle_neurons:
                idle += float(self.neurons.sum() - self.neurons[self.steps[k]["sources"]].sum())
        xbar_dst = self.xbar[self.mapping.messages["dst"][sel]]
        recv_xbar = self.xbar & (self._per_destination(self.syn[sel].astype(np.float64), sel) > 0)
        mvm = {k: float(v[recv_xbar].sum()) for k, v in self.mvm_pj.items()}
        pk = self.packets[sel]
        off = su + nl if self.offload else 0.0
        if self.offload:
            su = nl = 0.0
        return {
            "synaptic_ops": pj * ((float(self.synops[sel][~xbar_dst].sum()) + attn) * p.pj("synaptic_op") + mvm["cells"]),
            "neuron_state_updates": pj * (nu * p.pj("neuron_update") + su * p.pj("state_update") + nl * p.pj("nonlinear_eval")
                                          + idle * p.pj("neuron_idle") + mvm["shift_add"]),
            "memory": pj * (float(self.slots_digital[sel].sum()) * hw.weight_bits / 8 * p.pj("weight_read_byte")
                            + sbytes * p.pj("state_byte") + sram * p.pj("sram_read_byte") + mvm["buffers"]),
            "noc": pj * (float(pk.sum()) * p.pj("axon_out") + float((pk * self.hops_ew[sel]).sum()) * p.pj("hop_ew")
                         + float((pk * self.hops_ns[sel]).sum()) * p.pj("hop_ns")
                         + float((pk * self.local[sel]).sum()) * p.pj("local_spike")
                         + float(self.received[sel].sum()) * p.pj("input_event")),
            "chip_to_chip": pj * float((pk * self.crossings[sel]).sum()) * p.pj("chip_link"),
            "adc_dac": pj * mvm["adc_dac"],
            "offload": pj * off * (p.pj("offload_op") + 2 * p.pj("offload_io")),
        }

    def _per_destination(self, per_copy: np.ndarray, sel) -> np.ndarray:
        """Sum over the records ``sel`` (a slice or a boolean mask) of ``per_copy`` (given for those records only)
        into every destination core of each (copies included)."""
        dst = self.mapping.messages["dst"][sel]
        if not self.multicast:
            return np.bincount(dst, weights=per_copy, minlength=self.n)
        diff = np.bincount(dst, weights=per_copy, minlength=self.n + 1)
        diff -= np.bincount(dst + self.ndst[sel], weights=per_copy, minlength=self.n + 1)
        return np.cumsum(diff)[:-1]

    def analytic_token_latency(self) -> float:
        """Closed-form estimate of one decode token (no SimPy, no contention): per step, the slowest source's
        phase and injection, the mean path latency, the busiest destination's integration, the barrier."""
        p, msgs = self.preset, self.mapping.messages
        path = (self.hops_ew * p.ns("hop_ew") + self.hops_ns * p.ns("hop_ns") + self.crossings * p.ns("chip_link")
                + self.local * p.ns("local_spike"))
        total = 0.0
        for k, s in enumerate(self.steps):
            a, b = self._step_slice[k]
            src_t = float(self.phase[k].max()) if len(self.phase[k]) else 0.0
            t = src_t
            if b > a:
                inj = np.bincount(msgs["src"][a:b], weights=self.packets[a:b], minlength=self.n).max() * p.ns("axon_out")
                sl = slice(a, b)
                if self.ndst[sl].max() > 1:
                    recv = (self._per_destination(self.work_base[sl], sl)
                            + self._per_destination(self.work_col[sl], sl) * self.cols)
                    mean_path = float(np.average(path[sl], weights=self.ndst[sl]))
                else:
                    recv = np.bincount(msgs["dst"][sl], weights=self.work[sl], minlength=self.n)
                    mean_path = float(path[sl].mean())
                recv = recv + np.where(self._per_destination(self.syn[sl].astype(np.float64), sl) > 0, self.mvm, 0.0)
                t = src_t + inj + mean_path + float(recv.max())
            total += max(t, self._idle_floor(s["sources"])) + self.barrier_ns
        return total * 1e-9

    # ------------------------------------------------------------------ report
    def run(self, prompt_tokens: int = 500, progress: bool = False) -> Report:
        """Simulate one decode token and one pipelined prefill timestep; returns the :class:`Report`."""
        if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 1:
            raise ValueError(f"prompt_tokens must be a positive integer, got {prompt_tokens!r}")
        t_wall = time.perf_counter()
        durations, busy, sent, received = self._run(self._decode_plan(), progress, "decode token")
        self.step_durations_s = [d * 1e-9 for d in durations]   # kept for traces (sim.system.trace)
        decode_wall = time.perf_counter() - t_wall
        t_token = sum(durations) * 1e-9
        pipe, _, psent, precv = self._run(self._pipelined_plan(), False, "prefill step")
        t_pipe = pipe[0] * 1e-9
        wall = time.perf_counter() - t_wall
        dyn = self.energy_counts()
        hw = self.hw
        energy = dict(dyn)
        energy["static"] = self.preset.static_w * hw.chips * t_token
        total = sum(energy.values())
        energy["total"] = total
        prefill_e = sum(self.energy_counts(idle_neurons=False).values()) + self.preset.static_w * hw.chips * t_pipe
        steps_sorted = sorted(zip((s["name"] for s in self.steps), durations), key=lambda t: -t[1])[:3]
        util = busy / (t_token * 1e9) if t_token > 0 else busy * 0
        pk = self.packets
        return Report(
            model=self.mapping.model["name"], preset=self.preset.name, estimate=self.preset.estimate,
            activity_source=self.activity.source + ("" if self.per_stage or not self.activity.stages else
                                                     "; per-kind averages (its stages belong to another model)"),
            chips=hw.chips, cores=self.n, steps_per_token=len(self.steps),
            token_latency_s=t_token, tokens_per_s=1.0 / t_token if t_token else float("inf"),
            prompt_tokens=prompt_tokens, ttft_s=(prompt_tokens - 1 + len(self.steps)) * t_pipe, pipelined_step_s=t_pipe,
            energy_j=energy, energy_per_token_j=total, static_j=energy["static"], dynamic_j=total - energy["static"],
            static_range_j=tuple(w * hw.chips * t_token for w in self.preset.static_range),
            offload_elements=float(sum(float((st["work"]["state_updates"] + st["work"]["nonlinear_evals"]).sum()) for st in self.steps)),
            offload_unit=f"x86 cores ({hw.x86_cores_per_chip} per chip)" if self.offload else "neurocores",
            energy_boundary=self.preset.boundary, static_source=self.preset.costs["static_per_chip"].source,
            power_w=total / t_token if t_token else 0.0,
            prefill_energy_per_token_j=prefill_e, core_utilisation=float(util.mean()) if self.n else 0.0,
            core_utilisation_max=float(util.max()) if self.n else 0.0,
            messages_sent=int(sent), messages_received=int(received), packets_per_token=float(pk.sum()),
            mean_hops=float((pk * (self.hops_ew + self.hops_ns + self.crossings)).sum() / pk.sum()) if pk.sum() else 0.0,
            chip_crossing_packets=float((pk * self.crossings).sum()),
            slowest_steps=[(n, t * 1e-9) for n, t in steps_sorted], sim_wall_s=wall, decode_sim_wall_s=decode_wall,
            analytic_token_latency_s=self.analytic_token_latency(), overrides=dict(self.preset.overrides))


def simulate(mapping: Mapping, preset: Preset, activity: Activity, prompt_tokens: int = 500,
             progress: bool = False) -> Report:
    """Build the :class:`SystemModel` and run it."""
    return SystemModel(mapping, preset, activity).run(prompt_tokens=prompt_tokens, progress=progress)
