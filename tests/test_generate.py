"""``nmllm generate``: argument refusals before anything slow, the golden target, and the RTL end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmllm.cli import main


def _error(capsys, argv: list[str]) -> str:
    assert main(["generate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_refusals_name_the_problem_in_one_line(capsys, tmp_path):
    assert "--tokens 0: generate at least 1 token" in _error(capsys, ["--tokens", "0"])
    assert "unknown simulator 'modelsim'" in _error(capsys, ["--target", "rtl", "--simulator", "modelsim"])
    assert "no config.json" in _error(capsys, ["--model", str(tmp_path)])
    assert "token ids" in _error(capsys, ["--model", "tiny", "--prompt", "five"])
    assert "0..127" in _error(capsys, ["--model", "tiny", "--prompt", "5 128"])
    long = " ".join(["5"] * 129)
    assert "longer than the model's context of 128" in _error(capsys, ["--model", "tiny", "--prompt", long])
    assert "longer than the model's context of 256" in _error(capsys, ["--prompt", "the " * 300])
    spike = tmp_path / "spike"
    spike.mkdir()
    cfg = json.loads(Path("models/bundled/config.json").read_text())
    (spike / "config.json").write_text(json.dumps({**cfg, "token_mixer": "spike_attention", "use_lower_bound": False,
                                                   "num_heads": 4}))
    err = _error(capsys, ["--model", str(spike), "--target", "rtl", "--simulator", "icarus"])
    assert "spike_attention model; the accelerator runs MLGRU models only" in err


def test_a_simulator_that_is_not_installed_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "")  # Icarus (iverilog, vvp) is found on PATH only
    assert "simulator icarus (install: apt-get install iverilog) is not installed" in _error(
        capsys, ["--target", "rtl", "--simulator", "icarus"])


def test_golden_target_on_the_bundled_model(capsys):
    assert main(["generate", "--prompt", "The history of", "--tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint models/bundled: prompt of 4 tokens, 3 greedy tokens on golden" in out
    assert out.count("text: 'The history of") == 1


@pytest.mark.cocotb
@pytest.mark.slow
def test_rtl_target_on_icarus_matches_golden(capsys):
    from verif.simulators import available_simulators
    assert "icarus" in available_simulators(), "apt-get install iverilog"
    assert main(["generate", "--target", "rtl", "--model", "tiny", "--simulator", "icarus", "--prompt", "5 9 17",
                 "--tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "text: '5 9 17 119 84'" in out
    assert "RTL = golden: 516 token and logit words compared" in out
    assert "cycles per token: " in out


@pytest.mark.cocotb
@pytest.mark.slow
def test_a_changed_golden_word_is_named(tmp_path):
    """The negative control of the comparison: one changed golden logit makes the run fail, naming that word."""
    from hw.accelerator.top import Accelerator
    from nmllm.commands.generate import TINY, run_rtl
    from verif.accelerator_vectors import make_prompt_vectors, tiny_program

    cfg = {**TINY["shape"], "lanes": TINY["lanes"], "data_width": TINY["data_width"]}
    spec = make_prompt_vectors(Accelerator(**cfg), tiny_program(**TINY["shape"], seed=TINY["seed"]), prompt=[5, 9],
                               n_tokens=1, source="tiny")
    spec["phases"][1]["logits"][0][3] += 1
    result, mismatch = run_rtl(cfg, "icarus", spec)
    assert not result.passed
    assert mismatch.startswith("phase generate step 0 logit 3: RTL")
