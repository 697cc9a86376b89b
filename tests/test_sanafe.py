"""SANA-FE cross-check: one stage of a mapping exported to SANA-FE (PyPI ``sanafe``) and simulated there,
against the system model under the same constants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sanafe  # noqa: F401  (the optional extra this module checks against: pip install -e '.[sanafe]')

from models.program.events import bit_spikes
from nmllm.cli import main
from sim.system.activity import assumed_activity
from sim.system.compiler import Mapping
from sim.system.energy import load_preset
from sim.system.sanafe import exact_synaptic_ops, ours, run


def _checkpoint(tmp_path):
    import torch

    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM

    torch.manual_seed(0)
    save_checkpoint(MMFreeForCausalLM(preset("tiny")), tmp_path / "ckpt")
    return tmp_path / "ckpt"


@pytest.mark.slow
def test_sanafe_agrees_with_the_system_model_on_one_stage(tmp_path):
    """`nmllm compile CKPT --sanafe DIR` writes L0.down of the tiny model on loihi1 (binary spikes); SANA-FE
    processes exactly the event vocabulary's synaptic ops and messages, and the system model agrees with it
    within the tolerances its two approximations allow (see below)."""
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from sim.system.sanafe import stage_inputs

    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "sanafe"
    assert main(["compile", str(ckpt), "--preset", "loihi1", "--chips", "auto", "--token", "5",
                 "--out", str(tmp_path / "m.json"), "--sanafe", str(out)]) == 0
    assert (out / "arch.yaml").is_file() and (out / "snn.yaml").is_file()
    theirs = run(out)
    mapping = Mapping.load(tmp_path / "m.json")
    preset = load_preset("loihi1").with_overrides({"chips": mapping.hardware.chips})
    codes, x = stage_inputs(IntegerProgram.from_model(load_checkpoint(ckpt)), 5, mapping, "L0.down")
    exact = exact_synaptic_ops(codes, x)
    assert theirs["synapse_j"] == pytest.approx(exact * preset.pj("synaptic_op") * 1e-12, rel=1e-9)

    # the system model on this token's densities of the stage
    events = int(np.count_nonzero(x))
    ops = int((x != 0).astype(np.int64) @ np.count_nonzero(codes, axis=0))
    act = assumed_activity(mapping_shape(mapping))
    down = lambda table, v: {**table, "down": v}  # noqa: E731
    act = replace(act, input_nonzero=down(act.input_nonzero, events / len(x)),
                  weight_density=down({k: act.weight_of(k) for k in act.input_nonzero}, ops / (events * codes.shape[0])),
                  bit_spikes_per_event=down(act.bit_spikes_per_event, int(bit_spikes(x).sum()) / events))
    mine = ours(mapping, preset, act, "L0.down")
    # one spike message per bit spike and destination core in both, with the same hops and costs
    assert mine["messages"] == pytest.approx(theirs["messages"], rel=1e-9)
    assert mine["network_j"] == pytest.approx(theirs["network_j"], rel=1e-9)
    # our synaptic ops are the stage's bit spikes x its mean non-zero weights per row (bit counts and row
    # sparsity taken as independent); SANA-FE processes each spike's own row: 3 % covers that here
    assert mine["synapse_j"] == pytest.approx(theirs["synapse_j"], rel=0.03)
    # our messages are aggregated per (source core, destination core, step), so a destination integrates
    # after a message's last packet; SANA-FE integrates each spike message as it arrives: ours may be later
    # by the injection time of the messages (packets x axon_out), plus 2 % for the synaptic-op estimate
    slack = theirs["messages"] * preset.ns("axon_out") * 1e-9 + 0.02 * theirs["time_s"]
    assert abs(mine["time_s"] - theirs["time_s"]) <= slack


def mapping_shape(mapping: Mapping):
    from sim.system.shapes import ModelShape

    m = mapping.model
    return ModelShape(name=m["name"], hidden=m["hidden"], input_dim=m["input_dim"], intermediate=m["intermediate"],
                      layers=m["layers"], vocab=m["vocab"], source=m["source"], derived=m["derived"])


def test_sanafe_export_refusals_are_one_line(tmp_path, capsys):
    assert main(["compile", "tiny", "--preset", "loihi1", "--out", str(tmp_path / "m.json"),
                 "--sanafe", str(tmp_path / "s")]) == 2
    assert "--sanafe needs a checkpoint directory with weights" in capsys.readouterr().err
    ckpt = _checkpoint(tmp_path)
    assert main(["compile", str(ckpt), "--preset", "loihi2-estimate", "--out", str(tmp_path / "m.json"),
                 "--sanafe", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("compile with --preset loihi1 or --set spike_format=binary") and len(err.splitlines()) == 1
    assert main(["compile", str(ckpt), "--preset", "loihi1", "--out", str(tmp_path / "m.json"),
                 "--sanafe", str(tmp_path / "s"), "--sanafe-stage", "L0.ifg"]) == 2
    assert "takes a stage of one weight tensor (o, gate, down, lm_head), not 'L0.ifg'" in capsys.readouterr().err
