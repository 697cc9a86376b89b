"""Compiler: partition a MatMul-free LM across neurocores, place the partitions on the 2-D mesh, and list
the messages one decode token sends.

Stages (one barrier-synchronised timestep each, in this order per token)::

    embed → [L.ifg → L.o → L.gate → L.down] x layers → lm_head → sample

``ifg`` holds the i/f/g projections of channels ``[n0, n1)`` together with the MLGRU state of those
channels; ``gate`` holds the g and u columns of GLU channels ``[n0, n1)`` (so ``SiLU(g) * u`` is local);
``o`` and ``down`` hold output columns plus the residual stream of those columns; ``embed`` holds rows of
the int16 table; ``sample`` (one core) gathers the lm_head partitions' local argmax and sends the token
id to the core holding its embedding row.

Partitioning: a stage is cut by output columns so that each core keeps whole synapse rows (an input event
reads one row); only when one column does not fit a core (crossbar arrays) are rows split too, and the
row blocks then send partial sums to the block owner in an extra ``.psum`` timestep. Every core stays
within ``fill`` x its synapse memory (or crossbar arrays) and its neuron slots.

Placement: partitions in stage order along a snake (boustrophedon) walk of chips and, inside each chip,
of tiles, so a stage and the next one (which exchange all-to-all messages) sit next to each other; the
``random`` placement is there to measure what locality buys.

Messages: one per (source core, destination core, timestep), carrying ``values`` int32 values (only the
overlap of what the source produces and the destination needs); the system model turns values into
packets, hops and work. With ``hw.fanout == "multicast"`` a source that sends the same values to every core
of a stage whose cores all hold every input row (the all-to-all between consecutive stages) gets ONE
record for them, ``ndst`` consecutive destination cores from ``dst`` on (Loihi's core-to-core multicast:
still one packet per spike per destination core, but records grow with the sources, not sources x
destinations). When the model does not fit, :class:`DoesNotFit` says how many chips it needs;
a mapping of more than :data:`MAX_MESSAGES` messages per token is refused before it is built.

Spike formats (``hw.spike_format``). ``graded``: a stage sends its int32 outputs; each receiver holds whole
synapse rows, so it receives the whole input vector and computes the BitLinear's Σx² and max|x| itself
(the MLGRU's ``ifg`` cores also send each ``o`` core one value of their partial Σg² for g_norm, as a
``reduce`` message).
``binary``: a value must leave as the sign-magnitude bit spikes of its int8 code, so the SENDER quantises,
which needs Σx² and max|x| of a vector spread over the stage's cores: a per-token reduction of two
timesteps (``.reduce``: every source core sends its partials (two; three with the MLGRU's Σg²) to the
stage's first core, which combines
them and sends the scale back; ``.send``: every source quantises its columns and sends the spikes), skipped
when one core holds the whole vector. Each int8 input then needs :data:`sim.system.hwconfig.BINARY_AXONS`
synapse rows, so a core holds that many times fewer columns.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from models.program import numformat as nf

from sim.system.energy import Preset, load_preset
from sim.system.hwconfig import HWConfig
from sim.system.shapes import ModelShape

__all__ = ["MSG_SYN", "MSG_RES", "MSG_PSUM", "MSG_CTRL", "MSG_RED", "STAGE_KINDS", "DoesNotFit", "Stage", "Mapping",
           "compile_model", "chips_needed"]

MSG_SYN, MSG_RES, MSG_PSUM, MSG_CTRL, MSG_RED = 0, 1, 2, 3, 4
MSG_KIND_NAMES = ("syn", "res", "psum", "ctrl", "reduce")
STAGE_KINDS = ("embed", "ifg", "o", "gate", "down", "lm_head", "sample")
#: Neuron slots per output channel: accumulators + state (MLGRU h, residual).
NEURONS_PER_CHANNEL = {"ifg": 4, "o": 2, "gate": 2, "down": 2, "lm_head": 1}
#: Stored weight columns per output channel.
PROJ_COUNT = {"ifg": 3, "o": 1, "gate": 2, "down": 1, "lm_head": 1}
FORMAT = "nmllm-mapping/1"
#: Message records per token beyond which a mapping is refused (memory: about 1 kB of arrays per record in
#: the system model; 13B on loihi2-estimate sends 3.6 M, 13B on loihi1 with multicast records 0.4 M).
MAX_MESSAGES = 20_000_000


class DoesNotFit(ValueError):
    """The model needs more chips than the configuration has (the message says how many)."""

    def __init__(self, message: str, chips_needed: int):
        super().__init__(message)
        self.chips_needed = chips_needed


@dataclass
class Stage:
    """One compute stage: what it holds and how it is cut (``row_blocks`` x ``col_blocks`` cores)."""

    name: str
    kind: str
    layer: int
    fan_in: int
    fan_out: int
    tensors: list[str]
    row_blocks: int = 1
    col_blocks: int = 1
    cores: list[int] = field(default_factory=list)

    @property
    def proj_count(self) -> int:
        return PROJ_COUNT.get(self.kind, 1)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "layer": self.layer, "fan_in": self.fan_in,
                "fan_out": self.fan_out, "proj_count": self.proj_count, "tensors": self.tensors,
                "row_blocks": self.row_blocks, "col_blocks": self.col_blocks, "cores": self.cores}

    @classmethod
    def from_dict(cls, d: dict) -> "Stage":
        return cls(name=d["name"], kind=d["kind"], layer=d["layer"], fan_in=d["fan_in"], fan_out=d["fan_out"],
                   tensors=list(d["tensors"]), row_blocks=d["row_blocks"], col_blocks=d["col_blocks"],
                   cores=list(d["cores"]))


#: Per-core arrays of a mapping (one entry per used core, indexed by core id 0..n-1).
CORE_FIELDS = ("chip", "x", "y", "slot", "stage", "rb", "cb", "row0", "row1", "col0", "col1", "weight_bytes",
               "neurons", "xbar_arrays", "xbar_bitlines", "xbar_tile_rows", "xbar_col_tiles")
#: Per-message arrays (sorted by step, then source core); a message goes to cores ``dst .. dst + ndst - 1``.
MSG_FIELDS = ("step", "src", "dst", "values", "kind", "ndst")
#: Per-(step, source) work of the neuron phase.
PHASE_FIELDS = ("neuron_updates", "state_updates", "nonlinear_evals", "sram_bytes", "state_bytes", "attention_cells")


@dataclass
class Mapping:
    """A compiled model: stages, cores (where every weight lives), steps and the messages of one token."""

    model: dict
    preset: str
    hardware: HWConfig
    options: dict
    stages: list[Stage]
    cores: dict[str, np.ndarray]
    steps: list[dict]
    messages: dict[str, np.ndarray]
    overrides: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ derived
    @property
    def n_cores(self) -> int:
        return int(len(self.cores["stage"]))

    @property
    def chips_used(self) -> int:
        return int(self.cores["chip"].max()) + 1 if self.n_cores else 0

    def validate(self) -> None:
        """Raise ``ValueError`` if arrays disagree in length or a message names an unknown core/step."""
        n = self.n_cores
        for f in CORE_FIELDS:
            if f not in self.cores or len(self.cores[f]) != n:
                raise ValueError(f"mapping core field {f!r} is missing or has the wrong length: recompile")
        m = len(self.messages["src"])
        for f in MSG_FIELDS:
            if f not in self.messages or len(self.messages[f]) != m:
                raise ValueError(f"mapping message field {f!r} is missing or has the wrong length: recompile")
        if m:
            last = self.messages["dst"] + self.messages["ndst"] - 1
            if self.messages["src"].min() < 0 or self.messages["src"].max() >= n or \
               self.messages["dst"].min() < 0 or last.max() >= n or self.messages["ndst"].min() < 1:
                raise ValueError("mapping message names a core that does not exist: recompile")
            if self.messages["step"].min() < 0 or self.messages["step"].max() >= len(self.steps):
                raise ValueError("mapping message names a step that does not exist: recompile")
            if not np.all(np.diff(self.messages["step"] * (n + 1) + self.messages["src"]) >= 0):
                raise ValueError("mapping messages must be sorted by (step, src): recompile")
        mx, my = self.hardware.mesh
        if n and (self.cores["x"].max() >= mx or self.cores["y"].max() >= my):
            raise ValueError("mapping places a core outside the configured mesh: recompile")
        for s in self.steps:
            for f in PHASE_FIELDS:
                if len(s["work"][f]) != len(s["sources"]):
                    raise ValueError(f"step {s['name']} work {f!r} has the wrong length: recompile")

    def weights_of(self, core: int) -> list[dict]:
        """The weight slices core ``core`` holds: ``{"tensor", "in": [a, b], "out": [c, d]}``."""
        c = {f: int(self.cores[f][core]) for f in CORE_FIELDS}
        st = self.stages[c["stage"]]
        r, k = [c["row0"], c["row1"]], [c["col0"], c["col1"]]
        if st.kind == "embed":
            return [{"tensor": st.tensors[0], "in": r, "out": k}]
        if st.kind == "sample":
            return []
        if st.kind == "gate":
            m = st.fan_out
            return [{"tensor": st.tensors[0], "in": r, "out": k},
                    {"tensor": st.tensors[0], "in": r, "out": [k[0] + m, k[1] + m]}]
        return [{"tensor": t, "in": r, "out": k} for t in st.tensors]

    def summary(self) -> dict:
        hw = self.hardware
        wb = self.cores["weight_bytes"].astype(np.float64)
        used_mem = float(wb.sum())
        per_token = (self.messages["values"] * self.messages["ndst"]).astype(np.int64).sum()
        return {"cores_used": self.n_cores, "chips_used": self.chips_used, "chips_configured": hw.chips,
                "cores_per_chip": hw.cores_per_chip, "stages": len(self.stages), "steps_per_token": len(self.steps),
                "synapse_memory_used_bytes": int(used_mem),
                "synapse_memory_utilisation": used_mem / (self.n_cores * hw.synapse_mem_bytes) if self.n_cores else 0.0,
                "neuron_utilisation": float(self.cores["neurons"].sum()) / (self.n_cores * hw.neurons_per_core) if self.n_cores else 0.0,
                "messages_per_token": int(self.messages["ndst"].sum()), "message_records": int(len(self.messages["src"])),
                "values_per_token": int(per_token)}

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        weights = []
        for core in range(self.n_cores):
            for w in self.weights_of(core):
                weights.append({"core": core, **w})
        return {
            "format": FORMAT, "model": self.model, "preset": self.preset, "overrides": self.overrides,
            "hardware": self.hardware.to_dict(), "options": self.options, "summary": self.summary(),
            "stages": [s.to_dict() for s in self.stages],
            "cores": {f: self.cores[f].tolist() for f in CORE_FIELDS},
            "weights": weights,
            "steps": [{"name": s["name"], "stage": s["stage"], "phase": s["phase"], "sources": list(map(int, s["sources"])),
                       "work": {f: list(map(int, s["work"][f])) for f in PHASE_FIELDS}} for s in self.steps],
            "messages": {f: self.messages[f].tolist() for f in MSG_FIELDS},
            "message_kinds": list(MSG_KIND_NAMES),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the mapping as JSON (gzip-compressed when the name ends in ``.gz``)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        if p.suffix == ".gz":
            with gzip.open(p, "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            p.write_text(text)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Mapping":
        """Read a mapping written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no mapping file {str(p)!r}: run `nmllm compile` first")
        try:
            if p.suffix == ".gz":
                with gzip.open(p, "rt", encoding="utf-8") as fh:
                    d = json.load(fh)
            else:
                d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p.name} is not a mapping JSON ({exc}): run `nmllm compile` to write one") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict) -> "Mapping":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a mapping (format must be {FORMAT!r}): run `nmllm compile` to write one")
        steps = [{"name": s["name"], "stage": s["stage"], "phase": s["phase"],
                  "sources": np.asarray(s["sources"], dtype=np.int64),
                  "work": {f: np.asarray(s["work"].get(f, np.zeros(len(s["sources"]))), dtype=np.int64)
                           for f in PHASE_FIELDS}} for s in d["steps"]]
        m = cls(model=d["model"], preset=d["preset"], hardware=HWConfig.from_dict(d["hardware"]), options=d["options"],
                stages=[Stage.from_dict(s) for s in d["stages"]],
                cores={f: np.asarray(d["cores"][f], dtype=np.int64) for f in CORE_FIELDS}, steps=steps,
                messages={f: np.asarray(d["messages"][f] if f in d["messages"] else np.ones(len(d["messages"]["src"])),
                                        dtype=np.int64) for f in MSG_FIELDS},
                overrides=d.get("overrides", {}))
        m.validate()
        return m


# ---------------------------------------------------------------------------------------- partitioning
@dataclass
class _Cut:
    row_blocks: int
    col_blocks: int
    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _cut_stage(kind: str, K: int, N: int, hw: HWConfig, fill: float) -> _Cut:
    """Rows x columns cut of a stage so that every core fits (see the module docstring)."""
    if kind == "embed":   # K = vocab rows, N = hidden; one row is a token's embedding
        mem_bits = int(hw.synapse_mem_bytes * fill * 8)
        row_bits = N * hw.embed_bits
        if row_bits <= mem_bits:
            per = mem_bits // row_bits
            rb = math.ceil(K / per)
            return _Cut(rb, 1, _split(K, rb), [(0, N)])
        cb = math.ceil(row_bits / mem_bits)
        return _Cut(K, cb, [(v, v + 1) for v in range(K)], _split(N, cb))
    if kind == "sample":
        return _Cut(1, 1, [(0, K)], [(0, N)])
    pc = PROJ_COUNT[kind]
    neuron_cap = hw.neurons_per_core // NEURONS_PER_CHANNEL[kind]
    if neuron_cap < 1:
        raise ValueError(f"neurons_per_core={hw.neurons_per_core} cannot hold one {kind} channel "
                         f"({NEURONS_PER_CHANNEL[kind]} neurons): pass --set neurons_per_core={NEURONS_PER_CHANNEL[kind]} or more")
    if hw.has_crossbars:
        arrays = max(1, int(hw.xbar_tiles_per_core * fill))
        w_per_array = hw.xbar_cols // hw.xbar_cells_per_weight
        if w_per_array < pc:
            raise ValueError(f"a crossbar array holds {w_per_array} weights per row but a {kind} channel needs {pc}: "
                             f"raise xbar_cols or lower xbar_cells_per_weight")
        tile_rows = math.ceil(K / hw.xbar_rows)
        rb = 1 if tile_rows <= arrays else math.ceil(tile_rows / arrays)
        k_c = math.ceil(K / rb)
        col_arrays = arrays // math.ceil(k_c / hw.xbar_rows)
        per_core = (col_arrays * w_per_array) // pc
    else:
        mem_bits = int(hw.synapse_mem_bytes * fill * 8)
        col_bits = K * hw.axons_per_input * hw.weight_bits * pc
        rb = 1 if col_bits <= mem_bits else math.ceil(col_bits / mem_bits)
        k_c = math.ceil(K / rb)
        per_core = mem_bits // (k_c * hw.axons_per_input * hw.weight_bits * pc)
    per_core = min(per_core, neuron_cap, N)
    if per_core < 1:
        raise ValueError(f"one {kind} channel does not fit a core: raise synapse_mem_bytes or --fill")
    cb = math.ceil(N / per_core)
    return _Cut(rb, cb, _split(K, rb), _split(N, cb))


def _stage_list(shape: ModelShape) -> list[Stage]:
    d, e, m, V = shape.hidden, shape.input_dim, shape.intermediate, shape.vocab
    st = [Stage("embed", "embed", -1, V, d, ["model.embeddings.weight"])]
    for li in range(shape.layers):
        p = f"model.layers.{li}"
        st += [Stage(f"L{li}.ifg", "ifg", li, d, e, [f"{p}.attn.{n}_proj.weight" for n in shape.mixer_inputs]),
               Stage(f"L{li}.o", "o", li, e, d, [f"{p}.attn.o_proj.weight"]),
               Stage(f"L{li}.gate", "gate", li, d, m, [f"{p}.mlp.gate_proj.weight"]),
               Stage(f"L{li}.down", "down", li, m, d, [f"{p}.mlp.down_proj.weight"])]
    st.append(Stage("lm_head", "lm_head", -1, d, V, ["lm_head.weight"]))
    st.append(Stage("sample", "sample", -1, 1, 1, []))
    return st


# ---------------------------------------------------------------------------------------- placement
def _slot_order(hw: HWConfig, placement: str, seed: int) -> np.ndarray:
    """Global (x, y, slot) of every core position in placement order, as an (n, 3) array."""
    gx, gy = hw.grid
    order = []
    chip_seq = [(cx if cy % 2 == 0 else gx - 1 - cx, cy) for cy in range(gy) for cx in range(gx)]
    for ci, (cx, cy) in enumerate(chip_seq[:hw.chips]):
        # column by column in the direction the chip row is walked, each column up or down in turn, so a
        # chip's walk ends on the edge next to the following chip
        txs = range(hw.tiles_x) if cy % 2 == 0 else range(hw.tiles_x - 1, -1, -1)
        for j, tx in enumerate(txs):
            tys = range(hw.tiles_y) if j % 2 == 0 else range(hw.tiles_y - 1, -1, -1)
            for ty in tys:
                for s in range(hw.cores_per_tile):
                    order.append((cx * hw.tiles_x + tx, cy * hw.tiles_y + ty, s))
    arr = np.asarray(order, dtype=np.int64)
    if placement == "random":
        arr = arr[np.random.default_rng(seed).permutation(len(arr))]
    elif placement != "snake":
        raise ValueError(f"unknown placement {placement!r}: choose snake or random")
    return arr


def chips_needed(shape: ModelShape, hw: HWConfig, fill: float = 1.0) -> int:
    """Chips the model needs on this hardware (ignoring ``hw.chips``)."""
    cores = sum(c.row_blocks * c.col_blocks for c in _cuts(shape, hw, fill)[1])
    return math.ceil(cores / hw.cores_per_chip)


def _cuts(shape: ModelShape, hw: HWConfig, fill: float) -> tuple[list[Stage], list[_Cut]]:
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0.0 < fill <= 1.0:
        raise ValueError(f"--fill must be a fraction in (0, 1] of each core's synapse memory, got {fill!r}")
    if int(hw.synapse_mem_bytes * fill * 8) < 1:
        raise ValueError(f"fill {fill:g} leaves no bit of a core's {hw.synapse_mem_bytes}-byte synapse memory: raise --fill")
    stages = _stage_list(shape)
    return stages, [_cut_stage(s.kind, s.fan_in, s.fan_out, hw, fill) for s in stages]


# ---------------------------------------------------------------------------------------- messages
def _overlap(a0, a1, b0, b1) -> np.ndarray:
    """Pairwise overlap lengths of ranges [a0, a1) (rows) and [b0, b1) (columns)."""
    return np.clip(np.minimum(a1[:, None], b1[None, :]) - np.maximum(a0[:, None], b0[None, :]), 0, None)


def compile_model(shape: ModelShape, preset: Preset, fill: float = 1.0, placement: str = "snake",
                  token: Optional[int] = None, seed: int = 0) -> Mapping:
    """Map ``shape`` onto ``preset.hardware``; raises :class:`DoesNotFit` when the chips are too few."""
    hw = preset.hardware
    token = shape.vocab // 2 if token is None else token
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < shape.vocab:
        raise ValueError(f"token must be an id in [0, {shape.vocab}), got {token!r}")
    stages, cuts = _cuts(shape, hw, fill)
    needed = sum(c.row_blocks * c.col_blocks for c in cuts)
    if needed > hw.total_cores:
        n = math.ceil(needed / hw.cores_per_chip)
        raise DoesNotFit(f"model {shape.name} needs {n} {preset.name} chips ({needed} cores at {hw.cores_per_chip} "
                         f"per chip, fill {fill:g}) but the configuration has {hw.chips}: pass --chips {n} (or --chips auto)", n)
    # owners (first row block) of each stage's columns x the cores of the next stage whose rows they reach
    multicast = hw.fanout == "multicast"
    pairs = sum(a.col_blocks * (1 if multicast and b.row_blocks == 1 else
                                b.col_blocks * min(b.row_blocks, -(-b.row_blocks // a.col_blocks) + 1))
                for a, b in zip(cuts[:-2], cuts[1:-1]))
    if pairs > MAX_MESSAGES:
        raise ValueError(f"model {shape.name} on {preset.name} would send about {pairs:,} messages per token (all-to-all "
                         f"between consecutive stages of {needed:,} cores), more than the {MAX_MESSAGES:,} this "
                         f"message-level model holds: map a smaller model or a preset with larger cores")
    slots = _slot_order(hw, placement, seed)[:needed]

    # ---- cores
    cols = {f: [] for f in CORE_FIELDS}
    w_arr = hw.xbar_cols // hw.xbar_cells_per_weight if hw.has_crossbars else 0
    cid = 0
    for si, (st, cut) in enumerate(zip(stages, cuts)):
        st.row_blocks, st.col_blocks = cut.row_blocks, cut.col_blocks
        for cb, (c0, c1) in enumerate(cut.cols):
            for rb, (r0, r1) in enumerate(cut.rows):
                x, y, s = (int(v) for v in slots[cid])
                n_c, k_c = c1 - c0, r1 - r0
                if st.kind == "embed":
                    wbytes, neurons = (k_c * n_c * hw.embed_bits + 7) // 8, 0
                elif st.kind == "sample":
                    wbytes, neurons = 0, 1
                else:
                    wbytes = 0 if hw.has_crossbars else (k_c * hw.axons_per_input * n_c * st.proj_count * hw.weight_bits + 7) // 8
                    neurons = n_c * NEURONS_PER_CHANNEL[st.kind]
                xa = xbl = xtr = xct = 0
                if hw.has_crossbars and st.kind not in ("embed", "sample"):
                    xtr = math.ceil(k_c / hw.xbar_rows)
                    xct = math.ceil(n_c * st.proj_count / w_arr)
                    xa, xbl = xtr * xct, n_c * st.proj_count * hw.xbar_cells_per_weight
                chip = (x // hw.tiles_x) + (y // hw.tiles_y) * hw.grid[0]
                for f, v in zip(CORE_FIELDS, (chip, x, y, s, si, rb, cb, r0, r1, c0, c1, wbytes, neurons, xa, xbl, xtr, xct)):
                    cols[f].append(v)
                st.cores.append(cid)
                cid += 1
    cores = {f: np.asarray(v, dtype=np.int64) for f, v in cols.items()}
    # chip ids compact to the chips actually in the grid order
    _, cores["chip"] = np.unique(cores["chip"], return_inverse=True)
    cores["chip"] = cores["chip"].astype(np.int64)

    # ---- steps and messages
    by_name = {s.name: i for i, s in enumerate(stages)}
    steps: list[dict] = []
    msgs: list[tuple[np.ndarray, ...]] = []

    def parts(si: int, owners_only: bool = True) -> np.ndarray:
        ids = np.asarray(stages[si].cores, dtype=np.int64)
        return ids[cores["rb"][ids] == 0] if owners_only else ids

    def connect(step: int, src: np.ndarray, dst_si: int, mode: str, norm: bool = False) -> None:
        """Messages from ``src`` (their output columns) to stage ``dst_si`` (its rows, or its columns for res);
        ``norm``: each also sends one value of norm statistics (a ``reduce`` message)."""
        dst = parts(dst_si, owners_only=(mode == "res"))
        a0, a1 = cores["col0"][src], cores["col1"][src]
        if mode == "syn":
            b0, b1 = cores["row0"][dst], cores["row1"][dst]
        else:
            b0, b1 = cores["col0"][dst], cores["col1"][dst]
        kind = MSG_SYN if mode == "syn" else MSG_RES
        if multicast and np.all(b0 == b0[0]) and np.all(b1 == b1[0]) and np.all(np.diff(dst) == 1):
            # every destination holds the same rows: one multicast record per source for the whole stage
            ov = _overlap(a0, a1, b0[:1], b1[:1])[:, 0]
            i = np.nonzero(ov)[0]
            msgs.append((np.full(len(i), step), src[i], np.full(len(i), dst[0]), ov[i], np.full(len(i), kind),
                         np.full(len(i), len(dst))))
            if norm:
                msgs.append((np.full(len(i), step), src[i], np.full(len(i), dst[0]), np.ones(len(i)),
                             np.full(len(i), MSG_RED), np.full(len(i), len(dst))))
            return
        ov = _overlap(a0, a1, b0, b1)
        i, j = np.nonzero(ov)
        msgs.append((np.full(len(i), step), src[i], dst[j], ov[i, j], np.full(len(i), kind), np.ones(len(i))))
        if norm:
            msgs.append((np.full(len(i), step), src[i], dst[j], np.ones(len(i)), np.full(len(i), MSG_RED), np.ones(len(i))))

    def add_step(name: str, si: int, phase: str, sources: np.ndarray, work: dict[str, np.ndarray]) -> int:
        steps.append({"name": name, "stage": si, "phase": phase, "sources": sources.astype(np.int64),
                      "work": {f: np.asarray(work.get(f, np.zeros(len(sources))), dtype=np.int64) for f in PHASE_FIELDS}})
        return len(steps) - 1

    def head_exchange(step: int, src: np.ndarray) -> None:
        """Spike attention: every core sends the q and k spike counts of its columns to the other cores
        holding columns of the same head (a state row needs the head's k, an output the head's q)."""
        dh = shape.head_dim
        h0, h1 = cores["col0"][src] // dh, (cores["col1"][src] - 1) // dh
        for a, c in enumerate(src):
            for b, c2 in enumerate(src):
                if a != b and h0[a] <= h1[b] and h0[b] <= h1[a]:
                    lo = max(int(cores["col0"][c]), int(h0[b]) * dh)
                    hi = min(int(cores["col1"][c]), (int(h1[b]) + 1) * dh)
                    if hi > lo:
                        msgs.append((np.asarray([step]), np.asarray([c]), np.asarray([c2]), np.asarray([2 * (hi - lo)]),
                                     np.asarray([MSG_CTRL]), np.ones(1)))

    def psum_step(si: int) -> None:
        """Row blocks > 0 send partial sums (+1 value of norm statistics) to their block owner."""
        st = stages[si]
        if st.row_blocks == 1:
            return
        ids = np.asarray(st.cores, dtype=np.int64)
        src = ids[cores["rb"][ids] > 0]
        n_c = cores["col1"][src] - cores["col0"][src]
        k = add_step(f"{st.name}.psum", si, "psum", src, {"neuron_updates": n_c * st.proj_count})
        owner = {int(cores["cb"][c]): int(c) for c in ids[cores["rb"][ids] == 0]}
        dst = np.asarray([owner[int(cores["cb"][c])] for c in src], dtype=np.int64)
        msgs.append((np.full(len(src), k), src, dst, n_c * st.proj_count + 1, np.full(len(src), MSG_PSUM), np.ones(len(src))))

    binary = hw.spike_format == "binary"
    spike = shape.token_mixer == "spike_attention"

    def reduction(si: int, src: np.ndarray, k: int) -> int:
        """Binary format: the ``.reduce`` and ``.send`` timesteps after step ``k`` of stage ``si`` (see the
        module docstring); returns the step whose sources send the stage's outputs."""
        if not binary or len(src) < 2:
            return k
        name, red, others = stages[si].name, src[:1], src[1:]
        partials = 3 if stages[si].kind == "ifg" and not spike else 2   # Σx², max|x| (+ Σg² for the MLGRU's g_norm)
        msgs.append((np.full(len(others), k), others, np.full(len(others), red[0]), np.full(len(others), partials),
                     np.full(len(others), MSG_RED), np.ones(len(others))))
        k = add_step(f"{name}.reduce", si, "reduce", red,
                     {"neuron_updates": np.asarray([2 * len(src)]), "nonlinear_evals": np.asarray([1])})
        msgs.append((np.full(len(others), k), np.full(len(others), red[0]), others, np.ones(len(others)),
                     np.full(len(others), MSG_RED), np.ones(len(others))))
        return add_step(f"{name}.send", si, "neuron", src, {"neuron_updates": cores["col1"][src] - cores["col0"][src]})

    # embed: the token's row owner(s) read the row and send it
    e_si = by_name["embed"]
    e_ids = np.asarray(stages[e_si].cores, dtype=np.int64)
    owner = e_ids[(cores["row0"][e_ids] <= token) & (token < cores["row1"][e_ids])]
    n_c = cores["col1"][owner] - cores["col0"][owner]
    k = reduction(e_si, owner, add_step("embed", e_si, "read", owner, {"sram_bytes": n_c * hw.embed_bits // 8}))
    first = by_name["L0.ifg"] if shape.layers else by_name["lm_head"]
    connect(k, owner, first, "syn")
    if shape.layers:
        connect(k, owner, by_name["L0.o"], "res")
    for li in range(shape.layers):
        ifg, o, gate, down = (by_name[f"L{li}.{t}"] for t in ("ifg", "o", "gate", "down"))
        nxt_ifg = by_name.get(f"L{li + 1}.ifg")
        for si in (ifg, o, gate, down):
            psum_step(si)
            src = parts(si)
            n_c = cores["col1"][src] - cores["col0"][src]
            kind = stages[si].kind
            work = {"neuron_updates": n_c * stages[si].proj_count, "nonlinear_evals": np.ones(len(src))}
            if kind == "ifg" and spike:
                k = add_step(stages[si].name, si, "neuron", src, work)   # q, k, v read-out as spike counts
                head_exchange(k, src)
                dh = shape.head_dim
                k = reduction(si, src, add_step(f"L{li}.attn", si, "neuron", src,
                                                {"state_updates": n_c * dh, "attention_cells": n_c * dh,
                                                 "state_bytes": 2 * n_c * dh * (-(-nf.ATTN_STATE_BITS // 8))}))
                connect(k, src, o, "syn")
                continue
            if kind == "ifg":
                work.update(state_updates=n_c, nonlinear_evals=3 * n_c + 1,
                            state_bytes=2 * n_c * (-(-24 // 8)))
            elif kind == "gate":
                work.update(nonlinear_evals=n_c + 1)
            elif kind == "o":
                work.update(nonlinear_evals=2 * np.ones(len(src)))
            k = reduction(si, src, add_step(stages[si].name, si, "neuron", src, work))
            if kind == "ifg":
                connect(k, src, o, "syn", norm=not binary)  # graded: + partial sum of squares for g_norm
            elif kind == "o":
                connect(k, src, gate, "syn")
                connect(k, src, down, "res")
            elif kind == "gate":
                connect(k, src, down, "syn")
            else:
                if nxt_ifg is not None:
                    connect(k, src, nxt_ifg, "syn")
                    connect(k, src, by_name[f"L{li + 1}.o"], "res")
                else:
                    connect(k, src, by_name["lm_head"], "syn")
    lm = by_name["lm_head"]
    psum_step(lm)
    src = parts(lm)
    n_c = cores["col1"][src] - cores["col0"][src]
    k = add_step("lm_head", lm, "neuron", src, {"neuron_updates": n_c, "nonlinear_evals": np.ones(len(src))})
    sampler = np.asarray(stages[by_name["sample"]].cores, dtype=np.int64)
    msgs.append((np.full(len(src), k), src, np.full(len(src), sampler[0]), np.full(len(src), 2), np.full(len(src), MSG_CTRL),
                 np.ones(len(src))))
    k = add_step("sample", by_name["sample"], "neuron", sampler, {"neuron_updates": np.asarray([len(src)])})
    msgs.append((np.full(len(owner), k), np.full(len(owner), sampler[0]), owner, np.ones(len(owner)), np.full(len(owner), MSG_CTRL),
                 np.ones(len(owner))))

    cat = [np.concatenate([m[i] for m in msgs]).astype(np.int64) for i in range(len(MSG_FIELDS))]
    order = np.lexsort((cat[1], cat[0]))
    messages = {f: cat[i][order] for i, f in enumerate(MSG_FIELDS)}
    mapping = Mapping(model=shape.to_dict(), preset=preset.name, hardware=hw,
                      options={"fill": fill, "placement": placement, "token": token, "seed": seed},
                      stages=stages, cores=cores, steps=steps, messages=messages, overrides=dict(preset.overrides))
    mapping.validate()
    return mapping


def auto_chips(shape: ModelShape, preset: Preset, fill: float = 1.0) -> Preset:
    """``preset`` with ``chips`` set to what ``shape`` needs."""
    return preset.with_overrides({"chips": chips_needed(shape, preset.hardware.replace(chips=1), fill)})


def mapped_on(shape: ModelShape, preset_name: str, cache: dict) -> tuple[Preset, Mapping]:
    """``shape`` on just enough chips of the named preset, and its mapping; compiled once per name into ``cache``."""
    if preset_name not in cache:
        preset = auto_chips(shape, load_preset(preset_name))
        cache[preset_name] = (preset, compile_model(shape, preset))
    return cache[preset_name]


def describe(mapping: Mapping) -> dict[str, Any]:
    """Summary plus the model and hardware names (for printing)."""
    return {"model": mapping.model["name"], "preset": mapping.preset, **mapping.summary()}
