"""SANA-FE export: one stage of a mapping as a SANA-FE architecture and spiking network, to cross-check us.

SANA-FE (PyPI ``sanafe``, SLAM-Lab, Boyle et al., IEEE TCAD 2025) is a community simulator of neuromorphic
chips at timestep granularity. :func:`architecture` writes one chip of a preset in SANA-FE's architecture
format with OUR constants (so the two simulators differ only in how they model, not in what they assume):
the ``tiles_x x tiles_y`` mesh with ``cores_per_tile`` cores, hop energies and latencies, ``axon_out`` per
message sent, ``input_event`` per message received, ``synaptic_op`` per synapse processed, no soma work
and no synchronisation time (the cross-check covers a timestep's spikes, network and synapses; the neuron
phase and the barrier are ours alone). :func:`stage_network` writes one projection stage of a mapping in
the binary spike format: every input of the stage becomes its ``BINARY_AXONS`` sign-magnitude bit-plane
axons (:func:`models.program.events.bit_spikes`) on the core that produces it, spiking in timestep 1 for
the int8 codes given, with a synapse of weight ``sign x w x 2**plane`` to each output neuron whose ternary
weight ``w`` is non-zero, output neurons on the cores that hold their columns.

``nmllm compile ... --sanafe DIR`` writes both files; :func:`run` simulates them in SANA-FE (one timestep)
and :func:`ours` gives the same quantities from the system model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.program.events import bit_spikes

from sim.system.compiler import MSG_SYN, Mapping
from sim.system.energy import Preset
from sim.system.hwconfig import BINARY_AXONS

__all__ = ["PLANES", "STAGE_PROJECTION", "architecture", "stage_network", "stage_inputs", "write", "run", "ours",
           "exact_synaptic_ops"]

#: Magnitude bit planes of an int8 code (|q| <= 127); an input has a positive and a negative axon per plane.
PLANES = BINARY_AXONS // 2


def _sanafe():
    try:
        import sanafe
    except ImportError:
        raise RuntimeError("the SANA-FE cross-check needs the sanafe package: pip install -e '.[sanafe]'") from None
    return sanafe


def architecture(preset: Preset, inputs_per_core: int) -> dict:
    """One chip of ``preset`` in SANA-FE's architecture format (a dict to write as YAML), with
    ``inputs_per_core`` spike-source units per core (one per bit-plane axon of the inputs it holds)."""
    hw, p = preset.hardware, preset
    pj, ns = (lambda k: p.pj(k) * 1e-12), (lambda k: p.ns(k) * 1e-9)
    core = {
        "name": f"core[0..{hw.cores_per_tile - 1}]",
        "attributes": {"buffer_position": "soma", "buffer_inside_unit": False,
                       "max_neurons_supported": max(hw.neurons_per_core, inputs_per_core)},
        "axon_in": [{"name": "axon_in", "attributes": {"energy_message_in": pj("input_event"),
                                                       "latency_message_in": ns("input_event")}}],
        "synapse": [{"name": "synapse", "attributes": {"model": "current_based",
                                                       "energy_process_spike": pj("synaptic_op"),
                                                       "latency_process_spike": ns("synaptic_op")}}],
        "dendrite": [{"name": "dendrite", "attributes": {"model": "accumulator", "energy_update": 0.0,
                                                         "latency_update": 0.0}}],
        "soma": [{"name": "lif", "attributes": {"model": "leaky_integrate_fire", "energy_access_neuron": 0.0,
                                                "latency_access_neuron": 0.0, "energy_update_neuron": 0.0,
                                                "latency_update_neuron": 0.0, "energy_spike_out": 0.0,
                                                "latency_spike_out": 0.0}},
                 {"name": f"source[0..{max(inputs_per_core, 1) - 1}]",
                  "attributes": {"model": "input", "energy_access_neuron": 0.0, "latency_access_neuron": 0.0,
                                 "energy_update_neuron": 0.0, "latency_update_neuron": 0.0,
                                 "energy_spike_out": 0.0, "latency_spike_out": 0.0}}],
        "axon_out": [{"name": "axon_out", "attributes": {"energy_message_out": pj("axon_out"),
                                                         "latency_message_out": ns("axon_out")}}],
    }
    hop = {f"{k}_{d}_hop": (pj if k == "energy" else ns)("hop_ew" if d in ("east", "west") else "hop_ns")
           for k in ("energy", "latency") for d in ("north", "east", "south", "west")}
    return {"architecture": {
        "name": f"{preset.name}_chip",
        "attributes": {"topology": "mesh", "width": hw.tiles_x, "height": hw.tiles_y, "link_buffer_size": 16,
                       "sync_model": "fixed", "latency_sync": 0.0},
        "tile": [{"name": f"tile[0..{hw.tiles_x * hw.tiles_y - 1}]", "attributes": hop, "core": [core]}]}}


def _stage(mapping: Mapping, name: str):
    names = [s.name for s in mapping.stages]
    if name not in names:
        raise ValueError(f"no stage {name!r} in the mapping: choose one of {', '.join(n for n in names if '.' in n or n == 'lm_head')}")
    si = names.index(name)
    st = mapping.stages[si]
    if st.kind not in ("o", "gate", "down", "lm_head") or len(st.tensors) != 1:
        raise ValueError(f"the SANA-FE export takes a stage of one weight tensor (o, gate, down, lm_head), not {name!r}")
    if st.row_blocks != 1:
        raise ValueError(f"stage {name} splits its rows over cores; the SANA-FE export needs whole synapse rows per core")
    if mapping.hardware.spike_format != "binary":
        raise ValueError(f"the SANA-FE export uses the binary spike format, but the mapping's is "
                         f"{mapping.hardware.spike_format}: compile with --preset loihi1 or --set spike_format=binary")
    if mapping.chips_used != 1:
        raise ValueError(f"the SANA-FE export is one chip; this mapping uses {mapping.chips_used}: map a smaller model")
    return si, st


def _sources(mapping: Mapping, si: int) -> tuple[np.ndarray, int]:
    """The cores sending the stage its inputs (syn messages into it), and the step they send in."""
    m = mapping.messages
    into = (m["kind"] == MSG_SYN) & np.isin(m["dst"], mapping.stages[si].cores)
    steps = np.unique(m["step"][into])
    if len(steps) != 1:
        raise ValueError(f"stage {mapping.stages[si].name} receives its inputs in {len(steps)} steps, not one")
    return np.unique(m["src"][into]), int(steps[0])


def _owners(mapping: Mapping, si: int) -> np.ndarray:
    """For each input of stage ``si``, the core that produces it (and sends its spikes)."""
    src, _ = _sources(mapping, si)
    owner = np.full(mapping.stages[si].fan_in, -1)
    for c in src:
        owner[int(mapping.cores["col0"][c]):int(mapping.cores["col1"][c])] = c
    if (owner < 0).any():
        raise ValueError(f"input {int(np.argmin(owner))} of stage {mapping.stages[si].name} has no sending core")
    return owner


def _core(mapping: Mapping, arch, core: int):
    """The SANA-FE core of mapping core ``core`` (SANA-FE numbers a mesh's tiles ``x * height + y``)."""
    x, y, slot = (int(mapping.cores[f][core]) for f in ("x", "y", "slot"))
    return arch.tiles[x * mapping.hardware.tiles_y + y].cores[slot]


def stage_network(mapping: Mapping, name: str, codes: np.ndarray, x: np.ndarray, arch):
    """Stage ``name`` of ``mapping`` with ternary ``codes`` (fan_out, fan_in) and int8 input codes ``x``
    (fan_in,) as a SANA-FE network mapped onto ``arch`` (a loaded SANA-FE architecture)."""
    sanafe = _sanafe()
    si, st = _stage(mapping, name)
    codes, x = np.asarray(codes), np.asarray(x)
    fan_out = st.fan_out * st.proj_count
    if codes.shape != (fan_out, st.fan_in) or x.shape != (st.fan_in,):
        raise ValueError(f"stage {name} needs codes of shape ({fan_out}, {st.fan_in}) and inputs of shape "
                         f"({st.fan_in},), got {codes.shape} and {x.shape}")
    owner = _owners(mapping, si)
    mag, negative = np.abs(x.astype(np.int64)), x < 0
    net = sanafe.Network()
    axons = net.create_neuron_group("axons", st.fan_in * BINARY_AXONS)
    unit: dict[int, int] = {}
    for k in range(st.fan_in):
        for s in range(2):
            for b in range(PLANES):
                fires = bool(x[k] != 0 and negative[k] == bool(s) and (mag[k] >> b) & 1)
                u = unit.get(int(owner[k]), 0)
                unit[int(owner[k])] = u + 1
                n = axons[k * BINARY_AXONS + s * PLANES + b]
                n.set_attributes(soma_hw_name=f"source[{u}]", model_attributes={"spikes": [fires]})
                n.map_to_core(_core(mapping, arch, int(owner[k])))
    outs = net.create_neuron_group("neurons", fan_out, model_attributes={"threshold": 1e30, "reset": 0.0,
                                                                          "leak_decay": 1.0})
    for core in st.cores:
        for w in mapping.weights_of(core):
            for j in range(*w["out"]):
                outs[j].map_to_core(_core(mapping, arch, core))
    rows, cols = np.nonzero(codes)
    pairs, weights = [], []
    for s in range(2):
        for b in range(PLANES):
            pairs += [(int(k) * BINARY_AXONS + s * PLANES + b, int(j)) for j, k in zip(rows, cols)]
            weights += [float((1 - 2 * s) * int(codes[j, k]) * (1 << b)) for j, k in zip(rows, cols)]
    axons.connect_neurons_sparse(outs, {"weight": weights}, pairs)
    return net


def write(out_dir, preset: Preset, mapping: Mapping, name: str, codes: np.ndarray, x: np.ndarray) -> list[Path]:
    """Write ``arch.yaml`` and ``snn.yaml`` of stage ``name`` into ``out_dir`` (SANA-FE's formats)."""
    import yaml

    sanafe = _sanafe()
    si, _ = _stage(mapping, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch_path, net_path = out / "arch.yaml", out / "snn.yaml"
    per_core = int(np.bincount(_owners(mapping, si)).max()) * BINARY_AXONS
    arch_path.write_text(yaml.safe_dump(architecture(preset, per_core), sort_keys=False))
    arch = sanafe.load_arch(str(arch_path))
    stage_network(mapping, name, codes, x, arch).save(str(net_path))
    return [arch_path, net_path]


def run(out_dir) -> dict:
    """Simulate a written stage in SANA-FE for one timestep: synapse and network energy (J), spike messages
    and the timestep's time (s)."""
    sanafe = _sanafe()
    out = Path(out_dir)
    arch = sanafe.load_arch(str(out / "arch.yaml"))
    chip = sanafe.SpikingChip(arch)
    chip.load(sanafe.load_net(str(out / "snn.yaml"), arch))
    r = chip.sim(1, message_trace=True)
    messages = sum(1 for m in r["message_trace"][0] if not m["placeholder"])
    return {"synapse_j": float(r["energy"]["synapse"]), "network_j": float(r["energy"]["network"]),
            "messages": messages, "time_s": float(r["sim_time"])}


def ours(mapping: Mapping, preset: Preset, activity, name: str) -> dict:
    """The system model's synapse and network energy (J), synaptic ops, spike messages (packets) and time (s)
    of the step in which stage ``name`` receives its inputs, on the constants SANA-FE is given (no neuron
    phase, no barrier: :func:`architecture`)."""
    from sim.system.model import SystemModel

    si, st = _stage(mapping, name)
    _, step = _sources(mapping, si)
    zero = {f"{k}_ns": 0.0 for k in ("neuron_update", "neuron_idle", "state_update", "nonlinear_eval",
                                     "sram_read_byte", "barrier_1tile", "barrier_32tiles", "offload_op", "offload_io")}
    p = preset.with_overrides(zero)
    model = SystemModel(mapping, p, activity)
    m = mapping.messages
    into = (m["step"] == step) & model.syn & np.isin(m["dst"], st.cores)
    pk = model.packets[into]
    network = (pk * (p.pj("axon_out") + model.hops_ew[into] * p.pj("hop_ew") + model.hops_ns[into] * p.pj("hop_ns")
                     + np.where(model.local[into], p.pj("local_spike"), 0.0))).sum() + model.received[into].sum() * p.pj("input_event")
    plan = model._decode_plan()
    durations, _, _, _ = model._run([plan[step]], False, "stage")
    return {"synapse_j": float(model.synops[into].sum()) * p.pj("synaptic_op") * 1e-12, "network_j": float(network) * 1e-12,
            "messages": float(pk.sum()), "time_s": durations[0] * 1e-9}


#: The integer program's projection held by a stage kind the export takes.
STAGE_PROJECTION = {"o": "o_proj", "gate": "gate_proj", "down": "down_proj"}


def stage_inputs(program, token: int, mapping: Mapping, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ternary codes, int8 input codes)`` of stage ``name`` when ``program`` (an
    :class:`models.program.integer_program.IntegerProgram`) reads token ``token`` from a fresh state: the
    weights and the inputs its projection receives (the integer view's ``accumulate`` hook)."""
    import torch

    from models.program.integer_view import IntegerView

    _, st = _stage(mapping, name)
    target = "lm_head" if st.kind == "lm_head" else f"layers.{st.layer}.{STAGE_PROJECTION[st.kind]}"
    seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def accumulate(proj: str, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        if proj == target:
            seen[proj] = (np.asarray(codes).copy(), np.asarray(x)[0].copy())
        return x.astype(np.int64) @ codes.astype(np.int64).T

    IntegerView(program, accumulate=accumulate).forward(torch.as_tensor([[int(token)]], dtype=torch.int64))
    return seen[target]


def exact_synaptic_ops(codes: np.ndarray, x: np.ndarray) -> int:
    """Binary-format synaptic ops of one input vector: every bit spike of ``x`` times the non-zero weights of
    its row (the event vocabulary, exactly)."""
    return int(bit_spikes(np.asarray(x)) @ np.count_nonzero(np.asarray(codes), axis=0))
