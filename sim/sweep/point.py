"""One design point → its metrics: the knobs applied to a preset, compiled, simulated, and optionally
scored for quality (perplexity through the integer program) and RTL utilisation (Yosys).

:func:`evaluate_point` never raises: a point that fails (the model does not fit, a knob value the
hardware refuses) comes back as ``{"status": "failed", "error": "..."}`` so the sweep goes on.
Everything a worker loads (presets, activity, checkpoints, Yosys results) is cached per process.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
import traceback
from pathlib import Path


from sim.system.model import SystemModel
from sim.sweep.spec import PRESET_CLOCK_MHZ

__all__ = ["apply_knobs", "evaluate_point", "system_metrics", "quality_metrics", "CYCLE_LATENCIES", "RTL_LANES"]

#: Latency keys of a clocked preset that are whole cycles (scaled by the clock knob); chip links are not.
CYCLE_LATENCIES = ("synapse_slot", "neuron_update", "neuron_idle", "state_update", "nonlinear_eval", "input_event",
                   "axon_out", "local_spike", "hop_ew", "hop_ns", "link_packet", "sram_read_byte", "barrier_1tile",
                   "barrier_32tiles")
#: Lanes of the RTL core the vck190 preset's synapse_slot assumes (sim/presets/vck190.yaml: TernaryMatVec, 8 lanes).
RTL_LANES = 8


@functools.lru_cache(maxsize=None)
def _preset(name: str):
    from sim.system.energy import load_preset
    return load_preset(name)


@functools.lru_cache(maxsize=None)
def _shape(model: str):
    from sim.system.shapes import model_shape
    return model_shape(model)


@functools.lru_cache(maxsize=None)
def _activity(model: str, source: str):
    from sim.system.activity import Activity, assumed_activity
    if source == "assumed":
        return assumed_activity(_shape(model))
    import json
    return Activity.from_dict(json.loads(Path(source).read_text()))


def _mesh(value) -> tuple[int, int]:
    if isinstance(value, str) and value.lower().count("x") == 1:
        a, b = value.lower().split("x")
        if a.isdigit() and b.isdigit():
            return int(a), int(b)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"mesh must look like 8x4 (tiles_x x tiles_y), got {value!r}")


def apply_knobs(model: str, knobs: dict):
    """(preset with the knobs applied, fill, placement, adc_bits) for one point."""
    from sim.system.compiler import chips_needed
    preset = _preset(str(knobs.get("preset", "loihi2-estimate")))
    hw = preset.hardware
    changes: dict = {}
    for k, v in knobs.items():
        if k in ("preset", "chips", "mesh", "cores_per_chip", "clock_mhz", "lanes", "tile_size", "adc_bits",
                 "act_bits", "fill", "placement"):
            continue
        changes[k] = v
    if "mesh" in knobs:
        changes["tiles_x"], changes["tiles_y"] = _mesh(knobs["mesh"])
    if "cores_per_chip" in knobs:
        cpc = knobs["cores_per_chip"]
        routers = changes.get("tiles_x", hw.tiles_x) * changes.get("tiles_y", hw.tiles_y)
        if isinstance(cpc, bool) or not isinstance(cpc, int) or cpc < 1 or cpc % routers:
            raise ValueError(f"cores_per_chip={cpc!r} is not a positive multiple of the {routers} routers per chip: "
                             f"pick a multiple or change mesh")
        changes["cores_per_tile"] = cpc // routers
    if "tile_size" in knobs:
        changes["xbar_rows"] = changes["xbar_cols"] = int(knobs["tile_size"])
    if "act_bits" in knobs:
        changes["xbar_input_bits"] = int(knobs["act_bits"])
    if "clock_mhz" in knobs or "lanes" in knobs:
        clock = float(knobs.get("clock_mhz", PRESET_CLOCK_MHZ[preset.name]))
        lanes = int(knobs.get("lanes", RTL_LANES))
        if not clock > 0 or lanes < 1:
            raise ValueError(f"clock_mhz must be > 0 and lanes >= 1, got {clock} and {lanes}")
        f = PRESET_CLOCK_MHZ[preset.name] / clock
        for key in CYCLE_LATENCIES:
            changes.setdefault(f"{key}_ns", preset.ns(key) * f * (RTL_LANES / lanes if key == "synapse_slot" else 1.0))
    if changes:
        preset = preset.with_overrides(changes)
    fill = float(knobs.get("fill", 1.0))
    placement = str(knobs.get("placement", "snake"))
    chips = knobs.get("chips", "auto")
    if str(chips).lower() == "auto":
        preset = preset.with_overrides({"chips": chips_needed(_shape(model), preset.hardware.replace(chips=1), fill)})
    else:
        preset = preset.with_overrides({"chips": int(chips)})
    return preset, fill, placement, int(knobs.get("adc_bits", 8))


def system_metrics(model: str, knobs: dict, prompt_tokens: int = 500, activity: str = "assumed") -> dict:
    """Compile and simulate one point: tokens/s, latency, TTFT, energy per token, power, chips, cores."""
    from sim.system.compiler import compile_model
    shape = _shape(model)
    preset, fill, placement, adc_bits = apply_knobs(model, knobs)
    mapping = compile_model(shape, preset, fill=fill, placement=placement)
    r = SystemModel(mapping, preset, _activity(model, activity), adc_bits=adc_bits).run(prompt_tokens=prompt_tokens)
    static = r.energy_j.get("static", 0.0)
    out = {"tokens_per_s": r.tokens_per_s, "token_latency_s": r.token_latency_s, "ttft_s": r.ttft_s,
           "energy_per_token_j": r.energy_per_token_j, "dynamic_energy_per_token_j": r.energy_per_token_j - static,
           "static_energy_share": static / r.energy_per_token_j if r.energy_per_token_j else 0.0,
           "prefill_energy_per_token_j": r.prefill_energy_per_token_j, "power_w": r.power_w,
           "chips": r.chips, "cores": r.cores, "core_utilisation": r.core_utilisation, "mean_hops": r.mean_hops,
           "steps_per_token": r.steps_per_token, "estimate_preset": bool(r.estimate), "model_params": shape.params}
    out.update({f"energy_{k}_j": v for k, v in r.energy_j.items() if k != "total"})
    return out


@functools.lru_cache(maxsize=16)
def _quality(checkpoint: str, tokenizer: str, text: str, tokens: int, engine: str, window: int,
             tile_rows: int, tile_cols: int, adc_bits: int) -> dict:
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.engines import logits_fn
    from models.program.integer_program import IntegerProgram
    from models.program.integer_view import IntegerView
    from models.eval.perplexity import text_perplexity
    from models.text.tokenizer import load_tokenizer

    model = load_checkpoint(checkpoint)
    if tile_rows:
        from models.program.crossbar import Periphery
        from sim.crossbar.tile import CrossbarConfig, CrossbarExecutor
        executor = CrossbarExecutor(CrossbarConfig(tile_rows=tile_rows, tile_cols=tile_cols,
                                                   periphery=Periphery(adc_bits=adc_bits)))
        fn, used = IntegerView(IntegerProgram.from_model(model), accumulate=executor).logits_float, "integer+crossbar"
    else:
        fn, used = logits_fn(model, engine), engine
    raw = Path(text).read_text(encoding="utf-8")[: 40 * tokens]
    r = text_perplexity(fn, load_tokenizer(tokenizer), raw, window=window, stride=window, max_tokens=tokens)
    return {"perplexity": r["token_ppl"], "bits_per_byte": r["bits_per_byte"], "quality_tokens": r["tokens"],
            "quality_engine": used, "quality_checkpoint": Path(checkpoint).name}


def quality_metrics(knobs: dict, quality: dict) -> dict:
    """Perplexity of the quality checkpoint's integer program on a text subset, at this point's knobs
    (crossbar presets: every ternary product through crossbar tiles of ``tile_size`` and ``adc_bits``)."""
    preset = _preset(str(knobs.get("preset", "loihi2-estimate")))
    hw = preset.hardware
    if hw.has_crossbars:
        size = int(knobs.get("tile_size", hw.xbar_rows))
        rows, cols = size, size // hw.xbar_cells_per_weight
    else:
        rows = cols = 0
    return dict(_quality(quality["checkpoint"], quality["tokenizer"], quality["text"], quality["tokens"],
                         quality["engine"], quality["window"], rows, cols, int(knobs.get("adc_bits", 8))))


def evaluate_point(point: dict, ctx: dict) -> dict:
    """Metrics of one point (``Point.to_dict()``) under the spec context ``ctx``; never raises."""
    t0 = time.perf_counter()
    out = {"id": point["id"], "index": point["index"], "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        metrics = system_metrics(point["model"], point["knobs"], ctx.get("prompt_tokens", 500),
                                 ctx.get("activity", "assumed"))
        if "quality" in ctx.get("metrics", ()):
            metrics.update(quality_metrics(point["knobs"], ctx["quality"]))
        if "yosys" in ctx.get("metrics", ()):
            from sim.sweep.yosys import utilisation
            y = ctx["yosys"]
            counts = utilisation(y["unit"], int(point["knobs"].get("lanes", RTL_LANES)), y["fan_in"], y["out_features"])
            metrics.update({f"yosys_{k.lower()}_per_core": v for k, v in counts.items()})
            metrics["yosys_lut_total"] = counts["LUT"] * metrics["cores"]
        for k, v in metrics.items():
            if isinstance(v, float) and not math.isfinite(v):
                metrics[k] = None
        out.update(status="ok", error=None, metrics=metrics)
    except Exception as exc:  # a failing point is recorded, the sweep goes on
        msg = str(exc).splitlines()[0] if str(exc) else ""
        out.update(status="failed", error=f"{type(exc).__name__}: {msg}", metrics={},
                   traceback=traceback.format_exc(limit=4))
    out["wall_s"] = time.perf_counter() - t0
    log = ctx.get("compute_log")
    if log:  # one line per computation, appended atomically (tests count recomputations with it)
        with open(log, "a") as fh:
            fh.write(f"{point['id']}\n")
    return out
