"""Energy/latency presets: ``sim/presets/<name>.yaml`` → a :class:`Preset` (hardware + per-event costs).

A preset file has four sections, every entry ``{value: ..., source: "..."}``:

``hardware``   the :class:`sim.system.hwconfig.HWConfig` fields;
``energy_pj``  energy per event, picojoules (:data:`ENERGY_KEYS`);
``latency_ns`` time per event, nanoseconds (:data:`LATENCY_KEYS`);
``power_w``    ``static_per_chip``, watts, with ``range: [low, high]`` around the value (the source says why).

and two top-level entries of the same form: ``boundary`` (what the static power covers: ``chip``,
``board`` or ``system`` with device memory; :data:`BOUNDARIES`) and ``spike_formats`` (the list of spike
formats the hardware can carry, :data:`SPIKE_FORMATS`; the hardware field ``spike_format`` picks one of them).

Adding a preset is adding one file. A missing key, a missing source or a bad value is refused with one
line that names the file and the key. Costs are addressed as ``<key>_pj``, ``<key>_ns`` and
``static_per_chip`` (for ``--set`` overrides too).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.system.hwconfig import SPIKE_FORMATS, HWConfig

__all__ = ["PRESET_DIR", "ENERGY_KEYS", "LATENCY_KEYS", "POWER_KEYS", "BOUNDARIES", "Constant", "Preset",
           "preset_names", "load_preset"]

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"

#: Energy per event (pJ). ``synaptic_op``: one accumulate of a non-zero weight; ``neuron_idle``: a neuron
#: serviced in a timestep without input; ``input_event``: one received value buffered; ``axon_out``: one
#: packet generated; ``local_spike``: a packet delivered without a mesh hop; ``chip_link``: a packet over
#: a chip-to-chip link; ``*_byte``: memory traffic; ``offload_op``: one element of non-linear or element-wise
#: work on an embedded x86 core, ``offload_io``: one value moved between a neurocore and that x86 core (each
#: element goes there and back; used when the hardware's ``nonlinear_unit`` is ``x86``). Crossbar arrays (DAC, cells, ADC, shift-add) are costed
#: per MVM by the crossbar model (:mod:`sim.crossbar.costs`, table ``crossbar_periphery.yaml``), not here.
ENERGY_KEYS = ("synaptic_op", "neuron_update", "neuron_idle", "state_update", "nonlinear_eval", "input_event",
               "axon_out", "local_spike", "hop_ew", "hop_ns", "chip_link", "weight_read_byte", "state_byte",
               "sram_read_byte", "offload_op", "offload_io")
#: Time per event (ns). ``synapse_slot``: per (input event x stored column), zero weights included;
#: ``link_packet``/``chip_link_packet``: serialisation of one packet on a mesh/chip link; ``barrier_*``:
#: barrier synchronisation over 1 and 32 tiles (interpolated in log2 of the tile count); ``offload_*``: as
#: for the energies, per element on one x86 core (a chip's x86 cores work in parallel).
LATENCY_KEYS = ("synaptic_op", "synapse_slot", "neuron_update", "neuron_idle", "state_update", "nonlinear_eval",
                "input_event", "axon_out", "local_spike", "hop_ew", "hop_ns", "link_packet", "chip_link",
                "chip_link_packet", "sram_read_byte", "barrier_1tile", "barrier_32tiles", "offload_op", "offload_io")
POWER_KEYS = ("static_per_chip",)
#: What a preset's static power covers: the chip alone, its board, or the whole system with device memory.
BOUNDARIES = ("chip", "board", "system")

_SECTIONS = (("energy_pj", ENERGY_KEYS, "_pj", "pJ"), ("latency_ns", LATENCY_KEYS, "_ns", "ns"),
             ("power_w", POWER_KEYS, "", "W"))


@dataclass(frozen=True)
class Constant:
    """One number with its unit and where it comes from."""

    value: float
    unit: str
    source: str


@dataclass
class Preset:
    """A hardware configuration and its per-event energy/latency table."""

    name: str
    label: str
    estimate: bool
    description: str
    hardware: HWConfig
    hardware_sources: dict[str, str]
    costs: dict[str, Constant]
    boundary: str = "chip"
    boundary_source: str = ""
    spike_formats: tuple[str, ...] = SPIKE_FORMATS
    spike_formats_source: str = ""
    #: the range the static power per chip is stated in (W): low, high
    static_range: tuple[float, float] = (0.0, 0.0)
    path: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def pj(self, key: str) -> float:
        """Energy of one ``key`` event in picojoules."""
        return self.costs[key + "_pj"].value

    def ns(self, key: str) -> float:
        """Time of one ``key`` event in nanoseconds."""
        return self.costs[key + "_ns"].value

    @property
    def static_w(self) -> float:
        return self.costs["static_per_chip"].value

    def with_overrides(self, overrides: dict[str, Any]) -> "Preset":
        """A copy with hardware fields or cost keys (``synaptic_op_ns``, ``static_per_chip``) replaced."""
        hw_changes, costs = {}, dict(self.costs)
        hw_names = {f.name for f in dataclasses.fields(HWConfig)} - {"notes", "name"}
        for key, value in overrides.items():
            if key in hw_names:
                hw_changes[key] = value
            elif key in costs:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise ValueError(f"--set {key}={value!r}: a cost must be a non-negative number")
                costs[key] = Constant(float(value), costs[key].unit, "override on the command line")
            else:
                raise ValueError(f"--set {key}: not a hardware field ({', '.join(sorted(hw_names))}) "
                                 f"nor a cost key (for example synaptic_op_pj, synaptic_op_ns, static_per_chip)")
        hardware = self.hardware.replace(**hw_changes)
        _check_format(self.name, hardware.spike_format, self.spike_formats, "--set spike_format=")
        return dataclasses.replace(self, hardware=hardware, costs=costs, overrides={**self.overrides, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "estimate": self.estimate, "path": self.path,
                "boundary": self.boundary, "boundary_source": self.boundary_source,
                "spike_formats": list(self.spike_formats), "spike_formats_source": self.spike_formats_source,
                "static_range_w": list(self.static_range),
                "hardware": self.hardware.to_dict(), "overrides": dict(self.overrides),
                "costs": {k: {"value": c.value, "unit": c.unit, "source": c.source} for k, c in self.costs.items()}}


def _check_format(name: str, fmt: str, carried: tuple[str, ...], fix: str) -> None:
    if fmt not in carried:
        raise ValueError(f"{name} cannot carry {fmt} spikes (its hardware carries {', '.join(carried)}): "
                         f"use {fix}{carried[0]} or another preset")


def _range(path: Path, raw: dict, value: float) -> tuple[float, float]:
    """The ``range: [low, high]`` a static power states around its value (its source gives the reasoning)."""
    r = raw.get("range")
    if (not isinstance(r, list) or len(r) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                      or not math.isfinite(v) for v in r) or not 0 <= r[0] <= value <= r[1]):
        raise ValueError(f"{path.name}: power_w.static_per_chip needs range: [low, high] with 0 <= low <= value <= high "
                         f"(and its reasoning in the source), got {r!r}")
    return float(r[0]), float(r[1])


def _is_preset(path: Path) -> bool:
    """True for a YAML file with the preset sections (the folder also holds other cost tables)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and {"hardware", "energy_pj", "latency_ns", "power_w"} <= set(doc)


def preset_names() -> list[str]:
    """Names of the bundled presets (the ``*.yaml`` files in ``sim/presets`` that have preset sections)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if _is_preset(p))


def _entry(path: Path, section: str, key: str, raw: Any) -> tuple[Any, str]:
    where = f"{section}.{key}" if key else section
    if not isinstance(raw, dict) or "value" not in raw:
        raise ValueError(f"{path.name}: {where} must be {{value: ..., source: \"...\"}}")
    src = raw.get("source")
    if not isinstance(src, str) or not src.strip():
        raise ValueError(f"{path.name}: {where} has no source: add source: \"<paper, table or 'estimate: why'>\"")
    return raw["value"], src.strip()


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a bundled preset by name (``loihi1``) or any preset file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        path = p
    else:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no preset {str(name_or_path)!r}: choose one of {', '.join(preset_names())} or give a .yaml path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: a preset must be a YAML mapping with hardware/energy_pj/latency_ns/power_w")
    for s in ("name", "label", "boundary", "spike_formats", "hardware", "energy_pj", "latency_ns", "power_w"):
        if s not in doc:
            raise ValueError(f"{path.name}: missing section {s!r}")
    for s in ("hardware", "energy_pj", "latency_ns", "power_w"):
        if not isinstance(doc[s], dict):
            raise ValueError(f"{path.name}: {s} must be a mapping of {{value: ..., source: \"...\"}} entries")
    boundary, boundary_src = _entry(path, "boundary", "", doc["boundary"])
    if boundary not in BOUNDARIES:
        raise ValueError(f"{path.name}: boundary must be one of {', '.join(BOUNDARIES)} (what static power covers), got {boundary!r}")
    formats, formats_src = _entry(path, "spike_formats", "", doc["spike_formats"])
    if (not isinstance(formats, list) or not formats or any(f not in SPIKE_FORMATS for f in formats)
            or len(set(formats)) != len(formats)):
        raise ValueError(f"{path.name}: spike_formats must be a list of distinct formats from {', '.join(SPIKE_FORMATS)}, got {formats!r}")
    hw_vals, hw_src = {}, {}
    for key, raw in doc["hardware"].items():
        hw_vals[key], hw_src[key] = _entry(path, "hardware", key, raw)
    try:
        hw = HWConfig.from_dict({"name": str(doc["name"]), **hw_vals})
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    missing_hw = sorted({f.name for f in dataclasses.fields(HWConfig)} - {"notes", "name", "chip_grid"} - set(hw_src))
    if missing_hw:
        raise ValueError(f"{path.name}: hardware.{missing_hw[0]} is missing: every hardware field needs a value and a source")
    try:
        _check_format(str(doc["name"]), hw.spike_format, tuple(formats), "hardware.spike_format ")
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    costs: dict[str, Constant] = {}
    for section, keys, suffix, unit in _SECTIONS:
        table = doc[section]
        if not isinstance(table, dict):
            raise ValueError(f"{path.name}: {section} must be a mapping")
        for key in keys:
            if key not in table:
                raise ValueError(f"{path.name}: {section}.{key} is missing (every preset defines {', '.join(keys)})")
            value, src = _entry(path, section, key, table[key])
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{path.name}: {section}.{key} must be a non-negative number, got {value!r}")
            costs[key + suffix] = Constant(float(value), unit, src)
        extra = sorted(set(table) - set(keys))
        if section == "power_w":
            static_range = _range(path, table["static_per_chip"], float(table["static_per_chip"]["value"]))
        if extra:
            raise ValueError(f"{path.name}: unknown key {section}.{extra[0]} (known: {', '.join(keys)})")
    return Preset(name=str(doc["name"]), label=str(doc["label"]), estimate=bool(doc.get("estimate", False)),
                  description=str(doc.get("description", "")).strip(), hardware=hw, hardware_sources=hw_src,
                  costs=costs, boundary=boundary, boundary_source=boundary_src, spike_formats=tuple(formats),
                  spike_formats_source=formats_src, static_range=static_range, path=str(path))
