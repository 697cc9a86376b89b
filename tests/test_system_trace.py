"""``nmllm simulate --trace FILE``: the decode token's timesteps as a Chrome trace whose times and energies add
up to the report's."""

from __future__ import annotations

import json

import pytest

from nmllm.cli import main
from sim.system.activity import assumed_activity
from sim.system.compiler import auto_chips, compile_model
from sim.system.energy import load_preset
from sim.system.model import SystemModel
from sim.system.shapes import model_shape
from sim.system.trace import chrome_trace


@pytest.mark.parametrize("preset", ["loihi1", "loihi2-estimate", "crossbar"])
def test_trace_steps_add_up_to_the_report(preset):
    shape = model_shape("125m" if preset == "loihi1" else "tiny")
    p = auto_chips(shape, load_preset(preset))
    model = SystemModel(compile_model(shape, p), p, assumed_activity(shape))
    with pytest.raises(ValueError, match="has not simulated a token yet"):
        chrome_trace(model, None)
    r = model.run()
    tr = json.loads(json.dumps(chrome_trace(model, r)))
    steps = [e for e in tr["traceEvents"] if e["ph"] == "X" and e.get("tid") == 2]
    assert [e["name"] for e in steps] == [s["name"] for s in model.steps]
    assert sum(e["dur"] for e in steps) == pytest.approx(r.token_latency_s * 1e6, rel=1e-9)
    for a, b in zip(steps, steps[1:]):
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"], rel=1e-12)
    for cat in r.energy_j:
        if cat not in ("static", "total"):
            assert sum(e["args"]["dynamic_j"][cat] for e in steps) == pytest.approx(r.energy_j[cat], rel=1e-9, abs=1e-18), cat
    assert sum(e["args"]["static_j"] for e in steps) == pytest.approx(r.static_j, rel=1e-9)
    assert sum(e["args"]["messages"] for e in steps) == r.messages_sent
    token = [e for e in tr["traceEvents"] if e.get("cat") == "token"]
    assert len(token) == 1 and token[0]["dur"] == pytest.approx(r.token_latency_s * 1e6)


def test_simulate_writes_the_trace_and_refuses_a_folder(tmp_path, capsys):
    out = tmp_path / "t" / "trace.json"
    assert main(["simulate", "tiny", "--preset", "loihi1", "--chips", "auto", "--trace", str(out)]) == 0
    assert "Chrome trace" in capsys.readouterr().out
    assert {e["ph"] for e in json.loads(out.read_text())["traceEvents"]} == {"M", "X"}
    assert main(["simulate", "tiny", "--trace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a folder" in err and "\n" not in err
