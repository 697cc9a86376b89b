"""The sweep spec: which models, which hardware knobs over which ranges, and what to measure.

A spec is a YAML mapping::

    name: sweep_370m
    models: [370m]                          # scale names (125m..13b), tiny/bundled, or checkpoint dirs
    sampling: {method: grid}                # grid | random | latin_hypercube (+ points: N, seed: S)
    knobs:
      preset: [loihi2-estimate, crossbar]   # a list: the values (categorical)
      fill: {min: 0.25, max: 1.0, step: 0.25}   # a range: grid needs step; random/LHS sample it
    metrics: [system, quality]              # system is always measured
    quality: {checkpoint: runs/bundled/checkpoints, tokens: 128}
    prompt_tokens: 500

Every knob maps onto a model that exists (:data:`KNOBS`); a knob with no model behind it yet
(``timesteps``, ``pruning``) is refused with the reason. Any hardware field of
:class:`sim.system.hwconfig.HWConfig` or cost key of a preset (``synaptic_op_ns``, ``static_per_chip``) is a
knob too. :func:`load_spec` raises :class:`SpecError` (one line naming the key and the fix) for the
first problem, a knob value no point could run with included (a negative count, a fill outside (0, 1]);
nothing runs before the whole spec is valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["SpecError", "KNOBS", "UNMODELLED", "METRICS", "SAMPLING", "Point", "Spec", "load_spec",
           "resolve_checkpoint", "PRESET_CLOCK_MHZ"]

#: Knobs with a model behind them: name -> what it sets.
KNOBS = {
    "preset": "hardware preset (sim/presets/*.yaml) or a preset .yaml path",
    "chips": "chips available: a positive integer or auto (as many as the model needs; default)",
    "cores_per_chip": "neurocores per chip: sets cores_per_tile = cores_per_chip / (tiles_x * tiles_y)",
    "mesh": "router mesh of one chip, 'XxY' (tiles_x x tiles_y)",
    "clock_mhz": "core clock of a preset with a stated clock (vck190: 300 MHz); scales its cycle latencies",
    "lanes": "parallel lanes of the RTL ternary core (vck190 preset; Yosys unit ternary_matvec)",
    "tile_size": "crossbar array rows = columns (crossbar presets; quality through the crossbar executor)",
    "adc_bits": "crossbar ADC resolution (crossbar presets: energy by the Walden scaling; quality through the crossbar executor)",
    "weight_bits": "bits per stored ternary weight (2 = packed codes, 8 = one byte; quality unchanged: still ternary)",
    "act_bits": "activation bits applied bit-serially to the crossbars (2, 4, 8; crossbar presets, system only)",
    "fill": "fraction of each core's synapse memory the compiler may use, in (0, 1]",
    "placement": "snake (default) or random placement of partitions on the mesh",
}
#: Knobs a user may ask for that have no model yet: name -> why they are refused.
UNMODELLED = {
    "timesteps": "the system model runs one graded-spike timestep per stage (sim/system/model.py) and the spike "
                 "codings of models/transformer/coding.py are not costed yet",
    "pruning": "no pruning of the integer program exists yet (issue 9: adaptive synaptic pruning)",
    "pruning_fraction": "no pruning of the integer program exists yet (issue 9: adaptive synaptic pruning)",
}
#: Measurements: system is always taken.
METRICS = ("system", "quality", "yosys")
SAMPLING = ("grid", "random", "latin_hypercube")
#: Presets whose latencies are stated in cycles of a known clock (sim/presets/vck190.yaml: "300 MHz assumed").
PRESET_CLOCK_MHZ = {"vck190": 300.0}
#: Knobs that need crossbar arrays in the preset.
CROSSBAR_KNOBS = ("tile_size", "adc_bits", "act_bits")
#: Knobs that need a preset with a stated clock.
CLOCKED_KNOBS = ("clock_mhz", "lanes")
_TOP = ("name", "description", "models", "sampling", "knobs", "metrics", "quality", "yosys", "prompt_tokens", "activity")
YOSYS_UNITS = ("ternary_matvec",)


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names the key and the fix."""


@dataclass(frozen=True)
class Point:
    """One design point: a model and one value per knob; ``id`` is stable across runs of the same spec."""

    index: int
    model: str
    knobs: dict

    @property
    def id(self) -> str:
        text = json.dumps({"model": self.model, "knobs": self.knobs}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"index": self.index, "id": self.id, "model": self.model, "knobs": dict(self.knobs)}


@dataclass
class Spec:
    """A validated sweep spec (see the module docstring)."""

    name: str
    models: list[str]
    sampling: dict
    knobs: dict[str, Any]
    metrics: tuple[str, ...]
    quality: dict = field(default_factory=dict)
    yosys: dict = field(default_factory=dict)
    prompt_tokens: int = 500
    activity: str = "assumed"
    description: str = ""
    text: str = ""

    @property
    def hash(self) -> str:
        """sha256 of the canonical spec (what a store is tied to)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("text", "description")}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    def points(self) -> list[Point]:
        """The design points, in a fixed order (models outermost)."""
        combos = _sample(self.knobs, self.sampling)
        out, seen = [], set()
        for model in self.models:
            for knobs in combos:
                p = Point(len(out), model, knobs)
                if p.id not in seen:          # random sampling of small lists may repeat a point
                    seen.add(p.id)
                    out.append(p)
        return out


# ------------------------------------------------------------------------------------------ sampling
def _is_range(v) -> bool:
    return isinstance(v, dict)


def _grid_values(name: str, r: dict) -> list:
    lo, hi, step = r["min"], r["max"], r.get("step")
    if step is None:
        raise SpecError(f"knob {name!r}: a grid needs a list of values or a range with step (min, max, step)")
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    vals = [lo + i * step for i in range(n)]
    return [int(round(v)) for v in vals] if r["int"] else [round(float(v), 12) for v in vals]


def _from_unit(r: dict, u: float):
    lo, hi = r["min"], r["max"]
    if r.get("log"):
        v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        v = lo + u * (hi - lo)
    if r["int"]:
        return int(min(hi, max(lo, math.floor(v + 0.5) if u < 1 else hi)))
    return round(float(v), 12)


def _sample(knobs: dict[str, Any], sampling: dict) -> list[dict]:
    names = sorted(knobs)
    method = sampling["method"]
    if method == "grid":
        axes = [knobs[n] if not _is_range(knobs[n]) else _grid_values(n, knobs[n]) for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*axes)]
    n, seed = sampling["points"], sampling["seed"]
    if method == "random":
        u = np.random.default_rng(seed).random((n, len(names)))
    else:
        from scipy.stats import qmc
        u = qmc.LatinHypercube(d=max(1, len(names)), seed=seed).random(n)
    out = []
    for row in u:
        d = {}
        for j, name in enumerate(names):
            k = knobs[name]
            if _is_range(k):
                d[name] = _from_unit(k, float(row[j]))
            else:
                d[name] = k[min(len(k) - 1, int(row[j] * len(k)))]
        out.append(d)
    return out


# ---------------------------------------------------------------------------------------- validation
def _knob_names() -> list[str]:
    from sim.system.energy import load_preset
    from sim.system.hwconfig import HWConfig
    hw = {f.name for f in dataclasses.fields(HWConfig)} - {"notes", "name"}
    costs = set(load_preset("loihi1").costs)
    return sorted(set(KNOBS) | hw | costs)


def _check_knob(name: str, raw: Any) -> Any:
    if name in UNMODELLED:
        raise SpecError(f"knob {name!r} has no model behind it yet: {UNMODELLED[name]}; remove it from knobs")
    known = _knob_names()
    if name not in known:
        raise SpecError(f"unknown knob {name!r}: use one of {', '.join(KNOBS)} or a hardware field / cost key "
                        f"({', '.join(k for k in known if k not in KNOBS)})")
    if isinstance(raw, list):
        if not raw:
            raise SpecError(f"knob {name!r} has an empty range: give at least one value")
        return list(raw)
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"min", "max", "step", "log"})
        if extra or "min" not in raw or "max" not in raw:
            raise SpecError(f"knob {name!r}: a range is {{min: A, max: B[, step: S][, log: true]}}"
                            + (f", not key {extra[0]!r}" if extra else ""))
        lo, hi, step = raw["min"], raw["max"], raw.get("step")
        for k, v in (("min", lo), ("max", hi)) + ((("step", step),) if step is not None else ()):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpecError(f"knob {name!r}: {k} must be a number, got {v!r}")
        if hi < lo:
            raise SpecError(f"knob {name!r} has an empty range: min {lo} > max {hi}")
        if step is not None and step <= 0:
            raise SpecError(f"knob {name!r}: step must be positive, got {step}")
        if raw.get("log") and lo <= 0:
            raise SpecError(f"knob {name!r}: a log range needs min > 0, got {lo}")
        is_int = all(isinstance(v, int) for v in (lo, hi) + ((step,) if step is not None else ()))
        return {"min": lo, "max": hi, "step": step, "log": bool(raw.get("log", False)), "int": is_int}
    return [raw]                                                      # a scalar: one fixed value


def _values(knob) -> list:
    if _is_range(knob):
        return [knob["min"], knob["max"]]
    return knob


def _count(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 1


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _mesh(v) -> bool:
    if isinstance(v, str):
        return re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", v.lower()) is not None
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_count(x) for x in v)


#: Knobs that are neither hardware fields nor cost keys: knob -> (test of one value, what a value must be).
_DOMAINS = {
    "chips": (lambda v: _count(v) or str(v).lower() == "auto", "a positive integer or auto"),
    "cores_per_chip": (_count, "a positive integer"),
    "lanes": (_count, "a positive integer"),
    "tile_size": (_count, "a positive integer"),
    "adc_bits": (_count, "a positive integer"),
    "clock_mhz": (lambda v: _number(v) and v > 0, "a positive number"),
    "fill": (lambda v: _number(v) and 0 < v <= 1, "a fraction in (0, 1]"),
    "mesh": (_mesh, "XxY with positive integers X and Y (for example 8x4)"),
}


def _check_values(knobs: dict, presets: dict) -> None:
    """Refuse a knob value no point could run with (both ends of a range are checked): the domains above,
    and for hardware fields and cost keys what every preset of the spec accepts."""
    for name, knob in knobs.items():
        if name in ("preset", "placement", "act_bits"):               # checked against their own lists
            continue
        for v in _values(knob):
            if name in _DOMAINS:
                test, want = _DOMAINS[name]
                if not test(v):
                    raise SpecError(f"knob {name!r} must be {want}, got {v!r}: fix its values")
                continue
            for pname, preset in presets.items():
                if name in preset.costs:
                    if not (_number(v) and v >= 0):
                        raise SpecError(f"knob {name!r} is a cost and must be a number >= 0, got {v!r}: fix its values")
                    continue
                try:
                    preset.hardware.replace(**{name: v})
                except ValueError as exc:
                    problem = str(exc).split(": ")[0]
                    raise SpecError(f"knob {name!r}: value {v!r} does not fit preset {pname!r} ({problem}): fix its values") from None


def _check_applicability(knobs: dict, metrics: tuple[str, ...]) -> None:
    from sim.system.energy import load_preset
    presets = _values(knobs["preset"]) if "preset" in knobs else ["loihi2-estimate"]
    loaded = {}
    for p in presets:
        try:
            loaded[p] = load_preset(p)
        except (FileNotFoundError, ValueError) as exc:
            raise SpecError(f"knob 'preset': {exc}") from None
    _check_values(knobs, loaded)
    for knob in CROSSBAR_KNOBS:
        if knob in knobs:
            digital = [p for p, pr in loaded.items() if not pr.hardware.has_crossbars]
            if digital:
                raise SpecError(f"knob {knob!r} needs a crossbar preset, but preset {digital[0]!r} has no crossbar "
                                f"arrays: sweep {knob} only over crossbar presets (e.g. preset: [crossbar])")
    for knob in CLOCKED_KNOBS:
        if knob in knobs:
            unclocked = [p for p, pr in loaded.items() if pr.name not in PRESET_CLOCK_MHZ]
            if unclocked:
                raise SpecError(f"knob {knob!r} needs a preset with a stated clock ({', '.join(PRESET_CLOCK_MHZ)}), "
                                f"but preset {unclocked[0]!r} states latencies in ns only: sweep {knob} over vck190")
    if "act_bits" in knobs:
        from models.program.numformat import ACT_BITS_ALLOWED
        bad = [v for v in _values(knobs["act_bits"]) if v not in ACT_BITS_ALLOWED]
        if bad:
            raise SpecError(f"knob 'act_bits': {bad[0]!r} is not a width of the number-format spec; use {ACT_BITS_ALLOWED}")
        if "quality" in metrics and any(v != 8 for v in _values(knobs["act_bits"])):
            raise SpecError("knob 'act_bits' below 8 has no quality model (the integer program is int8): "
                            "drop metric quality or keep act_bits: [8]")
    if "placement" in knobs:
        bad = [v for v in _values(knobs["placement"]) if v not in ("snake", "random")]
        if bad:
            raise SpecError(f"knob 'placement': {bad[0]!r} is not snake or random")
    if "yosys" in metrics and "lanes" not in knobs:
        raise SpecError("metric 'yosys' synthesises the RTL core of each point: sweep knob lanes (with preset vck190)")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a ``checkpoints/`` folder whose ``LATEST`` file names one."""
    p = Path(path)
    if (p / "LATEST").is_file():
        p = p / (p / "LATEST").read_text().strip()
    if not (p / "config.json").is_file():
        raise SpecError(f"quality.checkpoint {str(path)!r} is not a checkpoint directory (no config.json): "
                        f"train one (nmllm train) or point it at a folder with config.json + model.safetensors")
    return p


def _find_tokenizer(ckpt: Path) -> Path | None:
    for d in (ckpt, ckpt.parent, ckpt.parent.parent):
        if (d / "tokenizer.json").is_file():
            return d / "tokenizer.json"
    return None


def _check_quality(q: Any, base: Path) -> dict:
    if not isinstance(q, dict) or "checkpoint" not in q:
        raise SpecError("metric 'quality' needs a quality section with checkpoint: DIR (a trained or random model)")
    extra = sorted(set(q) - {"checkpoint", "tokenizer", "text", "tokens", "engine", "window"})
    if extra:
        raise SpecError(f"quality: unknown key {extra[0]!r} (known: checkpoint, tokenizer, text, tokens, engine, window)")
    ckpt = resolve_checkpoint(_rel(q["checkpoint"], base))
    tok = Path(_rel(q["tokenizer"], base)) if "tokenizer" in q else _find_tokenizer(ckpt)
    if tok is None or not tok.is_file():
        raise SpecError(f"quality.tokenizer: no tokenizer.json for {ckpt}: give tokenizer: PATH")
    if "text" in q:
        text = Path(_rel(q["text"], base))
    else:
        from models.eval.perplexity import default_data_path
        text = default_data_path()
    if not text.is_file():
        raise SpecError(f"quality.text {str(text)!r} does not exist: give text: PATH (a UTF-8 text file)")
    tokens = q.get("tokens", 128)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise SpecError(f"quality.tokens must be an integer >= 2, got {tokens!r}")
    engine = q.get("engine", "integer")
    if engine not in ("integer", "golden"):
        raise SpecError(f"quality.engine must be integer or golden, got {engine!r}")
    window = q.get("window", min(tokens, 128))
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise SpecError(f"quality.window must be an integer >= 2, got {window!r}")
    return {"checkpoint": str(ckpt.resolve()), "tokenizer": str(tok.resolve()), "text": str(text.resolve()),
            "tokens": tokens, "engine": engine, "window": window}


def _rel(p: str, base: Path) -> str:
    """Relative paths are tried as given (the working directory), then next to the spec file."""
    path = Path(p)
    if path.is_absolute() or path.exists():
        return str(path)
    return str(base / path)


def _check_model(m: Any, base: Path) -> str:
    from sim.system.shapes import model_shape
    if not isinstance(m, str) or not m:
        raise SpecError(f"models: each model is a name or a checkpoint directory, got {m!r}")
    path = Path(_rel(m, base))
    if path.is_dir():
        if (path / "LATEST").is_file():
            path = resolve_checkpoint(path)
        m = str(path.resolve())
    try:
        model_shape(m)
    except (ValueError, FileNotFoundError) as exc:
        raise SpecError(f"models: {exc}") from None
    return m


def load_spec(source: str | Path | dict) -> Spec:
    """Read and validate a spec (a YAML path or an already-parsed mapping)."""
    if isinstance(source, dict):
        doc, text, base = source, yaml.safe_dump(source, sort_keys=False), Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"no sweep spec {str(path)!r}: give a YAML file (see examples/sweep_370m.yaml)")
        text, base = path.read_text(), path.resolve().parent
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise SpecError("a sweep spec is a YAML mapping with models, knobs and metrics")
    extra = sorted(set(doc) - set(_TOP))
    if extra:
        raise SpecError(f"unknown spec key {extra[0]!r}: known keys are {', '.join(_TOP)}")
    models = doc.get("models")
    if isinstance(models, str):
        models = [models]
    if not models or not isinstance(models, list):
        raise SpecError("models: give at least one model (370m, a config preset or a checkpoint directory)")
    models = [_check_model(m, base) for m in models]
    metrics = doc.get("metrics", ["system"])
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list):
        raise SpecError(f"metrics must be a list of {', '.join(METRICS)}")
    for m in metrics:
        if m not in METRICS:
            raise SpecError(f"unknown metric {m!r}: choose from {', '.join(METRICS)}")
    metrics = tuple(m for m in METRICS if m == "system" or m in metrics)
    raw_knobs = doc.get("knobs") or {}
    if not isinstance(raw_knobs, dict):
        raise SpecError("knobs must be a mapping of knob name -> list of values or {min, max[, step]}")
    knobs = {str(k): _check_knob(str(k), v) for k, v in raw_knobs.items()}
    _check_applicability(knobs, metrics)
    samp = doc.get("sampling", {"method": "grid"})
    if isinstance(samp, str):
        samp = {"method": samp}
    if not isinstance(samp, dict) or samp.get("method") not in SAMPLING:
        raise SpecError(f"sampling.method must be one of {', '.join(SAMPLING)}, got {samp!r}")
    extra = sorted(set(samp) - {"method", "points", "seed"})
    if extra:
        raise SpecError(f"sampling: unknown key {extra[0]!r} (known: method, points, seed)")
    if samp["method"] == "grid":
        samp = {"method": "grid"}
    else:
        n = samp.get("points")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(f"sampling.points must be a positive integer for {samp['method']}, got {n!r}")
        seed = samp.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SpecError(f"sampling.seed must be an integer, got {seed!r}")
        samp = {"method": samp["method"], "points": n, "seed": seed}
    quality = _check_quality(doc.get("quality"), base) if "quality" in metrics else {}
    yosys = {}
    if "yosys" in metrics:
        y = doc.get("yosys") or {}
        extra = sorted(set(y) - {"unit", "fan_in", "out_features"})
        if extra:
            raise SpecError(f"yosys: unknown key {extra[0]!r} (known: unit, fan_in, out_features)")
        yosys = {"unit": y.get("unit", "ternary_matvec"), "fan_in": int(y.get("fan_in", 256)),
                 "out_features": int(y.get("out_features", 64))}
        if yosys["unit"] not in YOSYS_UNITS:
            raise SpecError(f"yosys.unit {yosys['unit']!r} has no lanes knob model: use {', '.join(YOSYS_UNITS)}")
        import shutil
        if shutil.which("yosys") is None:
            raise SpecError("metric 'yosys' needs yosys with synth_xilinx on PATH: apt-get install yosys")
    prompt = doc.get("prompt_tokens", 500)
    if isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 1:
        raise SpecError(f"prompt_tokens must be a positive integer, got {prompt!r}")
    activity = doc.get("activity", "assumed")
    if activity != "assumed":
        apath = Path(_rel(str(activity), base))
        if not apath.is_file():
            raise SpecError(f"activity {activity!r}: give assumed or a JSON from `nmllm activity`")
        activity = str(apath.resolve())
    name = str(doc.get("name") or (Path(source).stem if not isinstance(source, dict) else "sweep"))
    spec = Spec(name=name, models=models, sampling=samp, knobs=knobs, metrics=metrics, quality=quality,
                yosys=yosys, prompt_tokens=prompt, activity=activity, description=str(doc.get("description", "")),
                text=text)
    if not spec.points():
        raise SpecError("the spec names no design points: give every knob at least one value")
    return spec
