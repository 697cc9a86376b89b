"""What a crossbar configuration costs: events, energy and latency per MVM and per token, and accuracy.

Events per matrix-vector product of a ``fan_in x out`` layer on ``tile_rows x tile_cols`` tiles with
``S = act_bits / dac_bits`` input slices (the event rates are stated in the cost table's header,
``sim/presets/crossbar_periphery.yaml``):

- DAC events: ``S * fan_in * column_tiles`` (every used word line of every tile, every slice);
- cell reads: ``2 * S * fan_in * out`` (both devices of every pair, every slice);
- ADC conversions and sample-and-holds: ``S * out * row_tiles``;
- shift-and-adds: one per conversion; partial-sum adds: ``(row_tiles - 1) * out``;
- buffer bits: the input vector read once per column tile, the outputs written once.

Latency: tiles run in parallel, each as the RTL tile (:class:`hw.crossbar_tile.CrossbarTile`) does, clocked
at one ADC conversion (``1 / rate_gsps``): :func:`models.program.crossbar.mvm_cycles` of the physical
``tile_rows x tile_cols`` tile (activations in, one array read per slice, ``min(tile_cols, columns_per_adc)``
conversions per ADC overlapping the next read, results out; the read time ``crossbar_cycle_ns`` in whole
clock cycles, :func:`models.program.crossbar.timing_cycles`), measured on the RTL in
``bench/results/crossbar_rtl.json``; then ``ceil(log2(row_tiles))`` partial-sum adds.

:func:`accuracy_sweep` runs a model once per knob setting through the layer-executor hook
(:class:`sim.crossbar.tile.CrossbarExecutor`) and picks the cheapest setting within a perplexity budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

from models.program import numformat
from models.program.crossbar import Periphery, check_adc_sharing, mvm_cycles, timing_cycles
from sim.crossbar.tile import CrossbarConfig, CrossbarExecutor

__all__ = ["DEFAULT_TABLE", "PeripheryCosts", "MVMEvents", "mvm_events", "mvm_cost", "clock_ns", "tile_cycles",
           "model_layers", "token_report", "accuracy_sweep"]

#: The cost table shipped with the package.
DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "presets" / "crossbar_periphery.yaml"


@dataclass(frozen=True)
class PeripheryCosts:
    """Per-event energies (pJ) and timings of one tile's periphery, each with its source."""

    dac_1bit_pj: float
    cell_read_pj: float
    sample_hold_pj: float
    adc_pj: float
    adc_ref_bits: int
    adc_rate_gsps: float
    shift_add_pj: float
    input_bit_pj: float
    output_bit_pj: float
    cycle_ns: float
    columns_per_adc: int
    add_ns: float
    sources: dict

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TABLE) -> "PeripheryCosts":
        """Read a cost table (the YAML layout of :data:`DEFAULT_TABLE`); every entry must cite a source."""
        data = yaml.safe_load(Path(path).read_text())
        ev, tm = data["events"], data["timing"]
        sources = {k: v["source"] for k, v in {**ev, **tm}.items()}
        missing = [k for k, s in sources.items() if not str(s).strip()]
        if missing:
            raise ValueError(f"Cost table {path} has constants without a source: {', '.join(missing)}")
        return cls(dac_1bit_pj=ev["dac_1bit"]["energy_pj"], cell_read_pj=ev["cell_read"]["energy_pj"],
                   sample_hold_pj=ev["sample_hold"]["energy_pj"], adc_pj=ev["adc"]["energy_pj"],
                   adc_ref_bits=ev["adc"]["bits"], adc_rate_gsps=ev["adc"]["rate_gsps"],
                   shift_add_pj=ev["shift_add"]["energy_pj"], input_bit_pj=ev["input_buffer_bit"]["energy_pj"],
                   output_bit_pj=ev["output_buffer_bit"]["energy_pj"], cycle_ns=tm["crossbar_cycle_ns"]["value"],
                   columns_per_adc=tm["columns_per_adc"]["value"], add_ns=tm["add_ns"]["value"], sources=sources)

    def adc_energy_pj(self, bits: int) -> float:
        """Energy of one conversion at ``bits`` (constant Walden figure of merit)."""
        return self.adc_pj * 2.0 ** (bits - self.adc_ref_bits)

    def dac_energy_pj(self, bits: int) -> float:
        """Energy of one DAC event at ``bits`` (a unary DAC: ``2**bits - 1`` unit events)."""
        return self.dac_1bit_pj * ((1 << bits) - 1)


@dataclass(frozen=True)
class MVMEvents:
    """Event counts of one matrix-vector product (see the module docstring for the rules) and the physical
    tile that runs it (``tile_rows x tile_cols`` weights, ``conversions_per_adc`` columns per ADC)."""

    slices: int
    row_tiles: int
    col_tiles: int
    dac_events: int
    cell_reads: int
    adc_conversions: int
    shift_adds: int
    partial_sum_adds: int
    input_bits: int
    output_bits: int
    conversions_per_adc: int
    tile_rows: int
    tile_cols: int


def mvm_events(fan_in: int, out_features: int, tile_rows: int, tile_cols: int, periphery: Periphery,
               columns_per_adc: int, out_bits: int | None = None) -> MVMEvents:
    """Events of one ``fan_in x out_features`` MVM on tiles of ``tile_rows x tile_cols`` weights."""
    for name, v in (("Fan-in", fan_in), ("Output count", out_features), ("Tile rows", tile_rows),
                    ("Tile columns", tile_cols), ("Columns per ADC", columns_per_adc)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    per_adc = min(tile_cols, columns_per_adc)
    check_adc_sharing(tile_cols, per_adc)
    s = periphery.slices
    rt, ct = math.ceil(fan_in / tile_rows), math.ceil(out_features / tile_cols)
    conv = s * out_features * rt
    out_bits = out_bits or numformat.acc_bits(fan_in, periphery.act_bits)
    return MVMEvents(slices=s, row_tiles=rt, col_tiles=ct, dac_events=s * fan_in * ct,
                     cell_reads=2 * s * fan_in * out_features, adc_conversions=conv, shift_adds=conv,
                     partial_sum_adds=(rt - 1) * out_features, input_bits=fan_in * periphery.act_bits * ct,
                     output_bits=out_features * out_bits,
                     conversions_per_adc=per_adc, tile_rows=tile_rows, tile_cols=tile_cols)


def mvm_cost(events: MVMEvents, periphery: Periphery, costs: PeripheryCosts) -> dict:
    """Energy per component (pJ), total energy and latency (ns) of one MVM with ``events``."""
    energy = {
        "dac": events.dac_events * costs.dac_energy_pj(periphery.dac_bits),
        "cell_read": events.cell_reads * costs.cell_read_pj,
        "sample_hold": events.adc_conversions * costs.sample_hold_pj,
        "adc": events.adc_conversions * costs.adc_energy_pj(periphery.adc_bits),
        "shift_add": (events.shift_adds + events.partial_sum_adds) * costs.shift_add_pj,
        "buffers": events.input_bits * costs.input_bit_pj + events.output_bits * costs.output_bit_pj,
    }
    cycles = tile_cycles(events, costs)
    latency = cycles * clock_ns(costs) + math.ceil(math.log2(events.row_tiles)) * costs.add_ns
    return {"energy_pj": energy, "total_pj": sum(energy.values()), "latency_ns": latency, "tile_cycles": cycles,
            "adc_conversions": events.adc_conversions}


def clock_ns(costs: PeripheryCosts) -> float:
    """The tile's clock period: one ADC conversion, ``1 / rate_gsps`` ns."""
    return 1.0 / costs.adc_rate_gsps


def tile_cycles(events: MVMEvents, costs: PeripheryCosts, clock: float | None = None) -> int:
    """Clock cycles of one tile's MVM (:func:`models.program.crossbar.mvm_cycles`, what the RTL tile takes) at a
    ``clock`` ns period (default :func:`clock_ns`: one conversion per cycle)."""
    clock = clock or clock_ns(costs)
    read, conv = timing_cycles(costs.cycle_ns, 1.0 / costs.adc_rate_gsps, clock)
    return mvm_cycles(events.tile_rows, events.tile_cols, events.slices, events.conversions_per_adc, read, conv)


def model_layers(config) -> dict[str, tuple[int, int]]:
    """``name -> (fan_in, out)`` of every ternary layer one token runs through (a :class:`MMFreeConfig`)."""
    d, e, m = config.hidden_size, config.input_dim, config.mlp_intermediate_size
    layers = {}
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}"
        layers.update({f"{p}.attn.i_proj": (d, e), f"{p}.attn.f_proj": (d, e), f"{p}.attn.g_proj": (d, e),
                       f"{p}.attn.o_proj": (e, d), f"{p}.mlp.gate_proj": (d, 2 * m),
                       f"{p}.mlp.down_proj": (m, d)})
    layers["lm_head"] = (d, config.vocab_size)
    return layers


def token_report(layers: dict[str, tuple[int, int]], crossbar: CrossbarConfig,
                 costs: PeripheryCosts | None = None) -> dict:
    """Per-layer ADC conversions, energy and latency of one token, and their totals.

    A layer smaller than a tile uses part of one tile (as :class:`CrossbarExecutor` maps it).
    """
    costs = costs or PeripheryCosts.load()
    rows = []
    for name, (fan_in, out) in layers.items():
        ev = mvm_events(fan_in, out, min(crossbar.tile_rows, fan_in), min(crossbar.tile_cols, out),
                        crossbar.periphery, costs.columns_per_adc)
        c = mvm_cost(ev, crossbar.periphery, costs)
        rows.append({"layer": name, "fan_in": fan_in, "out": out, "tiles": ev.row_tiles * ev.col_tiles,
                     "adc_conversions": ev.adc_conversions, "energy_pj": c["total_pj"],
                     "adc_energy_pj": c["energy_pj"]["adc"], "latency_ns": c["latency_ns"]})
    return {"layers": rows, "adc_conversions": sum(r["adc_conversions"] for r in rows),
            "energy_pj": sum(r["energy_pj"] for r in rows), "latency_ns": sum(r["latency_ns"] for r in rows)}


def accuracy_sweep(evaluate: Callable[[CrossbarExecutor | None], float], base: CrossbarConfig,
                   knobs: dict[str, Sequence], layers: dict[str, tuple[int, int]], *, tolerance: float = 0.01,
                   costs: PeripheryCosts | None = None) -> dict:
    """Perplexity against each knob, one knob at a time from ``base``, and the cheapest setting within budget.

    ``evaluate(executor)`` runs the model with its ternary layers executed by ``executor`` (None: the
    digital golden model) and returns its perplexity; ``layers`` (:func:`model_layers`) prices each
    setting per token. A point is within budget if its perplexity is at most ``(1 + tolerance)`` times
    the digital one; the cheapest such point (lowest energy per token) is returned as ``cheapest``.
    """
    costs = costs or PeripheryCosts.load()
    reference = float(evaluate(None))
    points = []
    for knob, values in knobs.items():
        for value in values:
            cfg = base.with_knob(knob, value)
            ppl = float(evaluate(CrossbarExecutor(cfg)))
            report = token_report(layers, cfg, costs)
            points.append({"knob": knob, "value": value, "perplexity": ppl,
                           "energy_pj_per_token": report["energy_pj"],
                           "adc_conversions_per_token": report["adc_conversions"],
                           "within_budget": ppl <= reference * (1 + tolerance)})
    ok = [p for p in points if p["within_budget"]]
    return {"reference_perplexity": reference, "tolerance": tolerance, "points": points,
            "cheapest": min(ok, key=lambda p: p["energy_pj_per_token"]) if ok else None}
